/*
 * Cluster map suite: the radix tree's commit and load against an in-memory
 * pool and a model array, across depth changes; shadow paging (D2) and
 * release sets (D5) checked by set arithmetic at every commit; failed
 * prepares; entries changed between prepare and done (D9); corrupt, stale
 * and misdirected pages (D1); claim races between threads.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "test_helpers.h"
#include "blob/blob_map.h"
#include "blob/md_page.h"
#include "util/assert_int.h"

#define TP_PAGES 1024u
#define TP_NEVER UINT32_MAX
#define T_POOL_START 1000u
#define T_STORE_ID 0x5703e1d5a11ce5ull
#define T_BLOB_ID BLOB_ID(3, 17)
#define EPP ((uint64_t)MD_EXTENTS_PER_PAGE)
#define DEPTH1_MAX (64ull * 1008)
#define DEPTH2_MAX (64ull * 252 * 1008)
#define DEPTH3_MAX (64ull * 252 * 252 * 1008)
#define DEPTH4_MAX (64ull * 252 * 252 * 252 * 1008)

/* ---- the pool: pages as the device holds them, and an allocator ---- */

struct tpool {
	uint8_t *pages;			/* TP_PAGES pages */
	uint8_t *prev;			/* each page's content before its last write */
	bool used[TP_PAGES];
	uint32_t nused;
	uint32_t fail_after;		/* allocations left before -ENOSPC */
	bool lowest_first;		/* deterministic: lowest free page */
	uint64_t rng;
};

static void tp_init(struct tpool *p, uint64_t seed, bool lowest_first)
{
	memset(p, 0, sizeof(*p));
	p->pages = calloc(TP_PAGES, MD_PAGE_SIZE);
	p->prev = calloc(TP_PAGES, MD_PAGE_SIZE);
	assert_non_null(p->pages);
	assert_non_null(p->prev);
	p->fail_after = TP_NEVER;
	p->lowest_first = lowest_first;
	p->rng = seed;
}

static void tp_free_pool(struct tpool *p)
{
	free(p->pages);
	free(p->prev);
}

static uint8_t *tp_page(const struct tpool *p, uint32_t idx)
{
	assert_true(idx < TP_PAGES);
	return p->pages + (size_t)idx * MD_PAGE_SIZE;
}

/* blob_map_alloc callback: a free page (random or lowest), or -ENOSPC. */
static int tp_alloc_page(void *arg, uint32_t *pool_idx)
{
	struct tpool *p = arg;
	uint32_t start = p->lowest_first ? 0 : (uint32_t)(th_rand(&p->rng) % TP_PAGES);

	if (p->fail_after == 0)
		return -ENOSPC;
	if (p->fail_after != TP_NEVER)
		p->fail_after--;
	for (uint32_t n = 0; n < TP_PAGES; n++) {
		uint32_t i = (start + n) % TP_PAGES;

		if (!p->used[i]) {
			p->used[i] = true;
			p->nused++;
			*pool_idx = i;
			return 0;
		}
	}
	return -ENOSPC;
}

static void tp_release(struct tpool *p, uint32_t idx)
{
	assert_true(idx < TP_PAGES);
	assert_true(p->used[idx]);
	p->used[idx] = false;
	p->nused--;
}

/* "Write" a page, keeping what it overwrote for the stale-page tests. */
static void tp_write(struct tpool *p, uint32_t idx, const void *page)
{
	memcpy(p->prev + (size_t)idx * MD_PAGE_SIZE, tp_page(p, idx), MD_PAGE_SIZE);
	memcpy(tp_page(p, idx), page, MD_PAGE_SIZE);
}

/* ---- page sets ---- */

struct pset {
	bool in[TP_PAGES];
	uint32_t n;
};

static void pset_add(void *arg, uint32_t idx)
{
	struct pset *s = arg;

	assert_true(idx < TP_PAGES);
	assert_false(s->in[idx]);	/* a page is referenced once */
	s->in[idx] = true;
	s->n++;
}

static void pset_of(const struct blob_map *m, struct pset *s)
{
	memset(s, 0, sizeof(*s));
	blob_map_for_each_page(m, pset_add, s);
}

static void pset_assert_equal(const struct pset *a, const struct pset *b)
{
	assert_int_equal(a->n, b->n);
	assert_memory_equal(a->in, b->in, sizeof(a->in));
}

/* ---- a blob under test: its map, committed root and model ---- */

struct tblob {
	struct blob_map m;
	struct blob_map_id id;
	uint64_t gen;
	uint64_t n;			/* committed num_clusters */
	uint8_t depth;			/* committed root */
	struct md_ref root[MD_ROOT_MAP_REFS];
	uint32_t *model;		/* expected entries (NULL: no model) */
};

static void tb_init(struct tblob *b, uint64_t n, uint64_t blob_id, bool with_model)
{
	memset(b, 0, sizeof(*b));
	assert_int_equal(blob_map_init(&b->m, n), 0);
	b->id.blob_id = blob_id;
	b->id.store_id = T_STORE_ID;
	b->id.pool_start = T_POOL_START;
	if (with_model) {
		b->model = calloc(n ? n : 1, sizeof(uint32_t));
		assert_non_null(b->model);
	}
}

static void tb_free(struct tblob *b)
{
	blob_map_free(&b->m);
	free(b->model);
}

static void tb_set(struct tblob *b, uint64_t i, uint32_t v)
{
	blob_map_set(&b->m, i, v);
	if (b->model != NULL)
		b->model[i] = v;
}

/* Resize as the blob layer does: free the entries past a new end first. */
static void tb_resize(struct tblob *b, uint64_t n)
{
	uint64_t old = b->m.num_clusters;

	for (uint64_t i = n; i < old; i++)
		if (blob_map_get(&b->m, i) != 0)
			tb_set(b, i, 0);
	assert_int_equal(blob_map_resize(&b->m, n), 0);
	assert_int_equal(b->m.num_clusters, n);
	if (b->model != NULL) {
		b->model = realloc(b->model, (n ? n : 1) * sizeof(uint32_t));
		assert_non_null(b->model);
		if (n > old)
			memset(b->model + old, 0, (n - old) * sizeof(uint32_t));
	}
}

/* D2: every write goes to a page the pre-commit tree does not reference. */
static void check_plan_writes(const struct tblob *b, const struct blob_map_plan *plan,
			      const struct pset *before, uint64_t gen)
{
	struct pset seen = { 0 };

	for (uint32_t i = 0; i < plan->nwrites; i++) {
		const struct blob_map_write *w = &plan->writes[i];
		const struct md_header *h = w->page;
		struct md_expect e = {
			.type = h->level ? MD_TYPE_INDEX : MD_TYPE_EXTENT,
			.page_no = T_POOL_START + w->pool_idx, .blob_id = b->id.blob_id,
			.gen = gen, .store_id = T_STORE_ID, .index = MD_ANY_INDEX,
			.level = MD_ANY_LEVEL,
		};

		assert_false(before->in[w->pool_idx]);	/* D2 */
		pset_add(&seen, w->pool_idx);
		assert_int_equal(((uintptr_t)w->page) % MD_PAGE_SIZE, 0);
		assert_int_equal(md_page_check(w->page, &e, NULL), 0);
	}
}

/* D5: released = old pages the new tree dropped; written = its new pages. */
static void check_release_sets(const struct blob_map_plan *plan, const struct pset *before,
			       const struct pset *after)
{
	struct pset rel = { 0 };
	uint32_t dropped = 0, added = 0;

	for (uint32_t i = 0; i < plan->nrelease; i++) {
		pset_add(&rel, plan->release[i]);
		assert_true(before->in[plan->release[i]]);
		assert_false(after->in[plan->release[i]]);
	}
	for (uint32_t i = 0; i < TP_PAGES; i++) {
		dropped += before->in[i] && !after->in[i];
		added += after->in[i] && !before->in[i];
	}
	assert_int_equal(rel.n, dropped);
	assert_int_equal(plan->nwrites, added);
	for (uint32_t i = 0; i < plan->nwrites; i++)
		assert_true(after->in[plan->writes[i].pool_idx]);
}

/*
 * One full commit: prepare, write the pages, done, release (as the caller
 * does once the flush completed), with the D2/D5 checks and pool accounting
 * (the pool holds this blob's pages only). Reports the plan's sizes.
 */
static void tb_commit_counts(struct tblob *b, struct tpool *p, uint32_t *nw, uint32_t *nr)
{
	struct blob_map_alloc alloc = { .alloc_page = tp_alloc_page, .arg = p };
	struct blob_map_plan plan;
	struct pset before, after;

	pset_of(&b->m, &before);
	b->gen++;
	assert_int_equal(blob_map_commit_prepare(&b->m, &b->id, b->gen, &alloc, &plan), 0);
	check_plan_writes(b, &plan, &before, b->gen);
	for (uint32_t i = 0; i < plan.nwrites; i++)
		tp_write(p, plan.writes[i].pool_idx, plan.writes[i].page);
	blob_map_commit_done(&b->m, &plan);
	pset_of(&b->m, &after);
	check_release_sets(&plan, &before, &after);
	for (uint32_t i = 0; i < plan.nrelease; i++)
		tp_release(p, plan.release[i]);
	assert_int_equal(p->nused, after.n);
	for (uint32_t i = 0; i < TP_PAGES; i++)
		assert_int_equal(p->used[i], after.in[i]);
	b->depth = plan.new_depth;
	memcpy(b->root, plan.new_root_refs, sizeof(b->root));
	b->n = b->m.num_clusters;
	assert_int_equal(b->depth, blob_map_depth_for(b->n));
	if (nw != NULL)
		*nw = plan.nwrites;
	if (nr != NULL)
		*nr = plan.nrelease;
	blob_map_plan_free(&plan);
	assert_false(blob_map_is_dirty(&b->m));
}

static void tb_commit(struct tblob *b, struct tpool *p)
{
	tb_commit_counts(b, p, NULL, NULL);
}

/* Load every page of @level that @m names, small batches to exercise the cursor. */
static void load_level(struct blob_map *m, const struct blob_map_id *id,
		       const struct tpool *p, int level)
{
	uint32_t idx[5], n;
	uint64_t nodes[5], cursor = 0;
	const char *why = NULL;

	while ((n = blob_map_load_next(m, level, &cursor, idx, nodes, 5)) > 0) {
		for (uint32_t i = 0; i < n; i++) {
			if (blob_map_load_page(m, id, level, nodes[i], tp_page(p, idx[i]), &why))
				fail_msg("level %d node %lu: %s", level, (unsigned long)nodes[i], why);
		}
	}
}

/* Load the committed root's tree from the pool into @out. */
static void tb_load(const struct tblob *b, const struct tpool *p, struct blob_map *out)
{
	assert_int_equal(blob_map_load_begin(out, b->n, b->depth, b->root), 0);
	for (int l = b->depth - 1; l >= 0; l--)
		load_level(out, &b->id, p, l);
}

/* Reload the committed tree and compare it with the live map and the model. */
static void tb_reload_check(const struct tblob *b, const struct tpool *p)
{
	struct blob_map m2;
	struct pset s1, s2;

	tb_load(b, p, &m2);
	assert_false(blob_map_is_dirty(&m2));
	assert_int_equal(m2.num_clusters, b->m.num_clusters);
	assert_int_equal(m2.depth, b->m.depth);
	for (uint64_t i = 0; i < b->n; i++) {
		uint32_t v = blob_map_get(&m2, i);

		if (v != blob_map_get(&b->m, i) || (b->model && v != b->model[i]))
			fail_msg("entry %lu: loaded %u", (unsigned long)i, v);
	}
	pset_of(&b->m, &s1);
	pset_of(&m2, &s2);
	pset_assert_equal(&s1, &s2);
	assert_int_equal(blob_map_count_allocated(&m2), blob_map_count_allocated(&b->m));
	blob_map_free(&m2);
}

static uint32_t rand_cluster(uint64_t *rng)
{
	return (uint32_t)th_rand(rng) | 1u;
}

/* ---- tests ---- */

static void test_depth_for_boundaries(void **state)
{
	struct blob_map m;

	assert_int_equal(blob_map_depth_for(0), 0);
	assert_int_equal(blob_map_depth_for(1), 1);
	assert_int_equal(blob_map_depth_for(DEPTH1_MAX), 1);
	assert_int_equal(blob_map_depth_for(DEPTH1_MAX + 1), 2);
	assert_int_equal(blob_map_depth_for(DEPTH2_MAX), 2);
	assert_int_equal(blob_map_depth_for(DEPTH2_MAX + 1), 3);
	assert_int_equal(blob_map_depth_for(DEPTH3_MAX), 3);
	assert_int_equal(blob_map_depth_for(DEPTH3_MAX + 1), 4);
	assert_int_equal(blob_map_depth_for(DEPTH4_MAX), 4);
	assert_int_equal(blob_map_depth_for(DEPTH4_MAX + 1), -EFBIG);
	assert_int_equal(blob_map_depth_for(UINT64_MAX), -EFBIG);
	assert_int_equal(blob_map_init(&m, DEPTH4_MAX + 1), -EFBIG);
	blob_map_free(&m);	/* safe after a failed init */
}

static void test_entries_set_get_claim(void **state)
{
	struct blob_map m;

	assert_int_equal(blob_map_init(&m, 3000), 0);
	assert_int_equal(m.depth, 1);
	assert_int_equal(m.levels[0].nnodes, 3);
	assert_true(blob_map_is_dirty(&m));
	assert_int_equal(blob_map_count_allocated(&m), 0);
	assert_true(blob_map_claim(&m, 5, 77));
	assert_false(blob_map_claim(&m, 5, 78));
	assert_int_equal(blob_map_get(&m, 5), 77);
	blob_map_set(&m, 2999, 9);
	blob_map_set(&m, 5, 0);
	assert_int_equal(blob_map_get(&m, 5), 0);
	assert_true(blob_map_claim(&m, 5, 78));
	assert_int_equal(blob_map_count_allocated(&m), 2);
	assert_true(bitarray_get(&m.levels[0].dirty, 2));
	blob_map_free(&m);
}

static void test_empty_maps_write_nothing(void **state)
{
	static const uint64_t sizes[] = { 0, 1, 5000, DEPTH1_MAX + 1 };
	struct tpool p;

	tp_init(&p, 1, false);
	for (size_t s = 0; s < BS_ARRAY_SIZE(sizes); s++) {
		struct tblob b;
		uint32_t nw, nr;

		tb_init(&b, sizes[s], T_BLOB_ID, true);
		assert_true(blob_map_is_dirty(&b.m));
		tb_commit_counts(&b, &p, &nw, &nr);
		assert_int_equal(nw, 0);
		assert_int_equal(nr, 0);
		for (uint32_t k = 0; k < MD_ROOT_MAP_REFS; k++)
			assert_int_equal(b.root[k].gen, 0);
		tb_reload_check(&b, &p);
		tb_free(&b);
	}
	tp_free_pool(&p);
}

/* Only the changed leaf and its ancestors are rewritten; old ones released. */
static void test_incremental_commit_rewrites_path(void **state)
{
	struct tpool p;
	struct tblob b;
	uint32_t nw, nr;

	tp_init(&p, 2, false);
	tb_init(&b, 70000, T_BLOB_ID, true);
	tb_set(&b, 0, 11);
	tb_set(&b, 10 * EPP + 3, 12);
	tb_set(&b, 69999, 13);
	tb_commit_counts(&b, &p, &nw, &nr);
	assert_int_equal(b.depth, 2);
	assert_int_equal(nw, 4);	/* three leaves, one index page */
	assert_int_equal(nr, 0);
	tb_reload_check(&b, &p);
	tb_set(&b, 10 * EPP + 4, 14);
	tb_commit_counts(&b, &p, &nw, &nr);
	assert_int_equal(nw, 2);
	assert_int_equal(nr, 2);
	tb_reload_check(&b, &p);
	tb_set(&b, 10 * EPP + 3, 0);	/* leaf 10 becomes empty: no page */
	tb_set(&b, 10 * EPP + 4, 0);
	tb_commit_counts(&b, &p, &nw, &nr);
	assert_int_equal(nw, 1);
	assert_int_equal(nr, 2);
	assert_int_equal(b.m.levels[0].refs[10].gen, 0);
	tb_reload_check(&b, &p);
	blob_map_mark_dirty(&b.m, 0);	/* unchanged leaf: still a fresh page */
	tb_commit_counts(&b, &p, &nw, &nr);
	assert_int_equal(nw, 2);
	assert_int_equal(nr, 2);
	tb_reload_check(&b, &p);
	tb_resize(&b, 66000);		/* drops leaf 69: its parent must change */
	tb_commit_counts(&b, &p, &nw, &nr);
	assert_int_equal(b.depth, 2);
	assert_int_equal(nw, 1);
	assert_int_equal(nr, 2);
	tb_reload_check(&b, &p);
	tb_free(&b);
	tp_free_pool(&p);
}

/* Depth 1 -> 2 -> 1 -> 0 -> 1 at the exact boundaries and around them. */
static void test_depth_changes_1_2_1(void **state)
{
	struct tpool p;
	struct tblob b;
	uint32_t nw, nr;

	tp_init(&p, 3, false);
	tb_init(&b, DEPTH1_MAX, T_BLOB_ID, true);
	tb_set(&b, 0, 1);
	tb_set(&b, DEPTH1_MAX - 1, 2);
	tb_commit(&b, &p);
	assert_int_equal(b.depth, 1);
	assert_int_not_equal(b.root[63].gen, 0);
	tb_reload_check(&b, &p);

	tb_resize(&b, DEPTH1_MAX + 1);
	tb_set(&b, DEPTH1_MAX, 3);
	tb_commit_counts(&b, &p, &nw, &nr);
	assert_int_equal(b.depth, 2);
	assert_int_equal(nw, 3);	/* new leaf, rewritten boundary leaf, index */
	assert_int_equal(nr, 1);
	tb_reload_check(&b, &p);

	tb_resize(&b, 70000);
	tb_set(&b, 69999, 4);
	tb_set(&b, 30000, 5);
	tb_commit(&b, &p);
	tb_reload_check(&b, &p);

	tb_resize(&b, DEPTH1_MAX);
	tb_commit(&b, &p);
	assert_int_equal(b.depth, 1);
	assert_int_equal(b.m.levels[1].nnodes, 0);
	tb_reload_check(&b, &p);

	tb_resize(&b, 0);
	tb_commit(&b, &p);
	assert_int_equal(b.depth, 0);
	assert_int_equal(p.nused, 0);
	tb_reload_check(&b, &p);

	tb_resize(&b, 10);
	tb_set(&b, 9, 6);
	tb_commit(&b, &p);
	assert_int_equal(b.depth, 1);
	tb_reload_check(&b, &p);

	assert_int_equal(blob_map_resize(&b.m, DEPTH4_MAX + 1), -EFBIG);
	assert_int_equal(b.m.num_clusters, 10);
	assert_false(blob_map_is_dirty(&b.m));
	tb_free(&b);
	tp_free_pool(&p);
}

/* A size near the interesting places: tiny, the depth-1 limit, up to ~2x. */
static uint64_t pick_size(uint64_t *rng)
{
	switch (th_rand(rng) % 6) {
	case 0:
		return th_rand(rng) % 3000;
	case 1:
		return DEPTH1_MAX - 2000 + th_rand(rng) % 4000;
	case 2:
		return DEPTH1_MAX + (th_rand(rng) % 2);
	case 3:
		return 0;
	default:
		return th_rand(rng) % 140000;
	}
}

/* Random entries, whole leaves filled or emptied, to make and drop pages. */
static void random_edits(struct tblob *b, uint64_t *rng)
{
	uint64_t n = b->m.num_clusters;
	uint64_t leaf, nsets = th_rand(rng) % 60;

	if (n == 0)
		return;
	for (uint64_t s = 0; s < nsets; s++) {
		uint64_t i = th_rand(rng) % n;

		tb_set(b, i, th_rand(rng) % 4 == 0 ? 0 : rand_cluster(rng));
	}
	leaf = (th_rand(rng) % n) / EPP;
	for (uint64_t i = leaf * EPP; i < BS_MIN((leaf + 1) * EPP, n); i++)
		tb_set(b, i, th_rand(rng) % 2 ? rand_cluster(rng) : 0);
	leaf = (th_rand(rng) % n) / EPP;
	for (uint64_t i = leaf * EPP; i < BS_MIN((leaf + 1) * EPP, n); i++)
		tb_set(b, i, 0);
}

/*
 * Model test: rounds of resizes (sometimes several before one commit, so
 * nodes are dropped and regrown uncommitted), edits, commits and reloads
 * across the depth-1/2 boundary. Every commit checks D2/D5 and the pool.
 */
static void test_random_model(void **state)
{
	struct tpool p;
	struct tblob b;
	uint64_t rng = 0xb10b;

	tp_init(&p, 4, false);
	tb_init(&b, 500, T_BLOB_ID, true);
	for (int round = 0; round < 150; round++) {
		if (th_rand(&rng) % 3 == 0)
			tb_resize(&b, pick_size(&rng));
		random_edits(&b, &rng);
		if (th_rand(&rng) % 4 == 0)
			continue;	/* accumulate another round */
		tb_commit(&b, &p);
		tb_reload_check(&b, &p);
	}
	tb_commit(&b, &p);
	tb_reload_check(&b, &p);
	tb_free(&b);
	tp_free_pool(&p);
}

/* The live map still holds @model (@n entries) and the page set @s, and is dirty. */
static void assert_map_unchanged(const struct blob_map *m, const uint32_t *model, uint64_t n,
				 const struct pset *s)
{
	struct pset now;

	assert_int_equal(m->num_clusters, n);
	for (uint64_t i = 0; i < n; i++)
		assert_int_equal(blob_map_get(m, i), model[i]);
	pset_of(m, &now);
	pset_assert_equal(s, &now);
	assert_true(blob_map_is_dirty(m));
}

/*
 * Make the next prepare fail after N pages, for every N until it succeeds:
 * the pages it took are all in plan->writes, the map is untouched each
 * time; then commit for real (which checks every dropped page is released
 * exactly once, D5) and reload. Returns how many pages the commit needed.
 */
static uint32_t fail_every_position(struct tblob *b, struct tpool *p)
{
	struct blob_map_alloc alloc = { .alloc_page = tp_alloc_page, .arg = p };
	struct blob_map_plan plan;
	struct pset before;
	uint32_t n, base = p->nused;
	uint64_t size = b->m.num_clusters;
	int rc;

	pset_of(&b->m, &before);
	for (n = 0;; n++) {
		p->fail_after = n;
		rc = blob_map_commit_prepare(&b->m, &b->id, b->gen + 1, &alloc, &plan);
		if (rc == 0)
			break;
		assert_int_equal(rc, -ENOSPC);
		assert_int_equal(plan.nwrites, n);
		for (uint32_t i = 0; i < plan.nwrites; i++)
			tp_release(p, plan.writes[i].pool_idx);
		blob_map_plan_free(&plan);
		assert_int_equal(p->nused, base);
		assert_map_unchanged(&b->m, b->model, size, &before);
	}
	for (uint32_t i = 0; i < plan.nwrites; i++)
		tp_release(p, plan.writes[i].pool_idx);
	blob_map_plan_free(&plan);	/* a successful plan, dropped unused */
	assert_map_unchanged(&b->m, b->model, size, &before);
	p->fail_after = TP_NEVER;
	tb_commit(b, p);
	tb_reload_check(b, p);
	return n;
}

static void test_failed_prepare_leaves_map_unchanged(void **state)
{
	struct tpool p;
	struct tblob b;

	tp_init(&p, 5, false);
	tb_init(&b, 70000, T_BLOB_ID, true);
	for (uint64_t i = 0; i < 70000; i += 500)
		tb_set(&b, i, (uint32_t)i + 1);
	tb_commit(&b, &p);
	for (uint64_t k = 0; k < 10; k++)	/* depth 2 kept: leaves and index */
		tb_set(&b, k * 3 * EPP + 1, (uint32_t)k + 50);
	assert_int_equal(fail_every_position(&b, &p), 11);
	tb_resize(&b, 30000);		/* depth 2 -> 1, leaves and index dropped */
	tb_set(&b, 7, 8);
	tb_set(&b, 20000, 9);
	assert_int_equal(fail_every_position(&b, &p), 3);
	tb_resize(&b, 70000);		/* and back: regrown nodes */
	tb_set(&b, 69999, 10);
	assert_true(fail_every_position(&b, &p) >= 2);
	tb_free(&b);
	tp_free_pool(&p);
}

/*
 * D9: entries set or claimed after prepare took its snapshot are not lost
 * when done adopts the plan; their leaves stay dirty for the next commit.
 */
static void test_D9_changes_after_prepare_stay_dirty(void **state)
{
	struct blob_map_alloc alloc;
	struct blob_map_plan plan;
	struct tpool p;
	struct tblob b;
	uint32_t nw;

	tp_init(&p, 6, false);
	alloc = (struct blob_map_alloc){ .alloc_page = tp_alloc_page, .arg = &p };
	tb_init(&b, 8 * EPP, T_BLOB_ID, true);
	tb_set(&b, 1, 1);
	tb_set(&b, EPP + 1, 2);
	tb_commit(&b, &p);
	tb_set(&b, 2, 3);		/* leaf 0 dirty in the snapshot */
	tb_set(&b, 5 * EPP, 4);	/* leaf 5 dirty, rewritten unchanged below */
	assert_int_equal(blob_map_commit_prepare(&b.m, &b.id, ++b.gen, &alloc, &plan), 0);
	tb_set(&b, 3, 5);		/* after the snapshot: leaf 0 again */
	tb_set(&b, 3 * EPP, 6);	/* a leaf not in the plan */
	assert_true(blob_map_claim(&b.m, EPP + 2, 7));	/* claim, then mark */
	b.model[EPP + 2] = 7;
	blob_map_mark_dirty(&b.m, EPP + 2);
	for (uint32_t i = 0; i < plan.nwrites; i++)
		tp_write(&p, plan.writes[i].pool_idx, plan.writes[i].page);
	blob_map_commit_done(&b.m, &plan);
	for (uint32_t i = 0; i < plan.nrelease; i++)
		tp_release(&p, plan.release[i]);
	b.depth = plan.new_depth;
	memcpy(b.root, plan.new_root_refs, sizeof(b.root));
	blob_map_plan_free(&plan);
	assert_true(blob_map_is_dirty(&b.m));
	assert_true(bitarray_get(&b.m.levels[0].dirty, 0));
	assert_true(bitarray_get(&b.m.levels[0].dirty, 1));
	assert_true(bitarray_get(&b.m.levels[0].dirty, 3));
	assert_false(bitarray_get(&b.m.levels[0].dirty, 5));
	tb_commit_counts(&b, &p, &nw, NULL);
	assert_int_equal(nw, 3);
	tb_reload_check(&b, &p);
	tb_free(&b);
	tp_free_pool(&p);
}

static void test_load_next_cursor(void **state)
{
	struct tpool p;
	struct tblob b;
	struct blob_map m2;
	uint32_t out[2];
	uint64_t nodes[2], cursor = 0;

	tp_init(&p, 7, false);
	tb_init(&b, 20 * EPP, T_BLOB_ID, true);
	tb_set(&b, 1 * EPP, 1);
	tb_set(&b, 4 * EPP, 1);
	tb_set(&b, 5 * EPP, 1);
	tb_set(&b, 19 * EPP, 1);
	tb_commit(&b, &p);
	assert_int_equal(blob_map_load_begin(&m2, b.n, b.depth, b.root), 0);
	assert_int_equal(blob_map_load_next(&m2, 1, &cursor, out, nodes, 2), 0);
	assert_int_equal(blob_map_load_next(&m2, 0, &cursor, out, nodes, 2), 2);
	assert_int_equal(nodes[0], 1);
	assert_int_equal(nodes[1], 4);
	assert_int_equal(out[0], b.root[1].pool_idx);
	assert_int_equal(out[1], b.root[4].pool_idx);
	assert_int_equal(blob_map_load_next(&m2, 0, &cursor, out, NULL, 1), 1);
	assert_int_equal(out[0], b.root[5].pool_idx);
	assert_int_equal(blob_map_load_next(&m2, 0, &cursor, out, nodes, 2), 1);
	assert_int_equal(nodes[0], 19);
	assert_int_equal(blob_map_load_next(&m2, 0, &cursor, out, nodes, 2), 0);
	assert_int_equal(cursor, 20);
	blob_map_free(&m2);
	tb_free(&b);
	tp_free_pool(&p);
}

/* Depth 3 and back: a sparse 16M-cluster map, then shrink to depth 2 and 0. */
static void test_depth_3_roundtrip(void **state)
{
	const uint64_t n = DEPTH2_MAX + 5000;
	const uint64_t at[] = { 0, 1007, 252 * EPP, DEPTH1_MAX, DEPTH2_MAX - 1, DEPTH2_MAX, n - 1 };
	struct tpool p;
	struct tblob b;
	uint32_t nw, nr;

	tp_init(&p, 8, false);
	tb_init(&b, n, T_BLOB_ID, false);
	assert_int_equal(b.m.depth, 3);
	for (size_t i = 0; i < BS_ARRAY_SIZE(at); i++)
		tb_set(&b, at[i], (uint32_t)i + 100);
	tb_commit(&b, &p);
	assert_int_equal(b.depth, 3);
	tb_reload_check(&b, &p);
	tb_set(&b, 252 * EPP + 1, 5);
	tb_commit_counts(&b, &p, &nw, &nr);
	assert_int_equal(nw, 3);	/* leaf, level-1 node, level-2 node */
	assert_int_equal(nr, 3);
	tb_reload_check(&b, &p);
	tb_resize(&b, 70000);
	tb_commit(&b, &p);
	assert_int_equal(b.depth, 2);
	tb_reload_check(&b, &p);
	tb_resize(&b, DEPTH2_MAX + 1);
	tb_set(&b, DEPTH2_MAX, 42);
	tb_commit(&b, &p);
	assert_int_equal(b.depth, 3);
	tb_reload_check(&b, &p);
	tb_resize(&b, 0);
	tb_commit(&b, &p);
	assert_int_equal(p.nused, 0);
	tb_reload_check(&b, &p);
	tb_free(&b);
	tp_free_pool(&p);
}

/* ---- D1: pages that do not match their reference are rejected ---- */

/* Load the committed tree down to level 1, then offer @page as leaf @node. */
static int try_leaf(const struct tblob *b, const struct tpool *p, uint64_t node,
		    const void *page, const char **why)
{
	struct blob_map m2;
	int rc;

	assert_int_equal(b->depth, 2);
	tb_load(b, p, &m2);	/* fully valid: leaves loaded too */
	rc = blob_map_load_page(&m2, &b->id, 0, node, page, why);
	blob_map_free(&m2);
	return rc;
}

/* Copy of pool page @idx with one header field changed and the CRC redone. */
static void resealed(const struct tpool *p, uint32_t idx, int field, void *out)
{
	struct md_header *h = out;

	memcpy(out, tp_page(p, idx), MD_PAGE_SIZE);
	switch (field) {
	case 0: h->blob_id++; break;
	case 1: h->store_id++; break;
	case 2: h->page_no++; break;
	case 3: h->index++; break;
	case 4: h->level++; break;
	case 5: h->type = MD_TYPE_XATTR; break;
	default: h->gen++; break;
	}
	md_page_seal(out);
}

static void test_D1_corrupt_and_misdirected_pages(void **state)
{
	static uint8_t buf[MD_PAGE_SIZE];
	struct tpool p;
	struct tblob b;
	struct md_ref leaf0, leaf68;
	const char *why;

	tp_init(&p, 9, false);
	tb_init(&b, 70000, T_BLOB_ID, true);
	tb_set(&b, 3, 30);
	tb_set(&b, 68 * EPP + 3, 31);
	tb_commit(&b, &p);
	leaf0 = b.m.levels[0].refs[0];
	leaf68 = b.m.levels[0].refs[68];
	assert_int_equal(try_leaf(&b, &p, 0, tp_page(&p, leaf0.pool_idx), &why), 0);
	assert_null(why);

	memcpy(buf, tp_page(&p, leaf0.pool_idx), MD_PAGE_SIZE);
	buf[MD_PAGE_SIZE - 1] ^= 0x40;		/* payload bit flip */
	assert_int_equal(try_leaf(&b, &p, 0, buf, &why), -EILSEQ);
	assert_non_null(why);
	memcpy(buf, tp_page(&p, leaf0.pool_idx), MD_PAGE_SIZE);
	buf[offsetof(struct md_header, gen)] ^= 1;	/* header bit flip */
	assert_int_equal(try_leaf(&b, &p, 0, buf, &why), -EILSEQ);
	memcpy(buf, tp_page(&p, leaf0.pool_idx), MD_PAGE_SIZE);
	memset(buf + 512, 0xa5, 512);		/* torn: an old sector survived */
	assert_int_equal(try_leaf(&b, &p, 0, buf, &why), -EILSEQ);
	/* Misdirected: a valid page of the same blob, another node. */
	assert_int_equal(try_leaf(&b, &p, 0, tp_page(&p, leaf68.pool_idx), &why), -EILSEQ);
	for (int field = 0; field <= 6; field++) {
		resealed(&p, leaf0.pool_idx, field, buf);
		assert_int_equal(try_leaf(&b, &p, 0, buf, &why), -EILSEQ);
		assert_non_null(why);
	}
	tb_free(&b);
	tp_free_pool(&p);
}

/* The root's reference disagrees with the page: wrong gen, crc or page. */
static void test_D1_wrong_reference_in_root(void **state)
{
	struct tpool p;
	struct tblob b;
	struct blob_map m2;
	struct md_ref root[MD_ROOT_MAP_REFS];
	const char *why;

	tp_init(&p, 10, false);
	tb_init(&b, 70000, T_BLOB_ID, true);
	tb_set(&b, 3, 30);
	tb_commit(&b, &p);
	for (int v = 0; v < 3; v++) {
		memcpy(root, b.root, sizeof(root));
		if (v == 0)
			root[0].gen++;
		else if (v == 1)
			root[0].crc ^= 1;
		else
			root[0].pool_idx = (root[0].pool_idx + 1) % TP_PAGES;
		assert_int_equal(blob_map_load_begin(&m2, b.n, b.depth, root), 0);
		assert_int_equal(blob_map_load_page(&m2, &b.id, 1, 0,
						    tp_page(&p, b.root[0].pool_idx), &why),
				 -EILSEQ);
		assert_non_null(why);
		blob_map_free(&m2);
	}
	tb_free(&b);
	tp_free_pool(&p);
}

/*
 * A stale page: the same node's older version at the very page number the
 * reference names (the allocator reused it and the new write was lost).
 */
static void test_D1_stale_page_same_location(void **state)
{
	struct tpool p;
	struct tblob b;
	struct md_ref r1, r3;
	const struct md_header *old;
	struct md_expect any;
	const char *why;

	tp_init(&p, 11, true);
	tb_init(&b, 70000, T_BLOB_ID, true);
	tb_set(&b, 3, 1);
	tb_set(&b, 69999, 2);
	tb_commit(&b, &p);			/* gen 1 */
	r1 = b.m.levels[0].refs[0];
	tb_set(&b, 3, 3);
	tb_commit(&b, &p);			/* gen 2, r1's page released */
	tb_set(&b, 3, 4);
	tb_commit(&b, &p);			/* gen 3 reuses it */
	r3 = b.m.levels[0].refs[0];
	assert_int_equal(r3.pool_idx, r1.pool_idx);
	old = (const void *)(p.prev + (size_t)r3.pool_idx * MD_PAGE_SIZE);
	any = (struct md_expect){ .type = MD_TYPE_EXTENT, .page_no = T_POOL_START + r1.pool_idx,
				  .blob_id = T_BLOB_ID, .gen = r1.gen, .crc = r1.crc,
				  .check_crc = true, .store_id = T_STORE_ID, .index = 0,
				  .level = 0 };
	assert_int_equal(md_page_check(old, &any, NULL), 0);	/* well formed, just old */
	assert_int_equal(try_leaf(&b, &p, 0, old, &why), -EILSEQ);
	assert_non_null(why);
	tb_free(&b);
	tp_free_pool(&p);
}

/* A page of another blob at the same place, same gen, same position. */
static void test_D1_page_of_another_blob(void **state)
{
	struct tpool pa, pb;
	struct tblob a, b;
	struct md_ref ra, rb;
	const char *why;

	tp_init(&pa, 12, true);
	tp_init(&pb, 12, true);
	tb_init(&a, 70000, T_BLOB_ID, true);
	tb_init(&b, 70000, T_BLOB_ID + 1, true);
	tb_set(&a, 3, 1);
	tb_set(&b, 3, 1);
	tb_commit(&a, &pa);
	tb_commit(&b, &pb);
	ra = a.m.levels[0].refs[0];
	rb = b.m.levels[0].refs[0];
	assert_int_equal(ra.pool_idx, rb.pool_idx);
	assert_int_equal(ra.gen, rb.gen);
	assert_int_equal(try_leaf(&a, &pa, 0, tp_page(&pb, rb.pool_idx), &why), -EILSEQ);
	assert_non_null(why);
	tb_free(&a);
	tb_free(&b);
	tp_free_pool(&pa);
	tp_free_pool(&pb);
}

/* Seal @pg as pool page @idx of @id at (@level, @index), generation @gen. */
static struct md_ref craft(const struct blob_map_id *id, void *pg, uint32_t idx,
			   uint64_t gen, uint32_t index, uint16_t level)
{
	struct md_ref r = { .pool_idx = idx, .gen = gen };

	md_page_init(pg, level ? MD_TYPE_INDEX : MD_TYPE_EXTENT, id->pool_start + idx,
		     id->blob_id, gen, id->store_id, index, level);
	r.crc = md_page_seal(pg);
	return r;
}

/* Load a depth-2, 70000-cluster map whose only index page is @ipg. */
static int load_crafted_index(struct blob_map *m, const struct blob_map_id *id,
			      struct md_index_page *ipg, const char **why)
{
	struct md_ref root[MD_ROOT_MAP_REFS] = { 0 };

	root[0] = craft(id, ipg, 40, 5, 0, 1);
	assert_int_equal(blob_map_load_begin(m, 70000, 2, root), 0);
	return blob_map_load_page(m, id, 1, 0, ipg, why);
}

/* Structurally wrong pages with valid headers and CRCs. */
static void test_D1_structural_checks_index(void **state)
{
	static struct md_index_page ipg;
	const struct blob_map_id id = { T_BLOB_ID, T_STORE_ID, T_POOL_START };
	const struct md_ref good = { .pool_idx = 9, .crc = 1, .gen = 4 };
	struct blob_map m;
	const char *why;

	for (int v = 0; v < 5; v++) {
		memset(&ipg, 0, sizeof(ipg));
		ipg.refs[0] = good;
		if (v == 1)
			ipg.refs[70] = good;	/* past the 70 leaves */
		else if (v == 2)
			ipg.refs[3] = (struct md_ref){ .pool_idx = 7 };	/* malformed null */
		else if (v == 3)
			ipg.refs[1] = (struct md_ref){ .pool_idx = 8, .gen = 6 };	/* newer */
		else if (v == 4)
			ipg.refs[0] = (struct md_ref){ 0 };	/* empty */
		assert_int_equal(load_crafted_index(&m, &id, &ipg, &why), v == 0 ? 0 : -EILSEQ);
		if (v == 0)
			assert_int_equal(m.levels[0].refs[0].pool_idx, 9);
		else
			assert_non_null(why);
		blob_map_free(&m);
	}
}

static void test_D1_structural_checks_extent(void **state)
{
	static struct md_index_page ipg;
	static struct md_extent_page epg;
	const struct blob_map_id id = { T_BLOB_ID, T_STORE_ID, T_POOL_START };
	struct blob_map m;
	const char *why;

	for (int v = 0; v < 3; v++) {
		memset(&epg, 0, sizeof(epg));
		epg.clusters[447] = 5;		/* cluster 69999, the last */
		if (v == 1)
			epg.clusters[448] = 6;	/* cluster 70000: past the end */
		else if (v == 2)
			epg.clusters[447] = 0;	/* empty page */
		memset(&ipg, 0, sizeof(ipg));
		ipg.refs[69] = craft(&id, &epg, 41, 5, 69, 0);
		assert_int_equal(load_crafted_index(&m, &id, &ipg, &why), 0);
		assert_int_equal(blob_map_load_page(&m, &id, 0, 69, &epg, &why),
				 v == 0 ? 0 : -EILSEQ);
		if (v == 0)
			assert_int_equal(blob_map_get(&m, 69999), 5);
		/* Nodes without a reference, or outside the map, are never loaded. */
		assert_int_equal(blob_map_load_page(&m, &id, 0, 68, &epg, &why), -EILSEQ);
		assert_int_equal(blob_map_load_page(&m, &id, 0, 70, &epg, &why), -EILSEQ);
		assert_int_equal(blob_map_load_page(&m, &id, 2, 0, &epg, &why), -EILSEQ);
		blob_map_free(&m);
	}
}

/* Roots whose depth or refs cannot belong to a map of that size. */
static void test_D1_load_begin_rejects_bad_roots(void **state)
{
	struct md_ref root[MD_ROOT_MAP_REFS] = { 0 };
	struct blob_map m;

	root[0] = (struct md_ref){ .pool_idx = 1, .crc = 2, .gen = 3 };
	assert_int_equal(blob_map_load_begin(&m, 70000, 2, root), 0);
	blob_map_free(&m);
	assert_int_equal(blob_map_load_begin(&m, 70000, 1, root), -EILSEQ);
	assert_int_equal(blob_map_load_begin(&m, 0, 0, root), -EILSEQ);
	assert_int_equal(blob_map_load_begin(&m, DEPTH4_MAX + 1, 4, root), -EFBIG);
	root[1] = root[0];	/* the top level of 70000 clusters has one node */
	assert_int_equal(blob_map_load_begin(&m, 70000, 2, root), -EILSEQ);
	root[1] = (struct md_ref){ .crc = 9 };	/* malformed null */
	assert_int_equal(blob_map_load_begin(&m, 70000, 2, root), -EILSEQ);
	memset(root, 0, sizeof(root));
	assert_int_equal(blob_map_load_begin(&m, 0, 0, root), 0);
	assert_false(blob_map_is_dirty(&m));
	blob_map_free(&m);
}

/* ---- claim races ---- */

struct race {
	struct blob_map *m;
	pthread_barrier_t *start;
	uint64_t n;
	uint32_t tag;			/* 1: odd values, 2: even values */
	uint64_t wins;
};

static void *race_fn(void *arg)
{
	struct race *r = arg;

	pthread_barrier_wait(r->start);
	for (uint64_t i = 0; i < r->n; i++)
		if (blob_map_claim(r->m, i, (uint32_t)(i * 2 + r->tag)))
			r->wins++;
	return NULL;
}

static void test_claim_race_one_winner(void **state)
{
	const uint64_t n = 100000;

	for (int round = 0; round < 4; round++) {
		struct blob_map m;
		pthread_barrier_t start;
		struct race r[2];
		pthread_t t[2];
		uint64_t odd = 0;

		assert_int_equal(blob_map_init(&m, n), 0);
		assert_int_equal(pthread_barrier_init(&start, NULL, 2), 0);
		for (int i = 0; i < 2; i++) {
			r[i] = (struct race){ .m = &m, .start = &start, .n = n, .tag = 1 + i };
			assert_int_equal(pthread_create(&t[i], NULL, race_fn, &r[i]), 0);
		}
		for (int i = 0; i < 2; i++)
			assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(r[0].wins + r[1].wins, n);
		for (uint64_t i = 0; i < n; i++) {
			uint32_t v = blob_map_get(&m, i);

			assert_true(v == i * 2 + 1 || v == i * 2 + 2);
			odd += v & 1;
		}
		assert_int_equal(odd, r[0].wins);
		assert_int_equal(blob_map_count_allocated(&m), n);
		pthread_barrier_destroy(&start);
		blob_map_free(&m);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_depth_for_boundaries),
		cmocka_unit_test(test_entries_set_get_claim),
		cmocka_unit_test(test_empty_maps_write_nothing),
		cmocka_unit_test(test_incremental_commit_rewrites_path),
		cmocka_unit_test(test_depth_changes_1_2_1),
		cmocka_unit_test(test_random_model),
		cmocka_unit_test(test_failed_prepare_leaves_map_unchanged),
		cmocka_unit_test(test_D9_changes_after_prepare_stay_dirty),
		cmocka_unit_test(test_load_next_cursor),
		cmocka_unit_test(test_depth_3_roundtrip),
		cmocka_unit_test(test_D1_corrupt_and_misdirected_pages),
		cmocka_unit_test(test_D1_wrong_reference_in_root),
		cmocka_unit_test(test_D1_stale_page_same_location),
		cmocka_unit_test(test_D1_page_of_another_blob),
		cmocka_unit_test(test_D1_structural_checks_index),
		cmocka_unit_test(test_D1_structural_checks_extent),
		cmocka_unit_test(test_D1_load_begin_rejects_bad_roots),
		cmocka_unit_test(test_claim_race_one_winner),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
