/*
 * Snapshots and clones (docs/snapshots.md): snapshot, clone, inflate,
 * decouple, set parent, relation queries.
 *
 * Every operation that changes a blob's cluster map first freezes the
 * blob's IO on every thread (blob_freeze_run) so no data-path allocation
 * races the change, and thaws it at the end. Snapshot changes two blobs and
 * commits them as one group (D13).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "blob/store_int.h"
#include "util/assert_int.h"
#include "util/log_int.h"

/* Context of one snapshot-family operation. */
struct snap_op {
	struct bs_store *bs;
	struct bs_blob *blob;		/* the blob operated on (open, internal ref) */
	struct bs_blob *snap;		/* snapshot: the new blob */
	struct bs_blob *other;		/* set parent: the new parent */
	bs_blob_id arg_id;
	const struct bs_xattr *xattrs;
	uint32_t xattr_count;
	bs_blob_id *id_out;
	uint32_t *saved;		/* snapshot: the blob's entries, for undo */
	uint32_t *src, *dst;		/* inflate/decouple: copy list */
	uint64_t *idx;
	bool *zeroed;
	bool *from_esnap;		/* inflate: copy entry k from the external device */
	bool *skip;			/* inflate: entries the blob-level copy leaves alone */
	uint64_t nesnap;
	bool esnap_moved;		/* merge: the clone took the snapshot's esnap id */
	uint64_t ncopy;
	uint64_t old_parent;
	uint64_t old_invalid;
	struct bs_blob *old_handle;	/* re-parent: the old parent, kept until durable */
	void *old_esnap_id;		/* re-parent: the dropped esnap id, for undo */
	uint32_t old_esnap_len;
	bool frozen;
	int err;
	bs_cpl_fn cb_fn;
	void *cb_arg;
};

static int snap_check(struct bs_store *bs, const char *what)
{
	if (bs == NULL)
		return -EINVAL;
	if (!on_md_thread(bs)) {
		LOG_ERR("%s: must be called on the metadata thread", what);
		return -EPERM;
	}
	if (bs->error != 0)
		return -EIO;
	return bs->read_only ? -EROFS : 0;
}

static struct snap_op *snap_op_new(struct bs_store *bs, bs_cpl_fn cb_fn, void *cb_arg)
{
	struct snap_op *op = calloc(1, sizeof(*op));

	if (op == NULL) {
		store_defer_cpl(cb_fn, cb_arg, -ENOMEM);
		return NULL;
	}
	op->bs = bs;
	op->cb_fn = cb_fn;
	op->cb_arg = cb_arg;
	return op;
}

/* Thaw, drop the internal references, report. */
static void snap_finish(struct snap_op *op, int err)
{
	if (op->frozen)
		blob_thaw(op->blob);
	if (op->blob != NULL)
		blob_put(op->blob);
	if (op->other != NULL)
		blob_put(op->other);
	free(op->saved);
	free(op->src);
	free(op->dst);
	free(op->idx);
	free(op->zeroed);
	free(op->from_esnap);
	free(op->skip);
	free(op->old_esnap_id);
	op->cb_fn(op->cb_arg, err);
	free(op);
}

static void snap_finish_cpl(void *cb_arg, int err)
{
	snap_finish(cb_arg, err);
}

/* Open @id internally, then run @next with the handle in op->blob. */
static void snap_open(struct snap_op *op, bs_blob_id id, bs_cpl_fn next)
{
	if (id == BS_BLOB_ID_INVALID || BLOB_ID_SLOT(id) >= op->bs->max_blobs ||
	    bitarray_get(&op->bs->slots_hidden, BLOB_ID_SLOT(id))) {
		store_defer_cpl(snap_finish_cpl, op, -ENOENT);
		return;
	}
	blob_open_internal(op->bs, id, &op->blob, next, op);
}

/* ---------------------------------------------------------- snapshot */

/* Undo the in-memory swap after a failed commit. */
static void snapshot_undo(struct snap_op *op)
{
	struct bs_blob *x = op->blob;
	const void *id;
	uint32_t len;

	for (uint64_t i = 0; i < x->map.num_clusters; i++)
		if (op->saved[i] != 0)
			blob_map_set(&x->map, i, op->saved[i]);
	x->parent_id = op->old_parent;
	if ((op->old_invalid & BLOB_INVALID_ESNAP) && esnap_id_get(x, &id, &len) != 0 &&
	    esnap_move_id(op->snap, x) != 0)
		LOG_ERR("snapshot: blob 0x%" PRIx64 ": out of memory restoring its esnap id", x->id);
	x->invalid_flags = op->old_invalid;
	x->thin = (x->invalid_flags & BLOB_INVALID_THIN) != 0;
	blob_unreserve(op->snap);
	op->snap = NULL;
}

static void snapshot_commit_cpl(void *cb_arg, int err)
{
	struct snap_op *op = cb_arg;
	struct bs_store *bs = op->bs;
	struct bs_blob *x = op->blob, *s = op->snap;

	if (err != 0) {
		snapshot_undo(op);
		snap_finish(op, err);
		return;
	}
	/* The snapshot stays loaded as the blob's parent; it takes over the old parent ref. */
	s->state = BLOB_OPEN;
	s->ref = 1;
	bs->open_blobs++;
	s->parent = x->parent;
	x->parent = s;
	esnap_move_dev(x, s); /* the snapshot is the esnap clone now */
	bs->slot_inc[s->slot] = BLOB_ID_INCARNATION(s->id);
	bs->slot_parent[s->slot] = s->parent_id;
	bs->slot_parent[x->slot] = s->id;
	bs->report.blobs++;
	*op->id_out = s->id;
	snap_finish(op, 0);
}

/* Give the snapshot the blob's map and make the blob its thin clone. */
static int snapshot_swap(struct snap_op *op)
{
	struct bs_blob *x = op->blob, *s = op->snap;
	uint64_t n = x->map.num_clusters;
	int rc = blob_map_init(&s->map, n);

	if (rc == 0)
		rc = blob_alloc_dirty_resize(s);
	op->saved = calloc(n ? n : 1, sizeof(uint32_t));
	if (rc != 0 || op->saved == NULL)
		return rc ? rc : -ENOMEM;
	for (uint32_t i = 0; i < op->xattr_count; i++) {
		rc = xattr_set_put(&s->xattrs, op->xattrs[i].name, op->xattrs[i].value,
				   op->xattrs[i].value_len, 0);
		if (rc != 0)
			return rc;
	}
	for (uint64_t i = 0; i < n; i++) {
		op->saved[i] = blob_map_get(&x->map, i);
		if (op->saved[i] != 0) {
			blob_map_set(&s->map, i, op->saved[i]);
			blob_map_set(&x->map, i, 0);
		}
	}
	s->thin = x->thin;
	s->invalid_flags = x->invalid_flags;
	s->data_ro_flags = BLOB_DATA_RO_READ_ONLY;
	s->data_ro = true;
	s->parent_id = x->parent_id;
	s->md_dirty = true;
	atomic_store(&s->allocs, 1); /* D9: the blob's completed writes become durable first */
	op->old_parent = x->parent_id;
	op->old_invalid = x->invalid_flags;
	x->parent_id = s->id;
	x->invalid_flags |= BLOB_INVALID_THIN;
	x->thin = true;
	x->md_dirty = true;
	/* An external parent passes to the snapshot, with its id (one group commit). */
	return (op->old_invalid & BLOB_INVALID_ESNAP) ? esnap_move_id(x, s) : 0;
}

static void snapshot_reserved_cpl(void *cb_arg, int err)
{
	struct snap_op *op = cb_arg;
	struct bs_blob *members[2];
	const bool tomb[2] = { false, false };

	if (err == 0)
		err = snapshot_swap(op);
	if (err != 0) {
		if (op->snap != NULL && op->saved != NULL)
			snapshot_undo(op);
		else if (op->snap != NULL)
			blob_unreserve(op->snap);
		op->snap = NULL;
		snap_finish(op, err);
		return;
	}
	members[0] = op->snap;
	members[1] = op->blob;
	blob_commit_group(members, tomb, 2, snapshot_commit_cpl, op); /* D13 */
}

static void snapshot_frozen(void *ctx)
{
	struct snap_op *op = ctx;

	op->frozen = true;
	blob_reserve(op->bs, &op->snap, snapshot_reserved_cpl, op);
}

static void snapshot_open_cpl(void *cb_arg, int err)
{
	struct snap_op *op = cb_arg;
	struct bs_blob *x = op->blob;

	if (err == 0 && x->data_ro) {
		LOG_ERR("snapshot: blob 0x%" PRIx64 " is read-only: clone it instead", x->id);
		err = -EINVAL;
	}
	if (err == 0 && x->md_ro)
		err = -EPERM;
	if (err == 0 && bs_blob_is_degraded(x)) {
		LOG_ERR("snapshot: blob 0x%" PRIx64 " is degraded (no external snapshot device)",
			x->id);
		err = -ENXIO;
	}
	if (err == 0 && (x->syncing || atomic_load(&x->frozen)))
		err = -EBUSY;
	if (err == 0)
		err = blob_freeze_run(x, snapshot_frozen, op);
	if (err != 0)
		snap_finish(op, err); /* a failed open left op->blob NULL */
}

/* Shared entry of snapshot and clone: check, then open @id and go on at @next. */
static void snap_start(struct bs_store *bs, const char *what, bs_blob_id id,
		       const struct bs_xattr *xattrs, uint32_t xattr_count, bs_blob_id *id_out,
		       bs_cpl_fn next, bs_cpl_fn cb_fn, void *cb_arg)
{
	int rc = snap_check(bs, what);
	struct snap_op *op;

	if (rc == 0 && (id_out == NULL || (xattr_count > 0 && xattrs == NULL)))
		rc = -EINVAL;
	if (rc != 0) {
		store_defer_cpl(cb_fn, cb_arg, rc);
		return;
	}
	op = snap_op_new(bs, cb_fn, cb_arg);
	if (op == NULL)
		return;
	op->xattrs = xattrs;
	op->xattr_count = xattr_count;
	op->id_out = id_out;
	snap_open(op, id, next);
}

void bs_blob_snapshot(struct bs_store *bs, bs_blob_id id, const struct bs_xattr *xattrs,
		      uint32_t xattr_count, bs_blob_id *snap_out, bs_cpl_fn cb_fn, void *cb_arg)
{
	snap_start(bs, "snapshot", id, xattrs, xattr_count, snap_out, snapshot_open_cpl,
		   cb_fn, cb_arg);
}

/* ---------------------------------------------------------- clone */

static void clone_open_cpl(void *cb_arg, int err)
{
	struct snap_op *op = cb_arg;
	struct bs_blob *p = op->blob;
	struct bs_blob_opts o;

	if (err == 0 && !p->data_ro) {
		LOG_ERR("clone: blob 0x%" PRIx64 " is writable: snapshot it first", p->id);
		err = -EINVAL;
	}
	if (err == 0 && bs_blob_is_degraded(p)) {
		LOG_ERR("clone: blob 0x%" PRIx64 " is degraded (no external snapshot device)", p->id);
		err = -ENXIO;
	}
	if (err != 0) {
		snap_finish(op, err);
		return;
	}
	bs_blob_opts_init(&o, sizeof(o));
	o.num_clusters = p->map.num_clusters;
	o.thin_provision = true;
	o.xattrs = op->xattrs;
	o.xattr_count = op->xattr_count;
	blob_create(op->bs, &o, p->id, op->id_out, snap_finish_cpl, op);
}

void bs_blob_clone(struct bs_store *bs, bs_blob_id parent, const struct bs_xattr *xattrs,
		   uint32_t xattr_count, bs_blob_id *clone_out, bs_cpl_fn cb_fn, void *cb_arg)
{
	snap_start(bs, "clone", parent, xattrs, xattr_count, clone_out, clone_open_cpl,
		   cb_fn, cb_arg);
}

/* ---------------------------------------------------------- inflate, decouple */

/*
 * Collect the clusters to give @x: every unallocated one (inflate), or only
 * those its parent owns (decouple). Claims a destination for each.
 */
static int copy_plan(struct snap_op *op, bool parent_only)
{
	struct bs_blob *x = op->blob;
	uint64_t n = x->map.num_clusters;

	op->src = calloc(n ? n : 1, sizeof(uint32_t));
	op->dst = calloc(n ? n : 1, sizeof(uint32_t));
	op->idx = calloc(n ? n : 1, sizeof(uint64_t));
	op->zeroed = calloc(n ? n : 1, sizeof(bool));
	op->from_esnap = calloc(n ? n : 1, sizeof(bool));
	if (op->src == NULL || op->dst == NULL || op->idx == NULL || op->zeroed == NULL ||
	    op->from_esnap == NULL)
		return -ENOMEM;
	for (uint64_t i = 0; i < n; i++) {
		struct bs_blob *p = x->parent;
		uint32_t src;

		if (blob_map_get(&x->map, i) != 0)
			continue;
		src = parent_only ? (p && i < p->map.num_clusters ? blob_map_get(&p->map, i) : 0)
				  : blob_chain_lookup(x, i);
		if (parent_only && src == 0)
			continue;
		op->dst[op->ncopy] = cluster_claim(op->bs, &op->zeroed[op->ncopy]);
		if (op->dst[op->ncopy] == 0)
			return -ENOSPC;
		op->src[op->ncopy] = src;
		if (src == 0 && !parent_only && blob_chain_esnap(x, i) != NULL) {
			/* Filled from the external device: not zero once written. */
			op->from_esnap[op->ncopy] = true;
			op->zeroed[op->ncopy] = false;
			op->nesnap++;
		}
		op->idx[op->ncopy++] = i;
	}
	return 0;
}

static void copy_plan_undo(struct snap_op *op)
{
	for (uint64_t k = 0; k < op->ncopy; k++)
		cluster_release(op->bs, op->dst[k], op->zeroed[k] && op->src[k] == 0);
	op->ncopy = 0;
}

static void reparent_collapsed_cpl(void *cb_arg, int err)
{
	snap_finish(cb_arg, 0);
}

/* The re-parent commit failed: the blob reads through its old parent again. */
static void reparent_undo(struct snap_op *op)
{
	struct bs_blob *x = op->blob;

	if (x->parent != NULL)
		blob_put(x->parent);
	x->parent = op->old_handle;
	x->parent_id = op->old_parent;
	op->old_handle = NULL;
	if (op->old_esnap_id != NULL && esnap_mark(x, op->old_esnap_id, op->old_esnap_len) != 0)
		LOG_ERR("blob 0x%" PRIx64 ": cannot restore its esnap id in memory", x->id);
}

static void reparent_commit_cpl(void *cb_arg, int err)
{
	struct snap_op *op = cb_arg;

	if (err != 0) {
		reparent_undo(op);
		snap_finish(op, err);
		return;
	}
	if (op->old_handle != NULL)
		blob_put(op->old_handle);
	op->old_handle = NULL;
	op->bs->slot_parent[op->blob->slot] = op->blob->parent_id;
	if (!(op->blob->invalid_flags & BLOB_INVALID_ESNAP))
		esnap_detach(op->blob); /* D18: not an esnap clone now it is durable: close */
	/* The old parent may be a hidden snapshot that just lost a clone. */
	blob_collapse(op->bs, op->old_parent, reparent_collapsed_cpl, op);
}

/* Keep a copy of @x's esnap id (if any) so a failed re-parent can restore it. */
static int reparent_save_esnap(struct snap_op *op, const struct bs_blob *x)
{
	const void *id;
	uint32_t len;

	if (!(x->invalid_flags & BLOB_INVALID_ESNAP) || esnap_id_get(x, &id, &len) != 0)
		return 0;
	op->old_esnap_id = malloc(len);
	if (op->old_esnap_id == NULL)
		return -ENOMEM;
	memcpy(op->old_esnap_id, id, len);
	op->old_esnap_len = len;
	return 0;
}

/*
 * Point @x (frozen) at a new parent handle @np (or none) and commit it.
 * The old parent's ref is dropped only once the change is durable; if the
 * commit fails, the old arrangement is put back in memory too.
 */
static void reparent_commit(struct snap_op *op, struct bs_blob *np, uint64_t parent_id)
{
	struct bs_blob *x = op->blob;
	int rc = reparent_save_esnap(op, x);

	if (rc != 0) {
		snap_finish(op, rc);
		return;
	}
	op->old_parent = x->parent_id;
	op->old_handle = x->parent;
	if (np != NULL)
		np->ref++;
	x->parent = np;
	x->parent_id = parent_id;
	esnap_unmark(x); /* inflate, set parent: an external parent goes too */
	x->md_dirty = true;
	blob_commit(x, false, reparent_commit_cpl, op);
}

/* Copies done: adopt the clusters, then re-parent. */
static void inflate_copied_cpl(void *cb_arg, int err)
{
	struct snap_op *op = cb_arg;
	struct bs_blob *x = op->blob;
	struct bs_blob *gp = x->parent ? x->parent->parent : NULL;

	if (err != 0) {
		store_latch_error(op->bs, err, "copying clusters");
		copy_plan_undo(op);
		snap_finish(op, -EIO);
		return;
	}
	for (uint64_t k = 0; k < op->ncopy; k++)
		blob_map_set(&x->map, op->idx[k], op->dst[k]);
	if (op->ncopy > 0)
		atomic_fetch_add(&x->allocs, 1); /* D9: copies durable before the map */
	if (op->arg_id == 1) {
		/* Inflate: every cluster is its own now. */
		x->invalid_flags &= ~BLOB_INVALID_THIN;
		x->thin = false;
		reparent_commit(op, NULL, 0);
		return;
	}
	reparent_commit(op, gp, x->parent ? x->parent->parent_id : 0);
}

/* Clusters from blobs are copied: now those from the external device. */
static void inflate_blobs_copied_cpl(void *cb_arg, int err)
{
	struct snap_op *op = cb_arg;

	if (err != 0) {
		inflate_copied_cpl(op, err);
		return;
	}
	esnap_copy_clusters(op->bs, blob_chain_bottom_esnap(op->blob), op->idx, op->dst,
			    op->from_esnap, op->ncopy, inflate_copied_cpl, op);
}

static void inflate_frozen(void *ctx)
{
	struct snap_op *op = ctx;
	int rc;

	op->frozen = true;
	rc = copy_plan(op, op->arg_id != 1);
	if (rc != 0) {
		if (rc == -ENOSPC)
			LOG_ERR("%s: blob 0x%" PRIx64 ": out of clusters",
				op->arg_id == 1 ? "inflate" : "decouple", op->blob->id);
		copy_plan_undo(op);
		snap_finish(op, rc);
		return;
	}
	if (op->nesnap == 0) {
		md_copy_clusters(op->bs, op->src, op->dst, op->zeroed, op->ncopy,
				 inflate_copied_cpl, op);
		return;
	}
	op->skip = calloc(op->ncopy ? op->ncopy : 1, sizeof(bool));
	if (op->skip == NULL) {
		copy_plan_undo(op);
		snap_finish(op, -ENOMEM);
		return;
	}
	for (uint64_t k = 0; k < op->ncopy; k++)
		op->skip[k] = op->zeroed[k] || op->from_esnap[k];
	md_copy_clusters(op->bs, op->src, op->dst, op->skip, op->ncopy, inflate_blobs_copied_cpl,
			 op);
}

static void inflate_open_cpl(void *cb_arg, int err)
{
	struct snap_op *op = cb_arg;
	struct bs_blob *x = op->blob;

	if (err == 0 && op->arg_id != 1 && x->parent_id == 0) {
		LOG_ERR("decouple: blob 0x%" PRIx64 " has no blob parent%s", x->id,
			(x->invalid_flags & BLOB_INVALID_ESNAP) ? " (an esnap clone: inflate it)" : "");
		err = -EINVAL;
	}
	if (err == 0 && op->arg_id != 1 && x->parent != NULL &&
	    (x->parent->invalid_flags & BLOB_INVALID_ESNAP)) {
		LOG_ERR("decouple: blob 0x%" PRIx64 ": its parent is an esnap clone: inflate it",
			x->id);
		err = -EINVAL;
	}
	if (err == 0 && op->arg_id == 1 && bs_blob_is_degraded(x)) {
		LOG_ERR("inflate: blob 0x%" PRIx64 " is degraded (no external snapshot device)",
			x->id);
		err = -ENXIO;
	}
	if (err == 0 && (x->data_ro || x->md_ro))
		err = -EPERM;
	if (err == 0 && (x->syncing || atomic_load(&x->frozen)))
		err = -EBUSY;
	if (err == 0)
		err = blob_freeze_run(x, inflate_frozen, op);
	if (err != 0)
		snap_finish(op, err);
}

static void inflate_start(struct bs_store *bs, bs_blob_id id, bool inflate, bs_cpl_fn cb_fn,
			  void *cb_arg)
{
	int rc = snap_check(bs, inflate ? "inflate" : "decouple");
	struct snap_op *op;

	if (rc != 0) {
		store_defer_cpl(cb_fn, cb_arg, rc);
		return;
	}
	op = snap_op_new(bs, cb_fn, cb_arg);
	if (op == NULL)
		return;
	op->arg_id = inflate ? 1 : 2; /* mode */
	snap_open(op, id, inflate_open_cpl);
}

void bs_blob_inflate(struct bs_store *bs, bs_blob_id id, bs_cpl_fn cb_fn, void *cb_arg)
{
	inflate_start(bs, id, true, cb_fn, cb_arg);
}

void bs_blob_decouple_parent(struct bs_store *bs, bs_blob_id id, bs_cpl_fn cb_fn, void *cb_arg)
{
	inflate_start(bs, id, false, cb_fn, cb_arg);
}

/* ---------------------------------------------------------- set parent */

/* True if @ancestor is @id or lies on @id's parent chain (parent table). */
static bool chain_contains(const struct bs_store *bs, bs_blob_id id, bs_blob_id ancestor)
{
	for (uint64_t depth = 0; id != 0 && depth <= bs->max_blobs; depth++) {
		if (id == ancestor)
			return true;
		id = bs->slot_parent[BLOB_ID_SLOT(id)];
	}
	return false;
}

static void set_parent_frozen(void *ctx)
{
	struct snap_op *op = ctx;

	op->frozen = true;
	reparent_commit(op, op->other, op->other->id);
}

static void set_parent_other_cpl(void *cb_arg, int err)
{
	struct snap_op *op = cb_arg;
	struct bs_blob *x = op->blob, *p = op->other;

	if (err == 0 && (!p->data_ro || p->map.num_clusters != x->map.num_clusters ||
			 !x->thin || chain_contains(op->bs, p->id, x->id))) {
		LOG_ERR("set_parent: 0x%" PRIx64 " cannot be the parent of 0x%" PRIx64
			" (it must be read-only, the same size, not a descendant; the blob thin)",
			p->id, x->id);
		err = -EINVAL;
	}
	if (err == 0 && (x->syncing || atomic_load(&x->frozen)))
		err = -EBUSY;
	if (err == 0)
		err = blob_freeze_run(x, set_parent_frozen, op); /* no read races the swap */
	if (err != 0)
		snap_finish(op, err);
}

static void set_parent_open_cpl(void *cb_arg, int err)
{
	struct snap_op *op = cb_arg;

	if (err == 0 && op->blob->md_ro)
		err = -EPERM;
	if (err != 0) {
		snap_finish(op, err);
		return;
	}
	blob_open_internal(op->bs, op->arg_id, &op->other, set_parent_other_cpl, op);
}

void bs_blob_set_parent(struct bs_store *bs, bs_blob_id id, bs_blob_id parent,
			bs_cpl_fn cb_fn, void *cb_arg)
{
	int rc = snap_check(bs, "set_parent");
	struct snap_op *op;

	if (rc == 0 && (id == parent || parent == BS_BLOB_ID_INVALID))
		rc = -EINVAL;
	if (rc != 0) {
		store_defer_cpl(cb_fn, cb_arg, rc);
		return;
	}
	op = snap_op_new(bs, cb_fn, cb_arg);
	if (op == NULL)
		return;
	op->arg_id = parent;
	snap_open(op, id, set_parent_open_cpl);
}

/* ---------------------------------------------------------- queries */

static bool id_live(const struct bs_store *bs, bs_blob_id id)
{
	uint32_t slot = BLOB_ID_SLOT(id);

	return id != 0 && slot < bs->max_blobs && bitarray_get(&bs->slots_used, slot) &&
	       bs->slot_inc[slot] == BLOB_ID_INCARNATION(id);
}

int bs_blob_get_parent(struct bs_store *bs, bs_blob_id id, bs_blob_id *parent)
{
	if (bs == NULL || parent == NULL)
		return -EINVAL;
	if (!id_live(bs, id))
		return -ENOENT;
	*parent = bs->slot_parent[BLOB_ID_SLOT(id)];
	return 0;
}

int bs_blob_get_clones(struct bs_store *bs, bs_blob_id id, bs_blob_id *ids, size_t *count)
{
	size_t cap, n = 0;

	if (bs == NULL || count == NULL)
		return -EINVAL;
	if (!id_live(bs, id))
		return -ENOENT;
	cap = ids ? *count : 0;
	for (uint64_t s = bitarray_find_first_set(&bs->slots_used, 0); s != BITARRAY_NONE;
	     s = bitarray_find_first_set(&bs->slots_used, s + 1)) {
		if (bs->slot_parent[s] != id)
			continue;
		if (n < cap)
			ids[n] = BLOB_ID(bs->slot_inc[s], s);
		n++;
	}
	*count = n;
	return n > cap && ids != NULL ? -ENOBUFS : 0;
}

/* ---------------------------------------------------------- delete with clones */

/* The merge is durable: the snapshot is gone, its leftovers released (D5). */
static void pool_free_cb(void *arg, uint32_t idx)
{
	pool_page_free(arg, idx);
}

static void merge_commit_cpl(void *cb_arg, int err)
{
	struct snap_op *op = cb_arg;
	struct bs_store *bs = op->bs;
	struct bs_blob *c = op->blob, *s = op->snap;

	if (err != 0) {
		for (uint64_t i = 0; i < c->map.num_clusters; i++) {
			if (op->saved[i] != 0) {
				blob_map_set(&s->map, i, op->saved[i]);
				blob_map_set(&c->map, i, 0);
			}
		}
		c->parent_id = op->old_parent;
		if (op->esnap_moved)
			esnap_unmark(c);
		snap_finish(op, err);
		return;
	}
	for (uint64_t i = 0; i < s->map.num_clusters; i++) {
		uint32_t cl = blob_map_get(&s->map, i);

		if (cl != 0)
			cluster_release(bs, cl, false);
	}
	blob_map_for_each_page(&s->map, pool_free_cb, bs);
	c->parent = s->parent; /* the snapshot's ref on its parent moves to the clone */
	s->parent = NULL;
	esnap_move_dev(s, c); /* and so does an external parent */
	s->state = BLOB_DELETED;
	s->ref = 0;
	blob_free_md(s);
	bs->open_blobs--;
	bitarray_clear(&bs->slots_used, s->slot);
	bitarray_clear(&bs->slots_hidden, s->slot);
	bs->slot_inc[s->slot] = 0;
	bs->slot_parent[s->slot] = 0;
	bs->slot_parent[c->slot] = c->parent_id;
	bs->report.blobs--;
	op->snap = NULL;
	snap_finish(op, 0);
}

/* The clone becomes the esnap clone in the snapshot's place (in memory). */
static int merge_take_esnap(struct snap_op *op)
{
	const void *id;
	uint32_t len;
	int rc = esnap_id_get(op->snap, &id, &len);

	rc = rc == 0 ? esnap_mark(op->blob, id, len) : -EILSEQ;
	op->esnap_moved = rc == 0;
	return rc;
}

/* The clone takes every cluster of the snapshot it does not have itself. */
static void merge_frozen(void *ctx)
{
	struct snap_op *op = ctx;
	struct bs_blob *c = op->blob, *s = c->parent;
	struct bs_blob *members[2];
	const bool tomb[2] = { false, true };
	uint64_t n = c->map.num_clusters;

	op->frozen = true;
	op->snap = s;
	op->saved = calloc(n ? n : 1, sizeof(uint32_t));
	if (op->saved == NULL || s == NULL) {
		snap_finish(op, op->saved ? -EINVAL : -ENOMEM);
		return;
	}
	if ((s->invalid_flags & BLOB_INVALID_ESNAP) && (op->err = merge_take_esnap(op)) != 0) {
		snap_finish(op, op->err);
		return;
	}
	for (uint64_t i = 0; i < n && i < s->map.num_clusters; i++) {
		uint32_t cl = blob_map_get(&s->map, i);

		if (cl == 0 || blob_map_get(&c->map, i) != 0)
			continue;
		op->saved[i] = cl;
		blob_map_set(&c->map, i, cl);
		blob_map_set(&s->map, i, 0);
	}
	op->old_parent = c->parent_id;
	c->parent_id = s->parent_id;
	c->md_dirty = true;
	members[0] = c;
	members[1] = s;
	blob_commit_group(members, tomb, 2, merge_commit_cpl, op); /* D13 */
}

static void merge_open_cpl(void *cb_arg, int err)
{
	struct snap_op *op = cb_arg;

	if (err == 0 && (op->blob->syncing || atomic_load(&op->blob->frozen)))
		err = -EBUSY;
	if (err == 0 && (op->blob->parent == NULL || op->blob->parent->id != op->arg_id))
		err = -EILSEQ;
	if (err == 0)
		err = blob_freeze_run(op->blob, merge_frozen, op);
	if (err != 0)
		snap_finish(op, err);
}

/* Delete snapshot @snap whose only clone is @clone: merge it into the clone. */
void blob_merge_delete(struct bs_store *bs, bs_blob_id snap, bs_blob_id clone,
		       bs_cpl_fn cb_fn, void *cb_arg)
{
	struct snap_op *op = snap_op_new(bs, cb_fn, cb_arg);

	if (op == NULL)
		return;
	op->arg_id = snap;
	blob_open_internal(bs, clone, &op->blob, merge_open_cpl, op);
}

static void hide_commit_cpl(void *cb_arg, int err)
{
	struct snap_op *op = cb_arg;

	if (err == 0)
		bitarray_set(&op->bs->slots_hidden, op->blob->slot);
	else
		op->blob->md_ro_flags &= ~BLOB_MD_RO_HIDDEN;
	snap_finish(op, err);
}

static void hide_open_cpl(void *cb_arg, int err)
{
	struct snap_op *op = cb_arg;

	if (err != 0) {
		snap_finish(op, err);
		return;
	}
	op->blob->md_ro_flags |= BLOB_MD_RO_HIDDEN;
	op->blob->md_dirty = true;
	blob_commit(op->blob, false, hide_commit_cpl, op);
}

/* Delete a snapshot with several clones: hide it; it keeps serving them. */
void blob_hide(struct bs_store *bs, bs_blob_id snap, bs_cpl_fn cb_fn, void *cb_arg)
{
	struct snap_op *op = snap_op_new(bs, cb_fn, cb_arg);

	if (op == NULL)
		return;
	blob_open_internal(bs, snap, &op->blob, hide_open_cpl, op);
}
