/*
 * A blob's cluster map and its shadow-paged radix tree (contract in
 * blob_map.h, page formats in format.h, rules in docs/durability.md).
 *
 * Invariants, for every level L < MD_MAX_MAP_DEPTH:
 *
 *  - The level's capacity is levels[L].dirty.nbits; levels[L].refs holds at
 *    least that many entries (NULL only when it is 0), and nnodes <= capacity.
 *    Levels at or above depth have nnodes == 0.
 *  - refs[] describes the committed tree exactly. Entries below nnodes are
 *    live nodes; entries in [nnodes, capacity) belong to nodes that a shrink
 *    or a depth decrease dropped. Their pages are still referenced by the
 *    durable root, so they stay here until the next commit releases them.
 *    That is the only record of pending releases: a prepare that fails and
 *    is retried recomputes them from the same refs, so a release can be
 *    neither lost nor doubled.
 *  - Dirty bits are set only below nnodes. Level 0 bits come from set,
 *    mark_dirty and resize; index-level bits only from init and resize.
 *    Prepare propagates changes upward in its own working copy of the
 *    bits, never in the map (a failed prepare leaves it intact).
 *  - Dropped refs exist only while root_dirty is set (every resize sets it,
 *    commit_done drops them), so root_dirty also stands for them.
 *  - root_refs equals the first nnodes refs of level depth-1; the rest null.
 *
 * Between blob_map_commit_prepare() and blob_map_commit_done() the caller
 * may keep setting and claiming entries, but must not resize the map.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blob/blob_map.h"
#include "blob/md_page.h"
#include "util/assert_int.h"

STATIC_ASSERT(MD_EXTENTS_PER_PAGE == 1008, "extent page fan-out");
STATIC_ASSERT(MD_REFS_PER_INDEX == 252, "index page fan-out");

/* Working state of one blob_map_commit_prepare(). */
struct bmap_prep {
	const struct blob_map *m;
	const struct blob_map_id *id;
	uint64_t gen;
	const struct blob_map_alloc *alloc;
	struct blob_map_plan *plan;
	struct bitarray work[MD_MAX_MAP_DEPTH];	/* nodes to render, per level */
	int nwork;				/* work[] entries initialised */
	void *spare;				/* page buffer to reuse (held an empty node) */
	uint32_t writes_cap;
	uint32_t release_cap;
};

/* ---- small helpers ---- */

static uint32_t bmap_load(const struct blob_map *m, uint64_t i)
{
	return __atomic_load_n(&m->clusters[i], __ATOMIC_ACQUIRE);
}

/* A null ref is all zero; anything else with gen 0 is malformed. */
static bool bmap_ref_well_formed(const struct md_ref *r)
{
	return r->gen != 0 || (r->pool_idx == 0 && r->crc == 0);
}

static bool bmap_ref_equal(const struct md_ref *a, const struct md_ref *b)
{
	return a->pool_idx == b->pool_idx && a->crc == b->crc && a->gen == b->gen;
}

int blob_map_depth_for(uint64_t num_clusters)
{
	uint64_t reach = (uint64_t)MD_ROOT_MAP_REFS * MD_EXTENTS_PER_PAGE;
	int depth = 1;

	if (num_clusters == 0)
		return 0;
	while (num_clusters > reach) {
		if (depth == (int)MD_MAX_MAP_DEPTH)
			return -EFBIG;
		reach *= MD_REFS_PER_INDEX;
		depth++;
	}
	return depth;
}

/* Nodes level @level needs to cover @num_clusters in a tree of @depth levels. */
static uint64_t bmap_nodes_at(uint64_t num_clusters, int depth, int level)
{
	uint64_t n = (num_clusters + MD_EXTENTS_PER_PAGE - 1) / MD_EXTENTS_PER_PAGE;

	if (level >= depth)
		return 0;
	for (int l = 0; l < level; l++)
		n = (n + MD_REFS_PER_INDEX - 1) / MD_REFS_PER_INDEX;
	return n;
}

/*
 * Raise the capacity of @lv to at least @n nodes (new refs null, new bits
 * clear). Changes nothing the map means, so a later failure needs no undo.
 */
static int bmap_level_reserve(struct blob_map_level *lv, uint64_t n)
{
	uint64_t cap = lv->dirty.nbits;
	struct md_ref *refs;

	if (n <= cap)
		return 0;
	refs = realloc(lv->refs, n * sizeof(*refs));
	if (refs == NULL)
		return -ENOMEM;
	memset(refs + cap, 0, (n - cap) * sizeof(*refs));
	lv->refs = refs;
	return bitarray_resize(&lv->dirty, n);
}

/*
 * Give back the capacity past nnodes once nothing is pending there. Best
 * effort: a failed realloc keeps larger arrays, which the invariants allow.
 */
static void bmap_level_trim(struct blob_map_level *lv)
{
	struct md_ref *refs;

	if (lv->dirty.nbits == lv->nnodes || bitarray_resize(&lv->dirty, lv->nnodes) != 0)
		return;
	if (lv->nnodes == 0) {
		free(lv->refs);
		lv->refs = NULL;
		return;
	}
	refs = realloc(lv->refs, lv->nnodes * sizeof(*refs));
	if (refs != NULL)
		lv->refs = refs;
}

/* ---- lifetime ---- */

/*
 * A new map: every node of every level exists and is dirty, so the first
 * commit decides each one (empty nodes write nothing) and writes a root.
 */
int blob_map_init(struct blob_map *m, uint64_t num_clusters)
{
	int depth = blob_map_depth_for(num_clusters);
	int rc = -ENOMEM;

	memset(m, 0, sizeof(*m));
	if (depth < 0)
		return depth;
	for (int l = 0; l < (int)MD_MAX_MAP_DEPTH; l++)
		if (bitarray_init(&m->levels[l].dirty, 0) != 0)
			goto out_free_map;
	m->clusters = calloc(num_clusters ? num_clusters : 1, sizeof(*m->clusters));
	if (m->clusters == NULL)
		goto out_free_map;
	for (int l = 0; l < depth; l++) {
		struct blob_map_level *lv = &m->levels[l];

		lv->nnodes = bmap_nodes_at(num_clusters, depth, l);
		rc = bmap_level_reserve(lv, lv->nnodes);
		if (rc != 0)
			goto out_free_map;
		bitarray_set_range(&lv->dirty, 0, lv->nnodes);
	}
	m->num_clusters = num_clusters;
	m->depth = (uint8_t)depth;
	m->root_dirty = true;
	return 0;

out_free_map:
	blob_map_free(m);
	return rc;
}

void blob_map_free(struct blob_map *m)
{
	for (int l = 0; l < (int)MD_MAX_MAP_DEPTH; l++) {
		free(m->levels[l].refs);
		bitarray_free(&m->levels[l].dirty);
	}
	free(m->clusters);
	memset(m, 0, sizeof(*m));
}

/* ---- resize ---- */

/* True if every entry in [@from, num_clusters) is 0 (resize precondition). */
static bool bmap_tail_is_zero(const struct blob_map *m, uint64_t from)
{
	for (uint64_t i = from; i < m->num_clusters; i++)
		if (bmap_load(m, i) != 0)
			return false;
	return true;
}

/* Reallocate the cluster array for @n entries, zeroing new ones. */
static int bmap_resize_clusters(struct blob_map *m, uint64_t n)
{
	uint32_t *c = realloc(m->clusters, (n ? n : 1) * sizeof(*c));

	if (c == NULL)
		return n > m->num_clusters ? -ENOMEM : 0;	/* a shrink may keep the old array */
	if (n > m->num_clusters)
		memset(c + m->num_clusters, 0, (n - m->num_clusters) * sizeof(*c));
	m->clusters = c;
	return 0;
}

/*
 * Adopt the new size (all allocations done, cannot fail). New nodes are
 * dirty; dropped nodes lose their bits but keep their refs for the next
 * commit to release. The last surviving node of every level is dirty too:
 * after a shrink an index node may still name dropped children. A depth
 * change needs nothing more: the pages of the levels that stay keep their
 * position and content, and the nodes of a new top level are all new.
 */
static void bmap_apply_size(struct blob_map *m, uint64_t n, int depth)
{
	for (int l = 0; l < (int)MD_MAX_MAP_DEPTH; l++) {
		struct blob_map_level *lv = &m->levels[l];
		uint64_t nn = bmap_nodes_at(n, depth, l);

		if (nn > lv->nnodes)
			bitarray_set_range(&lv->dirty, lv->nnodes, nn - lv->nnodes);
		else
			bitarray_clear_range(&lv->dirty, nn, lv->nnodes - nn);
		if (BS_MIN(nn, lv->nnodes) > 0)
			bitarray_set(&lv->dirty, BS_MIN(nn, lv->nnodes) - 1);
		lv->nnodes = nn;
	}
	m->num_clusters = n;
	m->depth = (uint8_t)depth;
	m->root_dirty = true;
}

/*
 * Allocate first (level capacities, then the cluster array), then adopt the
 * size, so an -ENOMEM leaves the map as it was. Callers must not resize
 * while a plan is outstanding, nor while other threads access entries.
 */
int blob_map_resize(struct blob_map *m, uint64_t num_clusters)
{
	int depth = blob_map_depth_for(num_clusters);
	int rc;

	if (depth < 0)
		return depth;
	if (num_clusters == m->num_clusters)
		return 0;
	assert(bmap_tail_is_zero(m, num_clusters));
	for (int l = 0; l < depth; l++) {
		rc = bmap_level_reserve(&m->levels[l], bmap_nodes_at(num_clusters, depth, l));
		if (rc != 0)
			return rc;
	}
	rc = bmap_resize_clusters(m, num_clusters);
	if (rc != 0)
		return rc;
	bmap_apply_size(m, num_clusters, depth);
	return 0;
}

/* ---- entries ---- */

uint32_t blob_map_get(const struct blob_map *m, uint64_t i)
{
	assert(i < m->num_clusters);
	return bmap_load(m, i);
}

bool blob_map_claim(struct blob_map *m, uint64_t i, uint32_t cluster)
{
	uint32_t expected = 0;

	assert(i < m->num_clusters);
	assert(cluster != 0);
	return __atomic_compare_exchange_n(&m->clusters[i], &expected, cluster, false,
					   __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

void blob_map_set(struct blob_map *m, uint64_t i, uint32_t cluster)
{
	assert(i < m->num_clusters);
	__atomic_store_n(&m->clusters[i], cluster, __ATOMIC_RELEASE);
	bitarray_set(&m->levels[0].dirty, i / MD_EXTENTS_PER_PAGE);
}

void blob_map_mark_dirty(struct blob_map *m, uint64_t i)
{
	assert(i < m->num_clusters);
	bitarray_set(&m->levels[0].dirty, i / MD_EXTENTS_PER_PAGE);
}

uint64_t blob_map_count_allocated(const struct blob_map *m)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < m->num_clusters; i++)
		n += bmap_load(m, i) != 0;
	return n;
}

bool blob_map_is_dirty(const struct blob_map *m)
{
	if (m->root_dirty)	/* also covers dropped nodes awaiting release */
		return true;
	for (int l = 0; l < m->depth; l++)
		if (bitarray_find_first_set(&m->levels[l].dirty, 0) != BITARRAY_NONE)
			return true;
	return false;
}

/* ---- commit: rendering ---- */

/* Fill the payload of leaf @k from the cluster array; false if all zero. */
static bool bmap_render_leaf(const struct blob_map *m, uint64_t k, struct md_extent_page *pg)
{
	uint64_t first = k * MD_EXTENTS_PER_PAGE;
	uint32_t any = 0;

	for (uint32_t j = 0; j < MD_EXTENTS_PER_PAGE; j++) {
		uint32_t c = first + j < m->num_clusters ? bmap_load(m, first + j) : 0;

		pg->clusters[j] = c;
		any |= c;
	}
	return any != 0;
}

/* Fill index node @k of level @l from its children's new refs; false if all null. */
static bool bmap_render_index(const struct blob_map_plan *plan, int l, uint64_t k,
			      struct md_index_page *pg)
{
	const struct md_ref *child = plan->new_refs[l - 1];
	uint64_t first = k * MD_REFS_PER_INDEX, n = plan->new_nnodes[l - 1];
	bool any = false;

	memset(pg->refs, 0, sizeof(pg->refs));
	for (uint32_t j = 0; j < MD_REFS_PER_INDEX && first + j < n; j++) {
		pg->refs[j] = child[first + j];
		any |= child[first + j].gen != 0;
	}
	return any;
}

/* Room for one more entry in a growing plan array; NULL (array intact) on -ENOMEM. */
static void *bmap_grow(void *arr, uint32_t *cap, uint32_t used, size_t elem)
{
	uint32_t ncap;
	void *a;

	if (used < *cap)
		return arr;
	if (*cap > UINT32_MAX / 2)
		return NULL;
	ncap = *cap ? *cap * 2 : 16;
	a = realloc(arr, (size_t)ncap * elem);
	if (a != NULL)
		*cap = ncap;
	return a;
}

/* Make room for one write and one release, before anything is allocated. */
static int bmap_prep_reserve(struct bmap_prep *p)
{
	struct blob_map_plan *plan = p->plan;
	struct blob_map_write *w;
	uint32_t *r;

	w = bmap_grow(plan->writes, &p->writes_cap, plan->nwrites, sizeof(*w));
	if (w == NULL)
		return -ENOMEM;
	plan->writes = w;
	r = bmap_grow(plan->release, &p->release_cap, plan->nrelease, sizeof(*r));
	if (r == NULL)
		return -ENOMEM;
	plan->release = r;
	return 0;
}

/* A page buffer for rendering: the spare one, or a new O_DIRECT-aligned one. */
static void *bmap_prep_buffer(struct bmap_prep *p)
{
	void *page = p->spare;

	p->spare = NULL;
	if (page == NULL && posix_memalign(&page, MD_PAGE_SIZE, MD_PAGE_SIZE) != 0)
		return NULL;
	return page;
}

/*
 * Put the rendered node @k of level @l in a fresh pool page (D2: never the
 * page @old names, which the durable root still references), seal it (D1)
 * and list it in the plan. On allocator failure the buffer goes back to the
 * spare slot and nothing is listed.
 */
static int bmap_prep_seal(struct bmap_prep *p, int l, uint64_t k, void *page,
			  const struct md_ref *old, struct md_ref *nref)
{
	struct blob_map_write *w;
	uint32_t idx;
	int rc;

	rc = p->alloc->alloc_page(p->alloc->arg, &idx);
	if (rc != 0) {
		p->spare = page;
		return ALWAYS(rc < 0) ? rc : -EIO;
	}
	assert(old->gen == 0 || old->pool_idx != idx);	/* D2 */
	assert(old->gen < p->gen);			/* D3: generations only grow */
	md_page_init(page, l ? MD_TYPE_INDEX : MD_TYPE_EXTENT, p->id->pool_start + idx,
		     p->id->blob_id, p->gen, p->id->store_id, (uint32_t)k, (uint16_t)l);
	nref->pool_idx = idx;
	nref->crc = md_page_seal(page);
	nref->gen = p->gen;
	w = &p->plan->writes[p->plan->nwrites++];
	w->pool_idx = idx;
	w->page = page;
	return 0;
}

/*
 * Commit node @k of level @l: render it; empty nodes get a null ref and no
 * page. If its ref changed, its old page is released once the commit is
 * durable (D5, by the caller) and its parent must be rewritten.
 */
static int bmap_prep_node(struct bmap_prep *p, int l, uint64_t k)
{
	struct blob_map_plan *plan = p->plan;
	struct md_ref old = p->m->levels[l].refs[k], nref = { 0 };
	void *page;
	bool full;
	int rc;

	rc = bmap_prep_reserve(p);
	if (rc != 0)
		return rc;
	page = bmap_prep_buffer(p);
	if (page == NULL)
		return -ENOMEM;
	full = l == 0 ? bmap_render_leaf(p->m, k, page) : bmap_render_index(plan, l, k, page);
	if (full) {
		rc = bmap_prep_seal(p, l, k, page, &old, &nref);
		if (rc != 0)
			return rc;
	} else {
		p->spare = page;
	}
	plan->new_refs[l][k] = nref;
	if (bmap_ref_equal(&old, &nref))
		return 0;
	if (old.gen != 0)
		plan->release[plan->nrelease++] = old.pool_idx;
	if (l + 1 < p->m->depth)
		bitarray_set(&p->work[l + 1], k / MD_REFS_PER_INDEX);
	return 0;
}

/* ---- commit: plan assembly ---- */

/* Start the plan from the committed refs of every level (dropped nodes null). */
static int bmap_plan_setup(const struct blob_map *m, struct blob_map_plan *plan)
{
	memset(plan, 0, sizeof(*plan));
	plan->new_depth = m->depth;
	for (int l = 0; l < (int)MD_MAX_MAP_DEPTH; l++) {
		const struct blob_map_level *lv = &m->levels[l];
		uint64_t cap = BS_MAX(lv->dirty.nbits, 1);

		plan->new_nnodes[l] = lv->nnodes;
		plan->new_refs[l] = calloc(cap, sizeof(struct md_ref));
		if (plan->new_refs[l] == NULL)
			return -ENOMEM;
		if (lv->nnodes > 0)
			memcpy(plan->new_refs[l], lv->refs, lv->nnodes * sizeof(struct md_ref));
	}
	return 0;
}

/* The working dirty bits: a private copy, so the map stays untouched. */
static int bmap_work_setup(struct bmap_prep *p)
{
	for (int l = 0; l < p->m->depth; l++) {
		const struct bitarray *dirty = &p->m->levels[l].dirty;
		struct bitarray *work = &p->work[l];

		if (bitarray_init(work, p->m->levels[l].nnodes) != 0)
			return -ENOMEM;
		p->nwork++;
		for (uint64_t k = bitarray_find_first_set(dirty, 0); k != BITARRAY_NONE;
		     k = bitarray_find_first_set(dirty, k + 1))
			bitarray_set(work, k);
	}
	return 0;
}

/* Commit every marked node of level @l, in node order. */
static int bmap_prep_level(struct bmap_prep *p, int l)
{
	const struct bitarray *work = &p->work[l];
	int rc;

	for (uint64_t k = bitarray_find_first_set(work, 0); k != BITARRAY_NONE;
	     k = bitarray_find_first_set(work, k + 1)) {
		rc = bmap_prep_node(p, l, k);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Release the pages of nodes a shrink or a depth decrease dropped (D5). */
static int bmap_prep_dropped(struct bmap_prep *p)
{
	struct blob_map_plan *plan = p->plan;

	for (int l = 0; l < (int)MD_MAX_MAP_DEPTH; l++) {
		const struct blob_map_level *lv = &p->m->levels[l];

		for (uint64_t k = lv->nnodes; k < lv->dirty.nbits; k++) {
			uint32_t *r;

			if (lv->refs[k].gen == 0)
				continue;
			r = bmap_grow(plan->release, &p->release_cap, plan->nrelease, sizeof(*r));
			if (r == NULL)
				return -ENOMEM;
			plan->release = r;
			plan->release[plan->nrelease++] = lv->refs[k].pool_idx;
		}
	}
	return 0;
}

/* The root names the nodes of the top level. */
static void bmap_prep_root(struct blob_map_plan *plan)
{
	int top = plan->new_depth - 1;

	if (top < 0)
		return;
	assert(plan->new_nnodes[top] <= MD_ROOT_MAP_REFS);
	memcpy(plan->new_root_refs, plan->new_refs[top],
	       plan->new_nnodes[top] * sizeof(struct md_ref));
}

/*
 * Level by level from the leaves up, every marked node is rendered into a
 * fresh page and marks its parent when its ref changes; the pages of
 * replaced and dropped nodes are listed for release. The map is read only.
 */
int blob_map_commit_prepare(struct blob_map *m, const struct blob_map_id *id, uint64_t gen,
			    const struct blob_map_alloc *alloc, struct blob_map_plan *plan)
{
	struct bmap_prep p = { .m = m, .id = id, .gen = gen, .alloc = alloc, .plan = plan };
	int rc;

	assert(gen != 0);
	rc = bmap_plan_setup(m, plan);
	if (rc != 0)
		goto out_free_work;
	rc = bmap_work_setup(&p);
	for (int l = 0; l < m->depth && rc == 0; l++)
		rc = bmap_prep_level(&p, l);
	if (rc == 0)
		rc = bmap_prep_dropped(&p);
	if (rc == 0)
		bmap_prep_root(plan);
out_free_work:
	for (int l = 0; l < p.nwork; l++)
		bitarray_free(&p.work[l]);
	free(p.spare);
	return rc;
}

/* ---- commit: completion ---- */

/* The plan's page for node @k of level @l, or NULL (writes are in (level, node) order). */
static const void *bmap_plan_find(const struct blob_map_plan *plan, int l, uint64_t k)
{
	uint64_t key = ((uint64_t)l << 32) | k;
	uint32_t lo = 0, hi = plan->nwrites;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const struct md_header *h = plan->writes[mid].page;
		uint64_t at = ((uint64_t)h->level << 32) | h->index;

		if (at == key)
			return h;
		if (at < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/*
 * True if leaf @k holds what the new tree stores for it: its rendered page,
 * or zeros if its new ref is null. A leaf the plan did not render keeps its
 * bit (it was dirtied after prepare).
 */
static bool bmap_leaf_matches(const struct blob_map *m, const struct blob_map_plan *plan,
			      uint64_t k)
{
	const struct md_extent_page *pg = NULL;
	uint64_t first = k * MD_EXTENTS_PER_PAGE;

	if (plan->new_refs[0][k].gen != 0) {
		pg = bmap_plan_find(plan, 0, k);
		if (pg == NULL)
			return false;
	}
	for (uint32_t j = 0; j < MD_EXTENTS_PER_PAGE; j++) {
		uint32_t c = first + j < m->num_clusters ? bmap_load(m, first + j) : 0;

		if (c != (pg ? pg->clusters[j] : 0))
			return false;
	}
	return true;
}

/*
 * Clear the leaf bits the commit made durable. Entries set or claimed after
 * prepare took its snapshot (D9) differ from the rendered page: their leaf
 * stays dirty for the next commit.
 */
static void bmap_done_leaves(struct blob_map *m, const struct blob_map_plan *plan)
{
	struct bitarray *dirty = &m->levels[0].dirty;

	for (uint64_t k = bitarray_find_first_set(dirty, 0); k != BITARRAY_NONE;
	     k = bitarray_find_first_set(dirty, k + 1))
		if (bmap_leaf_matches(m, plan, k))
			bitarray_clear(dirty, k);
}

/*
 * The plan is durable: its refs become the committed ones (it hands its
 * arrays over), which also forgets the dropped nodes it released. Index
 * bits are cleared wholesale (nothing sets them between prepare and done);
 * leaf bits only where the map still matches what was written.
 */
void blob_map_commit_done(struct blob_map *m, struct blob_map_plan *plan)
{
	assert(plan->new_depth == m->depth);	/* no resize since prepare */
	if (m->depth > 0)
		bmap_done_leaves(m, plan);
	for (int l = 0; l < (int)MD_MAX_MAP_DEPTH; l++) {
		struct blob_map_level *lv = &m->levels[l];

		assert(plan->new_nnodes[l] == lv->nnodes);
		assert(plan->new_refs[l] != NULL);
		free(lv->refs);
		lv->refs = plan->new_refs[l];
		plan->new_refs[l] = NULL;
		if (l > 0)
			bitarray_clear_all(&lv->dirty);
		bmap_level_trim(lv);
	}
	memcpy(m->root_refs, plan->new_root_refs, sizeof(m->root_refs));
	m->root_dirty = false;
}

void blob_map_plan_free(struct blob_map_plan *plan)
{
	for (uint32_t i = 0; i < plan->nwrites; i++)
		free(plan->writes[i].page);
	free(plan->writes);
	free(plan->release);
	for (int l = 0; l < (int)MD_MAX_MAP_DEPTH; l++)
		free(plan->new_refs[l]);
	memset(plan, 0, sizeof(*plan));
}

/* ---- loading ---- */

/* Root refs must be well formed and null past the top level's nodes. */
static bool bmap_root_refs_valid(const struct blob_map *m,
				 const struct md_ref root_refs[MD_ROOT_MAP_REFS])
{
	uint64_t ntop = m->depth ? m->levels[m->depth - 1].nnodes : 0;

	for (uint32_t k = 0; k < MD_ROOT_MAP_REFS; k++) {
		if (!bmap_ref_well_formed(&root_refs[k]))
			return false;
		if (k >= ntop && root_refs[k].gen != 0)
			return false;
	}
	return true;
}

/*
 * @m needs no prior init; on failure it is left empty (freeing it is
 * harmless). A depth that does not fit num_clusters, a malformed root ref
 * or one past the top level's nodes is corruption: -EILSEQ.
 */
int blob_map_load_begin(struct blob_map *m, uint64_t num_clusters, uint8_t depth,
			const struct md_ref root_refs[MD_ROOT_MAP_REFS])
{
	int rc = blob_map_init(m, num_clusters);

	if (rc != 0)
		return rc;
	if (depth != m->depth || !bmap_root_refs_valid(m, root_refs)) {
		blob_map_free(m);
		return -EILSEQ;
	}
	for (int l = 0; l < (int)MD_MAX_MAP_DEPTH; l++)
		bitarray_clear_all(&m->levels[l].dirty);
	m->root_dirty = false;
	memcpy(m->root_refs, root_refs, sizeof(m->root_refs));
	if (depth > 0)
		memcpy(m->levels[depth - 1].refs, root_refs,
		       m->levels[depth - 1].nnodes * sizeof(struct md_ref));
	return 0;
}

/* Scan refs of @level from *@cursor; *@cursor ends past the last node examined. */
uint32_t blob_map_load_next(const struct blob_map *m, int level, uint64_t *cursor,
			    uint32_t *out, uint64_t *nodes, uint32_t max)
{
	const struct blob_map_level *lv;
	uint32_t n = 0;
	uint64_t k;

	if (level < 0 || level >= m->depth)
		return 0;
	lv = &m->levels[level];
	for (k = *cursor; k < lv->nnodes && n < max; k++) {
		if (lv->refs[k].gen == 0)
			continue;
		out[n] = lv->refs[k].pool_idx;
		if (nodes != NULL)
			nodes[n] = k;
		n++;
	}
	*cursor = k;
	return n;
}

/*
 * Check an index page's refs (well formed, inside the map, not newer than
 * the page) and record them as the committed refs of its children.
 */
static const char *bmap_absorb_index(struct blob_map *m, int level, uint64_t node,
				     const struct md_index_page *pg)
{
	struct blob_map_level *child = &m->levels[level - 1];
	uint64_t first = node * MD_REFS_PER_INDEX;
	bool any = false;

	for (uint32_t j = 0; j < MD_REFS_PER_INDEX; j++) {
		const struct md_ref *r = &pg->refs[j];

		if (!bmap_ref_well_formed(r))
			return "malformed null reference";
		if (r->gen == 0)
			continue;
		if (first + j >= child->nnodes)
			return "reference past the end of the map";
		if (r->gen > pg->hdr.gen)
			return "child newer than its parent";
		any = true;
	}
	if (!any)
		return "index page without references";	/* never written */
	memcpy(child->refs + first, pg->refs,
	       BS_MIN(MD_REFS_PER_INDEX, child->nnodes - first) * sizeof(struct md_ref));
	return NULL;
}

/* Check an extent page (nothing past the end, not empty) and copy its clusters. */
static const char *bmap_absorb_extent(struct blob_map *m, uint64_t node,
				      const struct md_extent_page *pg)
{
	uint64_t first = node * MD_EXTENTS_PER_PAGE;
	uint32_t n = (uint32_t)BS_MIN(MD_EXTENTS_PER_PAGE, m->num_clusters - first);
	uint32_t any = 0;

	for (uint32_t j = 0; j < MD_EXTENTS_PER_PAGE; j++) {
		if (j >= n && pg->clusters[j] != 0)
			return "cluster past the end of the blob";
		any |= pg->clusters[j];
	}
	if (any == 0)
		return "extent page without clusters";	/* never written */
	for (uint32_t j = 0; j < n; j++)
		__atomic_store_n(&m->clusters[first + j], pg->clusters[j], __ATOMIC_RELAXED);
	return NULL;
}

/* The committed ref of @node at @level, or a reason it has none. */
static const char *bmap_load_ref(const struct blob_map *m, int level, uint64_t node,
				 struct md_ref *ref)
{
	if (level < 0 || level >= m->depth || node >= m->levels[level].nnodes)
		return "no such node in the map";
	*ref = m->levels[level].refs[node];
	if (ref->gen == 0)
		return "node has no reference";
	return NULL;
}

/* D1: everything the reference and the node's position say about its page. */
static void bmap_expect(const struct blob_map_id *id, int level, uint64_t node,
			const struct md_ref *ref, struct md_expect *e)
{
	*e = (struct md_expect){
		.type = level ? MD_TYPE_INDEX : MD_TYPE_EXTENT,
		.page_no = id->pool_start + ref->pool_idx,
		.blob_id = id->blob_id,
		.gen = ref->gen,
		.crc = ref->crc,
		.check_crc = true,
		.store_id = id->store_id,
		.index = (uint32_t)node,
		.level = (uint16_t)level,
	};
}

/*
 * Accept a page only if it is exactly the one the committed ref names (D1),
 * then absorb it. Nothing is recorded from a page that fails any check.
 */
int blob_map_load_page(struct blob_map *m, const struct blob_map_id *id, int level,
		       uint64_t node, const void *page, const char **why)
{
	struct md_expect e;
	struct md_ref ref;
	const char *reason = bmap_load_ref(m, level, node, &ref);

	if (reason == NULL) {
		bmap_expect(id, level, node, &ref, &e);
		if (md_page_check(page, &e, &reason) == 0)
			reason = level ? bmap_absorb_index(m, level, node, page)
				       : bmap_absorb_extent(m, node, page);
	}
	if (why != NULL)
		*why = reason;
	return reason ? -EILSEQ : 0;
}

/*
 * Every page the durable tree references, including those of nodes a
 * resize dropped since (they stay in use until the next commit is durable).
 */
void blob_map_for_each_page(const struct blob_map *m, void (*fn)(void *arg, uint32_t pool_idx),
			    void *arg)
{
	for (int l = 0; l < (int)MD_MAX_MAP_DEPTH; l++) {
		const struct blob_map_level *lv = &m->levels[l];

		for (uint64_t k = 0; k < lv->dirty.nbits; k++)
			if (lv->refs[k].gen != 0)
				fn(arg, lv->refs[k].pool_idx);
	}
}
