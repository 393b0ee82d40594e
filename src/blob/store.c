/*
 * Store lifecycle: init, load (clean fast path or recovery), unload,
 * destroy, flush, super blob, getters.
 *
 * init:   check geometry -> zero supers, masks, root slots (D12) -> clear the
 *         data area -> flush -> write super copy 0 (clean=0) -> flush.
 * load:   read both super copies -> pick (D6) -> check -> clean ? read and
 *         validate masks (D7) : recover (recover.c).
 * unload: refuse with open blobs -> write masks -> flush -> super clean=1
 *         -> flush (D7) -> close the device.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "blob/md_page.h"
#include "blob/store_int.h"
#include "util/assert_int.h"
#include "util/log_int.h"

struct store_op {
	struct bs_store *bs;
	struct bs_store **bs_out;
	struct bs_opts opts;
	bs_cpl_fn cb_fn;
	void *cb_arg;
	void *buf;
	uint64_t mask_gen;
	uint64_t t0_us;
	int err;
	bool destroy;
	uint64_t collapse_slot;		/* load: next hidden slot to look at */
};

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000ull + (uint64_t)ts.tv_nsec / 1000;
}

void bs_opts_init(struct bs_opts *opts, size_t opts_size)
{
	memset(opts, 0, opts_size);
	opts->opts_size = opts_size;
	opts->cluster_size = 1u << 20;
	opts->max_channel_ops = 512;
	opts->clear_method = BS_CLEAR_UNMAP;
}

/* Copy the caller's options over defaults, honouring opts_size. */
static int store_copy_opts(struct bs_opts *dst, const struct bs_opts *src)
{
	bs_opts_init(dst, sizeof(*dst));
	if (src == NULL)
		return 0;
	if (src->opts_size == 0 || src->opts_size > sizeof(*dst)) {
		LOG_ERR("bs_opts: bad opts_size %zu", src->opts_size);
		return -EINVAL;
	}
	memcpy(dst, src, src->opts_size);
	dst->opts_size = sizeof(*dst);
	return 0;
}

static struct bs_store *store_new(struct bs_dev *dev)
{
	struct bs_store *bs = calloc(1, sizeof(*bs));

	if (bs == NULL)
		return NULL;
	bs->dev = dev;
	bs->md_thread = bs_thread_get_current();
	TAILQ_INIT(&bs->blobs);
	TAILQ_INIT(&bs->dirty_waiters);
	bs->super_copy = 1; /* so the first write goes to copy 0 */
	return bs;
}

/* Start a store operation: context, channel. NULL after deferring an error. */
static struct store_op *store_op_start(struct bs_dev *dev, const struct bs_opts *opts,
				       struct bs_store **bs_out, bs_cpl_fn cb_fn, void *cb_arg)
{
	struct store_op *op = calloc(1, sizeof(*op));
	int rc = -ENOMEM;

	if (bs_thread_get_current() == NULL) {
		LOG_ERR("store: init/load must run on a bs_thread");
		free(op);
		return NULL;
	}
	if (dev == NULL || bs_out == NULL) {
		LOG_ERR("store: init/load: NULL %s", dev == NULL ? "device" : "bs_out");
		free(op);
		store_defer_cpl(cb_fn, cb_arg, -EINVAL);
		return NULL;
	}
	if (op == NULL || (rc = store_copy_opts(&op->opts, opts)) != 0)
		goto out_fail;
	op->bs = store_new(dev);
	if (op->bs == NULL) {
		rc = -ENOMEM;
		goto out_fail;
	}
	op->bs->md_ch = bs_dev_get_channel(dev);
	if (op->bs->md_ch == NULL) {
		rc = -errno;
		goto out_fail;
	}
	op->bs_out = bs_out;
	op->cb_fn = cb_fn;
	op->cb_arg = cb_arg;
	op->t0_us = now_us();
	op->bs->max_channel_ops = op->opts.max_channel_ops;
	op->bs->esnap_create = op->opts.esnap_dev_create;
	op->bs->esnap_ctx = op->opts.esnap_ctx;
	return op;

out_fail:
	if (op != NULL)
		free(op->bs);
	free(op);
	store_defer_cpl(cb_fn, cb_arg, rc);
	return NULL;
}

static void store_op_finish(struct store_op *op, int err);
static void load_collapse_next(struct store_op *op);

/* Finish init/load: hand the store out, or tear it down on error. */
static void store_op_done(struct store_op *op, int err)
{
	struct bs_store *bs = op->bs;

	md_free_pages(op->buf);
	op->buf = NULL;
	if (err == 0) {
		err = store_register_io(bs);
		if (err != 0)
			LOG_ERR("store: cannot register the IO device: %s", strerror(-err));
	}
	if (err == 0 && bs->report.recovered && !bs->read_only && bs->error == 0 &&
	    bitarray_count_set(&bs->slots_hidden) != 0) {
		op->collapse_slot = 0;
		load_collapse_next(op);
		return;
	}
	store_op_finish(op, err);
}

static void load_collapse_cpl(void *cb_arg, int err)
{
	(void)err; /* a failed collapse is logged and leaves the snapshot hidden */
	load_collapse_next(cb_arg);
}

/*
 * A crash can cut short the collapse that follows a clone's delete: the
 * hidden snapshot it leaves (one clone or none) is collapsed here, after
 * recovery and before the store is handed out, one at a time.
 */
static void load_collapse_next(struct store_op *op)
{
	struct bs_store *bs = op->bs;
	uint64_t s = bitarray_find_first_set(&bs->slots_hidden, op->collapse_slot);

	if (s == BITARRAY_NONE || bs->error != 0) {
		store_op_finish(op, 0);
		return;
	}
	op->collapse_slot = s + 1;
	blob_collapse(bs, BLOB_ID(bs->slot_inc[s], s), load_collapse_cpl, op);
}

static void store_op_finish(struct store_op *op, int err)
{
	struct bs_store *bs = op->bs;

	if (err == 0) {
		bs->report.usec = now_us() - op->t0_us;
		*op->bs_out = bs;
	} else {
		if (bs->md_ch != NULL)
			bs_dev_put_channel(bs->md_ch);
		store_free(bs);
	}
	op->cb_fn(op->cb_arg, err);
	free(op);
}

/* store_op_done() on a later poll: for failures found before any IO. */
static void store_op_fail_cpl(void *cb_arg, int err)
{
	store_op_done(cb_arg, err);
}

/* ---------------------------------------------------------------- init */

static void init_super_cpl(void *cb_arg, int err)
{
	struct store_op *op = cb_arg;

	if (err != 0)
		LOG_ERR("init: writing the super block failed: %s", strerror(-err));
	store_op_done(op, err);
}

static void init_zero_cpl(void *cb_arg, int err)
{
	struct store_op *op = cb_arg;
	struct bs_store *bs = op->bs;

	if (err != 0) {
		LOG_ERR("init: clearing the device failed: %s", strerror(-err));
		store_op_done(op, err);
		return;
	}
	bs->clean_on_disk = false;
	super_write(bs, false, 0, init_super_cpl, op); /* D12: super last */
}

/* Decide what the data area looks like after init (D8). */
static bool init_data_zeroed(const struct bs_store *bs, enum bs_clear_method m)
{
	if (m == BS_CLEAR_WRITE_ZEROES)
		return true;
	return m == BS_CLEAR_UNMAP && (bs->dev->flags & BS_DEV_F_UNMAP_ZEROES);
}

/* In-memory state of an empty store. */
static void init_state(struct bs_store *bs, const struct bs_opts *opts)
{
	uint64_t data = bs->total_clusters - bs->md_clusters;

	bitarray_set_range(&bs->clusters_used, 0, bs->md_clusters);
	if (init_data_zeroed(bs, opts->clear_method))
		bitarray_set_range(&bs->zeroed, bs->md_clusters, data);
	atomic_store(&bs->free_clusters, data);
	atomic_store(&bs->alloc_hint, bs->md_clusters);
	bs->txn_next = 1;
	bs->id_next = 1;
	bs->report.was_clean = true;
}

/* Zero the metadata head (D12) and clear the data area, then flush. */
static void init_clear(struct store_op *op)
{
	struct bs_store *bs = op->bs;
	uint64_t md_blocks = page_to_lba(bs, bs->pool_start);
	uint64_t data_lba = bs->md_clusters * bs->blocks_per_cluster;
	uint64_t data_blocks = (bs->total_clusters - bs->md_clusters) * bs->blocks_per_cluster;
	struct md_batch *b = md_batch_new(bs, init_zero_cpl, op);

	if (b == NULL) {
		store_defer_cpl(store_op_fail_cpl, op, -ENOMEM);
		return;
	}
	md_batch_zeroes(b, 0, md_blocks);
	if (op->opts.clear_method == BS_CLEAR_UNMAP)
		md_batch_unmap(b, data_lba, data_blocks);
	else if (op->opts.clear_method == BS_CLEAR_WRITE_ZEROES)
		md_batch_zeroes(b, data_lba, data_blocks);
	md_batch_flush(b);
	md_batch_close(b);
}

void bs_init(struct bs_dev *dev, const struct bs_opts *opts, struct bs_store **bs_out,
	     bs_cpl_fn cb_fn, void *cb_arg)
{
	struct store_op *op = store_op_start(dev, opts, bs_out, cb_fn, cb_arg);
	struct bs_store *bs;
	int rc;

	if (op == NULL)
		return;
	bs = op->bs;
	rc = layout_compute(bs, dev, &op->opts);
	if (rc == 0)
		rc = store_alloc_masks(bs);
	if (rc != 0) {
		bs_dev_put_channel(bs->md_ch);
		store_free(bs);
		free(op);
		store_defer_cpl(cb_fn, cb_arg, rc);
		return;
	}
	if (getrandom(&bs->store_id, sizeof(bs->store_id), 0) != sizeof(bs->store_id) ||
	    getrandom(bs->uuid, sizeof(bs->uuid), 0) != sizeof(bs->uuid))
		bs->store_id ^= (uint64_t)now_us() * 0x9E3779B97F4A7C15ull;
	init_state(bs, &op->opts);
	LOG_INFO("init: %s: %" PRIu64 " clusters of %u, %" PRIu64 " metadata clusters, "
		 "%" PRIu64 " blob slots, %" PRIu64 " pool pages", dev->name, bs->total_clusters,
		 bs->cluster_size, bs->md_clusters, bs->max_blobs, bs->pool_pages);
	init_clear(op);
}

/* ---------------------------------------------------------------- load */

/* Decode the mask pages read into op->buf. 0 or -EILSEQ. */
static int load_decode_masks(struct store_op *op)
{
	return masks_decode(op->bs, op->buf, op->mask_gen);
}

static void load_recover_cpl(void *cb_arg, int err)
{
	struct store_op *op = cb_arg;

	store_op_done(op, err);
}

static void load_recover(struct store_op *op)
{
	struct bs_store *bs = op->bs;

	bitarray_clear_all(&bs->clusters_used);
	bitarray_clear_all(&bs->zeroed);
	bitarray_clear_all(&bs->pool_used);
	bitarray_clear_all(&bs->slots_used);
	bitarray_clear_all(&bs->slots_hidden);
	memset(bs->slot_inc, 0, bs->max_blobs * sizeof(uint32_t));
	memset(bs->slot_parent, 0, bs->max_blobs * sizeof(uint64_t));
	bs->masks_rebuilt = true; /* unload writes them even if nothing else changes */
	store_recover(bs, load_recover_cpl, op);
}

static void load_masks_cpl(void *cb_arg, int err)
{
	struct store_op *op = cb_arg;
	struct bs_store *bs = op->bs;

	if (err == 0)
		err = load_decode_masks(op);
	if (err == -EILSEQ) {
		LOG_NOTICE("load: %s: masks invalid; recovering", bs->dev->name);
		load_recover(op);
		return;
	}
	if (err == 0) {
		bitarray_set_range(&bs->clusters_used, 0, bs->md_clusters);
		atomic_store(&bs->free_clusters,
			     bs->total_clusters - bitarray_count_set(&bs->clusters_used));
		atomic_store(&bs->alloc_hint, bs->md_clusters);
		bs->report.was_clean = true;
		bs->report.blobs = bitarray_count_set(&bs->slots_used);
		bs->report.md_bytes_read += bs->mask_pages * MD_PAGE_SIZE;
	}
	store_op_done(op, err);
}

/* Clean fast path: read every mask page in one IO (D7). */
static void load_clean(struct store_op *op)
{
	struct bs_store *bs = op->bs;
	struct md_batch *b;

	md_free_pages(op->buf);
	op->buf = md_alloc_pages(bs->mask_pages);
	b = op->buf ? md_batch_new(bs, load_masks_cpl, op) : NULL;
	if (b == NULL) {
		store_op_done(op, -ENOMEM);
		return;
	}
	md_batch_read(b, op->buf, bs->mask_start, bs->mask_pages);
	md_batch_close(b);
}

static void load_super_cpl(void *cb_arg, int err)
{
	struct store_op *op = cb_arg;
	struct bs_store *bs = op->bs;
	struct md_super sb;

	if (err == 0)
		err = super_pick(bs, op->buf, &sb);
	if (err == 0)
		err = super_check_device(&sb, bs->dev, &op->opts);
	if (err == 0)
		err = layout_from_super(bs, &sb);
	if (err == 0)
		err = store_alloc_masks(bs);
	if (err != 0) {
		store_op_done(op, err);
		return;
	}
	bs->clean_on_disk = sb.clean != 0;
	bs->read_only = (sb.features_ro_compat & ~0ull) != 0;
	bs->report.md_bytes_read = 2 * MD_PAGE_SIZE;
	if (sb.clean && !op->opts.force_recover) {
		bs->txn_next = sb.txn_next;
		bs->id_next = sb.id_next;
		op->mask_gen = sb.mask_gen;
		load_clean(op);
		return;
	}
	LOG_NOTICE("load: %s: %s; recovering", bs->dev->name,
		   sb.clean ? "recovery forced" : "not cleanly unloaded");
	load_recover(op);
}

void bs_load(struct bs_dev *dev, const struct bs_opts *opts, struct bs_store **bs_out,
	     bs_cpl_fn cb_fn, void *cb_arg)
{
	struct store_op *op = store_op_start(dev, opts, bs_out, cb_fn, cb_arg);
	struct md_batch *b;

	if (op == NULL)
		return;
	if (dev->block_len > MD_PAGE_SIZE || MD_PAGE_SIZE % dev->block_len != 0 ||
	    dev->block_count * dev->block_len < 2 * MD_PAGE_SIZE) {
		LOG_ERR("load: %s: unsupported block size or device too small", dev->name);
		store_defer_cpl(store_op_fail_cpl, op, dev->block_len > MD_PAGE_SIZE ? -EINVAL : -EILSEQ);
		return;
	}
	op->bs->block_len = dev->block_len;
	op->bs->blocks_per_page = MD_PAGE_SIZE / dev->block_len;
	op->buf = md_alloc_pages(2);
	b = op->buf ? md_batch_new(op->bs, load_super_cpl, op) : NULL;
	if (b == NULL) {
		store_defer_cpl(store_op_fail_cpl, op, -ENOMEM);
		return;
	}
	md_batch_read(b, op->buf, 0, 2);
	md_batch_close(b);
}

/* -------------------------------------------------------------- unload */

static void unload_closed_cpl(void *cb_arg, int err)
{
	struct store_op *op = cb_arg;

	op->cb_fn(op->cb_arg, err);
	free(op);
}

static void unload_release(struct store_op *op, int err);

static void unload_unreg_cpl(void *cb_arg, int err)
{
	struct store_op *op = cb_arg;

	unload_release(op, op->err);
}

/*
 * Unregister the store's IO device (waits for every channel to be freed),
 * then free the store and close the device.
 */
static void unload_drained_cpl(void *cb_arg, int err)
{
	struct store_op *op = cb_arg;

	bs_io_device_unregister(op->bs, unload_unreg_cpl, op);
}

static void unload_finish(struct store_op *op, int err)
{
	op->err = err;
	esnap_drain(op->bs, unload_drained_cpl, op); /* external devices of closed blobs */
}

static void unload_release(struct store_op *op, int err)
{
	struct bs_store *bs = op->bs;

	/* The device's channel is put; the device itself stays the caller's. */
	bs_dev_put_channel(bs->md_ch);
	store_free(bs);
	md_free_pages(op->buf);
	op->buf = NULL;
	store_defer_cpl(unload_closed_cpl, op, err);
}

static void unload_super_cpl(void *cb_arg, int err)
{
	unload_finish(cb_arg, err);
}

static void unload_masks_cpl(void *cb_arg, int err)
{
	struct store_op *op = cb_arg;

	if (err != 0) {
		store_latch_error(op->bs, err, "mask write");
		unload_finish(op, err);
		return;
	}
	super_write(op->bs, true, op->mask_gen, unload_super_cpl, op); /* D7 */
}

/* Render every mask into op->buf (mask_pages pages). */
static void unload_encode_masks(struct store_op *op)
{
	masks_encode(op->bs, op->buf, op->mask_gen);
}

static void unload_write_masks(void *cb_arg, int err)
{
	struct store_op *op = cb_arg;
	struct bs_store *bs = op->bs;
	struct md_batch *b;

	if (err != 0) {
		unload_finish(op, err);
		return;
	}
	op->mask_gen = bs->txn_next++;
	op->buf = md_alloc_pages(bs->mask_pages);
	b = op->buf ? md_batch_new(bs, unload_masks_cpl, op) : NULL;
	if (b == NULL) {
		unload_finish(op, -ENOMEM);
		return;
	}
	unload_encode_masks(op);
	md_batch_write(b, op->buf, bs->mask_start, bs->mask_pages);
	md_batch_flush(b);
	md_batch_close(b);
}

static void destroy_super_cpl(void *cb_arg, int err)
{
	unload_finish(cb_arg, err);
}

/* Clean and unchanged metadata: only flush the device's write cache. */
static void unload_flush_only(struct store_op *op)
{
	struct md_batch *b = md_batch_new(op->bs, unload_super_cpl, op);

	if (b == NULL) {
		unload_finish(op, -ENOMEM);
		return;
	}
	md_batch_flush(b);
	md_batch_close(b);
}

static void unload_start(struct bs_store *bs, bool destroy, bs_cpl_fn cb_fn, void *cb_arg)
{
	struct store_op *op;

	if (bs == NULL) {
		store_defer_cpl(cb_fn, cb_arg, -EINVAL);
		return;
	}
	if (!on_md_thread(bs)) {
		LOG_ERR("unload: not on the metadata thread");
		store_defer_cpl(cb_fn, cb_arg, -EPERM);
		return;
	}
	if (bs->open_blobs > 0 || bs->unloading) {
		LOG_ERR("unload: %u blobs are still open", bs->open_blobs);
		store_defer_cpl(cb_fn, cb_arg, -EBUSY);
		return;
	}
	op = calloc(1, sizeof(*op));
	if (op == NULL) {
		store_defer_cpl(cb_fn, cb_arg, -ENOMEM);
		return;
	}
	bs->unloading = true;
	op->bs = bs;
	op->cb_fn = cb_fn;
	op->cb_arg = cb_arg;
	op->destroy = destroy;
	if (destroy) {
		struct md_batch *b = md_batch_new(bs, destroy_super_cpl, op);

		if (b == NULL) {
			unload_finish(op, -ENOMEM);
			return;
		}
		md_batch_zeroes(b, 0, 2 * bs->blocks_per_page);
		md_batch_flush(b);
		md_batch_close(b);
		return;
	}
	if (bs->error != 0 || bs->read_only) {
		/* Nothing may be written: leave the on-disk state for recovery. */
		store_defer_cpl(unload_super_cpl, op, bs->error);
		return;
	}
	if (bitarray_count_set(&bs->slots_corrupt) != 0) {
		/*
		 * Quarantined blobs (recovery found them corrupt) are known only
		 * in memory; the masks cannot say so. Leave the store dirty so
		 * the next load recovers and quarantines them again.
		 */
		LOG_NOTICE("unload: %s: corrupt blobs: left for recovery", bs->dev->name);
		store_mark_dirty(bs, unload_super_cpl, op);
		return;
	}
	if (bs->clean_on_disk && !bs->marking_dirty && !bs->masks_rebuilt) {
		/*
		 * Nothing was written since a clean load (every metadata write
		 * marks the super dirty first, D7): the masks on disk are right.
		 * Unloading a store that was only read writes nothing. After a
		 * forced recovery of a clean store they may not be: write them.
		 * Data writes since the load still need a device flush (D9):
		 * unload promises that everything completed before it is durable.
		 */
		unload_flush_only(op);
		return;
	}
	store_mark_dirty(bs, unload_write_masks, op); /* masks after any pending dirty mark */
}

void bs_unload(struct bs_store *bs, bs_cpl_fn cb_fn, void *cb_arg)
{
	unload_start(bs, false, cb_fn, cb_arg);
}

void bs_destroy(struct bs_store *bs, bs_cpl_fn cb_fn, void *cb_arg)
{
	unload_start(bs, true, cb_fn, cb_arg);
}

/* ------------------------------------------------------------ abandon */

struct abandon_ctx {
	struct bs_store *bs;
	bs_cpl_fn cb_fn;
	void *cb_arg;
};

static void abandon_closed_cpl(void *cb_arg, int err)
{
	struct abandon_ctx *a = cb_arg;

	bs_dev_put_channel(a->bs->md_ch);
	store_free(a->bs);
	a->cb_fn(a->cb_arg, 0);
	free(a);
}

/* No channel is left: close the external devices open handles hold. */
static void abandon_unreg_cpl(void *cb_arg, int err)
{
	struct abandon_ctx *a = cb_arg;

	esnap_abandon(a->bs, abandon_closed_cpl, a);
}

/*
 * Drop a store instance without writing anything, open blobs and all: what
 * a crash does. Used by tests after a simulated power cut; channels must be
 * freed and no operation may be in flight.
 */
void store_abandon(struct bs_store *bs, bs_cpl_fn cb_fn, void *cb_arg)
{
	struct abandon_ctx *a = calloc(1, sizeof(*a));

	if (a == NULL) {
		store_defer_cpl(cb_fn, cb_arg, -ENOMEM);
		return;
	}
	a->bs = bs;
	a->cb_fn = cb_fn;
	a->cb_arg = cb_arg;
	bs->unloading = true;
	bs->open_blobs = 0;
	bs_io_device_unregister(bs, abandon_unreg_cpl, a);
}

/* ---------------------------------------------------------- getters */

uint64_t bs_get_cluster_size(const struct bs_store *bs)
{
	return bs->cluster_size;
}

uint64_t bs_get_page_size(const struct bs_store *bs)
{
	return MD_PAGE_SIZE;
}

uint64_t bs_get_io_unit_size(const struct bs_store *bs)
{
	return bs->block_len;
}

uint64_t bs_get_free_cluster_count(const struct bs_store *bs)
{
	return atomic_load(&((struct bs_store *)bs)->free_clusters);
}

uint64_t bs_get_total_data_cluster_count(const struct bs_store *bs)
{
	return bs->total_clusters - bs->md_clusters;
}

uint64_t bs_get_max_blobs(const struct bs_store *bs)
{
	return bs->max_blobs;
}

const uint8_t *bs_get_bstype(const struct bs_store *bs)
{
	return bs->bstype;
}

int bs_get_error(const struct bs_store *bs)
{
	return bs->error;
}

bool bs_is_read_only(const struct bs_store *bs)
{
	return bs->read_only;
}

void bs_get_load_report(const struct bs_store *bs, struct bs_load_report *r)
{
	*r = bs->report;
}
