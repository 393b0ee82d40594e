/*
 * A blob's cluster map: the in-memory array of cluster numbers, and its
 * on-disk form, a shadow-paged radix tree of pool pages (format.h):
 *
 *   root.map_refs[0..63]  ->  level depth-1 nodes  -> ... ->  level 0 nodes
 *                             (index pages: 252 refs)       (extent pages: 1008 clusters)
 *
 * depth = number of page levels: 0 when the blob has no clusters; 1 when the
 * root refers to extent pages directly (up to 64 * 1008 clusters); each
 * further level multiplies the reach by 252. A node whose clusters are all
 * unallocated is not stored: its reference is null (gen 0).
 *
 * Node k of level 0 covers clusters [k*1008, (k+1)*1008); node k of level
 * L >= 1 covers nodes [k*252, (k+1)*252) of level L-1. For each level the
 * map keeps the reference (pool index, gen, crc) of every node as last
 * committed (or loaded), and a dirty bit per node.
 *
 * Commit (shadow paging, D2): every dirty node is written to a FRESH pool
 * page (never over the page its current reference names), its parent
 * becomes dirty, and so on up to the root refs. Pages that the new tree no
 * longer references are reported so the caller can release them after the
 * commit is durable (D5). Pages are sealed (md_page_seal) with the commit's
 * generation, the blob id, index = node number, level = L.
 *
 * Threading: cluster entries are read and set with atomics from any thread
 * (the data path claims clusters with blob_map_claim); everything else runs
 * on the metadata thread.
 */
#ifndef BS_BLOB_BLOB_MAP_H
#define BS_BLOB_BLOB_MAP_H

#include <stdbool.h>
#include <stdint.h>

#include "blob/format.h"
#include "util/bitarray.h"

struct blob_map_level {
	uint64_t nnodes;		/* nodes at this level for the current size */
	struct md_ref *refs;		/* committed location of each node (gen 0 = none) */
	struct bitarray dirty;		/* nodes to rewrite at the next commit */
};

struct blob_map {
	uint64_t num_clusters;
	uint32_t *clusters;		/* num_clusters entries; 0 = unallocated; atomic access */
	uint8_t depth;
	struct blob_map_level levels[MD_MAX_MAP_DEPTH];
	struct md_ref root_refs[MD_ROOT_MAP_REFS];	/* committed root refs */
	bool root_dirty;		/* root refs or depth change at next commit */
};

/** Allocator callbacks the caller provides for commit. */
struct blob_map_alloc {
	/* Allocate a fresh pool page: its pool index, or -ENOSPC. */
	int (*alloc_page)(void *arg, uint32_t *pool_idx);
	void *arg;
};

/** Identity used to seal and check pages. */
struct blob_map_id {
	uint64_t blob_id;
	uint64_t store_id;
	uint64_t pool_start;		/* page number of pool index 0 */
};

/** One page to write at commit. */
struct blob_map_write {
	uint32_t pool_idx;
	void *page;			/* MD_PAGE_SIZE bytes, sealed; owned by the plan */
};

/** The result of blob_map_commit_prepare(). */
struct blob_map_plan {
	struct blob_map_write *writes;
	uint32_t nwrites;
	uint32_t *release;		/* pool pages no longer referenced */
	uint32_t nrelease;
	uint8_t new_depth;
	struct md_ref new_root_refs[MD_ROOT_MAP_REFS];
	/* Private: new refs per level, applied by blob_map_commit_done(). */
	struct md_ref *new_refs[MD_MAX_MAP_DEPTH];
	uint64_t new_nnodes[MD_MAX_MAP_DEPTH];
};

/** Depth needed for @p num_clusters (0..MD_MAX_MAP_DEPTH), or -EFBIG. */
int blob_map_depth_for(uint64_t num_clusters);

/** Empty map of @p num_clusters unallocated clusters (everything dirty). 0/-ENOMEM/-EFBIG. */
int blob_map_init(struct blob_map *m, uint64_t num_clusters);
void blob_map_free(struct blob_map *m);

/**
 * Change the number of clusters. Entries past the new end must already be
 * 0 (the caller frees them first). Marks what changes dirty.
 * 0, -ENOMEM, -EFBIG (beyond what depth MD_MAX_MAP_DEPTH reaches).
 */
int blob_map_resize(struct blob_map *m, uint64_t num_clusters);

/** Cluster number of blob cluster @p i (0 = unallocated). Any thread. */
uint32_t blob_map_get(const struct blob_map *m, uint64_t i);

/**
 * Set entry @p i from 0 to @p cluster atomically. Returns true if this call
 * set it, false if it was already non-zero (another writer won). Any thread.
 * Does NOT mark dirty: the data path records the leaf in the blob's
 * alloc-dirty bits (blob_note_alloc), which the next commit collects.
 */
bool blob_map_claim(struct blob_map *m, uint64_t i, uint32_t cluster);

/** Set entry @p i unconditionally and mark its leaf dirty. Metadata thread. */
void blob_map_set(struct blob_map *m, uint64_t i, uint32_t cluster);

/** Mark the leaf holding entry @p i dirty. Metadata thread. */
void blob_map_mark_dirty(struct blob_map *m, uint64_t i);

/** Allocated entries. */
uint64_t blob_map_count_allocated(const struct blob_map *m);

/** True if anything must be written at the next commit. */
bool blob_map_is_dirty(const struct blob_map *m);

/**
 * Build the pages of a commit with generation @p gen: every dirty node is
 * rendered into a fresh page (alloc->alloc_page) and sealed; the plan lists
 * the writes, the pages to release once durable, and the new root refs and
 * depth. The map itself is unchanged until blob_map_commit_done().
 * On failure (-ENOSPC, -ENOMEM) every page allocated for the plan has been
 * listed in plan->writes so the caller can give them back; call
 * blob_map_plan_free() either way.
 */
int blob_map_commit_prepare(struct blob_map *m, const struct blob_map_id *id, uint64_t gen,
			    const struct blob_map_alloc *alloc, struct blob_map_plan *plan);

/** The commit is durable: adopt the plan's refs and clear the dirty bits. */
void blob_map_commit_done(struct blob_map *m, struct blob_map_plan *plan);

/** Free the plan's buffers (not the pool pages). */
void blob_map_plan_free(struct blob_map_plan *plan);

/* ---- loading ---- */

/**
 * Start loading a map of @p num_clusters with the committed @p depth and
 * @p root_refs (from a validated root page). Then, level by level from
 * depth-1 down to 0, the caller reads the pages blob_map_load_next() names,
 * and passes each to blob_map_load_page(), which validates it (md_page_check
 * against the ref: page number, type, blob, gen, crc, index, level) and
 * records its children (index) or clusters (extent).
 */
int blob_map_load_begin(struct blob_map *m, uint64_t num_clusters, uint8_t depth,
			const struct md_ref root_refs[MD_ROOT_MAP_REFS]);

/**
 * Pages to read for level @p level: fills @p out (pool indexes) with up to
 * @p max entries, starting at node @p *cursor (advanced); returns how many.
 * Null refs are skipped. Node numbers come back in @p nodes.
 */
uint32_t blob_map_load_next(const struct blob_map *m, int level, uint64_t *cursor,
			    uint32_t *out, uint64_t *nodes, uint32_t max);

/** Validate and absorb the page of node @p node at @p level. 0 or -EILSEQ (why set). */
int blob_map_load_page(struct blob_map *m, const struct blob_map_id *id, int level,
		       uint64_t node, const void *page, const char **why);

/**
 * Every pool page the committed tree references (for recovery and the
 * checker): calls @p fn for each. Valid after a full load.
 */
void blob_map_for_each_page(const struct blob_map *m, void (*fn)(void *arg, uint32_t pool_idx),
			    void *arg);

#endif /* BS_BLOB_BLOB_MAP_H */
