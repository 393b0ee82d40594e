/*
 * The super block: encoding, picking the newest valid copy, checking it
 * against the device, and the torn-safe update (D6) with the clean/dirty
 * protocol (D7) and the error latch (D10).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "blob/md_page.h"
#include "blob/store_int.h"
#include "util/assert_int.h"
#include "util/log_int.h"

/* Feature bits this build understands (none yet). */
#define SUPER_KNOWN_INCOMPAT 0ull
#define SUPER_KNOWN_RO_COMPAT 0ull

void super_encode(const struct bs_store *bs, struct md_super *sb, int copy, uint64_t seq,
		  bool clean, uint64_t mask_gen)
{
	memset(sb, 0, sizeof(*sb));
	md_page_init(sb, MD_TYPE_SUPER, (uint64_t)copy, 0, seq, bs->store_id, (uint32_t)copy, 0);
	memcpy(sb->signature, MD_SIGNATURE, sizeof(sb->signature));
	sb->format_version = MD_FORMAT_VERSION;
	sb->page_size = MD_PAGE_SIZE;
	sb->block_len = bs->block_len;
	sb->cluster_size = bs->cluster_size;
	sb->dev_size = bs->dev_size;
	sb->total_clusters = bs->total_clusters;
	sb->md_clusters = bs->md_clusters;
	sb->mask_start = bs->mask_start;
	sb->mask_pages = bs->mask_pages;
	sb->root_start = bs->root_start;
	sb->max_blobs = bs->max_blobs;
	sb->pool_start = bs->pool_start;
	sb->pool_pages = bs->pool_pages;
	sb->clean = clean ? 1 : 0;
	sb->txn_next = bs->txn_next;
	sb->id_next = bs->id_next;
	sb->mask_gen = mask_gen;
	sb->super_blob = bs->super_blob;
	memcpy(sb->bstype, bs->bstype, sizeof(sb->bstype));
	memcpy(sb->uuid, bs->uuid, sizeof(sb->uuid));
	sb->features_incompat = bs->features_incompat;
	sb->features_ro_compat = bs->features_ro_compat;
	sb->features_compat = bs->features_compat;
	md_page_seal(sb);
}

/* Validate one copy on its own. NULL if good, else a reason. */
static const char *super_copy_check(const struct md_super *sb, int copy)
{
	struct md_expect e = {
		.type = MD_TYPE_SUPER, .page_no = (uint64_t)copy, .blob_id = 0,
		.store_id = sb->hdr.store_id, .index = (uint32_t)copy, .level = 0,
	};
	const char *why = NULL;

	if (memcmp(sb->signature, MD_SIGNATURE, sizeof(sb->signature)) != 0)
		return "no blobstore signature";
	if (md_page_check(sb, &e, &why) != 0)
		return why;
	return NULL;
}

/*
 * Pick the newest valid super block from the two pages read at offset 0
 * (D6). -EILSEQ if neither copy is valid (not a store, or both corrupt).
 */
int super_pick(struct bs_store *bs, const uint8_t *pages, struct md_super *out)
{
	const struct md_super *c[2] = {
		(const struct md_super *)pages, (const struct md_super *)(pages + MD_PAGE_SIZE),
	};
	const char *why[2] = { super_copy_check(c[0], 0), super_copy_check(c[1], 1) };
	int pick;

	if (why[0] != NULL && why[1] != NULL) {
		bool sig = memcmp(c[0]->signature, MD_SIGNATURE, 8) == 0 ||
			   memcmp(c[1]->signature, MD_SIGNATURE, 8) == 0;

		LOG_ERR("load: %s: %s", bs->dev->name,
			sig ? "both super block copies are corrupt (crc or header mismatch)"
			    : "not a blobstore (no super block signature)");
		return -EILSEQ;
	}
	if (why[0] != NULL || why[1] != NULL)
		LOG_NOTICE("load: super block copy %d invalid (%s); using the other",
			   why[0] ? 0 : 1, why[0] ? why[0] : why[1]);
	if (why[0] != NULL)
		pick = 1;
	else if (why[1] != NULL)
		pick = 0;
	else
		pick = c[1]->hdr.gen > c[0]->hdr.gen ? 1 : 0;
	*out = *c[pick];
	bs->super_copy = pick;
	bs->super_seq = c[pick]->hdr.gen;
	return 0;
}

/* a + b <= limit, without wrapping (every field is disk data). */
static bool fits(uint64_t a, uint64_t b, uint64_t limit)
{
	uint64_t sum;

	return !__builtin_add_overflow(a, b, &sum) && sum <= limit;
}

/*
 * The regions lie in order inside the metadata clusters: super copies,
 * masks, root slots (2 pages each), pool. No sum or product may wrap, or a
 * huge field would pass and size the in-memory masks.
 */
static bool super_geometry_ok(const struct md_super *sb)
{
	uint64_t md_pages, root_pages;

	if (!BS_IS_POW2(sb->cluster_size) || sb->cluster_size < MD_PAGE_SIZE ||
	    sb->total_clusters == 0 || sb->total_clusters > UINT32_MAX ||
	    sb->md_clusters >= sb->total_clusters || sb->mask_start < 2 ||
	    sb->max_blobs > (1ull << 31) || sb->pool_pages > UINT32_MAX)
		return false;
	md_pages = sb->md_clusters * (sb->cluster_size / MD_PAGE_SIZE); /* < 2^32 * 2^19 */
	if (__builtin_mul_overflow(sb->max_blobs, 2, &root_pages))
		return false;
	return fits(sb->mask_start, sb->mask_pages, sb->root_start) &&
	       fits(sb->root_start, root_pages, sb->pool_start) &&
	       fits(sb->pool_start, sb->pool_pages, md_pages);
}

/* Geometry and compatibility checks of a picked super block. */
int super_check_device(const struct md_super *sb, const struct bs_dev *dev,
		       const struct bs_opts *opts)
{
	static const uint8_t zero[16];

	if (sb->format_version > MD_FORMAT_VERSION) {
		LOG_ERR("load: store format version %u is newer than this build (%u)",
			sb->format_version, MD_FORMAT_VERSION);
		return -EOPNOTSUPP;
	}
	if (sb->features_incompat & ~SUPER_KNOWN_INCOMPAT) {
		LOG_ERR("load: unknown incompatible features 0x%" PRIx64, sb->features_incompat);
		return -EOPNOTSUPP;
	}
	if (sb->block_len != dev->block_len || sb->page_size != MD_PAGE_SIZE) {
		LOG_ERR("load: store block size %u differs from the device's %u",
			sb->block_len, dev->block_len);
		return -EINVAL;
	}
	if (!super_geometry_ok(sb)) {
		LOG_ERR("load: super block geometry is inconsistent");
		return -EILSEQ;
	}
	if (sb->total_clusters > (dev->block_count * dev->block_len) / sb->cluster_size) {
		LOG_ERR("load: store geometry (%" PRIu64 " clusters of %u) is larger than the device",
			sb->total_clusters, sb->cluster_size);
		return -ERANGE;
	}
	if (memcmp(opts->bstype, zero, 16) != 0 && memcmp(opts->bstype, sb->bstype, 16) != 0) {
		LOG_ERR("load: bstype mismatch");
		return -EINVAL;
	}
	return 0;
}

void store_latch_error(struct bs_store *bs, int err, const char *what)
{
	if (bs->error == 0) {
		LOG_ERR("store %s: %s failed (%s): metadata is now read-only until reload",
			bs->dev->name, what, strerror(-err));
		bs->error = err; /* D10 */
	}
}

struct super_write_ctx {
	struct bs_store *bs;
	struct md_super *page;
	int copy;
	uint64_t seq;
	bs_cpl_fn cb_fn;
	void *cb_arg;
};

static void super_write_cpl(void *cb_arg, int err)
{
	struct super_write_ctx *ctx = cb_arg;
	struct bs_store *bs = ctx->bs;

	if (err == 0) {
		bs->super_copy = ctx->copy;
		bs->super_seq = ctx->seq;
		bs->clean_on_disk = ctx->page->clean != 0;
	} else {
		store_latch_error(bs, err, "super block write");
	}
	md_free_pages(ctx->page);
	ctx->cb_fn(ctx->cb_arg, err);
	free(ctx);
}

/* Write the older copy with a higher sequence, then flush (D6). */
void super_write(struct bs_store *bs, bool clean, uint64_t mask_gen, bs_cpl_fn cb_fn, void *cb_arg)
{
	struct super_write_ctx *ctx = calloc(1, sizeof(*ctx));
	struct md_batch *b;

	if (ctx == NULL || (ctx->page = md_alloc_pages(1)) == NULL) {
		free(ctx);
		store_defer_cpl(cb_fn, cb_arg, -ENOMEM);
		return;
	}
	ctx->bs = bs;
	ctx->copy = 1 - bs->super_copy;
	ctx->seq = bs->super_seq + 1;
	ctx->cb_fn = cb_fn;
	ctx->cb_arg = cb_arg;
	super_encode(bs, ctx->page, ctx->copy, ctx->seq, clean, mask_gen);
	b = md_batch_new(bs, super_write_cpl, ctx);
	if (b == NULL) {
		md_free_pages(ctx->page);
		free(ctx);
		store_defer_cpl(cb_fn, cb_arg, -ENOMEM);
		return;
	}
	md_batch_write(b, ctx->page, (uint64_t)ctx->copy, 1);
	md_batch_flush(b);
	md_batch_close(b);
}

static void mark_dirty_cpl(void *cb_arg, int err)
{
	struct bs_store *bs = cb_arg;
	struct blob_sync_waiter *w;

	bs->marking_dirty = false;
	while ((w = TAILQ_FIRST(&bs->dirty_waiters)) != NULL) {
		TAILQ_REMOVE(&bs->dirty_waiters, w, link);
		w->cb_fn(w->cb_arg, err);
		free(w);
	}
}

/* D7: the first metadata write after a clean load waits for clean=0 on disk. */
void store_mark_dirty(struct bs_store *bs, bs_cpl_fn cb_fn, void *cb_arg)
{
	struct blob_sync_waiter *w;

	if (bs->error != 0) {
		store_defer_cpl(cb_fn, cb_arg, -EIO);
		return;
	}
	if (!bs->clean_on_disk && !bs->marking_dirty) {
		store_defer_cpl(cb_fn, cb_arg, 0);
		return;
	}
	w = malloc(sizeof(*w));
	if (w == NULL) {
		store_defer_cpl(cb_fn, cb_arg, -ENOMEM);
		return;
	}
	w->cb_fn = cb_fn;
	w->cb_arg = cb_arg;
	TAILQ_INSERT_TAIL(&bs->dirty_waiters, w, link);
	if (!bs->marking_dirty) {
		bs->marking_dirty = true;
		super_write(bs, false, 0, mark_dirty_cpl, bs);
	}
}
