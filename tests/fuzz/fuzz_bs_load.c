/*
 * fuzz_bs_load: libFuzzer target for the store loader (issue #6,
 * docs/reliability.md "Loader fuzzing").
 *
 * Each input (format: fuzz_input.h) patches one of four base images built
 * in-process (empty, populated, two dirty ones), then: load (clean or
 * recovery path), check, a mutation script through the public API (create,
 * open, write, resize, xattr, snapshot, clone, delete, flush), unload,
 * reload with forced recovery, check, unload, clean reload, check, unload.
 *
 * The rule: every input ends in an allowed error or a consistent store.
 * A crash, sanitizer report, hang or leak is a bug; so is a checker
 * complaint (other than a corrupt blob that recovery reported and skipped)
 * after a recovery load, or any failure of a store this run just unloaded.
 * After a clean load of a resealed input the checker may complain: the
 * masks are trusted by design (D7), and such complaints are only counted.
 *
 * FUZZ_VERBOSE=1 in the environment prints library logs and check lines.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <blobstore/blobstore.h>
#include <blobstore/log.h>
#include <blobstore/ram_dev.h>

#include "blob/format.h"
#include "blob/store_int.h"
#include "fuzz_input.h"
#include "fuzz_reseal.h"
#include "runtime/runtime_int.h"

#define FZ_POLL_MAX 20000000ull	/* polls per completion before calling it a hang */
#define FZ_IO_BYTES 4096u
#define FZ_CHANNEL_OPS 8u		/* small channels: the default costs MiBs per channel */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
const char *__asan_default_options(void);
/* A small quarantine: every input maps and frees a device image. */
const char *__asan_default_options(void)
{
	return "quarantine_size_mb=32";
}
#endif
#endif

struct fz_cpl {
	bool done;
	int err;
};

static struct {
	struct bs_thread *t;
	uint8_t *base[FZ_NBASE];
	uint64_t md_pages;
	bool verbose;
	uint8_t *buf;		/* FZ_IO_BYTES, aligned */
	uint8_t *img;		/* FZ_DEV_BYTES: the patched image of one input */
} g;

static void fz_log_hook(void *arg, enum bs_log_level level, const char *line)
{
	if (g.verbose)
		fprintf(stderr, "%s\n", line);
}

static void fz_cpl_fn(void *cb_arg, int err)
{
	struct fz_cpl *c = cb_arg;

	c->done = true;
	c->err = err;
}

static __attribute__((noreturn)) void fz_die(const char *what, int err)
{
	fprintf(stderr, "fuzz_bs_load: BUG: %s (%d, %s)\n", what, err, strerror(-err));
	abort();
}

static int fz_wait(struct fz_cpl *c)
{
	for (uint64_t i = 0; i < FZ_POLL_MAX && !c->done; i++)
		bs_thread_poll(g.t, 0);
	if (!c->done)
		fz_die("operation never completed (hang)", 0);
	return c->err;
}

/* ------------------------------------------------------------ store steps */

/* @p cache: model a volatile write cache (base images need the durable view). */
static struct bs_dev *fz_dev(const uint8_t *image, bool lifo, bool cache)
{
	struct bs_ram_dev_opts o;
	struct bs_dev *dev;

	bs_ram_dev_opts_init(&o);
	o.block_len = FZ_BLOCK_LEN;
	o.block_count = FZ_DEV_BYTES / FZ_BLOCK_LEN;
	o.order = lifo ? BS_RAM_ORDER_LIFO : BS_RAM_ORDER_FIFO;
	o.image = image;
	o.volatile_cache = cache; /* off: half the copying; the crash harness covers caches */
	if (bs_ram_dev_create(&o, &dev) != 0)
		fz_die("RAM device create", -ENOMEM);
	return dev;
}

static void fz_dev_close(struct bs_dev *dev)
{
	struct fz_cpl c = { 0 };

	bs_dev_close(dev, fz_cpl_fn, &c);
	fz_wait(&c);
}

static int fz_load(struct bs_dev *dev, bool force, struct bs_store **bs)
{
	struct bs_opts o;
	struct fz_cpl c = { 0 };

	bs_opts_init(&o, sizeof(o));
	o.force_recover = force;
	o.max_channel_ops = FZ_CHANNEL_OPS;
	bs_load(dev, &o, bs, fz_cpl_fn, &c);
	return fz_wait(&c);
}

/*
 * Unload must succeed, unless the store latched an error (D10: here only
 * when the masks a clean load trusted disagree with the metadata and an
 * operation tried to free something already free); then it reports that
 * error, and the reload that follows recovers.
 */
static void fz_unload(struct bs_store *bs)
{
	struct fz_cpl c = { 0 };
	int latched = bs_get_error(bs);
	int rc;

	bs_unload(bs, fz_cpl_fn, &c);
	rc = fz_wait(&c);
	if (rc != 0 && (latched == 0 || rc != latched))
		fz_die("unload of a loaded store", rc);
}

static void fz_check_msg(void *arg, bs_blob_id id, const char *msg)
{
	if (g.verbose)
		fprintf(stderr, "check: %s\n", msg);
}

/* Check the store; @p strict: only corrupt blobs recovery skipped may show. */
static void fz_check(struct bs_store *bs, bool strict, const char *when)
{
	struct bs_check_report r;
	struct bs_load_report lr;
	struct fz_cpl c = { 0 };
	int rc;

	bs_check(bs, &r, fz_check_msg, NULL, fz_cpl_fn, &c);
	rc = fz_wait(&c);
	if (rc != 0 && rc != -ENOMEM)
		fz_die("check failed to run", rc);
	bs_get_load_report(bs, &lr);
	if (g.verbose)
		fprintf(stderr, "fuzz_bs_load: %s check: rc %d, %llu blobs, %llu problems, "
			"%llu corrupt; load: recovered %d, %llu blobs, %llu corrupt; read-only %d\n",
			when, rc, (unsigned long long)r.blobs_checked, (unsigned long long)r.problems,
			(unsigned long long)r.corrupt_blobs, lr.recovered,
			(unsigned long long)lr.blobs, (unsigned long long)lr.corrupt_blobs,
			bs_is_read_only(bs));
	if (rc == 0 && strict && r.problems != r.corrupt_blobs) {
		fprintf(stderr, "fuzz_bs_load: %s: %llu problems, %llu corrupt blobs\n", when,
			(unsigned long long)r.problems, (unsigned long long)r.corrupt_blobs);
		fz_die("checker complains after a recovery load", 0);
	}
}

static bool fz_allowed_load_error(int rc)
{
	return rc == -EILSEQ || rc == -EINVAL || rc == -EIO || rc == -ENOMEM ||
	       rc == -ENOSPC || rc == -EOPNOTSUPP || rc == -ERANGE || rc == -EFBIG;
}

/* ------------------------------------------------------- mutation script */

struct fz_ops {
	struct bs_store *bs;
	struct bs_io_channel *ch;
};

static int fz_create(struct fz_ops *s, uint64_t clusters, bool thin, bs_blob_id *id)
{
	static const struct bs_xattr xa = { "fz", "seed", 4 };
	struct bs_blob_opts o;
	struct fz_cpl c = { 0 };

	bs_blob_opts_init(&o, sizeof(o));
	o.num_clusters = clusters;
	o.thin_provision = thin;
	o.xattrs = &xa;
	o.xattr_count = 1;
	bs_blob_create(s->bs, &o, id, fz_cpl_fn, &c);
	return fz_wait(&c);
}

static int fz_open(struct fz_ops *s, bs_blob_id id, struct bs_blob **b)
{
	struct fz_cpl c = { 0 };

	bs_blob_open(s->bs, id, b, fz_cpl_fn, &c);
	return fz_wait(&c);
}

static int fz_close(struct bs_blob *b)
{
	struct fz_cpl c = { 0 };

	bs_blob_close(b, fz_cpl_fn, &c);
	return fz_wait(&c);
}

static int fz_delete(struct fz_ops *s, bs_blob_id id)
{
	struct fz_cpl c = { 0 };

	bs_blob_delete(s->bs, id, fz_cpl_fn, &c);
	return fz_wait(&c);
}

static int fz_io(struct fz_ops *s, struct bs_blob *b, uint64_t off, bool write)
{
	uint64_t len = FZ_IO_BYTES / FZ_BLOCK_LEN;
	struct fz_cpl c = { 0 };

	if (s->ch == NULL || bs_blob_get_num_io_units(b) < len)
		return -ERANGE;
	off = off > bs_blob_get_num_io_units(b) - len ? bs_blob_get_num_io_units(b) - len : off;
	if (write)
		bs_blob_write(b, s->ch, g.buf, off, len, fz_cpl_fn, &c);
	else
		bs_blob_read(b, s->ch, g.buf, off, len, fz_cpl_fn, &c);
	return fz_wait(&c);
}

static int fz_blob_call(struct bs_blob *b, uint64_t resize_to, bool sync)
{
	struct fz_cpl c = { 0 };

	if (sync)
		bs_blob_sync(b, fz_cpl_fn, &c);
	else
		bs_blob_resize(b, resize_to, fz_cpl_fn, &c);
	return fz_wait(&c);
}

/* Read an existing blob: xattrs, first and last 4 KiB. */
static void fz_visit(struct fz_ops *s, bs_blob_id id)
{
	struct bs_blob *b = NULL;
	const void *v;
	uint32_t len;

	if (fz_open(s, id, &b) != 0)
		return;
	for (uint32_t i = 0; i < bs_blob_get_xattr_count(b); i++) {
		const char *name = bs_blob_get_xattr_name(b, i);

		if (name != NULL)
			(void)bs_blob_get_xattr(b, name, &v, &len);
	}
	(void)fz_io(s, b, 0, false);
	(void)fz_io(s, b, UINT64_MAX, false);
	(void)bs_blob_next_allocated_io_unit(b, 0);
	(void)fz_close(b);
}

/* A new thin blob: write, grow, a two-page xattr, sync. */
static bs_blob_id fz_new_blob(struct fz_ops *s)
{
	static uint8_t big[MD_PAYLOAD + 600];
	struct bs_blob *b = NULL;
	bs_blob_id id;

	if (fz_create(s, 2, true, &id) != 0)
		return BS_BLOB_ID_INVALID;
	if (fz_open(s, id, &b) != 0)
		return id;
	(void)fz_io(s, b, 0, true);
	(void)fz_blob_call(b, 3, false);
	(void)bs_blob_set_xattr(b, "big", big, sizeof(big));
	(void)fz_blob_call(b, 0, true);
	(void)fz_io(s, b, UINT64_MAX, true);
	(void)fz_close(b);
	return id;
}

/* Snapshot the first blob, clone the snapshot, delete the clone. */
static void fz_snapshot(struct fz_ops *s, bs_blob_id id)
{
	bs_blob_id snap, clone;
	struct fz_cpl c = { 0 };

	bs_blob_snapshot(s->bs, id, NULL, 0, &snap, fz_cpl_fn, &c);
	if (fz_wait(&c) != 0)
		return;
	c.done = false;
	bs_blob_clone(s->bs, snap, NULL, 0, &clone, fz_cpl_fn, &c);
	if (fz_wait(&c) == 0)
		(void)fz_delete(s, clone);
}

static void fz_script(struct bs_store *bs)
{
	struct fz_ops s = { bs, bs_alloc_channel(bs) };
	bs_blob_id id, first, nid;
	struct fz_cpl c = { 0 };
	uint64_t n = 0;

	for (id = bs_iter_first(bs); id != BS_BLOB_ID_INVALID && n++ <= FZ_MAX_BLOBS;
	     id = bs_iter_next(bs, id))
		fz_visit(&s, id);
	first = bs_iter_first(bs);
	nid = fz_new_blob(&s);
	if (first != BS_BLOB_ID_INVALID)
		fz_snapshot(&s, first);
	if (nid != BS_BLOB_ID_INVALID)
		(void)fz_delete(&s, nid);
	bs_flush(bs, fz_cpl_fn, &c);
	(void)fz_wait(&c);
	if (s.ch != NULL)
		bs_free_channel(s.ch);
	while (bs_thread_poll(g.t, 0) != 0)
		;
}

/* ------------------------------------------------------------- one input */

static void fz_apply_patches(uint8_t *img, const uint8_t *p, size_t n)
{
	while (n >= FZ_PATCH_HDR) {
		uint64_t page = p[0] % g.md_pages;
		uint32_t off = (uint32_t)(p[1] | p[2] << 8) % MD_PAGE_SIZE;
		size_t len = p[3];

		p += FZ_PATCH_HDR;
		n -= FZ_PATCH_HDR;
		len = len > n ? n : len;
		len = len > MD_PAGE_SIZE - off ? MD_PAGE_SIZE - off : len;
		memcpy(img + page * MD_PAGE_SIZE + off, p, len);
		p += len;
		n -= len;
	}
}

static void fz_toggle_clean(uint8_t *img)
{
	for (int copy = 0; copy < 2; copy++) {
		struct md_super *sb = (struct md_super *)(img + copy * MD_PAGE_SIZE);

		sb->clean = sb->clean ? 0 : 1;
	}
	fz_reseal_supers(img);
}

static uint8_t *fz_image(const uint8_t *data, size_t size)
{
	uint8_t ctrl = data[0];
	uint8_t *img = g.img;
	struct fz_reseal_opts ro = { .faithful = false };

	memcpy(img, g.base[(ctrl & FZ_C_BASE_MASK) >> FZ_C_BASE_SHIFT], FZ_DEV_BYTES);
	fz_apply_patches(img, data + 1, size - 1);
	if (ctrl & FZ_C_TOGGLE_CLEAN)
		fz_toggle_clean(img);
	if (ctrl & FZ_C_RESEAL)
		fz_reseal(img, g.md_pages, &ro);
	return img;
}

/*
 * Reload what this run unloaded: it must load, and check clean when
 * @p strict or when the load recovered. A read-only store (unknown
 * ro_compat feature) writes nothing at unload, so its clean reload sees
 * the very image the first load saw, masks included: a clean load of it
 * is no stricter than one of the input.
 */
static void fz_reload(struct bs_dev *dev, bool force, bool strict)
{
	struct bs_load_report lr;
	struct bs_store *bs;
	int rc = fz_load(dev, force, &bs);

	if (rc != 0)
		fz_die(force ? "recovery reload of an unloaded store" : "clean reload", rc);
	bs_get_load_report(bs, &lr);
	fz_check(bs, strict || lr.recovered, force ? "recovery reload" : "clean reload");
	fz_unload(bs);
}

/* @p strict_first: the first load must check clean too (base self-test). */
static void fz_run(const uint8_t *img, uint8_t ctrl, bool strict_first)
{
	struct bs_dev *dev = fz_dev(img, ctrl & FZ_C_LIFO, false);
	struct bs_load_report lr;
	struct bs_store *bs;
	bool strict, ro;
	int rc = fz_load(dev, ctrl & FZ_C_FORCE_RECOVER, &bs);

	if (rc != 0) {
		if (!fz_allowed_load_error(rc))
			fz_die("load failed with an unexpected error", rc);
		fz_dev_close(dev);
		return;
	}
	bs_get_load_report(bs, &lr);
	strict = strict_first || lr.recovered;
	ro = bs_is_read_only(bs);
	fz_check(bs, strict, "first load");
	if (!(ctrl & FZ_C_NO_OPS) && !ro)
		fz_script(bs);
	fz_unload(bs);
	fz_reload(dev, true, true);
	fz_reload(dev, false, !ro);
	fz_dev_close(dev);
}

/* ------------------------------------------------------------ base images */

static void fz_base_populate(struct bs_store *bs)
{
	struct fz_ops s = { bs, bs_alloc_channel(bs) };
	static uint8_t val[3000];
	bs_blob_id a = 0, thin = 0, big = 0;
	struct bs_blob *b = NULL;

	if (s.ch == NULL || fz_create(&s, 3, false, &a) != 0 || fz_create(&s, 8, true, &thin) != 0 ||
	    fz_create(&s, 1, false, &big) != 0 || fz_open(&s, thin, &b) != 0)
		fz_die("populating a base image", -EIO);
	(void)fz_io(&s, b, 4 * FZ_CLUSTER / FZ_BLOCK_LEN, true);
	(void)fz_close(b);
	if (fz_open(&s, big, &b) != 0 || bs_blob_set_xattr(b, "v", val, sizeof(val)) != 0 ||
	    bs_blob_set_xattr(b, "w", val, sizeof(val)) != 0 || fz_close(b) != 0)
		fz_die("xattrs of a base image", -EIO);
	fz_snapshot(&s, a);
	bs_free_channel(s.ch);
}

/* Changes on top of FULL: one synced, one left in the volatile cache. */
static uint8_t *fz_snap(struct bs_dev *dev, bool durable);

static void fz_base_change(struct bs_store *bs, struct bs_dev *dev)
{
	struct fz_ops s = { bs, bs_alloc_channel(bs) };
	bs_blob_id id = bs_iter_first(bs);
	struct bs_blob *b = NULL;

	if (s.ch == NULL || fz_open(&s, id, &b) != 0)
		fz_die("changing a base image", -EIO);
	(void)fz_blob_call(b, bs_blob_get_num_clusters(b) + 1, false);
	(void)fz_blob_call(b, 0, true);
	(void)fz_io(&s, b, 0, true);
	(void)bs_blob_set_xattr(b, "late", "x", 1);
	(void)fz_blob_call(b, bs_blob_get_num_clusters(b) + 1, false);
	g.base[FZ_BASE_DIRTY] = fz_snap(dev, true);
	g.base[FZ_BASE_DIRTY_VIEW] = fz_snap(dev, false);
	(void)fz_close(b);
	bs_free_channel(s.ch);
	while (bs_thread_poll(g.t, 0) != 0)
		;
}

static uint8_t *fz_snap(struct bs_dev *dev, bool durable)
{
	uint8_t *img = malloc(FZ_DEV_BYTES);

	if (img == NULL)
		fz_die("base image", -ENOMEM);
	memcpy(img, durable ? bs_ram_dev_durable(dev) : bs_ram_dev_view(dev), FZ_DEV_BYTES);
	return img;
}

static void fz_build_bases(void)
{
	struct bs_dev *dev = fz_dev(NULL, false, true);
	struct bs_opts o;
	struct bs_store *bs;
	struct fz_cpl c = { 0 };

	bs_opts_init(&o, sizeof(o));
	o.cluster_size = FZ_CLUSTER;
	o.max_blobs = FZ_MAX_BLOBS;
	o.md_pool_pages = FZ_POOL_PAGES;
	bs_init(dev, &o, &bs, fz_cpl_fn, &c);
	if (fz_wait(&c) != 0)
		fz_die("init of the base store", c.err);
	g.md_pages = bs->md_clusters * (FZ_CLUSTER / MD_PAGE_SIZE);
	fz_unload(bs);
	g.base[FZ_BASE_EMPTY] = fz_snap(dev, true);
	if (fz_load(dev, false, &bs) != 0)
		fz_die("load of the base store", -EIO);
	fz_base_populate(bs);
	fz_unload(bs);
	g.base[FZ_BASE_FULL] = fz_snap(dev, true);
	if (fz_load(dev, false, &bs) != 0)
		fz_die("load of the base store", -EIO);
	fz_base_change(bs, dev);
	fz_unload(bs);
	fz_dev_close(dev);
}

/* FUZZ_DUMP_BASES=dir: write the base images there (for blobcli dump). */
static void fz_dump_bases(const char *dir, const char *tag)
{
	char path[4096];
	FILE *f;

	for (int i = 0; dir != NULL && i < FZ_NBASE; i++) {
		snprintf(path, sizeof(path), "%s/base%d-%s.img", dir, i, tag);
		f = fopen(path, "wb");
		if (f != NULL) {
			fwrite(g.base[i], 1, FZ_DEV_BYTES, f);
			fclose(f);
		}
	}
}

/* Fixed store id in every base, so an input means the same in every run. */
static void fz_normalise_bases(void)
{
	struct fz_reseal_opts ro = { .faithful = true, .restamp = true, .store_id = FZ_STORE_ID };

	fz_dump_bases(getenv("FUZZ_DUMP_BASES"), "raw");
	for (int i = 0; i < FZ_NBASE; i++)
		fz_reseal(g.base[i], g.md_pages, &ro);
	fz_dump_bases(getenv("FUZZ_DUMP_BASES"), "norm");
	for (int i = 0; i < FZ_NBASE; i++) {
		fz_run(g.base[i], (uint8_t)(i << FZ_C_BASE_SHIFT), true); /* self-test */
	}
}

static void fz_setup(void)
{
	const char *v = getenv("FUZZ_VERBOSE");

	g.verbose = v != NULL && *v != '\0' && *v != '0';
	bs_log_set_hook(fz_log_hook, NULL);
	if (!g.verbose)
		bs_log_set_level(BS_LOG_ERROR);
	g.t = bs_thread_create("fuzz");
	g.buf = aligned_alloc(FZ_IO_BYTES, FZ_IO_BYTES);
	g.img = malloc(FZ_DEV_BYTES);
	if (g.t == NULL || g.buf == NULL || g.img == NULL)
		fz_die("setup", -ENOMEM);
	memset(g.buf, 0xa5, FZ_IO_BYTES);
	rt_set_current(g.t);
	fz_build_bases();
	fz_normalise_bases();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *img;

	if (g.t == NULL)
		fz_setup();
	if (size == 0)
		return 0;
	img = fz_image(data, size);
	fz_run(img, data[0], false);
	return 0;
}
