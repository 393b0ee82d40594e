/*
 * Consistency checker: re-read every blob's metadata from the device,
 * recompute what the allocation masks must be, and compare.
 *
 * Expected state:
 *  - clusters used = metadata clusters + every cluster any blob owns; for an
 *    open blob that is its in-memory map plus clusters waiting to be released
 *    (D5), for any other blob its committed tree on disk;
 *  - pool pages used = every page of every committed tree (map and xattrs);
 *  - slots used = slots whose newest valid root is a live blob;
 *  - no cluster owned twice; every tree validates (D1); counters agree.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blob/md_page.h"
#include "blob/store_int.h"
#include "util/assert_int.h"
#include "util/log_int.h"

#define CHECK_WINDOW 256u		/* slots read per IO: 2 MiB */

struct check {
	struct bs_store *bs;
	struct bs_check_report *r;
	bs_check_msg_fn msg_fn;
	void *msg_arg;
	bs_cpl_fn cb_fn;
	void *cb_arg;
	struct bitarray clusters;
	struct bitarray pool;
	struct bitarray slots;
	uint64_t slot;
	uint64_t win_first;		/* first slot held in pages[] */
	uint64_t win_slots;
	struct md_root *pages;		/* CHECK_WINDOW slots, 2 pages each */
	struct bs_blob *tmp;
	bs_blob_id id;
};

static void check_msg(struct check *ck, bs_blob_id id, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void check_msg(struct check *ck, bs_blob_id id, const char *fmt, ...)
{
	char line[256];
	va_list ap;

	ck->r->problems++;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (ck->msg_fn != NULL)
		ck->msg_fn(ck->msg_arg, id, line);
	else
		LOG_WARN("check: %s", line);
}

static void check_done(struct check *ck, int err)
{
	bitarray_free(&ck->clusters);
	bitarray_free(&ck->pool);
	bitarray_free(&ck->slots);
	md_free_pages(ck->pages);
	if (ck->tmp != NULL)
		blob_destroy(ck->tmp);
	ck->cb_fn(ck->cb_arg, err);
	free(ck);
}

static void check_own_cluster(struct check *ck, bs_blob_id id, uint32_t c)
{
	if (c < ck->bs->md_clusters || c >= ck->bs->total_clusters) {
		check_msg(ck, id, "blob 0x%" PRIx64 ": cluster %u outside the data area", id, c);
		return;
	}
	if (bitarray_get(&ck->clusters, c)) {
		ck->r->double_owned_clusters++;
		check_msg(ck, id, "cluster %u owned twice (again by blob 0x%" PRIx64 ")", c, id);
		return;
	}
	bitarray_set(&ck->clusters, c);
}

static void check_own_map(struct check *ck, const struct bs_blob *b)
{
	for (uint64_t i = 0; i < b->map.num_clusters; i++) {
		uint32_t c = blob_map_get(&b->map, i);

		if (c != 0)
			check_own_cluster(ck, b->id, c);
	}
}

struct check_page_ctx {
	struct check *ck;
	bs_blob_id id;
};

static void check_own_page(void *arg, uint32_t idx)
{
	struct check_page_ctx *pc = arg;
	struct check *ck = pc->ck;

	if (idx >= ck->bs->pool_pages || bitarray_get(&ck->pool, idx)) {
		ck->r->pool_mismatches++;
		check_msg(ck, pc->id, "pool page %u referenced twice or out of range", idx);
		return;
	}
	bitarray_set(&ck->pool, idx);
}

static void check_own_tree_pages(struct check *ck, const struct bs_blob *b)
{
	struct check_page_ctx pc = { ck, b->id };

	blob_map_for_each_page(&b->map, check_own_page, &pc);
	for (uint32_t i = 0; i < b->xattr_npages; i++)
		check_own_page(&pc, b->xattr_refs[i].pool_idx);
}

static void check_next_slot(struct check *ck);

static void check_tree_cpl(void *cb_arg, int err)
{
	struct check *ck = cb_arg;
	struct bs_blob *tmp = ck->tmp;
	struct bs_blob *open = store_find_blob(ck->bs, tmp->id);

	if (err != 0 && err != -EILSEQ && err != -EFBIG) {
		/* A device or memory error is the check's failure, not the blob's. */
		blob_destroy(tmp);
		ck->tmp = NULL;
		check_done(ck, err);
		return;
	}
	if (err != 0) {
		ck->r->corrupt_blobs++;
		check_msg(ck, tmp->id, "blob 0x%" PRIx64 ": metadata tree does not validate "
			  "(a page fails its checksum or its reference)", tmp->id);
	} else {
		ck->r->blobs_checked++;
		check_own_tree_pages(ck, tmp);
		if (open != NULL && open->state == BLOB_OPEN) {
			check_own_map(ck, open);
			for (uint64_t i = 0; i < open->npending_free; i++)
				check_own_cluster(ck, open->id, open->pending_free[i]);
		} else {
			check_own_map(ck, tmp);
		}
	}
	blob_destroy(tmp);
	ck->tmp = NULL;
	ck->slot++;
	check_next_slot(ck);
}

/*
 * A slot recovery quarantined (e.g. its blob claims a cluster another blob
 * owns) is a corrupt blob that owns nothing, like a tree that does not
 * validate, even if its pages on their own do.
 */
static bool check_quarantined(struct check *ck, uint32_t slot, bs_blob_id id)
{
	if (!bitarray_get(&ck->bs->slots_corrupt, slot))
		return false;
	ck->r->corrupt_blobs++;
	check_msg(ck, id, "slot %u: blob quarantined as corrupt by recovery", slot);
	return true;
}

/* Check one slot whose two root pages are in the current window. */
static void check_slot(struct check *ck)
{
	struct bs_store *bs = ck->bs;
	uint32_t slot = (uint32_t)ck->slot;
	const struct md_root *pages = &ck->pages[2 * (ck->slot - ck->win_first)];
	int valid, pick = -ENOENT, err;
	bool tomb;

	pick = blob_root_pick(bs, slot, pages, &valid, &tomb);
	if (pick == -EILSEQ) {
		ck->r->corrupt_blobs++;
		bitarray_set(&ck->slots, slot);
		check_msg(ck, BLOB_ID(bs->slot_inc[slot], slot), "slot %u: no valid root page", slot);
	}
	/* A group rolled back onto a previous root that did not load: its newest
	 * page is the group's tombstone, yet recovery quarantined the slot. */
	if (pick == -ENOENT && tomb && bitarray_get(&bs->slots_corrupt, slot)) {
		bitarray_set(&ck->slots, slot);
		check_quarantined(ck, slot, BLOB_ID(bs->slot_inc[slot], slot));
	}
	if (pick < 0) {
		ck->slot++;
		check_next_slot(ck);
		return;
	}
	bitarray_set(&ck->slots, slot);
	if (check_quarantined(ck, slot, pages[pick].hdr.blob_id)) {
		ck->slot++;
		check_next_slot(ck);
		return;
	}
	if (BLOB_ID_INCARNATION(pages[pick].hdr.blob_id) != bs->slot_inc[slot])
		check_msg(ck, pages[pick].hdr.blob_id, "slot %u: incarnation %u, expected %u",
			  slot, BLOB_ID_INCARNATION(pages[pick].hdr.blob_id), bs->slot_inc[slot]);
	ck->tmp = blob_alloc(bs, pages[pick].hdr.blob_id);
	if (ck->tmp == NULL) {
		check_done(ck, -ENOMEM);
		return;
	}
	err = blob_apply_root(ck->tmp, &pages[pick]);
	if (err != 0 && err != -EOPNOTSUPP) {
		check_tree_cpl(ck, err);
		return;
	}
	blob_tree_load(bs, ck->tmp, &pages[pick], check_tree_cpl, ck);
}

static void check_window_cpl(void *cb_arg, int err)
{
	struct check *ck = cb_arg;

	if (err != 0) {
		check_done(ck, err);
		return;
	}
	check_slot(ck);
}

/* Compare a recomputed bitmap with the store's; count and report differences. */
static void check_compare(struct check *ck, const struct bitarray *want, const struct bitarray *have,
			  const char *what, uint64_t *extra, uint64_t *missing)
{
	uint64_t reported = 0;

	for (uint64_t i = 0; i < want->nbits; i++) {
		bool w = bitarray_get(want, i), h = bitarray_get(have, i);

		if (w == h)
			continue;
		if (h)
			(*extra)++;
		else
			(*missing)++;
		if (reported++ < 8)
			check_msg(ck, 0, "%s %" PRIu64 ": %s", what, i,
				  h ? "marked used but unreferenced (leak)"
				    : "referenced but marked free");
		else
			ck->r->problems++;
	}
}

static void check_finish(struct check *ck)
{
	struct bs_store *bs = ck->bs;
	uint64_t dummy = 0, used;

	bitarray_set_range(&ck->clusters, 0, bs->md_clusters);
	check_compare(ck, &ck->clusters, &bs->clusters_used, "cluster", &ck->r->leaked_clusters,
		      &ck->r->lost_clusters);
	check_compare(ck, &ck->pool, &bs->pool_used, "pool page", &ck->r->pool_mismatches,
		      &ck->r->pool_mismatches);
	check_compare(ck, &ck->slots, &bs->slots_used, "slot", &dummy, &dummy);
	ck->r->counter_mismatches += dummy;
	used = bitarray_count_set(&bs->clusters_used);
	if (bs->total_clusters - used != atomic_load(&bs->free_clusters)) {
		ck->r->counter_mismatches++;
		check_msg(ck, 0, "free cluster count %" PRIu64 ", mask says %" PRIu64,
			  (uint64_t)atomic_load(&bs->free_clusters), bs->total_clusters - used);
	}
	for (uint64_t c = 0; c < bs->total_clusters; c++) {
		if (bitarray_get(&bs->zeroed, c) && bitarray_get(&bs->clusters_used, c)) {
			ck->r->counter_mismatches++;
			check_msg(ck, 0, "cluster %" PRIu64 " is both used and known-zero", c);
			break;
		}
	}
	check_done(ck, 0);
}

/*
 * Every slot is examined, used or not, so a live root the store believes
 * free is found too. Slots are read a window at a time.
 */
static void check_next_slot(struct check *ck)
{
	struct bs_store *bs = ck->bs;
	struct md_batch *b;

	if (ck->slot >= bs->max_blobs) {
		check_finish(ck);
		return;
	}
	if (ck->slot < ck->win_first + ck->win_slots) {
		check_slot(ck);
		return;
	}
	ck->win_first = ck->slot;
	ck->win_slots = BS_MIN((uint64_t)CHECK_WINDOW, bs->max_blobs - ck->slot);
	b = md_batch_new(bs, check_window_cpl, ck);
	if (b == NULL) {
		check_done(ck, -ENOMEM);
		return;
	}
	md_batch_read(b, ck->pages, bs->root_start + 2 * ck->slot, 2 * ck->win_slots);
	md_batch_close(b);
}

static void check_start(void *cb_arg, int err)
{
	check_next_slot(cb_arg);
}

void bs_check(struct bs_store *bs, struct bs_check_report *report, bs_check_msg_fn msg_fn,
	      void *msg_arg, bs_cpl_fn cb_fn, void *cb_arg)
{
	struct check *ck;

	if (bs == NULL || report == NULL || !on_md_thread(bs)) {
		if (bs != NULL && report != NULL)
			LOG_ERR("check: must be called on the metadata thread");
		store_defer_cpl(cb_fn, cb_arg, bs && report ? -EPERM : -EINVAL);
		return;
	}
	memset(report, 0, sizeof(*report));
	ck = calloc(1, sizeof(*ck));
	if (ck == NULL || bitarray_init(&ck->clusters, bs->total_clusters) != 0 ||
	    bitarray_init(&ck->pool, bs->pool_pages) != 0 ||
	    bitarray_init(&ck->slots, bs->max_blobs) != 0 ||
	    (ck->pages = md_alloc_pages(2 * BS_MIN((uint64_t)CHECK_WINDOW, bs->max_blobs))) == NULL) {
		if (ck != NULL) {
			bitarray_free(&ck->clusters);
			bitarray_free(&ck->pool);
			bitarray_free(&ck->slots);
			free(ck);
		}
		store_defer_cpl(cb_fn, cb_arg, -ENOMEM);
		return;
	}
	ck->bs = bs;
	ck->r = report;
	ck->msg_fn = msg_fn;
	ck->msg_arg = msg_arg;
	ck->cb_fn = cb_fn;
	ck->cb_arg = cb_arg;
	store_defer_cpl(check_start, ck, 0); /* never call back inline */
}
