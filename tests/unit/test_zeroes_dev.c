/*
 * Zeroes device suite: geometry checks, reads fill with zeros, everything
 * that would change the contents is refused with -EROFS (by the device
 * layer, and by the backend itself when reached directly), flush succeeds,
 * and completions are never inline.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <blobstore/file_dev.h>

#include "test_helpers.h"

struct zfx {
	struct bs_thread *t;
	struct bs_dev *dev;
	struct bs_io_channel *ch;
	struct th_cpl close_cpl;
};

/* One IO on the fixture's thread. */
struct zio {
	struct zfx *z;
	enum bs_io_type type;
	void *buf;
	struct iovec *iov;
	int iovcnt;
	uint64_t lba, count;
	bool direct;		/* call the backend op, bypassing the checks */
	struct bs_dev_io io;
	struct th_cpl cpl;
	bool inline_done;
};

static void zio_direct(struct zio *x)
{
	const struct bs_dev_ops *ops = x->z->dev->ops;
	void *ctx = bs_io_channel_get_ctx(x->z->ch);
	struct bs_dev_io *io = &x->io;

	memset(io, 0, sizeof(*io));
	*io = (struct bs_dev_io){ .cb_fn = th_cpl_fn, .cb_arg = &x->cpl, .dev = x->z->dev,
				  .ch = x->z->ch, .lba = x->lba, .lba_count = x->count,
				  .type = (uint8_t)x->type };
	io->iov_one = (struct iovec){ x->buf, x->count * x->z->dev->block_len };
	io->iov = &io->iov_one;
	io->iovcnt = 1;
	switch (x->type) {
	case BS_IO_WRITE: ops->write(x->z->dev, ctx, io); break;
	case BS_IO_WRITEV: ops->writev(x->z->dev, ctx, io); break;
	case BS_IO_WRITE_ZEROES: ops->write_zeroes(x->z->dev, ctx, io); break;
	case BS_IO_UNMAP: ops->unmap(x->z->dev, ctx, io); break;
	default: fail();
	}
}

static void zio_msg(void *arg)
{
	struct zio *x = arg;
	struct bs_io_channel *ch = x->z->ch;

	if (x->direct) {
		zio_direct(x);
	} else if (x->type == BS_IO_READ) {
		bs_dev_read(ch, &x->io, x->buf, x->lba, x->count, th_cpl_fn, &x->cpl);
	} else if (x->type == BS_IO_READV) {
		bs_dev_readv(ch, &x->io, x->iov, x->iovcnt, x->lba, x->count, th_cpl_fn, &x->cpl);
	} else if (x->type == BS_IO_WRITE) {
		bs_dev_write(ch, &x->io, x->buf, x->lba, x->count, th_cpl_fn, &x->cpl);
	} else if (x->type == BS_IO_WRITE_ZEROES) {
		bs_dev_write_zeroes(ch, &x->io, x->lba, x->count, th_cpl_fn, &x->cpl);
	} else if (x->type == BS_IO_UNMAP) {
		bs_dev_unmap(ch, &x->io, x->lba, x->count, th_cpl_fn, &x->cpl);
	} else {
		bs_dev_flush(ch, &x->io, th_cpl_fn, &x->cpl);
	}
	x->inline_done = x->cpl.done;
}

static int zio_run(struct zfx *z, struct zio *x)
{
	x->z = z;
	th_run_on(z->t, zio_msg, x);
	assert_false(x->inline_done);
	th_wait(z->t, &x->cpl);
	th_poll_idle(z->t);
	assert_int_equal(x->cpl.calls, 1);
	return x->cpl.err;
}

static void zfx_get_channel(void *arg)
{
	struct zfx *z = arg;

	z->ch = bs_dev_get_channel(z->dev);
}

static void zfx_put_channel(void *arg)
{
	struct zfx *z = arg;

	bs_dev_put_channel(z->ch);
}

static void zfx_close(void *arg)
{
	struct zfx *z = arg;

	bs_dev_close(z->dev, th_cpl_fn, &z->close_cpl);
}

static int zfx_setup(void **state)
{
	struct zfx *z = calloc(1, sizeof(*z));

	assert_non_null(z);
	assert_int_equal(bs_zeroes_dev_create(4096, 1000, &z->dev), 0);
	z->t = bs_thread_create("zeroes");
	assert_non_null(z->t);
	th_run_on(z->t, zfx_get_channel, z);
	assert_non_null(z->ch);
	*state = z;
	return 0;
}

static int zfx_teardown(void **state)
{
	struct zfx *z = *state;

	th_run_on(z->t, zfx_put_channel, z);
	th_run_on(z->t, zfx_close, z);
	assert_int_equal(th_wait(z->t, &z->close_cpl), 0);
	th_thread_finish(z->t);
	free(z);
	return 0;
}

static void test_create_checks(void **state)
{
	struct bs_dev *dev = NULL;

	assert_int_equal(bs_zeroes_dev_create(1000, 10, &dev), -EINVAL);
	assert_int_equal(bs_zeroes_dev_create(256, 10, &dev), -EINVAL);
	assert_int_equal(bs_zeroes_dev_create(131072, 10, &dev), -EINVAL);
	assert_int_equal(bs_zeroes_dev_create(4096, 0, &dev), -EINVAL);
	assert_int_equal(bs_zeroes_dev_create(4096, UINT64_MAX / 1024, &dev), -EINVAL);
	assert_int_equal(bs_zeroes_dev_create(4096, 10, NULL), -EINVAL);
	assert_null(dev);
}

static void test_geometry(void **state)
{
	struct zfx *z = *state;

	assert_int_equal(z->dev->block_len, 4096);
	assert_int_equal(z->dev->block_count, 1000);
	assert_true(z->dev->flags & BS_DEV_F_READ_ONLY);
	assert_false(z->dev->flags & BS_DEV_F_VOLATILE_CACHE);
	assert_string_equal(z->dev->name, "zeroes");
	assert_null(bs_file_dev_backend(z->dev));
}

static void test_reads_are_zero(void **state)
{
	struct zfx *z = *state;
	uint8_t *buf = malloc(16 * 4096);
	struct iovec iov[3] = {
		{ buf, 4096 }, { buf + 4096, 8 * 4096 }, { buf + 9 * 4096, 7 * 4096 },
	};
	struct zio r = { .type = BS_IO_READ, .buf = buf, .lba = 990, .count = 10 };
	struct zio rv = { .type = BS_IO_READV, .iov = iov, .iovcnt = 3, .lba = 0, .count = 16 };

	memset(buf, 0xaa, 16 * 4096);
	assert_int_equal(zio_run(z, &r), 0);
	for (size_t i = 0; i < 10 * 4096; i++)
		assert_int_equal(buf[i], 0);
	assert_int_equal(buf[10 * 4096], 0xaa);
	memset(buf, 0xaa, 16 * 4096);
	assert_int_equal(zio_run(z, &rv), 0);
	for (size_t i = 0; i < 16 * 4096; i++)
		assert_int_equal(buf[i], 0);
	free(buf);
}

static void test_writes_refused(void **state)
{
	struct zfx *z = *state;
	uint8_t *buf = calloc(1, 4096);
	enum bs_io_type kinds[] = { BS_IO_WRITE, BS_IO_WRITE_ZEROES, BS_IO_UNMAP };
	struct zio wv = { .type = BS_IO_WRITEV, .buf = buf, .lba = 1, .count = 1, .direct = true };

	/* Through the device layer (refused for the read-only flag), then
	 * straight to the backend op. */
	for (size_t i = 0; i < 3; i++) {
		struct zio w = { .type = kinds[i], .buf = buf, .lba = 1, .count = 1 };
		struct zio d = { .type = kinds[i], .buf = buf, .lba = 1, .count = 1,
				 .direct = true };

		assert_int_equal(zio_run(z, &w), -EROFS);
		assert_int_equal(zio_run(z, &d), -EROFS);
	}
	assert_int_equal(zio_run(z, &wv), -EROFS);
	free(buf);
}

static void test_flush_and_range(void **state)
{
	struct zfx *z = *state;
	uint8_t *buf = malloc(2 * 4096);
	struct zio f = { .type = BS_IO_FLUSH };
	struct zio past = { .type = BS_IO_READ, .buf = buf, .lba = 999, .count = 2 };
	struct zio zero = { .type = BS_IO_READ, .buf = buf, .lba = 0, .count = 0 };

	assert_int_equal(zio_run(z, &f), 0);
	assert_int_equal(zio_run(z, &past), -ERANGE);
	assert_int_equal(zio_run(z, &zero), -EINVAL);
	free(buf);
}

#define Z_TEST(fn) cmocka_unit_test_setup_teardown(fn, zfx_setup, zfx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_checks),
		Z_TEST(test_geometry),
		Z_TEST(test_reads_are_zero),
		Z_TEST(test_writes_refused),
		Z_TEST(test_flush_and_range),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
