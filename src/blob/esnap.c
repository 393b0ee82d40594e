/*
 * External snapshots (docs/snapshots.md "External snapshots"): blobs whose
 * parent is a read-only device outside the store, named by an opaque id.
 *
 * On disk an esnap clone is a thin blob with BLOB_INVALID_ESNAP in its
 * root, parent_id 0 (it has no blob parent), and its id in the internal
 * xattr ESNAP_XATTR_NAME. At open the application's factory turns the id
 * into a device; the handle owns it (blob->esnap_dev) and closes it after
 * its last put, once every store channel has put its channel of it.
 * Without a usable device the blob is degraded (esnap_dev NULL).
 *
 * Data path: every store channel keeps a small table of esnap device
 * channels, filled on first use (the only allocation, once per channel and
 * device); io.c routes reads and copy-on-write through it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "blob/store_int.h"
#include "util/assert_int.h"
#include "util/log_int.h"

/* ---------------------------------------------------------- channel tables */

struct bs_io_channel *esnap_chans_get(struct esnap_chans *t, struct bs_dev *dev)
{
	struct bs_io_channel *ch;

	for (uint32_t i = 0; i < t->n; i++) {
		if (t->v[i].dev == dev)
			return t->v[i].ch;
	}
	if (t->n == t->cap) {
		uint32_t cap = t->cap ? t->cap * 2 : 4;
		struct esnap_chan *v = realloc(t->v, cap * sizeof(*v));

		if (v == NULL) {
			errno = ENOMEM;
			return NULL;
		}
		t->v = v;
		t->cap = cap;
	}
	ch = bs_dev_get_channel(dev);
	if (ch == NULL)
		return NULL;
	t->v[t->n++] = (struct esnap_chan){ dev, ch };
	return ch;
}

void esnap_chans_drop(struct esnap_chans *t, struct bs_dev *dev)
{
	for (uint32_t i = 0; i < t->n; i++) {
		if (t->v[i].dev != dev)
			continue;
		bs_dev_put_channel(t->v[i].ch);
		t->v[i] = t->v[--t->n];
		return;
	}
}

void esnap_chans_free(struct esnap_chans *t)
{
	for (uint32_t i = 0; i < t->n; i++)
		bs_dev_put_channel(t->v[i].ch);
	free(t->v);
	*t = (struct esnap_chans){ 0 };
}

/* ---------------------------------------------------------- id and flag */

int esnap_id_get(const struct bs_blob *blob, const void **id, uint32_t *len)
{
	return xattr_set_get(&blob->xattrs, ESNAP_XATTR_NAME, MD_XATTR_F_INTERNAL, id, len);
}

int esnap_id_check(const void *id, uint32_t len, const char *what)
{
	if (id == NULL || len == 0 || len > BS_ESNAP_ID_MAX_LEN) {
		LOG_ERR("%s: an esnap id is 1..%u bytes (got %u%s)", what, BS_ESNAP_ID_MAX_LEN, len,
			id == NULL ? ", NULL" : "");
		return -EINVAL;
	}
	return 0;
}

/* D18: the flag and the id change together, in memory and so in one commit. */
int esnap_mark(struct bs_blob *blob, const void *id, uint32_t len)
{
	int rc = xattr_set_put(&blob->xattrs, ESNAP_XATTR_NAME, id, len, MD_XATTR_F_INTERNAL);

	if (rc != 0)
		return rc;
	blob->invalid_flags |= BLOB_INVALID_ESNAP | BLOB_INVALID_THIN;
	blob->thin = true;
	blob->md_dirty = true;
	return 0;
}

void esnap_unmark(struct bs_blob *blob)
{
	if (!(blob->invalid_flags & BLOB_INVALID_ESNAP))
		return;
	xattr_set_remove(&blob->xattrs, ESNAP_XATTR_NAME, MD_XATTR_F_INTERNAL);
	blob->invalid_flags &= ~BLOB_INVALID_ESNAP;
	blob->md_dirty = true;
}

int esnap_move_id(struct bs_blob *from, struct bs_blob *to)
{
	const void *id;
	uint32_t len;
	int rc = esnap_id_get(from, &id, &len);

	if (rc == 0)
		rc = esnap_mark(to, id, len);
	if (rc == 0)
		esnap_unmark(from);
	return rc == -ENOENT ? -EILSEQ : rc;
}

/* ---------------------------------------------------------- devices */

/* The device can serve the store's io units and buffers. */
static int esnap_dev_usable(const struct bs_store *bs, const struct bs_dev *dev)
{
	if (dev->block_len > bs->block_len || bs->block_len % dev->block_len != 0)
		return -EINVAL;
	if (dev->buf_align > bs->dev->buf_align && dev->buf_align > 1)
		return -EINVAL;
	return dev->buf_align > 4096 ? -EINVAL : 0;
}

int esnap_dev_open(struct bs_store *bs, bs_blob_id blob, const void *id, uint32_t len,
		   const char *what, struct bs_dev **out)
{
	struct bs_dev *dev = NULL;
	int rc = bs->esnap_create ? bs->esnap_create(bs->esnap_ctx, blob, id, len, &dev) : -ENODEV;

	if (rc == 0 && dev == NULL)
		rc = -ENODEV;
	if (rc == 0 && esnap_dev_usable(bs, dev) != 0) {
		LOG_ERR("%s: blob 0x%" PRIx64 ": external device %s (block %u, alignment %u) does "
			"not fit the store's io unit %u", what, blob, dev->name, dev->block_len,
			dev->buf_align, bs->block_len);
		esnap_release(bs, dev);
		return -ENXIO;
	}
	if (rc != 0) {
		LOG_WARN("%s: blob 0x%" PRIx64 ": no external snapshot device (%s)", what, blob,
			 strerror(rc < 0 ? -rc : EINVAL)); /* one line per open */
		return -ENXIO;
	}
	*out = dev;
	return 0;
}

void esnap_attach(struct bs_blob *blob, struct bs_dev *dev)
{
	blob->esnap_dev = dev;
	blob->esnap_ratio = dev ? blob->bs->block_len / dev->block_len : 0;
}

int esnap_open(struct bs_blob *blob)
{
	const void *id;
	uint32_t len;
	struct bs_dev *dev = NULL;

	if (!(blob->invalid_flags & BLOB_INVALID_ESNAP))
		return 0;
	if (esnap_id_get(blob, &id, &len) != 0 || len == 0) {
		LOG_ERR("open: blob 0x%" PRIx64 ": esnap clone without an esnap id", blob->id);
		return -EILSEQ;
	}
	/* One log line per open without a device: the data path does not log. */
	esnap_dev_open(blob->bs, blob->id, id, len, "open (degraded: IO that needs it fails)",
		       &dev);
	esnap_attach(blob, dev);
	return 0;
}

void esnap_detach(struct bs_blob *blob)
{
	struct bs_dev *dev = blob->esnap_dev;

	esnap_attach(blob, NULL);
	if (dev != NULL)
		esnap_release(blob->bs, dev);
}

void esnap_move_dev(struct bs_blob *from, struct bs_blob *to)
{
	struct bs_dev *dev = from->esnap_dev;

	esnap_attach(from, NULL);
	esnap_attach(to, dev);
}

/* Context of one background device close. */
struct esnap_close {
	struct bs_store *bs;
	struct bs_dev *dev;
};

static void esnap_closed_cpl(void *cb_arg, int err)
{
	struct esnap_close *c = cb_arg;
	struct bs_store *bs = c->bs;
	bs_cpl_fn cb = bs->esnap_drain_cb;

	free(c);
	assert(bs->esnap_closing > 0);
	if (--bs->esnap_closing != 0 || cb == NULL)
		return;
	bs->esnap_drain_cb = NULL;
	cb(bs->esnap_drain_arg, 0);
}

static void esnap_forgotten_cpl(void *cb_arg, int err)
{
	struct esnap_close *c = cb_arg;

	bs_dev_close(c->dev, esnap_closed_cpl, c);
}

void esnap_release(struct bs_store *bs, struct bs_dev *dev)
{
	struct esnap_close *c = malloc(sizeof(*c));

	if (c == NULL) {
		LOG_ERR("external device %s: out of memory closing it; leaked", dev->name);
		return;
	}
	*c = (struct esnap_close){ bs, dev };
	bs->esnap_closing++;
	if (io_esnap_forget(bs, dev, esnap_forgotten_cpl, c) != 0)
		bs_dev_close(dev, esnap_closed_cpl, c); /* no iterator: the close waits for channels */
}

void esnap_drain(struct bs_store *bs, bs_cpl_fn cb, void *cb_arg)
{
	assert(bs->esnap_drain_cb == NULL);
	if (bs->esnap_closing == 0) {
		store_defer_cpl(cb, cb_arg, 0);
		return;
	}
	bs->esnap_drain_cb = cb;
	bs->esnap_drain_arg = cb_arg;
}

void esnap_abandon(struct bs_store *bs, bs_cpl_fn cb, void *cb_arg)
{
	struct bs_blob *b;

	TAILQ_FOREACH(b, &bs->blobs, link) {
		struct bs_dev *dev = b->esnap_dev;
		struct esnap_close *c;

		esnap_attach(b, NULL);
		if (dev == NULL || (c = malloc(sizeof(*c))) == NULL)
			continue;
		*c = (struct esnap_close){ bs, dev };
		bs->esnap_closing++;
		bs_dev_close(dev, esnap_closed_cpl, c);
	}
	esnap_drain(bs, cb, cb_arg);
}

/* ---------------------------------------------------------- chains */

const struct bs_blob *blob_chain_bottom_esnap(const struct bs_blob *blob)
{
	const struct bs_blob *a = blob;

	while (a->parent != NULL)
		a = a->parent;
	return (a->invalid_flags & BLOB_INVALID_ESNAP) ? a : NULL;
}

const struct bs_blob *blob_chain_esnap(const struct bs_blob *blob, uint64_t i)
{
	const struct bs_blob *a = blob;

	while (a->parent != NULL) {
		a = a->parent;
		if (i >= a->map.num_clusters)
			return NULL; /* a smaller ancestor: zeros past its end */
	}
	return (a->invalid_flags & BLOB_INVALID_ESNAP) ? a : NULL;
}

/* ---------------------------------------------------------- copies (inflate) */

/* Context of a metadata-thread copy from an external device. */
struct esnap_copy {
	struct bs_store *bs;
	struct bs_dev *dev;
	struct bs_io_channel *ch;
	struct bs_dev_io dio;
	uint32_t ratio;
	const uint64_t *idx;
	const uint32_t *dst;
	const bool *from_esnap;
	uint64_t n;
	uint64_t k;			/* entry being copied */
	uint64_t off;			/* store blocks of it done */
	uint64_t chunk;			/* store blocks per chunk */
	uint8_t *buf;
	bs_cpl_fn cb_fn;
	void *cb_arg;
};

static void ecopy_done(struct esnap_copy *op, int err)
{
	if (op->ch != NULL)
		bs_dev_put_channel(op->ch);
	free(op->buf);
	op->cb_fn(op->cb_arg, err);
	free(op);
}

static void ecopy_step(struct esnap_copy *op);

static void ecopy_write_cpl(void *cb_arg, int err)
{
	struct esnap_copy *op = cb_arg;

	if (err != 0) {
		ecopy_done(op, err);
		return;
	}
	op->off += op->chunk;
	if (op->off >= op->bs->blocks_per_cluster) {
		op->off = 0;
		op->k++;
	}
	ecopy_step(op);
}

static void ecopy_read_cpl(void *cb_arg, int err)
{
	struct esnap_copy *op = cb_arg;
	struct bs_store *bs = op->bs;
	struct md_batch *b;

	if (err != 0) {
		ecopy_done(op, err);
		return;
	}
	b = md_batch_new(bs, ecopy_write_cpl, op);
	if (b == NULL) {
		ecopy_done(op, -ENOMEM);
		return;
	}
	md_batch_write_blocks(b, op->buf,
			      (uint64_t)op->dst[op->k] * bs->blocks_per_cluster + op->off, op->chunk);
	md_batch_close(b);
}

/* Read the next chunk (zeros past the device's end), or finish. */
static void ecopy_step(struct esnap_copy *op)
{
	uint64_t lba, cnt, end = op->dev->block_count;

	while (op->k < op->n && !op->from_esnap[op->k])
		op->k++;
	if (op->k >= op->n) {
		ecopy_done(op, 0);
		return;
	}
	lba = (op->idx[op->k] * op->bs->blocks_per_cluster + op->off) * op->ratio;
	cnt = op->chunk * op->ratio;
	memset(op->buf, 0, op->chunk * op->bs->block_len);
	if (lba >= end) {
		store_defer_cpl(ecopy_read_cpl, op, 0);
		return;
	}
	bs_dev_read(op->ch, &op->dio, op->buf, lba, BS_MIN(cnt, end - lba), ecopy_read_cpl, op);
}

void esnap_copy_clusters(struct bs_store *bs, const struct bs_blob *eb, const uint64_t *idx,
			 const uint32_t *dst, const bool *from_esnap, uint64_t n,
			 bs_cpl_fn cb_fn, void *cb_arg)
{
	struct esnap_copy *op = calloc(1, sizeof(*op));

	if (op == NULL) {
		store_defer_cpl(cb_fn, cb_arg, -ENOMEM);
		return;
	}
	*op = (struct esnap_copy){ .bs = bs, .dev = eb->esnap_dev, .ratio = eb->esnap_ratio,
				   .idx = idx, .dst = dst, .from_esnap = from_esnap, .n = n,
				   .cb_fn = cb_fn, .cb_arg = cb_arg };
	op->chunk = BS_MIN((uint64_t)1 << 20, (uint64_t)bs->cluster_size) / bs->block_len;
	if (op->dev == NULL || (op->ch = bs_dev_get_channel(op->dev)) == NULL ||
	    posix_memalign((void **)&op->buf, 4096, op->chunk * bs->block_len) != 0) {
		op->buf = NULL;
		ecopy_done(op, op->dev == NULL ? -ENXIO : -ENOMEM);
		return;
	}
	ecopy_step(op);
}

/* ---------------------------------------------------------- queries */

bool bs_blob_is_esnap_clone(const struct bs_blob *blob)
{
	return blob != NULL && (blob->invalid_flags & BLOB_INVALID_ESNAP) != 0;
}

int bs_blob_get_esnap_id(const struct bs_blob *blob, const void **id, size_t *len)
{
	uint32_t n;
	int rc;

	if (blob == NULL || id == NULL || len == NULL)
		return -EINVAL;
	if (blob->state != BLOB_OPEN)
		return -EBADF;
	if (!(blob->invalid_flags & BLOB_INVALID_ESNAP))
		return -EINVAL;
	rc = esnap_id_get(blob, id, &n);
	if (rc != 0)
		return -EINVAL;
	*len = n;
	return 0;
}

bool bs_blob_is_degraded(const struct bs_blob *blob)
{
	const struct bs_blob *eb;

	if (blob == NULL || blob->state != BLOB_OPEN)
		return false;
	eb = blob_chain_bottom_esnap(blob);
	return eb != NULL && eb->esnap_dev == NULL;
}

/* ---------------------------------------------------------- create, set parent */

void bs_blob_create_esnap_clone(struct bs_store *bs, const void *esnap_id, uint32_t id_len,
				uint64_t num_clusters, const struct bs_xattr *xattrs,
				uint32_t xattr_count, bs_blob_id *id_out,
				bs_cpl_fn cb_fn, void *cb_arg)
{
	int rc = md_call_check(bs, "create_esnap_clone", true);
	struct bs_blob_opts o;

	if (rc == 0)
		rc = esnap_id_check(esnap_id, id_len, "create_esnap_clone");
	if (rc == 0 && xattr_count > 0 && xattrs == NULL)
		rc = -EINVAL;
	if (rc != 0) {
		store_defer_cpl(cb_fn, cb_arg, rc);
		return;
	}
	bs_blob_opts_init(&o, sizeof(o));
	o.num_clusters = num_clusters;
	o.thin_provision = true;
	o.xattrs = xattrs;
	o.xattr_count = xattr_count;
	blob_create_ext(bs, &o, 0, esnap_id, id_len, id_out, cb_fn, cb_arg);
}

/* Context of bs_blob_set_external_parent. */
struct esnap_set_op {
	struct bs_store *bs;
	struct bs_blob *blob;		/* internal ref */
	struct bs_blob *old_parent;	/* its blob parent's handle, until durable */
	uint64_t old_parent_id;
	uint64_t old_invalid;
	struct bs_dev *dev;
	bool frozen;
	uint32_t id_len;
	bs_cpl_fn cb_fn;
	void *cb_arg;
	uint8_t id[];			/* id_len bytes */
};

static void esnap_set_finish(struct esnap_set_op *op, int err)
{
	if (op->dev != NULL)
		esnap_release(op->bs, op->dev); /* obtained but not installed */
	if (op->frozen)
		blob_thaw(op->blob);
	if (op->blob != NULL)
		blob_put(op->blob);
	op->cb_fn(op->cb_arg, err);
	free(op);
}

static void esnap_set_collapsed_cpl(void *cb_arg, int err)
{
	esnap_set_finish(cb_arg, 0);
}

static void esnap_set_commit_cpl(void *cb_arg, int err)
{
	struct esnap_set_op *op = cb_arg;
	struct bs_blob *x = op->blob;

	if (err != 0) {
		/* Back to the old parent; the device goes (esnap_set_finish). */
		esnap_unmark(x);
		x->invalid_flags = op->old_invalid;
		x->parent_id = op->old_parent_id;
		x->parent = op->old_parent;
		op->dev = x->esnap_dev;
		esnap_attach(x, NULL);
		esnap_set_finish(op, err);
		return;
	}
	op->bs->slot_parent[x->slot] = 0;
	if (op->old_parent != NULL)
		blob_put(op->old_parent);
	/* The old parent may be a hidden snapshot that just lost a clone. */
	blob_collapse(op->bs, op->old_parent_id, esnap_set_collapsed_cpl, op);
}

/* IO is drained: switch the parent in memory, then commit. */
static void esnap_set_frozen(void *ctx)
{
	struct esnap_set_op *op = ctx;
	struct bs_blob *x = op->blob;
	int rc;

	op->frozen = true;
	op->old_invalid = x->invalid_flags;
	rc = esnap_mark(x, op->id, op->id_len);
	if (rc != 0) {
		x->invalid_flags = op->old_invalid;
		esnap_set_finish(op, rc);
		return;
	}
	op->old_parent_id = x->parent_id;
	op->old_parent = x->parent;
	x->parent = NULL;
	x->parent_id = 0;
	esnap_attach(x, op->dev);
	op->dev = NULL;
	blob_commit(x, false, esnap_set_commit_cpl, op);
}

static int esnap_set_refusal(const struct esnap_set_op *op)
{
	const struct bs_blob *x = op->blob;

	if (x->data_ro || x->md_ro) {
		LOG_ERR("set_external_parent: blob 0x%" PRIx64 " is read-only", x->id);
		return -EPERM;
	}
	if (!x->thin || (x->invalid_flags & BLOB_INVALID_ESNAP) ||
	    blob_count_clones(op->bs, x->id, NULL) > 0) {
		LOG_ERR("set_external_parent: blob 0x%" PRIx64 " must be thin, have no clones and "
			"not be an esnap clone already", x->id);
		return -EINVAL;
	}
	if (x->syncing || atomic_load(&((struct bs_blob *)x)->frozen))
		return -EBUSY;
	return 0;
}

static void esnap_set_open_cpl(void *cb_arg, int err)
{
	struct esnap_set_op *op = cb_arg;

	if (err == 0)
		err = esnap_set_refusal(op);
	if (err == 0)
		err = esnap_dev_open(op->bs, op->blob->id, op->id, op->id_len,
				     "set_external_parent", &op->dev);
	if (err == 0)
		err = blob_freeze_run(op->blob, esnap_set_frozen, op);
	if (err != 0)
		esnap_set_finish(op, err); /* a failed open left op->blob NULL */
}

void bs_blob_set_external_parent(struct bs_store *bs, bs_blob_id id, const void *esnap_id,
				 uint32_t id_len, bs_cpl_fn cb_fn, void *cb_arg)
{
	int rc = md_call_check(bs, "set_external_parent", true);
	struct esnap_set_op *op;

	if (rc == 0)
		rc = esnap_id_check(esnap_id, id_len, "set_external_parent");
	if (rc == 0 && (id == BS_BLOB_ID_INVALID || BLOB_ID_SLOT(id) >= bs->max_blobs ||
			bitarray_get(&bs->slots_hidden, BLOB_ID_SLOT(id))))
		rc = -ENOENT;
	if (rc != 0 || (op = calloc(1, sizeof(*op) + id_len)) == NULL) {
		store_defer_cpl(cb_fn, cb_arg, rc ? rc : -ENOMEM);
		return;
	}
	op->bs = bs;
	op->cb_fn = cb_fn;
	op->cb_arg = cb_arg;
	op->id_len = id_len;
	memcpy(op->id, esnap_id, id_len);
	blob_open_internal(bs, id, &op->blob, esnap_set_open_cpl, op);
}
