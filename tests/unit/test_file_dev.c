/*
 * File/block-device backend suite.
 *
 * Most cases run four times: io_uring and psync backends, 512- and
 * 4096-byte blocks, on a temporary file under $BS_TEST_DIR opened with a
 * small queue depth (so back-pressure is exercised everywhere). Data is
 * always checked against an independent buffered pread() of the file.
 * Threads are driven deterministically from the test's pthread
 * (bs_thread_poll) except in the two-reactor case.
 *
 * Also: the short-IO resume path (forced by a one-block transfer limit),
 * back-pressure (1000 IOs at depth 8), a polled thread handed to another
 * pthread with IO in flight, the cases again on a bound thread (deferred
 * io_uring ring, busy polling), which ring a channel gets, two reactors on
 * their own channels, open
 * errors (each exactly one error line), backend choice by options, by
 * BLOBSTORE_IO and by fallback when io_uring is forbidden (a seccomp filter
 * in a child process), and a raw loop block device set up by the test
 * itself. Copy offload (bs_file_dev_opts.copy): copies forced on (ON) on
 * both backends, bad copies, which modes offer the op on which file
 * systems, ON refused on a loop device and where copy_file_range is
 * forbidden (seccomp, in a child process). Cases that cannot run here (no io_uring, no loop devices) are
 * skipped with the reason printed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <liburing.h>
#include <linux/filter.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <linux/magic.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <blobstore/file_dev.h>
#include <blobstore/log.h>

#include "dev/file_dev_int.h"
#include "test_helpers.h"

#define FX_BYTES	(4u << 20)	/* test file size */
#define FX_QD		8		/* queue depth of the fixture device */
#define QD_IOS		1000		/* IOs in the back-pressure test */

/* ------------------------------------------------------------------------
 * Log capture
 * ------------------------------------------------------------------------ */

struct log_cap {
	int count[BS_LOG_DEBUG + 1];
	char last_err[512];
};

static void log_cap_fn(void *arg, enum bs_log_level level, const char *line)
{
	struct log_cap *c = arg;

	c->count[level]++;
	if (level == BS_LOG_ERROR)
		snprintf(c->last_err, sizeof(c->last_err), "%s", line);
}

static void log_cap_start(struct log_cap *c)
{
	memset(c, 0, sizeof(*c));
	bs_log_set_hook(log_cap_fn, c);
}

static void log_cap_stop(void)
{
	bs_log_set_hook(NULL, NULL);
}

/* ------------------------------------------------------------------------
 * Temporary files and small helpers
 * ------------------------------------------------------------------------ */

/* Create an empty temporary file; its path goes to @p path. */
static void tmp_file(char *path, size_t len, const char *tag)
{
	int fd;

	snprintf(path, len, "%s/file_dev_%s_XXXXXX", th_test_dir(), tag);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
}

/* A temporary path that does not exist yet. */
static void tmp_path(char *path, size_t len, const char *tag)
{
	tmp_file(path, len, tag);
	assert_int_equal(unlink(path), 0);
}

static void *xalloc(size_t len)
{
	void *p = NULL;

	assert_int_equal(posix_memalign(&p, 4096, len), 0);
	return p;
}

static void file_set_size(const char *path, off_t size)
{
	assert_int_equal(truncate(path, size), 0);
}

static bool all_zero(const void *buf, size_t len)
{
	const unsigned char *p = buf;

	for (size_t i = 0; i < len; i++) {
		if (p[i] != 0)
			return false;
	}
	return true;
}

/* Close @p dev on @p t (closing must happen on a bs_thread). */
struct close_ctx {
	struct bs_dev *dev;
	struct th_cpl cpl;
};

static void close_msg(void *arg)
{
	struct close_ctx *c = arg;

	bs_dev_close(c->dev, th_cpl_fn, &c->cpl);
}

static void dev_close_on(struct bs_thread *t, struct bs_dev *dev)
{
	struct close_ctx c = { .dev = dev };

	th_run_on(t, close_msg, &c);
	assert_int_equal(th_wait(t, &c.cpl), 0);
}

/* Open @p path, close it on a throwaway thread, return the backend name
 * (a static string) or NULL and the error in *@p err. */
static const char *open_backend(const char *path, enum bs_file_backend be, int *err)
{
	struct bs_file_dev_opts o;
	struct bs_thread *t;
	struct bs_dev *dev;
	const char *name;

	bs_file_dev_opts_init(&o);
	o.backend = be;
	*err = bs_file_dev_open(path, &o, &dev);
	if (*err != 0)
		return NULL;
	name = bs_file_dev_backend(dev);
	t = bs_thread_create("close");
	assert_non_null(t);
	dev_close_on(t, dev);
	th_thread_finish(t);
	return name;
}

/* Expect bs_file_dev_open to fail with @p err and exactly one error line
 * naming @p path. */
static void expect_open_err(const char *path, const struct bs_file_dev_opts *o, int err)
{
	struct bs_dev *dev = NULL;
	struct log_cap cap;

	log_cap_start(&cap);
	assert_int_equal(bs_file_dev_open(path, o, &dev), err);
	log_cap_stop();
	assert_null(dev);
	assert_int_equal(cap.count[BS_LOG_ERROR], 1);
	assert_non_null(strstr(cap.last_err, path));
}

/* Is io_uring usable here? Prints the reason when it is not. */
static bool have_uring(void)
{
	int rc = uringdev_probe(8);

	if (rc != 0)
		print_message("skipping: io_uring unavailable here: %s\n", strerror(-rc));
	return rc == 0;
}

/* Skip the current case (not a setup: cmocka counts that as an error) if
 * this host has no usable io_uring. */
static void require_uring(void)
{
	if (!have_uring())
		skip();
}

/* ------------------------------------------------------------------------
 * Fixture: one device, one polled thread, one channel
 * ------------------------------------------------------------------------ */

struct fx_param {
	enum bs_file_backend backend;
	uint32_t block_len;
	enum bs_file_copy copy;
	bool bound;		/* bs_thread_bind the fixture's thread */
};

static const struct fx_param p_uring_512 = { BS_FILE_BACKEND_URING, 512 };
static const struct fx_param p_uring_4k = { BS_FILE_BACKEND_URING, 4096 };
static const struct fx_param p_psync_512 = { BS_FILE_BACKEND_PSYNC, 512 };
static const struct fx_param p_psync_4k = { BS_FILE_BACKEND_PSYNC, 4096 };
static const struct fx_param p_uring_512_copy = { BS_FILE_BACKEND_URING, 512, BS_FILE_COPY_ON };
static const struct fx_param p_uring_4k_copy = { BS_FILE_BACKEND_URING, 4096, BS_FILE_COPY_ON };
static const struct fx_param p_psync_512_copy = { BS_FILE_BACKEND_PSYNC, 512, BS_FILE_COPY_ON };
static const struct fx_param p_psync_4k_copy = { BS_FILE_BACKEND_PSYNC, 4096, BS_FILE_COPY_ON };
/* Bound thread: a deferred ring that busy-polls from FX_BUSY_DEPTH in flight. */
static const struct fx_param p_uring_512_bound = { BS_FILE_BACKEND_URING, 512, .bound = true };
static const struct fx_param p_uring_4k_bound = { BS_FILE_BACKEND_URING, 4096, .bound = true };
#define FX_BUSY_DEPTH 2

struct fx {
	const struct fx_param *p;
	struct bs_thread *t;
	struct bs_dev *dev;
	struct bs_io_channel *ch;
	int raw_fd;		/* buffered, independent view of the file */
	uint32_t bl;
	uint64_t nblocks;
	uint64_t seed;
	char path[PATH_MAX];
};

static void fx_get_channel(void *arg)
{
	struct fx *fx = arg;

	fx->ch = bs_dev_get_channel(fx->dev);
}

static void fx_put_channel(void *arg)
{
	struct fx *fx = arg;

	bs_dev_put_channel(fx->ch);
	fx->ch = NULL;
}

static int fx_setup(void **state)
{
	const struct fx_param *p = *state;
	struct bs_file_dev_opts o;
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	*state = fx;
	if (p->backend == BS_FILE_BACKEND_URING && !have_uring())
		return 0;	/* fx_get() skips the case */
	fx->p = p;
	fx->bl = p->block_len;
	fx->nblocks = FX_BYTES / p->block_len;
	fx->seed = 0x5eed0000u + p->block_len + (uint64_t)p->backend;
	tmp_file(fx->path, sizeof(fx->path), "fx");
	bs_file_dev_opts_init(&o);
	o.block_len = p->block_len;
	o.queue_depth = FX_QD;
	o.create_size = FX_BYTES;
	o.backend = p->backend;
	o.copy = p->copy;
	o.busy_poll_depth = FX_BUSY_DEPTH;
	assert_int_equal(bs_file_dev_open(fx->path, &o, &fx->dev), 0);
	assert_string_equal(bs_file_dev_backend(fx->dev),
			    p->backend == BS_FILE_BACKEND_URING ? "io_uring" : "psync");
	fx->raw_fd = open(fx->path, O_RDWR | O_CLOEXEC);
	assert_true(fx->raw_fd >= 0);
	fx->t = bs_thread_create("fx");
	assert_non_null(fx->t);
	if (p->bound)
		assert_int_equal(bs_thread_bind(fx->t), 0);
	th_run_on(fx->t, fx_get_channel, fx);
	assert_non_null(fx->ch);
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *fx = *state;

	if (fx->dev == NULL) {
		free(fx);
		return 0;
	}
	th_run_on(fx->t, fx_put_channel, fx);
	dev_close_on(fx->t, fx->dev);
	th_thread_finish(fx->t);
	close(fx->raw_fd);
	unlink(fx->path);
	free(fx);
	return 0;
}

/* The fixture of a case, which is skipped if its backend is unavailable. */
static struct fx *fx_get(void **state)
{
	struct fx *fx = *state;

	if (fx->dev == NULL)
		skip();
	return fx;
}

/* One IO, described for fx_io_start(). */
struct fx_io {
	struct bs_io_channel *ch;
	enum bs_io_type type;
	void *buf;
	struct iovec *iov;
	int iovcnt;
	uint64_t lba, count;
	uint64_t src_lba;	/* BS_IO_COPY: lba is the destination */
	struct bs_dev_io io;
	struct th_cpl cpl;
	bool inline_done;	/* completed before the submit call returned */
};

/* Submit @p x on the current thread (the channel's). */
static void fx_io_start(struct fx_io *x)
{
	struct bs_dev_io *io = &x->io;

	x->cpl = (struct th_cpl){ 0 };
	switch (x->type) {
	case BS_IO_READ:
		bs_dev_read(x->ch, io, x->buf, x->lba, x->count, th_cpl_fn, &x->cpl);
		break;
	case BS_IO_WRITE:
		bs_dev_write(x->ch, io, x->buf, x->lba, x->count, th_cpl_fn, &x->cpl);
		break;
	case BS_IO_READV:
		bs_dev_readv(x->ch, io, x->iov, x->iovcnt, x->lba, x->count, th_cpl_fn, &x->cpl);
		break;
	case BS_IO_WRITEV:
		bs_dev_writev(x->ch, io, x->iov, x->iovcnt, x->lba, x->count, th_cpl_fn, &x->cpl);
		break;
	case BS_IO_FLUSH:
		bs_dev_flush(x->ch, io, th_cpl_fn, &x->cpl);
		break;
	case BS_IO_WRITE_ZEROES:
		bs_dev_write_zeroes(x->ch, io, x->lba, x->count, th_cpl_fn, &x->cpl);
		break;
	case BS_IO_UNMAP:
		bs_dev_unmap(x->ch, io, x->lba, x->count, th_cpl_fn, &x->cpl);
		break;
	case BS_IO_COPY:
		bs_dev_copy(x->ch, io, x->lba, x->src_lba, x->count, th_cpl_fn, &x->cpl);
		break;
	default:
		fail();
	}
	x->inline_done = x->cpl.done;
}

static void fx_io_msg(void *arg)
{
	fx_io_start(arg);
}

/* Run one IO to completion on (@p t, @p ch); checks it completed exactly
 * once and not inline. Returns its status. */
static int io_run(struct bs_thread *t, struct bs_io_channel *ch, struct fx_io *x)
{
	x->ch = ch;
	th_run_on(t, fx_io_msg, x);
	assert_false(x->inline_done);
	th_wait(t, &x->cpl);
	th_poll_idle(t);
	assert_int_equal(x->cpl.calls, 1);
	return x->cpl.err;
}

static int fx_rw(struct fx *fx, enum bs_io_type type, void *buf, uint64_t lba, uint64_t n)
{
	struct fx_io x = { .type = type, .buf = buf, .lba = lba, .count = n };

	return io_run(fx->t, fx->ch, &x);
}

static int fx_rwv(struct fx *fx, enum bs_io_type type, struct iovec *iov, int iovcnt,
		  uint64_t lba, uint64_t n)
{
	struct fx_io x = { .type = type, .iov = iov, .iovcnt = iovcnt, .lba = lba, .count = n };

	return io_run(fx->t, fx->ch, &x);
}

static int fx_range_op(struct fx *fx, enum bs_io_type type, uint64_t lba, uint64_t n)
{
	struct fx_io x = { .type = type, .lba = lba, .count = n };

	return io_run(fx->t, fx->ch, &x);
}

static int fx_copy(struct fx *fx, uint64_t dst, uint64_t src, uint64_t n)
{
	struct fx_io x = { .type = BS_IO_COPY, .lba = dst, .src_lba = src, .count = n };

	return io_run(fx->t, fx->ch, &x);
}

/* The file holds @p expect at block @p lba (independent buffered read). */
static void raw_check(int fd, uint32_t bl, uint64_t lba, uint64_t n, const void *expect)
{
	size_t len = n * bl;
	void *tmp = malloc(len);

	assert_non_null(tmp);
	assert_int_equal(pread(fd, tmp, len, (off_t)(lba * bl)), (ssize_t)len);
	assert_memory_equal(tmp, expect, len);
	free(tmp);
}

/* Split @p len bytes at @p buf into up to @p max segments of random block
 * multiples; returns the count. */
static int split_iov(struct iovec *iov, int max, void *buf, uint64_t n, uint32_t bl,
		     uint64_t *seed)
{
	char *p = buf;
	int cnt = 0;

	while (n > 0) {
		uint64_t take = cnt == max - 1 ? n : 1 + th_rand(seed) % n;

		iov[cnt].iov_base = p;
		iov[cnt].iov_len = take * bl;
		p += take * bl;
		n -= take;
		cnt++;
	}
	return cnt;
}

/* ------------------------------------------------------------------------
 * Data path (per backend and block size)
 * ------------------------------------------------------------------------ */

/* Single-buffer writes and reads at random places, checked both ways. */
static void test_rw_roundtrip(void **state)
{
	struct fx *fx = fx_get(state);
	uint8_t *wbuf = xalloc(64 * 4096), *rbuf = xalloc(64 * 4096);

	for (int i = 0; i < 24; i++) {
		uint64_t n = 1 + th_rand(&fx->seed) % 64;
		uint64_t lba = th_rand(&fx->seed) % (fx->nblocks - n + 1);

		th_fill(wbuf, n * fx->bl, th_rand(&fx->seed));
		assert_int_equal(fx_rw(fx, BS_IO_WRITE, wbuf, lba, n), 0);
		raw_check(fx->raw_fd, fx->bl, lba, n, wbuf);
		memset(rbuf, 0xa5, n * fx->bl);
		assert_int_equal(fx_rw(fx, BS_IO_READ, rbuf, lba, n), 0);
		assert_memory_equal(rbuf, wbuf, n * fx->bl);
	}
	/* The other direction: data written behind the device's back. */
	th_fill(wbuf, 8 * fx->bl, 42);
	assert_int_equal(pwrite(fx->raw_fd, wbuf, 8 * fx->bl, 0), (ssize_t)(8 * fx->bl));
	assert_int_equal(fx_rw(fx, BS_IO_READ, rbuf, 0, 8), 0);
	assert_memory_equal(rbuf, wbuf, 8 * fx->bl);
	/* The last block of the device. */
	assert_int_equal(fx_rw(fx, BS_IO_WRITE, wbuf, fx->nblocks - 1, 1), 0);
	raw_check(fx->raw_fd, fx->bl, fx->nblocks - 1, 1, wbuf);
	free(wbuf);
	free(rbuf);
}

/* writev and readv with different random splits of the same range. */
static void test_rwv_roundtrip(void **state)
{
	struct fx *fx = fx_get(state);
	uint8_t *wbuf = xalloc(48 * 4096), *rbuf = xalloc(48 * 4096);
	struct iovec wiov[16], riov[16];

	for (int i = 0; i < 16; i++) {
		uint64_t n = 1 + th_rand(&fx->seed) % 48;
		uint64_t lba = th_rand(&fx->seed) % (fx->nblocks - n + 1);
		int wc = split_iov(wiov, 16, wbuf, n, fx->bl, &fx->seed);
		int rc = split_iov(riov, 16, rbuf, n, fx->bl, &fx->seed);

		th_fill(wbuf, n * fx->bl, th_rand(&fx->seed));
		assert_int_equal(fx_rwv(fx, BS_IO_WRITEV, wiov, wc, lba, n), 0);
		raw_check(fx->raw_fd, fx->bl, lba, n, wbuf);
		memset(rbuf, 0x5a, n * fx->bl);
		assert_int_equal(fx_rwv(fx, BS_IO_READV, riov, rc, lba, n), 0);
		assert_memory_equal(rbuf, wbuf, n * fx->bl);
	}
	free(wbuf);
	free(rbuf);
}

/*
 * Force every transfer through the short-IO resume path: with max_xfer at
 * one block each system call moves at most one block, so a 40-block IO
 * takes 40 steps, and vectored IO walks its segments with the cursor.
 */
static void test_short_io_resume(void **state)
{
	struct fx *fx = fx_get(state);
	uint8_t *wbuf = xalloc(40 * 4096), *rbuf = xalloc(40 * 4096);
	struct iovec wiov[7], riov[5];
	int wc, rc;

	filedev_from_dev(fx->dev)->max_xfer = fx->bl;
	th_fill(wbuf, 40 * fx->bl, 7);
	assert_int_equal(fx_rw(fx, BS_IO_WRITE, wbuf, 3, 40), 0);
	raw_check(fx->raw_fd, fx->bl, 3, 40, wbuf);
	memset(rbuf, 0, 40 * fx->bl);
	assert_int_equal(fx_rw(fx, BS_IO_READ, rbuf, 3, 40), 0);
	assert_memory_equal(rbuf, wbuf, 40 * fx->bl);

	th_fill(wbuf, 40 * fx->bl, 8);
	wc = split_iov(wiov, 7, wbuf, 40, fx->bl, &fx->seed);
	rc = split_iov(riov, 5, rbuf, 40, fx->bl, &fx->seed);
	assert_int_equal(fx_rwv(fx, BS_IO_WRITEV, wiov, wc, 100, 40), 0);
	raw_check(fx->raw_fd, fx->bl, 100, 40, wbuf);
	memset(rbuf, 0, 40 * fx->bl);
	assert_int_equal(fx_rwv(fx, BS_IO_READV, riov, rc, 100, 40), 0);
	assert_memory_equal(rbuf, wbuf, 40 * fx->bl);
	filedev_from_dev(fx->dev)->max_xfer = FILEDEV_MAX_XFER;
	free(wbuf);
	free(rbuf);
}

/* Back-pressure: QD_IOS writes (then reads) submitted at once at depth 8. */
struct qd_state {
	struct fx *fx;
	struct fx_io *ios;
	uint8_t *bufs;
	enum bs_io_type type;
	int n;			/* IOs to submit: QD_IOS if 0 */
	int inline_done;
	bool held;		/* test_ring_kind: the channel held its thread */
};

static int qd_n(const struct qd_state *s)
{
	return s->n ? s->n : QD_IOS;
}

static void qd_submit_all(void *arg)
{
	struct qd_state *s = arg;

	for (int i = 0; i < qd_n(s); i++) {
		struct fx_io *x = &s->ios[i];

		*x = (struct fx_io){ .ch = s->fx->ch, .type = s->type,
				     .buf = s->bufs + (size_t)i * s->fx->bl,
				     .lba = (uint64_t)i, .count = 1 };
		fx_io_start(x);
		s->inline_done += x->inline_done;
	}
}

static int qd_count_done(const struct qd_state *s, int *errors)
{
	int done = 0;

	*errors = 0;
	for (int i = 0; i < qd_n(s); i++) {
		done += s->ios[i].cpl.calls;
		*errors += s->ios[i].cpl.done && s->ios[i].cpl.err != 0;
	}
	return done;
}

/* Poll until every submitted IO has completed, once and without error. */
static void qd_finish(struct qd_state *s)
{
	int done = 0, errors = 0;

	assert_int_equal(s->inline_done, 0);
	for (long polls = 0; polls < 50000000 && done < qd_n(s); polls++) {
		bs_thread_poll(s->fx->t, 0);
		done = qd_count_done(s, &errors);
	}
	th_poll_idle(s->fx->t);
	assert_int_equal(qd_count_done(s, &errors), qd_n(s));
	assert_int_equal(errors, 0);
}

static void qd_run(struct qd_state *s)
{
	s->inline_done = 0;
	th_run_on(s->fx->t, qd_submit_all, s);
	qd_finish(s);
}

static void test_queue_depth_backpressure(void **state)
{
	struct fx *fx = fx_get(state);
	struct qd_state s = { .fx = fx };
	uint8_t *wbufs, *rbufs;

	assert_true(fx->nblocks >= QD_IOS);
	assert_int_equal(fx->dev->max_queue_depth, FX_QD);
	s.ios = calloc(QD_IOS, sizeof(*s.ios));
	s.bufs = xalloc((size_t)QD_IOS * fx->bl);
	rbufs = xalloc((size_t)QD_IOS * fx->bl);
	th_fill(s.bufs, (size_t)QD_IOS * fx->bl, 99);
	s.type = BS_IO_WRITE;
	qd_run(&s);
	raw_check(fx->raw_fd, fx->bl, 0, QD_IOS, s.bufs);

	memset(rbufs, 0, (size_t)QD_IOS * fx->bl);
	s.type = BS_IO_READ;
	wbufs = s.bufs;
	s.bufs = rbufs;
	qd_run(&s);
	assert_memory_equal(rbufs, wbufs, (size_t)QD_IOS * fx->bl);
	free(wbufs);
	free(rbufs);
	free(s.ios);
}

static void test_flush(void **state)
{
	struct fx *fx = fx_get(state);
	uint8_t *buf = xalloc(4 * 4096);

	assert_int_equal(fx_range_op(fx, BS_IO_FLUSH, 0, 0), 0);
	th_fill(buf, 4 * fx->bl, 3);
	assert_int_equal(fx_rw(fx, BS_IO_WRITE, buf, 10, 4), 0);
	assert_int_equal(fx_range_op(fx, BS_IO_FLUSH, 0, 0), 0);
	raw_check(fx->raw_fd, fx->bl, 10, 4, buf);
	free(buf);
}

static void test_write_zeroes(void **state)
{
	struct fx *fx = fx_get(state);
	size_t len = 64 * fx->bl;
	uint8_t *wbuf = xalloc(64 * 4096), *rbuf = xalloc(64 * 4096);

	th_fill(wbuf, len, 11);
	assert_int_equal(fx_rw(fx, BS_IO_WRITE, wbuf, 200, 64), 0);
	assert_int_equal(fx_range_op(fx, BS_IO_WRITE_ZEROES, 208, 33), 0);
	memset(wbuf + 8 * fx->bl, 0, 33 * fx->bl);
	assert_int_equal(fx_rw(fx, BS_IO_READ, rbuf, 200, 64), 0);
	assert_memory_equal(rbuf, wbuf, len);
	raw_check(fx->raw_fd, fx->bl, 200, 64, wbuf);
	free(wbuf);
	free(rbuf);
}

/* True if any extent of bytes [off, off + len) of @fd is unwritten. */
static bool range_has_unwritten(int fd, uint64_t off, uint64_t len)
{
	union {
		struct fiemap fm;
		uint8_t raw[sizeof(struct fiemap) + 32 * sizeof(struct fiemap_extent)];
	} u;

	memset(&u, 0, sizeof(u));
	u.fm.fm_start = off;
	u.fm.fm_length = len;
	u.fm.fm_flags = FIEMAP_FLAG_SYNC;
	u.fm.fm_extent_count = 32;
	assert_int_equal(ioctl(fd, FS_IOC_FIEMAP, &u.fm), 0);
	for (uint32_t i = 0; i < u.fm.fm_mapped_extents; i++)
		if (u.fm.fm_extents[i].fe_flags & FIEMAP_EXTENT_UNWRITTEN)
			return true;
	return false;
}

/*
 * A small write_zeroes on a regular file is a write of zeros (struct bs_dev:
 * zero_buf), so a hole gets real blocks instead of an unwritten extent;
 * one above the buffer's size is a fallocate. Both read back as zeros.
 */
static void test_write_zeroes_file_small_writes(void **state)
{
	struct fx *fx = fx_get(state);
	uint64_t lba = 65536 / fx->bl, n = 65536 / fx->bl;
	uint8_t *buf = xalloc(65536);
	struct stat holed, zeroed;

	assert_non_null(fx->dev->zero_buf);
	assert_int_equal(fx_range_op(fx, BS_IO_UNMAP, lba, n), 0);
	assert_int_equal(fstat(fx->raw_fd, &holed), 0);
	assert_int_equal(fx_range_op(fx, BS_IO_WRITE_ZEROES, lba, n), 0);
	assert_int_equal(fstat(fx->raw_fd, &zeroed), 0);
	assert_true(zeroed.st_blocks >= holed.st_blocks + 65536 / 512);
	assert_false(range_has_unwritten(fx->raw_fd, lba * fx->bl, 65536));
	memset(buf, 0xff, 65536);
	assert_int_equal(fx_rw(fx, BS_IO_READ, buf, lba, n), 0);
	assert_true(all_zero(buf, 65536));
	free(buf);
}

static void test_write_zeroes_file_large(void **state)
{
	struct fx *fx = fx_get(state);
	uint64_t bytes = fx->dev->zero_buf_len + 65536;
	uint8_t *buf = xalloc(bytes);

	assert_true(bytes <= FX_BYTES);
	th_fill(buf, bytes, 13);
	assert_int_equal(fx_rw(fx, BS_IO_WRITE, buf, 0, bytes / fx->bl), 0);
	assert_int_equal(fx_range_op(fx, BS_IO_WRITE_ZEROES, 0, bytes / fx->bl), 0);
	memset(buf, 0xff, bytes);
	assert_int_equal(fx_rw(fx, BS_IO_READ, buf, 0, bytes / fx->bl), 0);
	assert_true(all_zero(buf, bytes));
	raw_check(fx->raw_fd, fx->bl, 0, bytes / fx->bl, buf);
	free(buf);
}

/* Unmap punches a hole in the file: zeros read back, blocks are freed. */
static void test_unmap_file(void **state)
{
	struct fx *fx = fx_get(state);
	uint64_t lba = 16384 / fx->bl, n = 65536 / fx->bl;
	uint8_t *wbuf = xalloc(65536), *rbuf = xalloc(65536);
	struct stat before, after;

	assert_true(fx->dev->flags & BS_DEV_F_UNMAP_ZEROES);
	th_fill(wbuf, 65536, 12);
	assert_int_equal(fx_rw(fx, BS_IO_WRITE, wbuf, lba, n), 0);
	assert_int_equal(fstat(fx->raw_fd, &before), 0);
	assert_int_equal(fx_range_op(fx, BS_IO_UNMAP, lba, n), 0);
	assert_int_equal(fstat(fx->raw_fd, &after), 0);
	assert_true(after.st_blocks < before.st_blocks);
	assert_int_equal(after.st_size, before.st_size);
	memset(rbuf, 0xff, 65536);
	assert_int_equal(fx_rw(fx, BS_IO_READ, rbuf, lba, n), 0);
	assert_true(all_zero(rbuf, 65536));
	memset(wbuf, 0, 65536);
	raw_check(fx->raw_fd, fx->bl, lba, n, wbuf);
	free(wbuf);
	free(rbuf);
}

/* Bad requests: -errno on a later poll, never a crash, never inline. */
static void test_bad_io(void **state)
{
	struct fx *fx = fx_get(state);
	uint8_t *buf = xalloc(8 * 4096 + 4096);
	struct iovec iov[2] = { { buf, fx->bl }, { buf + fx->bl, fx->bl } };
	struct log_cap cap;

	log_cap_start(&cap);
	assert_int_equal(fx_rw(fx, BS_IO_READ, buf, 0, 0), -EINVAL);
	assert_int_equal(fx_rw(fx, BS_IO_WRITE, buf, 0, 0), -EINVAL);
	assert_int_equal(fx_rw(fx, BS_IO_READ, buf + 8, 0, 1), -EINVAL);
	assert_int_equal(fx_rw(fx, BS_IO_WRITE, buf + 256, 0, 1), -EINVAL);
	assert_int_equal(fx_rw(fx, BS_IO_READ, buf, fx->nblocks, 1), -ERANGE);
	assert_int_equal(fx_rw(fx, BS_IO_WRITE, buf, fx->nblocks - 1, 2), -ERANGE);
	assert_int_equal(fx_rw(fx, BS_IO_READ, buf, UINT64_MAX, 2), -ERANGE);
	assert_int_equal(fx_rwv(fx, BS_IO_READV, iov, 2, 0, 3), -EINVAL);
	assert_int_equal(fx_rwv(fx, BS_IO_WRITEV, iov, 0, 0, 2), -EINVAL);
	assert_int_equal(fx_range_op(fx, BS_IO_WRITE_ZEROES, fx->nblocks, 1), -ERANGE);
	assert_int_equal(fx_range_op(fx, BS_IO_UNMAP, 0, 0), -EINVAL);
	assert_int_equal(cap.count[BS_LOG_ERROR], 11);
	log_cap_stop();
	/* The device still works. */
	assert_int_equal(fx_rw(fx, BS_IO_READ, buf, 0, 1), 0);
	free(buf);
}

/* A read that meets the end of a file shrunk behind our back fails with
 * -EIO after reading what is there (short read, then no progress). */
static void test_read_past_eof_eio(void **state)
{
	struct fx *fx = fx_get(state);
	uint64_t lba = fx->nblocks - 8;
	uint8_t *wbuf = xalloc(8 * 4096), *rbuf = xalloc(8 * 4096);
	struct iovec iov[3] = {
		{ rbuf, 3 * fx->bl },
		{ rbuf + 3 * fx->bl, 2 * fx->bl },
		{ rbuf + 5 * fx->bl, 3 * fx->bl },
	};

	th_fill(wbuf, 8 * fx->bl, 13);
	assert_int_equal(fx_rw(fx, BS_IO_WRITE, wbuf, lba, 8), 0);
	file_set_size(fx->path, (off_t)((fx->nblocks - 4) * fx->bl));
	memset(rbuf, 0, 8 * fx->bl);
	assert_int_equal(fx_rw(fx, BS_IO_READ, rbuf, lba, 8), -EIO);
	assert_memory_equal(rbuf, wbuf, 4 * fx->bl);
	memset(rbuf, 0, 8 * fx->bl);
	assert_int_equal(fx_rwv(fx, BS_IO_READV, iov, 3, lba, 8), -EIO);
	assert_memory_equal(rbuf, wbuf, 4 * fx->bl);
	file_set_size(fx->path, FX_BYTES);
	free(wbuf);
	free(rbuf);
}

/*
 * Hand a polled thread from one pthread to another with IO in flight: the
 * test's pthread submits (so the kernel sees it as the submitter) and then
 * sleeps in pthread_join() while a second pthread polls the thread until the
 * IO completes. Completions must not stay parked on the sleeping submitter.
 */
#define HO_IOS FX_QD		/* all in flight at once */
#define HO_BYTES (FX_BYTES / HO_IOS)

struct handoff {
	struct fx *fx;
	struct fx_io x[HO_IOS];
	uint8_t *buf;
	bool all_done;
};

static void handoff_submit(void *arg)
{
	struct handoff *h = arg;

	for (int i = 0; i < HO_IOS; i++) {
		h->x[i] = (struct fx_io){ .ch = h->fx->ch, .type = BS_IO_READ,
					  .buf = h->buf + (size_t)i * HO_BYTES,
					  .lba = (uint64_t)i * HO_BYTES / h->fx->bl,
					  .count = HO_BYTES / h->fx->bl };
		fx_io_start(&h->x[i]);
	}
}

static bool handoff_done(const struct handoff *h)
{
	for (int i = 0; i < HO_IOS; i++) {
		if (!h->x[i].cpl.done || h->x[i].cpl.err != 0)
			return false;
	}
	return true;
}

static void *handoff_poll_main(void *arg)
{
	struct handoff *h = arg;
	struct timespec start, now;

	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		bs_thread_poll(h->fx->t, 0);
		h->all_done = handoff_done(h);
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (!h->all_done && now.tv_sec - start.tv_sec < 10);
	return NULL;
}

static void test_poll_handoff(void **state)
{
	struct fx *fx = fx_get(state);
	struct handoff h = { .fx = fx };
	uint8_t *expect = xalloc(FX_BYTES);
	pthread_t pt;

	/* Real data, so the reads go to the disk (unwritten extents would
	 * complete at once, inside the submitting system call). */
	th_fill(expect, FX_BYTES, 21);
	assert_int_equal(pwrite(fx->raw_fd, expect, FX_BYTES, 0), (ssize_t)FX_BYTES);
	assert_int_equal(fsync(fx->raw_fd), 0);
	h.buf = xalloc(FX_BYTES);
	memset(h.buf, 0, FX_BYTES);
	th_run_on(fx->t, handoff_submit, &h);
	assert_int_equal(pthread_create(&pt, NULL, handoff_poll_main, &h), 0);
	assert_int_equal(pthread_join(pt, NULL), 0);
	assert_true(h.all_done);
	th_poll_idle(fx->t);
	assert_memory_equal(h.buf, expect, FX_BYTES);
	free(h.buf);
	free(expect);
}

/*
 * The ring a channel gets: deferred (DEFER_TASKRUN, busy polling) only on a
 * bound thread, and only where the kernel has it; a deferred waiter holds
 * its thread awake exactly while FX_BUSY_DEPTH or more IOs are in flight.
 */
static bool kernel_has_defer_taskrun(void)
{
	struct io_uring ring;
	int rc = io_uring_queue_init(4, &ring, IORING_SETUP_SINGLE_ISSUER |
					       IORING_SETUP_DEFER_TASKRUN);

	if (rc == 0)
		io_uring_queue_exit(&ring);
	return rc == 0;
}

/* Submit, and note whether the channel now holds its thread (before any
 * poller could reap a completion). */
static void ring_kind_submit(void *arg)
{
	struct qd_state *s = arg;

	qd_submit_all(s);
	s->held = uringdev_channel_held(bs_io_channel_get_ctx(s->fx->ch));
}

static void test_ring_kind(void **state)
{
	struct fx *fx = fx_get(state);
	void *ctx = bs_io_channel_get_ctx(fx->ch);
	struct qd_state s = { .fx = fx };
	bool deferred = fx->p->bound && kernel_has_defer_taskrun();

	assert_int_equal(uringdev_channel_deferred(ctx), deferred);
	s.ios = calloc(FX_BUSY_DEPTH, sizeof(*s.ios));
	s.bufs = xalloc((size_t)FX_BUSY_DEPTH * fx->bl);
	s.type = BS_IO_READ;
	/* One IO: below the depth, nobody holds the thread. */
	s.n = 1;
	th_run_on(fx->t, ring_kind_submit, &s);
	assert_false(s.held);
	qd_finish(&s);
	/* FX_BUSY_DEPTH at once: a deferred ring busy-polls until they are done. */
	s.n = FX_BUSY_DEPTH;
	th_run_on(fx->t, ring_kind_submit, &s);
	assert_int_equal(s.held, deferred);
	qd_finish(&s);
	assert_false(uringdev_channel_held(ctx));
	free(s.bufs);
	free(s.ios);
}

/* ------------------------------------------------------------------------
 * Two reactors doing IO concurrently, each on its own channel
 * ------------------------------------------------------------------------ */

#define RX_IOS 64
#define RX_BLOCKS 4

struct rx_worker {
	struct bs_dev *dev;
	struct bs_thread *t;
	struct bs_io_channel *ch;
	uint64_t first_lba;
	uint8_t *wbuf, *rbuf;
	struct bs_dev_io ios[RX_IOS];
	int completed;
	int first_err;
	bool reading;
	atomic_int result;	/* 0 running, 1 passed, -1 failed */
};

static void rx_submit_phase(struct rx_worker *w);

/* Completion of one IO; starts the read phase after the last write, and
 * checks the data after the last read. */
static void rx_cpl(void *arg, int err)
{
	struct rx_worker *w = arg;
	size_t len = (size_t)RX_IOS * RX_BLOCKS * w->dev->block_len;

	if (err != 0 && w->first_err == 0)
		w->first_err = err;
	if (++w->completed < RX_IOS)
		return;
	if (w->first_err != 0) {
		atomic_store(&w->result, -1);
	} else if (!w->reading) {
		w->reading = true;
		rx_submit_phase(w);
	} else {
		bs_dev_put_channel(w->ch);
		atomic_store(&w->result, memcmp(w->wbuf, w->rbuf, len) == 0 ? 1 : -1);
	}
}

static void rx_submit_phase(struct rx_worker *w)
{
	size_t step = (size_t)RX_BLOCKS * w->dev->block_len;

	w->completed = 0;
	for (int i = 0; i < RX_IOS; i++) {
		uint64_t lba = w->first_lba + (uint64_t)i * RX_BLOCKS;
		struct bs_dev_io *io = &w->ios[i];

		if (w->reading)
			bs_dev_read(w->ch, io, w->rbuf + i * step, lba, RX_BLOCKS, rx_cpl, w);
		else
			bs_dev_write(w->ch, io, w->wbuf + i * step, lba, RX_BLOCKS, rx_cpl, w);
	}
}

static void rx_start(void *arg)
{
	struct rx_worker *w = arg;

	w->ch = bs_dev_get_channel(w->dev);
	if (w->ch == NULL) {
		atomic_store(&w->result, -1);
		return;
	}
	rx_submit_phase(w);
}

struct rx_close {
	struct bs_dev *dev;
	atomic_int done;	/* 0 running, 1 closed, -1 failed */
};

static void rx_close_cpl(void *arg, int err)
{
	struct rx_close *c = arg;

	atomic_store(&c->done, err == 0 ? 1 : -1);
}

static void rx_close_msg(void *arg)
{
	struct rx_close *c = arg;

	bs_dev_close(c->dev, rx_close_cpl, c);
}

/* Wait up to 20 s for *@p v to become non-zero. */
static int rx_wait(atomic_int *v)
{
	struct timespec ts = { 0, 1000000 };

	for (int i = 0; i < 20000 && atomic_load(v) == 0; i++)
		nanosleep(&ts, NULL);
	return atomic_load(v);
}

static void test_two_reactors(void **state)
{
	const struct fx_param *p = *state;
	struct rx_worker *w = calloc(2, sizeof(*w));
	struct bs_file_dev_opts o;
	struct rx_close c = { 0 };
	size_t len = (size_t)RX_IOS * RX_BLOCKS * 4096;
	struct bs_dev *dev;
	char path[PATH_MAX];
	int fd;

	if (p->backend == BS_FILE_BACKEND_URING)
		require_uring();
	tmp_file(path, sizeof(path), "rx");
	bs_file_dev_opts_init(&o);
	o.create_size = FX_BYTES;
	o.queue_depth = 16;
	o.backend = p->backend;
	assert_int_equal(bs_file_dev_open(path, &o, &dev), 0);
	for (int i = 0; i < 2; i++) {
		w[i].dev = dev;
		w[i].first_lba = (uint64_t)i * RX_IOS * RX_BLOCKS;
		w[i].wbuf = xalloc(len);
		w[i].rbuf = xalloc(len);
		th_fill(w[i].wbuf, len, 500 + (uint64_t)i);
		w[i].t = bs_thread_create(i == 0 ? "rx0" : "rx1");
		assert_non_null(w[i].t);
		assert_int_equal(bs_thread_start(w[i].t), 0);
	}
	for (int i = 0; i < 2; i++)
		assert_int_equal(bs_thread_send_msg(w[i].t, rx_start, &w[i]), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(rx_wait(&w[i].result), 1);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	for (int i = 0; i < 2; i++)
		raw_check(fd, 4096, w[i].first_lba, RX_IOS * RX_BLOCKS, w[i].wbuf);
	close(fd);
	c.dev = dev;
	assert_int_equal(bs_thread_send_msg(w[0].t, rx_close_msg, &c), 0);
	assert_int_equal(rx_wait(&c.done), 1);
	for (int i = 0; i < 2; i++) {
		bs_thread_exit(w[i].t);
		assert_int_equal(bs_thread_destroy(w[i].t), 0);
		free(w[i].wbuf);
		free(w[i].rbuf);
	}
	free(w);
	unlink(path);
}

/* ------------------------------------------------------------------------
 * Raw loop block device
 * ------------------------------------------------------------------------ */

struct loopdev {
	int fd;
	char path[64];
	char backing[PATH_MAX];
};

/* Bind a free loop device to @p bfd, retrying if another process takes the
 * one we were offered. 0, or -errno with @p why set. */
static int loop_bind(struct loopdev *l, int ctl, int bfd, const char **why)
{
	int nr, rc = -EBUSY;

	for (int tries = 0; tries < 8 && rc == -EBUSY; tries++) {
		*why = "LOOP_CTL_GET_FREE failed";
		nr = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (nr < 0)
			return -errno;
		snprintf(l->path, sizeof(l->path), "/dev/loop%d", nr);
		*why = "cannot open the free /dev/loopN node";
		l->fd = open(l->path, O_RDWR | O_CLOEXEC);
		if (l->fd < 0)
			return -errno;
		*why = "LOOP_SET_FD failed";
		rc = ioctl(l->fd, LOOP_SET_FD, bfd) == 0 ? 0 : -errno;
		if (rc != 0)
			close(l->fd);
	}
	return rc;
}

/* Attach a fresh loop device to a temporary backing file of @p size bytes.
 * 0, or -errno with @p why set to the reason (the test is then skipped). */
static int loop_attach(struct loopdev *l, uint64_t size, const char **why)
{
	struct loop_info64 info;
	int ctl, bfd, rc;

	*why = "no /dev/loop-control (needs root and the loop driver)";
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return -errno;
	tmp_file(l->backing, sizeof(l->backing), "loop");
	file_set_size(l->backing, (off_t)size);
	bfd = open(l->backing, O_RDWR | O_CLOEXEC);
	assert_true(bfd >= 0);
	rc = loop_bind(l, ctl, bfd, why);
	close(bfd);
	close(ctl);
	if (rc != 0) {
		unlink(l->backing);
		return rc;
	}
	/* Detach by itself when the last descriptor closes, even if the
	 * test dies half way; loop_detach() still clears it explicitly. */
	if (ioctl(l->fd, LOOP_GET_STATUS64, &info) == 0) {
		info.lo_flags |= LO_FLAGS_AUTOCLEAR;
		(void)ioctl(l->fd, LOOP_SET_STATUS64, &info);
	}
	/* Optional: 4 KiB logical blocks (Linux 4.14+). */
	(void)ioctl(l->fd, LOOP_SET_BLOCK_SIZE, 4096);
	return 0;
}

static void loop_detach(struct loopdev *l)
{
	assert_int_equal(ioctl(l->fd, LOOP_CLR_FD, 0), 0);
	close(l->fd);
	unlink(l->backing);
}

/* Round trip, write_zeroes and unmap through @p fx on a loop device whose
 * backing file is @p backing (the independent view of its contents). */
static void loop_io_checks(struct fx *fx, const char *backing)
{
	uint8_t *wbuf = xalloc(64 * 4096), *rbuf = xalloc(64 * 4096);
	int bfd = open(backing, O_RDONLY | O_CLOEXEC);

	assert_true(bfd >= 0);
	th_fill(wbuf, 64 * fx->bl, 77);
	assert_int_equal(fx_rw(fx, BS_IO_WRITE, wbuf, 5, 64), 0);
	assert_int_equal(fx_range_op(fx, BS_IO_FLUSH, 0, 0), 0);
	memset(rbuf, 0, 64 * fx->bl);
	assert_int_equal(fx_rw(fx, BS_IO_READ, rbuf, 5, 64), 0);
	assert_memory_equal(rbuf, wbuf, 64 * fx->bl);
	raw_check(bfd, fx->bl, 5, 64, wbuf);

	assert_int_equal(fx_range_op(fx, BS_IO_WRITE_ZEROES, 9, 20), 0);
	memset(wbuf + 4 * fx->bl, 0, 20 * fx->bl);
	assert_int_equal(fx_rw(fx, BS_IO_READ, rbuf, 5, 64), 0);
	assert_memory_equal(rbuf, wbuf, 64 * fx->bl);
	raw_check(bfd, fx->bl, 5, 64, wbuf);

	/* Contents after unmap are undefined here (no UNMAP_ZEROES); only the
	 * status is checked, and that other blocks are untouched. */
	assert_int_equal(fx_range_op(fx, BS_IO_UNMAP, 40, 16), 0);
	assert_int_equal(fx_rw(fx, BS_IO_READ, rbuf, 5, 30), 0);
	assert_memory_equal(rbuf, wbuf, 30 * fx->bl);
	close(bfd);
	free(wbuf);
	free(rbuf);
}

static void test_loop_device(void **state)
{
	const struct fx_param *p = *state;
	struct fx fx = { .p = p };
	struct bs_file_dev_opts o;
	struct loopdev l;
	const char *why;
	int rc;

	if (p->backend == BS_FILE_BACKEND_URING)
		require_uring();
	rc = loop_attach(&l, 8u << 20, &why);
	if (rc != 0) {
		print_message("skipping loop device test: %s: %s\n", why, strerror(-rc));
		skip();
	}
	bs_file_dev_opts_init(&o);
	o.backend = p->backend;
	o.queue_depth = FX_QD;
	assert_int_equal(bs_file_dev_open(l.path, &o, &fx.dev), 0);
	fx.bl = fx.dev->block_len;
	fx.nblocks = fx.dev->block_count;
	print_message("loop device %s: %s, %" PRIu64 " blocks of %u, buf_align %u, flags %#x\n",
		      l.path, bs_file_dev_backend(fx.dev), fx.nblocks, fx.bl,
		      fx.dev->buf_align, fx.dev->flags);
	assert_true(fx.dev->flags & BS_DEV_F_BLOCKDEV);
	assert_false(fx.dev->flags & BS_DEV_F_UNMAP_ZEROES);
	assert_int_equal(fx.nblocks * fx.bl, 8u << 20);
	fx.t = bs_thread_create("loop");
	th_run_on(fx.t, fx_get_channel, &fx);
	assert_non_null(fx.ch);
	loop_io_checks(&fx, l.backing);
	/* A block size below the device's logical block is refused. */
	if (fx.bl > 512) {
		o.block_len = 512;
		expect_open_err(l.path, &o, -EINVAL);
	}
	th_run_on(fx.t, fx_put_channel, &fx);
	dev_close_on(fx.t, fx.dev);
	th_thread_finish(fx.t);
	loop_detach(&l);
}

/* ------------------------------------------------------------------------
 * Copy offload (bs_file_dev_opts.copy)
 * ------------------------------------------------------------------------ */

/*
 * Copies forced on (ON, here usually ext4: an in-kernel copy): one default
 * cluster (1 MiB), an odd length next to its source, and a copy pushed
 * through the short-copy loop by a one-block transfer limit. Each completes
 * once and not inline (io_run), and the data is checked through the device
 * and through an independent buffered read.
 */
static void test_copy_roundtrip(void **state)
{
	struct fx *fx = fx_get(state);
	uint64_t n = (1u << 20) / fx->bl;
	uint8_t *wbuf = xalloc(1u << 20), *rbuf = xalloc(1u << 20);

	assert_true(bs_dev_has_copy(fx->dev));
	th_fill(wbuf, 1u << 20, 21);
	assert_int_equal(fx_rw(fx, BS_IO_WRITE, wbuf, 0, n), 0);
	assert_int_equal(fx_copy(fx, 2 * n, 0, n), 0);
	memset(rbuf, 0, 1u << 20);
	assert_int_equal(fx_rw(fx, BS_IO_READ, rbuf, 2 * n, n), 0);
	assert_memory_equal(rbuf, wbuf, 1u << 20);
	raw_check(fx->raw_fd, fx->bl, 2 * n, n, wbuf);

	assert_int_equal(fx_copy(fx, n, 5, 7), 0);		/* touches, no overlap */
	raw_check(fx->raw_fd, fx->bl, n, 7, wbuf + 5 * fx->bl);
	raw_check(fx->raw_fd, fx->bl, 0, n, wbuf);		/* source unchanged */

	filedev_from_dev(fx->dev)->max_xfer = fx->bl;
	assert_int_equal(fx_copy(fx, 3 * n, 16, 16), 0);
	filedev_from_dev(fx->dev)->max_xfer = FILEDEV_MAX_XFER;
	assert_int_equal(fx_range_op(fx, BS_IO_FLUSH, 0, 0), 0);
	raw_check(fx->raw_fd, fx->bl, 3 * n, 16, wbuf + 16 * fx->bl);
	free(wbuf);
	free(rbuf);
}

/* Bad copies: -errno on a later poll with one log line each; a copy whose
 * source meets the end of a file shrunk behind our back fails with -EIO. */
static void test_copy_bad(void **state)
{
	struct fx *fx = fx_get(state);
	uint64_t end = fx->nblocks;
	struct log_cap cap;

	log_cap_start(&cap);
	assert_int_equal(fx_copy(fx, 8, 0, 0), -EINVAL);		/* zero length */
	assert_int_equal(fx_copy(fx, end - 1, 0, 2), -ERANGE);	/* dst past the end */
	assert_int_equal(fx_copy(fx, 0, end - 1, 2), -ERANGE);	/* src past the end */
	assert_int_equal(fx_copy(fx, UINT64_MAX, 0, 2), -ERANGE);
	assert_int_equal(fx_copy(fx, 4, 0, 8), -EINVAL);		/* overlap */
	assert_int_equal(fx_copy(fx, 0, 4, 8), -EINVAL);
	assert_int_equal(fx_copy(fx, 4, 4, 1), -EINVAL);
	assert_int_equal(cap.count[BS_LOG_ERROR], 7);
	log_cap_stop();
	file_set_size(fx->path, (off_t)((end - 4) * fx->bl));
	assert_int_equal(fx_copy(fx, 0, end - 8, 8), -EIO);
	file_set_size(fx->path, FX_BYTES);
	assert_int_equal(fx_copy(fx, 0, 8, 8), 0);		/* still works */
}

/* Open @p path with copy @p mode; the device's bs_dev_has_copy(). */
static bool open_has_copy(const char *path, enum bs_file_copy mode, bool read_only)
{
	struct bs_thread *t = bs_thread_create("copy");
	struct bs_file_dev_opts o;
	struct bs_dev *dev;
	bool has;

	bs_file_dev_opts_init(&o);
	o.copy = mode;
	o.read_only = read_only;
	assert_int_equal(bs_file_dev_open(path, &o, &dev), 0);
	has = bs_dev_has_copy(dev);
	dev_close_on(t, dev);
	th_thread_finish(t);
	return has;
}

/* statfs f_type of the file system holding @p path. */
static unsigned long fs_type(const char *path)
{
	struct statfs sfs;

	assert_int_equal(statfs(path, &sfs), 0);
	return (unsigned long)sfs.f_type;
}

/* Does the file system of @p path share extents on a copy within a file? */
static bool fs_reflinks(const char *path)
{
	unsigned long type = fs_type(path);

	return type == BTRFS_SUPER_MAGIC || type == XFS_SUPER_MAGIC;
}

/* AUTO, ON and OFF on the test directory's file system and on tmpfs. */
static void copy_modes_on(const char *path)
{
	bool reflinks = fs_reflinks(path);

	print_message("copy modes on %s: f_type %#lx, %s\n", path, fs_type(path),
		      reflinks ? "reflinks (AUTO offers copy)" : "no reflinks (AUTO does not)");
	assert_int_equal(open_has_copy(path, BS_FILE_COPY_AUTO, false), reflinks);
	assert_true(open_has_copy(path, BS_FILE_COPY_ON, false));
	assert_false(open_has_copy(path, BS_FILE_COPY_OFF, false));
	assert_false(open_has_copy(path, BS_FILE_COPY_ON, true));	/* read-only */
	assert_false(open_has_copy(path, BS_FILE_COPY_AUTO, true));
}

static void test_copy_modes(void **state)
{
	struct bs_file_dev_opts o;
	char path[PATH_MAX], shm[] = "/dev/shm/bs_file_dev_copy_XXXXXX";
	int fd;

	tmp_file(path, sizeof(path), "copy");
	file_set_size(path, 65536);
	copy_modes_on(path);
	bs_file_dev_opts_init(&o);
	o.copy = (enum bs_file_copy)3;
	expect_open_err(path, &o, -EINVAL);
	/* A caller built before the field existed gets AUTO. */
	o.opts_size = offsetof(struct bs_file_dev_opts, copy);
	assert_int_equal(open_has_copy(path, BS_FILE_COPY_AUTO, false), fs_reflinks(path));
	unlink(path);

	fd = mkstemp(shm);
	if (fd < 0 || fs_type(shm) != TMPFS_MAGIC) {
		print_message("skipping the tmpfs part: no tmpfs at /dev/shm\n");
	} else {
		assert_int_equal(ftruncate(fd, 65536), 0);
		copy_modes_on(shm);
	}
	if (fd >= 0) {
		close(fd);
		unlink(shm);
	}
}

/* In this (child) process, make system call @p nr fail with @p err from now on. */
static int forbid_syscall(int nr, int err)
{
	struct sock_filter filt[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((uint32_t)err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = BS_ARRAY_SIZE(filt), .filter = filt };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
		return -1;
	return 0;
}

/*
 * Where copy_file_range is forbidden (a seccomp filter in a child process
 * makes it fail with ENOSYS, as an old kernel would), ON fails the open with
 * that error and one error line. The child reports through its exit code.
 */
static int child_no_copy_file_range(const char *path)
{
	struct bs_file_dev_opts o;
	struct bs_dev *dev;
	struct log_cap cap;

	if (forbid_syscall(__NR_copy_file_range, ENOSYS) != 0)
		return 10;
	bs_file_dev_opts_init(&o);
	o.copy = BS_FILE_COPY_ON;
	log_cap_start(&cap);
	if (bs_file_dev_open(path, &o, &dev) != -ENOSYS)
		return 11;
	if (cap.count[BS_LOG_ERROR] != 1 || strstr(cap.last_err, path) == NULL)
		return 12;
	return 0;
}

static void test_copy_on_forbidden(void **state)
{
	char path[PATH_MAX];
	int status;
	pid_t pid;

	tmp_file(path, sizeof(path), "nocfr");
	file_set_size(path, 65536);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(child_no_copy_file_range(path));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	unlink(path);
}

/* ON is refused on a block device; AUTO opens it without copy. */
static void test_copy_on_loop_device(void **state)
{
	struct bs_file_dev_opts o;
	struct loopdev l;
	const char *why;
	int rc;

	rc = loop_attach(&l, 1u << 20, &why);
	if (rc != 0) {
		print_message("skipping loop device copy test: %s: %s\n", why, strerror(-rc));
		skip();
	}
	bs_file_dev_opts_init(&o);
	o.copy = BS_FILE_COPY_ON;
	expect_open_err(l.path, &o, -EINVAL);
	assert_false(open_has_copy(l.path, BS_FILE_COPY_AUTO, false));
	assert_false(open_has_copy(l.path, BS_FILE_COPY_OFF, false));
	loop_detach(&l);
}

/* ------------------------------------------------------------------------
 * Open: options, errors, backend choice
 * ------------------------------------------------------------------------ */

static void test_open_errors(void **state)
{
	struct bs_file_dev_opts o;
	char path[PATH_MAX], small[PATH_MAX];

	bs_file_dev_opts_init(&o);
	tmp_path(path, sizeof(path), "missing");
	expect_open_err(path, &o, -ENOENT);
	expect_open_err(th_test_dir(), &o, -EISDIR);
	expect_open_err("/dev/null", &o, -ENODEV);

	tmp_file(small, sizeof(small), "small");
	expect_open_err(small, &o, -ENOSPC);		/* empty */
	file_set_size(small, 2048);
	expect_open_err(small, &o, -ENOSPC);		/* below one 4 KiB block */
	file_set_size(small, 8192);
	o.min_size = 16384;
	expect_open_err(small, &o, -ENOSPC);		/* below min_size */
	o.min_size = 0;
	file_set_size(small, 8192 + 512);
	expect_open_err(small, &o, -EINVAL);		/* not a block multiple */

	file_set_size(small, 65536);
	o.block_len = 1000;
	expect_open_err(small, &o, -EINVAL);
	o.block_len = 256;
	expect_open_err(small, &o, -EINVAL);
	o.block_len = 131072;
	expect_open_err(small, &o, -EINVAL);
	bs_file_dev_opts_init(&o);
	o.queue_depth = 5000;
	expect_open_err(small, &o, -EINVAL);
	bs_file_dev_opts_init(&o);
	o.opts_size = 0;
	expect_open_err(small, &o, -EINVAL);
	bs_file_dev_opts_init(&o);
	o.read_only = true;
	o.create_size = 65536;
	expect_open_err(small, &o, -EINVAL);
	bs_file_dev_opts_init(&o);
	o.block_len = 4096;
	o.create_size = 4096 + 512;
	expect_open_err(path, &o, -EINVAL);		/* create size not a multiple */
	unlink(path);
	unlink(small);
}

/* Defaults and the device fields of a file. */
static void test_open_fields(void **state)
{
	struct bs_file_dev_opts o;
	struct bs_thread *t = bs_thread_create("fields");
	char path[PATH_MAX];
	struct bs_dev *dev;
	struct stat st;

	tmp_path(path, sizeof(path), "fields");
	bs_file_dev_opts_init(&o);
	assert_int_equal(o.opts_size, sizeof(o));
	assert_int_equal(o.queue_depth, 128);
	o.create_size = 1u << 20;
	assert_int_equal(bs_file_dev_open(path, &o, &dev), 0);
	assert_string_equal(dev->name, path);
	assert_int_equal(dev->block_len, 4096);
	assert_int_equal(dev->block_count, 256);
	assert_true(dev->phys_block_len >= dev->block_len);
	assert_int_equal(dev->atomic_write_len, dev->block_len);
	assert_true(dev->buf_align >= 512 && BS_IS_POW2(dev->buf_align));
	assert_int_equal(dev->max_queue_depth, 128);
	assert_int_equal(dev->flags, BS_DEV_F_UNMAP_ZEROES | BS_DEV_F_VOLATILE_CACHE);
	/* fallocate really allocated the blocks */
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 1u << 20);
	assert_true((uint64_t)st.st_blocks * 512 >= 1u << 20);
	dev_close_on(t, dev);

	/* A shorter file is extended, a longer one left alone. */
	file_set_size(path, 8192);
	assert_int_equal(bs_file_dev_open(path, &o, &dev), 0);
	assert_int_equal(dev->block_count, 256);
	dev_close_on(t, dev);
	file_set_size(path, 2u << 20);
	assert_int_equal(bs_file_dev_open(path, &o, &dev), 0);
	assert_int_equal(dev->block_count, 512);
	dev_close_on(t, dev);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 2u << 20);
	th_thread_finish(t);
	unlink(path);
}

/* dev->name is the path, truncated to fit. */
static void test_open_long_name(void **state)
{
	struct bs_file_dev_opts o;
	struct bs_thread *t = bs_thread_create("name");
	char path[PATH_MAX];
	struct bs_dev *dev;
	size_t n;

	n = (size_t)snprintf(path, sizeof(path), "%s/file_dev_", th_test_dir());
	memset(path + n, 'x', 120);
	path[n + 120] = '\0';
	bs_file_dev_opts_init(&o);
	o.create_size = 65536;
	assert_int_equal(bs_file_dev_open(path, &o, &dev), 0);
	assert_int_equal(strlen(dev->name), sizeof(dev->name) - 1);
	assert_memory_equal(dev->name, path, sizeof(dev->name) - 1);
	dev_close_on(t, dev);
	th_thread_finish(t);
	unlink(path);
}

/* Read-only: the flag, and writes refused by the device layer. */
static void test_read_only(void **state)
{
	struct bs_file_dev_opts o;
	struct fx fx = { 0 };
	uint8_t *buf = xalloc(4096);
	char path[PATH_MAX];
	struct log_cap cap;

	tmp_file(path, sizeof(path), "ro");
	file_set_size(path, 65536);
	bs_file_dev_opts_init(&o);
	o.read_only = true;
	assert_int_equal(bs_file_dev_open(path, &o, &fx.dev), 0);
	assert_true(fx.dev->flags & BS_DEV_F_READ_ONLY);
	fx.t = bs_thread_create("ro");
	th_run_on(fx.t, fx_get_channel, &fx);
	assert_int_equal(fx_rw(&fx, BS_IO_READ, buf, 0, 1), 0);
	assert_true(all_zero(buf, 4096));
	log_cap_start(&cap);
	assert_int_equal(fx_rw(&fx, BS_IO_WRITE, buf, 0, 1), -EROFS);
	assert_int_equal(fx_range_op(&fx, BS_IO_WRITE_ZEROES, 0, 1), -EROFS);
	assert_int_equal(fx_range_op(&fx, BS_IO_UNMAP, 0, 1), -EROFS);
	log_cap_stop();
	assert_int_equal(cap.count[BS_LOG_ERROR], 3);
	th_run_on(fx.t, fx_put_channel, &fx);
	dev_close_on(fx.t, fx.dev);
	th_thread_finish(fx.t);
	free(buf);
	unlink(path);
}

/* Backend by options and by BLOBSTORE_IO. */
static void test_backend_choice(void **state)
{
	char path[PATH_MAX];
	struct log_cap cap;
	int err;

	require_uring();
	tmp_file(path, sizeof(path), "be");
	file_set_size(path, 65536);
	unsetenv("BLOBSTORE_IO");
	assert_string_equal(open_backend(path, BS_FILE_BACKEND_AUTO, &err), "io_uring");
	assert_string_equal(open_backend(path, BS_FILE_BACKEND_URING, &err), "io_uring");
	assert_string_equal(open_backend(path, BS_FILE_BACKEND_PSYNC, &err), "psync");

	setenv("BLOBSTORE_IO", "psync", 1);
	assert_string_equal(open_backend(path, BS_FILE_BACKEND_AUTO, &err), "psync");
	assert_string_equal(open_backend(path, BS_FILE_BACKEND_URING, &err), "psync");
	setenv("BLOBSTORE_IO", "uring", 1);
	assert_string_equal(open_backend(path, BS_FILE_BACKEND_AUTO, &err), "io_uring");
	assert_string_equal(open_backend(path, BS_FILE_BACKEND_PSYNC, &err), "psync");
	setenv("BLOBSTORE_IO", "bogus", 1);
	log_cap_start(&cap);
	assert_string_equal(open_backend(path, BS_FILE_BACKEND_AUTO, &err), "io_uring");
	log_cap_stop();
	assert_int_equal(cap.count[BS_LOG_WARN], 1);
	unsetenv("BLOBSTORE_IO");

	assert_null(bs_file_dev_backend(NULL));
	unlink(path);
}

/*
 * Fallback when io_uring is forbidden, as in containers whose seccomp
 * profile blocks it: in a child process, io_uring_setup fails with EPERM.
 * AUTO must fall back to psync with exactly one notice; URING must fail
 * with -EPERM and one error line. The child reports through its exit code.
 */
static int child_no_uring(const char *path)
{
	struct bs_file_dev_opts o;
	struct bs_dev *dev;
	struct log_cap cap;

	if (forbid_syscall(__NR_io_uring_setup, EPERM) != 0)
		return 10;
	unsetenv("BLOBSTORE_IO");
	bs_file_dev_opts_init(&o);
	log_cap_start(&cap);
	if (bs_file_dev_open(path, &o, &dev) != 0)
		return 11;
	if (strcmp(bs_file_dev_backend(dev), "psync") != 0)
		return 12;
	if (cap.count[BS_LOG_NOTICE] != 1 || cap.count[BS_LOG_ERROR] != 0)
		return 13;
	memset(&cap, 0, sizeof(cap));
	o.backend = BS_FILE_BACKEND_URING;
	if (bs_file_dev_open(path, &o, &dev) != -EPERM)
		return 14;
	if (cap.count[BS_LOG_ERROR] != 1)
		return 15;
	return 0;
}

static void test_fallback_when_uring_forbidden(void **state)
{
	char path[PATH_MAX];
	int status;
	pid_t pid;

	tmp_file(path, sizeof(path), "fb");
	file_set_size(path, 65536);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(child_no_uring(path));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	unlink(path);
}

/* The cursor that resumes a short vectored transfer. */
static void test_iov_cursor(void **state)
{
	char a[1024], b[512], c[2048];
	struct iovec iov[3] = { { a, sizeof(a) }, { b, sizeof(b) }, { c, sizeof(c) } };
	struct filedev fdev = { .dev = { .block_len = 512 }, .max_xfer = FILEDEV_MAX_XFER };
	struct bs_dev_io io = { .dev = &fdev.dev, .iov = iov, .iovcnt = 3, .lba_count = 7 };
	uint32_t len;
	void *base;

	filedev_iov_cursor(&io, 0, &base, &len);
	assert_ptr_equal(base, a);
	assert_int_equal(len, 1024);
	filedev_iov_cursor(&io, 1000, &base, &len);
	assert_ptr_equal(base, a + 1000);
	assert_int_equal(len, 24);
	filedev_iov_cursor(&io, 1024, &base, &len);
	assert_ptr_equal(base, b);
	assert_int_equal(len, 512);
	filedev_iov_cursor(&io, 1536 + 512, &base, &len);
	assert_ptr_equal(base, c + 512);
	assert_int_equal(len, 1536);
	fdev.max_xfer = 1024;
	filedev_iov_cursor(&io, 1536, &base, &len);
	assert_ptr_equal(base, c);
	assert_int_equal(len, 1024);
}

/* One case per parameter set, named "case/backend/block size". */
#define FX_TEST(fn, p) \
	{ #fn "/" #p, fn, fx_setup, fx_teardown, (void *)&(p) }
#define FX_TESTS(fn) FX_TEST(fn, p_uring_512), FX_TEST(fn, p_uring_4k), \
		     FX_TEST(fn, p_psync_512), FX_TEST(fn, p_psync_4k), \
		     FX_TEST(fn, p_uring_512_bound), FX_TEST(fn, p_uring_4k_bound)
#define FX_COPY_TESTS(fn) FX_TEST(fn, p_uring_512_copy), FX_TEST(fn, p_uring_4k_copy), \
			  FX_TEST(fn, p_psync_512_copy), FX_TEST(fn, p_psync_4k_copy)
#define BE_TEST(fn, p) { #fn "/" #p, fn, NULL, NULL, (void *)&(p) }
#define BE_TESTS(fn) BE_TEST(fn, p_uring_4k), BE_TEST(fn, p_psync_4k)

int main(void)
{
	const struct CMUnitTest tests[] = {
		FX_TESTS(test_rw_roundtrip),
		FX_TESTS(test_rwv_roundtrip),
		FX_TESTS(test_short_io_resume),
		FX_TESTS(test_queue_depth_backpressure),
		FX_TESTS(test_flush),
		FX_TESTS(test_write_zeroes),
		FX_TESTS(test_unmap_file),
		FX_TESTS(test_write_zeroes_file_small_writes),
		FX_TESTS(test_write_zeroes_file_large),
		FX_TESTS(test_bad_io),
		FX_TESTS(test_read_past_eof_eio),
		FX_TEST(test_ring_kind, p_uring_4k),
		FX_TEST(test_ring_kind, p_uring_4k_bound),
		FX_TEST(test_poll_handoff, p_uring_4k),
		FX_TEST(test_poll_handoff, p_psync_4k),
		BE_TESTS(test_two_reactors),
		BE_TESTS(test_loop_device),
		FX_COPY_TESTS(test_copy_roundtrip),
		FX_COPY_TESTS(test_copy_bad),
		cmocka_unit_test(test_copy_modes),
		cmocka_unit_test(test_copy_on_loop_device),
		cmocka_unit_test(test_copy_on_forbidden),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_open_fields),
		cmocka_unit_test(test_open_long_name),
		cmocka_unit_test(test_read_only),
		cmocka_unit_test(test_backend_choice),
		cmocka_unit_test(test_fallback_when_uring_forbidden),
		cmocka_unit_test(test_iov_cursor),
	};

	/* The cases choose their backends themselves. */
	unsetenv("BLOBSTORE_IO");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
