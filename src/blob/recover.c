/*
 * Dirty recovery: rebuild every allocation mask from the blobs' metadata.
 *
 * The root region is read in windows of RECOVER_WINDOW slots, each window
 * in large reads submitted together (deep queue, never a page at a time).
 * For every slot the newest valid root is chosen (D3); each live blob's tree
 * is then loaded, all blobs of a window in parallel, every page validated
 * against its reference (D1). If a blob's newest tree is incomplete (a
 * commit that was not durable when the power went), its previous root is
 * used and, once recovery is done, rewritten as the newest so later loads
 * agree. A blob with no valid tree is reported corrupt and skipped: its slot
 * stays reserved, everything else loads.
 *
 * After recovery no free cluster counts as known-zero (D8).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "blob/md_page.h"
#include "blob/store_int.h"
#include "util/assert_int.h"
#include "util/log_int.h"

#define RECOVER_WINDOW 2048u		/* slots per window: 16 MiB of root pages */
#define RECOVER_READ_PAGES 256u		/* 1 MiB per read */
/* Blob trees loaded at once: a deep enough queue, and memory that is reused
 * instead of freshly faulted in for every blob of a window. */
#define RECOVER_MAX_LOADS 128u
#define RECOVER_BUF_BYTES (2ull * RECOVER_WINDOW * MD_PAGE_SIZE)

struct recover;

struct recover_blob {
	struct recover *rc;
	struct bs_blob *blob;
	uint32_t slot;
	int pick;			/* root page being tried */
	int valid;			/* valid root pages */
	bool fell_back;
	bool tomb;			/* deferred: a group-tagged tombstone */
	uint64_t gen;			/* deferred: the group's generation */
	struct md_group group;		/* group tag of the chosen root */
	struct md_root *other;		/* deferred: copy of the slot's other page */
};

struct recover {
	struct bs_store *bs;
	uint64_t window;		/* first slot of the current window */
	uint64_t nslots;		/* slots in the current window */
	struct md_root *pages;		/* the window's root pages */
	uint32_t loading;		/* tree loads in flight */
	uint64_t next_slot;		/* next slot of the window to start */
	uint64_t max_gen;
	uint64_t max_inc;
	struct bs_blob **repairs;	/* blobs whose previous root must be rewritten */
	uint32_t nrepairs;
	uint32_t repair_cap;
	uint32_t repairing;
	uint64_t *eff_gen;		/* per slot: generation of the root settled on */
	uint64_t *rolled;		/* per slot: group its root rolls back (D17), or 0 */
	struct recover_blob **deferred;	/* group-tagged choices, checked at the end (D13) */
	uint32_t ndeferred;
	uint32_t deferred_cap;
	uint32_t resolving;		/* group rollbacks in flight */
	int err;
	bs_cpl_fn cb_fn;
	void *cb_arg;
};

static void recover_window(struct recover *rc);
static void recover_try_root(struct recover_blob *rb);

/*
 * The window buffer. Every page of it is read from the device before it is
 * looked at, so it needs no zeroing; it is populated in one mmap call
 * instead of taking one page fault per 4 KiB on first touch, which cost
 * more than all the recovery IO on a virtual machine (bench/mdperf.c).
 */
static size_t recover_buf_bytes(const struct bs_store *bs)
{
	/* A whole window, or every slot of a smaller store. */
	return RECOVER_BUF_BYTES / RECOVER_WINDOW * BS_MIN((uint64_t)RECOVER_WINDOW, bs->max_blobs);
}

static struct md_root *recover_buf_alloc(const struct bs_store *bs)
{
	void *p = mmap(NULL, recover_buf_bytes(bs), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* Blobs still queued (repairs, group choices) when recovery ends: drop them. */
static void recover_drop_queued(struct recover *rc)
{
	for (uint32_t i = 0; i < rc->nrepairs; i++)
		blob_destroy(rc->repairs[i]);
	for (uint32_t i = 0; i < rc->ndeferred; i++) {
		if (rc->deferred[i]->blob != NULL)
			blob_destroy(rc->deferred[i]->blob);
		md_free_pages(rc->deferred[i]->other);
		free(rc->deferred[i]);
	}
}

static void recover_done(struct recover *rc, int err)
{
	recover_drop_queued(rc); /* a load failed half way still owns them */
	munmap(rc->pages, recover_buf_bytes(rc->bs));
	free(rc->repairs);
	free(rc->eff_gen);
	free(rc->rolled);
	free(rc->deferred);
	rc->cb_fn(rc->cb_arg, err);
	free(rc);
}

/* Claim a cluster for a recovered blob; false on double ownership. */
static bool recover_claim_clusters(struct bs_store *bs, struct bs_blob *blob)
{
	uint64_t i;

	for (i = 0; i < blob->map.num_clusters; i++) {
		uint32_t c = blob_map_get(&blob->map, i);

		if (c != 0 && bitarray_get(&bs->clusters_used, c))
			break;
		if (c != 0)
			bitarray_set(&bs->clusters_used, c);
	}
	if (i == blob->map.num_clusters)
		return true;
	LOG_ERR("recover: blob 0x%" PRIx64 ": cluster %u already owned by another blob",
		blob->id, blob_map_get(&blob->map, i));
	while (i-- > 0) {
		uint32_t c = blob_map_get(&blob->map, i);

		if (c != 0)
			bitarray_clear(&bs->clusters_used, c);
	}
	return false;
}

static void recover_pool_cb(void *arg, uint32_t pool_idx)
{
	struct bs_store *bs = arg;

	bitarray_set(&bs->pool_used, pool_idx);
}

static void recover_xattr_pages(struct bs_store *bs, const struct bs_blob *blob)
{
	for (uint32_t i = 0; i < blob->xattr_npages; i++)
		bitarray_set(&bs->pool_used, blob->xattr_refs[i].pool_idx);
}

/* Record a slot as used by @blob (its incarnation, its generation). */
static void recover_note_slot(struct recover *rc, uint32_t slot, uint64_t id, uint64_t gen)
{
	bitarray_set(&rc->bs->slots_used, slot);
	rc->bs->slot_inc[slot] = BLOB_ID_INCARNATION(id);
	rc->max_gen = BS_MAX(rc->max_gen, gen);
}

static void recover_corrupt(struct recover_blob *rb)
{
	struct bs_store *bs = rb->rc->bs;

	LOG_ERR("recover: blob 0x%" PRIx64 " (slot %u): metadata corrupt; skipped",
		rb->blob->id, rb->slot);
	bitarray_set(&bs->slots_corrupt, rb->slot);
	bs->report.corrupt_blobs++;
}

static int recover_add_repair(struct recover *rc, struct bs_blob *blob)
{
	if (rc->nrepairs == rc->repair_cap) {
		uint32_t cap = rc->repair_cap ? rc->repair_cap * 2 : 16;
		struct bs_blob **v = realloc(rc->repairs, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		rc->repairs = v;
		rc->repair_cap = cap;
	}
	rc->repairs[rc->nrepairs++] = blob;
	return 0;
}

/*
 * A tree that failed validation (D1), as opposed to a device or memory
 * error: only the former is corruption or an incomplete commit (D3).
 */
static bool recover_md_invalid(int err)
{
	return err == -EILSEQ || err == -EFBIG;
}

/* Parent table and hidden flag of a recovered blob. */
static void recover_note_relations(struct bs_store *bs, const struct bs_blob *blob)
{
	bs->slot_parent[blob->slot] = blob->parent_id;
	if (blob->md_ro_flags & BLOB_MD_RO_HIDDEN)
		bitarray_set(&bs->slots_hidden, blob->slot);
}

/* D17: a root whose group tag is older than itself rolls that group back. */
static void recover_note_rollback(struct recover *rc, uint32_t slot, const struct md_group *g,
				  uint64_t gen)
{
	rc->rolled[slot] = g->gen != 0 && g->gen < gen ? g->gen : 0;
}

/* Keep @rb aside until every window has been read (D13). 0 or -ENOMEM. */
static int recover_defer(struct recover *rc, struct recover_blob *rb)
{
	const struct md_root *o = &rc->pages[(rb->slot - rc->window) * 2 + (1 - rb->pick)];

	if (rc->ndeferred == rc->deferred_cap) {
		uint32_t cap = rc->deferred_cap ? rc->deferred_cap * 2 : 64;
		struct recover_blob **v = realloc(rc->deferred, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		rc->deferred = v;
		rc->deferred_cap = cap;
	}
	rb->other = md_alloc_pages(1);
	if (rb->other == NULL)
		return -ENOMEM;
	memcpy(rb->other, o, MD_PAGE_SIZE);
	rb->gen = rb->group.gen;
	rc->deferred[rc->ndeferred++] = rb;
	return 0;
}

static void recover_slot(struct recover *rc, uint32_t slot);

/* Start the window's next slots while fewer than RECOVER_MAX_LOADS run. */
static void recover_pump(struct recover *rc)
{
	while (rc->err == 0 && rc->next_slot < rc->window + rc->nslots &&
	       rc->loading <= RECOVER_MAX_LOADS)
		recover_slot(rc, (uint32_t)rc->next_slot++);
}

/* A tree load ended: refill the queue, or move to the next window. */
static void recover_load_done(struct recover *rc)
{
	recover_pump(rc); /* still counted, so the window cannot end under us */
	if (--rc->loading == 0)
		recover_window(rc);
}

/* One blob finished (loaded, fell back, or corrupt). */
static void recover_blob_done(struct recover_blob *rb, int err)
{
	struct recover *rc = rb->rc;
	struct bs_store *bs = rc->bs;
	struct bs_blob *blob = rb->blob;
	bool keep = false;

	if (err != 0 && !recover_md_invalid(err) && rc->err == 0)
		rc->err = err; /* D10: a failed read fails the load; the blob is not corrupt */
	if (err == 0) {
		rc->eff_gen[rb->slot] = blob->root_gen;
		recover_note_rollback(rc, rb->slot, &rb->group, blob->root_gen);
		if (rb->group.gen != 0 && rb->group.gen == blob->root_gen &&
		    recover_defer(rc, rb) == 0) {
			recover_load_done(rc);
			return; /* D13: claimed once its group is known complete */
		}
	}
	if (err == 0 && !recover_claim_clusters(bs, blob))
		err = -EILSEQ;
	if (err == 0) {
		blob_map_for_each_page(&blob->map, recover_pool_cb, bs);
		recover_xattr_pages(bs, blob);
		recover_note_relations(bs, blob);
		bs->report.blobs++;
		if (rb->fell_back) {
			bs->report.fallback_roots++;
			keep = recover_add_repair(rc, blob) == 0;
		}
	} else if (recover_md_invalid(err)) {
		recover_corrupt(rb);
	}
	if (!keep)
		blob_destroy(blob);
	free(rb);
	recover_load_done(rc);
}

static void recover_tree_cpl(void *cb_arg, int err)
{
	struct recover_blob *rb = cb_arg;
	int other = 1 - rb->pick;

	if (recover_md_invalid(err) && (rb->valid & (1 << other)) && !rb->fell_back) {
		const struct md_root *o = &rb->rc->pages[(rb->slot - rb->rc->window) * 2 + other];

		/* D16: a copy of the same generation is no previous commit. */
		if (!(o->hdr.flags & MD_ROOT_F_DELETED) && o->hdr.blob_id == rb->blob->id &&
		    o->hdr.gen < rb->blob->root_gen) {
			uint64_t g = rb->group.gen == rb->blob->root_gen ? rb->group.gen : 0;

			LOG_NOTICE("recover: blob 0x%" PRIx64 ": newest commit incomplete; "
				   "using the previous one", rb->blob->id);
			blob_free_md(rb->blob);
			xattr_set_init(&rb->blob->xattrs);
			rb->blob->rollback_gen = g; /* D17: a group's root given up */
			rb->fell_back = true;
			rb->pick = other;
			recover_try_root(rb);
			return;
		}
	}
	recover_blob_done(rb, err);
}

/* Load the tree under root page rb->pick. */
static void recover_try_root(struct recover_blob *rb)
{
	struct recover *rc = rb->rc;
	const struct md_root *r = &rc->pages[(rb->slot - rc->window) * 2 + rb->pick];
	int err = blob_apply_root(rb->blob, r);

	if (err == -EOPNOTSUPP)
		err = 0; /* unknown flags: still account for its space */
	rb->blob->root_page = rb->pick;
	rb->blob->root_gen = r->hdr.gen;
	rb->group = r->group;
	if (err != 0) {
		recover_tree_cpl(rb, err);
		return;
	}
	blob_tree_load(rc->bs, rb->blob, r, recover_tree_cpl, rb);
}

/*
 * Incarnation of the blob a corrupt slot held, from a root header that
 * still names this slot. Unvalidated: used only so that reports and
 * iteration name the blob by its id. 0 if neither page names it.
 */
static uint32_t recover_guess_inc(const struct md_root pages[2], uint32_t slot)
{
	uint32_t inc = 0;
	uint64_t gen = 0;

	for (int p = 0; p < 2; p++) {
		const struct md_header *h = &pages[p].hdr;

		if (h->magic == MD_MAGIC && h->type == MD_TYPE_ROOT && h->index == slot &&
		    BLOB_ID_SLOT(h->blob_id) == slot && BLOB_ID_INCARNATION(h->blob_id) != 0 &&
		    (inc == 0 || h->gen > gen)) {
			inc = BLOB_ID_INCARNATION(h->blob_id);
			gen = h->gen;
		}
	}
	return inc;
}

/*
 * The slot's newest valid root is a tombstone: the slot is free, unless the
 * tombstone belongs to a group that turns out incomplete (D13).
 */
static void recover_tombstone(struct recover *rc, uint32_t slot, const struct md_root *pages,
			      int valid)
{
	int t = (valid == 3) ? (pages[1].hdr.gen > pages[0].hdr.gen) : (valid == 2);
	struct recover_blob *rb;

	rc->eff_gen[slot] = pages[t].hdr.gen;
	recover_note_rollback(rc, slot, &pages[t].group, pages[t].hdr.gen);
	if (pages[t].group.gen == 0 || pages[t].group.gen != pages[t].hdr.gen)
		return;
	rb = calloc(1, sizeof(*rb));
	if (rb == NULL) {
		rc->err = -ENOMEM;
		return;
	}
	rb->rc = rc;
	rb->slot = slot;
	rb->pick = t;
	rb->valid = valid;
	rb->tomb = true;
	rb->group = pages[t].group;
	if (recover_defer(rc, rb) != 0) {
		free(rb);
		rc->err = -ENOMEM;
	}
}

/* Decide what a slot holds and start loading a live blob. */
static void recover_slot(struct recover *rc, uint32_t slot)
{
	const struct md_root *pages = &rc->pages[(slot - rc->window) * 2];
	struct recover_blob *rb;
	int valid, pick;
	bool tomb;

	pick = blob_root_pick(rc->bs, slot, pages, &valid, &tomb);
	for (int p = 0; p < 2; p++) {
		if (valid & (1 << p)) {
			rc->max_gen = BS_MAX(rc->max_gen, pages[p].hdr.gen);
			rc->max_inc = BS_MAX(rc->max_inc, BLOB_ID_INCARNATION(pages[p].hdr.blob_id));
		}
	}
	if (pick == -ENOENT) {
		if (tomb)
			recover_tombstone(rc, slot, pages, valid);
		return;
	}
	rb = calloc(1, sizeof(*rb));
	if (rb != NULL && pick == -EILSEQ) {
		/* Something was written here but no page validates: keep it reserved. */
		bitarray_set(&rc->bs->slots_used, slot);
		bitarray_set(&rc->bs->slots_corrupt, slot);
		rc->bs->slot_inc[slot] = recover_guess_inc(pages, slot);
		rc->bs->report.corrupt_blobs++;
		LOG_ERR("recover: slot %u: no valid root page; skipped", slot);
		free(rb);
		return;
	}
	rb = rb ? rb : NULL;
	if (rb == NULL || (rb->blob = blob_alloc(rc->bs, pages[pick].hdr.blob_id)) == NULL) {
		free(rb);
		rc->err = -ENOMEM;
		return;
	}
	rb->rc = rc;
	rb->slot = slot;
	rb->pick = pick;
	rb->valid = valid;
	recover_note_slot(rc, slot, pages[pick].hdr.blob_id, pages[pick].hdr.gen);
	rc->loading++;
	recover_try_root(rb);
}

static void recover_window_read_cpl(void *cb_arg, int err)
{
	struct recover *rc = cb_arg;

	if (err != 0) {
		LOG_ERR("recover: reading root slots failed: %s", strerror(-err));
		recover_done(rc, err);
		return;
	}
	rc->bs->report.md_bytes_read += rc->nslots * 2 * MD_PAGE_SIZE;
	rc->loading = 1; /* hold the window open while slots start */
	rc->next_slot = rc->window;
	recover_pump(rc);
	if (--rc->loading == 0)
		recover_window(rc);
}

static void recover_finish(struct recover *rc);

/* Read the next window of root slots in large reads, all in flight at once. */
static void recover_window(struct recover *rc)
{
	struct bs_store *bs = rc->bs;
	uint64_t pages, first;
	struct md_batch *b;

	if (rc->err != 0) {
		recover_done(rc, rc->err);
		return;
	}
	rc->window += rc->nslots;
	if (rc->window >= bs->max_blobs) {
		recover_finish(rc);
		return;
	}
	rc->nslots = BS_MIN((uint64_t)RECOVER_WINDOW, bs->max_blobs - rc->window);
	pages = rc->nslots * 2;
	first = bs->root_start + rc->window * 2;
	b = md_batch_new(bs, recover_window_read_cpl, rc);
	if (b == NULL) {
		recover_done(rc, -ENOMEM);
		return;
	}
	for (uint64_t off = 0; off < pages; off += RECOVER_READ_PAGES)
		md_batch_read(b, (uint8_t *)rc->pages + off * MD_PAGE_SIZE, first + off,
			      BS_MIN((uint64_t)RECOVER_READ_PAGES, pages - off));
	md_batch_close(b);
}

static void recover_repair_cpl(void *cb_arg, int err)
{
	struct recover *rc = cb_arg;

	if (err != 0 && rc->err == 0)
		rc->err = err;
	if (--rc->repairing > 0)
		return;
	recover_done(rc, rc->err); /* destroys the repaired blobs */
}

/* Counters and masks from what was found; then repair fallbacks (D3). */
static void recover_finish_counts(struct recover *rc)
{
	struct bs_store *bs = rc->bs;

	bitarray_set_range(&bs->clusters_used, 0, bs->md_clusters);
	bitarray_clear_all(&bs->zeroed); /* D8 */
	atomic_store(&bs->free_clusters, bs->total_clusters - bitarray_count_set(&bs->clusters_used));
	atomic_store(&bs->alloc_hint, bs->md_clusters);
	bs->txn_next = rc->max_gen + 1;
	bs->id_next = rc->max_inc + 1;
	if ((uint32_t)bs->id_next == 0)
		bs->id_next++;
	bs->report.recovered = true;
	LOG_NOTICE("recover: %" PRIu64 " blobs, %" PRIu64 " corrupt, %" PRIu64
		   " from their previous commit", bs->report.blobs, bs->report.corrupt_blobs,
		   bs->report.fallback_roots);
	if (rc->nrepairs == 0 || rc->err != 0) {
		recover_done(rc, rc->err); /* a failed read (even in a rollback) fails the load */
		return;
	}
	rc->repairing = rc->nrepairs;
	for (uint32_t i = 0; i < rc->nrepairs; i++)
		blob_commit(rc->repairs[i], rc->repairs[i]->state == BLOB_DELETED,
			    recover_repair_cpl, rc);
}

/* ------------------------------------------------ group resolution (D13) */

/*
 * Every member settled on this group's generation or a newer one, and not
 * on a repair that rolled this group back (D17).
 */
static bool recover_group_complete(const struct recover *rc, const struct recover_blob *rb)
{
	for (uint32_t i = 0; i < rb->group.n && i < MD_GROUP_MAX_OTHERS; i++) {
		uint32_t m = rb->group.slots[i];

		if (m >= rc->bs->max_blobs || rc->eff_gen[m] < rb->gen || rc->rolled[m] == rb->gen)
			return false;
	}
	return true;
}

static void recover_resolved(struct recover *rc)
{
	if (--rc->resolving == 0)
		recover_finish_counts(rc);
}

/* Account a blob whose root is now settled: masks, relations, counters. */
static void recover_adopt(struct recover *rc, struct recover_blob *rb, bool repair)
{
	struct bs_store *bs = rc->bs;
	struct bs_blob *blob = rb->blob;

	if (!recover_claim_clusters(bs, blob)) {
		recover_corrupt(rb);
		blob_destroy(blob);
		return;
	}
	blob_map_for_each_page(&blob->map, recover_pool_cb, bs);
	recover_xattr_pages(bs, blob);
	recover_note_relations(bs, blob);
	bs->report.blobs++;
	if (repair && recover_add_repair(rc, blob) == 0) {
		bs->report.fallback_roots++;
		return;
	}
	blob_destroy(blob);
}

static void recover_rollback_cpl(void *cb_arg, int err)
{
	struct recover_blob *rb = cb_arg;
	struct recover *rc = rb->rc;

	if (err != 0 && !recover_md_invalid(err) && rc->err == 0)
		rc->err = err;
	if (err == 0) {
		recover_adopt(rc, rb, true);
	} else {
		if (recover_md_invalid(err))
			recover_corrupt(rb);
		blob_destroy(rb->blob);
	}
	md_free_pages(rb->other);
	free(rb);
	recover_resolved(rc);
}

/*
 * The slot's group-tagged root belongs to an incomplete group: go back to
 * the other page. If that is this blob's previous root, load it (and later
 * rewrite it as the newest); if not, the blob did not exist before the
 * group, so the slot is free and gets a tombstone newer than the group's
 * root, or a later load could find the group complete and revive it.
 */
static void recover_rollback(struct recover *rc, struct recover_blob *rb)
{
	int other = 1 - rb->pick;
	uint64_t id = rb->blob ? rb->blob->id : 0;
	const struct md_root *o = rb->other;
	bool prev = blob_root_valid(rc->bs, rb->slot, other, o) && !(o->hdr.flags & MD_ROOT_F_DELETED) &&
		    (id == 0 || o->hdr.blob_id == id);

	LOG_NOTICE("recover: slot %u: group commit %" PRIu64 " incomplete; rolling back",
		   rb->slot, rb->gen);
	if (rb->tomb && !prev) {
		/* A group tombstone with no live root before it (D16): free either way. */
		md_free_pages(rb->other);
		free(rb);
		recover_resolved(rc);
		return;
	}
	if (rb->blob != NULL)
		blob_destroy(rb->blob);
	rb->blob = blob_alloc(rc->bs, prev ? o->hdr.blob_id : id);
	if (rb->blob == NULL) {
		rc->err = -ENOMEM;
		recover_rollback_cpl(rb, -ENOMEM);
		return;
	}
	rb->blob->root_page = prev ? other : rb->pick;
	rb->blob->rollback_gen = rb->gen; /* D17: the repair says so */
	if (!prev) {
		/* Nothing to restore: free the slot, queue the tombstone, newer
		 * than the group's root whatever the store's counter says. */
		rb->blob->root_gen = rb->gen;
		bitarray_clear(&rc->bs->slots_used, rb->slot);
		rc->bs->slot_inc[rb->slot] = 0;
		rb->tomb = true;
		rb->blob->state = BLOB_DELETED; /* marks a tombstone repair */
		if (blob_map_init(&rb->blob->map, 0) != 0 || recover_add_repair(rc, rb->blob) != 0)
			rc->err = -ENOMEM;
		md_free_pages(rb->other);
		free(rb);
		recover_resolved(rc);
		return;
	}
	rb->pick = other;
	rb->fell_back = true;
	recover_note_slot(rc, rb->slot, o->hdr.blob_id, o->hdr.gen);
	if (blob_apply_root(rb->blob, o) != 0) {
		recover_rollback_cpl(rb, -EILSEQ);
		return;
	}
	rb->blob->root_gen = o->hdr.gen;
	blob_tree_load(rc->bs, rb->blob, o, recover_rollback_cpl, rb);
}

/* Decide every deferred group first (all from the same view), then act. */
static void recover_finish(struct recover *rc)
{
	bool *complete = calloc(rc->ndeferred ? rc->ndeferred : 1, sizeof(bool));

	if (complete == NULL) {
		recover_done(rc, -ENOMEM);
		return;
	}
	for (uint32_t i = 0; i < rc->ndeferred; i++)
		complete[i] = recover_group_complete(rc, rc->deferred[i]);
	rc->resolving = 1;
	for (uint32_t i = 0; i < rc->ndeferred; i++) {
		struct recover_blob *rb = rc->deferred[i];

		if (!complete[i]) {
			rc->resolving++;
			recover_rollback(rc, rb);
			continue;
		}
		if (!rb->tomb)
			recover_adopt(rc, rb, rb->fell_back);
		md_free_pages(rb->other);
		free(rb);
	}
	free(complete);
	rc->ndeferred = 0;
	recover_resolved(rc);
}

void store_recover(struct bs_store *bs, bs_cpl_fn cb_fn, void *cb_arg)
{
	struct recover *rc = calloc(1, sizeof(*rc));

	if (rc != NULL) {
		rc->eff_gen = calloc(bs->max_blobs, sizeof(uint64_t));
		rc->rolled = calloc(bs->max_blobs, sizeof(uint64_t));
	}
	if (rc == NULL || rc->eff_gen == NULL || rc->rolled == NULL ||
	    (rc->pages = recover_buf_alloc(bs)) == NULL) {
		if (rc != NULL) {
			free(rc->eff_gen);
			free(rc->rolled);
		}
		free(rc);
		store_defer_cpl(cb_fn, cb_arg, -ENOMEM);
		return;
	}
	rc->bs = bs;
	rc->cb_fn = cb_fn;
	rc->cb_arg = cb_arg;
	bitarray_clear_all(&bs->slots_corrupt);
	bs->report.blobs = 0;
	bs->report.corrupt_blobs = 0;
	bs->report.fallback_roots = 0;
	rc->window = 0;
	rc->nslots = 0;
	recover_window(rc);
}
