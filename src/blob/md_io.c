/*
 * Batched metadata IO on the metadata thread's device channel.
 *
 * A batch is opened, filled with reads, writes, zeroes and flushes (all
 * submitted at once: the device queues what exceeds its depth), and
 * closed; its callback then runs once every IO has completed, with the
 * FIRST error seen (SPDK keeps the last). A flush added to a batch is
 * issued only after every IO added before it has completed, so "writes,
 * then flush" in one batch has flush semantics (the flush covers them).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blob/store_int.h"
#include "util/assert_int.h"
#include "util/log_int.h"

struct md_op {
	struct bs_dev_io io;
	struct md_batch *b;
};

struct md_batch {
	struct bs_store *bs;
	bs_cpl_fn cb_fn;
	void *cb_arg;
	uint32_t outstanding;
	uint32_t flushes_wanted;	/* flushes waiting for earlier IO */
	bool closed;
	bool done;
	int err;
	struct bs_defer defer;
};

struct md_defer_cpl {
	struct bs_defer node;
	bs_cpl_fn cb_fn;
	void *cb_arg;
	int err;
};

static void md_defer_cpl_run(void *ctx)
{
	struct md_defer_cpl *d = ctx;

	d->cb_fn(d->cb_arg, d->err);
	free(d);
}

void store_defer_cpl(bs_cpl_fn cb_fn, void *cb_arg, int err)
{
	struct md_defer_cpl *d = malloc(sizeof(*d));

	if (d == NULL) {
		/* Out of memory for the node: a message is the only other way. */
		LOG_ERR("out of memory deferring a completion");
		abort();
	}
	d->cb_fn = cb_fn;
	d->cb_arg = cb_arg;
	d->err = err;
	bs_thread_defer(&d->node, md_defer_cpl_run, d);
}

void *md_alloc_pages(uint64_t npages)
{
	void *p = NULL;

	if (posix_memalign(&p, MD_PAGE_SIZE, npages * MD_PAGE_SIZE) != 0)
		return NULL;
	memset(p, 0, npages * MD_PAGE_SIZE);
	return p;
}

void md_free_pages(void *p)
{
	free(p);
}

struct md_batch *md_batch_new(struct bs_store *bs, bs_cpl_fn cb_fn, void *cb_arg)
{
	struct md_batch *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return NULL;
	b->bs = bs;
	b->cb_fn = cb_fn;
	b->cb_arg = cb_arg;
	return b;
}

static void md_batch_finish(void *ctx)
{
	struct md_batch *b = ctx;

	b->cb_fn(b->cb_arg, b->err);
	free(b);
}

static void md_batch_record(struct md_batch *b, int err)
{
	if (err != 0 && b->err == 0)
		b->err = err; /* first error wins */
}

static void md_batch_maybe_done(struct md_batch *b);

static void md_op_cpl(void *cb_arg, int err)
{
	struct md_op *op = cb_arg;
	struct md_batch *b = op->b;

	free(op);
	md_batch_record(b, err);
	b->outstanding--;
	md_batch_maybe_done(b);
}

static struct md_op *md_op_new(struct md_batch *b)
{
	struct md_op *op = malloc(sizeof(*op));

	if (op == NULL) {
		md_batch_record(b, -ENOMEM);
		return NULL;
	}
	op->b = b;
	b->outstanding++;
	return op;
}

/* Issue waiting flushes once everything before them completed. */
static void md_batch_maybe_done(struct md_batch *b)
{
	while (b->outstanding == 0 && b->flushes_wanted > 0) {
		struct md_op *op;

		b->flushes_wanted--;
		if (b->err != 0)
			continue; /* no point flushing a failed batch */
		op = md_op_new(b);
		if (op == NULL)
			continue;
		bs_dev_flush(b->bs->md_ch, &op->io, md_op_cpl, op);
		return;
	}
	if (b->outstanding == 0 && b->closed && !b->done) {
		b->done = true;
		bs_thread_defer(&b->defer, md_batch_finish, b);
	}
}

void md_batch_read(struct md_batch *b, void *buf, uint64_t page_no, uint64_t npages)
{
	struct md_op *op = md_op_new(b);

	if (op != NULL)
		bs_dev_read(b->bs->md_ch, &op->io, buf, page_to_lba(b->bs, page_no),
			    npages * b->bs->blocks_per_page, md_op_cpl, op);
}

void md_batch_read_blocks(struct md_batch *b, void *buf, uint64_t lba, uint64_t nblocks)
{
	struct md_op *op = md_op_new(b);

	if (op != NULL)
		bs_dev_read(b->bs->md_ch, &op->io, buf, lba, nblocks, md_op_cpl, op);
}

void md_batch_write_blocks(struct md_batch *b, const void *buf, uint64_t lba, uint64_t nblocks)
{
	struct md_op *op = md_op_new(b);

	assert(b->flushes_wanted == 0);
	if (op != NULL)
		bs_dev_write(b->bs->md_ch, &op->io, buf, lba, nblocks, md_op_cpl, op);
}

void md_batch_write(struct md_batch *b, const void *buf, uint64_t page_no, uint64_t npages)
{
	md_batch_write_blocks(b, buf, page_to_lba(b->bs, page_no), npages * b->bs->blocks_per_page);
}

void md_batch_zeroes(struct md_batch *b, uint64_t lba, uint64_t nblocks)
{
	struct md_op *op = md_op_new(b);

	if (op != NULL)
		bs_dev_write_zeroes(b->bs->md_ch, &op->io, lba, nblocks, md_op_cpl, op);
}

void md_batch_unmap(struct md_batch *b, uint64_t lba, uint64_t nblocks)
{
	struct md_op *op = md_op_new(b);

	if (op != NULL)
		bs_dev_unmap(b->bs->md_ch, &op->io, lba, nblocks, md_op_cpl, op);
}

void md_batch_copy(struct md_batch *b, uint64_t dst_lba, uint64_t src_lba, uint64_t nblocks)
{
	struct md_op *op = md_op_new(b);

	if (op != NULL)
		bs_dev_copy(b->bs->md_ch, &op->io, dst_lba, src_lba, nblocks, md_op_cpl, op);
}

void md_batch_flush(struct md_batch *b)
{
	b->flushes_wanted++;
	md_batch_maybe_done(b);
}

/* Fail @b with @err (first error wins) without issuing anything. */
void md_batch_fail(struct md_batch *b, int err)
{
	md_batch_record(b, err);
}

void md_batch_close(struct md_batch *b)
{
	b->closed = true;
	md_batch_maybe_done(b);
}
