/*
 * Shallow copy (docs/snapshots.md): copy the clusters a read-only blob owns
 * itself, not those its ancestors serve, to the same byte offsets of
 * another device, then flush that device.
 *
 *   check -> open the blob (internal reference) -> plan the owned clusters
 *     -> SHALLOW_SLOTS copies in flight, each a loop of
 *        read a chunk (store device) -> write it (destination device)
 *     -> flush the destination -> drop the reference, report.
 *
 * The internal reference keeps the blob, and so its clusters, alive: a
 * delete of it (or a merge into it) is refused with -EBUSY meanwhile, and
 * being read-only its clusters are never rewritten, so the plan made at the
 * start stays right. Memory is bounded: one chunk buffer per slot, all
 * allocated at the start; nothing is allocated per IO. The first error
 * wins; after it no new IO is issued, the copy waits for what is in flight
 * and skips the flush.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "blob/store_int.h"
#include "util/assert_int.h"
#include "util/log_int.h"

/* Clusters copied at once, and the largest single read or write. */
#define SHALLOW_SLOTS	4
#define SHALLOW_CHUNK	(1u << 20)

struct shallow_op;

/* One cluster being copied, a chunk at a time. */
struct shallow_slot {
	struct shallow_op *op;
	struct bs_dev_io io;
	uint8_t *buf;			/* one chunk */
	uint64_t k;			/* index into the plan */
	uint64_t off;			/* blocks of the cluster done */
	bool busy;
};

/* Context of one shallow copy. */
struct shallow_op {
	struct bs_store *bs;
	bs_blob_id id;
	struct bs_blob *blob;		/* internal reference */
	struct bs_dev *dst;
	struct bs_io_channel *dst_ch;
	uint32_t *src;			/* plan: the blob's store cluster ... */
	uint64_t *idx;			/* ... and its index in the blob */
	uint64_t total;			/* clusters in the plan */
	uint64_t next;			/* next plan entry to start */
	uint64_t done;			/* clusters copied */
	uint64_t chunk;			/* blocks per read and write */
	uint32_t nslots;
	uint32_t inflight;		/* busy slots */
	int err;			/* first error */
	struct bs_dev_io flush_io;
	struct shallow_slot slots[SHALLOW_SLOTS];
	bs_progress_fn progress_fn;
	void *progress_arg;
	bs_cpl_fn cb_fn;
	void *cb_arg;
};

static void shallow_finish(struct shallow_op *op, int err)
{
	if (op->dst_ch != NULL)
		bs_dev_put_channel(op->dst_ch);
	if (op->blob != NULL)
		blob_put(op->blob);
	for (uint32_t i = 0; i < op->nslots; i++)
		bs_buf_free(op->slots[i].buf);
	free(op->src);
	free(op->idx);
	op->cb_fn(op->cb_arg, err);
	free(op);
}

static void shallow_flush_cpl(void *cb_arg, int err)
{
	struct shallow_op *op = cb_arg;

	if (err != 0)
		LOG_ERR("shallow copy: blob 0x%" PRIx64 ": flush of %s: %s", op->id,
			op->dst->name, strerror(-err));
	shallow_finish(op, err);
}

static void shallow_slot_read(struct shallow_slot *slot);

/*
 * Start plan entries on free slots while there is no error; once nothing is
 * in flight and nothing more will start, flush (success) or finish (error).
 */
static void shallow_pump(struct shallow_op *op)
{
	for (uint32_t i = 0; i < op->nslots && op->err == 0 && op->next < op->total; i++) {
		struct shallow_slot *slot = &op->slots[i];

		if (slot->busy)
			continue;
		slot->busy = true;
		slot->k = op->next++;
		slot->off = 0;
		op->inflight++;
		shallow_slot_read(slot);
	}
	if (op->inflight != 0)
		return;
	if (op->err != 0) {
		shallow_finish(op, op->err);
		return;
	}
	assert(op->done == op->total);
	bs_dev_flush(op->dst_ch, &op->flush_io, shallow_flush_cpl, op);
}

/* @p slot stops (its cluster done, or an error): free it, start more. */
static void shallow_slot_end(struct shallow_slot *slot, int err)
{
	struct shallow_op *op = slot->op;

	if (err != 0 && op->err == 0) {
		LOG_ERR("shallow copy: blob 0x%" PRIx64 ": cluster %" PRIu64 ": %s",
			op->id, op->idx[slot->k], strerror(-err));
		op->err = err;
	}
	slot->busy = false;
	assert(op->inflight > 0);
	op->inflight--;
	shallow_pump(op);
}

/* A chunk is on the destination: next chunk, or the cluster is done. */
static void shallow_write_cpl(void *cb_arg, int err)
{
	struct shallow_slot *slot = cb_arg;
	struct shallow_op *op = slot->op;

	if (err != 0 || op->err != 0) {
		shallow_slot_end(slot, err);
		return;
	}
	slot->off += op->chunk;
	if (slot->off < op->bs->blocks_per_cluster) {
		shallow_slot_read(slot);
		return;
	}
	op->done++;
	if (op->progress_fn != NULL)
		op->progress_fn(op->progress_arg, op->done, op->total);
	shallow_slot_end(slot, 0);
}

/* A chunk was read: write it at the same place of the destination. */
static void shallow_read_cpl(void *cb_arg, int err)
{
	struct shallow_slot *slot = cb_arg;
	struct shallow_op *op = slot->op;
	uint64_t lba = op->idx[slot->k] * op->bs->blocks_per_cluster + slot->off;

	if (err != 0 || op->err != 0) {
		shallow_slot_end(slot, err);
		return;
	}
	bs_dev_write(op->dst_ch, &slot->io, slot->buf, lba, op->chunk, shallow_write_cpl, slot);
}

static void shallow_slot_read(struct shallow_slot *slot)
{
	struct shallow_op *op = slot->op;
	uint64_t lba = (uint64_t)op->src[slot->k] * op->bs->blocks_per_cluster + slot->off;

	bs_dev_read(op->bs->md_ch, &slot->io, slot->buf, lba, op->chunk, shallow_read_cpl, slot);
}

/* The clusters the blob owns itself, in blob order. 0 or -ENOMEM. */
static int shallow_plan(struct shallow_op *op)
{
	const struct blob_map *map = &op->blob->map;
	uint64_t n = map->num_clusters;

	op->src = calloc(n ? n : 1, sizeof(*op->src));
	op->idx = calloc(n ? n : 1, sizeof(*op->idx));
	if (op->src == NULL || op->idx == NULL)
		return -ENOMEM;
	for (uint64_t i = 0; i < n; i++) {
		uint32_t c = blob_map_get(map, i);

		if (c == 0)
			continue;
		op->src[op->total] = c;
		op->idx[op->total++] = i;
	}
	return 0;
}

/* Chunk buffers for the slots that can be busy, and the destination's
 * channel. 0 or -errno. */
static int shallow_resources(struct shallow_op *op)
{
	struct bs_store *bs = op->bs;
	uint64_t bytes = BS_MIN((uint64_t)SHALLOW_CHUNK, (uint64_t)bs->cluster_size);
	size_t align = BS_MAX(4096u, BS_MAX(bs->dev->buf_align, op->dst->buf_align));

	op->chunk = bytes / bs->block_len;
	op->nslots = (uint32_t)BS_MIN((uint64_t)SHALLOW_SLOTS, op->total);
	for (uint32_t i = 0; i < op->nslots; i++) {
		op->slots[i].op = op;
		op->slots[i].buf = bs_buf_alloc(bytes, align);
		if (op->slots[i].buf == NULL)
			return -ENOMEM;
	}
	op->dst_ch = bs_dev_get_channel(op->dst);
	return op->dst_ch != NULL ? 0 : -errno;
}

/* The blob is open: check it against the destination, plan, start. */
static void shallow_open_cpl(void *cb_arg, int err)
{
	struct shallow_op *op = cb_arg;
	struct bs_blob *b = op->blob;
	uint64_t need;

	if (err != 0) {
		shallow_finish(op, err);	/* a failed open left op->blob NULL */
		return;
	}
	need = b->map.num_clusters * (uint64_t)op->bs->cluster_size;
	if (!b->data_ro || b->md_dirty) {
		LOG_ERR("shallow copy: blob 0x%" PRIx64 " is not read-only%s", op->id,
			b->data_ro ? " on disk (sync it first)" : "");
		err = -EPERM;
	} else if (op->dst->block_count < need / op->dst->block_len) {
		LOG_ERR("shallow copy: blob 0x%" PRIx64 ": %" PRIu64 " bytes do not fit on %s",
			op->id, need, op->dst->name);
		err = -EINVAL;
	}
	if (err == 0)
		err = shallow_plan(op);
	if (err == 0)
		err = shallow_resources(op);
	if (err != 0) {
		shallow_finish(op, err);
		return;
	}
	shallow_pump(op);
}

/* Checks that need no open blob. 0 or -errno (with a log line where the
 * cause is not obvious). */
static int shallow_check(struct bs_store *bs, bs_blob_id id, struct bs_dev *dst)
{
	if (bs == NULL || dst == NULL)
		return -EINVAL;
	if (!on_md_thread(bs)) {
		LOG_ERR("shallow copy: must be called on the metadata thread");
		return -EPERM;
	}
	if (bs->unloading)
		return -ESHUTDOWN;
	if (id == BS_BLOB_ID_INVALID || BLOB_ID_SLOT(id) >= bs->max_blobs ||
	    bitarray_get(&bs->slots_hidden, BLOB_ID_SLOT(id)))
		return -ENOENT;
	if (dst == bs->dev) {
		LOG_ERR("shallow copy: the destination is the store's own device");
		return -EINVAL;
	}
	if (dst->block_len != bs->block_len) {
		LOG_ERR("shallow copy: block size %u of %s differs from the store's %u",
			dst->block_len, dst->name, bs->block_len);
		return -EINVAL;
	}
	return 0;
}

void bs_blob_shallow_copy(struct bs_store *bs, bs_blob_id id, struct bs_dev *dst,
			  bs_progress_fn progress_fn, void *progress_arg,
			  bs_cpl_fn cb_fn, void *cb_arg)
{
	int rc = shallow_check(bs, id, dst);
	struct shallow_op *op = NULL;

	if (rc == 0) {
		op = calloc(1, sizeof(*op));
		rc = op == NULL ? -ENOMEM : 0;
	}
	if (rc != 0) {
		store_defer_cpl(cb_fn, cb_arg, rc);
		return;
	}
	*op = (struct shallow_op){
		.bs = bs, .id = id, .dst = dst, .progress_fn = progress_fn,
		.progress_arg = progress_arg, .cb_fn = cb_fn, .cb_arg = cb_arg,
	};
	blob_open_internal(bs, id, &op->blob, shallow_open_cpl, op);
}
