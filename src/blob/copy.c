/*
 * Whole-cluster copies on the metadata thread, for inflate and decouple.
 *
 * With a device copy operation (copy offload) every cluster is one copy and
 * all of them go out in one batch. Without it, clusters go one chunk at a
 * time through a bounce buffer: read a chunk of the source, write it to the
 * destination, next chunk. Clusters with no source are zeroed unless they
 * are known to read as zeros already (D8).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blob/store_int.h"
#include "util/assert_int.h"
#include "util/log_int.h"

#define COPY_CHUNK (1u << 20)

struct copy_op {
	struct bs_store *bs;
	const uint32_t *src;
	const uint32_t *dst;
	const bool *zeroed;
	uint64_t n;
	uint64_t i;			/* cluster being copied */
	uint64_t off;			/* blocks of it done */
	uint64_t chunk;			/* blocks per chunk */
	uint8_t *buf;
	int phase;			/* enum copy_phase */
	bs_cpl_fn cb_fn;
	void *cb_arg;
};

static void copy_done(struct copy_op *op, int err)
{
	free(op->buf);
	op->cb_fn(op->cb_arg, err);
	free(op);
}

/* Offload: one batch of device copies and zeroes. */
static void copy_offload(struct copy_op *op)
{
	struct bs_store *bs = op->bs;
	uint64_t bpc = bs->blocks_per_cluster;
	struct md_batch *b = md_batch_new(bs, op->cb_fn, op->cb_arg);

	if (b == NULL) {
		store_defer_cpl(op->cb_fn, op->cb_arg, -ENOMEM);
		free(op);
		return;
	}
	for (uint64_t i = 0; i < op->n; i++) {
		if (op->src[i] != 0)
			md_batch_copy(b, (uint64_t)op->dst[i] * bpc, (uint64_t)op->src[i] * bpc, bpc);
		else if (!op->zeroed[i])
			md_batch_zeroes(b, (uint64_t)op->dst[i] * bpc, bpc);
	}
	md_batch_close(b);
	free(op);
}

enum copy_phase { COPY_READ, COPY_WRITE, COPY_ZERO };

static void copy_step(struct copy_op *op);

/* A step finished: move to the next chunk, cluster or phase. */
static void copy_io_cpl(void *cb_arg, int err)
{
	struct copy_op *op = cb_arg;

	if (err != 0) {
		copy_done(op, err);
		return;
	}
	if (op->phase == COPY_READ) {
		op->phase = COPY_WRITE;
	} else {
		op->off = op->phase == COPY_ZERO ? op->bs->blocks_per_cluster : op->off + op->chunk;
		op->phase = COPY_READ;
		if (op->off >= op->bs->blocks_per_cluster) {
			op->off = 0;
			op->i++;
		}
	}
	copy_step(op);
}

/* Issue the next read, write or zeroing of the bounce path. */
static void copy_step(struct copy_op *op)
{
	struct bs_store *bs = op->bs;
	uint64_t bpc = bs->blocks_per_cluster;
	struct md_batch *b;

	while (op->i < op->n && op->src[op->i] == 0 && op->zeroed[op->i])
		op->i++;
	if (op->i >= op->n) {
		copy_done(op, 0);
		return;
	}
	b = md_batch_new(bs, copy_io_cpl, op);
	if (b == NULL) {
		copy_done(op, -ENOMEM);
		return;
	}
	if (op->src[op->i] == 0) {
		op->phase = COPY_ZERO;
		md_batch_zeroes(b, (uint64_t)op->dst[op->i] * bpc, bpc);
	} else if (op->phase == COPY_READ) {
		md_batch_read_blocks(b, op->buf, (uint64_t)op->src[op->i] * bpc + op->off, op->chunk);
	} else {
		md_batch_write_blocks(b, op->buf, (uint64_t)op->dst[op->i] * bpc + op->off, op->chunk);
	}
	md_batch_close(b);
}

void md_copy_clusters(struct bs_store *bs, const uint32_t *src, const uint32_t *dst,
		      const bool *zeroed, uint64_t n, bs_cpl_fn cb_fn, void *cb_arg)
{
	struct copy_op *op = calloc(1, sizeof(*op));

	if (op == NULL) {
		store_defer_cpl(cb_fn, cb_arg, -ENOMEM);
		return;
	}
	*op = (struct copy_op){ .bs = bs, .src = src, .dst = dst, .zeroed = zeroed, .n = n,
				.cb_fn = cb_fn, .cb_arg = cb_arg };
	if (bs_dev_has_copy(bs->dev)) {
		copy_offload(op);
		return;
	}
	op->chunk = BS_MIN((uint64_t)COPY_CHUNK, (uint64_t)bs->cluster_size) / bs->block_len;
	if (posix_memalign((void **)&op->buf, 4096, op->chunk * bs->block_len) != 0) {
		free(op);
		store_defer_cpl(cb_fn, cb_arg, -ENOMEM);
		return;
	}
	copy_step(op);
}
