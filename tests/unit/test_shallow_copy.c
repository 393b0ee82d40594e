/*
 * Shallow copy suite (bs_blob_shallow_copy): only the clusters a read-only
 * blob owns land on the destination, at their own offsets, and are durable
 * there when it reports success; progress counts up to the total; bad
 * input is refused; deleting the blob meanwhile is refused; injected IO
 * errors on either device end the copy with -EIO and leave the store
 * usable. Runs with 512 B and 4 KiB blocks, and with a cluster larger than
 * the copy's 1 MiB chunk.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store_env.h"

static const struct store_param g_params[] = {
	{ 512, 64 * 1024, 32ull << 20 },
	{ 4096, 64 * 1024, 32ull << 20 },
	{ 4096, 2048 * 1024, 64ull << 20 },	/* two chunks per cluster */
};

#define DST_PATTERN	0xD5	/* what the destination holds before a copy */
#define BLOB_CLUSTERS	8

static int setup(void **state)
{
	env_fixture_setup(state);
	assert_int_equal(env_init_store(*state, NULL), 0);
	return 0;
}

/* A RAM device of @p bytes in blocks of @p block_len, filled with DST_PATTERN
 * (durably: it is the initial image). */
static struct bs_dev *dst_new(uint32_t block_len, uint64_t bytes)
{
	struct bs_ram_dev_opts o;
	uint8_t *image = malloc(bytes);
	struct bs_dev *dev;

	assert_non_null(image);
	memset(image, DST_PATTERN, bytes);
	bs_ram_dev_opts_init(&o);
	o.block_len = block_len;
	o.block_count = bytes / block_len;
	o.image = image;
	assert_int_equal(bs_ram_dev_create(&o, &dev), 0);
	free(image);
	return dev;
}

static void dst_close(struct store_env *e, struct bs_dev *dst)
{
	struct th_cpl c = { 0 };

	bs_dev_close(dst, th_cpl_fn, &c);
	assert_int_equal(env_wait(e, &c), 0);
}

/* Progress calls seen by a copy. */
struct progress_log {
	uint64_t calls;
	uint64_t last_done;
	uint64_t total;
	bool bad;		/* not increasing by one, or the total changed */
};

static void progress_cb(void *arg, uint64_t done, uint64_t total)
{
	struct progress_log *p = arg;

	if (done != p->last_done + 1 || (p->calls > 0 && total != p->total) || done > total)
		p->bad = true;
	p->calls++;
	p->last_done = done;
	p->total = total;
}

static int shallow(struct store_env *e, bs_blob_id id, struct bs_dev *dst,
		   struct progress_log *p)
{
	struct th_cpl c = { 0 };

	bs_blob_shallow_copy(e->bs, id, dst, p != NULL ? progress_cb : NULL, p, th_cpl_fn, &c);
	return env_wait(e, &c);
}

static int snap(struct store_env *e, bs_blob_id id, bs_blob_id *out)
{
	struct th_cpl c = { 0 };

	bs_blob_snapshot(e->bs, id, NULL, 0, out, th_cpl_fn, &c);
	return env_wait(e, &c);
}

/* Fill cluster @p cl of @p id with data made from @p seed (kept in @p data). */
static void put_cluster(struct store_env *e, bs_blob_id id, uint64_t cl, uint8_t *data,
			uint64_t seed)
{
	uint64_t upc = e->cluster_size / e->block_len;
	struct bs_blob *b;

	th_fill(data, e->cluster_size, seed);
	assert_int_equal(env_open(e, id, &b), 0);
	assert_int_equal(env_write(e, b, data, cl * upc, upc), 0);
	assert_int_equal(env_close(e, b), 0);
}

/*
 * X (thin, 8 clusters) writes 0, 2, 5 -> snapshot S1; then 1, 2, 6 ->
 * snapshot S2 (parent S1). S2 owns 1, 2 and 6; S1 serves 0 and 5.
 * @p data gets what S2 reads at each cluster it owns.
 */
static void build_chain(struct store_env *e, bs_blob_id *s1, bs_blob_id *s2, uint8_t *data)
{
	size_t cs = e->cluster_size;
	uint8_t *scratch = env_buf(cs);
	bs_blob_id x;

	assert_int_equal(env_create(e, BLOB_CLUSTERS, true, &x), 0);
	put_cluster(e, x, 0, scratch, 100);
	put_cluster(e, x, 2, scratch, 102);
	put_cluster(e, x, 5, scratch, 105);
	assert_int_equal(snap(e, x, s1), 0);
	put_cluster(e, x, 1, data + 1 * cs, 201);
	put_cluster(e, x, 2, data + 2 * cs, 202);
	put_cluster(e, x, 6, data + 6 * cs, 206);
	assert_int_equal(snap(e, x, s2), 0);
	free(scratch);
}

/* Cluster @p cl of @p img is @p expect, or all DST_PATTERN if NULL. */
static void check_cluster(struct store_env *e, const uint8_t *img, uint64_t cl,
			  const uint8_t *expect)
{
	const uint8_t *p = img + cl * e->cluster_size;

	if (expect != NULL) {
		assert_memory_equal(p, expect, e->cluster_size);
		return;
	}
	for (size_t i = 0; i < e->cluster_size; i++)
		assert_int_equal(p[i], DST_PATTERN);
}

static void test_shallow_copy_owned_clusters_only(void **state)
{
	struct store_env *e = *state;
	size_t cs = e->cluster_size;
	uint64_t bytes = BLOB_CLUSTERS * cs + cs;	/* one spare cluster at the end */
	uint8_t *data = env_buf(BLOB_CLUSTERS * cs);
	struct bs_dev *dst = dst_new(e->block_len, bytes);
	struct progress_log p = { 0 };
	bs_blob_id s1, s2;

	build_chain(e, &s1, &s2, data);
	assert_int_equal(shallow(e, s2, dst, &p), 0);
	assert_false(p.bad);
	assert_int_equal(p.calls, 3);
	assert_int_equal(p.last_done, 3);
	assert_int_equal(p.total, 3);
	/* Reported done: on the durable image, not only in the write cache. */
	assert_int_equal(bs_ram_dev_volatile_writes(dst), 0);
	for (uint64_t cl = 0; cl <= BLOB_CLUSTERS; cl++) {
		bool owned = cl == 1 || cl == 2 || cl == 6;

		check_cluster(e, bs_ram_dev_durable(dst), cl, owned ? data + cl * cs : NULL);
	}
	/* The store is unchanged and the snapshot still reads. */
	assert_int_equal(shallow(e, s1, dst, NULL), 0);
	dst_close(e, dst);
	free(data);
}

/* A blob that owns nothing: no progress, nothing written, still 0. */
static void test_shallow_copy_empty_blob(void **state)
{
	struct store_env *e = *state;
	struct bs_dev *dst = dst_new(e->block_len, BLOB_CLUSTERS * (uint64_t)e->cluster_size);
	struct progress_log p = { 0 };
	struct bs_ram_dev_stats st;
	bs_blob_id x, s;

	assert_int_equal(env_create(e, BLOB_CLUSTERS, true, &x), 0);
	assert_int_equal(snap(e, x, &s), 0);
	assert_int_equal(shallow(e, s, dst, &p), 0);
	assert_int_equal(p.calls, 0);
	bs_ram_dev_get_stats(dst, &st);
	assert_int_equal(st.ops[BS_IO_WRITE], 0);
	assert_int_equal(st.ops[BS_IO_FLUSH], 1);
	dst_close(e, dst);
}

static void test_shallow_copy_refused(void **state)
{
	struct store_env *e = *state;
	uint64_t bytes = BLOB_CLUSTERS * (uint64_t)e->cluster_size;
	uint32_t other_bl = e->block_len == 512 ? 4096 : 512;
	struct bs_dev *dst = dst_new(e->block_len, bytes);
	struct bs_dev *small = dst_new(e->block_len, bytes - e->cluster_size);
	struct bs_dev *mismatch = dst_new(other_bl, bytes);
	uint8_t *data = env_buf(BLOB_CLUSTERS * (uint64_t)e->cluster_size);
	struct bs_blob *b;
	bs_blob_id s1, s2, w;

	build_chain(e, &s1, &s2, data);
	assert_int_equal(env_create(e, BLOB_CLUSTERS, false, &w), 0);
	assert_int_equal(shallow(e, w, dst, NULL), -EPERM);		/* writable */
	assert_int_equal(env_open(e, w, &b), 0);
	assert_int_equal(bs_blob_set_read_only(b), 0);
	assert_int_equal(shallow(e, w, dst, NULL), -EPERM);		/* not synced */
	assert_int_equal(env_sync(e, b), 0);
	assert_int_equal(shallow(e, w, dst, NULL), 0);			/* open, read-only */
	assert_int_equal(env_close(e, b), 0);
	assert_int_equal(shallow(e, s2, small, NULL), -EINVAL);
	assert_int_equal(shallow(e, s2, mismatch, NULL), -EINVAL);
	assert_int_equal(shallow(e, s2, e->dev, NULL), -EINVAL);
	assert_int_equal(shallow(e, s2, NULL, NULL), -EINVAL);
	assert_int_equal(shallow(e, BS_BLOB_ID_INVALID, dst, NULL), -ENOENT);
	assert_int_equal(shallow(e, s2 + 1, dst, NULL), -ENOENT);
	/* Nothing above touched the destination. */
	assert_int_equal(bs_ram_dev_volatile_writes(small), 0);
	dst_close(e, dst);
	dst_close(e, small);
	dst_close(e, mismatch);
	free(data);
}

/* The copy holds a reference: delete is refused until it completes. */
static void test_shallow_copy_delete_busy(void **state)
{
	struct store_env *e = *state;
	struct bs_dev *dst = dst_new(e->block_len, BLOB_CLUSTERS * (uint64_t)e->cluster_size);
	uint8_t *data = env_buf(BLOB_CLUSTERS * (uint64_t)e->cluster_size);
	struct th_cpl c = { 0 };
	bs_blob_id s1, s2;

	build_chain(e, &s1, &s2, data);
	bs_blob_shallow_copy(e->bs, s2, dst, NULL, NULL, th_cpl_fn, &c);
	assert_false(c.done);
	assert_int_equal(env_delete(e, s2), -EBUSY);
	assert_true(th_poll_until(e->t, &c.done, 200000000ull));
	assert_int_equal(c.calls, 1);
	assert_int_equal(c.err, 0);
	check_cluster(e, bs_ram_dev_durable(dst), 6, data + 6 * e->cluster_size);
	assert_int_equal(env_delete(e, s2), 0);	/* merged into its one clone */
	dst_close(e, dst);
	free(data);
}

/* Fail IO number @p nth of @p kind on @p fail_dev during a copy of S2:
 * -EIO, and progress stops short of the total unless only the flush failed.
 * The store stays usable (the teardown's unload proves the reference is
 * gone). */
static void eio_case(struct store_env *e, bs_blob_id s2, struct bs_dev *dst,
		     struct bs_dev *fail_dev, int kind, uint64_t nth)
{
	struct progress_log p = { 0 };

	bs_ram_dev_inject(fail_dev, kind, nth, -EIO, false);
	assert_int_equal(shallow(e, s2, dst, &p), -EIO);
	bs_ram_dev_clear_faults(fail_dev);
	assert_false(p.bad);
	if (kind == BS_IO_FLUSH)
		assert_int_equal(p.calls, 3);
	else
		assert_true(p.calls < 3);
}

static void test_shallow_copy_eio(void **state)
{
	struct store_env *e = *state;
	struct bs_dev *dst = dst_new(e->block_len, BLOB_CLUSTERS * (uint64_t)e->cluster_size);
	uint8_t *data = env_buf(BLOB_CLUSTERS * (uint64_t)e->cluster_size);
	struct bs_blob *b;
	bs_blob_id s1, s2;

	build_chain(e, &s1, &s2, data);
	/* Held open by the test, so the copy's own open reads nothing and the
	 * injected reads hit cluster data. */
	assert_int_equal(env_open(e, s2, &b), 0);
	eio_case(e, s2, dst, dst, BS_IO_WRITE, 1);
	eio_case(e, s2, dst, dst, BS_IO_WRITE, 2);
	eio_case(e, s2, dst, dst, BS_IO_FLUSH, 1);
	eio_case(e, s2, dst, e->dev, BS_IO_READ, 2);
	/* After the errors, a copy works again. */
	assert_int_equal(shallow(e, s2, dst, NULL), 0);
	check_cluster(e, bs_ram_dev_durable(dst), 2, data + 2 * e->cluster_size);
	assert_int_equal(bs_get_error(e->bs), 0);
	assert_int_equal(env_close(e, b), 0);
	dst_close(e, dst);
	free(data);
}

#define PARAM(fn)                                                                          \
	cmocka_unit_test_prestate_setup_teardown(fn, setup, env_fixture_teardown,         \
						 (void *)&g_params[0]),                    \
	cmocka_unit_test_prestate_setup_teardown(fn, setup, env_fixture_teardown,         \
						 (void *)&g_params[1]),                    \
	cmocka_unit_test_prestate_setup_teardown(fn, setup, env_fixture_teardown,         \
						 (void *)&g_params[2])

int main(void)
{
	const struct CMUnitTest tests[] = {
		PARAM(test_shallow_copy_owned_clusters_only),
		PARAM(test_shallow_copy_empty_blob),
		PARAM(test_shallow_copy_refused),
		PARAM(test_shallow_copy_delete_busy),
		PARAM(test_shallow_copy_eio),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
