/*
 * Unit tests for the RAM device (include/blobstore/ram_dev.h): IO
 * round-trips, deferred and ordered completion, fault injection, bad input
 * through the generic wrappers, the volatile write cache, the power-cut
 * model (including an exhaustive check of the images a cut may produce),
 * counters, and IO from several reactor threads at once.
 *
 * Threads are driven by hand: every step that submits IO runs as a message
 * on a polled bs_thread, and the test pthread polls until the step's
 * completions have arrived. Callbacks only record what happened; all
 * assertions run on the test pthread outside bs_thread_poll().
 * Geometry-dependent cases run at 512- and 4096-byte blocks.
 */
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <blobstore/log.h>
#include <blobstore/ram_dev.h>

#define POLL_LIMIT 1000000L
#define DEF_BLOCKS 64
#define NORDER 16

struct params {
	uint32_t block_len;
};

static struct params p512 = { 512 };
static struct params p4096 = { 4096 };

/* One test's world: a polled thread, a RAM device and a channel on it. */
struct env {
	uint32_t block_len;		/* from the parameters */
	struct bs_thread *t;
	struct bs_dev *dev;
	struct bs_io_channel *ch;
	uint32_t bl;
	uint64_t nblocks;
	size_t size;
	int ncpl;			/* completions so far: ranks ops */
	uint64_t iter;			/* poll iterations so far */
};

/* One IO, its arguments and what happened to it. */
struct op {
	struct env *env;
	enum bs_io_type type;
	void *buf;
	struct iovec *iov;
	int iovcnt;
	uint64_t lba;
	uint64_t count;
	uint64_t src_lba;
	struct op *chain;		/* submitted from this op's completion */
	struct bs_dev_io io;
	int ncpl;			/* must end at exactly 1 */
	bool done;
	bool done_inline;		/* completed before the submit returned */
	int err;
	int rank;			/* order among the env's completions */
	uint64_t iter;			/* poll iteration it completed in */
};

typedef void (*env_fn)(struct env *e, void *arg);

/* A batch of IO submitted from one message, plus an optional hook. */
struct step {
	struct op *ops;
	int nops;
	env_fn after;			/* runs right after submission */
	void *after_arg;
};

struct call {
	env_fn fn;
	struct env *e;
	void *arg;
	bool done;
};

struct result {
	bool done;
	int err;
};

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

/* Deterministic bytes for (tag, offset): tells every sector of every write apart. */
static void fill_pattern(uint8_t *buf, size_t len, uint64_t tag)
{
	uint64_t x = tag * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (uint8_t)(x >> 24);
	}
}

static void *xmalloc(size_t len)
{
	void *p = malloc(len);

	assert_non_null(p);
	return p;
}

static void result_cpl(void *arg, int err)
{
	struct result *r = arg;

	r->done = true;
	r->err = err;
}

static void env_poll_until(struct env *e, const bool *flag)
{
	for (long i = 0; !*flag; i++) {
		assert_true(i < POLL_LIMIT);
		e->iter++;
		assert_true(bs_thread_poll(e->t, 0) >= 0);
	}
}

static void call_msg(void *ctx)
{
	struct call *c = ctx;

	c->fn(c->e, c->arg);
	c->done = true;
}

/* Run @p fn on the env's thread and wait until it has run. */
static void env_call(struct env *e, env_fn fn, void *arg)
{
	struct call c = { .fn = fn, .e = e, .arg = arg };

	assert_int_equal(bs_thread_send_msg(e->t, call_msg, &c), 0);
	env_poll_until(e, &c.done);
}

static void op_submit(struct op *op);

static void op_cpl(void *arg, int err)
{
	struct op *op = arg;

	op->ncpl++;
	op->done = true;
	op->err = err;
	op->rank = op->env->ncpl++;
	op->iter = op->env->iter;
	if (op->chain != NULL)
		op_submit(op->chain);
}

/* Submit @p op through the public wrappers (on the env's thread). */
static void op_submit(struct op *op)
{
	struct bs_io_channel *ch = op->env->ch;
	struct bs_dev_io *io = &op->io;

	switch (op->type) {
	case BS_IO_READ:
		bs_dev_read(ch, io, op->buf, op->lba, op->count, op_cpl, op);
		break;
	case BS_IO_WRITE:
		bs_dev_write(ch, io, op->buf, op->lba, op->count, op_cpl, op);
		break;
	case BS_IO_READV:
		bs_dev_readv(ch, io, op->iov, op->iovcnt, op->lba, op->count, op_cpl, op);
		break;
	case BS_IO_WRITEV:
		bs_dev_writev(ch, io, op->iov, op->iovcnt, op->lba, op->count, op_cpl, op);
		break;
	case BS_IO_FLUSH:
		bs_dev_flush(ch, io, op_cpl, op);
		break;
	case BS_IO_WRITE_ZEROES:
		bs_dev_write_zeroes(ch, io, op->lba, op->count, op_cpl, op);
		break;
	case BS_IO_UNMAP:
		bs_dev_unmap(ch, io, op->lba, op->count, op_cpl, op);
		break;
	case BS_IO_COPY:
		bs_dev_copy(ch, io, op->lba, op->src_lba, op->count, op_cpl, op);
		break;
	default:
		break;
	}
	op->done_inline = op->done;
}

/* Forget what happened to @p op so it can be submitted again. */
static void op_reset(struct op *op)
{
	op->ncpl = 0;
	op->done = false;
	op->done_inline = false;
	op->err = 0;
	op->rank = 0;
	op->iter = 0;
}

static void step_fn(struct env *e, void *arg)
{
	struct step *s = arg;

	for (int i = 0; i < s->nops; i++)
		op_submit(&s->ops[i]);
	if (s->after != NULL)
		s->after(e, s->after_arg);
}

static bool ops_done(const struct op *ops, int n)
{
	for (int i = 0; i < n; i++) {
		if (!ops[i].done || (ops[i].chain != NULL && !ops[i].chain->done))
			return false;
	}
	return true;
}

/* Check that every op (and chained op) completed once and never inline. */
static void ops_check(const struct op *ops, int n)
{
	for (int i = 0; i < n; i++) {
		for (const struct op *op = &ops[i]; op != NULL; op = op->chain) {
			assert_int_equal(op->ncpl, 1);
			assert_false(op->done_inline);
		}
	}
}

/* Submit @p s from one message, then poll until all its IO completed. */
static void env_step(struct env *e, struct step *s)
{
	long i;

	for (i = 0; i < s->nops; i++)
		s->ops[i].env = e;
	env_call(e, step_fn, s);
	for (i = 0; !ops_done(s->ops, s->nops); i++) {
		assert_true(i < POLL_LIMIT);
		e->iter++;
		assert_true(bs_thread_poll(e->t, 0) >= 0);
	}
	ops_check(s->ops, s->nops);
}

static void env_run(struct env *e, struct op *ops, int n)
{
	struct step s = { .ops = ops, .nops = n };

	env_step(e, &s);
}

static int env_io(struct env *e, enum bs_io_type type, void *buf, uint64_t lba,
		  uint64_t count)
{
	struct op op = { .type = type, .buf = buf, .lba = lba, .count = count };

	env_run(e, &op, 1);
	return op.err;
}

static int dev_write(struct env *e, const void *buf, uint64_t lba, uint64_t count)
{
	return env_io(e, BS_IO_WRITE, (void *)buf, lba, count);
}

static int dev_read(struct env *e, void *buf, uint64_t lba, uint64_t count)
{
	return env_io(e, BS_IO_READ, buf, lba, count);
}

static int dev_flush(struct env *e)
{
	return env_io(e, BS_IO_FLUSH, NULL, 0, 0);
}

static int dev_copy(struct env *e, uint64_t dst, uint64_t src, uint64_t count)
{
	struct op op = { .type = BS_IO_COPY, .lba = dst, .src_lba = src, .count = count };

	env_run(e, &op, 1);
	return op.err;
}

static void get_channel_fn(struct env *e, void *arg)
{
	e->ch = bs_dev_get_channel(e->dev);
}

static void default_opts(struct env *e, struct bs_ram_dev_opts *o)
{
	bs_ram_dev_opts_init(o);
	o->block_len = e->block_len;
	o->block_count = DEF_BLOCKS;
}

static void env_open(struct env *e, const struct bs_ram_dev_opts *o)
{
	assert_int_equal(bs_ram_dev_create(o, &e->dev), 0);
	e->bl = e->dev->block_len;
	e->nblocks = e->dev->block_count;
	e->size = (size_t)(e->bl * e->nblocks);
	env_call(e, get_channel_fn, NULL);
	assert_non_null(e->ch);
}

struct close_arg {
	struct bs_dev *dev;
	struct bs_io_channel *ch;
	struct result *res;
};

static void close_fn(struct env *e, void *arg)
{
	struct close_arg *c = arg;

	if (c->ch != NULL)
		bs_dev_put_channel(c->ch);
	bs_dev_close(c->dev, result_cpl, c->res);
}

/* Put @p ch (if any) and close @p dev, waiting for the close to finish. */
static void env_close_dev(struct env *e, struct bs_dev *dev, struct bs_io_channel *ch)
{
	struct result res = { 0 };
	struct close_arg c = { dev, ch, &res };

	env_call(e, close_fn, &c);
	env_poll_until(e, &res.done);
	assert_int_equal(res.err, 0);
}

static void env_close(struct env *e)
{
	env_close_dev(e, e->dev, e->ch);
	e->dev = NULL;
	e->ch = NULL;
}

static void env_reopen(struct env *e, const struct bs_ram_dev_opts *o)
{
	env_close(e);
	env_open(e, o);
}

static int env_setup(void **state)
{
	const struct params *prm = *state;
	struct bs_ram_dev_opts o;
	struct env *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	e->block_len = prm != NULL ? prm->block_len : 512;
	e->t = bs_thread_create("ramtest");
	assert_non_null(e->t);
	default_opts(e, &o);
	env_open(e, &o);
	*state = e;
	return 0;
}

static int env_teardown(void **state)
{
	struct env *e = *state;
	long i;

	if (e->dev != NULL)
		env_close(e);
	bs_thread_exit(e->t);
	for (i = 0; !bs_thread_is_exited(e->t); i++) {
		assert_true(i < POLL_LIMIT);
		assert_true(bs_thread_poll(e->t, 0) >= 0);
	}
	assert_int_equal(bs_thread_destroy(e->t), 0);
	free(e);
	return 0;
}

/* Counts error lines and swallows every line (for expected failures). */
static void count_errors_hook(void *arg, enum bs_log_level level, const char *line)
{
	int *n = arg;

	if (level == BS_LOG_ERROR)
		(*n)++;
}

/* ------------------------------------------------------------------------
 * Creation and geometry
 * ------------------------------------------------------------------------ */

/* Create with @p o must fail with @p err and log exactly one error line. */
static void expect_create_fails(const struct bs_ram_dev_opts *o, int err)
{
	struct bs_dev *dev = NULL;
	int lines = 0;

	bs_log_set_hook(count_errors_hook, &lines);
	assert_int_equal(bs_ram_dev_create(o, &dev), err);
	bs_log_set_hook(NULL, NULL);
	assert_null(dev);
	assert_int_equal(lines, 1);
}

static void test_create_bad_opts(void **state)
{
	static const uint32_t bad_bl[] = { 0, 256, 768, 1000, 131072 };
	struct bs_ram_dev_opts o;

	(void)state;
	bs_ram_dev_opts_init(&o);
	o.block_count = 8;
	expect_create_fails(NULL, -EINVAL);
	assert_int_equal(bs_ram_dev_create(&o, NULL), -EINVAL);
	for (size_t i = 0; i < sizeof(bad_bl) / sizeof(bad_bl[0]); i++) {
		o.block_len = bad_bl[i];
		expect_create_fails(&o, -EINVAL);
	}
	o.block_len = 4096;
	o.block_count = 0;
	expect_create_fails(&o, -EINVAL);
	o.block_count = UINT64_MAX / 2048;
	expect_create_fails(&o, -EINVAL);
	o.block_count = 8;
	o.atomic_write_len = 6144;
	expect_create_fails(&o, -EINVAL);
	o.atomic_write_len = 2048;
	expect_create_fails(&o, -EINVAL);
	o.atomic_write_len = 0;
	o.phys_block_len = 2048;
	expect_create_fails(&o, -EINVAL);
	o.phys_block_len = 12288;
	expect_create_fails(&o, -EINVAL);
	o.phys_block_len = 0;
	o.order = (enum bs_ram_order)7;
	expect_create_fails(&o, -EINVAL);
	o.order = BS_RAM_ORDER_FIFO;
	o.opts_size = 4;
	expect_create_fails(&o, -EINVAL);
	o.opts_size = sizeof(o) + 8;
	expect_create_fails(&o, -EINVAL);
}

/* 2^59 bytes: a valid geometry, but no address space for it. */
static void test_create_nomem(void **state)
{
	struct bs_ram_dev_opts o;

	(void)state;
	bs_ram_dev_opts_init(&o);
	o.block_count = 1ull << 50;
	expect_create_fails(&o, -ENOMEM);
}

static void test_opts_defaults(void **state)
{
	struct bs_ram_dev_opts o;

	(void)state;
	memset(&o, 0xa5, sizeof(o));
	bs_ram_dev_opts_init(&o);
	assert_int_equal(o.opts_size, sizeof(o));
	assert_int_equal(o.block_len, 512);
	assert_int_equal(o.block_count, 0);
	assert_int_equal(o.order, BS_RAM_ORDER_FIFO);
	assert_true(o.volatile_cache);
	assert_true(o.enable_copy);
	assert_null(o.image);
}

static void test_geometry(void **state)
{
	struct env *e = *state;
	struct bs_ram_dev_opts o;
	struct bs_dev *d2;

	assert_int_equal(strncmp(e->dev->name, "ram", 3), 0);
	assert_int_equal(e->dev->block_len, e->block_len);
	assert_int_equal(e->dev->block_count, DEF_BLOCKS);
	assert_int_equal(e->dev->phys_block_len, e->block_len);
	assert_int_equal(e->dev->atomic_write_len, e->block_len);
	assert_int_equal(e->dev->buf_align, 1);
	assert_int_equal(e->dev->flags, BS_DEV_F_UNMAP_ZEROES | BS_DEV_F_VOLATILE_CACHE);
	assert_true(e->dev->max_queue_depth >= 1024);
	assert_true(bs_dev_has_copy(e->dev));
	assert_ptr_not_equal(bs_ram_dev_view(e->dev), bs_ram_dev_durable(e->dev));

	default_opts(e, &o);
	o.phys_block_len = 65536;
	o.atomic_write_len = 4 * e->block_len;
	o.volatile_cache = false;
	o.enable_copy = false;
	assert_int_equal(bs_ram_dev_create(&o, &d2), 0);
	assert_string_not_equal(d2->name, e->dev->name);
	assert_int_equal(d2->phys_block_len, 65536);
	assert_int_equal(d2->atomic_write_len, 4 * e->block_len);
	assert_int_equal(d2->flags, BS_DEV_F_UNMAP_ZEROES);
	assert_false(bs_dev_has_copy(d2));
	assert_ptr_equal(bs_ram_dev_view(d2), bs_ram_dev_durable(d2));
	env_close_dev(e, d2, NULL);
}

/* A caller built against a shorter opts struct gets defaults for the rest. */
static void test_opts_size_short(void **state)
{
	struct env *e = *state;
	struct bs_ram_dev_opts o;

	default_opts(e, &o);
	o.opts_size = offsetof(struct bs_ram_dev_opts, block_count) + sizeof(o.block_count);
	o.volatile_cache = false;	/* beyond opts_size: ignored */
	env_reopen(e, &o);
	assert_true(e->dev->flags & BS_DEV_F_VOLATILE_CACHE);
	assert_int_equal(e->dev->atomic_write_len, e->block_len);
}

static void test_image(void **state)
{
	struct env *e = *state;
	struct bs_ram_dev_opts o;
	size_t size = (size_t)e->block_len * DEF_BLOCKS;
	uint8_t *img = xmalloc(size), *rbuf = xmalloc(size);

	fill_pattern(img, size, 42);
	default_opts(e, &o);
	o.image = img;
	env_reopen(e, &o);
	assert_memory_equal(bs_ram_dev_view(e->dev), img, size);
	assert_memory_equal(bs_ram_dev_durable(e->dev), img, size);
	assert_int_equal(dev_read(e, rbuf, 0, DEF_BLOCKS), 0);
	assert_memory_equal(rbuf, img, size);
	free(rbuf);
	free(img);
}

/* A multi-GiB device costs only what is touched (lazy, NORESERVE mappings). */
static void test_sparse_large(void **state)
{
	struct env *e = *state;
	struct bs_ram_dev_opts o;
	uint64_t last;
	uint8_t *wbuf, *rbuf;

	default_opts(e, &o);
	o.block_count = (4ull << 30) / e->block_len;
	env_reopen(e, &o);
	last = e->nblocks - 1;
	wbuf = xmalloc(e->bl);
	rbuf = xmalloc(e->bl);
	fill_pattern(wbuf, e->bl, 7);
	assert_int_equal(dev_write(e, wbuf, last, 1), 0);
	assert_int_equal(dev_flush(e), 0);
	assert_int_equal(dev_read(e, rbuf, last, 1), 0);
	assert_memory_equal(rbuf, wbuf, e->bl);
	assert_memory_equal(bs_ram_dev_durable(e->dev) + last * e->bl, wbuf, e->bl);
	assert_int_equal(dev_read(e, rbuf, last / 2, 1), 0);
	memset(wbuf, 0, e->bl);
	assert_memory_equal(rbuf, wbuf, e->bl);
	free(wbuf);
	free(rbuf);
}

/* ------------------------------------------------------------------------
 * Data round-trips
 * ------------------------------------------------------------------------ */

static void test_read_write(void **state)
{
	struct env *e = *state;
	uint8_t *wbuf = xmalloc(e->size), *rbuf = xmalloc(e->size + 1);

	fill_pattern(wbuf, e->size, 1);
	/* Odd-sized pieces, one of them last on the device. */
	assert_int_equal(dev_write(e, wbuf, 0, 3), 0);
	assert_int_equal(dev_write(e, wbuf + 3 * e->bl, 3, 1), 0);
	assert_int_equal(dev_write(e, wbuf + 4 * e->bl, 4, e->nblocks - 4), 0);
	assert_memory_equal(bs_ram_dev_view(e->dev), wbuf, e->size);
	/* buf_align is 1: a misaligned buffer is fine. */
	assert_int_equal(dev_read(e, rbuf + 1, 0, e->nblocks), 0);
	assert_memory_equal(rbuf + 1, wbuf, e->size);
	memset(rbuf, 0, e->size);
	assert_int_equal(dev_read(e, rbuf, e->nblocks - 1, 1), 0);
	assert_memory_equal(rbuf, wbuf + e->size - e->bl, e->bl);
	free(wbuf);
	free(rbuf);
}

static void test_readv_writev(void **state)
{
	struct env *e = *state;
	uint32_t bl = e->bl;
	uint8_t *wbuf = xmalloc(4 * bl), *rbuf = xmalloc(4 * bl);
	struct iovec wiov[3] = {
		{ wbuf, bl }, { wbuf + bl, 2 * bl }, { wbuf + 3 * bl, bl },
	};
	struct iovec riov[2] = { { rbuf + 2 * bl, 2 * bl }, { rbuf, 2 * bl } };
	struct op w = { .type = BS_IO_WRITEV, .iov = wiov, .iovcnt = 3, .lba = 5, .count = 4 };
	struct op r = { .type = BS_IO_READV, .iov = riov, .iovcnt = 2, .lba = 5, .count = 4 };

	fill_pattern(wbuf, 4 * bl, 2);
	env_run(e, &w, 1);
	assert_int_equal(w.err, 0);
	assert_memory_equal(bs_ram_dev_view(e->dev) + 5 * bl, wbuf, 4 * bl);
	env_run(e, &r, 1);
	assert_int_equal(r.err, 0);
	assert_memory_equal(rbuf + 2 * bl, wbuf, 2 * bl);
	assert_memory_equal(rbuf, wbuf + 2 * bl, 2 * bl);
	free(wbuf);
	free(rbuf);
}

static void test_write_zeroes_unmap(void **state)
{
	struct env *e = *state;
	uint8_t *wbuf = xmalloc(e->size), *zero = calloc(1, e->size);
	const uint8_t *view = bs_ram_dev_view(e->dev);

	assert_non_null(zero);
	fill_pattern(wbuf, e->size, 3);
	assert_int_equal(dev_write(e, wbuf, 0, e->nblocks), 0);
	assert_int_equal(dev_flush(e), 0);
	assert_int_equal(env_io(e, BS_IO_WRITE_ZEROES, NULL, 2, 3), 0);
	assert_int_equal(env_io(e, BS_IO_UNMAP, NULL, 10, 4), 0);
	assert_memory_equal(view, wbuf, 2 * e->bl);
	assert_memory_equal(view + 2 * e->bl, zero, 3 * e->bl);
	assert_memory_equal(view + 5 * e->bl, wbuf + 5 * e->bl, 5 * e->bl);
	assert_memory_equal(view + 10 * e->bl, zero, 4 * e->bl);
	assert_memory_equal(view + 14 * e->bl, wbuf + 14 * e->bl, e->size - 14 * e->bl);
	/* Volatile like writes: durable only after a flush. */
	assert_int_equal(bs_ram_dev_volatile_writes(e->dev), 2);
	assert_memory_equal(bs_ram_dev_durable(e->dev), wbuf, e->size);
	assert_int_equal(dev_flush(e), 0);
	assert_int_equal(bs_ram_dev_volatile_writes(e->dev), 0);
	assert_memory_equal(bs_ram_dev_durable(e->dev), view, e->size);
	free(wbuf);
	free(zero);
}

static void test_copy(void **state)
{
	struct env *e = *state;
	uint32_t bl = e->bl;
	uint8_t *wbuf = xmalloc(e->size), *rbuf = xmalloc(4 * bl);
	struct bs_ram_dev_opts o;

	fill_pattern(wbuf, e->size, 4);
	assert_int_equal(dev_write(e, wbuf, 0, e->nblocks), 0);
	assert_int_equal(dev_flush(e), 0);
	assert_int_equal(dev_copy(e, 40, 3, 4), 0);
	assert_int_equal(dev_read(e, rbuf, 40, 4), 0);
	assert_memory_equal(rbuf, wbuf + 3 * bl, 4 * bl);
	/* A copy is a volatile write. */
	assert_int_equal(bs_ram_dev_volatile_writes(e->dev), 1);
	assert_memory_equal(bs_ram_dev_durable(e->dev) + 40 * bl, wbuf + 40 * bl, 4 * bl);
	assert_int_equal(dev_flush(e), 0);
	assert_memory_equal(bs_ram_dev_durable(e->dev) + 40 * bl, wbuf + 3 * bl, 4 * bl);
	/* Overlapping ranges and a source past the end are refused. */
	assert_int_equal(dev_copy(e, 4, 3, 4), -EINVAL);
	assert_int_equal(dev_copy(e, 0, e->nblocks - 1, 2), -ERANGE);
	/* Without enable_copy the op is absent. */
	default_opts(e, &o);
	o.enable_copy = false;
	env_reopen(e, &o);
	assert_int_equal(dev_copy(e, 40, 3, 4), -EOPNOTSUPP);
	free(wbuf);
	free(rbuf);
}

/* Without a modelled cache every completed write is durable at once. */
static void test_no_cache(void **state)
{
	struct env *e = *state;
	struct bs_ram_dev_opts o;
	uint8_t *wbuf = xmalloc(e->size);

	default_opts(e, &o);
	o.volatile_cache = false;
	env_reopen(e, &o);
	fill_pattern(wbuf, e->size, 5);
	assert_int_equal(dev_write(e, wbuf, 0, e->nblocks), 0);
	assert_int_equal(env_io(e, BS_IO_WRITE_ZEROES, NULL, 1, 1), 0);
	assert_int_equal(dev_copy(e, 8, 20, 2), 0);
	memset(wbuf + e->bl, 0, e->bl);
	memcpy(wbuf + 8 * e->bl, wbuf + 20 * e->bl, 2 * e->bl);
	assert_int_equal(bs_ram_dev_volatile_writes(e->dev), 0);
	assert_memory_equal(bs_ram_dev_durable(e->dev), wbuf, e->size);
	assert_int_equal(dev_flush(e), 0);
	bs_ram_dev_power_cut(e->dev, BS_CUT_DROP_ALL, 1);
	assert_int_equal(dev_flush(e), -EIO);
	bs_ram_dev_power_on(e->dev);
	assert_memory_equal(bs_ram_dev_view(e->dev), wbuf, e->size);
	free(wbuf);
}

/* ------------------------------------------------------------------------
 * Completion: deferred, ordered
 * ------------------------------------------------------------------------ */

/* Every kind of IO, good and bad, completes after its submit returned. */
static void test_never_inline(void **state)
{
	struct env *e = *state;
	uint8_t *buf = xmalloc(4 * e->bl);
	struct iovec iov = { buf, 2 * e->bl };
	struct op ops[] = {
		{ .type = BS_IO_READ, .buf = buf, .lba = 0, .count = 1 },
		{ .type = BS_IO_WRITE, .buf = buf, .lba = 1, .count = 1 },
		{ .type = BS_IO_READV, .iov = &iov, .iovcnt = 1, .lba = 2, .count = 2 },
		{ .type = BS_IO_WRITEV, .iov = &iov, .iovcnt = 1, .lba = 4, .count = 2 },
		{ .type = BS_IO_FLUSH },
		{ .type = BS_IO_WRITE_ZEROES, .lba = 6, .count = 2 },
		{ .type = BS_IO_UNMAP, .lba = 8, .count = 2 },
		{ .type = BS_IO_COPY, .lba = 10, .src_lba = 0, .count = 2 },
		{ .type = BS_IO_READ, .buf = buf, .lba = 0, .count = 0 },
		{ .type = BS_IO_WRITE, .buf = buf, .lba = DEF_BLOCKS, .count = 1 },
	};
	int n = (int)(sizeof(ops) / sizeof(ops[0]));

	memset(buf, 0x5a, 4 * e->bl);
	env_run(e, ops, n);
	for (int i = 0; i < 8; i++)
		assert_int_equal(ops[i].err, 0);
	assert_int_equal(ops[8].err, -EINVAL);
	assert_int_equal(ops[9].err, -ERANGE);
	/* Injected faults and a powered-off device complete later too. */
	bs_ram_dev_inject(e->dev, BS_RAM_ANY_IO, 1, -EIO, false);
	for (int i = 0; i < 2; i++) {
		struct op op = { .type = BS_IO_WRITE, .buf = buf, .lba = 0, .count = 1 };

		env_run(e, &op, 1);
		assert_int_equal(op.err, -EIO);
		bs_ram_dev_power_cut(e->dev, BS_CUT_KEEP_ALL, 0);
	}
	bs_ram_dev_power_on(e->dev);
	free(buf);
}

static void order_ops(struct env *e, struct op *ops, uint8_t *buf)
{
	memset(ops, 0, NORDER * sizeof(*ops));
	for (int i = 0; i < NORDER; i++) {
		ops[i].type = BS_IO_READ;
		ops[i].buf = buf + (size_t)i * e->bl;
		ops[i].lba = (uint64_t)i;
		ops[i].count = 1;
	}
}

/* Submit NORDER reads in one message; return their completion ranks. */
static void run_order(struct env *e, int ranks[NORDER])
{
	uint8_t *buf = xmalloc((size_t)NORDER * e->bl);
	struct op ops[NORDER];
	int base = e->ncpl;

	order_ops(e, ops, buf);
	env_run(e, ops, NORDER);
	for (int i = 0; i < NORDER; i++) {
		assert_int_equal(ops[i].err, 0);
		ranks[i] = ops[i].rank - base;
		/* Everything pending when a poll starts completes in that poll. */
		assert_int_equal(ops[i].iter, ops[0].iter);
	}
	free(buf);
}

static void test_order_fifo(void **state)
{
	struct env *e = *state;
	int ranks[NORDER];

	run_order(e, ranks);
	for (int i = 0; i < NORDER; i++)
		assert_int_equal(ranks[i], i);
}

static void test_order_lifo(void **state)
{
	struct env *e = *state;
	int ranks[NORDER];

	bs_ram_dev_set_order(e->dev, BS_RAM_ORDER_LIFO, 0);
	run_order(e, ranks);
	for (int i = 0; i < NORDER; i++)
		assert_int_equal(ranks[i], NORDER - 1 - i);
	bs_ram_dev_set_order(e->dev, BS_RAM_ORDER_FIFO, 0);
	run_order(e, ranks);
	for (int i = 0; i < NORDER; i++)
		assert_int_equal(ranks[i], i);
}

static bool ranks_identity(const int ranks[NORDER], bool reversed)
{
	for (int i = 0; i < NORDER; i++) {
		if (ranks[i] != (reversed ? NORDER - 1 - i : i))
			return false;
	}
	return true;
}

static void test_order_random(void **state)
{
	struct env *e = *state;
	int first[NORDER], again[NORDER], other[NORDER];
	bool seen[NORDER];
	int differ = 0;

	bs_ram_dev_set_order(e->dev, BS_RAM_ORDER_RANDOM, 1234);
	run_order(e, first);
	memset(seen, 0, sizeof(seen));
	for (int i = 0; i < NORDER; i++) {
		assert_true(first[i] >= 0 && first[i] < NORDER);
		assert_false(seen[first[i]]);
		seen[first[i]] = true;
	}
	assert_false(ranks_identity(first, false));
	assert_false(ranks_identity(first, true));
	/* Same seed, same order; other seeds, other orders. */
	bs_ram_dev_set_order(e->dev, BS_RAM_ORDER_RANDOM, 1234);
	run_order(e, again);
	assert_memory_equal(first, again, sizeof(first));
	for (uint64_t seed = 1; seed <= 8; seed++) {
		bs_ram_dev_set_order(e->dev, BS_RAM_ORDER_RANDOM, seed);
		run_order(e, other);
		differ += memcmp(first, other, sizeof(first)) != 0;
	}
	assert_true(differ >= 7);
}

/* IO submitted by a completion waits for the next poll (no starvation loop). */
static void test_completion_submits(void **state)
{
	struct env *e = *state;
	uint8_t *buf = xmalloc(e->bl);
	struct op second = { .type = BS_IO_READ, .buf = buf, .lba = 1, .count = 1 };
	struct op first = { .type = BS_IO_READ, .buf = buf, .lba = 0, .count = 1,
			    .chain = &second };

	second.env = e;
	bs_ram_dev_set_order(e->dev, BS_RAM_ORDER_LIFO, 0);
	env_run(e, &first, 1);
	assert_int_equal(first.err, 0);
	assert_int_equal(second.err, 0);
	assert_true(second.iter > first.iter);
	assert_false(second.done_inline);
	free(buf);
}

/* ------------------------------------------------------------------------
 * Fault injection
 * ------------------------------------------------------------------------ */

static void test_fault_once(void **state)
{
	struct env *e = *state;
	uint8_t *wbuf = xmalloc(e->bl), *before = xmalloc(e->size);
	struct iovec iov = { wbuf, e->bl };
	uint64_t nvol;
	struct op w[4] = {
		{ .type = BS_IO_WRITE, .buf = wbuf, .lba = 0, .count = 1 },
		{ .type = BS_IO_WRITEV, .iov = &iov, .iovcnt = 1, .lba = 1, .count = 1 },
		{ .type = BS_IO_WRITE, .buf = wbuf, .lba = 2, .count = 1 },
		{ .type = BS_IO_WRITEV, .iov = &iov, .iovcnt = 1, .lba = 3, .count = 1 },
	};

	fill_pattern(wbuf, e->bl, 6);
	/* Earlier IO does not count: nth is counted from the injection. */
	for (int i = 0; i < 5; i++)
		assert_int_equal(dev_write(e, wbuf, 10, 1), 0);
	bs_ram_dev_inject(e->dev, BS_IO_WRITE, 3, -EIO, false);
	env_run(e, w, 2);
	assert_int_equal(w[0].err, 0);
	assert_int_equal(w[1].err, 0);
	memcpy(before, bs_ram_dev_view(e->dev), e->size);
	nvol = bs_ram_dev_volatile_writes(e->dev);
	env_run(e, &w[2], 1);
	assert_int_equal(w[2].err, -EIO);
	/* A failed write changes neither the view nor the cache. */
	assert_memory_equal(bs_ram_dev_view(e->dev), before, e->size);
	assert_int_equal(bs_ram_dev_volatile_writes(e->dev), nvol);
	env_run(e, &w[3], 1);
	assert_int_equal(w[3].err, 0);
	assert_int_equal(dev_read(e, before, 0, 1), 0);
	free(wbuf);
	free(before);
}

static void test_fault_persistent(void **state)
{
	struct env *e = *state;
	uint8_t *buf = xmalloc(e->bl);
	struct iovec iov = { buf, e->bl };
	struct op rv = { .type = BS_IO_READV, .iov = &iov, .iovcnt = 1, .lba = 0, .count = 1 };

	bs_ram_dev_inject(e->dev, BS_IO_READV, 2, -EIO, true);
	assert_int_equal(dev_read(e, buf, 0, 1), 0);
	env_run(e, &rv, 1);
	assert_int_equal(rv.err, -EIO);
	for (int i = 0; i < 3; i++)
		assert_int_equal(dev_read(e, buf, 0, 1), -EIO);
	/* Other kinds are unaffected. */
	assert_int_equal(dev_write(e, buf, 0, 1), 0);
	assert_int_equal(dev_flush(e), 0);
	bs_ram_dev_clear_faults(e->dev);
	assert_int_equal(dev_read(e, buf, 0, 1), 0);
	free(buf);
}

static void test_fault_any_enospc(void **state)
{
	struct env *e = *state;
	uint8_t *buf = xmalloc(e->bl);

	memset(buf, 0x77, e->bl);
	bs_ram_dev_inject(e->dev, BS_RAM_ANY_IO, 3, -ENOSPC, false);
	assert_int_equal(dev_read(e, buf, 0, 1), 0);
	assert_int_equal(dev_flush(e), 0);
	assert_int_equal(dev_write(e, buf, 0, 1), -ENOSPC);
	assert_int_equal(bs_ram_dev_view(e->dev)[0], 0);
	assert_int_equal(dev_write(e, buf, 0, 1), 0);
	/* Persistent ANY fails everything until cleared. */
	bs_ram_dev_inject(e->dev, BS_RAM_ANY_IO, 1, -ENOSPC, true);
	assert_int_equal(dev_read(e, buf, 0, 1), -ENOSPC);
	assert_int_equal(dev_flush(e), -ENOSPC);
	assert_int_equal(env_io(e, BS_IO_UNMAP, NULL, 0, 1), -ENOSPC);
	bs_ram_dev_clear_faults(e->dev);
	assert_int_equal(dev_flush(e), 0);
	free(buf);
}

/* One injection per kind; flush, write_zeroes, unmap and copy each fail alone. */
static void test_fault_kinds(void **state)
{
	struct env *e = *state;
	uint8_t *wbuf = xmalloc(e->bl);
	int lines = 0;

	fill_pattern(wbuf, e->bl, 8);
	assert_int_equal(dev_write(e, wbuf, 0, 1), 0);
	bs_ram_dev_inject(e->dev, BS_IO_FLUSH, 1, -EIO, false);
	assert_int_equal(dev_flush(e), -EIO);
	/* A failed flush makes nothing durable. */
	assert_int_equal(bs_ram_dev_volatile_writes(e->dev), 1);
	assert_memory_not_equal(bs_ram_dev_durable(e->dev), wbuf, e->bl);
	assert_int_equal(dev_flush(e), 0);
	assert_memory_equal(bs_ram_dev_durable(e->dev), wbuf, e->bl);
	assert_int_equal(bs_ram_dev_volatile_writes(e->dev), 0);

	bs_ram_dev_inject(e->dev, BS_IO_WRITE_ZEROES, 1, -EIO, false);
	bs_ram_dev_inject(e->dev, BS_IO_UNMAP, 1, -ENOSPC, false);
	bs_ram_dev_inject(e->dev, BS_IO_COPY, 1, -EIO, false);
	assert_int_equal(dev_write(e, wbuf, 1, 1), 0);
	assert_int_equal(dev_copy(e, 5, 0, 1), -EIO);
	assert_int_equal(env_io(e, BS_IO_UNMAP, NULL, 0, 1), -ENOSPC);
	assert_int_equal(env_io(e, BS_IO_WRITE_ZEROES, NULL, 0, 1), -EIO);
	assert_memory_equal(bs_ram_dev_view(e->dev), wbuf, e->bl);
	assert_int_equal(env_io(e, BS_IO_WRITE_ZEROES, NULL, 0, 1), 0);
	/* A new injection for a kind replaces the old one. */
	bs_ram_dev_inject(e->dev, BS_IO_WRITE, 1, -EIO, false);
	bs_ram_dev_inject(e->dev, BS_IO_WRITE, 2, -ENOSPC, false);
	assert_int_equal(dev_write(e, wbuf, 0, 1), 0);
	assert_int_equal(dev_write(e, wbuf, 0, 1), -ENOSPC);
	/* Nonsense injections are refused with one log line each. */
	bs_log_set_hook(count_errors_hook, &lines);
	bs_ram_dev_inject(e->dev, BS_IO_NTYPES, 1, -EIO, false);
	bs_ram_dev_inject(e->dev, BS_IO_READ, 0, -EIO, false);
	bs_ram_dev_inject(e->dev, BS_IO_READ, 1, 0, false);
	bs_log_set_hook(NULL, NULL);
	assert_int_equal(lines, 3);
	assert_int_equal(dev_read(e, wbuf, 0, 1), 0);
	free(wbuf);
}

/* ------------------------------------------------------------------------
 * Bad input through the wrappers
 * ------------------------------------------------------------------------ */

static void test_bad_input(void **state)
{
	struct env *e = *state;
	uint64_t nb = e->nblocks;
	uint8_t *buf = xmalloc(2 * e->bl);
	struct iovec short_iov[2] = { { buf, e->bl }, { buf + e->bl, e->bl / 2 } };
	struct iovec null_iov = { NULL, e->bl };
	struct op ops[] = {
		{ .type = BS_IO_READ, .buf = buf, .lba = 0, .count = 0 },
		{ .type = BS_IO_WRITE, .buf = buf, .lba = nb, .count = 1 },
		{ .type = BS_IO_WRITE, .buf = buf, .lba = nb - 1, .count = 2 },
		{ .type = BS_IO_READ, .buf = buf, .lba = UINT64_MAX, .count = 2 },
		{ .type = BS_IO_READ, .buf = buf, .lba = 1, .count = UINT64_MAX },
		{ .type = BS_IO_WRITEV, .iov = short_iov, .iovcnt = 2, .lba = 0, .count = 2 },
		{ .type = BS_IO_READV, .iov = short_iov, .iovcnt = 0, .lba = 0, .count = 1 },
		{ .type = BS_IO_READV, .iov = short_iov, .iovcnt = -1, .lba = 0, .count = 1 },
		{ .type = BS_IO_READV, .iov = NULL, .iovcnt = 1, .lba = 0, .count = 1 },
		{ .type = BS_IO_WRITEV, .iov = &null_iov, .iovcnt = 1, .lba = 0, .count = 1 },
		{ .type = BS_IO_WRITE_ZEROES, .lba = nb - 1, .count = 2 },
		{ .type = BS_IO_UNMAP, .lba = 0, .count = 0 },
		{ .type = BS_IO_COPY, .lba = 0, .src_lba = nb, .count = 1 },
		{ .type = BS_IO_COPY, .lba = nb, .src_lba = 0, .count = 1 },
	};
	static const int want[] = {
		-EINVAL, -ERANGE, -ERANGE, -ERANGE, -ERANGE, -EINVAL, -EINVAL,
		-EINVAL, -EINVAL, -EINVAL, -ERANGE, -EINVAL, -ERANGE, -ERANGE,
	};
	int n = (int)(sizeof(ops) / sizeof(ops[0]));
	int lines = 0;
	struct bs_ram_dev_stats st;

	bs_log_set_hook(count_errors_hook, &lines);
	env_run(e, ops, n);
	bs_log_set_hook(NULL, NULL);
	for (int i = 0; i < n; i++)
		assert_int_equal(ops[i].err, want[i]);
	assert_int_equal(lines, n);
	/* Nothing reached the device. */
	bs_ram_dev_get_stats(e->dev, &st);
	for (int i = 0; i < BS_IO_NTYPES; i++)
		assert_int_equal(st.ops[i], 0);
	assert_int_equal(bs_ram_dev_volatile_writes(e->dev), 0);
	free(buf);
}

/* ------------------------------------------------------------------------
 * Volatile write cache
 * ------------------------------------------------------------------------ */

static void test_cache_flush(void **state)
{
	struct env *e = *state;
	uint8_t *wbuf = xmalloc(4 * e->bl);
	const uint8_t *durable = bs_ram_dev_durable(e->dev);

	fill_pattern(wbuf, 4 * e->bl, 9);
	assert_int_equal(dev_write(e, wbuf, 8, 4), 0);
	/* Completed: visible, not durable. */
	assert_memory_equal(bs_ram_dev_view(e->dev) + 8 * e->bl, wbuf, 4 * e->bl);
	assert_int_equal(durable[8 * e->bl], 0);
	assert_int_equal(bs_ram_dev_volatile_writes(e->dev), 1);
	assert_int_equal(dev_flush(e), 0);
	assert_memory_equal(durable + 8 * e->bl, wbuf, 4 * e->bl);
	assert_int_equal(bs_ram_dev_volatile_writes(e->dev), 0);
	/* A flush with nothing to do is fine. */
	assert_int_equal(dev_flush(e), 0);
	free(wbuf);
}

/* A write still in flight when a flush is issued is not covered by it. */
static void test_cache_inflight_not_covered(void **state)
{
	struct env *e = *state;
	uint8_t *wbuf = xmalloc(e->bl);
	struct op ops[2] = {
		{ .type = BS_IO_WRITE, .buf = wbuf, .lba = 3, .count = 1 },
		{ .type = BS_IO_FLUSH },
	};
	struct op flush2 = { .type = BS_IO_FLUSH };
	struct op w2 = { .type = BS_IO_WRITE, .buf = wbuf, .lba = 4, .count = 1,
			 .chain = &flush2 };

	fill_pattern(wbuf, e->bl, 10);
	env_run(e, ops, 2);
	assert_int_equal(ops[0].err, 0);
	assert_int_equal(ops[1].err, 0);
	assert_true(ops[0].rank < ops[1].rank);
	assert_int_equal(bs_ram_dev_volatile_writes(e->dev), 1);
	assert_int_equal(bs_ram_dev_durable(e->dev)[3 * e->bl], 0);
	/* A flush issued from the write's own completion covers it. */
	flush2.env = e;
	env_run(e, &w2, 1);
	assert_int_equal(flush2.err, 0);
	assert_memory_equal(bs_ram_dev_durable(e->dev) + 3 * e->bl, wbuf, e->bl);
	assert_memory_equal(bs_ram_dev_durable(e->dev) + 4 * e->bl, wbuf, e->bl);
	assert_int_equal(bs_ram_dev_volatile_writes(e->dev), 0);
	free(wbuf);
}

/*
 * Overlapping writes E (older) and N (newer) complete newest first; a flush
 * issued between the two completions covers N only. When E becomes durable
 * later it must not overwrite N: reads and every power-cut image keep N.
 */
static void test_cache_late_durable_older_write(void **state)
{
	struct env *e = *state;
	uint32_t bl = e->bl;
	uint8_t *a = xmalloc(4 * bl), *b = xmalloc(4 * bl), *view = xmalloc(e->size);
	struct op f1 = { .type = BS_IO_FLUSH };
	struct op ops[2] = {
		{ .type = BS_IO_WRITE, .buf = a, .lba = 0, .count = 4 },
		{ .type = BS_IO_WRITE, .buf = b, .lba = 2, .count = 4, .chain = &f1 },
	};
	const uint8_t *durable = bs_ram_dev_durable(e->dev);

	fill_pattern(a, 4 * bl, 11);
	fill_pattern(b, 4 * bl, 12);
	f1.env = e;
	bs_ram_dev_set_order(e->dev, BS_RAM_ORDER_LIFO, 0);
	env_run(e, ops, 2);
	assert_true(ops[1].rank < ops[0].rank);
	assert_true(ops[0].rank < f1.rank);
	assert_int_equal(bs_ram_dev_volatile_writes(e->dev), 1);
	assert_memory_equal(durable + 2 * bl, b, 4 * bl);
	assert_int_equal(durable[0], 0);
	memcpy(view, bs_ram_dev_view(e->dev), e->size);
	assert_memory_equal(view, a, 2 * bl);
	assert_memory_equal(view + 2 * bl, b, 4 * bl);
	/* A torn cut keeps the durable newer write; E's own part may go. */
	bs_ram_dev_power_cut(e->dev, BS_CUT_TEAR_ALL, 99);
	bs_ram_dev_power_on(e->dev);
	assert_memory_equal(bs_ram_dev_view(e->dev) + 2 * bl, b, 4 * bl);
	assert_memory_equal(bs_ram_dev_view(e->dev), durable, e->size);
	/* Same again, but let E become durable too. */
	op_reset(&ops[0]);
	op_reset(&ops[1]);
	op_reset(&f1);
	env_run(e, ops, 2);
	assert_int_equal(bs_ram_dev_volatile_writes(e->dev), 1);
	assert_int_equal(dev_flush(e), 0);
	assert_int_equal(bs_ram_dev_volatile_writes(e->dev), 0);
	assert_memory_equal(durable, view, e->size);
	assert_memory_equal(bs_ram_dev_view(e->dev), view, e->size);
	free(a);
	free(b);
	free(view);
}

/* ------------------------------------------------------------------------
 * Power cut
 * ------------------------------------------------------------------------ */

static void cut_fn(struct env *e, void *arg)
{
	const int *mode = arg;

	bs_ram_dev_power_cut(e->dev, (enum bs_power_cut_mode)mode[0], (uint64_t)mode[1]);
}

/* IO in flight at a cut and IO submitted while off fail; power_on restores. */
static void test_power_cut_fails_io(void **state)
{
	struct env *e = *state;
	uint8_t *wbuf = xmalloc(e->bl), *rbuf = xmalloc(e->bl);
	int cut[2] = { BS_CUT_KEEP_ALL, 0 };
	struct op ops[3] = {
		{ .type = BS_IO_WRITE, .buf = wbuf, .lba = 5, .count = 1 },
		{ .type = BS_IO_READ, .buf = rbuf, .lba = 5, .count = 1 },
		{ .type = BS_IO_FLUSH },
	};
	struct step s = { .ops = ops, .nops = 3, .after = cut_fn, .after_arg = cut };
	struct bs_ram_dev_stats st;

	fill_pattern(wbuf, e->bl, 13);
	env_step(e, &s);
	for (int i = 0; i < 3; i++)
		assert_int_equal(ops[i].err, -EIO);
	/* KEEP_ALL: the in-flight write landed, and is now durable. */
	assert_memory_equal(bs_ram_dev_durable(e->dev) + 5 * e->bl, wbuf, e->bl);
	assert_int_equal(bs_ram_dev_volatile_writes(e->dev), 0);
	assert_int_equal(dev_read(e, rbuf, 0, 1), -EIO);
	assert_int_equal(dev_write(e, wbuf, 0, 1), -EIO);
	assert_int_equal(env_io(e, BS_IO_WRITE_ZEROES, NULL, 5, 1), -EIO);
	assert_int_equal(dev_flush(e), -EIO);
	assert_int_equal(bs_ram_dev_view(e->dev)[0], 0);
	bs_ram_dev_get_stats(e->dev, &st);
	assert_int_equal(st.failed, 7);
	bs_ram_dev_power_on(e->dev);
	assert_int_equal(dev_read(e, rbuf, 5, 1), 0);
	assert_memory_equal(rbuf, wbuf, e->bl);
	assert_int_equal(dev_write(e, wbuf, 0, 1), 0);
	free(wbuf);
	free(rbuf);
}

static void cut_and_on_fn(struct env *e, void *arg)
{
	bs_ram_dev_power_cut(e->dev, BS_CUT_DROP_ALL, 0);
	bs_ram_dev_power_on(e->dev);
}

/* IO issued before a cut fails even if power is back when it completes. */
static void test_power_cut_straddle(void **state)
{
	struct env *e = *state;
	uint8_t *wbuf = xmalloc(e->bl);
	struct op w = { .type = BS_IO_WRITE, .buf = wbuf, .lba = 0, .count = 1 };
	struct step s = { .ops = &w, .nops = 1, .after = cut_and_on_fn };

	fill_pattern(wbuf, e->bl, 14);
	env_step(e, &s);
	assert_int_equal(w.err, -EIO);
	assert_int_equal(bs_ram_dev_view(e->dev)[0], 0);
	assert_int_equal(dev_write(e, wbuf, 0, 1), 0);
	free(wbuf);
}

/* Base image flushed, three volatile writes; KEEP_ALL and DROP_ALL exactly. */
static void test_power_cut_keep_drop(void **state)
{
	struct env *e = *state;
	uint8_t *base = xmalloc(e->size), *w = xmalloc(8 * e->bl), *view = xmalloc(e->size);

	fill_pattern(base, e->size, 15);
	fill_pattern(w, 8 * e->bl, 16);
	for (int mode = BS_CUT_KEEP_ALL; mode <= BS_CUT_DROP_ALL; mode++) {
		assert_int_equal(dev_write(e, base, 0, e->nblocks), 0);
		assert_int_equal(dev_flush(e), 0);
		assert_int_equal(dev_write(e, w, 1, 4), 0);
		assert_int_equal(env_io(e, BS_IO_UNMAP, NULL, 3, 4), 0);
		assert_int_equal(dev_copy(e, 20, 1, 8), 0);
		assert_int_equal(bs_ram_dev_volatile_writes(e->dev), 3);
		memcpy(view, bs_ram_dev_view(e->dev), e->size);
		bs_ram_dev_power_cut(e->dev, (enum bs_power_cut_mode)mode, 5);
		assert_int_equal(bs_ram_dev_volatile_writes(e->dev), 0);
		assert_memory_equal(bs_ram_dev_view(e->dev), bs_ram_dev_durable(e->dev),
				    e->size);
		assert_memory_equal(bs_ram_dev_view(e->dev),
				    mode == BS_CUT_KEEP_ALL ? view : base, e->size);
		bs_ram_dev_power_on(e->dev);
	}
	free(base);
	free(w);
	free(view);
}

#define CUT_BLOCKS 8
#define CUT_MAX_SECTORS (CUT_BLOCKS * 4096 / 512)
#define CUT_SEEDS 256

/* Three overlapping writes (blocks 0-4, 2-6, 3-7) over a flushed base. */
struct cut_world {
	uint8_t *base;
	uint8_t *w[3];
	uint64_t lba[3];
	uint64_t count[3];
	uint32_t nsect;
	bool seen[CUT_MAX_SECTORS][4];	/* candidate 0 = durable, k = write k */
	int full_drop;			/* cuts that dropped every write */
	int torn;			/* cuts that tore write 1 (blocks 0-1 alone) */
};

/* The bytes candidate @p c would leave in sector @p s, or NULL if none. */
static const uint8_t *cut_candidate(const struct cut_world *cw, uint32_t bl, int c,
				    uint32_t s)
{
	uint64_t first, last;

	if (c == 0)
		return cw->base + (size_t)s * 512;
	first = cw->lba[c - 1] * bl / 512;
	last = first + cw->count[c - 1] * bl / 512;
	if (s < first || s >= last)
		return NULL;
	return cw->w[c - 1] + (size_t)(s - first) * 512;
}

/* Every sector of the post-cut image must be one allowed candidate. */
static void cut_check_image(struct env *e, struct cut_world *cw, const uint8_t *img)
{
	uint32_t own = (uint32_t)(2 * e->bl / 512);	/* sectors only write 1 covers */
	int whole_drop = 1, own_kept = 0;

	for (uint32_t s = 0; s < cw->nsect; s++) {
		int match = -1;

		for (int c = 3; c >= 0 && match < 0; c--) {
			const uint8_t *cand = cut_candidate(cw, e->bl, c, s);

			if (cand != NULL && memcmp(img + (size_t)s * 512, cand, 512) == 0)
				match = c;
		}
		assert_true(match >= 0);
		cw->seen[s][match] = true;
		whole_drop &= match == 0;
		own_kept += s < own && match == 1;
	}
	cw->full_drop += whole_drop;
	cw->torn += own_kept > 0 && own_kept < (int)own;
}

static void cut_world_init(struct env *e, struct cut_world *cw)
{
	static const uint64_t lba[3] = { 0, 2, 3 }, count[3] = { 5, 5, 5 };

	memset(cw, 0, sizeof(*cw));
	cw->nsect = (uint32_t)(e->size / 512);
	cw->base = xmalloc(e->size);
	fill_pattern(cw->base, e->size, 100);
	for (int k = 0; k < 3; k++) {
		cw->lba[k] = lba[k];
		cw->count[k] = count[k];
		cw->w[k] = xmalloc(count[k] * e->bl);
		fill_pattern(cw->w[k], count[k] * e->bl, 101 + (uint64_t)k);
	}
}

static void cut_world_free(struct cut_world *cw)
{
	free(cw->base);
	for (int k = 0; k < 3; k++)
		free(cw->w[k]);
}

/*
 * One trial: flush the base, complete writes 1 and 2, then cut while write 3
 * is still in flight. Returns whether the image equals "everything kept".
 */
static bool cut_trial(struct env *e, struct cut_world *cw, int mode, uint64_t seed,
		      uint8_t *keep_img)
{
	int cut[2] = { mode, (int)seed };
	struct op ws[3];
	struct step s3 = { .ops = &ws[2], .nops = 1, .after = cut_fn, .after_arg = cut };

	bs_ram_dev_power_on(e->dev);
	assert_int_equal(dev_write(e, cw->base, 0, e->nblocks), 0);
	assert_int_equal(dev_flush(e), 0);
	memset(ws, 0, sizeof(ws));
	for (int k = 0; k < 3; k++) {
		ws[k].type = BS_IO_WRITE;
		ws[k].buf = cw->w[k];
		ws[k].lba = cw->lba[k];
		ws[k].count = cw->count[k];
	}
	env_run(e, ws, 2);
	env_step(e, &s3);
	assert_int_equal(ws[2].err, -EIO);
	assert_memory_equal(bs_ram_dev_view(e->dev), bs_ram_dev_durable(e->dev), e->size);
	cut_check_image(e, cw, bs_ram_dev_view(e->dev));
	return memcmp(bs_ram_dev_view(e->dev), keep_img, e->size) == 0;
}

/*
 * The allowed-image property, both directions: over many seeds every
 * sector of every post-cut image is its durable content or one covering
 * volatile write's content, and every such choice shows up at least once.
 */
static void run_cut_property(struct env *e, int mode)
{
	struct cut_world *cw = calloc(1, sizeof(*cw));
	struct bs_ram_dev_opts o;
	uint8_t *keep_img;
	int full_keep = 0;

	assert_non_null(cw);
	default_opts(e, &o);
	o.block_count = CUT_BLOCKS;
	env_reopen(e, &o);
	cut_world_init(e, cw);
	keep_img = xmalloc(e->size);
	memcpy(keep_img, cw->base, e->size);
	for (int k = 0; k < 3; k++)
		memcpy(keep_img + cw->lba[k] * e->bl, cw->w[k], cw->count[k] * e->bl);
	for (uint64_t seed = 1; seed <= CUT_SEEDS; seed++)
		full_keep += cut_trial(e, cw, mode, seed, keep_img);
	for (uint32_t s = 0; s < cw->nsect; s++) {
		for (int c = 0; c < 4; c++) {
			bool allowed = cut_candidate(cw, e->bl, c, s) != NULL;

			assert_int_equal(cw->seen[s][c], allowed);
		}
	}
	if (mode == BS_CUT_RANDOM) {
		assert_true(full_keep > 0);
		assert_true(cw->full_drop > 0);
	}
	assert_true(cw->torn > 0);
	assert_true(full_keep < CUT_SEEDS);
	bs_ram_dev_power_on(e->dev);
	free(keep_img);
	cut_world_free(cw);
	free(cw);
}

static void test_power_cut_tear_property(void **state)
{
	run_cut_property(*state, BS_CUT_TEAR_ALL);
}

static void test_power_cut_random_property(void **state)
{
	run_cut_property(*state, BS_CUT_RANDOM);
}

/* ------------------------------------------------------------------------
 * Statistics
 * ------------------------------------------------------------------------ */

static void test_stats(void **state)
{
	struct env *e = *state;
	uint32_t bl = e->bl;
	uint8_t *buf = xmalloc(4 * bl);
	struct iovec iov = { buf, 2 * bl };
	struct op rv = { .type = BS_IO_READV, .iov = &iov, .iovcnt = 1, .lba = 0, .count = 2 };
	struct op wv = { .type = BS_IO_WRITEV, .iov = &iov, .iovcnt = 1, .lba = 0, .count = 2 };
	struct bs_ram_dev_stats st;

	memset(buf, 1, 4 * bl);
	assert_int_equal(dev_write(e, buf, 0, 4), 0);
	assert_int_equal(dev_read(e, buf, 0, 3), 0);
	env_run(e, &rv, 1);
	env_run(e, &wv, 1);
	assert_int_equal(dev_flush(e), 0);
	assert_int_equal(env_io(e, BS_IO_WRITE_ZEROES, NULL, 0, 1), 0);
	assert_int_equal(env_io(e, BS_IO_UNMAP, NULL, 0, 5), 0);
	assert_int_equal(dev_copy(e, 10, 0, 3), 0);
	bs_ram_dev_inject(e->dev, BS_IO_READ, 1, -EIO, false);
	assert_int_equal(dev_read(e, buf, 0, 1), -EIO);
	bs_ram_dev_get_stats(e->dev, &st);
	assert_int_equal(st.ops[BS_IO_WRITE], 1);
	assert_int_equal(st.ops[BS_IO_READ], 1);
	assert_int_equal(st.ops[BS_IO_READV], 1);
	assert_int_equal(st.ops[BS_IO_WRITEV], 1);
	assert_int_equal(st.ops[BS_IO_FLUSH], 1);
	assert_int_equal(st.ops[BS_IO_WRITE_ZEROES], 1);
	assert_int_equal(st.ops[BS_IO_UNMAP], 1);
	assert_int_equal(st.ops[BS_IO_COPY], 1);
	assert_int_equal(st.bytes_read, 5 * bl);
	assert_int_equal(st.bytes_written, 7 * bl);
	assert_int_equal(st.bytes_copied, 3 * bl);
	assert_int_equal(st.failed, 1);
	bs_ram_dev_reset_stats(e->dev);
	bs_ram_dev_get_stats(e->dev, &st);
	assert_int_equal(st.bytes_read + st.bytes_written + st.bytes_copied + st.failed, 0);
	for (int i = 0; i < BS_IO_NTYPES; i++)
		assert_int_equal(st.ops[i], 0);
	free(buf);
}

/* ------------------------------------------------------------------------
 * Several reactor threads at once
 * ------------------------------------------------------------------------ */

#define MT_WORKERS 2
#define MT_ITERS 300
#define MT_SPAN 16

/* A reactor thread writing, reading back and flushing its own block range. */
struct worker {
	struct bs_dev *dev;
	struct bs_thread *t;
	struct bs_io_channel *ch;
	struct bs_dev_io io;
	uint64_t lba0;
	int iter;
	bool reading;
	uint8_t *wbuf;
	uint8_t *rbuf;
	uint32_t bl;
	int errors;
	atomic_bool done;
};

static void worker_next(struct worker *w);

static void worker_cpl(void *arg, int err)
{
	struct worker *w = arg;

	if (err != 0)
		w->errors++;
	if (w->reading) {
		if (memcmp(w->wbuf, w->rbuf, w->bl) != 0)
			w->errors++;
		w->iter++;
	}
	w->reading = !w->reading;
	worker_next(w);
}

static void worker_flush_cpl(void *arg, int err)
{
	struct worker *w = arg;

	if (err != 0)
		w->errors++;
	atomic_store(&w->done, true);
}

/* Write, read back, repeat; a flush at the end. */
static void worker_next(struct worker *w)
{
	uint64_t lba = w->lba0 + (uint64_t)(w->iter % MT_SPAN);

	if (w->iter == MT_ITERS) {
		bs_dev_flush(w->ch, &w->io, worker_flush_cpl, w);
	} else if (w->reading) {
		bs_dev_read(w->ch, &w->io, w->rbuf, lba, 1, worker_cpl, w);
	} else {
		fill_pattern(w->wbuf, w->bl, (uint64_t)w->iter * 31 + w->lba0);
		bs_dev_write(w->ch, &w->io, w->wbuf, lba, 1, worker_cpl, w);
	}
}

static void worker_start_msg(void *ctx)
{
	struct worker *w = ctx;

	w->ch = bs_dev_get_channel(w->dev);
	if (w->ch == NULL) {
		w->errors++;
		atomic_store(&w->done, true);
		return;
	}
	worker_next(w);
}

static void worker_stop_msg(void *ctx)
{
	struct worker *w = ctx;

	if (w->ch != NULL)
		bs_dev_put_channel(w->ch);
	atomic_store(&w->done, true);
}

static void wait_flag(atomic_bool *flag)
{
	struct timespec ts = { 0, 100000 };

	for (int i = 0; !atomic_load(flag); i++) {
		assert_true(i < 100000);
		nanosleep(&ts, NULL);
	}
}

static void test_multi_thread(void **state)
{
	struct env *e = *state;
	struct worker w[MT_WORKERS];

	bs_ram_dev_set_order(e->dev, BS_RAM_ORDER_RANDOM, 77);
	memset(w, 0, sizeof(w));
	for (int i = 0; i < MT_WORKERS; i++) {
		w[i].dev = e->dev;
		w[i].bl = e->bl;
		w[i].lba0 = (uint64_t)i * MT_SPAN;
		w[i].wbuf = xmalloc(e->bl);
		w[i].rbuf = xmalloc(e->bl);
		w[i].t = bs_thread_create("ramworker");
		assert_non_null(w[i].t);
		assert_int_equal(bs_thread_start(w[i].t), 0);
		assert_int_equal(bs_thread_send_msg(w[i].t, worker_start_msg, &w[i]), 0);
	}
	for (int i = 0; i < MT_WORKERS; i++) {
		wait_flag(&w[i].done);
		assert_int_equal(w[i].errors, 0);
		atomic_store(&w[i].done, false);
		assert_int_equal(bs_thread_send_msg(w[i].t, worker_stop_msg, &w[i]), 0);
		wait_flag(&w[i].done);
	}
	assert_memory_equal(bs_ram_dev_view(e->dev), bs_ram_dev_durable(e->dev), e->size);
	assert_int_equal(bs_ram_dev_volatile_writes(e->dev), 0);
	for (int i = 0; i < MT_WORKERS; i++) {
		bs_thread_exit(w[i].t);
		assert_int_equal(bs_thread_destroy(w[i].t), 0);
		free(w[i].wbuf);
		free(w[i].rbuf);
	}
}

#define T(f) { #f, f, env_setup, env_teardown, NULL }
#define TP(f, p) { #f "/" #p, f, env_setup, env_teardown, &p }
#define TB(f) TP(f, p512), TP(f, p4096)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_bad_opts),
		cmocka_unit_test(test_create_nomem),
		cmocka_unit_test(test_opts_defaults),
		TB(test_geometry),
		T(test_opts_size_short),
		TB(test_image),
		TB(test_sparse_large),
		TB(test_read_write),
		TB(test_readv_writev),
		TB(test_write_zeroes_unmap),
		TB(test_copy),
		TB(test_no_cache),
		T(test_never_inline),
		T(test_order_fifo),
		T(test_order_lifo),
		T(test_order_random),
		T(test_completion_submits),
		T(test_fault_once),
		T(test_fault_persistent),
		T(test_fault_any_enospc),
		T(test_fault_kinds),
		TB(test_bad_input),
		TB(test_cache_flush),
		TB(test_cache_inflight_not_covered),
		TB(test_cache_late_durable_older_write),
		TB(test_power_cut_fails_io),
		T(test_power_cut_straddle),
		TB(test_power_cut_keep_drop),
		TB(test_power_cut_tear_property),
		TB(test_power_cut_random_property),
		TB(test_stats),
		TB(test_multi_thread),
	};

	return cmocka_run_group_tests_name("ram_dev", tests, NULL, NULL);
}
