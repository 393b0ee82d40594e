/*
 * Snapshot suite: snapshot and copy-on-write, clones, read routing through
 * chains, inflate, decouple, set parent, deletes with 0, 1 and several
 * clones, bad input; every arrangement checked again after a clean reload
 * and after a power cut. Runs with 512 B and 4 KiB blocks.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store_env.h"

static const struct store_param g_params[] = {
	{ 512, 64 * 1024, 32ull << 20 },
	{ 4096, 64 * 1024, 32ull << 20 },
	{ 4096, 2048 * 1024, 64ull << 20, true }, /* no copy offload: bounce copies */
};

static int setup(void **state)
{
	struct store_env *e = calloc(1, sizeof(*e));

	env_setup(e, *state);
	*state = e;
	assert_int_equal(env_init_store(e, NULL), 0);
	return 0;
}

static int teardown(void **state)
{
	struct store_env *e = *state;

	env_teardown(e);
	free(e);
	return 0;
}

static uint64_t upc(struct store_env *e)
{
	return e->cluster_size / e->block_len;
}

static void consistent(struct store_env *e)
{
	struct bs_check_report r;

	assert_int_equal(env_check(e, &r), 0);
	assert_int_equal(r.problems, 0);
}

static int snap(struct store_env *e, bs_blob_id id, bs_blob_id *out)
{
	struct th_cpl c = { 0 };

	bs_blob_snapshot(e->bs, id, NULL, 0, out, th_cpl_fn, &c);
	return env_wait(e, &c);
}

static int clone_of(struct store_env *e, bs_blob_id id, bs_blob_id *out)
{
	struct th_cpl c = { 0 };

	bs_blob_clone(e->bs, id, NULL, 0, out, th_cpl_fn, &c);
	return env_wait(e, &c);
}

static int op_id(struct store_env *e, int which, bs_blob_id id, bs_blob_id arg)
{
	struct th_cpl c = { 0 };

	if (which == 0)
		bs_blob_inflate(e->bs, id, th_cpl_fn, &c);
	else if (which == 1)
		bs_blob_decouple_parent(e->bs, id, th_cpl_fn, &c);
	else
		bs_blob_set_parent(e->bs, id, arg, th_cpl_fn, &c);
	return env_wait(e, &c);
}

/* Write one io unit tagged (blob tag, cluster) at the start of cluster @cl. */
static void put(struct store_env *e, bs_blob_id id, uint64_t cl, uint8_t tag)
{
	uint8_t *buf = env_buf(e->block_len);
	struct bs_blob *b;

	memset(buf, tag, e->block_len);
	assert_int_equal(env_open(e, id, &b), 0);
	assert_int_equal(env_write(e, b, buf, cl * upc(e), 1), 0);
	assert_int_equal(env_close(e, b), 0);
	free(buf);
}

/* The first byte of cluster @cl as read through @id (0 if it reads zeros). */
static uint8_t get(struct store_env *e, bs_blob_id id, uint64_t cl)
{
	uint8_t *buf = env_buf(e->block_len);
	struct bs_blob *b;
	uint8_t v;

	assert_int_equal(env_open(e, id, &b), 0);
	assert_int_equal(env_read(e, b, buf, cl * upc(e), 1), 0);
	for (uint32_t i = 1; i < e->block_len; i++)
		assert_int_equal(buf[i], buf[0]);
	v = buf[0];
	assert_int_equal(env_close(e, b), 0);
	free(buf);
	return v;
}

static uint64_t allocated(struct store_env *e, bs_blob_id id)
{
	struct bs_blob *b;
	uint64_t n;

	assert_int_equal(env_open(e, id, &b), 0);
	n = bs_blob_get_num_allocated_clusters(b);
	assert_int_equal(env_close(e, b), 0);
	return n;
}

/* Clean reload, then a power cut and recovery: the arrangement must hold. */
static void reload_both_ways(struct store_env *e)
{
	consistent(e);
	assert_int_equal(env_unload(e), 0);
	assert_int_equal(env_load(e, NULL), 0);
	consistent(e);
	env_crash(e, BS_CUT_DROP_ALL, 0);
	assert_int_equal(env_load(e, NULL), 0);
	consistent(e);
}

static void test_snapshot_cow_and_reads(void **state)
{
	struct store_env *e = *state;
	bs_blob_id x, s, parent;
	uint64_t free0;

	assert_int_equal(env_create(e, 4, false, &x), 0);
	put(e, x, 0, 0x11);
	put(e, x, 2, 0x22);
	free0 = bs_get_free_cluster_count(e->bs);
	assert_int_equal(snap(e, x, &s), 0);
	assert_int_equal(bs_get_free_cluster_count(e->bs), free0); /* O(1): nothing copied */
	assert_int_equal(bs_blob_get_parent(e->bs, x, &parent), 0);
	assert_int_equal(parent, s);
	assert_int_equal(allocated(e, x), 0);
	assert_int_equal(allocated(e, s), 4);
	assert_int_equal(get(e, x, 0), 0x11); /* read through to the snapshot */
	assert_int_equal(get(e, x, 2), 0x22);
	put(e, x, 0, 0x33); /* copy-on-write at a cluster edge */
	assert_int_equal(get(e, x, 0), 0x33);
	assert_int_equal(get(e, s, 0), 0x11);
	assert_int_equal(allocated(e, x), 1);
	reload_both_ways(e);
	assert_int_equal(get(e, x, 0), 0x33);
	assert_int_equal(get(e, x, 2), 0x22);
	assert_int_equal(get(e, s, 0), 0x11);
}

/* The rest of a COW cluster keeps the parent's data (sub-cluster write). */
static void test_cow_sub_cluster_keeps_rest(void **state)
{
	struct store_env *e = *state;
	uint8_t *w = env_buf(e->cluster_size), *r = env_buf(e->cluster_size);
	struct bs_blob *b;
	bs_blob_id x, s;

	th_fill(w, e->cluster_size, 42);
	assert_int_equal(env_create(e, 2, false, &x), 0);
	assert_int_equal(env_open(e, x, &b), 0);
	assert_int_equal(env_write(e, b, w, 0, upc(e)), 0);
	assert_int_equal(env_close(e, b), 0);
	assert_int_equal(snap(e, x, &s), 0);
	assert_int_equal(env_open(e, x, &b), 0);
	memset(w + e->block_len, 0xEE, e->block_len);
	assert_int_equal(env_write(e, b, w + e->block_len, 1, 1), 0);
	assert_int_equal(env_read(e, b, r, 0, upc(e)), 0);
	assert_memory_equal(r, w, e->cluster_size);
	assert_int_equal(env_close(e, b), 0);
	reload_both_ways(e);
	assert_int_equal(env_open(e, x, &b), 0);
	assert_int_equal(env_read(e, b, r, 0, upc(e)), 0);
	assert_memory_equal(r, w, e->cluster_size);
	assert_int_equal(env_close(e, b), 0);
	free(w);
	free(r);
}

/* Depth 5: each level owns one cluster; reads route to the right level. */
static void test_chain_depth_5(void **state)
{
	struct store_env *e = *state;
	bs_blob_id x, s[5], p;

	assert_int_equal(env_create(e, 6, true, &x), 0);
	for (int i = 0; i < 5; i++) {
		put(e, x, (uint64_t)i, (uint8_t)(0x40 + i));
		assert_int_equal(snap(e, x, &s[i]), 0);
	}
	put(e, x, 5, 0x50);
	for (int i = 0; i < 5; i++)
		assert_int_equal(get(e, x, (uint64_t)i), 0x40 + i);
	assert_int_equal(get(e, x, 5), 0x50);
	assert_int_equal(get(e, s[2], 1), 0x41);
	assert_int_equal(get(e, s[2], 3), 0); /* written after s[2]: not in it */
	assert_int_equal(bs_blob_get_parent(e->bs, s[4], &p), 0);
	assert_int_equal(p, s[3]);
	reload_both_ways(e);
	for (int i = 0; i < 5; i++)
		assert_int_equal(get(e, x, (uint64_t)i), 0x40 + i);
}

static void test_clones_of_a_golden_image(void **state)
{
	struct store_env *e = *state;
	bs_blob_id x, s, c[20], ids[32];
	size_t n = 32;

	assert_int_equal(env_create(e, 2, false, &x), 0);
	put(e, x, 1, 0x77);
	assert_int_equal(snap(e, x, &s), 0);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(clone_of(e, s, &c[i]), 0);
		if (i % 5 == 0)
			put(e, c[i], 1, (uint8_t)i + 1);
	}
	assert_int_equal(bs_blob_get_clones(e->bs, s, ids, &n), 0);
	assert_int_equal(n, 21); /* 20 clones and the original blob */
	for (int i = 0; i < 20; i++)
		assert_int_equal(get(e, c[i], 1), i % 5 == 0 ? i + 1 : 0x77);
	assert_int_equal(get(e, s, 1), 0x77);
	reload_both_ways(e);
	for (int i = 0; i < 20; i++)
		assert_int_equal(get(e, c[i], 1), i % 5 == 0 ? i + 1 : 0x77);
}

static void test_inflate_and_decouple(void **state)
{
	struct store_env *e = *state;
	bs_blob_id x, s1, s2, p;

	assert_int_equal(env_create(e, 3, true, &x), 0);
	put(e, x, 0, 0x01);
	assert_int_equal(snap(e, x, &s1), 0);
	put(e, x, 1, 0x02);
	assert_int_equal(snap(e, x, &s2), 0);
	/* decouple: copy what s2 owns (cluster 1), re-parent to s1 */
	assert_int_equal(op_id(e, 1, x, 0), 0);
	assert_int_equal(bs_blob_get_parent(e->bs, x, &p), 0);
	assert_int_equal(p, s1);
	assert_int_equal(allocated(e, x), 1);
	assert_int_equal(get(e, x, 0), 0x01);
	assert_int_equal(get(e, x, 1), 0x02);
	/* inflate: every cluster its own, no parent */
	assert_int_equal(op_id(e, 0, x, 0), 0);
	assert_int_equal(bs_blob_get_parent(e->bs, x, &p), 0);
	assert_int_equal(p, 0);
	assert_int_equal(allocated(e, x), 3);
	assert_int_equal(get(e, x, 0), 0x01);
	assert_int_equal(get(e, x, 2), 0);
	reload_both_ways(e);
	assert_int_equal(get(e, x, 0), 0x01);
	assert_int_equal(get(e, x, 1), 0x02);
	assert_int_equal(op_id(e, 1, x, 0), -EINVAL); /* no parent to decouple from */
}

static void test_set_parent_and_bad_input(void **state)
{
	struct store_env *e = *state;
	bs_blob_id a, sa, t, st, small, p, out;

	assert_int_equal(env_create(e, 2, false, &a), 0);
	put(e, a, 0, 0xA0);
	assert_int_equal(snap(e, a, &sa), 0);
	assert_int_equal(env_create(e, 2, true, &t), 0);
	assert_int_equal(op_id(e, 2, t, sa), 0);
	assert_int_equal(bs_blob_get_parent(e->bs, t, &p), 0);
	assert_int_equal(p, sa);
	assert_int_equal(get(e, t, 0), 0xA0);
	/* Bad input: every one refused, nothing changed. */
	assert_int_equal(clone_of(e, a, &out), -EINVAL);	/* writable parent */
	assert_int_equal(snap(e, sa, &out), -EINVAL);		/* snapshot of a read-only blob */
	assert_int_equal(env_create(e, 1, true, &small), 0);
	assert_int_equal(op_id(e, 2, small, sa), -EINVAL);	/* size mismatch */
	assert_int_equal(op_id(e, 2, t, t), -EINVAL);		/* itself */
	assert_int_equal(snap(e, t, &st), 0);
	assert_int_equal(op_id(e, 2, sa, st), -EINVAL);		/* cycle: st descends from sa */
	assert_int_equal(snap(e, 0, &out), -ENOENT);
	reload_both_ways(e);
	assert_int_equal(get(e, t, 0), 0xA0);
}

static void test_delete_snapshot_with_0_1_n_clones(void **state)
{
	struct store_env *e = *state;
	bs_blob_id x, s, c1, c2, out, p;
	uint64_t free0 = bs_get_free_cluster_count(e->bs);

	assert_int_equal(env_create(e, 2, false, &x), 0);
	put(e, x, 0, 0x10);
	assert_int_equal(snap(e, x, &s), 0);
	put(e, x, 1, 0x20);
	/* One clone (x): merge; x keeps reading the same data. */
	assert_int_equal(env_delete(e, s), 0);
	assert_int_equal(bs_blob_get_parent(e->bs, x, &p), 0);
	assert_int_equal(p, 0);
	assert_int_equal(get(e, x, 0), 0x10);
	assert_int_equal(get(e, x, 1), 0x20);
	assert_int_equal(bs_get_free_cluster_count(e->bs), free0 - 2);
	consistent(e);
	/* Several clones: hidden, still serving them. */
	assert_int_equal(snap(e, x, &s), 0);
	assert_int_equal(clone_of(e, s, &c1), 0);
	assert_int_equal(clone_of(e, s, &c2), 0);
	assert_int_equal(env_delete(e, s), 0);
	assert_int_equal(get(e, c1, 0), 0x10);
	{
		struct bs_blob *b;

		assert_int_equal(env_open(e, s, &b), -ENOENT);
	}
	assert_int_equal(clone_of(e, s, &out), -ENOENT);
	reload_both_ways(e);
	assert_int_equal(get(e, c2, 1), 0x20);
	/* Zero clones: a plain delete. */
	assert_int_equal(env_create(e, 1, false, &x), 0);
	assert_int_equal(snap(e, x, &s), 0);
	assert_int_equal(op_id(e, 0, x, 0), 0); /* inflate: s has no clone left */
	assert_int_equal(env_delete(e, s), 0);
	consistent(e);
}

#define PARAM(fn)                                                                         \
	cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown, (void *)&g_params[0]), \
	cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown, (void *)&g_params[1]), \
	cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown, (void *)&g_params[2])

int main(void)
{
	const struct CMUnitTest tests[] = {
		PARAM(test_snapshot_cow_and_reads),
		PARAM(test_cow_sub_cluster_keeps_rest),
		PARAM(test_chain_depth_5),
		PARAM(test_clones_of_a_golden_image),
		PARAM(test_inflate_and_decouple),
		PARAM(test_set_parent_and_bad_input),
		PARAM(test_delete_snapshot_with_0_1_n_clones),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
