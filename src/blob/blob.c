/*
 * Blob operations on the metadata thread: create, open, close, delete,
 * resize, sync, xattrs, queries, iteration, super blob and store flush.
 *
 * Handles: one struct bs_blob per blob id that was opened or created in
 * this session. Closing keeps the (emptied) handle with state CLOSED so that
 * IO or calls through a stale handle fail with -EBADF instead of touching
 * freed memory; handles are freed at unload.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "blob/md_page.h"
#include "blob/store_int.h"
#include "util/assert_int.h"
#include "util/log_int.h"

/* Common entry checks for metadata calls. 0 or -errno (logged for misuse). */
int md_call_check(struct bs_store *bs, const char *what, bool writes)
{
	if (bs == NULL)
		return -EINVAL;
	if (!on_md_thread(bs)) {
		LOG_ERR("%s: must be called on the metadata thread", what);
		return -EPERM;
	}
	if (bs->unloading)
		return -ESHUTDOWN;
	if (writes && bs->error != 0)
		return -EIO; /* D10 */
	if (writes && bs->read_only)
		return -EROFS;
	return 0;
}

struct bs_blob *store_find_blob(struct bs_store *bs, bs_blob_id id)
{
	struct bs_blob *b;

	TAILQ_FOREACH(b, &bs->blobs, link) {
		if (b->id == id)
			return b;
	}
	return NULL;
}

struct bs_blob *blob_alloc(struct bs_store *bs, bs_blob_id id)
{
	struct bs_blob *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return NULL;
	b->bs = bs;
	b->id = id;
	b->slot = BLOB_ID_SLOT(id);
	b->state = BLOB_CLOSED;
	b->root_page = -1;
	xattr_set_init(&b->xattrs);
	TAILQ_INIT(&b->sync_next);
	TAILQ_INIT(&b->open_waiters);
	return b;
}

/* Drop the in-memory metadata, keeping the handle shell. */
int blob_alloc_dirty_resize(struct bs_blob *blob)
{
	uint64_t leaves = (blob->map.num_clusters + MD_EXTENTS_PER_PAGE - 1) / MD_EXTENTS_PER_PAGE;
	uint64_t words = (leaves + 63) / 64;
	uint64_t *v;

	if (words <= blob->alloc_dirty_words)
		return 0;
	v = realloc(blob->alloc_dirty, words * sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	memset(v + blob->alloc_dirty_words, 0, (words - blob->alloc_dirty_words) * sizeof(*v));
	blob->alloc_dirty = v;
	blob->alloc_dirty_words = words;
	return 0;
}

void blob_note_alloc(struct bs_blob *blob, uint64_t i)
{
	uint64_t leaf = i / MD_EXTENTS_PER_PAGE;

	__atomic_fetch_or(&blob->alloc_dirty[leaf >> 6], 1ull << (leaf & 63), __ATOMIC_RELEASE);
}

void blob_free_md(struct bs_blob *b)
{
	free(b->alloc_dirty);
	b->alloc_dirty = NULL;
	b->alloc_dirty_words = 0;
	blob_map_free(&b->map);
	xattr_set_free(&b->xattrs);
	free(b->pending_free);
	b->pending_free = NULL;
	b->npending_free = 0;
	b->pending_cap = 0;
}

void blob_destroy(struct bs_blob *b)
{
	blob_free_md(b);
	free(b);
}

/* Give every cluster in @blob's map back to the store (as not known-zero). */
static void blob_release_clusters(struct bs_blob *blob)
{
	for (uint64_t i = 0; i < blob->map.num_clusters; i++) {
		uint32_t c = blob_map_get(&blob->map, i);

		if (c != 0)
			cluster_release(blob->bs, c, false);
	}
}

static bool slot_valid(const struct bs_store *bs, bs_blob_id id)
{
	return id != BS_BLOB_ID_INVALID && BLOB_ID_INCARNATION(id) != 0 &&
	       BLOB_ID_SLOT(id) < bs->max_blobs;
}

/* ---------------------------------------------------------- read a slot */

struct slot_read {
	struct bs_store *bs;
	struct bs_blob *blob;
	struct md_root *pages;		/* two pages */
	int pick;
	bool tombstone;
	int valid;
	bs_cpl_fn cb_fn;		/* step after the read */
	void *cb_arg;
	/* operation state */
	bs_blob_id id;
	bs_blob_id parent_id;		/* clone: the parent */
	void *esnap_id;			/* esnap clone: its id (copy) */
	uint32_t esnap_len;
	struct bs_blob **blob_out;
	bs_blob_id *id_out;
	struct bs_blob_opts opts;
	bs_cpl_fn user_cb;
	void *user_arg;
	uint32_t zero_pending;
	int err;
};

static void slot_read_done(struct slot_read *sr, int err)
{
	sr->user_cb(sr->user_arg, err);
	md_free_pages(sr->pages);
	free(sr->esnap_id);
	free(sr);
}

/* Read both pages of a slot, then continue at sr->cb_fn. */
static void slot_read(struct slot_read *sr, uint32_t slot)
{
	struct md_batch *b;

	sr->pages = md_alloc_pages(2);
	b = sr->pages ? md_batch_new(sr->bs, sr->cb_fn, sr) : NULL;
	if (b == NULL) {
		/* Through the step's own error path, so its state is undone. */
		store_defer_cpl(sr->cb_fn, sr, -ENOMEM);
		return;
	}
	md_batch_read(b, sr->pages, sr->bs->root_start + 2ull * slot, 2);
	md_batch_close(b);
}

static struct slot_read *slot_read_new(struct bs_store *bs, bs_cpl_fn user_cb, void *user_arg)
{
	struct slot_read *sr = calloc(1, sizeof(*sr));

	if (sr == NULL) {
		store_defer_cpl(user_cb, user_arg, -ENOMEM);
		return NULL;
	}
	sr->bs = bs;
	sr->user_cb = user_cb;
	sr->user_arg = user_arg;
	return sr;
}

/* ---------------------------------------------------------- create */

static void create_commit_cpl(void *cb_arg, int err)
{
	struct slot_read *sr = cb_arg;
	struct bs_store *bs = sr->bs;
	struct bs_blob *blob = sr->blob;

	if (err != 0) {
		/* Give back the slot and clusters: nothing durable references them. */
		blob_release_clusters(blob);
		bitarray_clear(&bs->slots_used, blob->slot);
		TAILQ_REMOVE(&bs->blobs, blob, link);
		blob_destroy(blob);
	} else {
		*sr->id_out = blob->id;
		bs->slot_inc[blob->slot] = BLOB_ID_INCARNATION(blob->id);
		bs->slot_parent[blob->slot] = blob->parent_id;
		blob_free_md(blob); /* created closed */
		blob->state = BLOB_CLOSED;
		bs->report.blobs++;
	}
	slot_read_done(sr, err);
}

static void create_zero_cpl(void *cb_arg, int err)
{
	struct slot_read *sr = cb_arg;

	if (err != 0) {
		store_latch_error(sr->bs, err, "zeroing new clusters");
		sr->err = -EIO;
	}
	if (sr->err != 0) {
		create_commit_cpl(sr, sr->err);
		return;
	}
	sr->blob->md_dirty = true;
	blob_commit(sr->blob, false, create_commit_cpl, sr);
}

/*
 * Give clusters [from, to) of @blob real, zeroed clusters (D8): claim, and
 * zero those not known-zero through @b. -ENOSPC if the store runs out (the
 * claimed ones stay in the map for the caller to release).
 */
static int blob_alloc_range(struct bs_blob *blob, uint64_t from, uint64_t to, struct md_batch *b)
{
	struct bs_store *bs = blob->bs;

	for (uint64_t i = from; i < to; i++) {
		bool zeroed;
		uint32_t c = cluster_claim(bs, &zeroed);

		if (c == 0)
			return -ENOSPC;
		if (!zeroed)
			md_batch_zeroes(b, (uint64_t)c * bs->blocks_per_cluster, bs->blocks_per_cluster);
		blob_map_set(&blob->map, i, c);
	}
	if (to > from)
		atomic_fetch_add(&blob->allocs, 1); /* D9: flush data before the map */
	return 0;
}

static int create_apply_opts(struct bs_blob *blob, const struct bs_blob_opts *o)
{
	int rc;

	if (o->num_clusters > store_max_blob_clusters(blob->bs)) {
		LOG_ERR("create: %" PRIu64 " clusters is more than a blob may have", o->num_clusters);
		return -EINVAL;
	}
	rc = blob_map_init(&blob->map, o->num_clusters);
	if (rc != 0)
		return rc == -EFBIG ? -EINVAL : rc;
	rc = blob_alloc_dirty_resize(blob);
	if (rc != 0)
		return rc;
	blob->thin = o->thin_provision;
	if (blob->thin)
		blob->invalid_flags |= BLOB_INVALID_THIN;
	for (uint32_t i = 0; i < o->xattr_count; i++) {
		rc = xattr_set_put(&blob->xattrs, o->xattrs[i].name, o->xattrs[i].value,
				   o->xattrs[i].value_len, 0);
		if (rc != 0) {
			LOG_ERR("create: xattr %u rejected: %s", i, strerror(-rc));
			return rc;
		}
	}
	return 0;
}

/*
 * D3: a new blob's first root must not overwrite the slot's newest valid
 * page (a tombstone, or an older incarnation's root): return that page.
 */
static int slot_newest_page(const struct bs_store *bs, uint32_t slot, const struct md_root pages[2])
{
	int valid, pick;
	bool tomb;

	pick = blob_root_pick(bs, slot, pages, &valid, &tomb);
	if (pick < 0 && valid)
		pick = (valid & 2) && (!(valid & 1) || pages[1].hdr.gen > pages[0].hdr.gen);
	return pick < 0 ? 1 : pick;
}

static void create_slot_cpl(void *cb_arg, int err)
{
	struct slot_read *sr = cb_arg;
	struct bs_store *bs = sr->bs;
	uint32_t slot = BLOB_ID_SLOT(sr->id);
	struct bs_blob *blob;
	struct md_batch *b;

	if (err == 0)
		err = create_apply_opts(sr->blob, &sr->opts);
	if (err == 0 && sr->esnap_id != NULL)
		err = esnap_mark(sr->blob, sr->esnap_id, sr->esnap_len);
	if (err != 0) {
		bitarray_clear(&bs->slots_used, slot);
		TAILQ_REMOVE(&bs->blobs, sr->blob, link);
		blob_destroy(sr->blob);
		slot_read_done(sr, err);
		return;
	}
	blob = sr->blob;
	if (sr->parent_id != 0) {
		blob->parent_id = sr->parent_id;
		blob->thin = true;
		blob->invalid_flags |= BLOB_INVALID_THIN;
	}
	blob->root_page = slot_newest_page(bs, slot, sr->pages);
	b = md_batch_new(bs, create_zero_cpl, sr);
	if (b == NULL) {
		create_zero_cpl(sr, -ENOMEM);
		return;
	}
	if (!blob->thin)
		sr->err = blob_alloc_range(blob, 0, blob->map.num_clusters, b);
	md_batch_close(b);
}

void bs_blob_opts_init(struct bs_blob_opts *opts, size_t opts_size)
{
	memset(opts, 0, opts_size);
	opts->opts_size = opts_size;
}

void bs_blob_create(struct bs_store *bs, const struct bs_blob_opts *opts, bs_blob_id *id_out,
		    bs_cpl_fn cb_fn, void *cb_arg)
{
	blob_create(bs, opts, 0, id_out, cb_fn, cb_arg);
}

/* Create a blob; with @parent_id a thin clone of that blob. */
void blob_create(struct bs_store *bs, const struct bs_blob_opts *opts, bs_blob_id parent_id,
		 bs_blob_id *id_out, bs_cpl_fn cb_fn, void *cb_arg)
{
	blob_create_ext(bs, opts, parent_id, NULL, 0, id_out, cb_fn, cb_arg);
}

void blob_create_ext(struct bs_store *bs, const struct bs_blob_opts *opts, bs_blob_id parent_id,
		     const void *esnap_id, uint32_t id_len, bs_blob_id *id_out,
		     bs_cpl_fn cb_fn, void *cb_arg)
{
	int rc = md_call_check(bs, "create", true);
	struct slot_read *sr;
	uint64_t slot;

	if (rc == 0 && opts != NULL && (opts->opts_size == 0 || opts->opts_size > sizeof(*opts)))
		rc = -EINVAL;
	if (rc == 0 && id_out == NULL)
		rc = -EINVAL;
	slot = rc == 0 ? bitarray_find_first_clear(&bs->slots_used, 0) : 0;
	if (rc == 0 && slot == BITARRAY_NONE) {
		LOG_ERR("create: all %" PRIu64 " blob slots are in use", bs->max_blobs);
		rc = -ENOSPC;
	}
	if (rc != 0 || (sr = slot_read_new(bs, cb_fn, cb_arg)) == NULL) {
		if (rc != 0)
			store_defer_cpl(cb_fn, cb_arg, rc);
		return;
	}
	bs_blob_opts_init(&sr->opts, sizeof(sr->opts));
	if (opts != NULL)
		memcpy(&sr->opts, opts, opts->opts_size);
	sr->id = BLOB_ID((uint32_t)bs->id_next, slot);
	bs->id_next++;
	if ((uint32_t)bs->id_next == 0)
		bs->id_next++;
	sr->id_out = id_out;
	sr->parent_id = parent_id;
	if (esnap_id != NULL && (sr->esnap_id = malloc(id_len)) != NULL) {
		memcpy(sr->esnap_id, esnap_id, id_len);
		sr->esnap_len = id_len;
	}
	sr->blob = blob_alloc(bs, sr->id);
	if (sr->blob == NULL || (esnap_id != NULL && sr->esnap_id == NULL)) {
		if (sr->blob != NULL)
			blob_destroy(sr->blob);
		slot_read_done(sr, -ENOMEM);
		return;
	}
	bitarray_set(&bs->slots_used, slot);
	TAILQ_INSERT_TAIL(&bs->blobs, sr->blob, link);
	sr->cb_fn = create_slot_cpl;
	slot_read(sr, (uint32_t)slot);
}

/* ---------------------------------------------------------- open */

/* The first open finished: answer every open that waited for it. */
static void open_wake_waiters(struct bs_blob *blob, int err)
{
	struct blob_open_waiter *w;

	while ((w = TAILQ_FIRST(&blob->open_waiters)) != NULL) {
		TAILQ_REMOVE(&blob->open_waiters, w, link);
		if (err == 0) {
			blob->ref++;
			*w->blob_out = blob;
		}
		w->cb_fn(w->cb_arg, err);
		free(w);
	}
}

/* The blob and its ancestors are loaded: it is open. */
static void open_done(struct slot_read *sr)
{
	struct bs_blob *blob = sr->blob;

	blob->state = BLOB_OPEN;
	blob->ref = 1;
	sr->bs->open_blobs++;
	*sr->blob_out = blob;
	slot_read_done(sr, 0);
	open_wake_waiters(blob, 0);
}

static void open_parent_cpl(void *cb_arg, int err)
{
	struct slot_read *sr = cb_arg;
	struct bs_blob *blob = sr->blob;

	if (err == 0) {
		open_done(sr);
		return;
	}
	LOG_ERR("open: blob 0x%" PRIx64 ": its parent 0x%" PRIx64 " cannot be opened (%s)",
		blob->id, blob->parent_id, strerror(-err));
	blob->parent = NULL;
	blob_free_md(blob);
	blob->state = BLOB_CLOSED;
	err = err == -ENOENT ? -EILSEQ : err; /* a dangling parent link is corruption */
	slot_read_done(sr, err);
	open_wake_waiters(blob, err);
}

/*
 * Would loading @blob's parent wait for @blob itself? Only corrupt parent
 * links loop: follow them through the blobs being loaded (each waits for
 * its parent) and see whether the chain comes back. Without this an open
 * would wait forever on its own load.
 */
static bool open_parent_loops(struct bs_store *bs, const struct bs_blob *blob)
{
	bs_blob_id p = blob->parent_id;

	for (uint64_t n = 0; p != 0 && n <= bs->max_blobs; n++) {
		const struct bs_blob *b;

		if (p == blob->id)
			return true;
		b = store_find_blob(bs, p);
		if (b == NULL || b->state != BLOB_LOADING || (b->invalid_flags & BLOB_INVALID_ESNAP))
			return false;
		p = b->parent_id;
	}
	return p != 0;
}

static void open_tree_cpl(void *cb_arg, int err)
{
	struct slot_read *sr = cb_arg;
	struct bs_blob *blob = sr->blob;

	if (err != 0) {
		blob_free_md(blob);
		blob->state = BLOB_CLOSED;
		if (err == -EILSEQ)
			LOG_ERR("open: blob 0x%" PRIx64 ": metadata corrupt", blob->id);
	} else if ((err = blob_alloc_dirty_resize(blob)) != 0) {
		blob_free_md(blob);
		blob->state = BLOB_CLOSED;
	} else if (blob->parent_id != 0 && !(blob->invalid_flags & BLOB_INVALID_ESNAP) &&
		   open_parent_loops(sr->bs, blob)) {
		LOG_ERR("open: blob 0x%" PRIx64 ": its parent chain loops back to it", blob->id);
		blob_free_md(blob);
		blob->state = BLOB_CLOSED;
		err = -EILSEQ;
	} else if (blob->parent_id != 0 && !(blob->invalid_flags & BLOB_INVALID_ESNAP)) {
		/* Reads of clusters it does not own go to its parent: load it too. */
		blob_open_internal(sr->bs, blob->parent_id, &blob->parent, open_parent_cpl, sr);
		return;
	} else if ((err = esnap_open(blob)) != 0) {
		blob_free_md(blob);
		blob->state = BLOB_CLOSED;
	} else {
		open_done(sr);
		return;
	}
	slot_read_done(sr, err);
	open_wake_waiters(blob, err);
}

/* Validate the slot, then load the blob's tree. */
static void open_slot_cpl(void *cb_arg, int err)
{
	struct slot_read *sr = cb_arg;
	struct bs_blob *blob = sr->blob;
	int valid, pick;
	bool tomb;

	if (err == 0) {
		pick = blob_root_pick(sr->bs, blob->slot, sr->pages, &valid, &tomb);
		if (pick == -EILSEQ)
			LOG_ERR("open: blob 0x%" PRIx64 ": no valid root page", blob->id);
		err = pick < 0 ? pick : 0;
	}
	if (err == 0 && sr->pages[pick].hdr.blob_id != blob->id)
		err = -ENOENT; /* the slot holds another incarnation */
	if (err == 0) {
		blob->root_page = pick;
		err = blob_apply_root(blob, &sr->pages[pick]);
	}
	if (err != 0) {
		blob->state = BLOB_CLOSED;
		slot_read_done(sr, err);
		open_wake_waiters(blob, err);
		return;
	}
	blob_tree_load(sr->bs, blob, &sr->pages[pick], open_tree_cpl, sr);
}

static void open_again_cpl(void *cb_arg, int err)
{
	struct slot_read *sr = cb_arg;

	if (err == 0)
		*sr->blob_out = sr->blob;
	slot_read_done(sr, err);
}

void bs_blob_open(struct bs_store *bs, bs_blob_id id, struct bs_blob **blob_out,
		  bs_cpl_fn cb_fn, void *cb_arg)
{
	int rc = md_call_check(bs, "open", false);

	if (rc == 0 && slot_valid(bs, id) && bitarray_get(&bs->slots_hidden, BLOB_ID_SLOT(id)))
		rc = -ENOENT; /* a deleted snapshot still serving its clones */
	if (rc != 0) {
		store_defer_cpl(cb_fn, cb_arg, rc);
		return;
	}
	blob_open_internal(bs, id, blob_out, cb_fn, cb_arg);
}

void blob_open_internal(struct bs_store *bs, bs_blob_id id, struct bs_blob **blob_out,
			bs_cpl_fn cb_fn, void *cb_arg)
{
	int rc = 0;
	struct bs_blob *blob = NULL;
	struct slot_read *sr;

	if (blob_out == NULL || !slot_valid(bs, id))
		rc = blob_out == NULL ? -EINVAL : -ENOENT;
	if (rc == 0 && bitarray_get(&bs->slots_corrupt, BLOB_ID_SLOT(id)))
		rc = -EILSEQ;
	if (rc == 0 && !bitarray_get(&bs->slots_used, BLOB_ID_SLOT(id)))
		rc = -ENOENT;
	if (rc == 0) {
		blob = store_find_blob(bs, id);
		if (blob != NULL && blob->state == BLOB_DELETED)
			rc = -ENOENT;
	}
	if (rc != 0 || (sr = slot_read_new(bs, cb_fn, cb_arg)) == NULL) {
		if (rc != 0)
			store_defer_cpl(cb_fn, cb_arg, rc);
		return;
	}
	sr->blob_out = blob_out;
	if (blob != NULL && blob->state == BLOB_OPEN) {
		blob->ref++;
		sr->blob = blob;
		store_defer_cpl(open_again_cpl, sr, 0);
		return;
	}
	if (blob != NULL && blob->state == BLOB_LOADING) {
		struct blob_open_waiter *w = malloc(sizeof(*w));

		free(sr);
		if (w == NULL) {
			store_defer_cpl(cb_fn, cb_arg, -ENOMEM);
			return;
		}
		*w = (struct blob_open_waiter){ .blob_out = blob_out, .cb_fn = cb_fn, .cb_arg = cb_arg };
		TAILQ_INSERT_TAIL(&blob->open_waiters, w, link);
		return;
	}
	if (blob == NULL) {
		blob = blob_alloc(bs, id);
		if (blob == NULL) {
			slot_read_done(sr, -ENOMEM);
			return;
		}
		TAILQ_INSERT_TAIL(&bs->blobs, blob, link);
	}
	sr->blob = blob;
	blob->state = BLOB_LOADING;
	sr->cb_fn = open_slot_cpl;
	slot_read(sr, blob->slot);
}

/* ---------------------------------------------------------- close */

struct blob_op {
	struct bs_blob *blob;
	bs_cpl_fn cb_fn;
	void *cb_arg;
	uint64_t new_size;
	int err;
};

static bool blob_needs_commit(const struct bs_blob *blob)
{
	return blob->md_dirty || blob_map_is_dirty(&blob->map) || blob->npending_free > 0 ||
	       atomic_load(&((struct bs_blob *)blob)->allocs) != blob->allocs_committed;
}

static void close_sync_cpl(void *cb_arg, int err)
{
	struct blob_op *op = cb_arg;
	struct bs_blob *blob = op->blob;

	blob_put(blob);
	op->cb_fn(op->cb_arg, err);
	free(op);
}

/* The last reference: free the metadata and release the parent's. */
void blob_put(struct bs_blob *blob)
{
	struct bs_blob *parent = blob->parent;

	assert(blob->ref > 0);
	if (--blob->ref != 0)
		return;
	blob->state = BLOB_CLOSED;
	blob->parent = NULL;
	esnap_detach(blob); /* closed once no channel holds it */
	blob_free_md(blob);
	blob->bs->open_blobs--;
	if (parent != NULL)
		blob_put(parent); /* ancestors are read-only: nothing to sync */
}

static struct blob_op *blob_op_new(struct bs_blob *blob, bs_cpl_fn cb_fn, void *cb_arg)
{
	struct blob_op *op = calloc(1, sizeof(*op));

	if (op == NULL) {
		store_defer_cpl(cb_fn, cb_arg, -ENOMEM);
		return NULL;
	}
	op->blob = blob;
	op->cb_fn = cb_fn;
	op->cb_arg = cb_arg;
	return op;
}

/* Checks for calls through a handle. */
static int blob_call_check(struct bs_blob *blob, const char *what, bool writes)
{
	if (blob == NULL)
		return -EINVAL;
	if (blob->state != BLOB_OPEN)
		return -EBADF;
	return md_call_check(blob->bs, what, writes);
}

void bs_blob_close(struct bs_blob *blob, bs_cpl_fn cb_fn, void *cb_arg)
{
	int rc = blob_call_check(blob, "close", false);
	struct blob_op *op;

	if (rc == 0 && blob->ref == 1 && atomic_load(&blob->inflight) != 0) {
		LOG_ERR("close: blob 0x%" PRIx64 ": IO still in flight", blob->id);
		rc = -EBUSY;
	}
	if (rc != 0) {
		store_defer_cpl(cb_fn, cb_arg, rc);
		return;
	}
	op = blob_op_new(blob, cb_fn, cb_arg);
	if (op == NULL)
		return;
	/*
	 * Every close syncs what is unsaved, not only the last: another
	 * reference (a second open, a clone's parent link, a shallow copy) may
	 * be the last to go, and an internal put never commits.
	 */
	if (blob_needs_commit(blob) && !blob->md_ro && blob->bs->error == 0 &&
	    !blob->bs->read_only) {
		blob_commit(blob, false, close_sync_cpl, op);
		return;
	}
	store_defer_cpl(close_sync_cpl, op, blob->ref == 1 && blob_needs_commit(blob) ? -EIO : 0);
}

/* ---------------------------------------------------------- sync, flush */

static void sync_flush_cpl(void *cb_arg, int err)
{
	struct blob_op *op = cb_arg;

	if (err != 0)
		store_latch_error(op->blob->bs, err, "flush");
	op->cb_fn(op->cb_arg, err ? -EIO : 0);
	free(op);
}

/* Nothing to commit: a device flush still makes completed writes durable. */
static void store_device_flush(struct bs_store *bs, struct blob_op *op)
{
	struct md_batch *b = md_batch_new(bs, sync_flush_cpl, op);

	if (b == NULL) {
		store_defer_cpl(op->cb_fn, op->cb_arg, -ENOMEM);
		free(op);
		return;
	}
	md_batch_flush(b);
	md_batch_close(b);
}

void bs_blob_sync(struct bs_blob *blob, bs_cpl_fn cb_fn, void *cb_arg)
{
	int rc = blob_call_check(blob, "sync", true);
	struct blob_op *op;

	if (rc == 0 && blob->md_ro && blob->md_dirty)
		rc = -EPERM;
	if (rc != 0) {
		store_defer_cpl(cb_fn, cb_arg, rc);
		return;
	}
	if (blob_needs_commit(blob) || blob->syncing) {
		blob_commit(blob, false, cb_fn, cb_arg);
		return;
	}
	op = blob_op_new(blob, cb_fn, cb_arg);
	if (op != NULL)
		store_device_flush(blob->bs, op);
}

struct flush_op {
	struct bs_store *bs;
	uint32_t pending;
	int err;
	bs_cpl_fn cb_fn;
	void *cb_arg;
};

static void flush_one_cpl(void *cb_arg, int err)
{
	struct flush_op *f = cb_arg;

	if (err != 0 && f->err == 0)
		f->err = err;
	if (--f->pending == 0) {
		f->cb_fn(f->cb_arg, f->err);
		free(f);
	}
}

static void flush_dev_cpl(void *cb_arg, int err)
{
	struct flush_op *f = cb_arg;

	if (err != 0)
		store_latch_error(f->bs, err, "flush");
	flush_one_cpl(f, err ? -EIO : 0);
}

/*
 * Store flush (D9): commit every open blob whose map changed; a plain device
 * flush covers everything else. Blob commits flush the device themselves.
 */
void bs_flush(struct bs_store *bs, bs_cpl_fn cb_fn, void *cb_arg)
{
	int rc = md_call_check(bs, "flush", true);
	struct flush_op *f;
	struct bs_blob *blob;
	struct md_batch *b;

	if (rc != 0 || (f = calloc(1, sizeof(*f))) == NULL) {
		store_defer_cpl(cb_fn, cb_arg, rc ? rc : -ENOMEM);
		return;
	}
	f->bs = bs;
	f->cb_fn = cb_fn;
	f->cb_arg = cb_arg;
	f->pending = 1;
	TAILQ_FOREACH(blob, &bs->blobs, link) {
		if (blob->state == BLOB_OPEN && !blob->md_ro && blob_needs_commit(blob)) {
			f->pending++;
			blob_commit(blob, false, flush_one_cpl, f);
		}
	}
	b = md_batch_new(bs, flush_dev_cpl, f);
	if (b == NULL) {
		store_defer_cpl(flush_one_cpl, f, -ENOMEM);
		return;
	}
	md_batch_flush(b);
	md_batch_close(b);
}

/* ---------------------------------------------------------- delete */

static void pool_page_free_cb(void *arg, uint32_t pool_idx)
{
	pool_page_free(arg, pool_idx);
}

static void delete_collapsed_cpl(void *cb_arg, int err);
static void delete_corrupt_slot_cpl(void *cb_arg, int err);

static void delete_commit_cpl(void *cb_arg, int err)
{
	struct slot_read *sr = cb_arg;
	struct bs_store *bs = sr->bs;
	struct bs_blob *blob = sr->blob;

	if (err == 0) {
		uint64_t parent = bs->slot_parent[blob->slot];

		/* D11 then D5: the tombstone is durable; release everything. */
		blob_release_clusters(blob);
		blob_map_for_each_page(&blob->map, pool_page_free_cb, bs);
		bitarray_clear(&bs->slots_used, blob->slot);
		bitarray_clear(&bs->slots_hidden, blob->slot);
		bs->slot_inc[blob->slot] = 0;
		bs->slot_parent[blob->slot] = 0;
		blob->state = BLOB_DELETED;
		bs->report.blobs--;
		blob_free_md(blob);
		/* A hidden parent may now have one clone or none: collapse it. */
		blob_collapse(bs, parent, delete_collapsed_cpl, sr);
		return;
	}
	blob->state = BLOB_CLOSED;
	blob_free_md(blob);
	slot_read_done(sr, err);
}

static void delete_collapsed_cpl(void *cb_arg, int err)
{
	slot_read_done(cb_arg, 0); /* the delete itself succeeded */
}

struct collapse_op {
	bs_cpl_fn cb_fn;
	void *cb_arg;
};

static void collapse_cpl(void *cb_arg, int err)
{
	struct collapse_op *c = cb_arg;

	if (err != 0)
		LOG_WARN("collapse of a hidden snapshot failed (%s); it stays hidden", strerror(-err));
	c->cb_fn(c->cb_arg, 0);
	free(c);
}

/*
 * A hidden snapshot goes away once at most one clone is left: merged into
 * the last clone, or deleted (docs/snapshots.md). Failures leave it hidden,
 * which is consistent; the callback reports 0 either way.
 */
void blob_collapse(struct bs_store *bs, bs_blob_id parent, bs_cpl_fn cb_fn, void *cb_arg)
{
	struct collapse_op *c;
	bs_blob_id one = 0;
	int clones;

	if (parent == 0 || !slot_valid(bs, parent) ||
	    !bitarray_get(&bs->slots_hidden, BLOB_ID_SLOT(parent)) ||
	    (clones = blob_count_clones(bs, parent, &one)) > 1 ||
	    (c = malloc(sizeof(*c))) == NULL) {
		store_defer_cpl(cb_fn, cb_arg, 0);
		return;
	}
	c->cb_fn = cb_fn;
	c->cb_arg = cb_arg;
	LOG_INFO("hidden snapshot 0x%" PRIx64 " has %d clone(s) left: collapsing", parent, clones);
	if (clones == 1)
		blob_merge_delete(bs, parent, one, collapse_cpl, c);
	else
		blob_delete_internal(bs, parent, collapse_cpl, c);
}

static void delete_tree_cpl(void *cb_arg, int err)
{
	struct slot_read *sr = cb_arg;

	if (err != 0) {
		blob_free_md(sr->blob);
		sr->blob->state = BLOB_CLOSED;
		slot_read_done(sr, err);
		return;
	}
	blob_commit(sr->blob, true, delete_commit_cpl, sr);
}

/* Validate the slot as open does, then load the tree to learn what to free. */
static void delete_slot_cpl(void *cb_arg, int err)
{
	struct slot_read *sr = cb_arg;
	struct bs_blob *blob = sr->blob;
	int valid, pick = -ENOENT;
	bool tomb;

	if (err == 0) {
		pick = blob_root_pick(sr->bs, blob->slot, sr->pages, &valid, &tomb);
		err = pick < 0 ? pick : 0;
	}
	if (err == 0 && sr->pages[pick].hdr.blob_id != blob->id)
		err = -ENOENT;
	if (err == 0) {
		blob->root_page = pick;
		err = blob_apply_root(blob, &sr->pages[pick]);
		if (err == -EOPNOTSUPP)
			err = 0; /* unknown flags do not prevent deleting */
	}
	if (err != 0) {
		blob->state = BLOB_CLOSED;
		slot_read_done(sr, err);
		return;
	}
	blob_tree_load(sr->bs, blob, &sr->pages[pick], delete_tree_cpl, sr);
}

void bs_blob_delete(struct bs_store *bs, bs_blob_id id, bs_cpl_fn cb_fn, void *cb_arg)
{
	int rc = md_call_check(bs, "delete", true);

	if (rc == 0 && slot_valid(bs, id) && bitarray_get(&bs->slots_hidden, BLOB_ID_SLOT(id)))
		rc = -ENOENT; /* already deleted; goes away with its last clone */
	if (rc != 0) {
		store_defer_cpl(cb_fn, cb_arg, rc);
		return;
	}
	blob_delete_internal(bs, id, cb_fn, cb_arg);
}

/*
 * Is every reference to the open @blob a loaded clone's parent link (the
 * application holds no handle of it)? Such a snapshot may be deleted: the
 * merge or hide works on it through its clone, whose IO it pauses.
 */
static bool blob_held_by_clones_only(const struct bs_store *bs, const struct bs_blob *blob)
{
	const struct bs_blob *b;
	uint32_t n = 0;

	TAILQ_FOREACH(b, &bs->blobs, link)
		n += b->parent == blob && b->state == BLOB_OPEN;
	return n > 0 && n == blob->ref;
}

/* Delete without the visibility check: also collapses hidden snapshots. */
void blob_delete_internal(struct bs_store *bs, bs_blob_id id, bs_cpl_fn cb_fn, void *cb_arg)
{
	int rc = 0;
	struct bs_blob *blob = NULL;
	struct slot_read *sr;

	if (!slot_valid(bs, id) || !bitarray_get(&bs->slots_used, BLOB_ID_SLOT(id)))
		rc = -ENOENT;
	if (rc == 0) {
		blob = store_find_blob(bs, id);
		if (blob != NULL && blob->state == BLOB_DELETED)
			rc = -ENOENT;
		else if (blob != NULL && blob->state != BLOB_CLOSED &&
			 !(blob->state == BLOB_OPEN && blob_held_by_clones_only(bs, blob)))
			rc = -EBUSY;
	}
	if (rc == 0) {
		bs_blob_id one = 0;
		int clones = blob_count_clones(bs, id, &one);

		if (clones == 1) {
			blob_merge_delete(bs, id, one, cb_fn, cb_arg);
			return;
		}
		if (clones > 1) {
			blob_hide(bs, id, cb_fn, cb_arg);
			return;
		}
		if (blob != NULL && blob->state != BLOB_CLOSED)
			rc = -EBUSY; /* clone links without clones: never delete it open */
	}
	if (rc != 0 || (sr = slot_read_new(bs, cb_fn, cb_arg)) == NULL) {
		if (rc != 0)
			store_defer_cpl(cb_fn, cb_arg, rc);
		return;
	}
	if (blob == NULL) {
		blob = blob_alloc(bs, id);
		if (blob == NULL) {
			slot_read_done(sr, -ENOMEM);
			return;
		}
		TAILQ_INSERT_TAIL(&bs->blobs, blob, link);
	}
	sr->blob = blob;
	sr->cb_fn = bitarray_get(&bs->slots_corrupt, blob->slot) ? delete_corrupt_slot_cpl :
								 delete_slot_cpl;
	slot_read(sr, blob->slot);
}

static void delete_corrupt_cpl(void *cb_arg, int err)
{
	struct slot_read *sr = cb_arg;
	struct bs_store *bs = sr->bs;
	struct bs_blob *blob = sr->blob;

	if (err == 0) {
		LOG_NOTICE("delete: corrupt blob 0x%" PRIx64 " removed; the clusters it held "
			   "are reclaimed by the next recovery", blob->id);
		bitarray_clear(&bs->slots_used, blob->slot);
		bitarray_clear(&bs->slots_corrupt, blob->slot);
		bitarray_clear(&bs->slots_hidden, blob->slot);
		bs->slot_inc[blob->slot] = 0;
		bs->slot_parent[blob->slot] = 0;
		blob->state = BLOB_DELETED;
		if (bs->report.corrupt_blobs > 0)
			bs->report.corrupt_blobs--;
	} else {
		blob->state = BLOB_CLOSED;
	}
	blob_free_md(blob);
	slot_read_done(sr, err);
}

/*
 * A corrupt blob's tree cannot be read, so only its slot is reclaimed: a
 * tombstone newer than anything in the slot, written to the page that does
 * not hold the newest valid root (D3, D11).
 */
static void delete_corrupt_slot_cpl(void *cb_arg, int err)
{
	struct slot_read *sr = cb_arg;
	struct bs_blob *blob = sr->blob;

	if (err != 0 || (err = blob_map_init(&blob->map, 0)) != 0) {
		blob->state = BLOB_CLOSED;
		slot_read_done(sr, err);
		return;
	}
	blob->root_page = slot_newest_page(sr->bs, blob->slot, sr->pages);
	blob_commit(blob, true, delete_corrupt_cpl, sr);
}

/* ---------------------------------------------------------- resize */

/* Queue @c for release after the next durable commit (D5). */
int blob_defer_free(struct bs_blob *blob, uint32_t c)
{
	if (blob->npending_free == blob->pending_cap) {
		uint64_t cap = blob->pending_cap ? blob->pending_cap * 2 : 64;
		uint32_t *v = realloc(blob->pending_free, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		blob->pending_free = v;
		blob->pending_cap = cap;
	}
	blob->pending_free[blob->npending_free++] = c;
	return 0;
}

static int resize_shrink(struct bs_blob *blob, uint64_t n)
{
	for (uint64_t i = n; i < blob->map.num_clusters; i++) {
		uint32_t c = blob_map_get(&blob->map, i);

		if (c == 0)
			continue;
		if (blob_defer_free(blob, c) != 0)
			return -ENOMEM;
		blob_map_set(&blob->map, i, 0);
	}
	return blob_map_resize(&blob->map, n);
}

static void resize_zero_cpl(void *cb_arg, int err)
{
	struct blob_op *op = cb_arg;

	if (err != 0) {
		store_latch_error(op->blob->bs, err, "zeroing clusters for resize");
		err = -EIO;
	}
	if (err == 0)
		err = op->err;
	if (err != 0 && op->err == -ENOSPC) {
		/* Undo: release what was claimed beyond the old size. */
		for (uint64_t i = op->new_size; i < op->blob->map.num_clusters; i++) {
			uint32_t c = blob_map_get(&op->blob->map, i);

			if (c != 0) {
				cluster_release(op->blob->bs, c, false);
				blob_map_set(&op->blob->map, i, 0);
			}
		}
		blob_map_resize(&op->blob->map, op->new_size);
	}
	blob_thaw(op->blob);
	op->cb_fn(op->cb_arg, err);
	free(op);
}

/* IO on the blob is frozen and drained: change the map. */
static void resize_frozen(void *ctx)
{
	struct blob_op *op = ctx;
	struct bs_blob *blob = op->blob;
	uint64_t old = blob->map.num_clusters, n = op->new_size;
	struct md_batch *b;
	int rc;

	blob->md_dirty = true;
	if (n <= old) {
		resize_zero_cpl(op, resize_shrink(blob, n));
		return;
	}
	op->new_size = old;
	rc = blob_map_resize(&blob->map, n);
	if (rc == 0)
		rc = blob_alloc_dirty_resize(blob);
	b = rc == 0 ? md_batch_new(blob->bs, resize_zero_cpl, op) : NULL;
	if (b == NULL) {
		op->err = rc ? rc : -ENOMEM;
		resize_zero_cpl(op, 0);
		return;
	}
	if (!blob->thin)
		op->err = blob_alloc_range(blob, old, n, b);
	if (op->err == -ENOSPC)
		LOG_ERR("resize: blob 0x%" PRIx64 ": out of clusters", blob->id);
	md_batch_close(b);
}

void bs_blob_resize(struct bs_blob *blob, uint64_t num_clusters, bs_cpl_fn cb_fn, void *cb_arg)
{
	int rc = blob_call_check(blob, "resize", true);
	struct blob_op *op;

	if (rc == 0 && (blob->data_ro || blob->md_ro))
		rc = -EPERM;
	if (rc == 0 && (blob_map_depth_for(num_clusters) < 0 ||
			num_clusters > store_max_blob_clusters(blob->bs))) {
		LOG_ERR("resize: blob 0x%" PRIx64 ": %" PRIu64 " clusters is more than a blob may have",
			blob->id, num_clusters);
		rc = -EINVAL;
	}
	if (rc == 0 && (blob->syncing || atomic_load(&blob->frozen))) {
		/* A commit in flight holds a plan built for the current size. */
		LOG_ERR("resize: blob 0x%" PRIx64 ": a sync or resize is in progress", blob->id);
		rc = -EBUSY;
	}
	if (rc != 0 || (op = blob_op_new(blob, cb_fn, cb_arg)) == NULL) {
		if (rc != 0)
			store_defer_cpl(cb_fn, cb_arg, rc);
		return;
	}
	op->new_size = num_clusters;
	rc = blob_freeze_run(blob, resize_frozen, op); /* drain IO on every thread */
	if (rc != 0) {
		free(op);
		store_defer_cpl(cb_fn, cb_arg, rc);
	}
}

int bs_blob_set_read_only(struct bs_blob *blob)
{
	int rc = blob_call_check(blob, "set_read_only", false);

	if (rc != 0)
		return rc;
	if (blob->md_ro)
		return -EPERM;
	blob->data_ro_flags |= BLOB_DATA_RO_READ_ONLY;
	blob->data_ro = true;
	blob->md_dirty = true;
	return 0;
}

/* ---------------------------------------------------------- xattrs */

int bs_blob_set_xattr(struct bs_blob *blob, const char *name, const void *value,
		      uint32_t value_len)
{
	int rc = blob_call_check(blob, "set_xattr", false);

	if (rc == 0 && blob->md_ro)
		rc = -EPERM;
	if (rc == 0)
		rc = xattr_set_put(&blob->xattrs, name, value, value_len, 0);
	if (rc == 0)
		blob->md_dirty = true;
	return rc;
}

int bs_blob_get_xattr(struct bs_blob *blob, const char *name, const void **value,
		      uint32_t *value_len)
{
	if (blob == NULL || name == NULL || value == NULL || value_len == NULL)
		return -EINVAL;
	if (blob->state != BLOB_OPEN)
		return -EBADF;
	return xattr_set_get(&blob->xattrs, name, 0, value, value_len);
}

int bs_blob_remove_xattr(struct bs_blob *blob, const char *name)
{
	int rc = blob_call_check(blob, "remove_xattr", false);

	if (rc == 0 && name == NULL)
		rc = -EINVAL;
	if (rc == 0 && blob->md_ro)
		rc = -EPERM;
	if (rc == 0)
		rc = xattr_set_remove(&blob->xattrs, name, 0);
	if (rc == 0)
		blob->md_dirty = true;
	return rc;
}

uint32_t bs_blob_get_xattr_count(struct bs_blob *blob)
{
	return blob && blob->state == BLOB_OPEN ? xattr_set_count(&blob->xattrs, 0) : 0;
}

const char *bs_blob_get_xattr_name(struct bs_blob *blob, uint32_t i)
{
	return blob && blob->state == BLOB_OPEN ? xattr_set_name(&blob->xattrs, 0, i) : NULL;
}

/* ---------------------------------------------------------- queries */

bs_blob_id bs_blob_get_id(const struct bs_blob *blob)
{
	return blob->id;
}

uint64_t bs_blob_get_num_clusters(const struct bs_blob *blob)
{
	return blob->map.num_clusters;
}

uint64_t bs_blob_get_num_io_units(const struct bs_blob *blob)
{
	return blob->map.num_clusters * blob->bs->blocks_per_cluster;
}

uint64_t bs_blob_get_num_allocated_clusters(const struct bs_blob *blob)
{
	return blob_map_count_allocated(&blob->map);
}

bool bs_blob_is_thin(const struct bs_blob *blob)
{
	return blob->thin;
}

bool bs_blob_is_read_only(const struct bs_blob *blob)
{
	return blob->data_ro;
}

/* Shared seek: first io unit at or after @offset whose cluster is (un)allocated. */
static uint64_t blob_seek(const struct bs_blob *blob, uint64_t offset, bool allocated)
{
	uint64_t per = blob->bs->blocks_per_cluster;

	for (uint64_t i = offset / per; i < blob->map.num_clusters; i++) {
		if ((blob_map_get(&blob->map, i) != 0) == allocated)
			return i == offset / per ? offset : i * per;
	}
	return UINT64_MAX;
}

uint64_t bs_blob_next_allocated_io_unit(const struct bs_blob *blob, uint64_t offset)
{
	return blob_seek(blob, offset, true);
}

uint64_t bs_blob_next_unallocated_io_unit(const struct bs_blob *blob, uint64_t offset)
{
	return blob_seek(blob, offset, false);
}

/* ---------------------------------------------------------- iteration */

static bs_blob_id iter_from(struct bs_store *bs, const struct bitarray *set, uint64_t slot)
{
	for (;;) {
		uint64_t s = bitarray_find_first_set(set, slot);
		struct bs_blob *b;

		if (s == BITARRAY_NONE)
			return BS_BLOB_ID_INVALID;
		if (set == &bs->slots_used && (bitarray_get(&bs->slots_corrupt, s) ||
						bitarray_get(&bs->slots_hidden, s))) {
			slot = s + 1;
			continue;
		}
		(void)b;
		return BLOB_ID(bs->slot_inc[s], s);
	}
}

bs_blob_id bs_iter_first(struct bs_store *bs)
{
	return iter_from(bs, &bs->slots_used, 0);
}

bs_blob_id bs_iter_next(struct bs_store *bs, bs_blob_id prev)
{
	return iter_from(bs, &bs->slots_used, (uint64_t)BLOB_ID_SLOT(prev) + 1);
}

bs_blob_id bs_iter_corrupt(struct bs_store *bs, bs_blob_id prev)
{
	return iter_from(bs, &bs->slots_corrupt,
			 prev == BS_BLOB_ID_INVALID ? 0 : (uint64_t)BLOB_ID_SLOT(prev) + 1);
}

/* ---------------------------------------------------------- super blob */

struct super_op {
	struct bs_store *bs;
	bs_blob_id old;
	bs_cpl_fn cb_fn;
	void *cb_arg;
};

static void set_super_cpl(void *cb_arg, int err)
{
	struct super_op *op = cb_arg;

	if (err != 0)
		op->bs->super_blob = op->old;
	op->cb_fn(op->cb_arg, err);
	free(op);
}

static void set_super_dirty_cpl(void *cb_arg, int err)
{
	struct super_op *op = cb_arg;

	if (err != 0) {
		set_super_cpl(op, err);
		return;
	}
	super_write(op->bs, false, 0, set_super_cpl, op);
}

void bs_set_super(struct bs_store *bs, bs_blob_id id, bs_cpl_fn cb_fn, void *cb_arg)
{
	int rc = md_call_check(bs, "set_super", true);
	struct super_op *op;

	if (rc == 0 && id != BS_BLOB_ID_INVALID &&
	    (!slot_valid(bs, id) || !bitarray_get(&bs->slots_used, BLOB_ID_SLOT(id)) ||
	     bs->slot_inc[BLOB_ID_SLOT(id)] != BLOB_ID_INCARNATION(id)))
		rc = -ENOENT;
	if (rc != 0 || (op = calloc(1, sizeof(*op))) == NULL) {
		store_defer_cpl(cb_fn, cb_arg, rc ? rc : -ENOMEM);
		return;
	}
	op->bs = bs;
	op->old = bs->super_blob;
	op->cb_fn = cb_fn;
	op->cb_arg = cb_arg;
	bs->super_blob = id;
	store_mark_dirty(bs, set_super_dirty_cpl, op); /* D7 then D6 */
}

int bs_get_super(struct bs_store *bs, bs_blob_id *id)
{
	if (bs == NULL || id == NULL)
		return -EINVAL;
	if (bs->super_blob == BS_BLOB_ID_INVALID)
		return -ENOENT;
	*id = bs->super_blob;
	return 0;
}

/* ---------------------------------------------------------- slot reservation */

struct reserve_op {
	struct bs_blob *blob;
	struct bs_blob **out;
	struct md_root *pages;
	bs_cpl_fn cb_fn;
	void *cb_arg;
};

static void reserve_read_cpl(void *cb_arg, int err)
{
	struct reserve_op *r = cb_arg;
	struct bs_blob *blob = r->blob;

	if (err == 0) {
		blob->root_page = slot_newest_page(blob->bs, blob->slot, r->pages);
		*r->out = blob;
	} else {
		blob_unreserve(blob);
	}
	md_free_pages(r->pages);
	r->cb_fn(r->cb_arg, err);
	free(r);
}

/*
 * Reserve a free slot and a fresh id for a new blob that another operation
 * (a snapshot) fills in and commits: *out gets a CLOSED handle with an empty
 * map whose root page target is set (D3). Errors: -ENOSPC, -ENOMEM, -EIO.
 */
void blob_reserve(struct bs_store *bs, struct bs_blob **out, bs_cpl_fn cb_fn, void *cb_arg)
{
	uint64_t slot = bitarray_find_first_clear(&bs->slots_used, 0);
	struct reserve_op *r;
	struct md_batch *b;

	if (slot == BITARRAY_NONE) {
		LOG_ERR("snapshot: all %" PRIu64 " blob slots are in use", bs->max_blobs);
		store_defer_cpl(cb_fn, cb_arg, -ENOSPC);
		return;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL || (r->pages = md_alloc_pages(2)) == NULL ||
	    (r->blob = blob_alloc(bs, BLOB_ID((uint32_t)bs->id_next, slot))) == NULL) {
		if (r != NULL)
			md_free_pages(r->pages);
		free(r);
		store_defer_cpl(cb_fn, cb_arg, -ENOMEM);
		return;
	}
	if (++bs->id_next > UINT32_MAX)
		bs->id_next = 1;
	r->out = out;
	r->cb_fn = cb_fn;
	r->cb_arg = cb_arg;
	bitarray_set(&bs->slots_used, slot);
	TAILQ_INSERT_TAIL(&bs->blobs, r->blob, link);
	b = md_batch_new(bs, reserve_read_cpl, r);
	if (b == NULL) {
		store_defer_cpl(reserve_read_cpl, r, -ENOMEM);
		return;
	}
	md_batch_read(b, r->pages, bs->root_start + 2 * slot, 2);
	md_batch_close(b);
}

/* Give back a reserved slot whose blob was never committed. */
void blob_unreserve(struct bs_blob *blob)
{
	struct bs_store *bs = blob->bs;

	bitarray_clear(&bs->slots_used, blob->slot);
	TAILQ_REMOVE(&bs->blobs, blob, link);
	blob_destroy(blob);
}

int blob_count_clones(const struct bs_store *bs, bs_blob_id id, bs_blob_id *one)
{
	int n = 0;

	for (uint64_t s = bitarray_find_first_set(&bs->slots_used, 0); s != BITARRAY_NONE;
	     s = bitarray_find_first_set(&bs->slots_used, s + 1)) {
		if (bs->slot_parent[s] == id && !bitarray_get(&bs->slots_corrupt, s)) {
			if (one != NULL)
				*one = BLOB_ID(bs->slot_inc[s], s);
			n++;
		}
	}
	return n;
}
