/*
 * Snapshot suite: snapshot and copy-on-write, clones, read routing through
 * chains, inflate, decouple, set parent, deletes with 0, 1 and several
 * clones, bad input; every arrangement checked again after a clean reload
 * and after a power cut. Runs with 512 B and 4 KiB blocks. Also COW and
 * inflate through the copy offload of a file device (copy forced on).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <blobstore/file_dev.h>

#include "store_env.h"

static const struct store_param g_params[] = {
	{ 512, 64 * 1024, 32ull << 20 },
	{ 4096, 64 * 1024, 32ull << 20 },
	{ 4096, 2048 * 1024, 64ull << 20, true }, /* no copy offload: bounce copies */
};

/* Power-cut sweeps copy the device image per state: keep the device tiny. */
static const struct store_param g_sweep_params[] = {
	{ 512, 64 * 1024, 4ull << 20 },
	{ 4096, 64 * 1024, 4ull << 20, true },
};

/* Every case starts with an empty store. */
static int setup(void **state)
{
	env_fixture_setup(state);
	assert_int_equal(env_init_store(*state, NULL), 0);
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
	assert_int_equal(env_snapshot(e, x, &s), 0);
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
	assert_int_equal(env_snapshot(e, x, &s), 0);
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
		assert_int_equal(env_snapshot(e, x, &s[i]), 0);
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
	bs_blob_id x, s, c[100], ids[128];
	size_t n = 128;
	struct bs_opts o;

	/* 102 blobs: more slots than this small device gets by default. */
	assert_int_equal(env_unload(e), 0);
	bs_opts_init(&o, sizeof(o));
	o.cluster_size = e->cluster_size;
	o.max_blobs = 256;
	assert_int_equal(env_init_store(e, &o), 0);

	assert_int_equal(env_create(e, 2, false, &x), 0);
	put(e, x, 1, 0x77);
	assert_int_equal(env_snapshot(e, x, &s), 0);
	for (int i = 0; i < 100; i++) {
		assert_int_equal(env_clone(e, s, &c[i]), 0);
		if (i % 10 == 0)
			put(e, c[i], 1, (uint8_t)i + 1);
	}
	assert_int_equal(bs_blob_get_clones(e->bs, s, ids, &n), 0);
	assert_int_equal(n, 101); /* 100 clones and the original blob */
	for (int i = 0; i < 100; i++)
		assert_int_equal(get(e, c[i], 1), i % 10 == 0 ? i + 1 : 0x77);
	assert_int_equal(get(e, s, 1), 0x77);
	reload_both_ways(e);
	for (int i = 0; i < 100; i++)
		assert_int_equal(get(e, c[i], 1), i % 10 == 0 ? i + 1 : 0x77);
}

static void test_inflate_and_decouple(void **state)
{
	struct store_env *e = *state;
	bs_blob_id x, s1, s2, p;

	assert_int_equal(env_create(e, 3, true, &x), 0);
	put(e, x, 0, 0x01);
	assert_int_equal(env_snapshot(e, x, &s1), 0);
	put(e, x, 1, 0x02);
	assert_int_equal(env_snapshot(e, x, &s2), 0);
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
	assert_int_equal(env_snapshot(e, a, &sa), 0);
	assert_int_equal(env_create(e, 2, true, &t), 0);
	assert_int_equal(op_id(e, 2, t, sa), 0);
	assert_int_equal(bs_blob_get_parent(e->bs, t, &p), 0);
	assert_int_equal(p, sa);
	assert_int_equal(get(e, t, 0), 0xA0);
	/* Bad input: every one refused, nothing changed. */
	assert_int_equal(env_clone(e, a, &out), -EINVAL);	/* writable parent */
	assert_int_equal(env_snapshot(e, sa, &out), -EINVAL);		/* snapshot of a read-only blob */
	assert_int_equal(env_create(e, 1, true, &small), 0);
	assert_int_equal(op_id(e, 2, small, sa), -EINVAL);	/* size mismatch */
	assert_int_equal(op_id(e, 2, t, t), -EINVAL);		/* itself */
	assert_int_equal(env_snapshot(e, t, &st), 0);
	assert_int_equal(op_id(e, 2, sa, st), -EINVAL);		/* cycle: st descends from sa */
	assert_int_equal(env_snapshot(e, 0, &out), -ENOENT);
	reload_both_ways(e);
	assert_int_equal(get(e, t, 0), 0xA0);
}

/*
 * A set parent whose commit fails (the device refuses writes) leaves the
 * blob reading through its old parent, open, in memory as on disk; after
 * the reload it still has it.
 */
static void test_set_parent_failed_commit_keeps_old_parent(void **state)
{
	struct store_env *e = *state;
	bs_blob_id a, sa, b, sb, t, p = 0;
	struct bs_blob *ht;
	uint8_t *buf = env_buf(e->block_len);

	assert_int_equal(env_create(e, 2, false, &a), 0);
	put(e, a, 0, 0xA1);
	assert_int_equal(env_snapshot(e, a, &sa), 0);
	assert_int_equal(env_create(e, 2, false, &b), 0);
	put(e, b, 0, 0xB1);
	assert_int_equal(env_snapshot(e, b, &sb), 0);
	assert_int_equal(env_clone(e, sa, &t), 0);
	assert_int_equal(env_open(e, t, &ht), 0);
	bs_ram_dev_inject(e->dev, BS_IO_WRITE, 1, -EIO, true);
	assert_int_equal(op_id(e, 2, t, sb), -EIO);
	bs_ram_dev_clear_faults(e->dev);
	assert_int_equal(env_read(e, ht, buf, 0, 1), 0);
	assert_int_equal(buf[0], 0xA1);
	assert_int_equal(env_close(e, ht), -EIO); /* the store is read-only now (D10) */
	env_crash(e, BS_CUT_DROP_ALL, 0);
	assert_int_equal(env_load(e, NULL), 0);
	assert_int_equal(bs_blob_get_parent(e->bs, t, &p), 0);
	assert_int_equal(p, sa);
	assert_int_equal(get(e, t, 0), 0xA1);
	free(buf);
}

/*
 * Deleting a snapshot while its clone is open (the clone's open holds the
 * snapshot as its parent): the snapshot merges into the open clone, whose
 * handle keeps working and reads the same data; a handle of the snapshot
 * itself still makes the delete -EBUSY; with two open clones the snapshot
 * is hidden. Everything holds after a reload.
 */
static void test_delete_snapshot_with_open_clones(void **state)
{
	struct store_env *e = *state;
	uint8_t *buf = env_buf(e->block_len);
	bs_blob_id x, s, s2, c, p = 1;
	struct bs_blob *hx, *hs, *hc;

	assert_int_equal(env_create(e, 3, true, &x), 0);
	put(e, x, 0, 0x41);
	assert_int_equal(env_snapshot(e, x, &s), 0);
	put(e, x, 1, 0x42);
	assert_int_equal(env_open(e, x, &hx), 0);
	assert_int_equal(env_open(e, s, &hs), 0);
	assert_int_equal(env_delete(e, s), -EBUSY); /* the application holds it */
	assert_int_equal(env_close(e, hs), 0);
	assert_int_equal(env_delete(e, s), 0); /* merged into the open clone */
	assert_int_equal(bs_blob_get_parent(e->bs, x, &p), 0);
	assert_int_equal(p, 0);
	assert_int_equal(env_read(e, hx, buf, 0, 1), 0);
	assert_int_equal(buf[0], 0x41);
	memset(buf, 0x43, e->block_len);
	assert_int_equal(env_write(e, hx, buf, 2 * upc(e), 1), 0);
	assert_int_equal(env_close(e, hx), 0);
	/* Two open clones: the snapshot is hidden and keeps serving both. */
	assert_int_equal(env_snapshot(e, x, &s2), 0);
	assert_int_equal(env_clone(e, s2, &c), 0);
	assert_int_equal(env_open(e, x, &hx), 0);
	assert_int_equal(env_open(e, c, &hc), 0);
	assert_int_equal(env_delete(e, s2), 0);
	assert_int_equal(env_read(e, hc, buf, upc(e), 1), 0);
	assert_int_equal(buf[0], 0x42);
	assert_int_equal(env_close(e, hc), 0);
	assert_int_equal(env_close(e, hx), 0);
	assert_int_equal(env_unload(e), 0);
	assert_int_equal(env_load(e, NULL), 0);
	assert_int_equal(get(e, x, 0), 0x41);
	assert_int_equal(get(e, x, 1), 0x42);
	assert_int_equal(get(e, x, 2), 0x43);
	assert_int_equal(get(e, c, 0), 0x41);
	consistent(e);
	free(buf);
}

/*
 * A hidden snapshot whose collapse a crash cut short is collapsed at load.
 * S (snapshot of X) has clones X and A; deleting S hides it; deleting A
 * commits A's tombstone, then the merge of S into X fails (the device
 * refuses every later write) and the power goes. The recovering load finds
 * S hidden with X as its only clone and merges it: X has no parent, reads
 * its data, and S is gone.
 */
static void test_collapse_finished_at_load(void **state)
{
	struct store_env *e = *state;
	bs_blob_id x, s, a, p = 1;

	assert_int_equal(env_create(e, 3, true, &x), 0);
	put(e, x, 0, 0x11);
	put(e, x, 2, 0x22);
	assert_int_equal(env_snapshot(e, x, &s), 0);
	put(e, x, 1, 0x33);
	assert_int_equal(env_clone(e, s, &a), 0);
	assert_int_equal(env_delete(e, s), 0);
	assert_int_equal(env_flush(e), 0);
	bs_ram_dev_inject(e->dev, BS_IO_WRITE, 2, -EIO, true); /* after A's tombstone */
	(void)env_delete(e, a);
	bs_ram_dev_clear_faults(e->dev);
	env_crash(e, BS_CUT_DROP_ALL, 0);
	assert_int_equal(env_load(e, NULL), 0);
	assert_int_equal(bs_blob_get_parent(e->bs, x, &p), 0);
	assert_int_equal(p, 0);
	assert_int_equal(bs_blob_get_parent(e->bs, s, &p), -ENOENT);
	assert_int_equal(get(e, x, 0), 0x11);
	assert_int_equal(get(e, x, 1), 0x33);
	assert_int_equal(get(e, x, 2), 0x22);
	consistent(e);
}

static void test_delete_snapshot_with_0_1_n_clones(void **state)
{
	struct store_env *e = *state;
	bs_blob_id x, s, c1, c2, out, p;
	uint64_t free0 = bs_get_free_cluster_count(e->bs);

	assert_int_equal(env_create(e, 2, false, &x), 0);
	put(e, x, 0, 0x10);
	assert_int_equal(env_snapshot(e, x, &s), 0);
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
	assert_int_equal(env_snapshot(e, x, &s), 0);
	assert_int_equal(env_clone(e, s, &c1), 0);
	assert_int_equal(env_clone(e, s, &c2), 0);
	assert_int_equal(env_delete(e, s), 0);
	assert_int_equal(get(e, c1, 0), 0x10);
	{
		struct bs_blob *b;

		assert_int_equal(env_open(e, s, &b), -ENOENT);
	}
	assert_int_equal(env_clone(e, s, &out), -ENOENT);
	reload_both_ways(e);
	assert_int_equal(get(e, c2, 1), 0x20);
	/* Its clones go one by one; with one left it merges into it and is gone. */
	assert_int_equal(env_delete(e, c1), 0);
	assert_int_equal(bs_blob_get_parent(e->bs, x, &p), 0);
	assert_int_equal(p, s); /* still two clones: x and c2 */
	assert_int_equal(env_delete(e, c2), 0);
	assert_int_equal(bs_blob_get_parent(e->bs, x, &p), 0);
	assert_int_equal(p, 0); /* merged into x */
	assert_int_equal(bs_blob_get_parent(e->bs, s, &p), -ENOENT);
	assert_int_equal(get(e, x, 0), 0x10);
	assert_int_equal(get(e, x, 1), 0x20);
	assert_int_equal(bs_get_free_cluster_count(e->bs), free0 - 2);
	reload_both_ways(e);
	/* Zero clones: a plain delete. */
	assert_int_equal(env_create(e, 1, false, &x), 0);
	assert_int_equal(env_snapshot(e, x, &s), 0);
	assert_int_equal(op_id(e, 0, x, 0), 0); /* inflate: s has no clone left */
	assert_int_equal(env_delete(e, s), 0);
	consistent(e);
}

/* ---------------------------------------------------------------- sweeps
 * For each operation: build a base state and make it durable; count the
 * operation's device IOs; then for every cut point k the device dies at its
 * k-th IO (persistent -EIO), the power is cut (keep all, drop all, torn,
 * random), the store reloads and is checked, and the blobs must show the
 * old or the new arrangement as a whole (D13), the new one if the
 * operation had reported success.
 */
struct sweep_ctx {
	bs_blob_id x, s, c, d;
	int which;		/* operation under test */
	int rc;			/* what the operation reported */
};

enum { SW_SNAPSHOT, SW_CLONE, SW_INFLATE, SW_DECOUPLE, SW_SET_PARENT, SW_DELETE_1, SW_DELETE_N,
       SW_COUNT };

static void sweep_build(struct store_env *e, struct sweep_ctx *x)
{
	assert_int_equal(env_create(e, 3, true, &x->x), 0);
	put(e, x->x, 0, 0x5A);
	put(e, x->x, 2, 0x6B);
	if (x->which == SW_SNAPSHOT)
		return;
	assert_int_equal(env_snapshot(e, x->x, &x->s), 0);
	put(e, x->x, 1, 0x7C);
	if (x->which == SW_SET_PARENT)
		assert_int_equal(env_create(e, 3, true, &x->d), 0);
	if (x->which == SW_DECOUPLE || x->which == SW_DELETE_N)
		assert_int_equal(env_clone(e, x->s, &x->c), 0);
}

static int sweep_op(struct store_env *e, struct sweep_ctx *x)
{
	bs_blob_id out;

	switch (x->which) {
	case SW_SNAPSHOT: return env_snapshot(e, x->x, &out);
	case SW_CLONE: return env_clone(e, x->s, &out);
	case SW_INFLATE: return op_id(e, 0, x->x, 0);
	case SW_DECOUPLE: return op_id(e, 1, x->x, 0);
	case SW_SET_PARENT: return op_id(e, 2, x->d, x->s);
	case SW_DELETE_1: return env_delete(e, x->s);
	default: return env_delete(e, x->s);
	}
}

static int count_blobs(struct store_env *e)
{
	int n = 0;

	for (bs_blob_id it = bs_iter_first(e->bs); it; it = bs_iter_next(e->bs, it))
		n++;
	return n;
}

/* The blob's data is the same in both arrangements; its parent says which one. */
static void sweep_verify(struct store_env *e, struct sweep_ctx *x)
{
	bs_blob_id p = 0;
	bool moved;

	consistent(e);
	assert_int_equal(get(e, x->x, 0), 0x5A);
	assert_int_equal(get(e, x->x, 2), 0x6B);
	assert_int_equal(bs_blob_get_parent(e->bs, x->x, &p), 0);
	switch (x->which) {
	case SW_SNAPSHOT:
		moved = p != 0;
		assert_int_equal(count_blobs(e), moved ? 2 : 1);
		assert_int_equal(allocated(e, x->x), moved ? 0 : 2);
		break;
	case SW_CLONE:
		moved = count_blobs(e) == 3;
		break;
	case SW_INFLATE:
	case SW_DECOUPLE:
		moved = p == 0;
		assert_int_equal(allocated(e, x->x), moved ? (x->which == SW_INFLATE ? 3 : 3) : 1);
		break;
	case SW_SET_PARENT:
		assert_int_equal(bs_blob_get_parent(e->bs, x->d, &p), 0);
		moved = p == x->s;
		assert_int_equal(get(e, x->d, 0), moved ? 0x5A : 0);
		break;
	default:
		moved = bs_blob_get_parent(e->bs, x->s, &p) == -ENOENT || count_blobs(e) < 3;
		break;
	}
	if (x->rc == 0)
		assert_true(moved); /* D4: reported done, so it is durable */
}

static void sweep_new_dev(struct store_env *e, const uint8_t *image)
{
	struct bs_ram_dev_opts o;
	struct th_cpl c = { 0 };

	bs_dev_close(e->dev, th_cpl_fn, &c);
	assert_int_equal(env_wait(e, &c), 0);
	bs_ram_dev_opts_init(&o);
	o.block_len = e->block_len;
	o.block_count = e->dev_bytes / e->block_len;
	o.image = image;
	assert_int_equal(bs_ram_dev_create(&o, &e->dev), 0);
}

static uint64_t dev_ios(struct store_env *e)
{
	struct bs_ram_dev_stats st;
	uint64_t n = st.failed = 0;

	bs_ram_dev_get_stats(e->dev, &st);
	for (int i = 0; i < BS_IO_NTYPES; i++)
		n += st.ops[i];
	return n + st.failed;
}

/* One cut point: die at IO k, cut with @mode, reload, verify. */
static void sweep_cut(struct store_env *e, struct sweep_ctx *x, const uint8_t *image,
		      uint64_t k, enum bs_power_cut_mode mode)
{
	if (getenv("SWEEP_TRACE"))
		fprintf(stderr, "sweep op %d k %lu mode %d\n", x->which, (unsigned long)k, (int)mode);
	sweep_new_dev(e, image);
	assert_int_equal(env_load(e, NULL), 0);
	bs_ram_dev_inject(e->dev, BS_RAM_ANY_IO, k, -EIO, true);
	x->rc = sweep_op(e, x);
	env_crash(e, mode, k * 31 + (uint64_t)mode);
	bs_ram_dev_clear_faults(e->dev);
	assert_int_equal(env_load(e, NULL), 0);
	sweep_verify(e, x);
	env_crash(e, BS_CUT_KEEP_ALL, 0);
}

static uint64_t g_sweep_states;

static void test_D13_power_cut_sweeps(void **state)
{
	static const enum bs_power_cut_mode modes[] = {
		BS_CUT_KEEP_ALL, BS_CUT_DROP_ALL, BS_CUT_TEAR_ALL, BS_CUT_RANDOM,
	};
	struct store_env *e = *state;
	size_t bytes = e->dev_bytes;
	uint8_t *image = malloc(bytes);

	assert_int_equal(env_unload(e), 0); /* the sweep makes its own devices */
	for (int which = 0; which < SW_COUNT; which++) {
		struct sweep_ctx x = { .which = which };
		uint64_t before, n;

		sweep_new_dev(e, NULL);
		assert_int_equal(env_init_store(e, NULL), 0);
		sweep_build(e, &x);
		assert_int_equal(env_flush(e), 0);
		env_crash(e, BS_CUT_DROP_ALL, 0);
		memcpy(image, bs_ram_dev_durable(e->dev), bytes);
		assert_int_equal(env_load(e, NULL), 0);
		before = dev_ios(e);
		x.rc = sweep_op(e, &x);
		assert_int_equal(x.rc, 0);
		n = dev_ios(e) - before;
		env_crash(e, BS_CUT_KEEP_ALL, 0);
		for (uint64_t k = 1; k <= n + 1; k++)
			for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++)
				sweep_cut(e, &x, image, k, modes[m]), g_sweep_states++;
	}
	printf("D13 sweep: %lu crash states checked, 0 failing\n", (unsigned long)g_sweep_states);
	free(image);
	sweep_new_dev(e, NULL);
	assert_int_equal(env_init_store(e, NULL), 0);
}

/* ------------------------------------------------------------------------
 * Copy offload on a file device (bs_file_dev_opts.copy = ON)
 * ------------------------------------------------------------------------ */

/* A store geometry plus the file backend to run it on. */
struct file_param {
	struct store_param sp;		/* first: the fixture's *state */
	enum bs_file_backend backend;
};

static const struct file_param g_file_params[] = {
	{ { 512, 64 * 1024, 32ull << 20 }, BS_FILE_BACKEND_PSYNC },
	{ { 4096, 1024 * 1024, 32ull << 20 }, BS_FILE_BACKEND_URING },
};

/* The env with its RAM device swapped for a file device (already unlinked,
 * the descriptor keeps it) that offers copy offload, and an empty store. */
static int setup_file_copy(void **state)
{
	const struct file_param *p = *state;
	struct bs_file_dev_opts o;
	struct store_env *e;
	struct th_cpl c = { 0 };
	char path[4096];
	int fd;

	env_fixture_setup(state);
	e = *state;
	bs_dev_close(e->dev, th_cpl_fn, &c);
	assert_int_equal(env_wait(e, &c), 0);
	snprintf(path, sizeof(path), "%s/snapshot_copy_XXXXXX", th_test_dir());
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	bs_file_dev_opts_init(&o);
	o.block_len = p->sp.block_len;
	o.create_size = p->sp.dev_bytes;
	o.backend = p->backend;
	o.copy = BS_FILE_COPY_ON;
	assert_int_equal(bs_file_dev_open(path, &o, &e->dev), 0);
	unlink(path);
	assert_true(bs_dev_has_copy(e->dev));
	assert_int_equal(env_init_store(e, NULL), 0);
	return 0;
}

/* Cluster @cl of @id reads back as @expect (one cluster). */
static void expect_cluster(struct store_env *e, bs_blob_id id, uint64_t cl, const uint8_t *expect)
{
	uint8_t *r = env_buf(e->cluster_size);
	struct bs_blob *b;

	assert_int_equal(env_open(e, id, &b), 0);
	assert_int_equal(env_read(e, b, r, cl * upc(e), upc(e)), 0);
	assert_memory_equal(r, expect, e->cluster_size);
	assert_int_equal(env_close(e, b), 0);
	free(r);
}

/*
 * With a device copy op the data path's copy-on-write and inflate copy
 * clusters with the device (no bounce buffer exists then): a sub-cluster
 * write into a snapshotted cluster keeps the rest of the snapshot's data,
 * and an inflated clone reads its parent's data from clusters of its own;
 * also after a clean reload.
 */
static void test_file_dev_copy_offload_cow_and_inflate(void **state)
{
	struct store_env *e = *state;
	size_t cs = e->cluster_size;
	uint8_t *w = env_buf(4 * cs), *cow = env_buf(cs);
	struct bs_blob *b;
	bs_blob_id x, s, c, parent;

	th_fill(w, 4 * cs, 77);
	assert_int_equal(env_create(e, 4, false, &x), 0);
	assert_int_equal(env_open(e, x, &b), 0);
	assert_int_equal(env_write(e, b, w, 0, 4 * upc(e)), 0);
	assert_int_equal(env_close(e, b), 0);
	assert_int_equal(env_snapshot(e, x, &s), 0);

	memcpy(cow, w + cs, cs);
	memset(cow + 3 * e->block_len, 0xC5, e->block_len);
	assert_int_equal(env_open(e, x, &b), 0);
	assert_int_equal(env_write(e, b, cow + 3 * e->block_len, upc(e) + 3, 1), 0);
	assert_int_equal(env_close(e, b), 0);
	assert_int_equal(allocated(e, x), 1);
	expect_cluster(e, x, 1, cow);
	expect_cluster(e, s, 1, w + cs);

	assert_int_equal(env_clone(e, s, &c), 0);
	assert_int_equal(op_id(e, 0, c, 0), 0);	/* inflate */
	assert_int_equal(allocated(e, c), 4);
	assert_int_equal(bs_blob_get_parent(e->bs, c, &parent), 0);
	assert_int_equal(parent, BS_BLOB_ID_INVALID);
	consistent(e);
	assert_int_equal(env_unload(e), 0);
	assert_int_equal(env_load(e, NULL), 0);
	consistent(e);
	for (uint64_t cl = 0; cl < 4; cl++)
		expect_cluster(e, c, cl, w + cl * cs);
	expect_cluster(e, x, 1, cow);
	free(w);
	free(cow);
}

#define PARAM(fn)                                                                         \
	cmocka_unit_test_prestate_setup_teardown(fn, setup, env_fixture_teardown, (void *)&g_params[0]), \
	cmocka_unit_test_prestate_setup_teardown(fn, setup, env_fixture_teardown, (void *)&g_params[1]), \
	cmocka_unit_test_prestate_setup_teardown(fn, setup, env_fixture_teardown, (void *)&g_params[2])

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
		PARAM(test_collapse_finished_at_load),
		PARAM(test_delete_snapshot_with_open_clones),
		PARAM(test_set_parent_failed_commit_keeps_old_parent),
		cmocka_unit_test_prestate_setup_teardown(test_D13_power_cut_sweeps, setup, env_fixture_teardown,
							 (void *)&g_sweep_params[0]),
		cmocka_unit_test_prestate_setup_teardown(test_D13_power_cut_sweeps, setup, env_fixture_teardown,
							 (void *)&g_sweep_params[1]),
		cmocka_unit_test_prestate_setup_teardown(test_file_dev_copy_offload_cow_and_inflate,
							 setup_file_copy, env_fixture_teardown,
							 (void *)&g_file_params[0]),
		cmocka_unit_test_prestate_setup_teardown(test_file_dev_copy_offload_cow_and_inflate,
							 setup_file_copy, env_fixture_teardown,
							 (void *)&g_file_params[1]),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
