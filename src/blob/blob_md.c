/*
 * Blob metadata on disk: picking a slot's root, loading a blob's tree, and
 * committing a blob (sync, create, delete).
 *
 * Commit, in order (docs/durability.md):
 *   commit_start      queue behind a running commit of the same blob
 *   commit_dirty_cpl  D7: the super block says dirty
 *   commit_build      render fresh pool pages for changed map nodes and
 *                     xattrs (D2), the root for the slot page not holding the
 *                     durable root (D3)
 *   commit_data_cpl   D9: data and zeroing writes flushed (only if the data
 *                     path allocated since the last commit)
 *   commit_submit     everything written, then ONE flush (D4)
 *   commit_write_cpl  if the commit releases clusters: its root also into the
 *                     slot's other page, then a flush (D16)
 *   commit_confirm_cpl adopt the new tree; release what the old one held (D5)
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "blob/md_page.h"
#include "blob/store_int.h"
#include "util/assert_int.h"
#include "util/log_int.h"

/* ---------------------------------------------------------- root pick */

static void root_expect(const struct bs_store *bs, uint32_t slot, int page, struct md_expect *e)
{
	memset(e, 0, sizeof(*e));
	e->type = MD_TYPE_ROOT;
	e->page_no = bs->root_start + 2ull * slot + (uint64_t)page;
	e->blob_id = MD_ANY_ID;
	e->store_id = bs->store_id;
	e->index = slot;
	e->level = (uint16_t)page;
}

/* True if @r is a valid root page @page of @slot (D1), and the blob id it
 * names lives in that slot (the id sizes nothing, but indexes slot tables). */
bool blob_root_valid(const struct bs_store *bs, uint32_t slot, int page, const struct md_root *r)
{
	struct md_expect e;

	root_expect(bs, slot, page, &e);
	return md_page_check(r, &e, NULL) == 0 && BLOB_ID_SLOT(r->hdr.blob_id) == slot;
}

/*
 * Choose the live root of @slot from its two pages (D3): the valid page with
 * the highest generation. Returns the page index, -ENOENT when the slot holds
 * no blob (never written, an interrupted first create, or the newest page is a
 * tombstone), or -EILSEQ when both pages were written but neither validates. *valid_out gets a bit per
 * valid page.
 */
int blob_root_pick(const struct bs_store *bs, uint32_t slot, const struct md_root pages[2],
		   int *valid_out, bool *tombstone)
{
	int valid = 0, best = -1, written = 0;

	for (int p = 0; p < 2; p++) {
		written += pages[p].hdr.magic == MD_MAGIC;
		if (!blob_root_valid(bs, slot, p, &pages[p]))
			continue;
		valid |= 1 << p;
		if (best < 0 || pages[p].hdr.gen > pages[best].hdr.gen)
			best = p;
	}
	*valid_out = valid;
	*tombstone = false;
	/*
	 * Nothing validates. If only one page was ever written, this is the
	 * first root of a create that did not complete (torn): the slot is
	 * free. An existing blob always keeps one valid root (D3), so two
	 * written pages that both fail mean damage: corrupt.
	 */
	if (best < 0)
		return written == 2 ? -EILSEQ : -ENOENT;
	if (pages[best].hdr.flags & MD_ROOT_F_DELETED) {
		*tombstone = true;
		return -ENOENT;
	}
	return best;
}

/* Sizes and counts of a root that the tree load allocates by. */
static bool root_shape_ok(const struct bs_store *bs, const struct md_root *r)
{
	return r->num_clusters <= store_max_blob_clusters(bs) &&
	       r->map_depth <= MD_MAX_MAP_DEPTH &&
	       blob_map_depth_for(r->num_clusters) == r->map_depth &&
	       r->xattr_npages <= MD_ROOT_XATTR_REFS && r->xattr_len <= MD_XATTR_MAX_STREAM &&
	       (r->xattr_npages != 0 || r->xattr_len <= MD_ROOT_INLINE_XATTR) &&
	       (r->xattr_npages == 0 || r->xattr_len <= r->xattr_npages * MD_PAYLOAD);
}

/*
 * Adopt the fields of a validated root (forward-compatible flags). The
 * shape is checked first: -EOPNOTSUPP (unknown invalid flag) still fills
 * the blob, because check and recovery go on to load its tree to account
 * for its space, and must do so within the same bounds.
 */
int blob_apply_root(struct bs_blob *blob, const struct md_root *r)
{
	if (!root_shape_ok(blob->bs, r)) {
		LOG_ERR("blob 0x%" PRIx64 ": root sizes out of range (%" PRIu64 " clusters, depth %u, "
			"%u xattr pages)", blob->id, r->num_clusters, r->map_depth, r->xattr_npages);
		return -EILSEQ;
	}
	blob->invalid_flags = r->invalid_flags;
	blob->data_ro_flags = r->data_ro_flags;
	blob->md_ro_flags = r->md_ro_flags;
	blob->parent_id = r->parent_id;
	blob->thin = (r->invalid_flags & BLOB_INVALID_THIN) != 0;
	blob->data_ro = r->data_ro_flags != 0;
	blob->md_ro = (r->md_ro_flags & ~BLOB_MD_RO_KNOWN) != 0;
	if (r->data_ro_flags & ~BLOB_DATA_RO_KNOWN)
		LOG_NOTICE("blob 0x%" PRIx64 ": unknown data flags: opened read-only", blob->id);
	if (blob->md_ro)
		LOG_NOTICE("blob 0x%" PRIx64 ": unknown metadata flags: metadata read-only", blob->id);
	blob->xattr_npages = r->xattr_npages;
	memcpy(blob->xattr_refs, r->xattr_refs, sizeof(blob->xattr_refs));
	blob->root_gen = r->hdr.gen;
	if (r->invalid_flags & ~BLOB_INVALID_KNOWN) {
		LOG_ERR("blob 0x%" PRIx64 ": unknown invalid flags 0x%" PRIx64 ": refusing to open",
			blob->id, r->invalid_flags);
		return -EOPNOTSUPP;
	}
	return 0;
}

/* ---------------------------------------------------------- tree load */

struct tree_load {
	struct bs_store *bs;
	struct bs_blob *blob;
	struct md_root root;
	int level;
	uint64_t *nodes;
	uint32_t *idx;
	uint32_t n;
	uint8_t *pages;
	bs_cpl_fn cb_fn;
	void *cb_arg;
};

/*
 * D18: an esnap clone names its device (a valid id in its xattrs) and has no
 * blob parent; a root that says ESNAP otherwise is corrupt, for open, check
 * and recovery alike.
 */
static int tree_check_esnap(const struct bs_blob *blob)
{
	const void *id;
	uint32_t len;

	if (!(blob->invalid_flags & BLOB_INVALID_ESNAP))
		return 0;
	if (esnap_id_get(blob, &id, &len) == 0 && len > 0 && len <= BS_ESNAP_ID_MAX_LEN &&
	    blob->parent_id == 0)
		return 0;
	LOG_ERR("blob 0x%" PRIx64 ": esnap clone without a valid esnap id, or with a blob parent",
		blob->id);
	return -EILSEQ;
}

static void tree_load_done(struct tree_load *tl, int err)
{
	if (err == 0)
		err = tree_check_esnap(tl->blob);
	md_free_pages(tl->pages);
	free(tl->nodes);
	free(tl->idx);
	tl->cb_fn(tl->cb_arg, err);
	free(tl);
}

static struct blob_map_id tree_map_id(const struct tree_load *tl)
{
	return (struct blob_map_id){ tl->blob->id, tl->bs->store_id, tl->bs->pool_start };
}

/* Check every loaded cluster number is a data cluster. */
static int tree_check_clusters(const struct bs_store *bs, const struct bs_blob *blob)
{
	for (uint64_t i = 0; i < blob->map.num_clusters; i++) {
		uint32_t c = blob_map_get(&blob->map, i);

		if (c != 0 && (c < bs->md_clusters || c >= bs->total_clusters)) {
			LOG_ERR("blob 0x%" PRIx64 ": cluster %" PRIu64 " maps outside the data area",
				blob->id, i);
			return -EILSEQ;
		}
	}
	return 0;
}

static void tree_load_level(struct tree_load *tl);

static void tree_level_cpl(void *cb_arg, int err)
{
	struct tree_load *tl = cb_arg;
	struct blob_map_id id = tree_map_id(tl);

	for (uint32_t i = 0; err == 0 && i < tl->n; i++) {
		const char *why = NULL;

		err = blob_map_load_page(&tl->blob->map, &id, tl->level, tl->nodes[i],
					 tl->pages + (uint64_t)i * MD_PAGE_SIZE, &why);
		if (err != 0)
			LOG_ERR("blob 0x%" PRIx64 ": map page (level %d, node %" PRIu64 "): %s",
				tl->blob->id, tl->level, tl->nodes[i], why ? why : "invalid");
	}
	if (err != 0) {
		tree_load_done(tl, err);
		return;
	}
	tl->bs->report.md_bytes_read += (uint64_t)tl->n * MD_PAGE_SIZE;
	tl->level--;
	tree_load_level(tl);
}

/*
 * Where to read the pool page a disk reference names. An index past the
 * pool reads pool page 0 instead (never past the device, never a data
 * cluster that could hold a forged page): its header then fails the
 * reference's page number check (D1).
 */
static uint64_t tree_pool_page(const struct bs_store *bs, uint32_t idx)
{
	return bs->pool_start + (idx < bs->pool_pages ? idx : 0);
}

/* Read every page of the current level in one batch (deep queue). */
static void tree_load_level(struct tree_load *tl)
{
	struct blob_map *m = &tl->blob->map;
	uint64_t cursor = 0, cap;
	struct md_batch *b;

	if (tl->level < 0) {
		tree_load_done(tl, tree_check_clusters(tl->bs, tl->blob));
		return;
	}
	cap = m->levels[tl->level].nnodes;
	free(tl->nodes);
	free(tl->idx);
	md_free_pages(tl->pages);
	tl->nodes = calloc(cap ? cap : 1, sizeof(*tl->nodes));
	tl->idx = calloc(cap ? cap : 1, sizeof(*tl->idx));
	tl->n = blob_map_load_next(m, tl->level, &cursor, tl->idx, tl->nodes, (uint32_t)cap);
	tl->pages = md_alloc_pages(tl->n ? tl->n : 1);
	b = tl->pages && tl->nodes && tl->idx ? md_batch_new(tl->bs, tree_level_cpl, tl) : NULL;
	if (b == NULL) {
		tree_load_done(tl, -ENOMEM);
		return;
	}
	for (uint32_t i = 0; i < tl->n; i++)
		md_batch_read(b, tl->pages + (uint64_t)i * MD_PAGE_SIZE,
			      tree_pool_page(tl->bs, tl->idx[i]), 1);
	md_batch_close(b);
}

static void tree_map_begin(struct tree_load *tl)
{
	int rc = blob_map_load_begin(&tl->blob->map, tl->root.num_clusters, tl->root.map_depth,
				     tl->root.map_refs);

	if (rc != 0) {
		tree_load_done(tl, rc);
		return;
	}
	tl->level = (int)tl->root.map_depth - 1;
	tree_load_level(tl);
}

/* Validate the xattr pages and decode the stream. */
static void tree_xattr_cpl(void *cb_arg, int err)
{
	struct tree_load *tl = cb_arg;
	struct bs_blob *blob = tl->blob;
	uint8_t *stream = NULL;

	for (uint32_t i = 0; err == 0 && i < tl->root.xattr_npages; i++) {
		const struct md_ref *ref = &tl->root.xattr_refs[i];
		struct md_expect e = {
			.type = MD_TYPE_XATTR, .page_no = tl->bs->pool_start + ref->pool_idx,
			.blob_id = blob->id, .gen = ref->gen, .crc = ref->crc, .check_crc = true,
			.store_id = tl->bs->store_id, .index = i, .level = 0,
		};
		const char *why;

		if (ref->gen == 0 || ref->pool_idx >= tl->bs->pool_pages ||
		    md_page_check(tl->pages + (uint64_t)i * MD_PAGE_SIZE, &e, &why) != 0) {
			LOG_ERR("blob 0x%" PRIx64 ": xattr page %u invalid", blob->id, i);
			err = -EILSEQ;
		}
	}
	if (err == 0 && (stream = malloc(tl->root.xattr_len ? tl->root.xattr_len : 1)) == NULL)
		err = -ENOMEM;
	for (uint32_t i = 0; err == 0 && i < tl->root.xattr_npages; i++) {
		uint32_t off = i * (uint32_t)MD_PAYLOAD;
		uint32_t n = BS_MIN((uint32_t)MD_PAYLOAD, tl->root.xattr_len - BS_MIN(off, tl->root.xattr_len));

		memcpy(stream + off, tl->pages + (uint64_t)i * MD_PAGE_SIZE + sizeof(struct md_header), n);
	}
	if (err == 0)
		err = xattr_set_decode(&blob->xattrs, stream, tl->root.xattr_len);
	free(stream);
	if (err != 0) {
		/* -EILSEQ (invalid, D1), -ENOMEM, or the read's own error: never a
		 * failed read passed off as corruption (D10). */
		tree_load_done(tl, err);
		return;
	}
	tree_map_begin(tl);
}

/*
 * Load the blob's xattrs and cluster map from its validated root page. Every
 * page is checked against its reference (D1).
 */
/* D1: a root names pages of its own commit or earlier ones, never newer. */
static bool tree_refs_not_newer(const struct md_root *root)
{
	for (uint32_t i = 0; i < MD_ROOT_MAP_REFS; i++)
		if (root->map_refs[i].gen > root->hdr.gen)
			return false;
	for (uint32_t i = 0; i < MD_ROOT_XATTR_REFS; i++)
		if (root->xattr_refs[i].gen > root->hdr.gen)
			return false;
	return true;
}

void blob_tree_load(struct bs_store *bs, struct bs_blob *blob, const struct md_root *root,
		    bs_cpl_fn cb_fn, void *cb_arg)
{
	struct tree_load *tl = calloc(1, sizeof(*tl));
	struct md_batch *b;

	if (tl == NULL) {
		store_defer_cpl(cb_fn, cb_arg, -ENOMEM);
		return;
	}
	tl->bs = bs;
	tl->blob = blob;
	tl->root = *root;
	tl->cb_fn = cb_fn;
	tl->cb_arg = cb_arg;
	if (!tree_refs_not_newer(root)) {
		LOG_ERR("blob 0x%" PRIx64 ": a reference is newer than its root", blob->id);
		tree_load_done(tl, -EILSEQ);
		return;
	}
	if (root->xattr_npages == 0) {
		int rc = xattr_set_decode(&blob->xattrs, root->xattr_inline, root->xattr_len);

		if (rc != 0) {
			LOG_ERR("blob 0x%" PRIx64 ": inline xattrs malformed", blob->id);
			tl->pages = NULL;
			tree_load_done(tl, rc == -ENOMEM ? rc : -EILSEQ);
			return;
		}
		tree_map_begin(tl);
		return;
	}
	tl->pages = md_alloc_pages(root->xattr_npages);
	b = tl->pages ? md_batch_new(bs, tree_xattr_cpl, tl) : NULL;
	if (b == NULL) {
		tree_load_done(tl, -ENOMEM);
		return;
	}
	for (uint32_t i = 0; i < root->xattr_npages; i++) {
		md_batch_read(b, tl->pages + (uint64_t)i * MD_PAGE_SIZE,
			      tree_pool_page(bs, root->xattr_refs[i].pool_idx), 1);
	}
	md_batch_close(b);
}

/* ---------------------------------------------------------- commit */

struct commit_group;

struct commit {
	struct bs_blob *blob;
	struct bs_store *bs;
	struct commit_group *group;	/* NULL: a single-blob commit */
	bool tombstone;
	bool md_dirty;			/* xattrs/flags rendered from a changed state */
	uint64_t gen;
	struct blob_map_plan plan;
	bool have_plan;
	struct md_root *root;		/* the new root page */
	struct md_root *confirm;	/* D16: its copy for the slot's other page */
	int target;			/* slot page to write */
	uint8_t *xattr_pages;
	uint32_t nxattr;		/* fresh xattr pages (to write, or to undo) */
	struct md_ref xattr_refs[MD_ROOT_XATTR_REFS];
	uint64_t npending;		/* pending_free entries covered */
	uint64_t allocs;		/* data-path allocations covered */
	struct blob_sync_waiters waiters;
};

/* A multi-blob commit: one generation, group-tagged roots, one flush (D13). */
struct commit_group {
	struct bs_store *bs;
	uint32_t n;
	struct commit *m[MD_GROUP_MAX_OTHERS + 1];
	bs_cpl_fn cb_fn;
	void *cb_arg;
};

static void commit_finish(struct commit *c, int err);

/* Release the pool pages a failed commit had taken (never referenced durably). */
static void commit_undo_pages(struct commit *c)
{
	for (uint32_t i = 0; c->have_plan && i < c->plan.nwrites; i++)
		pool_page_free(c->bs, c->plan.writes[i].pool_idx);
	for (uint32_t i = 0; i < c->nxattr; i++)
		pool_page_free(c->bs, c->xattr_refs[i].pool_idx);
	c->nxattr = 0;
	if (c->md_dirty)
		c->blob->md_dirty = true; /* the change is still unsaved */
}

/* D5: the commit is durable; drop what only the old tree referenced. */
static void commit_release_old(struct commit *c)
{
	struct bs_blob *blob = c->blob;

	if (c->have_plan) {
		for (uint32_t i = 0; i < c->plan.nrelease; i++)
			pool_page_free(c->bs, c->plan.release[i]);
		blob_map_commit_done(&blob->map, &c->plan);
	}
	if (c->tombstone || c->md_dirty) {
		/* The xattr stream was rewritten: the old pages are unreferenced. */
		for (uint32_t i = 0; i < blob->xattr_npages; i++)
			pool_page_free(c->bs, blob->xattr_refs[i].pool_idx);
		memcpy(blob->xattr_refs, c->xattr_refs, sizeof(c->xattr_refs));
		blob->xattr_npages = (uint16_t)c->nxattr;
	}
	for (uint64_t i = 0; i < c->npending; i++)
		cluster_release(c->bs, blob->pending_free[i], false);
	if (c->npending > 0) {
		memmove(blob->pending_free, blob->pending_free + c->npending,
			(blob->npending_free - c->npending) * sizeof(uint32_t));
		blob->npending_free -= c->npending;
	}
}

/* The writes (and flush) of @c completed with @err: adopt or undo. */
static int commit_adopt(struct commit *c, int err)
{
	struct bs_blob *blob = c->blob;

	if (err != 0) {
		store_latch_error(c->bs, err, "metadata commit"); /* D10 */
		commit_undo_pages(c);
		return -EIO;
	}
	commit_release_old(c);
	blob->root_page = c->target;
	blob->root_gen = c->gen;
	blob->rollback_gen = 0;
	blob->allocs_committed = c->allocs;
	return 0;
}

/*
 * D16: once durable, does @c let data clusters go (its own shrink or unmap,
 * or, as a group's tombstone, the clusters its caller releases)?
 */
static bool commit_releases(const struct commit *c)
{
	return c->npending > 0 || (c->group != NULL && c->tombstone);
}

/*
 * D16: queue a copy of @c's new root for the slot's other page, so the
 * previous root, which still names the clusters about to be released, is
 * gone before they can be reused. 0 or -ENOMEM.
 */
static int commit_add_confirm(struct commit *c, struct md_batch *b)
{
	int other = 1 - c->target;

	c->confirm = md_alloc_pages(1);
	if (c->confirm == NULL)
		return -ENOMEM;
	memcpy(c->confirm, c->root, MD_PAGE_SIZE);
	c->confirm->hdr.page_no = c->bs->root_start + 2ull * c->blob->slot + (uint64_t)other;
	c->confirm->hdr.level = (uint16_t)other;
	md_page_seal(c->confirm);
	md_batch_write(b, c->confirm, c->confirm->hdr.page_no, 1);
	return 0;
}

static void commit_confirm_cpl(void *cb_arg, int err)
{
	struct commit *c = cb_arg;

	commit_finish(c, commit_adopt(c, err));
}

static void commit_write_cpl(void *cb_arg, int err)
{
	struct commit *c = cb_arg;
	struct md_batch *b;

	if (err != 0 || !commit_releases(c)) {
		commit_confirm_cpl(c, err);
		return;
	}
	b = md_batch_new(c->bs, commit_confirm_cpl, c);
	if (b == NULL) {
		commit_confirm_cpl(c, -ENOMEM);
		return;
	}
	if (commit_add_confirm(c, b) != 0)
		md_batch_fail(b, -ENOMEM);
	md_batch_flush(b); /* D16 */
	md_batch_close(b);
}

/* Render the xattr stream: inline in the root, or into fresh pages (D2). */
static int commit_build_xattrs(struct commit *c)
{
	struct bs_blob *blob = c->blob;
	uint32_t len = blob->xattrs.stream_len;
	uint8_t *stream;

	c->root->xattr_len = c->tombstone ? 0 : len;
	if (!c->md_dirty && !c->tombstone) {
		/* Unchanged: keep referencing the committed pages. */
		c->root->xattr_npages = blob->xattr_npages;
		memcpy(c->root->xattr_refs, blob->xattr_refs, sizeof(blob->xattr_refs));
		if (blob->xattr_npages == 0)
			xattr_set_encode(&blob->xattrs, c->root->xattr_inline);
		return 0;
	}
	if (c->tombstone || len <= MD_ROOT_INLINE_XATTR) {
		if (!c->tombstone)
			xattr_set_encode(&blob->xattrs, c->root->xattr_inline);
		return 0;
	}
	stream = malloc(len);
	c->xattr_pages = md_alloc_pages((len + (uint32_t)MD_PAYLOAD - 1) / (uint32_t)MD_PAYLOAD);
	if (stream == NULL || c->xattr_pages == NULL) {
		free(stream);
		return -ENOMEM;
	}
	xattr_set_encode(&blob->xattrs, stream);
	for (uint32_t off = 0, i = 0; off < len; off += (uint32_t)MD_PAYLOAD, i++) {
		uint8_t *pg = c->xattr_pages + (uint64_t)i * MD_PAGE_SIZE;
		uint32_t idx;

		if (pool_page_alloc(c->bs, &idx) != 0) {
			free(stream);
			return -ENOSPC;
		}
		md_page_init(pg, MD_TYPE_XATTR, c->bs->pool_start + idx, blob->id, c->gen,
			     c->bs->store_id, i, 0);
		memcpy(pg + sizeof(struct md_header), stream + off,
		       BS_MIN((uint32_t)MD_PAYLOAD, len - off));
		c->xattr_refs[i] = (struct md_ref){ idx, md_page_seal(pg), c->gen };
		c->nxattr = i + 1;
	}
	free(stream);
	c->root->xattr_npages = (uint16_t)c->nxattr;
	memcpy(c->root->xattr_refs, c->xattr_refs, sizeof(c->xattr_refs));
	return 0;
}

/* Fill the root page for generation c->gen (sealed later). */
static void commit_build_root(struct commit *c)
{
	struct bs_blob *blob = c->blob;
	struct md_root *r = c->root;
	uint64_t page_no = c->bs->root_start + 2ull * blob->slot + (uint64_t)c->target;

	md_page_init(r, MD_TYPE_ROOT, page_no, blob->id, c->gen, c->bs->store_id, blob->slot,
		     (uint16_t)c->target);
	r->group.gen = blob->rollback_gen; /* D17: 0 unless a recovery repair */
	if (c->tombstone) {
		r->hdr.flags = MD_ROOT_F_DELETED;
		return;
	}
	r->num_clusters = blob->map.num_clusters;
	r->invalid_flags = blob->invalid_flags;
	r->data_ro_flags = blob->data_ro_flags;
	r->md_ro_flags = blob->md_ro_flags;
	r->parent_id = blob->parent_id;
	if (c->have_plan) {
		r->map_depth = c->plan.new_depth;
		memcpy(r->map_refs, c->plan.new_root_refs, sizeof(r->map_refs));
	}
}

/* Move the data path's alloc-dirty bits into the map's dirty leaves. */
static void commit_collect_allocs(struct bs_blob *blob)
{
	for (uint64_t w = 0; w < blob->alloc_dirty_words; w++) {
		uint64_t bits = __atomic_exchange_n(&blob->alloc_dirty[w], 0, __ATOMIC_ACQ_REL);

		while (bits != 0) {
			uint64_t leaf = w * 64 + (uint64_t)__builtin_ctzll(bits);

			bits &= bits - 1;
			blob_map_mark_dirty(&blob->map, leaf * MD_EXTENTS_PER_PAGE);
		}
	}
}

/*
 * Render every page of @c for generation c->gen from the blob as it is now.
 * D9: any map entry visible here was published after its cluster's zeroing
 * or copy completed, so a data flush issued after this render makes it
 * durable before the map is. The root is filled but not sealed.
 */
static int commit_render(struct commit *c)
{
	struct bs_blob *blob = c->blob;
	struct blob_map_alloc alloc = { pool_page_alloc, c->bs };
	struct blob_map_id id = { blob->id, c->bs->store_id, c->bs->pool_start };
	int rc = 0;

	c->target = blob->root_page == 0 ? 1 : 0; /* D3 */
	c->npending = blob->npending_free;
	c->allocs = atomic_load(&blob->allocs);
	c->md_dirty = blob->md_dirty;
	blob->md_dirty = false; /* changes from now on belong to the next commit */
	c->root = md_alloc_pages(1);
	if (c->root == NULL)
		rc = -ENOMEM;
	if (rc == 0 && !c->tombstone) {
		commit_collect_allocs(blob);
		c->have_plan = true;
		rc = blob_map_commit_prepare(&blob->map, &id, c->gen, &alloc, &c->plan);
	}
	if (rc == 0)
		rc = commit_build_xattrs(c);
	if (rc != 0) {
		commit_undo_pages(c);
		return rc;
	}
	commit_build_root(c);
	return 0;
}

static bool commit_needs_data_flush(const struct commit *c)
{
	return !c->tombstone && c->allocs != c->blob->allocs_committed;
}

/*
 * D15: a blob's first commit has no previous root to fall back to, so its
 * tree must be durable before its root can be: pool pages, flush, root,
 * flush. Later commits need one flush (D4).
 */
static bool commit_is_first(const struct commit *c)
{
	return c->blob->root_gen == 0 && !c->tombstone;
}

static bool commit_has_pages(const struct commit *c)
{
	return (c->have_plan && c->plan.nwrites > 0) || c->nxattr > 0;
}

/* Queue every pool page of @c on @b. */
static void commit_add_pages(struct commit *c, struct md_batch *b)
{
	for (uint32_t i = 0; c->have_plan && i < c->plan.nwrites; i++)
		md_batch_write(b, c->plan.writes[i].page, c->bs->pool_start + c->plan.writes[i].pool_idx, 1);
	for (uint32_t i = 0; i < c->nxattr; i++)
		md_batch_write(b, c->xattr_pages + (uint64_t)i * MD_PAGE_SIZE,
			       c->bs->pool_start + c->xattr_refs[i].pool_idx, 1);
}

/* Queue every page of @c on @b (pool pages unless already written, root). */
static void commit_add_writes(struct commit *c, struct md_batch *b, bool pages)
{
	if (pages)
		commit_add_pages(c, b);
	md_batch_write(b, c->root, c->root->hdr.page_no, 1);
}

/* Write the root (and the pool pages unless @pages_done), then ONE flush (D4). */
static void commit_submit_root(struct commit *c, bool pages_done)
{
	struct md_batch *b = md_batch_new(c->bs, commit_write_cpl, c);

	if (b == NULL) {
		commit_undo_pages(c);
		commit_finish(c, -ENOMEM);
		return;
	}
	commit_add_writes(c, b, !pages_done);
	md_batch_flush(b); /* D4 */
	md_batch_close(b);
}

static void commit_pages_cpl(void *cb_arg, int err)
{
	struct commit *c = cb_arg;

	if (err != 0) {
		commit_finish(c, commit_adopt(c, err));
		return;
	}
	commit_submit_root(c, true);
}

static void commit_submit(struct commit *c)
{
	struct md_batch *b;

	if (!commit_is_first(c) || !commit_has_pages(c)) {
		commit_submit_root(c, false);
		return;
	}
	b = md_batch_new(c->bs, commit_pages_cpl, c); /* D15 */
	if (b == NULL) {
		commit_undo_pages(c);
		commit_finish(c, -ENOMEM);
		return;
	}
	commit_add_pages(c, b);
	md_batch_flush(b);
	md_batch_close(b);
}

static void commit_data_cpl(void *cb_arg, int err)
{
	struct commit *c = cb_arg;

	if (err != 0) {
		store_latch_error(c->bs, err, "data flush before commit");
		commit_undo_pages(c);
		commit_finish(c, -EIO);
		return;
	}
	commit_submit(c);
}

/*
 * The generation of a new commit: the store's next, and above the blob's
 * own newest root even if the super block's counter says otherwise (a
 * damaged or forged one: D3 needs every commit newer than all it replaces).
 */
static uint64_t commit_next_gen(struct bs_store *bs, uint64_t newest)
{
	uint64_t gen = BS_MAX(bs->txn_next, newest + 1);

	if (newest >= MD_GEN_LIMIT - 1 || gen >= MD_GEN_LIMIT) {
		/* Only a damaged super block gets here: stop rather than wrap (D3). */
		store_latch_error(bs, -EOVERFLOW, "metadata commit (generation counter exhausted)");
		return 0;
	}
	bs->txn_next = gen + 1;
	return gen;
}

static void commit_build(struct commit *c)
{
	struct md_batch *b;
	int rc;

	c->gen = commit_next_gen(c->bs, c->blob->root_gen);
	rc = c->gen != 0 ? commit_render(c) : -EIO;
	if (rc != 0) {
		commit_finish(c, rc);
		return;
	}
	md_page_seal(c->root);
	if (!commit_needs_data_flush(c)) {
		commit_submit(c);
		return;
	}
	b = md_batch_new(c->bs, commit_data_cpl, c); /* D9 */
	if (b == NULL) {
		commit_undo_pages(c);
		commit_finish(c, -ENOMEM);
		return;
	}
	md_batch_flush(b);
	md_batch_close(b);
}

static void commit_dirty_cpl(void *cb_arg, int err)
{
	struct commit *c = cb_arg;

	if (err != 0) {
		commit_finish(c, -EIO);
		return;
	}
	commit_build(c);
}

static void commit_start(struct commit *c)
{
	c->blob->syncing = true;
	store_mark_dirty(c->bs, commit_dirty_cpl, c); /* D7 */
}

static struct commit *commit_new(struct bs_blob *blob, bool tombstone)
{
	struct commit *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->blob = blob;
	c->bs = blob->bs;
	c->tombstone = tombstone;
	TAILQ_INIT(&c->waiters);
	return c;
}

static void commit_finish(struct commit *c, int err)
{
	struct bs_blob *blob = c->blob;
	struct blob_sync_waiters next_round;
	struct blob_sync_waiter *w;

	if (c->have_plan)
		blob_map_plan_free(&c->plan);
	md_free_pages(c->root);
	md_free_pages(c->confirm);
	md_free_pages(c->xattr_pages);
	blob->syncing = false;
	/* Taken before the callbacks: one may free the blob (failed create, repair). */
	TAILQ_INIT(&next_round);
	TAILQ_CONCAT(&next_round, &blob->sync_next, link);
	while ((w = TAILQ_FIRST(&c->waiters)) != NULL) {
		TAILQ_REMOVE(&c->waiters, w, link);
		w->cb_fn(w->cb_arg, err);
		free(w);
	}
	free(c);
	if (!TAILQ_EMPTY(&next_round)) {
		/* Coalesced round for everyone who asked meanwhile. */
		struct commit *next = commit_new(blob, false);

		if (next == NULL) {
			TAILQ_CONCAT(&blob->sync_next, &next_round, link);
			return;
		}
		TAILQ_CONCAT(&next->waiters, &next_round, link);
		commit_start(next);
	}
}

/*
 * Commit @blob's metadata (or a tombstone, D11). Calls made while a commit
 * of the blob runs are coalesced into one more round after it.
 */
void blob_commit(struct bs_blob *blob, bool tombstone, bs_cpl_fn cb_fn, void *cb_arg)
{
	struct blob_sync_waiter *w = malloc(sizeof(*w));
	struct commit *c;

	if (w == NULL) {
		store_defer_cpl(cb_fn, cb_arg, -ENOMEM);
		return;
	}
	w->cb_fn = cb_fn;
	w->cb_arg = cb_arg;
	if (blob->syncing) {
		assert(!tombstone);
		TAILQ_INSERT_TAIL(&blob->sync_next, w, link);
		return;
	}
	c = commit_new(blob, tombstone);
	if (c == NULL) {
		free(w);
		store_defer_cpl(cb_fn, cb_arg, -ENOMEM);
		return;
	}
	TAILQ_INSERT_TAIL(&c->waiters, w, link);
	commit_start(c);
}

/* ---------------------------------------------------------- group commit */

static void group_finish(struct commit_group *g, int err)
{
	for (uint32_t i = 0; i < g->n; i++)
		commit_finish(g->m[i], err);
	g->cb_fn(g->cb_arg, err);
	free(g);
}

static void group_confirm_cpl(void *cb_arg, int err)
{
	struct commit_group *g = cb_arg;
	int first = 0;

	for (uint32_t i = 0; i < g->n; i++) {
		int rc = commit_adopt(g->m[i], err);

		if (rc != 0 && first == 0)
			first = rc;
	}
	group_finish(g, first);
}

/* The group is durable; D16 if any member releases clusters, then adopt. */
static void group_write_cpl(void *cb_arg, int err)
{
	struct commit_group *g = cb_arg;
	bool releases = false;
	struct md_batch *b;

	for (uint32_t i = 0; i < g->n; i++)
		releases |= commit_releases(g->m[i]);
	if (err != 0 || !releases) {
		group_confirm_cpl(g, err);
		return;
	}
	b = md_batch_new(g->bs, group_confirm_cpl, g);
	if (b == NULL) {
		group_confirm_cpl(g, -ENOMEM);
		return;
	}
	for (uint32_t i = 0; i < g->n; i++)
		if (commit_add_confirm(g->m[i], b) != 0)
			md_batch_fail(b, -ENOMEM);
	md_batch_flush(b); /* D16 */
	md_batch_close(b);
}

static void group_submit_roots(struct commit_group *g, bool pages_done)
{
	struct md_batch *b = md_batch_new(g->bs, group_write_cpl, g);

	if (b == NULL) {
		for (uint32_t i = 0; i < g->n; i++)
			commit_undo_pages(g->m[i]);
		group_finish(g, -ENOMEM);
		return;
	}
	for (uint32_t i = 0; i < g->n; i++)
		commit_add_writes(g->m[i], b, !pages_done);
	md_batch_flush(b); /* D4: one flush for the whole group */
	md_batch_close(b);
}

static void group_pages_cpl(void *cb_arg, int err)
{
	struct commit_group *g = cb_arg;

	if (err != 0) {
		group_write_cpl(g, err);
		return;
	}
	group_submit_roots(g, true);
}

/* D15 applies if any member is committed for the first time (a new snapshot). */
static void group_submit(struct commit_group *g)
{
	bool first = false;
	struct md_batch *b;

	for (uint32_t i = 0; i < g->n; i++)
		first |= commit_is_first(g->m[i]) && commit_has_pages(g->m[i]);
	if (!first) {
		group_submit_roots(g, false);
		return;
	}
	b = md_batch_new(g->bs, group_pages_cpl, g);
	if (b == NULL) {
		group_write_cpl(g, -ENOMEM);
		return;
	}
	for (uint32_t i = 0; i < g->n; i++)
		commit_add_pages(g->m[i], b);
	md_batch_flush(b);
	md_batch_close(b);
}

static void group_data_cpl(void *cb_arg, int err)
{
	struct commit_group *g = cb_arg;

	if (err != 0) {
		store_latch_error(g->bs, err, "data flush before commit");
		for (uint32_t i = 0; i < g->n; i++)
			commit_undo_pages(g->m[i]);
		group_finish(g, -EIO);
		return;
	}
	group_submit(g);
}

/* Tag every member's root with the group (D13) and seal it. */
static void group_tag_roots(struct commit_group *g, uint64_t gen)
{
	for (uint32_t i = 0; i < g->n; i++) {
		struct md_group *t = &g->m[i]->root->group;

		t->gen = gen;
		t->n = 0;
		for (uint32_t j = 0; j < g->n; j++)
			if (j != i)
				t->slots[t->n++] = g->m[j]->blob->slot;
		md_page_seal(g->m[i]->root);
	}
}

static void group_dirty_cpl(void *cb_arg, int err)
{
	struct commit_group *g = cb_arg;
	uint64_t newest = 0, gen;
	bool data_flush = false;
	struct md_batch *b;
	uint32_t i;

	for (i = 0; i < g->n; i++)
		newest = BS_MAX(newest, g->m[i]->blob->root_gen);
	gen = err == 0 ? commit_next_gen(g->bs, newest) : 0;
	if (err == 0 && gen == 0)
		err = -EIO;
	for (i = 0; err == 0 && i < g->n; i++) {
		g->m[i]->gen = gen;
		err = commit_render(g->m[i]);
		data_flush |= err == 0 && commit_needs_data_flush(g->m[i]);
	}
	if (err != 0) {
		/* Member i-1 undid its own pages; undo the ones rendered before it. */
		for (uint32_t j = 0; j + 1 < i; j++)
			commit_undo_pages(g->m[j]);
		group_finish(g, err);
		return;
	}
	group_tag_roots(g, gen);
	if (!data_flush) {
		group_submit(g);
		return;
	}
	b = md_batch_new(g->bs, group_data_cpl, g); /* D9 */
	if (b == NULL) {
		group_data_cpl(g, -ENOMEM);
		return;
	}
	md_batch_flush(b);
	md_batch_close(b);
}

/*
 * Commit several blobs as one group (D13): after any crash either all of
 * them show this commit or none does. Members must not be committing.
 */
void blob_commit_group(struct bs_blob **blobs, const bool *tombstone, uint32_t n,
		       bs_cpl_fn cb_fn, void *cb_arg)
{
	struct commit_group *g = calloc(1, sizeof(*g));
	uint32_t i;

	if (g == NULL || n == 0 || n > MD_GROUP_MAX_OTHERS + 1) {
		free(g);
		store_defer_cpl(cb_fn, cb_arg, g ? -EINVAL : -ENOMEM);
		return;
	}
	g->bs = blobs[0]->bs;
	g->cb_fn = cb_fn;
	g->cb_arg = cb_arg;
	for (i = 0; i < n; i++) {
		if (blobs[i]->syncing || (g->m[i] = commit_new(blobs[i], tombstone[i])) == NULL)
			break;
		g->m[i]->group = g;
		blobs[i]->syncing = true;
		g->n = i + 1;
	}
	if (i < n) {
		int err = blobs[i]->syncing ? -EBUSY : -ENOMEM;

		for (uint32_t j = 0; j < g->n; j++)
			commit_finish(g->m[j], err);
		free(g);
		store_defer_cpl(cb_fn, cb_arg, err); /* never inline */
		return;
	}
	store_mark_dirty(g->bs, group_dirty_cpl, g); /* D7 */
}
