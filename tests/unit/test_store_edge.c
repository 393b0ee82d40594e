/*
 * Store edge cases: running out of clusters, blob slots and pool pages;
 * xattr limits; read-only blobs and forward compatibility (unknown blob
 * flags, future super blocks, foreign and damaged devices); isolation of
 * one corrupt blob; API misuse; data IO from several reactor threads at
 * once, including racing first writes into one thin cluster.
 *
 * Every case runs under each geometry in g_params (512 B and 4 KiB blocks,
 * 64 KiB and 1 MiB clusters) on small RAM devices. The test pthread is the
 * metadata thread (it polls the env's bs_thread); multi-threaded cases add
 * real reactor threads (env_worker). On-disk states are crafted by reading
 * pages from the RAM device's view and writing them back through a device
 * channel.
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <blobstore/log.h>

#include "blob/format.h"
#include "blob/md_page.h"
#include "blob/store_int.h"
#include "store_env.h"

static const struct store_param g_params[] = {
	{ .block_len = 512, .cluster_size = 64 * 1024, .dev_bytes = 8ull << 20 },
	{ .block_len = 4096, .cluster_size = 64 * 1024, .dev_bytes = 8ull << 20 },
	{ .block_len = 512, .cluster_size = 1024 * 1024, .dev_bytes = 16ull << 20 },
	{ .block_len = 4096, .cluster_size = 1024 * 1024, .dev_bytes = 16ull << 20 },
};

/* ------------------------------------------------------------ common */

static atomic_uint g_log_errors;

/* Count error lines (every refused call must leave one) and print them all. */
static void log_hook(void *arg, enum bs_log_level level, const char *line)
{
	if (level == BS_LOG_ERROR)
		atomic_fetch_add(&g_log_errors, 1);
	fprintf(stderr, "blobstore: %s\n", line);
}

static unsigned log_errors(void)
{
	return atomic_load(&g_log_errors);
}

static void check_msg(void *arg, bs_blob_id id, const char *msg)
{
	fprintf(stderr, "check: blob 0x%llx: %s\n", (unsigned long long)id, msg);
}

static void run_check(struct store_env *e, struct bs_check_report *r, bs_check_msg_fn fn,
		      void *arg)
{
	struct th_cpl c = { 0 };

	bs_check(e->bs, r, fn, arg, th_cpl_fn, &c);
	assert_int_equal(env_wait(e, &c), 0);
}

static void assert_consistent(struct store_env *e)
{
	struct bs_check_report r;

	run_check(e, &r, check_msg, NULL);
	assert_int_equal(r.problems, 0);
}

/* io units per cluster */
static uint64_t upc(struct store_env *e)
{
	return e->cluster_size / e->block_len;
}

static struct bs_io_channel *chan(struct store_env *e)
{
	if (e->ch == NULL)
		e->ch = bs_alloc_channel(e->bs);
	assert_non_null(e->ch);
	return e->ch;
}

static struct bs_blob *open_ok(struct store_env *e, bs_blob_id id)
{
	struct bs_blob *b = NULL;

	assert_int_equal(env_open(e, id, &b), 0);
	assert_non_null(b);
	return b;
}

/* Write @len io units at @off filled from @seed. */
static int write_seeded(struct store_env *e, struct bs_blob *b, uint64_t off, uint64_t len,
			uint64_t seed)
{
	size_t n = len * e->block_len;
	uint8_t *buf = env_buf(n);
	int rc;

	th_fill(buf, n, seed);
	rc = env_write(e, b, buf, off, len);
	free(buf);
	return rc;
}

/* Read @len io units at @off; they must hold the @seed pattern (0: zeros). */
static void verify_seeded(struct store_env *e, struct bs_blob *b, uint64_t off, uint64_t len,
			  uint64_t seed)
{
	size_t n = len * e->block_len;
	uint8_t *want = env_buf(n), *got = env_buf(n);

	if (seed != 0)
		th_fill(want, n, seed);
	memset(got, 0xA5, n);
	assert_int_equal(env_read(e, b, got, off, len), 0);
	assert_memory_equal(want, got, n);
	free(want);
	free(got);
}

enum io_kind { IO_READ, IO_WRITE, IO_READV, IO_WRITEV, IO_UNMAP, IO_ZEROES };

/* One data IO of any kind through @ch (which may be NULL), waited for. */
static int io_do(struct store_env *e, enum io_kind k, struct bs_blob *b, struct bs_io_channel *ch,
		 void *buf, uint64_t off, uint64_t len)
{
	struct iovec iov = { buf, len * e->block_len };
	struct th_cpl c = { 0 };

	switch (k) {
	case IO_READ:
		bs_blob_read(b, ch, buf, off, len, th_cpl_fn, &c);
		break;
	case IO_WRITE:
		bs_blob_write(b, ch, buf, off, len, th_cpl_fn, &c);
		break;
	case IO_READV:
		bs_blob_readv(b, ch, &iov, 1, off, len, th_cpl_fn, &c);
		break;
	case IO_WRITEV:
		bs_blob_writev(b, ch, &iov, 1, off, len, th_cpl_fn, &c);
		break;
	case IO_UNMAP:
		bs_blob_unmap(b, ch, off, len, th_cpl_fn, &c);
		break;
	case IO_ZEROES:
		bs_blob_write_zeroes(b, ch, off, len, th_cpl_fn, &c);
		break;
	}
	return env_wait(e, &c);
}

/* Clean unload, then load (with forced recovery when @dirty). */
static void reload(struct store_env *e, bool dirty)
{
	struct bs_opts o;

	assert_int_equal(env_unload(e), 0);
	bs_opts_init(&o, sizeof(o));
	o.force_recover = dirty;
	assert_int_equal(env_load(e, &o), 0);
}

/* Power cut dropping everything not durable, then a (recovering) load. */
static void crash_reload(struct store_env *e)
{
	struct bs_load_report r;

	env_crash(e, BS_CUT_DROP_ALL, 0);
	assert_int_equal(env_load(e, NULL), 0);
	bs_get_load_report(e->bs, &r);
	assert_true(r.recovered);
}

static uint64_t count_blobs(struct store_env *e)
{
	uint64_t n = 0;

	for (bs_blob_id id = bs_iter_first(e->bs); id != BS_BLOB_ID_INVALID;
	     id = bs_iter_next(e->bs, id))
		n++;
	return n;
}

/* The newest valid root page of blob @id (store loaded): its page number. */
static uint64_t root_page_of(struct store_env *e, bs_blob_id id, struct md_root *out)
{
	uint64_t first = e->bs->root_start + 2ull * BLOB_ID_SLOT(id);
	struct md_root *p = env_buf(2 * MD_PAGE_SIZE);
	int valid, pick;
	bool tomb;

	env_dev_read_page(e, first, &p[0]);
	env_dev_read_page(e, first + 1, &p[1]);
	pick = blob_root_pick(e->bs, BLOB_ID_SLOT(id), p, &valid, &tomb);
	assert_true(pick >= 0);
	assert_int_equal(p[pick].hdr.blob_id, id);
	*out = p[pick];
	free(p);
	return first + (uint64_t)pick;
}

/* XOR @n bytes at @off of metadata page @page_no on the device (no re-seal). */
static void flip_page_bytes(struct store_env *e, uint64_t page_no, size_t off, size_t n)
{
	uint8_t *pg = env_buf(MD_PAGE_SIZE);

	env_dev_read_page(e, page_no, pg);
	for (size_t i = 0; i < n; i++)
		pg[off + i] ^= 0xFF;
	assert_int_equal(env_dev_write_page(e, page_no, pg), 0);
	free(pg);
}

/* ------------------------------------------------------------ 1. ENOSPC */

/* Round robin over three blobs: fill write k goes to blob k % 3, into its
 * cluster k / 3, at an io unit that varies with k. */
static uint64_t fill_unit(struct store_env *e, uint64_t k)
{
	return (k / 3) * upc(e) + k % upc(e);
}

/* Every io unit the fill wrote reads back; blob i holds exactly its share. */
static void fill_verify(struct store_env *e, const bs_blob_id *ids, uint64_t nwritten)
{
	for (uint64_t i = 0; i < 3; i++) {
		struct bs_blob *b = open_ok(e, ids[i]);

		assert_int_equal(bs_blob_get_num_allocated_clusters(b), (nwritten + 2 - i) / 3);
		for (uint64_t k = i; k < nwritten; k += 3)
			verify_seeded(e, b, fill_unit(e, k), 1, k + 1);
		if (i == 0)
			verify_seeded(e, b, upc(e) - 1, 1, 99);
		assert_int_equal(env_close(e, b), 0);
	}
}

/*
 * Thin allocation until the store is full: first writes succeed while a
 * cluster is free, then fail with -ENOSPC (never -EIO, nothing latched) and
 * map nothing; allocated clusters keep taking writes; every written unit
 * survives sync, a clean reload and a forced recovery, with the checker
 * clean and no free cluster appearing or vanishing.
 */
static void test_enospc_thin_fill(void **state)
{
	struct store_env *e = *state;
	struct bs_blob *b[3];
	bs_blob_id ids[3];
	uint64_t free0, k;
	int rc;

	assert_int_equal(env_init_store(e, NULL), 0);
	free0 = bs_get_free_cluster_count(e->bs);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(env_create(e, free0, true, &ids[i]), 0);
		b[i] = open_ok(e, ids[i]);
	}
	for (k = 0; (rc = write_seeded(e, b[k % 3], fill_unit(e, k), 1, k + 1)) == 0; k++)
		assert_true(k < free0);
	assert_int_equal(rc, -ENOSPC);
	assert_int_equal(k, free0);
	assert_int_equal(bs_get_free_cluster_count(e->bs), 0);
	assert_int_equal(bs_blob_next_allocated_io_unit(b[k % 3], (k / 3) * upc(e)), UINT64_MAX);
	assert_int_equal(write_seeded(e, b[(k + 1) % 3], fill_unit(e, k + 1), 1, 7), -ENOSPC);
	assert_int_equal(bs_get_error(e->bs), 0);
	assert_int_equal(write_seeded(e, b[0], upc(e) - 1, 1, 99), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(env_sync(e, b[i]), 0);
		assert_int_equal(env_close(e, b[i]), 0);
	}
	assert_consistent(e);
	fill_verify(e, ids, k);
	for (int dirty = 0; dirty < 2; dirty++) {
		reload(e, dirty);
		assert_int_equal(bs_get_free_cluster_count(e->bs), 0);
		assert_consistent(e);
		fill_verify(e, ids, k);
	}
}

/*
 * Thick create and resize beyond the free space fail with -ENOSPC and leak
 * nothing: free count, slots and checker are as before; an exact fit still
 * succeeds, and thin creates need no clusters.
 */
static void test_enospc_thick(void **state)
{
	struct store_env *e = *state;
	struct bs_blob *b;
	bs_blob_id id, other;
	uint64_t free0;

	assert_int_equal(env_init_store(e, NULL), 0);
	free0 = bs_get_free_cluster_count(e->bs);
	assert_int_equal(env_create(e, free0 + 1, false, &id), -ENOSPC);
	assert_int_equal(bs_get_free_cluster_count(e->bs), free0);
	assert_int_equal(bs_iter_first(e->bs), BS_BLOB_ID_INVALID);
	assert_consistent(e);
	assert_int_equal(env_create(e, free0 - 2, false, &id), 0);
	b = open_ok(e, id);
	assert_int_equal(env_resize(e, b, free0 + 1), -ENOSPC);
	assert_int_equal(bs_blob_get_num_clusters(b), free0 - 2);
	assert_int_equal(bs_blob_get_num_allocated_clusters(b), free0 - 2);
	assert_int_equal(bs_get_free_cluster_count(e->bs), 2);
	assert_int_equal(env_resize(e, b, free0), 0);
	assert_int_equal(bs_get_free_cluster_count(e->bs), 0);
	assert_int_equal(env_create(e, 1, false, &other), -ENOSPC);
	assert_int_equal(env_create(e, 4, true, &other), 0);
	assert_int_equal(env_sync(e, b), 0);
	assert_int_equal(env_close(e, b), 0);
	assert_consistent(e);
	for (int dirty = 0; dirty < 2; dirty++) {
		reload(e, dirty);
		assert_int_equal(bs_get_free_cluster_count(e->bs), 0);
		assert_int_equal(count_blobs(e), 2);
		b = open_ok(e, id);
		assert_int_equal(bs_blob_get_num_allocated_clusters(b), free0);
		assert_int_equal(env_close(e, b), 0);
		assert_consistent(e);
	}
}

/*
 * Running out of blob slots: with max_blobs = 4 the fifth create fails
 * with -ENOSPC and a log line; a delete frees a slot for a new blob (with a
 * new id); the limit holds across clean reload and recovery.
 */
static void test_enospc_slots(void **state)
{
	struct store_env *e = *state;
	struct bs_opts o;
	struct bs_blob *b;
	bs_blob_id ids[4], id;
	unsigned errs;

	bs_opts_init(&o, sizeof(o));
	o.cluster_size = e->cluster_size;
	o.max_blobs = 4;
	assert_int_equal(env_init_store(e, &o), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(env_create(e, i % 2 ? 2 : 1, i % 2, &ids[i]), 0);
	errs = log_errors();
	assert_int_equal(env_create(e, 0, true, &id), -ENOSPC);
	assert_true(log_errors() > errs);
	assert_int_equal(env_delete(e, ids[1]), 0);
	assert_int_equal(env_create(e, 1, true, &id), 0);
	assert_int_equal(BLOB_ID_SLOT(id), BLOB_ID_SLOT(ids[1]));
	assert_true(id != ids[1]);
	assert_int_equal(env_open(e, ids[1], &b), -ENOENT);
	assert_int_equal(env_create(e, 0, true, &ids[1]), -ENOSPC);
	ids[1] = id;
	assert_consistent(e);
	for (int dirty = 0; dirty < 2; dirty++) {
		reload(e, dirty);
		assert_int_equal(count_blobs(e), 4);
		assert_int_equal(env_create(e, 0, true, &id), -ENOSPC);
		for (int i = 0; i < 4; i++)
			assert_int_equal(env_close(e, open_ok(e, ids[i])), 0);
		assert_consistent(e);
	}
}

#define POOL_PAGES 8u
#define POOL_XATTR_LEN 18000u	/* a 5-page xattr stream */

/* Xattr pages: a re-commit that needs 5 fresh pages with 3 free fails cleanly. */
static void pool_xattr_phase(struct store_env *e)
{
	uint8_t *v = malloc(POOL_XATTR_LEN), *v2 = malloc(POOL_XATTR_LEN);
	struct bs_blob *b;
	const void *got;
	uint32_t len;
	bs_blob_id id;

	th_fill(v, POOL_XATTR_LEN, 1);
	th_fill(v2, POOL_XATTR_LEN, 2);
	assert_int_equal(env_create(e, 0, true, &id), 0);
	b = open_ok(e, id);
	assert_int_equal(bs_blob_set_xattr(b, "big", v, POOL_XATTR_LEN), 0);
	assert_int_equal(env_sync(e, b), 0);
	assert_int_equal(bs_blob_set_xattr(b, "big", v2, POOL_XATTR_LEN), 0);
	assert_int_equal(env_sync(e, b), -ENOSPC);
	assert_int_equal(bs_get_error(e->bs), 0);
	assert_consistent(e);
	/* The last commit is what is on disk. */
	crash_reload(e);
	b = open_ok(e, id);
	assert_int_equal(bs_blob_get_xattr(b, "big", &got, &len), 0);
	assert_int_equal(len, POOL_XATTR_LEN);
	assert_memory_equal(got, v, POOL_XATTR_LEN);
	assert_int_equal(bs_blob_remove_xattr(b, "big"), 0);
	assert_int_equal(bs_blob_set_xattr(b, "small", "s", 1), 0);
	assert_int_equal(env_sync(e, b), 0);
	assert_int_equal(env_close(e, b), 0);
	assert_consistent(e);
	free(v);
	free(v2);
}

/* Extent pages: thick creates until the pool is full; the failing one gives back
 * its clusters and slot. Returns the number created. */
static uint32_t pool_thick_phase(struct store_env *e, bs_blob_id *ids, uint32_t max)
{
	uint64_t free0 = bs_get_free_cluster_count(e->bs), nblobs = count_blobs(e);
	uint32_t n = 0;
	int rc;

	while ((rc = env_create(e, 1, false, &ids[n])) == 0)
		assert_true(++n < max);
	assert_int_equal(rc, -ENOSPC);
	assert_int_equal(n, POOL_PAGES);
	assert_int_equal(bs_get_free_cluster_count(e->bs), free0 - n);
	assert_int_equal(count_blobs(e), nblobs + n);
	assert_int_equal(bs_get_error(e->bs), 0);
	assert_consistent(e);
	return n;
}

/* Data-path allocations wait in RAM until a sync finds a pool page. */
static bs_blob_id pool_thin_phase(struct store_env *e, const bs_blob_id *thick)
{
	struct bs_blob *b;
	bs_blob_id id;

	assert_int_equal(env_delete(e, thick[0]), 0);
	assert_int_equal(env_create(e, 2, true, &id), 0);
	b = open_ok(e, id);
	assert_int_equal(write_seeded(e, b, 0, 1, 5), 0);
	assert_int_equal(env_sync(e, b), 0);
	assert_int_equal(write_seeded(e, b, upc(e), 1, 6), 0);
	assert_int_equal(env_sync(e, b), -ENOSPC);
	assert_int_equal(bs_get_error(e->bs), 0);
	assert_consistent(e);
	assert_int_equal(env_delete(e, thick[1]), 0);
	assert_int_equal(env_sync(e, b), 0);
	assert_int_equal(env_close(e, b), 0);
	assert_consistent(e);
	return id;
}

/*
 * Running out of pool pages (md_pool_pages = 8): a sync whose fresh pages
 * do not fit fails with -ENOSPC, latches nothing and corrupts nothing (the
 * checker is clean and the last commit is what a crash leaves); it
 * succeeds once pages are freed. A thick create that cannot get its extent
 * page fails and gives back its clusters and slot.
 */
static void test_enospc_pool(void **state)
{
	struct store_env *e = *state;
	bs_blob_id thick[POOL_PAGES + 1], id;
	struct bs_opts o;
	struct bs_blob *b;

	bs_opts_init(&o, sizeof(o));
	o.cluster_size = e->cluster_size;
	o.md_pool_pages = POOL_PAGES;
	assert_int_equal(env_init_store(e, &o), 0);
	pool_xattr_phase(e);
	pool_thick_phase(e, thick, POOL_PAGES + 1);
	id = pool_thin_phase(e, thick);
	for (int dirty = 0; dirty < 2; dirty++) {
		reload(e, dirty);
		b = open_ok(e, id);
		assert_int_equal(bs_blob_get_num_allocated_clusters(b), 2);
		verify_seeded(e, b, 0, 1, 5);
		verify_seeded(e, b, upc(e), 1, 6);
		assert_int_equal(env_close(e, b), 0);
		assert_consistent(e);
	}
}

/* ------------------------------------------------------------ 2. xattrs */

/* What a blob's xattrs should be: entries in the store's order. */
struct xa {
	char name[MD_XATTR_MAX_NAME + 2];
	uint32_t len;
	uint64_t seed;
	bool live;
};

#define XM_CAP 4096u

struct xmodel {
	struct xa v[XM_CAP];
	uint32_t n;
};

static struct xa *xm_find(struct xmodel *m, const char *name)
{
	for (uint32_t i = 0; i < m->n; i++) {
		if (m->v[i].live && strcmp(m->v[i].name, name) == 0)
			return &m->v[i];
	}
	return NULL;
}

/* Record a successful set: replace in place, or append (as the store does). */
static void xm_record(struct xmodel *m, const char *name, uint32_t len, uint64_t seed)
{
	struct xa *x = xm_find(m, name);

	if (x == NULL) {
		assert_true(m->n < XM_CAP);
		x = &m->v[m->n++];
		snprintf(x->name, sizeof(x->name), "%s", name);
		x->live = true;
	}
	x->len = len;
	x->seed = seed;
}

/* Set @name to @len bytes from @seed; recorded in @m only if the store took it. */
static int xm_set(struct bs_blob *b, struct xmodel *m, const char *name, uint32_t len,
		  uint64_t seed)
{
	uint8_t *val = len ? malloc(len) : NULL;
	int rc;

	if (len)
		th_fill(val, len, seed);
	rc = bs_blob_set_xattr(b, name, val, len);
	free(val);
	if (rc == 0)
		xm_record(m, name, len, seed);
	return rc;
}

static void xm_remove(struct bs_blob *b, struct xmodel *m, const char *name)
{
	assert_int_equal(bs_blob_remove_xattr(b, name), 0);
	xm_find(m, name)->live = false;
	assert_int_equal(bs_blob_remove_xattr(b, name), -ENOENT);
}

static uint32_t xm_stream_len(const struct xmodel *m)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < m->n; i++) {
		if (m->v[i].live)
			n += 8 + (uint32_t)strlen(m->v[i].name) + m->v[i].len;
	}
	return n;
}

/* The blob holds exactly the model: same names in the same order, same values. */
static void xm_verify(struct bs_blob *b, const struct xmodel *m)
{
	uint8_t *want = malloc(MD_XATTR_MAX_VALUE);
	uint32_t k = 0, len;
	const void *got;

	for (uint32_t i = 0; i < m->n; i++) {
		const struct xa *x = &m->v[i];

		if (!x->live)
			continue;
		assert_string_equal(bs_blob_get_xattr_name(b, k++), x->name);
		assert_int_equal(bs_blob_get_xattr(b, x->name, &got, &len), 0);
		assert_int_equal(len, x->len);
		th_fill(want, x->len, x->seed);
		if (len > 0)
			assert_memory_equal(got, want, len);
	}
	assert_int_equal(bs_blob_get_xattr_count(b), k);
	assert_null(bs_blob_get_xattr_name(b, k));
	free(want);
}

/* Fill the stream to exactly MD_XATTR_MAX_STREAM bytes: one byte more is
 * -ENOSPC, and a replacement is charged its size minus the old one. */
static void xattr_fill_to_limit(struct bs_blob *b, struct xmodel *m)
{
	uint32_t left = MD_XATTR_MAX_STREAM - xm_stream_len(m);
	uint32_t fill = left - 8 - 4;	/* "fill" */

	assert_true(left > 12 + 9 && fill <= MD_XATTR_MAX_VALUE);
	assert_int_equal(xm_set(b, m, "fill", fill + 1, 4), -ENOSPC);
	assert_int_equal(xm_set(b, m, "fill", fill, 4), 0);
	assert_int_equal(xm_stream_len(m), MD_XATTR_MAX_STREAM);
	assert_int_equal(xm_set(b, m, "z", 0, 0), -ENOSPC);
	assert_int_equal(xm_set(b, m, "fill", fill + 1, 5), -ENOSPC);
	assert_int_equal(xm_set(b, m, "fill", fill - 9, 6), 0);
	assert_int_equal(xm_set(b, m, "z", 0, 0), 0);
	assert_int_equal(xm_set(b, m, "y", 0, 0), -ENOSPC);
	xm_verify(b, m);
}

/* Sync and close, reload (clean or a crash), reopen and compare with @m. */
static struct bs_blob *xm_persist(struct store_env *e, struct bs_blob *b, const struct xmodel *m,
				  bool crash)
{
	bs_blob_id id = bs_blob_get_id(b);

	assert_int_equal(env_sync(e, b), 0);
	if (crash) {
		crash_reload(e);
	} else {
		assert_int_equal(env_close(e, b), 0);
		reload(e, false);
	}
	b = open_ok(e, id);
	xm_verify(b, m);
	return b;
}

/*
 * Xattr limits: 255-byte names are taken and 256-byte ones refused
 * (-EINVAL), as are empty and NULL names and NULL values; 64 KiB values
 * are taken and 64 KiB + 1 refused; empty values work; the whole stream
 * fills to exactly its limit (-ENOSPC beyond, replacements included). All
 * of it survives a clean reload and, after replace/remove, a crash.
 */
static void test_xattr_limits(void **state)
{
	struct store_env *e = *state;
	struct xmodel *m = calloc(1, sizeof(*m));
	char n255[256], n256[257];
	struct bs_blob *b;
	bs_blob_id id;

	memset(n255, 'n', 255);
	n255[255] = '\0';
	memset(n256, 'm', 256);
	n256[256] = '\0';
	assert_int_equal(env_init_store(e, NULL), 0);
	assert_int_equal(env_create(e, 1, true, &id), 0);
	b = open_ok(e, id);
	assert_int_equal(xm_set(b, m, n255, MD_XATTR_MAX_VALUE, 1), 0);
	assert_int_equal(xm_set(b, m, n256, 1, 2), -EINVAL);
	assert_int_equal(xm_set(b, m, "", 1, 2), -EINVAL);
	assert_int_equal(bs_blob_set_xattr(b, NULL, "x", 1), -EINVAL);
	assert_int_equal(xm_set(b, m, "over", MD_XATTR_MAX_VALUE + 1, 3), -EINVAL);
	assert_int_equal(bs_blob_set_xattr(b, "nullval", NULL, 4), -EINVAL);
	assert_int_equal(xm_set(b, m, "empty", 0, 0), 0);
	assert_int_equal(bs_blob_set_xattr(b, "empty2", "x", 0), 0);
	xm_record(m, "empty2", 0, 0);
	xattr_fill_to_limit(b, m);
	b = xm_persist(e, b, m, false);
	assert_int_equal(xm_set(b, m, n255, 10, 7), 0);
	xm_remove(b, m, "empty");
	xm_remove(b, m, "fill");
	assert_int_equal(xm_set(b, m, "empty", 0, 0), 0);
	b = xm_persist(e, b, m, true);
	assert_int_equal(env_close(e, b), 0);
	assert_consistent(e);
	free(m);
}

#define XM_MANY 1500u

/*
 * Many small xattrs (1500, values of 0..39 bytes, a multi-page stream):
 * set, remove, replace and re-add keep the store's order and values; all
 * of it survives close/open, a clean reload and a crash.
 */
static void test_xattr_many_small(void **state)
{
	struct store_env *e = *state;
	struct xmodel *m = calloc(1, sizeof(*m));
	struct bs_blob *b;
	char name[32];
	bs_blob_id id;

	assert_int_equal(env_init_store(e, NULL), 0);
	assert_int_equal(env_create(e, 0, true, &id), 0);
	b = open_ok(e, id);
	for (uint32_t i = 0; i < XM_MANY; i++) {
		snprintf(name, sizeof(name), "a.%04u", i);
		assert_int_equal(xm_set(b, m, name, i % 40, i + 1), 0);
	}
	xm_verify(b, m);
	for (uint32_t i = 0; i < XM_MANY; i++) {
		snprintf(name, sizeof(name), "a.%04u", i);
		if (i % 3 == 0)
			xm_remove(b, m, name);
		else if (i % 5 == 0)
			assert_int_equal(xm_set(b, m, name, (i % 7) * 3, i + 5000), 0);
		if (i % 9 == 0)
			assert_int_equal(xm_set(b, m, name, 2, i + 9000), 0);
	}
	xm_verify(b, m);
	assert_int_equal(env_close(e, b), 0); /* close syncs */
	b = open_ok(e, id);
	xm_verify(b, m);
	b = xm_persist(e, b, m, false);
	for (uint32_t i = 1; i < XM_MANY; i += 4) {
		snprintf(name, sizeof(name), "a.%04u", i);
		if (xm_find(m, name) != NULL)
			xm_remove(b, m, name);
	}
	b = xm_persist(e, b, m, true);
	assert_int_equal(env_close(e, b), 0);
	assert_consistent(e);
	free(m);
}

/* Blob @id's root keeps its xattrs in @npages pages (0 = inline). */
static void assert_xattr_pages(struct store_env *e, bs_blob_id id, uint16_t npages)
{
	struct md_root *r = env_buf(MD_PAGE_SIZE);

	root_page_of(e, id, r);
	assert_int_equal(r->xattr_npages, npages);
	free(r);
}

/*
 * The inline/paged boundary: a stream of exactly MD_ROOT_INLINE_XATTR
 * bytes stays in the root, one byte more moves to a pool page; both
 * directions of the switch survive a reload and a crash.
 */
static void test_xattr_inline_boundary(void **state)
{
	struct store_env *e = *state;
	struct xmodel *m[2] = { calloc(1, sizeof(struct xmodel)), calloc(1, sizeof(struct xmodel)) };
	uint32_t inl = MD_ROOT_INLINE_XATTR - 8 - 1;	/* name "v" */
	struct bs_blob *b[2];
	bs_blob_id id[2];

	assert_int_equal(env_init_store(e, NULL), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(env_create(e, 0, true, &id[i]), 0);
		b[i] = open_ok(e, id[i]);
		assert_int_equal(xm_set(b[i], m[i], "v", inl + (uint32_t)i, 10 + (uint64_t)i), 0);
		b[i] = xm_persist(e, b[i], m[i], false);
		assert_xattr_pages(e, id[i], (uint16_t)i);
		assert_int_equal(env_close(e, b[i]), 0);
	}
	for (int i = 0; i < 2; i++) {
		b[i] = open_ok(e, id[i]);
		assert_int_equal(xm_set(b[i], m[i], "v", inl + 1 - (uint32_t)i, 20 + (uint64_t)i), 0);
		assert_int_equal(env_sync(e, b[i]), 0);
	}
	crash_reload(e);
	for (int i = 0; i < 2; i++) {
		b[i] = open_ok(e, id[i]);
		xm_verify(b[i], m[i]);
		assert_xattr_pages(e, id[i], (uint16_t)(1 - i));
		assert_int_equal(env_close(e, b[i]), 0);
	}
	assert_consistent(e);
	free(m[0]);
	free(m[1]);
}

/* ------------------------------------------------ 3. read-only, compat */

/* Every kind of data change is refused with @err; reads still work. */
static void assert_writes_refused(struct store_env *e, struct bs_blob *b, int err)
{
	uint8_t *buf = env_buf(e->block_len);

	assert_int_equal(io_do(e, IO_WRITE, b, chan(e), buf, 0, 1), err);
	assert_int_equal(io_do(e, IO_WRITEV, b, chan(e), buf, 0, 1), err);
	assert_int_equal(io_do(e, IO_ZEROES, b, chan(e), buf, 0, 1), err);
	assert_int_equal(io_do(e, IO_UNMAP, b, chan(e), buf, 0, 1), err);
	assert_int_equal(io_do(e, IO_READ, b, chan(e), buf, 0, 1), 0);
	free(buf);
}

/*
 * bs_blob_set_read_only persists: after sync and a clean or recovering
 * reload the blob opens read-only, every write and resize fails with
 * -EPERM, the data reads back, xattrs can still change, and the blob can
 * still be deleted.
 */
static void test_read_only_persists(void **state)
{
	struct store_env *e = *state;
	struct bs_blob *b[2];
	bs_blob_id id[2];

	assert_int_equal(env_init_store(e, NULL), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(env_create(e, 2, i == 1, &id[i]), 0);
		b[i] = open_ok(e, id[i]);
		assert_int_equal(write_seeded(e, b[i], 1, 3, 30 + (uint64_t)i), 0);
		assert_int_equal(bs_blob_set_read_only(b[i]), 0);
		assert_writes_refused(e, b[i], -EPERM);
		assert_int_equal(env_sync(e, b[i]), 0);
		assert_int_equal(env_close(e, b[i]), 0);
	}
	for (int dirty = 0; dirty < 2; dirty++) {
		reload(e, dirty);
		for (int i = 0; i < 2; i++) {
			b[i] = open_ok(e, id[i]);
			assert_true(bs_blob_is_read_only(b[i]));
			assert_writes_refused(e, b[i], -EPERM);
			assert_int_equal(env_resize(e, b[i], 3), -EPERM);
			assert_int_equal(env_resize(e, b[i], 1), -EPERM);
			verify_seeded(e, b[i], 1, 3, 30 + (uint64_t)i);
			assert_int_equal(bs_blob_set_read_only(b[i]), 0);
			assert_int_equal(bs_blob_set_xattr(b[i], "note", "ro", 2), 0);
			assert_int_equal(env_close(e, b[i]), 0);
		}
		assert_consistent(e);
	}
	assert_int_equal(env_delete(e, id[0]), 0);
	assert_consistent(e);
}

#define UNKNOWN_BIT (1ull << 40)

/* OR unknown bits into blob @id's newest root page on the device, re-sealed. */
static void patch_root_flags(struct store_env *e, bs_blob_id id, uint64_t inv, uint64_t dro,
			     uint64_t mro)
{
	struct md_root *r = env_buf(MD_PAGE_SIZE);
	uint64_t page = root_page_of(e, id, r);

	r->invalid_flags |= inv;
	r->data_ro_flags |= dro;
	r->md_ro_flags |= mro;
	md_page_seal(r);
	assert_int_equal(env_dev_write_page(e, page, r), 0);
	free(r);
}

/* A thick blob with 2 io units of @seed data, and a thin one with one cluster
 * written (seed + 1) of two: both closed. */
static void make_pair(struct store_env *e, bs_blob_id *id, uint64_t seed)
{
	struct bs_blob *b;

	for (int i = 0; i < 2; i++) {
		assert_int_equal(env_create(e, 2, i == 1, &id[i]), 0);
		b = open_ok(e, id[i]);
		assert_int_equal(write_seeded(e, b, 0, 2, seed + (uint64_t)i), 0);
		assert_int_equal(bs_blob_set_xattr(b, "k", "v", 1), 0);
		assert_int_equal(env_close(e, b), 0);
	}
}

static void verify_pair(struct store_env *e, const bs_blob_id *id, uint64_t seed)
{
	for (int i = 0; i < 2; i++) {
		struct bs_blob *b = open_ok(e, id[i]);

		verify_seeded(e, b, 0, 2, seed + (uint64_t)i);
		assert_int_equal(env_close(e, b), 0);
	}
}

/*
 * An unknown bit in invalid_flags: the store loads (clean and recovering),
 * the blob's space stays accounted, opening it fails with -EOPNOTSUPP and
 * a log line, the other blobs open, read and write; the blob can still be
 * deleted, which frees its clusters.
 */
static void test_unknown_invalid_flag(void **state)
{
	struct store_env *e = *state;
	bs_blob_id bad[2], good[2];
	struct bs_blob *b;
	uint64_t free1;
	unsigned errs;

	assert_int_equal(env_init_store(e, NULL), 0);
	make_pair(e, bad, 40);
	make_pair(e, good, 50);
	free1 = bs_get_free_cluster_count(e->bs);
	patch_root_flags(e, bad[0], UNKNOWN_BIT, 0, 0);
	patch_root_flags(e, bad[1], UNKNOWN_BIT, 0, 0);
	for (int dirty = 0; dirty < 2; dirty++) {
		reload(e, dirty);
		assert_int_equal(bs_get_free_cluster_count(e->bs), free1);
		for (int i = 0; i < 2; i++) {
			errs = log_errors();
			assert_int_equal(env_open(e, bad[i], &b), -EOPNOTSUPP);
			assert_true(log_errors() > errs);
		}
		verify_pair(e, good, 50);
		b = open_ok(e, good[1]);
		assert_int_equal(write_seeded(e, b, upc(e), 1, 51), 0);
		assert_int_equal(env_close(e, b), 0);
		assert_consistent(e);
		free1 = bs_get_free_cluster_count(e->bs);
	}
	assert_int_equal(env_delete(e, bad[0]), 0);
	assert_int_equal(env_delete(e, bad[1]), 0);
	assert_int_equal(bs_get_free_cluster_count(e->bs), free1 + 3);
	assert_consistent(e);
}

/*
 * An unknown bit in data_ro_flags: the blob opens read-only (every write
 * -EPERM, resize -EPERM), reads its data, may still change xattrs, and a
 * sync keeps the unknown bit on disk.
 */
static void test_unknown_data_ro_flag(void **state)
{
	struct store_env *e = *state;
	struct md_root *r = env_buf(MD_PAGE_SIZE);
	bs_blob_id id[2];
	struct bs_blob *b;

	assert_int_equal(env_init_store(e, NULL), 0);
	make_pair(e, id, 60);
	for (int i = 0; i < 2; i++)
		patch_root_flags(e, id[i], 0, UNKNOWN_BIT, 0);
	for (int dirty = 0; dirty < 2; dirty++) {
		reload(e, dirty);
		for (int i = 0; i < 2; i++) {
			b = open_ok(e, id[i]);
			assert_true(bs_blob_is_read_only(b));
			assert_writes_refused(e, b, -EPERM);
			assert_int_equal(env_resize(e, b, 4), -EPERM);
			verify_seeded(e, b, 0, 2, 60 + (uint64_t)i);
			assert_int_equal(bs_blob_set_xattr(b, "gen", &dirty, sizeof(dirty)), 0);
			assert_int_equal(env_sync(e, b), 0);
			assert_int_equal(env_close(e, b), 0);
			root_page_of(e, id[i], r);
			assert_int_equal(r->data_ro_flags, UNKNOWN_BIT);
		}
		assert_consistent(e);
	}
	free(r);
}

/*
 * An unknown bit in md_ro_flags: the blob opens, reads its data and
 * xattrs, takes data writes into allocated clusters, but every metadata
 * change is refused with -EPERM: set/remove xattr, resize, set_read_only,
 * and a thin first write (it would change the cluster map). Close and sync
 * succeed without writing metadata; nothing leaks.
 */
static void test_unknown_md_ro_flag(void **state)
{
	struct store_env *e = *state;
	const void *v;
	uint32_t len;
	bs_blob_id id[2];
	struct bs_blob *b;
	uint64_t free1;

	assert_int_equal(env_init_store(e, NULL), 0);
	make_pair(e, id, 70);
	free1 = bs_get_free_cluster_count(e->bs);
	for (int i = 0; i < 2; i++)
		patch_root_flags(e, id[i], 0, 0, UNKNOWN_BIT);
	for (int dirty = 0; dirty < 2; dirty++) {
		reload(e, dirty);
		for (int i = 0; i < 2; i++) {
			b = open_ok(e, id[i]);
			assert_false(bs_blob_is_read_only(b));
			assert_int_equal(bs_blob_set_xattr(b, "k", "w", 1), -EPERM);
			assert_int_equal(bs_blob_remove_xattr(b, "k"), -EPERM);
			assert_int_equal(bs_blob_set_read_only(b), -EPERM);
			assert_int_equal(env_resize(e, b, 4), -EPERM);
			assert_int_equal(bs_blob_get_xattr(b, "k", &v, &len), 0);
			assert_int_equal(len, 1);
			verify_seeded(e, b, 0, 2, 70 + (uint64_t)i);
			assert_int_equal(write_seeded(e, b, 2, 1, 77), 0);
			assert_int_equal(write_seeded(e, b, upc(e), 1, 78), i == 1 ? -EPERM : 0);
			assert_int_equal(env_sync(e, b), 0);
			assert_int_equal(env_close(e, b), 0);
		}
		assert_int_equal(bs_get_free_cluster_count(e->bs), free1);
		assert_consistent(e);
	}
}

/* ---- super block ---- */

/* Every write-like op the device has completed so far (stats count them). */
static uint64_t dev_writes(struct store_env *e)
{
	struct bs_ram_dev_stats st;

	bs_ram_dev_get_stats(e->dev, &st);
	return st.ops[BS_IO_WRITE] + st.ops[BS_IO_WRITEV] + st.ops[BS_IO_WRITE_ZEROES] +
	       st.ops[BS_IO_UNMAP] + st.ops[BS_IO_COPY] + st.failed;
}

typedef void (*super_patch_fn)(struct md_super *sb);

/* Apply @fn to both super copies on the device, re-sealed. */
static void patch_supers(struct store_env *e, super_patch_fn fn)
{
	struct md_super *sb = env_buf(MD_PAGE_SIZE);

	for (uint64_t copy = 0; copy < 2; copy++) {
		env_dev_read_page(e, copy, sb);
		fn(sb);
		md_page_seal(sb);
		assert_int_equal(env_dev_write_page(e, copy, sb), 0);
	}
	free(sb);
}

static void sb_future_version(struct md_super *sb)
{
	sb->format_version = MD_FORMAT_VERSION + 1;
}

static void sb_unknown_incompat(struct md_super *sb)
{
	sb->features_incompat |= 1ull << 63;
}

static void sb_unknown_ro_compat(struct md_super *sb)
{
	sb->features_ro_compat |= 1ull << 62;
}

/* The store on the device refuses to load with @err and a log line, and the
 * failed load writes nothing. */
static void assert_load_fails(struct store_env *e, int err)
{
	uint64_t writes = dev_writes(e);
	unsigned errs = log_errors();

	assert_int_equal(env_load(e, NULL), err);
	assert_null(e->bs);
	assert_true(log_errors() > errs);
	assert_int_equal(dev_writes(e), writes);
}

/* An initialized store with one blob of data (seed 80), unloaded. Returns its id. */
static bs_blob_id make_unloaded_store(struct store_env *e, uint8_t *supers)
{
	bs_blob_id id[2];

	assert_int_equal(env_init_store(e, NULL), 0);
	make_pair(e, id, 80);
	assert_int_equal(env_unload(e), 0);
	if (supers != NULL)
		memcpy(supers, bs_ram_dev_view(e->dev), 2 * MD_PAGE_SIZE);
	return id[0];
}

static void restore_supers(struct store_env *e, const uint8_t *supers)
{
	assert_int_equal(env_dev_write_page(e, 0, supers), 0);
	assert_int_equal(env_dev_write_page(e, 1, supers + MD_PAGE_SIZE), 0);
}

/* Load, check blob @id's data (seed 80) and consistency, leave it loaded. */
static void load_and_verify(struct store_env *e, bs_blob_id id)
{
	struct bs_blob *b;

	assert_int_equal(env_load(e, NULL), 0);
	b = open_ok(e, id);
	verify_seeded(e, b, 0, 2, 80);
	assert_int_equal(env_close(e, b), 0);
	assert_consistent(e);
}

/*
 * A super block from the future: a newer format_version or an unknown
 * features_incompat bit makes load fail with -EOPNOTSUPP and a log line,
 * without writing to the device; the original super blocks load again.
 */
static void test_super_future(void **state)
{
	struct store_env *e = *state;
	uint8_t *supers = env_buf(2 * MD_PAGE_SIZE);
	super_patch_fn patches[] = { sb_future_version, sb_unknown_incompat };
	bs_blob_id id = make_unloaded_store(e, supers);

	for (size_t i = 0; i < sizeof(patches) / sizeof(patches[0]); i++) {
		patch_supers(e, patches[i]);
		assert_load_fails(e, -EOPNOTSUPP);
		restore_supers(e, supers);
	}
	load_and_verify(e, id);
	free(supers);
}

/*
 * An unknown features_ro_compat bit: the store loads read-only. Blobs open
 * and read, but create, delete, sync and every kind of data write fail
 * with -EROFS, and nothing at all is written to the device, unload
 * included.
 */
static void test_super_ro_compat(void **state)
{
	struct store_env *e = *state;
	uint8_t *supers = env_buf(2 * MD_PAGE_SIZE);
	bs_blob_id id = make_unloaded_store(e, supers), other;
	struct bs_blob *b;
	uint64_t writes;

	patch_supers(e, sb_unknown_ro_compat);
	writes = dev_writes(e);
	assert_int_equal(env_load(e, NULL), 0);
	assert_true(bs_is_read_only(e->bs));
	assert_int_equal(env_create(e, 1, true, &other), -EROFS);
	assert_int_equal(env_delete(e, id), -EROFS);
	b = open_ok(e, id);
	verify_seeded(e, b, 0, 2, 80);
	assert_writes_refused(e, b, -EROFS);
	assert_int_equal(write_seeded(e, b, 3, 1, 81), -EROFS);
	assert_int_equal(env_sync(e, b), -EROFS);
	assert_int_equal(env_close(e, b), 0);
	assert_int_equal(env_unload(e), 0);
	assert_int_equal(dev_writes(e), writes);
	restore_supers(e, supers);
	load_and_verify(e, id);
	free(supers);
}

/* Which super copy on the device has the higher sequence. */
static uint64_t newest_super_copy(struct store_env *e)
{
	const struct md_super *c = (const struct md_super *)bs_ram_dev_view(e->dev);

	return c[1].hdr.gen > c[0].hdr.gen ? 1 : 0;
}

/*
 * One damaged super copy: flipping a byte in the newest copy loads from
 * the older one (which says dirty, so it recovers); flipping a byte in the
 * older copy loads clean from the newest. Data survives; the next unload
 * rewrites the bad copy so a later load is clean.
 */
static void test_super_one_copy_bad(void **state)
{
	struct store_env *e = *state;
	bs_blob_id id = make_unloaded_store(e, NULL);
	struct bs_load_report r;

	assert_int_equal(newest_super_copy(e), 1);
	flip_page_bytes(e, 1, 200, 1);
	load_and_verify(e, id);
	bs_get_load_report(e->bs, &r);
	assert_true(r.recovered);
	assert_int_equal(env_unload(e), 0);
	load_and_verify(e, id);
	bs_get_load_report(e->bs, &r);
	assert_true(r.was_clean);
	assert_int_equal(env_unload(e), 0);
	flip_page_bytes(e, 1 - newest_super_copy(e), offsetof(struct md_super, reserved) + 100, 1);
	load_and_verify(e, id);
	bs_get_load_report(e->bs, &r);
	assert_true(r.was_clean);
}

/* A fresh RAM device of @bytes with @block_len blocks and optional contents. */
static struct bs_dev *new_ram_dev(uint32_t block_len, uint64_t bytes, const void *image)
{
	struct bs_ram_dev_opts o;
	struct bs_dev *dev;

	bs_ram_dev_opts_init(&o);
	o.block_len = block_len;
	o.block_count = bytes / block_len;
	o.image = image;
	assert_int_equal(bs_ram_dev_create(&o, &dev), 0);
	return dev;
}

/* Load the store from another device: the result (unloading on success). */
static int load_from(struct store_env *e, struct bs_dev *dev, struct bs_opts *opts)
{
	struct bs_dev *mine = e->dev;
	struct th_cpl c = { 0 };
	unsigned errs = log_errors();
	int rc;

	e->dev = dev;
	rc = env_load(e, opts);
	if (rc == 0)
		assert_int_equal(env_unload(e), 0);
	else
		assert_true(log_errors() > errs);
	e->dev = mine;
	bs_dev_close(dev, th_cpl_fn, &c);
	assert_int_equal(env_wait(e, &c), 0);
	return rc;
}

/*
 * Devices that hold no loadable store: both super copies corrupt, a device
 * that was never a store (zeros, or random bytes), one too small for a
 * super block: each fails with -EILSEQ and a log line, never a crash.
 */
static void test_super_not_a_store(void **state)
{
	struct store_env *e = *state;
	uint64_t small = 2ull << 20;
	uint8_t *junk = malloc(small);
	bs_blob_id id = make_unloaded_store(e, NULL);

	flip_page_bytes(e, 0, 300, 2);
	flip_page_bytes(e, 1, 300, 2);
	assert_load_fails(e, -EILSEQ);
	flip_page_bytes(e, 0, 300, 2);
	flip_page_bytes(e, 1, 300, 2);
	th_fill(junk, small, 7);
	assert_int_equal(load_from(e, new_ram_dev(e->block_len, small, NULL), NULL), -EILSEQ);
	assert_int_equal(load_from(e, new_ram_dev(e->block_len, small, junk), NULL), -EILSEQ);
	assert_int_equal(load_from(e, new_ram_dev(512, 4096, NULL), NULL), -EILSEQ);
	load_and_verify(e, id);
	free(junk);
}

/*
 * The store's image on the wrong device: a smaller one (geometry larger
 * than the device) fails with -ERANGE, one with another block size with
 * -EINVAL, a bstype mismatch with -EINVAL; each with a log line. The
 * device itself still loads.
 */
static void test_super_wrong_device(void **state)
{
	struct store_env *e = *state;
	uint32_t other = e->block_len == 512 ? 4096 : 512;
	bs_blob_id id = make_unloaded_store(e, NULL);
	const uint8_t *img = bs_ram_dev_view(e->dev);
	struct bs_opts o;
	unsigned errs;

	assert_int_equal(load_from(e, new_ram_dev(e->block_len, e->dev_bytes / 2, img), NULL),
			 -ERANGE);
	assert_int_equal(load_from(e, new_ram_dev(e->block_len, e->dev_bytes - e->cluster_size, img),
				   NULL), -ERANGE);
	assert_int_equal(load_from(e, new_ram_dev(other, e->dev_bytes, img), NULL), -EINVAL);
	bs_opts_init(&o, sizeof(o));
	memcpy(o.bstype, "not-this-store", 14);
	errs = log_errors();
	assert_int_equal(env_load(e, &o), -EINVAL);
	assert_true(log_errors() > errs);
	load_and_verify(e, id);
}

/* ------------------------------- loader fuzzing regressions (issue #6) */

static void sb_max_blobs_wraps(struct md_super *sb)
{
	sb->max_blobs = 1ull << 63; /* root_start + 2 * max_blobs wraps to root_start */
}

static void sb_pool_pages_wraps(struct md_super *sb)
{
	sb->pool_pages = ~0ull - sb->pool_start + 1; /* pool_start + pool_pages wraps to 0 */
}

static void sb_mask_pages_short(struct md_super *sb)
{
	sb->mask_pages = 1; /* the geometry needs more: unload would overwrite roots */
}

/*
 * Super blocks whose geometry fields are huge enough to wrap the region
 * sums, or whose mask region disagrees with the geometry, are rejected
 * with -EILSEQ and a log line (tests/fuzz/corpus/regress-super-*): before,
 * the first sized a huge calloc, the second overran the pool bitmap, the
 * third loaded and unload wrote masks over root slots.
 */
static void test_fuzz_super_geometry(void **state)
{
	static const super_patch_fn patches[] = {
		sb_max_blobs_wraps, sb_pool_pages_wraps, sb_mask_pages_short,
	};
	struct store_env *e = *state;
	uint8_t *supers = env_buf(2 * MD_PAGE_SIZE);
	bs_blob_id id = make_unloaded_store(e, supers);

	for (size_t i = 0; i < sizeof(patches) / sizeof(patches[0]); i++) {
		patch_supers(e, patches[i]);
		assert_load_fails(e, -EILSEQ);
		restore_supers(e, supers);
	}
	free(supers);
	load_and_verify(e, id);
}

/*
 * A root claiming a huge thin blob (2^40 clusters, depth 4) is corrupt, not
 * a 4 TiB allocation (tests/fuzz/corpus/regress-root-num-clusters); the
 * API refuses to create or grow a blob past the same limit.
 */
static void test_fuzz_huge_num_clusters(void **state)
{
	struct store_env *e = *state;
	uint64_t max = e->dev_bytes / e->cluster_size * e->cluster_size / 4;
	struct md_root *r = env_buf(MD_PAGE_SIZE);
	bs_blob_id id, thin;
	struct bs_blob *b;
	uint64_t page;

	assert_int_equal(env_init_store(e, NULL), 0);
	assert_int_equal(env_create(e, max + 1, true, &thin), -EINVAL);
	assert_int_equal(env_create(e, 1, true, &id), 0);
	b = open_ok(e, id);
	assert_int_equal(env_resize(e, b, max + 1), -EINVAL);
	assert_int_equal(env_resize(e, b, max), 0);
	assert_int_equal(env_close(e, b), 0);
	page = root_page_of(e, id, r);
	r->num_clusters = 1ull << 40;
	r->map_depth = 4;
	md_page_seal(r);
	assert_int_equal(env_dev_write_page(e, page, r), 0);
	assert_int_equal(env_unload(e), 0);
	assert_int_equal(env_load(e, NULL), 0);
	assert_int_equal(env_open(e, id, &b), -EILSEQ);
	free(r);
}

/*
 * Forced recovery of a clean store whose masks lie (a free cluster marked
 * used): recovery rebuilds them, and unload must write them even though
 * nothing else changed, or the next clean load brings the lie back
 * (tests/fuzz/corpus/regress-forced-recovery-stale-masks).
 */
static void test_fuzz_forced_recovery_masks(void **state)
{
	struct store_env *e = *state;
	struct md_mask_page *m = env_buf(MD_PAGE_SIZE);
	bs_blob_id id = make_unloaded_store(e, NULL);
	uint64_t last = e->dev_bytes / e->cluster_size - 1;
	struct bs_opts o;

	env_dev_read_page(e, 2, m); /* mask_start: the used-clusters bitmap first */
	assert_int_equal(m->hdr.level, MD_MASK_CLUSTERS);
	m->bits[last / 8] |= (uint8_t)(1u << (last % 8));
	md_page_seal(m);
	assert_int_equal(env_dev_write_page(e, 2, m), 0);
	free(m);
	bs_opts_init(&o, sizeof(o));
	o.cluster_size = e->cluster_size;
	o.force_recover = true;
	assert_int_equal(env_load(e, &o), 0);
	assert_consistent(e);
	assert_int_equal(env_unload(e), 0);
	load_and_verify(e, id);
}

/*
 * A valid root page whose blob id names another slot (past max_blobs) is
 * not a valid root of its slot: recovery indexed its slot tables by that
 * id (tests/fuzz/corpus/regress-root-blob-id-other-slot, a heap overflow).
 */
static void test_fuzz_root_id_other_slot(void **state)
{
	struct store_env *e = *state;
	struct md_root *r = env_buf(MD_PAGE_SIZE);
	bs_blob_id id, other;
	struct bs_blob *b;
	struct bs_opts o;
	uint64_t page;

	assert_int_equal(env_init_store(e, NULL), 0);
	assert_int_equal(env_create(e, 0, false, &id), 0); /* no tree to fail the load */
	page = root_page_of(e, id, r);
	other = BLOB_ID(BLOB_ID_INCARNATION(id), bs_get_max_blobs(e->bs) + 1000);
	r->hdr.blob_id = other;
	md_page_seal(r);
	assert_int_equal(env_dev_write_page(e, page, r), 0);
	free(r);
	env_crash(e, BS_CUT_KEEP_ALL, 0);
	bs_opts_init(&o, sizeof(o));
	o.cluster_size = e->cluster_size;
	o.force_recover = true;
	assert_int_equal(env_load(e, &o), 0);
	for (bs_blob_id it = bs_iter_first(e->bs); it != BS_BLOB_ID_INVALID;
	     it = bs_iter_next(e->bs, it))
		assert_true(BLOB_ID_SLOT(it) < bs_get_max_blobs(e->bs));
	assert_int_not_equal(env_open(e, other, &b), 0);
}

/*
 * A map reference past the pool: the tree load read that page anyway, past
 * the end of the device (-ERANGE failed check and recovery as a device
 * error) or from a data cluster that may hold a forged page. Now it is
 * corrupt metadata (tests/fuzz/corpus/regress-map-ref-past-pool).
 */
static void test_fuzz_map_ref_past_pool(void **state)
{
	struct store_env *e = *state;
	struct md_root *r = env_buf(MD_PAGE_SIZE);
	struct bs_check_report rep;
	struct bs_blob *b;
	bs_blob_id id;
	uint64_t page;

	assert_int_equal(env_init_store(e, NULL), 0);
	assert_int_equal(env_create(e, 1, false, &id), 0);
	page = root_page_of(e, id, r);
	r->map_refs[0].pool_idx = 0x7fffffff;
	md_page_seal(r);
	assert_int_equal(env_dev_write_page(e, page, r), 0);
	free(r);
	assert_int_equal(env_unload(e), 0);
	assert_int_equal(env_load(e, NULL), 0);
	assert_int_equal(env_open(e, id, &b), -EILSEQ);
	assert_int_equal(env_check(e, &rep), 0);
	assert_int_equal(rep.corrupt_blobs, 1);
}

/* ------------------------------------------------ 4. corrupt isolation */

#define NVICTIMS 4

/* Four blobs with data: thick 2, thin 3 (clusters 0 and 2 written), thick 1,
 * thin 2 (both written). Blob i's data uses seeds 100 + 10 * i + k. */
static void make_four(struct store_env *e, bs_blob_id *ids)
{
	static const uint64_t size[NVICTIMS] = { 2, 3, 1, 2 };
	static const bool thin[NVICTIMS] = { false, true, false, true };
	struct bs_blob *b;

	for (int i = 0; i < NVICTIMS; i++) {
		assert_int_equal(env_create(e, size[i], thin[i], &ids[i]), 0);
		b = open_ok(e, ids[i]);
		for (uint64_t k = 0; k < size[i]; k += (i == 1 ? 2 : 1))
			assert_int_equal(write_seeded(e, b, k * upc(e) + 1, 2, 100 + 10 * (uint64_t)i + k), 0);
		assert_int_equal(env_close(e, b), 0);
	}
}

static void verify_one_of_four(struct store_env *e, int i, bs_blob_id id)
{
	static const uint64_t size[NVICTIMS] = { 2, 3, 1, 2 };
	struct bs_blob *b = open_ok(e, id);

	for (uint64_t k = 0; k < size[i]; k += (i == 1 ? 2 : 1))
		verify_seeded(e, b, k * upc(e) + 1, 2, 100 + 10 * (uint64_t)i + k);
	if (i == 1)
		verify_seeded(e, b, upc(e), 1, 0);
	assert_int_equal(env_close(e, b), 0);
}

struct named {
	bs_blob_id want;
	unsigned hits;
};

static void check_names(void *arg, bs_blob_id id, const char *msg)
{
	struct named *n = arg;

	fprintf(stderr, "check: blob 0x%llx: %s\n", (unsigned long long)id, msg);
	if (id == n->want)
		n->hits++;
}

/* After a load that met the corrupt blob ids[v]: the report, both iterators,
 * open -EILSEQ, every other blob intact, the checker naming it. */
static void assert_isolated(struct store_env *e, const bs_blob_id *ids, int v)
{
	struct named n = { ids[v], 0 };
	struct bs_check_report cr;
	struct bs_load_report r;
	struct bs_blob *b;

	bs_get_load_report(e->bs, &r);
	assert_true(r.recovered);
	assert_int_equal(r.corrupt_blobs, 1);
	assert_int_equal(r.blobs, NVICTIMS - 1);
	assert_int_equal(bs_iter_corrupt(e->bs, BS_BLOB_ID_INVALID), ids[v]);
	assert_int_equal(bs_iter_corrupt(e->bs, ids[v]), BS_BLOB_ID_INVALID);
	assert_int_equal(count_blobs(e), NVICTIMS - 1);
	assert_int_equal(env_open(e, ids[v], &b), -EILSEQ);
	for (int i = 0; i < NVICTIMS; i++) {
		if (i != v)
			verify_one_of_four(e, i, ids[i]);
	}
	run_check(e, &cr, check_names, &n);
	assert_true(cr.problems > 0);
	assert_int_equal(cr.corrupt_blobs, 1);
	assert_true(n.hits > 0);
}

/* The other blobs keep working after the corrupt one was met: new data,
 * a delete of the corrupt blob that works or fails cleanly, a reload. */
static void assert_store_usable(struct store_env *e, const bs_blob_id *ids, int v)
{
	int w = (v + 1) % NVICTIMS, rc;
	struct bs_check_report cr;
	struct bs_blob *b;
	bs_blob_id id;

	assert_int_equal(env_create(e, 2, true, &id), 0);
	b = open_ok(e, id);
	assert_int_equal(write_seeded(e, b, 0, 1, 200), 0);
	assert_int_equal(write_seeded(e, b, upc(e), 1, 201), 0);
	assert_int_equal(env_close(e, b), 0);
	rc = env_delete(e, ids[v]);
	assert_true(rc == 0 || rc == -EILSEQ);
	run_check(e, &cr, NULL, NULL);
	assert_int_equal(cr.problems - cr.corrupt_blobs, 0);
	reload(e, false);
	verify_one_of_four(e, w, ids[w]);
	b = open_ok(e, id);
	verify_seeded(e, b, 0, 1, 200);
	verify_seeded(e, b, upc(e), 1, 201);
	assert_int_equal(env_close(e, b), 0);
}

/* Pool page of the extent page holding blob @id's cluster 0. */
static uint64_t extent_page_of(struct store_env *e, bs_blob_id id)
{
	struct md_root *r = env_buf(MD_PAGE_SIZE);
	uint64_t page;

	root_page_of(e, id, r);
	assert_int_equal(r->map_depth, 1);
	assert_true(r->map_refs[0].gen != 0);
	page = e->bs->pool_start + r->map_refs[0].pool_idx;
	free(r);
	return page;
}

/* Damage blob @id's older root page, if its slot has one, so a recovery has
 * no previous commit to fall back to. */
static void flip_older_root(struct store_env *e, bs_blob_id id)
{
	struct md_root *r = env_buf(MD_PAGE_SIZE);
	uint64_t first = e->bs->root_start + 2ull * BLOB_ID_SLOT(id);
	uint64_t other = first + (first + 1 - root_page_of(e, id, r));

	env_dev_read_page(e, other, r);
	if (r->hdr.magic == MD_MAGIC)
		flip_page_bytes(e, other, sizeof(struct md_header) + 40, 4);
	free(r);
}

/*
 * D16: a shrink releases clusters, so its commit leaves the new root in both
 * pages of the slot. A damaged (or stale) extent page of the shrunk blob then
 * cannot send recovery back to the pre-shrink root, which names clusters a
 * second blob has since been given and written: the shrunk blob is reported
 * corrupt, the second blob keeps its data, and the checker finds nothing
 * else.
 */
static void test_D16_release_leaves_no_previous_root(void **state)
{
	struct store_env *e = *state;
	struct md_root *r = env_buf(2 * MD_PAGE_SIZE);
	struct bs_check_report cr;
	struct bs_load_report lr;
	struct bs_blob *ha, *hb;
	bs_blob_id a, b;
	uint64_t first, nb, ext;
	struct bs_opts o;

	assert_int_equal(env_init_store(e, NULL), 0);
	assert_int_equal(env_create(e, 4, false, &a), 0);
	ha = open_ok(e, a);
	assert_int_equal(write_seeded(e, ha, 0, 4 * upc(e), 7), 0);
	assert_int_equal(env_sync(e, ha), 0);
	assert_int_equal(env_resize(e, ha, 1), 0);
	assert_int_equal(env_sync(e, ha), 0);
	first = e->bs->root_start + 2ull * BLOB_ID_SLOT(a);
	env_dev_read_page(e, first, &r[0]);
	env_dev_read_page(e, first + 1, &r[1]);
	assert_int_equal(r[0].hdr.gen, r[1].hdr.gen);
	assert_int_equal(r[0].num_clusters, 1);
	assert_int_equal(r[1].num_clusters, 1);
	free(r);
	/* Every free cluster, the three released ones included, goes to b. */
	nb = bs_get_free_cluster_count(e->bs);
	assert_int_equal(env_create(e, nb, false, &b), 0);
	hb = open_ok(e, b);
	for (uint64_t i = 0; i < nb; i++)
		assert_int_equal(write_seeded(e, hb, i * upc(e), 1, 100 + i), 0);
	assert_int_equal(env_sync(e, hb), 0);
	assert_int_equal(env_close(e, ha), 0);
	assert_int_equal(env_close(e, hb), 0);
	ext = extent_page_of(e, a);
	assert_int_equal(env_unload(e), 0);
	flip_page_bytes(e, ext, sizeof(struct md_header) + 8, 3);
	bs_opts_init(&o, sizeof(o));
	o.force_recover = true;
	assert_int_equal(env_load(e, &o), 0);
	bs_get_load_report(e->bs, &lr);
	assert_int_equal(lr.corrupt_blobs, 1);
	assert_int_equal(lr.fallback_roots, 0);
	assert_int_equal(env_open(e, a, &ha), -EILSEQ);
	hb = open_ok(e, b);
	for (uint64_t i = 0; i < nb; i++)
		verify_seeded(e, hb, i * upc(e), 1, 100 + i);
	assert_int_equal(env_close(e, hb), 0);
	run_check(e, &cr, NULL, NULL);
	assert_int_equal(cr.problems - cr.corrupt_blobs, 0);
	assert_int_equal(cr.double_owned_clusters, 0);
}

/*
 * One blob's extent page damaged on the device (bytes flipped, CRC left
 * stale; its older root, if any, damaged too), each of the four blobs in
 * turn: a clean load still opens the others and refuses the victim with
 * -EILSEQ; a recovering load succeeds, reports exactly one corrupt blob,
 * names it in bs_iter_corrupt and skips it in iteration; every other blob
 * reads its data; bs_check reports the problem naming the blob; the store
 * keeps working.
 */
static void test_corrupt_extent_isolated(void **state)
{
	struct store_env *e = *state;
	bs_blob_id ids[NVICTIMS];
	struct bs_opts o;
	struct bs_blob *b;

	bs_opts_init(&o, sizeof(o));
	o.force_recover = true;
	for (int v = 0; v < NVICTIMS; v++) {
		assert_int_equal(env_init_store(e, NULL), 0);
		make_four(e, ids);
		flip_older_root(e, ids[v]);
		flip_page_bytes(e, extent_page_of(e, ids[v]), sizeof(struct md_header) + 8, 3);
		reload(e, false);
		assert_int_equal(env_open(e, ids[v], &b), -EILSEQ);
		verify_one_of_four(e, (v + 2) % NVICTIMS, ids[(v + 2) % NVICTIMS]);
		assert_int_equal(env_unload(e), 0);
		assert_int_equal(env_load(e, &o), 0);
		assert_isolated(e, ids, v);
		assert_store_usable(e, ids, v);
		assert_int_equal(env_unload(e), 0);
	}
	assert_int_equal(env_init_store(e, NULL), 0);
}

/*
 * The same damage to the extent page of a thin blob's newest commit when
 * its previous root is intact is what a torn commit looks like (D3): a
 * recovering load falls back to the previous commit (reported as a
 * fallback, not as corrupt), rewrites it as the newest, and the store is
 * consistent.
 */
static void test_corrupt_extent_falls_back(void **state)
{
	struct store_env *e = *state;
	struct bs_load_report r;
	bs_blob_id ids[NVICTIMS];
	struct bs_blob *b;

	assert_int_equal(env_init_store(e, NULL), 0);
	make_four(e, ids);
	flip_page_bytes(e, extent_page_of(e, ids[3]), sizeof(struct md_header) + 8, 3);
	reload(e, true);
	bs_get_load_report(e->bs, &r);
	assert_int_equal(r.corrupt_blobs, 0);
	assert_int_equal(r.fallback_roots, 1);
	assert_int_equal(bs_iter_corrupt(e->bs, BS_BLOB_ID_INVALID), BS_BLOB_ID_INVALID);
	b = open_ok(e, ids[3]);
	assert_int_equal(bs_blob_get_num_allocated_clusters(b), 0);
	assert_int_equal(env_close(e, b), 0);
	for (int i = 0; i < 3; i++)
		verify_one_of_four(e, i, ids[i]);
	assert_consistent(e);
	reload(e, true);
	bs_get_load_report(e->bs, &r);
	assert_int_equal(r.fallback_roots, 0);
	assert_consistent(e);
}

/*
 * One blob's root pages damaged (both slot pages, so there is nothing to
 * fall back to): a recovering load succeeds, reports and names exactly that
 * blob (its real id), refuses to open it, and every other blob is intact.
 */
static void test_corrupt_root_isolated(void **state)
{
	struct store_env *e = *state;
	bs_blob_id ids[NVICTIMS];
	struct bs_opts o;
	uint64_t first;
	struct bs_blob *b;

	bs_opts_init(&o, sizeof(o));
	o.force_recover = true;
	for (int v = 0; v < NVICTIMS; v += 3) {
		assert_int_equal(env_init_store(e, NULL), 0);
		make_four(e, ids);
		/* A second commit so both slot pages hold a root. */
		b = open_ok(e, ids[v]);
		assert_int_equal(bs_blob_set_xattr(b, "x", "y", 1), 0);
		assert_int_equal(env_close(e, b), 0);
		first = e->bs->root_start + 2ull * BLOB_ID_SLOT(ids[v]);
		flip_page_bytes(e, first, sizeof(struct md_header) + 40, 4);
		flip_page_bytes(e, first + 1, sizeof(struct md_header) + 40, 4);
		assert_int_equal(env_unload(e), 0);
		assert_int_equal(env_load(e, &o), 0);
		assert_isolated(e, ids, v);
		assert_store_usable(e, ids, v);
		assert_int_equal(env_unload(e), 0);
	}
	assert_int_equal(env_init_store(e, NULL), 0);
}

/* ------------------------------------------------------------ 5. misuse */

#define OFF_NCALLS 11

struct off_call {
	atomic_int rc;
	struct off_ctx *o;
};

/* Metadata calls made from a worker thread, and what they returned. */
struct off_ctx {
	struct bs_store *bs;
	struct bs_blob *b;
	bs_blob_id id;
	bs_blob_id new_id;
	struct bs_blob *opened;
	struct bs_check_report rep;
	struct off_call calls[OFF_NCALLS];
	atomic_uint left;
	atomic_bool all_done;
	int sync_rc[3];
};

static void off_cpl(void *arg, int err)
{
	struct off_call *c = arg;

	atomic_store(&c->rc, err);
	if (atomic_fetch_sub(&c->o->left, 1) == 1)
		atomic_store(&c->o->all_done, true);
}

/* Runs on the worker: every metadata entry point, none of them allowed there. */
static void off_thread_calls(void *ctx)
{
	struct off_ctx *o = ctx;
	struct off_call *c = o->calls;

	bs_blob_create(o->bs, NULL, &o->new_id, off_cpl, &c[0]);
	bs_blob_open(o->bs, o->id, &o->opened, off_cpl, &c[1]);
	bs_blob_delete(o->bs, o->id, off_cpl, &c[2]);
	bs_blob_resize(o->b, 3, off_cpl, &c[3]);
	bs_blob_sync(o->b, off_cpl, &c[4]);
	bs_blob_close(o->b, off_cpl, &c[5]);
	bs_set_super(o->bs, o->id, off_cpl, &c[6]);
	bs_flush(o->bs, off_cpl, &c[7]);
	bs_check(o->bs, &o->rep, NULL, NULL, off_cpl, &c[8]);
	bs_unload(o->bs, off_cpl, &c[9]);
	bs_destroy(o->bs, off_cpl, &c[10]);
	o->sync_rc[0] = bs_blob_set_xattr(o->b, "k", "v", 1);
	o->sync_rc[1] = bs_blob_remove_xattr(o->b, "k");
	o->sync_rc[2] = bs_blob_set_read_only(o->b);
}

/*
 * Metadata calls from another bs_thread (a started reactor, reached with
 * bs_thread_send_msg): create, open, delete, resize, sync, close,
 * set_super, flush, check, unload, destroy, set/remove xattr and
 * set_read_only all fail with -EPERM and a log line, and change nothing:
 * the blob stays open on the metadata thread and works normally.
 */
static void test_misuse_off_md_thread(void **state)
{
	struct store_env *e = *state;
	struct off_ctx *o = calloc(1, sizeof(*o));
	struct env_worker w;
	unsigned errs;
	const void *v;
	uint32_t len;

	assert_int_equal(env_init_store(e, NULL), 0);
	assert_int_equal(env_create(e, 2, false, &o->id), 0);
	o->b = open_ok(e, o->id);
	o->bs = e->bs;
	atomic_init(&o->left, OFF_NCALLS);
	for (int i = 0; i < OFF_NCALLS; i++) {
		atomic_init(&o->calls[i].rc, 1);
		o->calls[i].o = o;
	}
	env_worker_start(e, &w, "misuse");
	errs = log_errors();
	env_worker_run(e, &w, off_thread_calls, o);
	assert_true(env_wait_flag(e, &o->all_done, 60000));
	for (int i = 0; i < OFF_NCALLS; i++)
		assert_int_equal(atomic_load(&o->calls[i].rc), -EPERM);
	for (int i = 0; i < 3; i++)
		assert_int_equal(o->sync_rc[i], -EPERM);
	assert_true(log_errors() >= errs + OFF_NCALLS + 3);
	env_worker_stop(e, &w);
	assert_int_equal(bs_blob_get_xattr(o->b, "k", &v, &len), -ENOENT);
	assert_int_equal(bs_blob_get_num_clusters(o->b), 2);
	assert_int_equal(env_resize(e, o->b, 3), 0);
	assert_int_equal(env_sync(e, o->b), 0);
	assert_int_equal(env_close(e, o->b), 0);
	assert_int_equal(env_delete(e, o->id), 0);
	assert_consistent(e);
	free(o);
}

/* Every IO kind on @b fails with @err. */
static void assert_all_io(struct store_env *e, struct bs_blob *b, struct bs_io_channel *ch,
			  uint64_t off, uint64_t len, int err)
{
	uint8_t *buf = env_buf(2 * (size_t)e->block_len);	/* never reached past 2 units */

	for (int k = IO_READ; k <= IO_ZEROES; k++)
		assert_int_equal(io_do(e, (enum io_kind)k, b, ch, buf, off, len), err);
	free(buf);
}

/* Every call through the closed handle @a fails with -EBADF. */
static void assert_closed_refused(struct store_env *e, struct bs_blob *a)
{
	const void *v;
	uint32_t len;

	assert_all_io(e, a, chan(e), 0, 1, -EBADF);
	assert_int_equal(env_sync(e, a), -EBADF);
	assert_int_equal(env_resize(e, a, 1), -EBADF);
	assert_int_equal(env_close(e, a), -EBADF);
	assert_int_equal(bs_blob_set_xattr(a, "k", "v", 1), -EBADF);
	assert_int_equal(bs_blob_get_xattr(a, "k", &v, &len), -EBADF);
	assert_int_equal(bs_blob_remove_xattr(a, "k"), -EBADF);
	assert_int_equal(bs_blob_set_read_only(a), -EBADF);
}

/*
 * Misuse through handles and ranges: unload and destroy with open blobs
 * fail with -EBUSY and change nothing; IO past the end is -ERANGE and of
 * zero length -EINVAL (every IO kind); a read-only blob refuses resize
 * with -EPERM; every call through a closed handle is -EBADF; an open blob
 * cannot be deleted (-EBUSY); a deleted or wrong id is -ENOENT.
 */
static void test_misuse_handles(void **state)
{
	struct store_env *e = *state;
	struct bs_blob *a, *t, *b;
	bs_blob_id ida, idt;
	uint64_t n;

	assert_int_equal(env_init_store(e, NULL), 0);
	assert_int_equal(env_create(e, 2, false, &ida), 0);
	assert_int_equal(env_create(e, 2, true, &idt), 0);
	a = open_ok(e, ida);
	t = open_ok(e, idt);
	n = bs_blob_get_num_io_units(a);
	assert_int_equal(env_unload(e), -EBUSY);
	{
		struct th_cpl c = { 0 };

		bs_destroy(e->bs, th_cpl_fn, &c);
		assert_int_equal(env_wait(e, &c), -EBUSY);
	}
	assert_int_equal(write_seeded(e, a, 0, 1, 300), 0);
	assert_all_io(e, a, chan(e), n, 1, -ERANGE);
	assert_all_io(e, a, chan(e), n - 1, 2, -ERANGE);
	assert_all_io(e, a, chan(e), UINT64_MAX, 1, -ERANGE);
	assert_all_io(e, a, chan(e), 1, UINT64_MAX, -ERANGE);
	assert_all_io(e, a, chan(e), 0, 0, -EINVAL);
	assert_all_io(e, t, chan(e), n, 0, -EINVAL);
	assert_int_equal(env_delete(e, idt), -EBUSY);
	assert_int_equal(bs_blob_set_read_only(a), 0);
	assert_int_equal(env_resize(e, a, 3), -EPERM);
	assert_int_equal(env_close(e, a), 0);
	assert_closed_refused(e, a);
	assert_int_equal(env_close(e, t), 0);
	assert_int_equal(env_delete(e, idt), 0);
	assert_int_equal(env_open(e, idt, &b), -ENOENT);
	assert_int_equal(env_delete(e, idt), -ENOENT);
	assert_int_equal(env_open(e, ida + (1ull << 32), &b), -ENOENT);
	b = open_ok(e, ida);
	verify_seeded(e, b, 0, 1, 300);
	assert_int_equal(env_close(e, b), 0);
	assert_consistent(e);
}

/* @n completions issued together: none ran inline, each reports -EINVAL once. */
static void wait_all_einval(struct store_env *e, struct th_cpl *c, int n)
{
	for (int k = 0; k < n; k++)
		assert_false(c[k].done);
	for (int k = 0; k < n; k++) {
		assert_true(th_poll_until(e->t, &c[k].done, 100000000ull));
		assert_int_equal(c[k].err, -EINVAL);
		assert_int_equal(c[k].calls, 1);
	}
}

/* Asynchronous store and blob calls with NULL arguments: -EINVAL, deferred. */
static void null_args_async(struct store_env *e, struct bs_blob *b)
{
	struct th_cpl c[20] = { { 0 } };
	struct bs_check_report rep;
	bs_blob_id id;
	int i = 0;

	bs_blob_create(NULL, NULL, &id, th_cpl_fn, &c[i++]);
	bs_blob_create(e->bs, NULL, NULL, th_cpl_fn, &c[i++]);
	bs_blob_open(NULL, bs_blob_get_id(b), &b, th_cpl_fn, &c[i++]);
	bs_blob_open(e->bs, bs_blob_get_id(b), NULL, th_cpl_fn, &c[i++]);
	bs_blob_close(NULL, th_cpl_fn, &c[i++]);
	bs_blob_delete(NULL, bs_blob_get_id(b), th_cpl_fn, &c[i++]);
	bs_blob_resize(NULL, 1, th_cpl_fn, &c[i++]);
	bs_blob_sync(NULL, th_cpl_fn, &c[i++]);
	bs_flush(NULL, th_cpl_fn, &c[i++]);
	bs_set_super(NULL, 0, th_cpl_fn, &c[i++]);
	bs_check(NULL, &rep, NULL, NULL, th_cpl_fn, &c[i++]);
	bs_check(e->bs, NULL, NULL, NULL, th_cpl_fn, &c[i++]);
	bs_unload(NULL, th_cpl_fn, &c[i++]);
	bs_destroy(NULL, th_cpl_fn, &c[i++]);
	bs_init(NULL, NULL, &e->bs, th_cpl_fn, &c[i++]);
	bs_init(e->dev, NULL, NULL, th_cpl_fn, &c[i++]);
	bs_load(NULL, NULL, &e->bs, th_cpl_fn, &c[i++]);
	bs_load(e->dev, NULL, NULL, th_cpl_fn, &c[i++]);
	wait_all_einval(e, c, i);
}

/* Synchronous calls with NULL arguments: -EINVAL (or a NULL / 0 answer). */
static void null_args_sync(struct store_env *e, struct bs_blob *b)
{
	const void *v;
	uint32_t len;
	bs_blob_id id;

	assert_int_equal(bs_blob_set_xattr(NULL, "k", "v", 1), -EINVAL);
	assert_int_equal(bs_blob_set_xattr(b, NULL, "v", 1), -EINVAL);
	assert_int_equal(bs_blob_set_xattr(b, "k", NULL, 1), -EINVAL);
	assert_int_equal(bs_blob_get_xattr(NULL, "k", &v, &len), -EINVAL);
	assert_int_equal(bs_blob_get_xattr(b, NULL, &v, &len), -EINVAL);
	assert_int_equal(bs_blob_get_xattr(b, "k", NULL, &len), -EINVAL);
	assert_int_equal(bs_blob_get_xattr(b, "k", &v, NULL), -EINVAL);
	assert_int_equal(bs_blob_remove_xattr(NULL, "k"), -EINVAL);
	assert_int_equal(bs_blob_remove_xattr(b, NULL), -EINVAL);
	assert_int_equal(bs_blob_set_read_only(NULL), -EINVAL);
	assert_int_equal(bs_blob_get_xattr_count(NULL), 0);
	assert_null(bs_blob_get_xattr_name(NULL, 0));
	assert_int_equal(bs_get_super(NULL, &id), -EINVAL);
	assert_int_equal(bs_get_super(e->bs, NULL), -EINVAL);
	errno = 0;
	assert_null(bs_alloc_channel(NULL));
	assert_int_equal(errno, EINVAL);
	bs_free_channel(NULL);
}

/* Data IO with NULL blob, channel, buffer or iovec: -EINVAL, deferred. */
static void null_args_io(struct store_env *e, struct bs_blob *b)
{
	uint8_t *buf = env_buf(e->block_len);
	struct th_cpl c[8] = { { 0 } };
	struct iovec iov = { NULL, e->block_len };
	int i = 0;

	assert_all_io(e, NULL, chan(e), 0, 1, -EINVAL);
	assert_all_io(e, b, NULL, 0, 1, -EINVAL);
	/* Unallocated (thin) and allocated clusters alike. */
	for (uint64_t off = 0; off < 2 * upc(e); off += upc(e)) {
		bs_blob_read(b, chan(e), NULL, off, 1, th_cpl_fn, &c[i++]);
		bs_blob_write(b, chan(e), NULL, off, 1, th_cpl_fn, &c[i++]);
		bs_blob_readv(b, chan(e), &iov, 1, off, 1, th_cpl_fn, &c[i++]);
		bs_blob_readv(b, chan(e), NULL, 1, off, 1, th_cpl_fn, &c[i++]);
	}
	wait_all_einval(e, c, i);
	free(buf);
}

/*
 * NULL arguments anywhere in the API return -EINVAL (asynchronous calls
 * through a deferred callback), never crash, and change nothing.
 */
static void test_misuse_null_args(void **state)
{
	struct store_env *e = *state;
	struct bs_blob *b;
	bs_blob_id id;

	assert_int_equal(env_init_store(e, NULL), 0);
	assert_int_equal(env_create(e, 2, true, &id), 0);
	b = open_ok(e, id);
	assert_int_equal(write_seeded(e, b, upc(e), 1, 400), 0);
	null_args_async(e, b);
	null_args_sync(e, b);
	null_args_io(e, b);
	verify_seeded(e, b, upc(e), 1, 400);
	assert_int_equal(bs_blob_get_num_allocated_clusters(b), 1);
	assert_int_equal(env_close(e, b), 0);
	assert_consistent(e);
}

/* ------------------------------------------------------ 6. threads */

#define NWORKERS 3
#define MT_DEPTH 16u
#define MT_WAIT_MS 120000u

struct mt_op {
	struct bs_blob *blob;
	uint64_t off;
	uint64_t len;
	uint8_t *buf;
};

/* A list of IOs one worker runs, MT_DEPTH at a time, on its own channel. */
struct mt_job {
	struct env_worker *w;
	bool write;
	struct mt_op *ops;
	uint32_t nops, cap, next, inflight;
	atomic_bool *go;		/* start barrier, or NULL */
	atomic_uint *ready;
	atomic_int err;			/* first error */
	atomic_bool done;
};

static void mt_add(struct mt_job *j, struct bs_blob *b, uint64_t off, uint64_t len, uint8_t *buf)
{
	if (j->nops == j->cap) {
		j->cap = j->cap ? 2 * j->cap : 64;
		j->ops = realloc(j->ops, j->cap * sizeof(*j->ops));
		assert_non_null(j->ops);
	}
	j->ops[j->nops++] = (struct mt_op){ b, off, len, buf };
}

static void mt_job_cpl(void *arg, int err);

/* On the worker: keep MT_DEPTH IOs in flight; flag done after the last. */
static void mt_job_pump(struct mt_job *j)
{
	while (j->next < j->nops && j->inflight < MT_DEPTH) {
		struct mt_op *o = &j->ops[j->next++];

		j->inflight++;
		if (j->write)
			bs_blob_write(o->blob, j->w->ch, o->buf, o->off, o->len, mt_job_cpl, j);
		else
			bs_blob_read(o->blob, j->w->ch, o->buf, o->off, o->len, mt_job_cpl, j);
	}
	if (j->next == j->nops && j->inflight == 0)
		atomic_store(&j->done, true);
}

static void mt_job_cpl(void *arg, int err)
{
	struct mt_job *j = arg;
	int none = 0;

	if (err != 0)
		atomic_compare_exchange_strong(&j->err, &none, err);
	j->inflight--;
	mt_job_pump(j);
}

static uint64_t mt_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Message on the worker: wait (bounded) at the barrier, then start. */
static void mt_job_start(void *ctx)
{
	struct mt_job *j = ctx;
	uint64_t end = mt_now_ms() + MT_WAIT_MS;

	if (j->go != NULL) {
		atomic_fetch_add(j->ready, 1);
		while (!atomic_load(j->go) && mt_now_ms() < end)
			sched_yield();
	}
	mt_job_pump(j);
}

/* Barrier shared by one round of jobs (heap: outlives a failed wait). */
struct mt_barrier {
	atomic_bool go;
	atomic_uint ready;
};

/* Run @n jobs, one per worker, released together; all must succeed. */
static void mt_run(struct store_env *e, struct mt_job *jobs, int n)
{
	struct mt_barrier *bar = calloc(1, sizeof(*bar));
	uint64_t end = mt_now_ms() + MT_WAIT_MS;
	int done = 0;

	for (int i = 0; i < n; i++) {
		jobs[i].go = &bar->go;
		jobs[i].ready = &bar->ready;
		jobs[i].next = jobs[i].inflight = 0;
		atomic_store(&jobs[i].err, 0);
		atomic_store(&jobs[i].done, false);
		assert_int_equal(bs_thread_send_msg(jobs[i].w->t, mt_job_start, &jobs[i]), 0);
	}
	while (atomic_load(&bar->ready) < (unsigned)n && mt_now_ms() < end)
		bs_thread_poll(e->t, 0);
	assert_int_equal(atomic_load(&bar->ready), n);
	atomic_store(&bar->go, true);
	/* Every job finishes before any assertion: a failure must not strand IO. */
	for (int i = 0; i < n; i++)
		done += env_wait_flag(e, &jobs[i].done, MT_WAIT_MS);
	assert_int_equal(done, n);
	for (int i = 0; i < n; i++)
		assert_int_equal(atomic_load(&jobs[i].err), 0);
	free(bar);
}

static void mt_jobs_reset(struct mt_job *jobs, struct env_worker *w, bool write)
{
	for (int i = 0; i < NWORKERS; i++) {
		free(jobs[i].ops);
		memset(&jobs[i], 0, sizeof(jobs[i]));
		jobs[i].w = &w[i];
		jobs[i].write = write;
	}
}

static void mt_jobs_free(struct mt_job *jobs)
{
	for (int i = 0; i < NWORKERS; i++)
		free(jobs[i].ops);
}

#define MT_BLOBS 3
#define MT_CLUSTERS 3

/* Cut blob @bi into chunks of 3/8 cluster (so some straddle clusters), owned
 * round robin by the workers (shifted by @shift), and each chunk into
 * pieces of seeded random length pointing into @img. */
static void mt_plan(struct store_env *e, struct mt_job *jobs, struct bs_blob *b, uint8_t *img,
		    int shift, uint64_t seed)
{
	uint64_t units = MT_CLUSTERS * upc(e), chunk = BS_MAX(1, upc(e) * 3 / 8);
	uint64_t rng = seed;

	for (uint64_t c0 = 0, j = 0; c0 < units; c0 += chunk, j++) {
		struct mt_job *job = &jobs[(j + (uint64_t)shift) % NWORKERS];
		uint64_t end = BS_MIN(units, c0 + chunk);

		for (uint64_t off = c0; off < end;) {
			uint64_t r = 1 + th_rand(&rng) % BS_MAX(1, chunk / 3);
			uint64_t len = BS_MIN(end - off, r);

			mt_add(job, b, off, len, img + off * e->block_len);
			off += len;
		}
	}
}

/* Workers write every blob image, then each reads back another's chunks. */
static void mt_write_then_read(struct store_env *e, struct env_worker *w, struct bs_blob **b,
			       uint8_t **img, uint8_t **back)
{
	struct mt_job jobs[NWORKERS] = { { 0 } };

	mt_jobs_reset(jobs, w, true);
	for (int i = 0; i < MT_BLOBS; i++)
		mt_plan(e, jobs, b[i], img[i], 0, 500 + (uint64_t)i);
	mt_run(e, jobs, NWORKERS);
	mt_jobs_reset(jobs, w, false);
	for (int i = 0; i < MT_BLOBS; i++)
		mt_plan(e, jobs, b[i], back[i], 1, 500 + (uint64_t)i);
	mt_run(e, jobs, NWORKERS);
	mt_jobs_free(jobs);
}

/* Metadata thread: blob @b reads back exactly @img. */
static void mt_verify_blob(struct store_env *e, struct bs_blob *b, const uint8_t *img)
{
	size_t bytes = MT_CLUSTERS * (size_t)e->cluster_size;
	uint8_t *got = env_buf(bytes);

	assert_int_equal(env_read(e, b, got, 0, MT_CLUSTERS * upc(e)), 0);
	assert_memory_equal(got, img, bytes);
	free(got);
}

/* Start the workers, run the write and read phases, stop them. */
static void mt_workers_write_then_read(struct store_env *e, struct bs_blob **b, uint8_t **img,
				       uint8_t **back)
{
	struct env_worker w[NWORKERS];

	for (int i = 0; i < NWORKERS; i++)
		env_worker_start(e, &w[i], "mtw");
	mt_write_then_read(e, w, b, img, back);
	for (int i = 0; i < NWORKERS; i++)
		env_worker_stop(e, &w[i]);
}

/* After a recovering reload every blob still reads back its image (freed). */
static void mt_verify_after_reload(struct store_env *e, const bs_blob_id *id, uint8_t **img)
{
	struct bs_blob *b;

	reload(e, true);
	for (int i = 0; i < MT_BLOBS; i++) {
		b = open_ok(e, id[i]);
		mt_verify_blob(e, b, img[i]);
		assert_int_equal(env_close(e, b), 0);
		free(img[i]);
	}
	assert_consistent(e);
}

/*
 * Three reactor threads, each with its own channel, write seeded patterns
 * at once into disjoint ranges of the same blobs (two thick, one thin whose
 * clusters they share and so allocate racing each other, zeroing each
 * claimed cluster first; some IOs span clusters), then each reads back another thread's ranges: every byte
 * matches, the thin blob has exactly its clusters allocated, no cluster
 * leaks, and everything survives sync and a reload.
 */
static void test_mt_disjoint_writes(void **state)
{
	struct store_env *e = *state;
	size_t bytes = MT_CLUSTERS * (size_t)e->cluster_size;
	struct bs_blob *b[MT_BLOBS];
	uint8_t *img[MT_BLOBS], *back[MT_BLOBS];
	bs_blob_id id[MT_BLOBS];
	struct bs_opts o;
	uint64_t free0;

	/* No cluster is known-zero: every thin claimant zeroes first (wide race). */
	bs_opts_init(&o, sizeof(o));
	o.cluster_size = e->cluster_size;
	o.clear_method = BS_CLEAR_NONE;
	assert_int_equal(env_init_store(e, &o), 0);
	free0 = bs_get_free_cluster_count(e->bs);
	for (int i = 0; i < MT_BLOBS; i++) {
		assert_int_equal(env_create(e, MT_CLUSTERS, i == 2, &id[i]), 0);
		b[i] = open_ok(e, id[i]);
		img[i] = env_buf(bytes);
		back[i] = env_buf(bytes);
		th_fill(img[i], bytes, 600 + (uint64_t)i);
	}
	mt_workers_write_then_read(e, b, img, back);
	for (int i = 0; i < MT_BLOBS; i++) {
		assert_memory_equal(back[i], img[i], bytes);
		assert_int_equal(bs_blob_get_num_allocated_clusters(b[i]), MT_CLUSTERS);
	}
	assert_int_equal(bs_get_free_cluster_count(e->bs), free0 - MT_BLOBS * MT_CLUSTERS);
	for (int i = 0; i < MT_BLOBS; i++) {
		assert_int_equal(env_sync(e, b[i]), 0);
		assert_int_equal(env_close(e, b[i]), 0);
		free(back[i]);
	}
	assert_consistent(e);
	mt_verify_after_reload(e, id, img);
	assert_int_equal(bs_get_free_cluster_count(e->bs), free0 - MT_BLOBS * MT_CLUSTERS);
}

#define RACE_UNITS 3	/* io units each worker writes per cluster */
#define RACE_ROUNDS 4

/* Worker w writes units w, w + 2 * NWORKERS, ... of every cluster, cluster by
 * cluster, so all workers hit each unallocated cluster together. @want
 * gets the data, @img supplies it. */
static void race_plan(struct store_env *e, struct mt_job *jobs, struct bs_blob *b, uint64_t k,
		      uint8_t *img, uint8_t *want)
{
	size_t bl = e->block_len;

	for (uint64_t c = 0; c < k; c++) {
		for (int w = 0; w < NWORKERS; w++) {
			for (uint64_t u = 0; u < RACE_UNITS; u++) {
				uint64_t off = c * upc(e) + (uint64_t)w + u * NWORKERS * 2;

				mt_add(&jobs[w], b, off, 1, img + off * bl);
				memcpy(want + off * bl, img + off * bl, bl);
			}
		}
	}
}

/* One round: a fresh thin blob of @k clusters, raced into, then verified. */
static void race_round(struct store_env *e, struct env_worker *w, uint64_t k, uint64_t seed)
{
	size_t bytes = k * (size_t)e->cluster_size;
	uint8_t *img = env_buf(bytes), *want = env_buf(bytes), *got = env_buf(bytes);
	uint64_t free0 = bs_get_free_cluster_count(e->bs);
	struct mt_job jobs[NWORKERS] = { { 0 } };
	struct bs_blob *b;
	bs_blob_id id;

	th_fill(img, bytes, seed);
	assert_int_equal(env_create(e, k, true, &id), 0);
	b = open_ok(e, id);
	mt_jobs_reset(jobs, w, true);
	race_plan(e, jobs, b, k, img, want);
	mt_run(e, jobs, NWORKERS);
	mt_jobs_free(jobs);
	assert_int_equal(bs_blob_get_num_allocated_clusters(b), k);
	assert_int_equal(bs_get_free_cluster_count(e->bs), free0 - k);
	assert_int_equal(env_read(e, b, got, 0, k * upc(e)), 0);
	assert_memory_equal(got, want, bytes);
	assert_int_equal(env_sync(e, b), 0);
	assert_int_equal(env_close(e, b), 0);
	free(img);
	free(want);
	free(got);
}

static void race_rounds(struct store_env *e, uint64_t k, uint64_t seed)
{
	struct env_worker w[NWORKERS];

	for (int i = 0; i < NWORKERS; i++)
		env_worker_start(e, &w[i], "race");
	for (uint64_t r = 0; r < RACE_ROUNDS; r++)
		race_round(e, w, k, seed + r);
	for (int i = 0; i < NWORKERS; i++)
		env_worker_stop(e, &w[i]);
	assert_consistent(e);
}

/*
 * Racing first writes into the same unallocated thin clusters: three
 * threads released together each write their own io units of every
 * cluster of a fresh thin blob. Exactly one cluster is allocated per blob
 * cluster, every thread's units read back, the rest of each cluster reads
 * zeros, the free count is exact and the checker clean after sync. Run on
 * known-zero clusters (fresh store) and, after a forced recovery, on
 * clusters that each claimant must zero first (a wide race window).
 */
static void test_mt_race_first_write(void **state)
{
	struct store_env *e = *state;
	uint64_t k, free0;

	assert_int_equal(env_init_store(e, NULL), 0);
	free0 = bs_get_free_cluster_count(e->bs);
	k = BS_MIN(4, free0 / (2 * RACE_ROUNDS));
	assert_true(k >= 1 && NWORKERS - 1 + (RACE_UNITS - 1) * NWORKERS * 2 < upc(e));
	race_rounds(e, k, 700);
	reload(e, true);
	race_rounds(e, k, 800);
	assert_int_equal(bs_get_free_cluster_count(e->bs), free0 - 2 * RACE_ROUNDS * k);
	reload(e, true);
	assert_int_equal(bs_get_free_cluster_count(e->bs), free0 - 2 * RACE_ROUNDS * k);
	assert_consistent(e);
}

/* ------------------------------------------------------------ main */

#define PARAM_TESTS(fn)                                                                   \
	cmocka_unit_test_prestate_setup_teardown(fn, env_fixture_setup, env_fixture_teardown, (void *)&g_params[0]), \
	cmocka_unit_test_prestate_setup_teardown(fn, env_fixture_setup, env_fixture_teardown, (void *)&g_params[1]), \
	cmocka_unit_test_prestate_setup_teardown(fn, env_fixture_setup, env_fixture_teardown, (void *)&g_params[2]), \
	cmocka_unit_test_prestate_setup_teardown(fn, env_fixture_setup, env_fixture_teardown, (void *)&g_params[3])

int main(void)
{
	const struct CMUnitTest tests[] = {
		PARAM_TESTS(test_enospc_thin_fill),
		PARAM_TESTS(test_enospc_thick),
		PARAM_TESTS(test_enospc_slots),
		PARAM_TESTS(test_enospc_pool),
		PARAM_TESTS(test_xattr_limits),
		PARAM_TESTS(test_xattr_many_small),
		PARAM_TESTS(test_xattr_inline_boundary),
		PARAM_TESTS(test_read_only_persists),
		PARAM_TESTS(test_unknown_invalid_flag),
		PARAM_TESTS(test_unknown_data_ro_flag),
		PARAM_TESTS(test_unknown_md_ro_flag),
		PARAM_TESTS(test_super_future),
		PARAM_TESTS(test_super_ro_compat),
		PARAM_TESTS(test_super_one_copy_bad),
		PARAM_TESTS(test_super_not_a_store),
		PARAM_TESTS(test_super_wrong_device),
		PARAM_TESTS(test_fuzz_super_geometry),
		PARAM_TESTS(test_fuzz_huge_num_clusters),
		PARAM_TESTS(test_fuzz_forced_recovery_masks),
		PARAM_TESTS(test_fuzz_root_id_other_slot),
		PARAM_TESTS(test_fuzz_map_ref_past_pool),
		PARAM_TESTS(test_D16_release_leaves_no_previous_root),
		PARAM_TESTS(test_corrupt_extent_isolated),
		PARAM_TESTS(test_corrupt_extent_falls_back),
		PARAM_TESTS(test_corrupt_root_isolated),
		PARAM_TESTS(test_misuse_off_md_thread),
		PARAM_TESTS(test_misuse_handles),
		PARAM_TESTS(test_misuse_null_args),
		PARAM_TESTS(test_mt_disjoint_writes),
		PARAM_TESTS(test_mt_race_first_write),
	};

	const char *filter = getenv("BS_TEST_FILTER");

	if (filter != NULL && *filter != '\0')
		cmocka_set_test_filter(filter);
	bs_log_set_hook(log_hook, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
