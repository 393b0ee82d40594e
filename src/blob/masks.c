/*
 * The mask region: what a clean unload saves so a clean load need not open
 * any blob (D7). Each kind is either a bitmap or an array of fixed-size
 * per-slot values; this table says which, and the rest is generic.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "blob/md_page.h"
#include "blob/store_int.h"
#include "util/assert_int.h"
#include "util/log_int.h"

struct mask_desc {
	struct bitarray *bits;		/* bitmap kinds */
	uint8_t *array;			/* array kinds */
	uint32_t elem;			/* array element size */
	uint64_t count;			/* bits or elements */
};

static void mask_describe(struct bs_store *bs, int kind, struct mask_desc *d)
{
	memset(d, 0, sizeof(*d));
	switch (kind) {
	case MD_MASK_CLUSTERS: d->bits = &bs->clusters_used; break;
	case MD_MASK_ZEROED: d->bits = &bs->zeroed; break;
	case MD_MASK_POOL: d->bits = &bs->pool_used; break;
	case MD_MASK_SLOTS: d->bits = &bs->slots_used; break;
	case MD_MASK_HIDDEN: d->bits = &bs->slots_hidden; break;
	case MD_MASK_INCARNATIONS:
		d->array = (uint8_t *)bs->slot_inc;
		d->elem = sizeof(uint32_t);
		d->count = bs->max_blobs;
		return;
	case MD_MASK_PARENTS:
		d->array = (uint8_t *)bs->slot_parent;
		d->elem = sizeof(uint64_t);
		d->count = bs->max_blobs;
		return;
	default:
		assert(0);
	}
	d->count = d->bits->nbits;
}

/* Entries one mask page holds. */
static uint64_t mask_per_page(const struct mask_desc *d)
{
	return d->bits ? MD_MASK_BITS_PER_PAGE : MD_PAYLOAD / d->elem;
}

/* Pages a kind needs for this geometry (the arrays need not exist yet). */
uint64_t mask_kind_pages(const struct bs_store *bs, int kind)
{
	uint64_t n, per;

	switch (kind) {
	case MD_MASK_CLUSTERS:
	case MD_MASK_ZEROED: n = bs->total_clusters; per = MD_MASK_BITS_PER_PAGE; break;
	case MD_MASK_POOL: n = bs->pool_pages; per = MD_MASK_BITS_PER_PAGE; break;
	case MD_MASK_SLOTS:
	case MD_MASK_HIDDEN: n = bs->max_blobs; per = MD_MASK_BITS_PER_PAGE; break;
	case MD_MASK_INCARNATIONS: n = bs->max_blobs; per = MD_INCARNATIONS_PER_PAGE; break;
	default: n = bs->max_blobs; per = MD_PARENTS_PER_PAGE; break;
	}
	return (n + per - 1) / per;
}

static uint8_t *mask_page_at(const struct bs_store *bs, uint8_t *buf, uint64_t page_no)
{
	return buf + (page_no - bs->mask_start) * MD_PAGE_SIZE;
}

/* Copy entries [first, first + n) between a page payload and memory. */
static void mask_slice(const struct mask_desc *d, uint8_t *payload, uint64_t first, uint64_t n,
		       bool to_page)
{
	if (d->array != NULL) {
		uint8_t *mem = d->array + first * d->elem;

		memcpy(to_page ? payload : mem, to_page ? mem : payload, n * d->elem);
		return;
	}
	for (uint64_t b = 0; b < n; b++) {
		if (to_page && bitarray_get(d->bits, first + b))
			payload[b >> 3] |= (uint8_t)(1u << (b & 7));
		else if (!to_page && (payload[b >> 3] & (1u << (b & 7))))
			bitarray_set(d->bits, first + b);
	}
}

void masks_encode(struct bs_store *bs, uint8_t *buf, uint64_t gen)
{
	for (int k = 0; k < MD_MASK_NKINDS; k++) {
		struct mask_desc d;

		mask_describe(bs, k, &d);
		for (uint64_t i = 0; i < bs->mask_kind_pages[k]; i++) {
			uint64_t page_no = bs->mask_kind_start[k] + i;
			struct md_mask_page *p = (void *)mask_page_at(bs, buf, page_no);
			uint64_t first = i * mask_per_page(&d);

			md_page_init(p, MD_TYPE_MASK, page_no, 0, gen, bs->store_id, (uint32_t)i,
				     (uint16_t)k);
			mask_slice(&d, p->bits, first, BS_MIN(d.count - first, mask_per_page(&d)), true);
			md_page_seal(p);
		}
	}
}

int masks_decode(struct bs_store *bs, uint8_t *buf, uint64_t gen)
{
	for (int k = 0; k < MD_MASK_NKINDS; k++) {
		struct mask_desc d;

		mask_describe(bs, k, &d);
		for (uint64_t i = 0; i < bs->mask_kind_pages[k]; i++) {
			uint64_t page_no = bs->mask_kind_start[k] + i;
			struct md_mask_page *p = (void *)mask_page_at(bs, buf, page_no);
			struct md_expect e = {
				.type = MD_TYPE_MASK, .page_no = page_no, .blob_id = 0, .gen = gen,
				.store_id = bs->store_id, .index = (uint32_t)i, .level = (uint16_t)k,
			};
			uint64_t first = i * mask_per_page(&d);
			const char *why;

			if (md_page_check(p, &e, &why) != 0) {
				LOG_WARN("load: mask page %" PRIu64 " invalid (%s)", page_no, why);
				return -EILSEQ;
			}
			mask_slice(&d, p->bits, first, BS_MIN(d.count - first, mask_per_page(&d)), false);
		}
	}
	return 0;
}
