/* Store test environment (see store_env.h). */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blob/store_int.h"
#include "runtime/runtime_int.h"
#include "store_env.h"

void env_setup(struct store_env *e, const struct store_param *p)
{
	struct bs_ram_dev_opts o;

	memset(e, 0, sizeof(*e));
	e->block_len = p->block_len;
	e->cluster_size = p->cluster_size;
	e->dev_bytes = p->dev_bytes;
	e->t = bs_thread_create("md");
	assert_non_null(e->t);
	rt_set_current(e->t); /* the test pthread acts as the metadata thread */
	bs_ram_dev_opts_init(&o);
	o.block_len = p->block_len;
	o.block_count = p->dev_bytes / p->block_len;
	o.enable_copy = !p->no_copy;
	assert_int_equal(bs_ram_dev_create(&o, &e->dev), 0);
}

int env_wait(struct store_env *e, struct th_cpl *c)
{
	assert_false(c->done); /* never inline */
	assert_true(th_poll_until(e->t, &c->done, 200000000ull));
	assert_int_equal(c->calls, 1);
	return c->err;
}

static void env_free_channel(struct store_env *e)
{
	if (e->ch != NULL) {
		bs_free_channel(e->ch);
		e->ch = NULL;
		th_poll_idle(e->t);
	}
}

void env_teardown(struct store_env *e)
{
	struct th_cpl c = { 0 };

	if (e->bs != NULL)
		assert_int_equal(env_unload(e), 0);
	bs_dev_close(e->dev, th_cpl_fn, &c);
	assert_int_equal(env_wait(e, &c), 0);
	rt_set_current(NULL);
	th_thread_finish(e->t);
}

int env_init_store(struct store_env *e, struct bs_opts *opts)
{
	struct bs_opts o;
	struct th_cpl c = { 0 };

	if (opts == NULL) {
		bs_opts_init(&o, sizeof(o));
		o.cluster_size = e->cluster_size;
		opts = &o;
	}
	bs_init(e->dev, opts, &e->bs, th_cpl_fn, &c);
	return env_wait(e, &c);
}

int env_load(struct store_env *e, struct bs_opts *opts)
{
	struct th_cpl c = { 0 };

	bs_load(e->dev, opts, &e->bs, th_cpl_fn, &c);
	int rc = env_wait(e, &c);

	if (rc != 0)
		e->bs = NULL;
	return rc;
}

int env_unload(struct store_env *e)
{
	struct th_cpl c = { 0 };
	int rc;

	env_free_channel(e);
	bs_unload(e->bs, th_cpl_fn, &c);
	rc = env_wait(e, &c);
	if (rc != -EBUSY)
		e->bs = NULL;
	return rc;
}

void env_abandon(struct store_env *e)
{
	/* A crashed store instance: drain what it has in flight, then drop it. */
	struct th_cpl c = { 0 };

	env_free_channel(e);
	th_poll_idle(e->t);
	if (e->bs != NULL) {
		store_abandon(e->bs, th_cpl_fn, &c);
		assert_int_equal(env_wait(e, &c), 0);
	}
	e->bs = NULL;
}

void env_crash(struct store_env *e, enum bs_power_cut_mode mode, uint64_t seed)
{
	bs_ram_dev_power_cut(e->dev, mode, seed);
	env_abandon(e);
	bs_ram_dev_power_on(e->dev);
}

int env_create(struct store_env *e, uint64_t clusters, bool thin, bs_blob_id *id)
{
	struct bs_blob_opts o;
	struct th_cpl c = { 0 };

	bs_blob_opts_init(&o, sizeof(o));
	o.num_clusters = clusters;
	o.thin_provision = thin;
	bs_blob_create(e->bs, &o, id, th_cpl_fn, &c);
	return env_wait(e, &c);
}

int env_open(struct store_env *e, bs_blob_id id, struct bs_blob **b)
{
	struct th_cpl c = { 0 };

	bs_blob_open(e->bs, id, b, th_cpl_fn, &c);
	return env_wait(e, &c);
}

int env_close(struct store_env *e, struct bs_blob *b)
{
	struct th_cpl c = { 0 };

	bs_blob_close(b, th_cpl_fn, &c);
	return env_wait(e, &c);
}

int env_delete(struct store_env *e, bs_blob_id id)
{
	struct th_cpl c = { 0 };

	bs_blob_delete(e->bs, id, th_cpl_fn, &c);
	return env_wait(e, &c);
}

int env_resize(struct store_env *e, struct bs_blob *b, uint64_t clusters)
{
	struct th_cpl c = { 0 };

	bs_blob_resize(b, clusters, th_cpl_fn, &c);
	return env_wait(e, &c);
}

int env_sync(struct store_env *e, struct bs_blob *b)
{
	struct th_cpl c = { 0 };

	bs_blob_sync(b, th_cpl_fn, &c);
	return env_wait(e, &c);
}

int env_flush(struct store_env *e)
{
	struct th_cpl c = { 0 };

	bs_flush(e->bs, th_cpl_fn, &c);
	return env_wait(e, &c);
}

int env_snapshot(struct store_env *e, bs_blob_id id, bs_blob_id *out)
{
	struct th_cpl c = { 0 };

	bs_blob_snapshot(e->bs, id, NULL, 0, out, th_cpl_fn, &c);
	return env_wait(e, &c);
}

int env_clone(struct store_env *e, bs_blob_id id, bs_blob_id *out)
{
	struct th_cpl c = { 0 };

	bs_blob_clone(e->bs, id, NULL, 0, out, th_cpl_fn, &c);
	return env_wait(e, &c);
}

struct bs_io_channel *env_channel(struct store_env *e)
{
	if (e->ch == NULL)
		e->ch = bs_alloc_channel(e->bs);
	assert_non_null(e->ch);
	return e->ch;
}

int env_write(struct store_env *e, struct bs_blob *b, const void *buf, uint64_t off, uint64_t len)
{
	struct th_cpl c = { 0 };

	bs_blob_write(b, env_channel(e), buf, off, len, th_cpl_fn, &c);
	return env_wait(e, &c);
}

int env_read(struct store_env *e, struct bs_blob *b, void *buf, uint64_t off, uint64_t len)
{
	struct th_cpl c = { 0 };

	bs_blob_read(b, env_channel(e), buf, off, len, th_cpl_fn, &c);
	return env_wait(e, &c);
}

int env_check(struct store_env *e, struct bs_check_report *r)
{
	struct th_cpl c = { 0 };

	memset(r, 0, sizeof(*r));
	bs_check(e->bs, r, NULL, NULL, th_cpl_fn, &c);
	return env_wait(e, &c);
}

void *env_buf(size_t bytes)
{
	void *p = NULL;

	assert_int_equal(posix_memalign(&p, 4096, bytes ? bytes : 1), 0);
	memset(p, 0, bytes);
	return p;
}

/* ---------------------------------------------------------- raw device */

int env_dev_write(struct store_env *e, const void *buf, uint64_t lba, uint64_t nblocks)
{
	struct bs_io_channel *ch = bs_dev_get_channel(e->dev);
	struct bs_dev_io io;
	struct th_cpl c = { 0 }, f = { 0 };
	int rc;

	assert_non_null(ch);
	bs_dev_write(ch, &io, buf, lba, nblocks, th_cpl_fn, &c);
	rc = env_wait(e, &c);
	if (rc == 0) {
		bs_dev_flush(ch, &io, th_cpl_fn, &f);
		rc = env_wait(e, &f);
	}
	bs_dev_put_channel(ch);
	th_poll_idle(e->t);
	return rc;
}

void env_dev_read_page(struct store_env *e, uint64_t page_no, void *page)
{
	assert_true((page_no + 1) * MD_PAGE_SIZE <= e->dev_bytes);
	memcpy(page, bs_ram_dev_view(e->dev) + page_no * MD_PAGE_SIZE, MD_PAGE_SIZE);
}

int env_dev_write_page(struct store_env *e, uint64_t page_no, const void *page)
{
	void *buf = env_buf(MD_PAGE_SIZE);
	uint64_t per = MD_PAGE_SIZE / e->block_len;
	int rc;

	memcpy(buf, page, MD_PAGE_SIZE);
	rc = env_dev_write(e, buf, page_no * per, per);
	free(buf);
	return rc;
}

/* ---------------------------------------------------------- workers */

static uint64_t env_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

bool env_wait_flag(struct store_env *e, atomic_bool *flag, uint64_t timeout_ms)
{
	uint64_t end = env_now_ms() + timeout_ms;

	while (!atomic_load(flag)) {
		if (env_now_ms() > end)
			return false;
		if (bs_thread_poll(e->t, 0) == 0)
			sched_yield();
	}
	return true;
}

struct env_run {
	bs_msg_fn fn;
	void *arg;
	atomic_bool done;
};

static void env_run_msg(void *ctx)
{
	struct env_run *r = ctx;

	r->fn(r->arg);
	atomic_store(&r->done, true);
}

void env_worker_run(struct store_env *e, struct env_worker *w, bs_msg_fn fn, void *arg)
{
	/* Heap, and leaked on a timeout: a late worker must not write into a dead frame. */
	struct env_run *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	r->fn = fn;
	r->arg = arg;
	atomic_init(&r->done, false);
	assert_int_equal(bs_thread_send_msg(w->t, env_run_msg, r), 0);
	assert_true(env_wait_flag(e, &r->done, 60000));
	free(r);
}

static void env_worker_get_channel(void *ctx)
{
	struct env_worker *w = ctx;

	w->ch = bs_alloc_channel(w->bs);
	w->ch_err = w->ch == NULL ? errno : 0;
}

void env_worker_start(struct store_env *e, struct env_worker *w, const char *name)
{
	memset(w, 0, sizeof(*w));
	w->bs = e->bs;
	w->t = bs_thread_create(name);
	assert_non_null(w->t);
	assert_int_equal(bs_thread_start(w->t), 0);
	env_worker_run(e, w, env_worker_get_channel, w);
	assert_int_equal(w->ch_err, 0);
	assert_non_null(w->ch);
}

static void env_worker_put_channel(void *ctx)
{
	struct env_worker *w = ctx;

	bs_free_channel(w->ch);
	w->ch = NULL;
}

void env_worker_stop(struct store_env *e, struct env_worker *w)
{
	uint64_t end = env_now_ms() + 60000;

	if (w->t == NULL)
		return;
	if (w->ch != NULL)
		env_worker_run(e, w, env_worker_put_channel, w);
	bs_thread_exit(w->t);
	while (!bs_thread_is_exited(w->t) && env_now_ms() < end) {
		bs_thread_poll(e->t, 0);
		sched_yield();
	}
	assert_true(bs_thread_is_exited(w->t));
	assert_int_equal(bs_thread_destroy(w->t), 0);
	w->t = NULL;
}

int env_fixture_setup(void **state)
{
	struct store_env *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	env_setup(e, *state);
	*state = e;
	return 0;
}

int env_fixture_teardown(void **state)
{
	struct store_env *e = *state;

	env_teardown(e);
	free(e);
	return 0;
}
