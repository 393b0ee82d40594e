/*
 * External snapshot suite: esnap clones over a RAM device holding a
 * pattern; reads through, copy-on-write at cluster edges, reload (clean
 * and after a power cut), degraded opens, snapshot and clone of an esnap
 * clone, inflate, set_external_parent and bad input. Runs with 512 B and
 * 4 KiB blocks (the external device has 512 B blocks).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <blobstore/log.h>

#include "blob/store_int.h"
#include "store_env.h"

static const struct store_param g_params[] = {
	{ 512, 64 * 1024, 32ull << 20 },
	{ 4096, 64 * 1024, 32ull << 20 },
	{ 4096, 64 * 1024, 32ull << 20, true }, /* no copy offload */
};

#define ESNAP_ID "golden-image-1"
#define NCL 8u			/* blob clusters */

/* The external devices the factory hands out. */
static struct {
	uint8_t *image;
	uint64_t bytes;		/* 5.5 clusters: the rest reads as zeros */
	int fail;		/* the factory's answer, 0 = a device */
	uint32_t block_len;	/* of the devices handed out */
	int calls;
} g_src;

static int factory(void *ctx, bs_blob_id blob, const void *id, uint32_t len, struct bs_dev **out)
{
	struct bs_ram_dev_opts o;

	(void)ctx;
	(void)blob;
	g_src.calls++;
	if (g_src.fail != 0)
		return g_src.fail;
	if (len != strlen(ESNAP_ID) || memcmp(id, ESNAP_ID, len) != 0)
		return -ENOENT;
	bs_ram_dev_opts_init(&o);
	o.block_len = g_src.block_len;
	o.block_count = g_src.bytes / g_src.block_len;
	o.image = g_src.image;
	o.volatile_cache = false;
	return bs_ram_dev_create(&o, out);
}

static int g_log_lines;

static void count_log(void *arg, enum bs_log_level level, const char *line)
{
	(void)arg;
	(void)level;
	(void)line;
	g_log_lines++;
}

static uint8_t pat(uint64_t off)
{
	return (uint8_t)((off >> 9) * 31 + (off & 511) + 1);
}

static void opts_with_factory(struct store_env *e, struct bs_opts *o)
{
	bs_opts_init(o, sizeof(*o));
	o->cluster_size = e->cluster_size;
	o->esnap_dev_create = factory;
	o->esnap_ctx = &g_src;
}

static int setup(void **state)
{
	struct store_env *e;
	struct bs_opts o;

	env_fixture_setup(state);
	e = *state;
	g_src.bytes = 11ull * e->cluster_size / 2;
	g_src.image = malloc(g_src.bytes);
	assert_non_null(g_src.image);
	for (uint64_t i = 0; i < g_src.bytes; i++)
		g_src.image[i] = pat(i);
	g_src.fail = 0;
	g_src.calls = 0;
	g_src.block_len = 512;
	opts_with_factory(e, &o);
	assert_int_equal(env_init_store(e, &o), 0);
	return 0;
}

static int teardown(void **state)
{
	free(g_src.image);
	g_src.image = NULL;
	return env_fixture_teardown(state);
}

static void consistent(struct store_env *e)
{
	struct bs_check_report r;

	assert_int_equal(env_check(e, &r), 0);
	assert_int_equal(r.problems, 0);
}

static int reload(struct store_env *e)
{
	struct bs_opts o;

	assert_int_equal(env_unload(e), 0);
	opts_with_factory(e, &o);
	return env_load(e, &o);
}

static void crash_and_recover(struct store_env *e)
{
	struct bs_opts o;
	struct bs_load_report r;

	env_crash(e, BS_CUT_DROP_ALL, 7);
	opts_with_factory(e, &o);
	assert_int_equal(env_load(e, &o), 0);
	bs_get_load_report(e->bs, &r);
	assert_true(r.recovered);
}

static int esnap_clone(struct store_env *e, const void *id, uint32_t len, bs_blob_id *out)
{
	struct th_cpl c = { 0 };
	struct bs_xattr x = { "name", "esnap-vol", 9 };

	bs_blob_create_esnap_clone(e->bs, id, len, NCL, &x, 1, out, th_cpl_fn, &c);
	return env_wait(e, &c);
}

static int set_ext(struct store_env *e, bs_blob_id id, const void *eid, uint32_t len)
{
	struct th_cpl c = { 0 };

	bs_blob_set_external_parent(e->bs, id, eid, len, th_cpl_fn, &c);
	return env_wait(e, &c);
}

static int set_parent(struct store_env *e, bs_blob_id id, bs_blob_id parent)
{
	struct th_cpl c = { 0 };

	bs_blob_set_parent(e->bs, id, parent, th_cpl_fn, &c);
	return env_wait(e, &c);
}

static int inflate_or_decouple(struct store_env *e, bs_blob_id id, bool inflate)
{
	struct th_cpl c = { 0 };

	if (inflate)
		bs_blob_inflate(e->bs, id, th_cpl_fn, &c);
	else
		bs_blob_decouple_parent(e->bs, id, th_cpl_fn, &c);
	return env_wait(e, &c);
}

static int unmap(struct store_env *e, struct bs_blob *b, uint64_t off, uint64_t len)
{
	struct th_cpl c = { 0 };

	bs_blob_unmap(b, env_channel(e), off, len, th_cpl_fn, &c);
	return env_wait(e, &c);
}

/* What a blob should read: the external pattern (zeros past its end) or writes. */
struct model {
	uint8_t *bytes;
	uint64_t len;
};

static void model_init(struct store_env *e, struct model *m, bool with_pattern)
{
	m->len = (uint64_t)NCL * e->cluster_size;
	m->bytes = calloc(1, m->len);
	assert_non_null(m->bytes);
	for (uint64_t i = 0; with_pattern && i < g_src.bytes; i++)
		m->bytes[i] = pat(i);
}

/* Write @n io units of @tag at io unit @off, in the blob and in the model. */
static void put(struct store_env *e, struct bs_blob *b, struct model *m, uint64_t off,
		uint64_t n, uint8_t tag)
{
	uint8_t *buf = env_buf(n * e->block_len);

	memset(buf, tag, n * e->block_len);
	assert_int_equal(env_write(e, b, buf, off, n), 0);
	if (m != NULL)
		memset(m->bytes + off * e->block_len, tag, n * e->block_len);
	free(buf);
}

static void verify(struct store_env *e, struct bs_blob *b, const struct model *m)
{
	uint8_t *buf = env_buf(m->len);

	assert_int_equal(env_read(e, b, buf, 0, m->len / e->block_len), 0);
	for (uint64_t cl = 0; cl < NCL; cl++) {
		uint64_t o = cl * e->cluster_size;

		if (memcmp(buf + o, m->bytes + o, e->cluster_size) != 0)
			fail_msg("cluster %llu differs", (unsigned long long)cl);
	}
	free(buf);
}

static void verify_id(struct store_env *e, bs_blob_id id, const struct model *m)
{
	struct bs_blob *b;

	assert_int_equal(env_open(e, id, &b), 0);
	verify(e, b, m);
	assert_int_equal(env_close(e, b), 0);
}

static uint64_t upc(struct store_env *e)
{
	return e->cluster_size / e->block_len;
}

/* ---------------------------------------------------------------- cases */

static void test_D18_esnap_reads_cow_and_reloads(void **state)
{
	struct store_env *e = *state;
	struct model m;
	struct bs_blob *b;
	bs_blob_id id, parent = 1;
	const void *v;
	uint32_t vlen;
	size_t len;

	model_init(e, &m, true);
	assert_int_equal(esnap_clone(e, ESNAP_ID, strlen(ESNAP_ID), &id), 0);
	assert_int_equal(g_src.calls, 0); /* the device is opened at open, not create */
	assert_int_equal(env_open(e, id, &b), 0);
	assert_int_equal(g_src.calls, 1);
	assert_true(bs_blob_is_esnap_clone(b));
	assert_false(bs_blob_is_degraded(b));
	assert_true(bs_blob_is_thin(b));
	assert_int_equal(bs_blob_get_esnap_id(b, &v, &len), 0);
	assert_int_equal(len, strlen(ESNAP_ID));
	assert_memory_equal(v, ESNAP_ID, len);
	/* The internal id is invisible to the user xattr API. */
	assert_int_equal(bs_blob_get_xattr_count(b), 1);
	assert_string_equal(bs_blob_get_xattr_name(b, 0), "name");
	assert_int_equal(bs_blob_get_xattr(b, ESNAP_XATTR_NAME, &v, &vlen), -ENOENT);
	assert_int_equal(bs_blob_get_parent(e->bs, id, &parent), 0);
	assert_int_equal(parent, 0);
	verify(e, b, &m);

	/* Sub-cluster writes at cluster edges: the rest of each cluster is copied. */
	put(e, b, &m, 2 * upc(e) - 1, 2, 0xA1);	/* last unit of 1, first of 2 */
	put(e, b, &m, 6 * upc(e) + 3, 1, 0xB2);	/* past the device's end: zeros around */
	put(e, b, &m, 5 * upc(e) + upc(e) / 2 - 1, 2, 0xC3); /* across the device's end */
	assert_int_equal(bs_blob_get_num_allocated_clusters(b), 4);
	verify(e, b, &m);
	/* Unmapping an owned cluster must not let the external data show again. */
	assert_int_equal(unmap(e, b, 1 * upc(e), upc(e)), 0);
	memset(m.bytes + 1 * e->cluster_size, 0, e->cluster_size);
	verify(e, b, &m);
	assert_int_equal(env_close(e, b), 0);

	assert_int_equal(reload(e), 0);
	verify_id(e, id, &m);
	consistent(e);

	assert_int_equal(env_open(e, id, &b), 0);
	put(e, b, &m, 4 * upc(e), 1, 0xD4);
	assert_int_equal(env_sync(e, b), 0);
	crash_and_recover(e); /* the handle dies with the crashed instance */
	verify_id(e, id, &m);
	consistent(e);
	assert_int_equal(env_open(e, id, &b), 0);
	assert_true(bs_blob_is_esnap_clone(b));
	assert_int_equal(env_close(e, b), 0);
	free(m.bytes);
}

static void test_esnap_degraded(void **state)
{
	struct store_env *e = *state;
	struct model m;
	struct bs_blob *b, *other;
	bs_blob_id id, oid, s = 0;
	uint8_t *buf = env_buf(e->cluster_size);
	struct bs_check_report r;

	model_init(e, &m, true);
	assert_int_equal(esnap_clone(e, ESNAP_ID, strlen(ESNAP_ID), &id), 0);
	assert_int_equal(env_create(e, 2, false, &oid), 0);
	assert_int_equal(env_open(e, id, &b), 0);
	put(e, b, &m, 0, 1, 0x11);
	assert_int_equal(env_close(e, b), 0);

	g_src.fail = -ENODEV;
	g_log_lines = 0;
	bs_log_set_hook(count_log, NULL);
	assert_int_equal(env_open(e, id, &b), 0);
	assert_true(bs_blob_is_degraded(b));
	assert_true(bs_blob_is_esnap_clone(b));
	assert_int_equal(env_read(e, b, buf, 0, upc(e)), 0);
	assert_memory_equal(buf, m.bytes, e->cluster_size);
	assert_int_equal(env_read(e, b, buf, 3 * upc(e), 1), -ENXIO);
	assert_int_equal(env_read(e, b, buf, upc(e) - 1, 2), -ENXIO); /* spans into unowned */
	assert_int_equal(env_write(e, b, buf, 3 * upc(e), 1), -ENXIO);
	assert_int_equal(bs_blob_get_num_allocated_clusters(b), 1);
	bs_log_set_hook(NULL, NULL);
	assert_int_equal(g_log_lines, 1); /* one line for the open, none per IO */
	put(e, b, &m, 1, 1, 0x22); /* an owned cluster takes writes */
	assert_int_equal(bs_blob_set_xattr(b, "k", "v", 1), 0);
	assert_int_equal(env_sync(e, b), 0);

	/* Refused with the store unchanged. */
	assert_int_equal(env_snapshot(e, id, &s), -ENXIO);
	assert_int_equal(inflate_or_decouple(e, id, true), -ENXIO);
	assert_int_equal(bs_blob_is_esnap_clone(b), true);
	assert_int_equal(bs_iter_next(e->bs, bs_iter_next(e->bs, bs_iter_first(e->bs))),
			 BS_BLOB_ID_INVALID);

	/* Other blobs are unaffected. */
	assert_int_equal(env_open(e, oid, &other), 0);
	put(e, other, NULL, 0, 1, 0x33);
	assert_int_equal(env_read(e, other, buf, 0, 1), 0);
	assert_int_equal(buf[0], 0x33);
	assert_int_equal(env_close(e, other), 0);
	assert_int_equal(env_close(e, b), 0);
	assert_int_equal(env_check(e, &r), 0);
	assert_int_equal(r.problems, 0);

	/* A device whose block does not divide the io unit is closed: degraded. */
	g_src.fail = 0;
	if (e->block_len == 512) {
		g_src.block_len = 4096;
		assert_int_equal(env_open(e, id, &b), 0);
		assert_true(bs_blob_is_degraded(b));
		assert_int_equal(env_close(e, b), 0);
		g_src.block_len = 512;
	}

	/* With its device back, everything reads again. */
	verify_id(e, id, &m);
	free(buf);
	free(m.bytes);
}

static void test_D18_esnap_snapshot_clone_delete(void **state)
{
	struct store_env *e = *state;
	struct model mx, ms;
	struct bs_blob *b;
	bs_blob_id x, s, c, parent = 0;

	model_init(e, &mx, true);
	assert_int_equal(esnap_clone(e, ESNAP_ID, strlen(ESNAP_ID), &x), 0);
	assert_int_equal(env_open(e, x, &b), 0);
	put(e, b, &mx, 0, 1, 0x51);
	/* Snapshot while open: the snapshot takes the external parent. */
	assert_int_equal(env_snapshot(e, x, &s), 0);
	ms = (struct model){ malloc(mx.len), mx.len };
	memcpy(ms.bytes, mx.bytes, mx.len);
	assert_false(bs_blob_is_esnap_clone(b));
	put(e, b, &mx, 1 * upc(e) + 5, 1, 0x52);
	verify(e, b, &mx);
	assert_int_equal(env_close(e, b), 0);
	assert_int_equal(bs_blob_get_parent(e->bs, x, &parent), 0);
	assert_int_equal(parent, s);
	assert_int_equal(bs_blob_get_parent(e->bs, s, &parent), 0);
	assert_int_equal(parent, 0);
	assert_int_equal(env_open(e, s, &b), 0);
	assert_true(bs_blob_is_esnap_clone(b));
	assert_true(bs_blob_is_read_only(b));
	verify(e, b, &ms);
	assert_int_equal(env_close(e, b), 0);

	/* A clone of the snapshot reads through to the external device. */
	assert_int_equal(env_clone(e, s, &c), 0);
	verify_id(e, c, &ms);
	assert_int_equal(reload(e), 0);
	verify_id(e, x, &mx);
	verify_id(e, c, &ms);
	consistent(e);

	/* Deleting the snapshot into its last clone hands the external parent on. */
	assert_int_equal(env_delete(e, x), 0);
	assert_int_equal(env_delete(e, s), 0);
	assert_int_equal(bs_blob_get_parent(e->bs, c, &parent), 0);
	assert_int_equal(parent, 0);
	assert_int_equal(env_open(e, c, &b), 0);
	assert_true(bs_blob_is_esnap_clone(b));
	verify(e, b, &ms);
	assert_int_equal(env_close(e, b), 0);
	crash_and_recover(e);
	verify_id(e, c, &ms);
	consistent(e);
	free(mx.bytes);
	free(ms.bytes);
}

static void test_esnap_inflate(void **state)
{
	struct store_env *e = *state;
	struct model m;
	struct bs_blob *b;
	bs_blob_id id;
	struct bs_opts o;

	model_init(e, &m, true);
	assert_int_equal(esnap_clone(e, ESNAP_ID, strlen(ESNAP_ID), &id), 0);
	assert_int_equal(env_open(e, id, &b), 0);
	put(e, b, &m, 2 * upc(e) + 1, 1, 0x61);
	assert_int_equal(inflate_or_decouple(e, id, false), -EINVAL); /* no blob parent */
	assert_int_equal(inflate_or_decouple(e, id, true), 0);
	assert_false(bs_blob_is_esnap_clone(b));
	assert_false(bs_blob_is_thin(b));
	assert_int_equal(bs_blob_get_num_allocated_clusters(b), NCL);
	verify(e, b, &m);
	assert_int_equal(env_close(e, b), 0);

	/* Independent of the external device now: loads and reads without a factory. */
	assert_int_equal(env_unload(e), 0);
	bs_opts_init(&o, sizeof(o));
	assert_int_equal(env_load(e, &o), 0);
	g_src.calls = 0;
	verify_id(e, id, &m);
	assert_int_equal(g_src.calls, 0);
	consistent(e);
	free(m.bytes);
}

/* Inflating a clone of an esnap-backed snapshot copies from the device too. */
static void test_esnap_inflate_clone_of_snapshot(void **state)
{
	struct store_env *e = *state;
	struct model m;
	struct bs_blob *b;
	bs_blob_id x, s, c;

	model_init(e, &m, true);
	assert_int_equal(esnap_clone(e, ESNAP_ID, strlen(ESNAP_ID), &x), 0);
	assert_int_equal(env_open(e, x, &b), 0);
	put(e, b, &m, upc(e) + 2, 1, 0x65);
	assert_int_equal(env_close(e, b), 0);
	assert_int_equal(env_snapshot(e, x, &s), 0);
	assert_int_equal(env_clone(e, s, &c), 0);
	assert_int_equal(inflate_or_decouple(e, c, false), -EINVAL); /* parent is an esnap clone */
	assert_int_equal(inflate_or_decouple(e, c, true), 0);
	assert_int_equal(env_open(e, c, &b), 0);
	assert_false(bs_blob_is_esnap_clone(b));
	assert_int_equal(bs_blob_get_num_allocated_clusters(b), NCL);
	verify(e, b, &m);
	assert_int_equal(env_close(e, b), 0);
	crash_and_recover(e);
	verify_id(e, c, &m);
	verify_id(e, x, &m);
	consistent(e);
	free(m.bytes);
}

static void test_esnap_set_external_parent(void **state)
{
	struct store_env *e = *state;
	struct model m;
	struct bs_blob *b;
	bs_blob_id t, t2, s2, parent = 1;
	size_t n = 4;
	bs_blob_id ids[4];

	/* A thin blob with no parent, open while it changes. */
	model_init(e, &m, true);
	assert_int_equal(env_create(e, NCL, true, &t), 0);
	assert_int_equal(env_open(e, t, &b), 0);
	put(e, b, &m, 0, upc(e), 0x71);
	assert_int_equal(set_ext(e, t, ESNAP_ID, strlen(ESNAP_ID)), 0);
	assert_true(bs_blob_is_esnap_clone(b));
	verify(e, b, &m);
	assert_int_equal(env_close(e, b), 0);

	/* A clone of a snapshot: the blob parent goes, the external one comes. */
	assert_int_equal(env_create(e, NCL, true, &t2), 0);
	assert_int_equal(env_open(e, t2, &b), 0);
	put(e, b, NULL, 3 * upc(e), 1, 0x72);
	assert_int_equal(env_close(e, b), 0);
	assert_int_equal(env_snapshot(e, t2, &s2), 0);
	assert_int_equal(set_ext(e, t2, ESNAP_ID, strlen(ESNAP_ID)), 0);
	assert_int_equal(bs_blob_get_parent(e->bs, t2, &parent), 0);
	assert_int_equal(parent, 0);
	assert_int_equal(bs_blob_get_clones(e->bs, s2, ids, &n), 0);
	assert_int_equal(n, 0);
	free(m.bytes);
	model_init(e, &m, true); /* t2 owns nothing now: all external */
	verify_id(e, t2, &m);
	assert_int_equal(reload(e), 0);
	verify_id(e, t2, &m);
	consistent(e);

	/* set_parent onto a snapshot ends the external dependency. */
	assert_int_equal(set_parent(e, t2, s2), 0);
	assert_int_equal(env_open(e, t2, &b), 0);
	assert_false(bs_blob_is_esnap_clone(b));
	memset(m.bytes, 0, m.len);
	memset(m.bytes + 3 * e->cluster_size, 0x72, e->block_len);
	verify(e, b, &m);
	assert_int_equal(env_close(e, b), 0);
	assert_int_equal(bs_blob_get_parent(e->bs, t2, &parent), 0);
	assert_int_equal(parent, s2);
	crash_and_recover(e);
	verify_id(e, t2, &m);
	consistent(e);
	free(m.bytes);
}

static void test_esnap_bad_input(void **state)
{
	struct store_env *e = *state;
	char big[BS_ESNAP_ID_MAX_LEN + 1];
	struct bs_blob *b;
	bs_blob_id id = 0, thick, thin, ro;

	memset(big, 'x', sizeof(big));
	assert_int_equal(esnap_clone(e, ESNAP_ID, 0, &id), -EINVAL);
	assert_int_equal(esnap_clone(e, NULL, 4, &id), -EINVAL);
	assert_int_equal(esnap_clone(e, big, sizeof(big), &id), -EINVAL);
	assert_int_equal(bs_iter_first(e->bs), BS_BLOB_ID_INVALID);
	/* The longest id is fine; an unknown one opens degraded. */
	assert_int_equal(esnap_clone(e, big, BS_ESNAP_ID_MAX_LEN, &id), 0);
	assert_int_equal(env_open(e, id, &b), 0);
	assert_true(bs_blob_is_degraded(b));
	assert_int_equal(env_close(e, b), 0);

	assert_int_equal(env_create(e, NCL, false, &thick), 0);
	assert_int_equal(env_create(e, NCL, true, &thin), 0);
	assert_int_equal(env_create(e, NCL, true, &ro), 0);
	assert_int_equal(env_open(e, ro, &b), 0);
	assert_int_equal(bs_blob_set_read_only(b), 0);
	assert_int_equal(env_sync(e, b), 0);
	assert_int_equal(env_close(e, b), 0);

	assert_int_equal(set_ext(e, thin, ESNAP_ID, 0), -EINVAL);
	assert_int_equal(set_ext(e, thin, big, sizeof(big)), -EINVAL);
	assert_int_equal(set_ext(e, thick, ESNAP_ID, strlen(ESNAP_ID)), -EINVAL);
	assert_int_equal(set_ext(e, ro, ESNAP_ID, strlen(ESNAP_ID)), -EPERM);
	assert_int_equal(set_ext(e, id, ESNAP_ID, strlen(ESNAP_ID)), -EINVAL); /* already one */
	assert_int_equal(set_ext(e, thin, "nope", 4), -ENXIO);	/* factory: no device */
	assert_int_equal(set_ext(e, 0x12345ull << 32, ESNAP_ID, strlen(ESNAP_ID)), -ENOENT);
	assert_int_equal(env_open(e, thin, &b), 0);
	assert_false(bs_blob_is_esnap_clone(b));
	assert_int_equal(env_close(e, b), 0);
	consistent(e);
	assert_int_equal(reload(e), 0);
	consistent(e);
}

/* A write or read issued on a worker's thread. */
struct wio {
	struct bs_blob *b;
	struct bs_io_channel *ch;
	uint8_t *buf;
	uint64_t off;
	uint64_t len;
	bool write;
	atomic_bool done;
	atomic_int err;
};

static void wio_cpl(void *cb_arg, int err)
{
	struct wio *w = cb_arg;

	atomic_store(&w->err, err);
	atomic_store(&w->done, true);
}

static void wio_start(void *ctx)
{
	struct wio *w = ctx;

	if (w->write)
		bs_blob_write(w->b, w->ch, w->buf, w->off, w->len, wio_cpl, w);
	else
		bs_blob_read(w->b, w->ch, w->buf, w->off, w->len, wio_cpl, w);
}

/*
 * First writes racing into one unowned cluster, on one thread and on two
 * reactor threads (each with its own esnap device channel): one copy wins,
 * the losers give their clusters back, every write lands, the rest of the
 * cluster still shows the external data. Closing the blob while the
 * workers' channels hold the device's channels puts them on their threads.
 */
static void test_esnap_racing_first_writes(void **state)
{
	struct store_env *e = *state;
	struct model m;
	struct bs_blob *b;
	bs_blob_id id;
	struct th_cpl c1 = { 0 }, c2 = { 0 };
	uint8_t *b1 = env_buf(e->block_len), *b2 = env_buf(e->block_len);
	struct env_worker w[2];
	struct wio io[2];
	uint64_t free0;

	model_init(e, &m, true);
	assert_int_equal(esnap_clone(e, ESNAP_ID, strlen(ESNAP_ID), &id), 0);
	assert_int_equal(env_open(e, id, &b), 0);
	free0 = bs_get_free_cluster_count(e->bs);
	memset(b1, 0x81, e->block_len);
	memset(b2, 0x82, e->block_len);
	bs_blob_write(b, env_channel(e), b1, 2, 1, th_cpl_fn, &c1);
	bs_blob_write(b, env_channel(e), b2, upc(e) - 2, 1, th_cpl_fn, &c2);
	assert_false(c1.done || c2.done);
	assert_true(th_poll_until(e->t, &c1.done, 200000000ull));
	assert_true(th_poll_until(e->t, &c2.done, 200000000ull));
	assert_int_equal(c1.err, 0);
	assert_int_equal(c2.err, 0);
	memset(m.bytes + 2 * e->block_len, 0x81, e->block_len);
	memset(m.bytes + (upc(e) - 2) * e->block_len, 0x82, e->block_len);

	for (int i = 0; i < 2; i++) {
		env_worker_start(e, &w[i], "esnap");
		assert_int_equal(w[i].ch_err, 0);
		io[i] = (struct wio){ .b = b, .ch = w[i].ch, .buf = i ? b2 : b1,
				      .off = 3 * upc(e) + (i ? upc(e) - 1 : 0), .len = 1, .write = true };
		memset(m.bytes + io[i].off * e->block_len, i ? 0x82 : 0x81, e->block_len);
	}
	for (int i = 0; i < 2; i++)
		env_worker_run(e, &w[i], wio_start, &io[i]);
	for (int i = 0; i < 2; i++) {
		assert_true(env_wait_flag(e, &io[i].done, 20000));
		assert_int_equal(atomic_load(&io[i].err), 0);
	}
	/* A read on a worker goes through its own channel of the device too. */
	io[0] = (struct wio){ .b = b, .ch = w[0].ch, .buf = env_buf(e->cluster_size),
			      .off = 4 * upc(e), .len = upc(e) };
	env_worker_run(e, &w[0], wio_start, &io[0]);
	assert_true(env_wait_flag(e, &io[0].done, 20000));
	assert_int_equal(atomic_load(&io[0].err), 0);
	assert_memory_equal(io[0].buf, m.bytes + 4 * e->cluster_size, e->cluster_size);
	free(io[0].buf);

	assert_int_equal(bs_blob_get_num_allocated_clusters(b), 2);
	assert_int_equal(bs_get_free_cluster_count(e->bs), free0 - 2);
	verify(e, b, &m);
	assert_int_equal(env_close(e, b), 0);
	for (int i = 0; i < 100000 && e->bs->esnap_closing != 0; i++)
		th_poll_idle(e->t);
	assert_int_equal(e->bs->esnap_closing, 0); /* the workers put their channels */
	for (int i = 0; i < 2; i++)
		env_worker_stop(e, &w[i]);
	consistent(e);
	verify_id(e, id, &m);
	free(b1);
	free(b2);
	free(m.bytes);
}

#define PARAM(fn) \
	cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown, (void *)&g_params[0]), \
	cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown, (void *)&g_params[1]), \
	cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown, (void *)&g_params[2])

int main(void)
{
	const struct CMUnitTest tests[] = {
		PARAM(test_D18_esnap_reads_cow_and_reloads),
		PARAM(test_esnap_degraded),
		PARAM(test_D18_esnap_snapshot_clone_delete),
		PARAM(test_esnap_inflate),
		PARAM(test_esnap_inflate_clone_of_snapshot),
		PARAM(test_esnap_set_external_parent),
		PARAM(test_esnap_bad_input),
		PARAM(test_esnap_racing_first_writes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
