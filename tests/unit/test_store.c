/*
 * Store suite: lifecycle, persistence across clean unload/load and across
 * dirty shutdown, blob operations, xattrs, thin provisioning, the data path,
 * bad input. Every case runs under each geometry in g_params (512 B and
 * 4 KiB blocks, 64 KiB and 1 MiB clusters).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blob/store_int.h"
#include "store_env.h"

static const struct store_param g_params[] = {
	{ 512, 64 * 1024, 32ull << 20 },
	{ 4096, 64 * 1024, 32ull << 20 },
	{ 512, 1024 * 1024, 128ull << 20 },
	{ 4096, 1024 * 1024, 128ull << 20 },
};

static void assert_consistent(struct store_env *e)
{
	struct bs_check_report r;

	assert_int_equal(env_check(e, &r), 0);
	assert_int_equal(r.problems, 0);
}

/* io units per cluster */
static uint64_t upc(struct store_env *e)
{
	return e->cluster_size / e->block_len;
}

static void test_init_unload_load_clean(void **state)
{
	struct store_env *e = *state;
	struct bs_load_report rep;
	uint64_t free_before;

	assert_int_equal(env_init_store(e, NULL), 0);
	free_before = bs_get_free_cluster_count(e->bs);
	assert_true(free_before > 0);
	assert_int_equal(bs_get_free_cluster_count(e->bs), bs_get_total_data_cluster_count(e->bs));
	assert_int_equal(bs_get_io_unit_size(e->bs), e->block_len);
	assert_int_equal(bs_get_cluster_size(e->bs), e->cluster_size);
	assert_consistent(e);
	assert_int_equal(env_unload(e), 0);
	assert_int_equal(env_load(e, NULL), 0);
	bs_get_load_report(e->bs, &rep);
	assert_true(rep.was_clean);
	assert_false(rep.recovered);
	assert_int_equal(bs_get_free_cluster_count(e->bs), free_before);
	assert_consistent(e);
}

static void test_create_write_read_persist(void **state)
{
	struct store_env *e = *state;
	uint64_t n = upc(e) * 3;
	uint8_t *w = env_buf(n * e->block_len), *r = env_buf(n * e->block_len);
	struct bs_blob *b;
	bs_blob_id id;

	th_fill(w, n * e->block_len, 1);
	assert_int_equal(env_init_store(e, NULL), 0);
	assert_int_equal(env_create(e, 4, false, &id), 0);
	assert_int_equal(env_open(e, id, &b), 0);
	assert_int_equal(bs_blob_get_num_clusters(b), 4);
	assert_int_equal(bs_blob_get_num_allocated_clusters(b), 4);
	/* Unaligned to clusters: spans four clusters. */
	assert_int_equal(env_write(e, b, w, upc(e) / 2, n), 0);
	assert_int_equal(env_read(e, b, r, upc(e) / 2, n), 0);
	assert_memory_equal(w, r, n * e->block_len);
	assert_int_equal(env_sync(e, b), 0);
	assert_int_equal(env_close(e, b), 0);
	assert_consistent(e);
	assert_int_equal(env_unload(e), 0);
	assert_int_equal(env_load(e, NULL), 0);
	assert_int_equal(env_open(e, id, &b), 0);
	memset(r, 0, n * e->block_len);
	assert_int_equal(env_read(e, b, r, upc(e) / 2, n), 0);
	assert_memory_equal(w, r, n * e->block_len);
	assert_int_equal(env_close(e, b), 0);
	assert_consistent(e);
	free(w);
	free(r);
}

static void test_dirty_shutdown_recovers_synced_state(void **state)
{
	struct store_env *e = *state;
	uint64_t n = upc(e);
	uint8_t *w = env_buf(n * e->block_len), *r = env_buf(n * e->block_len);
	struct bs_load_report rep;
	struct bs_blob *b;
	bs_blob_id id, id2;

	th_fill(w, n * e->block_len, 2);
	assert_int_equal(env_init_store(e, NULL), 0);
	assert_int_equal(env_create(e, 2, true, &id), 0);
	assert_int_equal(env_open(e, id, &b), 0);
	assert_int_equal(bs_blob_set_xattr(b, "name", "alpha", 5), 0);
	assert_int_equal(env_write(e, b, w, n, n), 0);
	assert_int_equal(env_sync(e, b), 0);
	/* Unsynced changes after the sync: may or may not survive, never corrupt. */
	assert_int_equal(bs_blob_set_xattr(b, "name", "beta", 4), 0);
	assert_int_equal(env_create(e, 1, false, &id2), 0);
	env_crash(e, BS_CUT_DROP_ALL, 0);
	assert_int_equal(env_load(e, NULL), 0);
	bs_get_load_report(e->bs, &rep);
	assert_true(rep.recovered);
	assert_int_equal(env_open(e, id, &b), 0);
	{
		const void *v;
		uint32_t len;

		assert_int_equal(bs_blob_get_xattr(b, "name", &v, &len), 0);
		assert_int_equal(len, 5);
		assert_memory_equal(v, "alpha", 5);
	}
	assert_int_equal(bs_blob_get_num_allocated_clusters(b), 1);
	assert_int_equal(env_read(e, b, r, n, n), 0);
	assert_memory_equal(w, r, n * e->block_len);
	assert_int_equal(env_close(e, b), 0);
	/* The second create completed, so it is durable. */
	assert_int_equal(env_open(e, id2, &b), 0);
	assert_int_equal(env_close(e, b), 0);
	assert_consistent(e);
	free(w);
	free(r);
}

static void test_thin_reads_zero_and_allocates(void **state)
{
	struct store_env *e = *state;
	uint64_t n = 8;
	uint8_t *w = env_buf(n * e->block_len), *r = env_buf(n * e->block_len);
	uint64_t free0;
	struct bs_blob *b;
	bs_blob_id id;

	assert_int_equal(env_init_store(e, NULL), 0);
	free0 = bs_get_free_cluster_count(e->bs);
	assert_int_equal(env_create(e, 10, true, &id), 0);
	assert_int_equal(bs_get_free_cluster_count(e->bs), free0);
	assert_int_equal(env_open(e, id, &b), 0);
	assert_true(bs_blob_is_thin(b));
	memset(r, 0xAA, n * e->block_len);
	assert_int_equal(env_read(e, b, r, 5 * upc(e), n), 0);
	for (uint64_t i = 0; i < n * e->block_len; i++)
		assert_int_equal(r[i], 0);
	th_fill(w, n * e->block_len, 3);
	assert_int_equal(env_write(e, b, w, 5 * upc(e) + 3, n), 0);
	assert_int_equal(bs_blob_get_num_allocated_clusters(b), 1);
	assert_int_equal(bs_get_free_cluster_count(e->bs), free0 - 1);
	assert_int_equal(bs_blob_next_allocated_io_unit(b, 0), 5 * upc(e));
	assert_int_equal(bs_blob_next_unallocated_io_unit(b, 5 * upc(e)), 6 * upc(e));
	assert_int_equal(env_read(e, b, r, 5 * upc(e) + 3, n), 0);
	assert_memory_equal(w, r, n * e->block_len);
	/* The rest of the new cluster reads as zeros (D8). */
	assert_int_equal(env_read(e, b, r, 5 * upc(e) + 3 + n, n), 0);
	for (uint64_t i = 0; i < n * e->block_len; i++)
		assert_int_equal(r[i], 0);
	assert_int_equal(env_close(e, b), 0);
	assert_consistent(e);
	free(w);
	free(r);
}

static void test_delete_frees_everything(void **state)
{
	struct store_env *e = *state;
	uint64_t free0;
	bs_blob_id id;
	struct bs_blob *b;

	assert_int_equal(env_init_store(e, NULL), 0);
	free0 = bs_get_free_cluster_count(e->bs);
	assert_int_equal(env_create(e, 5, false, &id), 0);
	assert_int_equal(bs_get_free_cluster_count(e->bs), free0 - 5);
	assert_int_equal(env_open(e, id, &b), 0);
	assert_int_equal(env_delete(e, id), -EBUSY);
	assert_int_equal(env_close(e, b), 0);
	assert_int_equal(env_delete(e, id), 0);
	assert_int_equal(bs_get_free_cluster_count(e->bs), free0);
	assert_int_equal(env_open(e, id, &b), -ENOENT);
	assert_int_equal(env_delete(e, id), -ENOENT);
	assert_int_equal(bs_iter_first(e->bs), BS_BLOB_ID_INVALID);
	assert_consistent(e);
	assert_int_equal(env_unload(e), 0);
	assert_int_equal(env_load(e, NULL), 0);
	assert_int_equal(env_open(e, id, &b), -ENOENT);
	assert_int_equal(bs_get_free_cluster_count(e->bs), free0);
}

static void test_resize_and_iterate(void **state)
{
	struct store_env *e = *state;
	bs_blob_id ids[3], it;
	struct bs_blob *b;
	uint64_t free0;
	int n = 0;

	assert_int_equal(env_init_store(e, NULL), 0);
	free0 = bs_get_free_cluster_count(e->bs);
	for (int i = 0; i < 3; i++)
		assert_int_equal(env_create(e, 1, false, &ids[i]), 0);
	for (it = bs_iter_first(e->bs); it != BS_BLOB_ID_INVALID; it = bs_iter_next(e->bs, it))
		assert_int_equal(it, ids[n++]);
	assert_int_equal(n, 3);
	assert_int_equal(env_open(e, ids[1], &b), 0);
	assert_int_equal(env_resize(e, b, 6), 0);
	assert_int_equal(bs_blob_get_num_clusters(b), 6);
	assert_int_equal(bs_get_free_cluster_count(e->bs), free0 - 8);
	assert_int_equal(env_sync(e, b), 0);
	assert_int_equal(env_resize(e, b, 2), 0);
	/* Released only after the shrink is durable (D5). */
	assert_int_equal(bs_get_free_cluster_count(e->bs), free0 - 8);
	assert_int_equal(env_sync(e, b), 0);
	assert_int_equal(bs_get_free_cluster_count(e->bs), free0 - 4);
	assert_int_equal(env_close(e, b), 0);
	assert_consistent(e);
	assert_int_equal(env_unload(e), 0);
	assert_int_equal(env_load(e, NULL), 0);
	assert_int_equal(env_open(e, ids[1], &b), 0);
	assert_int_equal(bs_blob_get_num_clusters(b), 2);
	assert_int_equal(env_close(e, b), 0);
	assert_consistent(e);
}

static void test_xattrs_large_and_persistent(void **state)
{
	struct store_env *e = *state;
	uint8_t *big = malloc(65536);
	struct bs_blob *b;
	const void *v;
	uint32_t len;
	bs_blob_id id;

	th_fill(big, 65536, 9);
	assert_int_equal(env_init_store(e, NULL), 0);
	assert_int_equal(env_create(e, 0, true, &id), 0);
	assert_int_equal(env_open(e, id, &b), 0);
	assert_int_equal(bs_blob_set_xattr(b, "big", big, 65536), 0);
	assert_int_equal(bs_blob_set_xattr(b, "small", "x", 1), 0);
	assert_int_equal(bs_blob_set_xattr(b, "toolong", big, 65537), -EINVAL);
	assert_int_equal(bs_blob_set_xattr(b, "", "x", 1), -EINVAL);
	assert_int_equal(bs_blob_set_xattr(b, "big2", big, 65536), -ENOSPC);
	assert_int_equal(bs_blob_get_xattr_count(b), 2);
	assert_int_equal(env_sync(e, b), 0);
	assert_int_equal(env_close(e, b), 0);
	assert_int_equal(env_unload(e), 0);
	assert_int_equal(env_load(e, NULL), 0);
	assert_int_equal(env_open(e, id, &b), 0);
	assert_int_equal(bs_blob_get_xattr(b, "big", &v, &len), 0);
	assert_int_equal(len, 65536);
	assert_memory_equal(v, big, 65536);
	assert_int_equal(bs_blob_remove_xattr(b, "big"), 0);
	assert_int_equal(bs_blob_remove_xattr(b, "big"), -ENOENT);
	assert_int_equal(env_close(e, b), 0); /* close syncs */
	assert_int_equal(env_open(e, id, &b), 0);
	assert_int_equal(bs_blob_get_xattr(b, "big", &v, &len), -ENOENT);
	assert_int_equal(bs_blob_get_xattr(b, "small", &v, &len), 0);
	assert_int_equal(env_close(e, b), 0);
	assert_consistent(e);
	free(big);
}

/*
 * A close syncs even when it does not drop the last reference: here a
 * second open holds one, and is then dropped by a power cut. The xattr set
 * before the first close survives.
 */
static void test_close_syncs_with_other_refs(void **state)
{
	struct store_env *e = *state;
	struct bs_blob *b, *b2;
	const void *v;
	uint32_t len;
	bs_blob_id id;

	assert_int_equal(env_init_store(e, NULL), 0);
	assert_int_equal(env_create(e, 1, true, &id), 0);
	assert_int_equal(env_open(e, id, &b), 0);
	assert_int_equal(env_open(e, id, &b2), 0);
	assert_ptr_equal(b, b2);
	assert_int_equal(bs_blob_set_xattr(b, "name", "kept", 4), 0);
	assert_int_equal(env_close(e, b), 0);
	env_crash(e, BS_CUT_DROP_ALL, 0);
	assert_int_equal(env_load(e, NULL), 0);
	assert_int_equal(env_open(e, id, &b), 0);
	assert_int_equal(bs_blob_get_xattr(b, "name", &v, &len), 0);
	assert_int_equal(len, 4);
	assert_memory_equal(v, "kept", 4);
	assert_int_equal(env_close(e, b), 0);
	assert_consistent(e);
}

static void test_bad_input(void **state)
{
	struct store_env *e = *state;
	uint8_t *buf = env_buf(e->cluster_size * 2);
	struct bs_blob *b;
	bs_blob_id id;

	/* Not a store. */
	assert_int_equal(env_load(e, NULL), -EILSEQ);
	assert_int_equal(env_init_store(e, NULL), 0);
	assert_int_equal(env_create(e, 1, false, &id), 0);
	assert_int_equal(env_open(e, 0, &b), -ENOENT);
	assert_int_equal(env_open(e, id + 1, &b), -ENOENT);
	assert_int_equal(env_open(e, id, &b), 0);
	assert_int_equal(env_write(e, b, buf, 0, 0), -EINVAL);
	assert_int_equal(env_write(e, b, buf, upc(e), 1), -ERANGE);
	assert_int_equal(env_read(e, b, buf, 0, upc(e) + 1), -ERANGE);
	assert_int_equal(env_unload(e), -EBUSY);
	assert_int_equal(bs_blob_set_read_only(b), 0);
	assert_int_equal(env_write(e, b, buf, 0, 1), -EPERM);
	assert_int_equal(env_resize(e, b, 3), -EPERM);
	assert_int_equal(env_close(e, b), 0);
	/* A closed handle is refused, not dereferenced into freed memory. */
	assert_int_equal(env_read(e, b, buf, 0, 1), -EBADF);
	assert_int_equal(env_close(e, b), -EBADF);
	assert_int_equal(env_open(e, id, &b), 0);
	assert_true(bs_blob_is_read_only(b));
	assert_int_equal(env_close(e, b), 0);
	free(buf);
}

static int env_unmap(struct store_env *e, struct bs_blob *b, uint64_t off, uint64_t len)
{
	struct th_cpl c = { 0 };

	if (e->ch == NULL)
		e->ch = bs_alloc_channel(e->bs);
	bs_blob_unmap(b, e->ch, off, len, th_cpl_fn, &c);
	return env_wait(e, &c);
}

/* A whole-cluster unmap of a thin blob frees it once the change is durable (D5). */
static void test_D5_unmap_frees_thin_cluster(void **state)
{
	struct store_env *e = *state;
	uint8_t *w = env_buf(2 * e->cluster_size), *r = env_buf(e->cluster_size);
	uint64_t free0;
	struct bs_blob *b;
	bs_blob_id id;

	th_fill(w, 2 * e->cluster_size, 5);
	assert_int_equal(env_init_store(e, NULL), 0);
	assert_int_equal(env_create(e, 4, true, &id), 0);
	assert_int_equal(env_open(e, id, &b), 0);
	free0 = bs_get_free_cluster_count(e->bs);
	assert_int_equal(env_write(e, b, w, 0, 2 * upc(e)), 0);
	assert_int_equal(env_sync(e, b), 0);
	assert_int_equal(bs_get_free_cluster_count(e->bs), free0 - 2);
	/* Partial unmap: zeros, nothing freed. Whole cluster: freed. */
	assert_int_equal(env_unmap(e, b, upc(e) + 1, 2), 0);
	assert_int_equal(env_unmap(e, b, 0, upc(e)), 0);
	assert_int_equal(bs_blob_get_num_allocated_clusters(b), 1);
	assert_int_equal(env_read(e, b, r, 0, upc(e)), 0);
	for (uint64_t i = 0; i < e->cluster_size; i++)
		assert_int_equal(r[i], 0);
	assert_int_equal(env_read(e, b, r, upc(e), upc(e)), 0);
	assert_memory_equal(r, w + e->cluster_size, e->block_len);
	for (uint64_t i = e->block_len; i < 3 * e->block_len; i++)
		assert_int_equal(r[i], 0);
	assert_int_equal(bs_get_free_cluster_count(e->bs), free0 - 2); /* not yet durable */
	assert_int_equal(env_sync(e, b), 0);
	assert_int_equal(bs_get_free_cluster_count(e->bs), free0 - 1);
	assert_int_equal(env_close(e, b), 0);
	assert_consistent(e);
	free(w);
	free(r);
}

/* Opens of a blob while its first open is still loading share the handle. */
static void test_concurrent_opens(void **state)
{
	struct store_env *e = *state;
	struct th_cpl c1 = { 0 }, c2 = { 0 };
	struct bs_blob *b1 = NULL, *b2 = NULL;
	bs_blob_id id;

	assert_int_equal(env_init_store(e, NULL), 0);
	assert_int_equal(env_create(e, 1, false, &id), 0);
	bs_blob_open(e->bs, id, &b1, th_cpl_fn, &c1);
	bs_blob_open(e->bs, id, &b2, th_cpl_fn, &c2);
	assert_false(c2.done);
	assert_int_equal(env_wait(e, &c1), 0);
	assert_true(th_poll_until(e->t, &c2.done, 1000000));
	assert_int_equal(c2.err, 0);
	assert_int_equal(c2.calls, 1);
	assert_ptr_equal(b1, b2);
	assert_int_equal(env_delete(e, id), -EBUSY);
	assert_int_equal(env_close(e, b1), 0);
	assert_int_equal(env_close(e, b2), 0);
	assert_int_equal(env_delete(e, id), 0);
	assert_consistent(e);
}

struct md_expect_state {
	bs_blob_id a, b, c;
};

/* Verify the state built by build_every_md_op(). */
static void verify_every_md_op(struct store_env *e, const struct md_expect_state *x)
{
	struct bs_blob *b;
	const void *v;
	uint32_t len;
	bs_blob_id super;

	assert_int_equal(bs_get_super(e->bs, &super), 0);
	assert_int_equal(super, x->b);
	assert_int_equal(env_open(e, x->a, &b), -ENOENT); /* deleted */
	assert_int_equal(env_open(e, x->b, &b), 0);
	assert_int_equal(bs_blob_get_num_clusters(b), 3);
	assert_true(bs_blob_is_read_only(b));
	assert_int_equal(bs_blob_get_xattr(b, "k", &v, &len), 0);
	assert_int_equal(len, 2);
	assert_memory_equal(v, "v2", 2);
	assert_int_equal(bs_blob_get_xattr(b, "gone", &v, &len), -ENOENT);
	assert_int_equal(env_close(e, b), 0);
	assert_int_equal(env_open(e, x->c, &b), 0);
	assert_true(bs_blob_is_thin(b));
	assert_int_equal(bs_blob_get_num_clusters(b), 7);
	assert_int_equal(bs_blob_get_num_allocated_clusters(b), 0);
	assert_int_equal(env_close(e, b), 0);
	assert_consistent(e);
}

/* create, resize, xattr set/replace/remove, read-only, set_super, delete. */
static void build_every_md_op(struct store_env *e, struct md_expect_state *x)
{
	struct th_cpl c = { 0 };
	struct bs_blob *b;

	assert_int_equal(env_create(e, 1, false, &x->a), 0);
	assert_int_equal(env_create(e, 1, false, &x->b), 0);
	assert_int_equal(env_create(e, 9, true, &x->c), 0);
	assert_int_equal(env_open(e, x->b, &b), 0);
	assert_int_equal(env_resize(e, b, 3), 0);
	assert_int_equal(bs_blob_set_xattr(b, "k", "v1", 2), 0);
	assert_int_equal(bs_blob_set_xattr(b, "gone", "x", 1), 0);
	assert_int_equal(env_sync(e, b), 0);
	assert_int_equal(bs_blob_set_xattr(b, "k", "v2", 2), 0);
	assert_int_equal(bs_blob_remove_xattr(b, "gone"), 0);
	assert_int_equal(bs_blob_set_read_only(b), 0);
	assert_int_equal(env_sync(e, b), 0);
	assert_int_equal(env_close(e, b), 0);
	assert_int_equal(env_open(e, x->c, &b), 0);
	assert_int_equal(env_resize(e, b, 7), 0);
	assert_int_equal(env_sync(e, b), 0);
	assert_int_equal(env_close(e, b), 0);
	bs_set_super(e->bs, x->b, th_cpl_fn, &c);
	assert_int_equal(env_wait(e, &c), 0);
	assert_int_equal(env_delete(e, x->a), 0);
}

/* Every completed metadata operation survives a clean reload and a power cut (D4). */
static void test_D4_every_md_op_persists(void **state)
{
	struct store_env *e = *state;
	struct md_expect_state x;

	assert_int_equal(env_init_store(e, NULL), 0);
	build_every_md_op(e, &x);
	verify_every_md_op(e, &x);
	assert_int_equal(env_unload(e), 0);
	assert_int_equal(env_load(e, NULL), 0);
	verify_every_md_op(e, &x);
	env_crash(e, BS_CUT_DROP_ALL, 0);
	assert_int_equal(env_load(e, NULL), 0);
	verify_every_md_op(e, &x);
	/* And the same after a dirty shutdown that never had a clean unload. */
	env_crash(e, BS_CUT_TEAR_ALL, 7);
	assert_int_equal(env_load(e, NULL), 0);
	verify_every_md_op(e, &x);
}

static uint64_t dev_writes(struct store_env *e)
{
	struct bs_ram_dev_stats st;

	bs_ram_dev_get_stats(e->dev, &st);
	/* Not flushes: unload always flushes, since data writes since the
	 * load must be durable when it completes (crashtest found that). */
	return st.ops[BS_IO_WRITE] + st.ops[BS_IO_WRITEV] + st.ops[BS_IO_WRITE_ZEROES] +
	       st.ops[BS_IO_UNMAP];
}

/* D7: a clean load followed by reads and an unload writes nothing. */
static void test_D7_unchanged_unload_writes_nothing(void **state)
{
	struct store_env *e = *state;
	uint8_t *buf = env_buf(e->block_len);
	struct bs_blob *b;
	bs_blob_id id;
	uint64_t before;

	assert_int_equal(env_init_store(e, NULL), 0);
	assert_int_equal(env_create(e, 1, false, &id), 0);
	assert_int_equal(env_unload(e), 0);
	before = dev_writes(e);
	assert_int_equal(env_load(e, NULL), 0);
	assert_int_equal(env_open(e, id, &b), 0);
	assert_int_equal(env_read(e, b, buf, 0, 1), 0);
	assert_int_equal(env_close(e, b), 0);
	assert_int_equal(env_unload(e), 0);
	assert_int_equal(dev_writes(e), before);
	assert_int_equal(env_load(e, NULL), 0); /* still clean and loadable */
	free(buf);
}

/*
 * D9, unload: completed data writes are durable once unload completes, even
 * when no metadata changed since a clean load (unload used to skip the
 * device flush then; crashtest found it). The blob is thick, so nothing but
 * that flush covers the write.
 */
static void test_D9_unload_after_clean_load_flushes_data(void **state)
{
	struct store_env *e = *state;
	uint8_t *buf = env_buf(e->block_len), *got = env_buf(e->block_len);
	struct bs_blob *b;
	bs_blob_id id;

	memset(buf, 0xa7, e->block_len);
	assert_int_equal(env_init_store(e, NULL), 0);
	assert_int_equal(env_create(e, 1, false, &id), 0);
	assert_int_equal(env_unload(e), 0);
	assert_int_equal(env_load(e, NULL), 0);
	assert_int_equal(env_open(e, id, &b), 0);
	assert_int_equal(env_write(e, b, buf, 0, 1), 0);
	assert_int_equal(env_close(e, b), 0);
	assert_int_equal(env_unload(e), 0);
	bs_ram_dev_power_cut(e->dev, BS_CUT_DROP_ALL, 0);
	bs_ram_dev_power_on(e->dev);
	assert_int_equal(env_load(e, NULL), 0);
	assert_int_equal(env_open(e, id, &b), 0);
	assert_int_equal(env_read(e, b, got, 0, 1), 0);
	assert_memory_equal(got, buf, e->block_len);
	assert_int_equal(env_close(e, b), 0);
	free(buf);
	free(got);
}

/* A blob whose two root pages are both damaged can be deleted: its slot is freed. */
static void test_D11_corrupt_blob_can_be_deleted(void **state)
{
	struct store_env *e = *state;
	uint8_t *page = env_buf(MD_PAGE_SIZE);
	struct bs_opts o;
	struct bs_blob *b;
	bs_blob_id id, keep;
	uint64_t first;

	assert_int_equal(env_init_store(e, NULL), 0);
	assert_int_equal(env_create(e, 1, false, &keep), 0);
	assert_int_equal(env_create(e, 1, false, &id), 0);
	assert_int_equal(env_open(e, id, &b), 0);
	assert_int_equal(bs_blob_set_xattr(b, "x", "y", 1), 0);
	assert_int_equal(env_close(e, b), 0); /* a second root: both pages written */
	first = e->bs->root_start + 2ull * BLOB_ID_SLOT(id);
	assert_int_equal(env_unload(e), 0);
	for (uint64_t p = first; p < first + 2; p++) {
		env_dev_read_page(e, p, page);
		page[200] ^= 0xFF;
		assert_int_equal(env_dev_write_page(e, p, page), 0);
	}
	bs_opts_init(&o, sizeof(o));
	o.force_recover = true;
	assert_int_equal(env_load(e, &o), 0);
	assert_int_equal(bs_iter_corrupt(e->bs, BS_BLOB_ID_INVALID), id);
	assert_int_equal(env_delete(e, id), 0);
	assert_int_equal(bs_iter_corrupt(e->bs, BS_BLOB_ID_INVALID), BS_BLOB_ID_INVALID);
	assert_int_equal(env_open(e, id, &b), -ENOENT);
	assert_int_equal(env_open(e, keep, &b), 0);
	assert_int_equal(env_close(e, b), 0);
	assert_int_equal(env_unload(e), 0);
	assert_int_equal(env_load(e, &o), 0); /* the tombstone stands after reload */
	assert_int_equal(bs_iter_corrupt(e->bs, BS_BLOB_ID_INVALID), BS_BLOB_ID_INVALID);
	assert_consistent(e);
	free(page);
}

#define PARAM_TESTS(fn)                                                                   \
	cmocka_unit_test_prestate_setup_teardown(fn, env_fixture_setup, env_fixture_teardown, (void *)&g_params[0]), \
	cmocka_unit_test_prestate_setup_teardown(fn, env_fixture_setup, env_fixture_teardown, (void *)&g_params[1]), \
	cmocka_unit_test_prestate_setup_teardown(fn, env_fixture_setup, env_fixture_teardown, (void *)&g_params[2]), \
	cmocka_unit_test_prestate_setup_teardown(fn, env_fixture_setup, env_fixture_teardown, (void *)&g_params[3])

int main(void)
{
	const struct CMUnitTest tests[] = {
		PARAM_TESTS(test_init_unload_load_clean),
		PARAM_TESTS(test_create_write_read_persist),
		PARAM_TESTS(test_close_syncs_with_other_refs),
		PARAM_TESTS(test_dirty_shutdown_recovers_synced_state),
		PARAM_TESTS(test_thin_reads_zero_and_allocates),
		PARAM_TESTS(test_delete_frees_everything),
		PARAM_TESTS(test_resize_and_iterate),
		PARAM_TESTS(test_xattrs_large_and_persistent),
		PARAM_TESTS(test_bad_input),
		PARAM_TESTS(test_D5_unmap_frees_thin_cluster),
		PARAM_TESTS(test_concurrent_opens),
		PARAM_TESTS(test_D4_every_md_op_persists),
		PARAM_TESTS(test_D7_unchanged_unload_writes_nothing),
		PARAM_TESTS(test_D9_unload_after_clean_load_flushes_data),
		PARAM_TESTS(test_D11_corrupt_blob_can_be_deleted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
