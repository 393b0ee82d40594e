/* Store test environment (see store_env.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

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

static struct bs_io_channel *env_channel(struct store_env *e)
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
