/*
 * Internal state of a loaded store and of open blobs.
 *
 * Threading: everything here is owned by the metadata thread, except
 *  - the cluster-used and zeroed bitmaps and free_clusters, which the data
 *    path updates with atomics when it allocates thin clusters; and
 *  - blob->map.clusters entries (blob_map.h), read and claimed atomically.
 */
#ifndef BS_BLOB_STORE_INT_H
#define BS_BLOB_STORE_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <blobstore/blobstore.h>

#include "blob/blob_map.h"
#include "blob/format.h"
#include "blob/xattr.h"
#include "util/bitarray.h"

struct md_batch;

enum blob_state {
	BLOB_OPEN,		/* usable */
	BLOB_CLOSED,		/* handle kept so stale use is detected (-EBADF) */
	BLOB_DELETED,
	BLOB_LOADING,		/* first open in progress; later opens wait */
};

/* An open waiting for the first open of the same blob to finish. */
struct blob_open_waiter {
	TAILQ_ENTRY(blob_open_waiter) link;
	struct bs_blob **blob_out;
	bs_cpl_fn cb_fn;
	void *cb_arg;
};
TAILQ_HEAD(blob_open_waiters, blob_open_waiter);

/* A queued sync waiter. */
struct blob_sync_waiter {
	TAILQ_ENTRY(blob_sync_waiter) link;
	bs_cpl_fn cb_fn;
	void *cb_arg;
};
TAILQ_HEAD(blob_sync_waiters, blob_sync_waiter);

struct bs_blob {
	TAILQ_ENTRY(bs_blob) link;	/* bs->blobs */
	struct bs_store *bs;
	bs_blob_id id;
	uint32_t slot;
	enum blob_state state;
	uint32_t ref;			/* open count */

	/* Metadata as in RAM (committed by sync). */
	struct blob_map map;
	struct xattr_set xattrs;
	uint64_t invalid_flags;
	uint64_t data_ro_flags;
	uint64_t md_ro_flags;
	uint64_t parent_id;
	struct bs_blob *parent;		/* open parent handle (holds one ref), NULL if none */
	/* ESNAP: the external parent's device (owned; closed at the last put),
	 * NULL if none or degraded; store io units per device block. */
	struct bs_dev *esnap_dev;
	uint32_t esnap_ratio;
	bool thin;
	bool data_ro;			/* writes refused */
	bool md_ro;			/* metadata changes refused */
	bool md_dirty;			/* size, flags or xattrs changed since commit */

	/* Committed on-disk state. */
	uint64_t root_gen;		/* gen of the durable root */
	uint64_t rollback_gen;		/* D17: next commit marks this group rolled back */
	int root_page;			/* slot page (0/1) holding it, -1 = none */
	struct md_ref xattr_refs[MD_ROOT_XATTR_REFS];
	uint16_t xattr_npages;

	/* Clusters dropped by a shrink: released once the next commit is durable (D5). */
	uint32_t *pending_free;
	uint64_t npending_free;
	uint64_t pending_cap;

	/* Sync serialization and coalescing. */
	bool syncing;
	struct blob_sync_waiters sync_next;	/* waiting for the next round */
	struct blob_open_waiters open_waiters;	/* while LOADING */
	atomic_int frozen;		/* resize in progress: new IO waits */
	atomic_uint_fast64_t allocs;	/* thin allocations by the data path */
	atomic_uint inflight;		/* data requests in flight */
	/* Leaves whose entries the data path published since the last commit:
	 * one bit per extent page, set atomically from any thread. */
	uint64_t *alloc_dirty;
	uint64_t alloc_dirty_words;
	uint64_t allocs_committed;
};

TAILQ_HEAD(bs_blob_list, bs_blob);

struct bs_store {
	struct bs_dev *dev;
	struct bs_thread *md_thread;
	struct bs_io_channel *md_ch;	/* device channel on the metadata thread */

	/* Geometry (from the super block). */
	uint32_t block_len;
	uint32_t cluster_size;
	uint32_t blocks_per_page;
	uint64_t blocks_per_cluster;
	uint64_t total_clusters;
	uint64_t md_clusters;
	uint64_t mask_start;
	uint64_t mask_pages;
	uint64_t mask_kind_start[MD_MASK_NKINDS];	/* first page of each mask */
	uint64_t mask_kind_pages[MD_MASK_NKINDS];
	uint64_t root_start;
	uint64_t max_blobs;
	uint64_t pool_start;
	uint64_t pool_pages;
	uint64_t dev_size;
	uint64_t store_id;
	uint8_t bstype[16];
	uint8_t uuid[16];
	uint64_t features_incompat;
	uint64_t features_ro_compat;
	uint64_t features_compat;

	/* Super block state. */
	uint64_t super_seq;		/* sequence of the newest super copy */
	int super_copy;			/* which copy (0/1) holds it */
	bool clean_on_disk;		/* the super on disk says clean (D7) */
	bool masks_rebuilt;		/* recovery ran: the masks on disk may be wrong */
	bool marking_dirty;
	struct blob_sync_waiters dirty_waiters;
	bs_blob_id super_blob;

	/* Counters. */
	uint64_t txn_next;		/* next generation */
	uint64_t id_next;		/* next blob incarnation */

	/* Allocation state. */
	struct bitarray clusters_used;	/* atomic word access */
	struct bitarray zeroed;		/* free and known to read zeros (D8) */
	struct bitarray pool_used;
	struct bitarray slots_used;
	struct bitarray slots_corrupt;
	uint32_t *slot_inc;		/* incarnation of the blob in each used slot */
	uint64_t *slot_parent;		/* parent blob id of each slot's blob, 0 = none */
	struct bitarray slots_hidden;	/* hidden snapshots (deleted, serving clones) */
	atomic_uint_fast64_t free_clusters;
	atomic_uint_fast64_t alloc_hint;
	atomic_uint_fast64_t claims_inflight;	/* data path: claims not yet published or given back */
	uint64_t pool_hint;

	struct bs_blob_list blobs;	/* open and closed handles */
	uint32_t open_blobs;
	uint32_t max_channel_ops;
	int error;			/* D10 latch */
	bool read_only;
	bool unloading;
	/* External snapshots (esnap.c): the application's device factory, and
	 * devices being closed after their blob's last put (unload waits). */
	int (*esnap_create)(void *ctx, bs_blob_id blob, const void *esnap_id, uint32_t id_len,
			    struct bs_dev **out);
	void *esnap_ctx;
	uint32_t esnap_closing;
	bs_cpl_fn esnap_drain_cb;
	void *esnap_drain_arg;
	struct bs_load_report report;
};

/* ---- layout.c ---- */
int layout_compute(struct bs_store *bs, const struct bs_dev *dev, const struct bs_opts *opts);
int layout_from_super(struct bs_store *bs, const struct md_super *sb);
/** Largest blob (clusters): its in-memory cluster map stays within the store's size. */
uint64_t store_max_blob_clusters(const struct bs_store *bs);
uint64_t page_to_lba(const struct bs_store *bs, uint64_t page_no);
int store_alloc_masks(struct bs_store *bs);
void store_free(struct bs_store *bs);

/* ---- masks.c ---- */
uint64_t mask_kind_pages(const struct bs_store *bs, int kind);
void masks_encode(struct bs_store *bs, uint8_t *buf, uint64_t gen);
int masks_decode(struct bs_store *bs, uint8_t *buf, uint64_t gen);

/* ---- md_io.c: batched metadata IO on the metadata thread ---- */
struct md_batch *md_batch_new(struct bs_store *bs, bs_cpl_fn cb_fn, void *cb_arg);
void md_batch_read(struct md_batch *b, void *buf, uint64_t page_no, uint64_t npages);
void md_batch_write(struct md_batch *b, const void *buf, uint64_t page_no, uint64_t npages);
void md_batch_write_blocks(struct md_batch *b, const void *buf, uint64_t lba, uint64_t nblocks);
void md_batch_read_blocks(struct md_batch *b, void *buf, uint64_t lba, uint64_t nblocks);
void md_batch_zeroes(struct md_batch *b, uint64_t lba, uint64_t nblocks);
void md_batch_unmap(struct md_batch *b, uint64_t lba, uint64_t nblocks);
void md_batch_copy(struct md_batch *b, uint64_t dst_lba, uint64_t src_lba, uint64_t nblocks);
void md_batch_flush(struct md_batch *b);
/** Record @err as the batch's result (first error wins); nothing is issued. */
void md_batch_fail(struct md_batch *b, int err);
/** No more IO: the callback runs (deferred) once all of it completed, with the first error. */
void md_batch_close(struct md_batch *b);
void *md_alloc_pages(uint64_t npages);
void md_free_pages(void *p);
/** Defer cb(arg, err) to the next poll of the current thread. */
void store_defer_cpl(bs_cpl_fn cb_fn, void *cb_arg, int err);

/* ---- super.c ---- */
void super_encode(const struct bs_store *bs, struct md_super *sb, int copy, uint64_t seq,
		  bool clean, uint64_t mask_gen);
int super_pick(struct bs_store *bs, const uint8_t *pages, struct md_super *out);
int super_check_device(const struct md_super *sb, const struct bs_dev *dev, const struct bs_opts *opts);
void super_write(struct bs_store *bs, bool clean, uint64_t mask_gen, bs_cpl_fn cb_fn, void *cb_arg);
/** Run cb once the on-disk super says dirty (D7); immediately (deferred) if it does. */
void store_mark_dirty(struct bs_store *bs, bs_cpl_fn cb_fn, void *cb_arg);
/** Latch the error state (D10). */
void store_latch_error(struct bs_store *bs, int err, const char *what);

/* ---- alloc.c ---- */
/** Claim a free cluster (any thread). Returns its number or 0 if none; *zeroed says known-zero. */
uint32_t cluster_claim(struct bs_store *bs, bool *zeroed);
/** Give a cluster back (any thread); @zeroed if it still reads as zeros durably. */
void cluster_release(struct bs_store *bs, uint32_t cluster, bool zeroed);
void cluster_mark_used(struct bs_store *bs, uint32_t cluster);
int pool_page_alloc(void *arg, uint32_t *pool_idx);
void pool_page_free(struct bs_store *bs, uint32_t pool_idx);

/* ---- blob_md.c ---- */
struct blob_root_read {
	struct md_root root[2];		/* both slot pages */
	int valid[2];			/* page validated as a root of this slot */
};
/** Pick the live root of a slot: page index, or -ENOENT (free/tombstone), -EILSEQ (no valid page). */
int blob_root_pick(const struct bs_store *bs, uint32_t slot, const struct md_root pages[2],
		   int *valid_out, bool *tombstone);
bool blob_root_valid(const struct bs_store *bs, uint32_t slot, int page, const struct md_root *r);
/** Load a blob's tree (xattr pages and map) from its root page. */
void blob_tree_load(struct bs_store *bs, struct bs_blob *blob, const struct md_root *root,
		    bs_cpl_fn cb_fn, void *cb_arg);
/** Commit the blob's metadata (D2-D5, D9). */
void blob_commit(struct bs_blob *blob, bool tombstone, bs_cpl_fn cb_fn, void *cb_arg);
/** Commit several blobs atomically as one group (D13). */
void blob_commit_group(struct bs_blob **blobs, const bool *tombstone, uint32_t n,
		       bs_cpl_fn cb_fn, void *cb_arg);
struct bs_blob *blob_alloc(struct bs_store *bs, bs_blob_id id);
void blob_free_md(struct bs_blob *blob);
void blob_destroy(struct bs_blob *blob);
/* Entry checks of a metadata call (thread, unloading, D10, read-only). 0 or -errno. */
int md_call_check(struct bs_store *bs, const char *what, bool writes);
struct bs_blob *store_find_blob(struct bs_store *bs, bs_blob_id id);
int blob_apply_root(struct bs_blob *blob, const struct md_root *root);
/** Size the alloc-dirty bitmap for the map's current size. 0 or -ENOMEM. */
int blob_alloc_dirty_resize(struct bs_blob *blob);
/** Data path: leaf of cluster @i got a new entry (any thread). */
void blob_note_alloc(struct bs_blob *blob, uint64_t i);
/** Queue cluster @c for release after the next durable commit (D5). */
int blob_defer_free(struct bs_blob *blob, uint32_t c);
/** Freeze data IO on @blob (new IO queues), wait for in-flight IO, run @fn. 0/-ENOMEM. */
int blob_freeze_run(struct bs_blob *blob, bs_msg_fn fn, void *ctx);
void blob_thaw(struct bs_blob *blob);
/** Free a store instance without writing anything (tests: after a simulated crash). */
void store_abandon(struct bs_store *bs, bs_cpl_fn cb_fn, void *cb_arg);

/* ---- io.c ---- */
int store_register_io(struct bs_store *bs);

/* ---- blob.c ---- */
/** Open without the user-visibility checks (hidden snapshots): ancestors. */
void blob_open_internal(struct bs_store *bs, bs_blob_id id, struct bs_blob **blob_out,
			bs_cpl_fn cb_fn, void *cb_arg);
/** Drop one reference taken by an open; no sync, no callback. */
void blob_put(struct bs_blob *blob);
void blob_create(struct bs_store *bs, const struct bs_blob_opts *opts, bs_blob_id parent_id,
		 bs_blob_id *id_out, bs_cpl_fn cb_fn, void *cb_arg);
/** blob_create, and with @esnap_id (copied) an esnap clone of that id. */
void blob_create_ext(struct bs_store *bs, const struct bs_blob_opts *opts, bs_blob_id parent_id,
		     const void *esnap_id, uint32_t id_len, bs_blob_id *id_out,
		     bs_cpl_fn cb_fn, void *cb_arg);
void blob_reserve(struct bs_store *bs, struct bs_blob **out, bs_cpl_fn cb_fn, void *cb_arg);
void blob_unreserve(struct bs_blob *blob);
/** Number of blobs whose parent is @id; *one gets one of them. */
int blob_count_clones(const struct bs_store *bs, bs_blob_id id, bs_blob_id *one);
void blob_delete_internal(struct bs_store *bs, bs_blob_id id, bs_cpl_fn cb_fn, void *cb_arg);
/** Merge or delete hidden snapshot @parent if it has at most one clone left. */
void blob_collapse(struct bs_store *bs, bs_blob_id parent, bs_cpl_fn cb_fn, void *cb_arg);
/* snapshot.c: deletes of snapshots with clones */
void blob_merge_delete(struct bs_store *bs, bs_blob_id snap, bs_blob_id clone,
		       bs_cpl_fn cb_fn, void *cb_arg);
void blob_hide(struct bs_store *bs, bs_blob_id snap, bs_cpl_fn cb_fn, void *cb_arg);
/** io.c: the ancestor cluster behind blob cluster @i, or 0. */
uint32_t blob_chain_lookup(const struct bs_blob *blob, uint64_t i);

/* ---- esnap.c ---- */
/** Internal xattr (MD_XATTR_F_INTERNAL) holding an esnap clone's id. */
#define ESNAP_XATTR_NAME "bs.esnap_id"

/** One esnap device's channel on a store channel. */
struct esnap_chan {
	struct bs_dev *dev;
	struct bs_io_channel *ch;
};

/** A store channel's esnap device channels, made on first use. */
struct esnap_chans {
	struct esnap_chan *v;
	uint32_t n;
	uint32_t cap;
};

/** The calling thread's channel of @dev: found, or taken (allocates once). NULL + errno. */
struct bs_io_channel *esnap_chans_get(struct esnap_chans *t, struct bs_dev *dev);
/** Put @dev's channel if the table holds one (on the table's thread). */
void esnap_chans_drop(struct esnap_chans *t, struct bs_dev *dev);
/** Put every channel and free the table. */
void esnap_chans_free(struct esnap_chans *t);
/** io.c: drop @dev's channel from every store channel, then @cpl(@ctx). 0/-ENOMEM. */
int io_esnap_forget(struct bs_store *bs, struct bs_dev *dev, bs_cpl_fn cpl, void *ctx);

/** The esnap id of @blob (internal xattr). 0 or -ENOENT. */
int esnap_id_get(const struct bs_blob *blob, const void **id, uint32_t *len);
/** Validate an id given through the API. 0 or -EINVAL (logged as @what). */
int esnap_id_check(const void *id, uint32_t len, const char *what);
/** Make @blob an esnap clone of @id in memory (flag and xattr). 0/-ENOMEM/-ENOSPC. */
int esnap_mark(struct bs_blob *blob, const void *id, uint32_t len);
/** Drop @blob's flag and id in memory (its device stays; see esnap_detach). */
void esnap_unmark(struct bs_blob *blob);
/** At open: call the factory; degraded (one log line) without a usable device. 0/-EILSEQ. */
int esnap_open(struct bs_blob *blob);
/** Ask the factory for a device for @id and check it. 0 and *out, or -ENXIO. */
int esnap_dev_open(struct bs_store *bs, bs_blob_id blob, const void *id, uint32_t len,
		   const char *what, struct bs_dev **out);
/** Move @from's esnap id and flag to @to (in memory). 0/-ENOMEM. */
int esnap_move_id(struct bs_blob *from, struct bs_blob *to);
/** Hand @from's device to @to (no close). */
void esnap_move_dev(struct bs_blob *from, struct bs_blob *to);
/** Install @dev as @blob's external device. */
void esnap_attach(struct bs_blob *blob, struct bs_dev *dev);
/** Take @blob's device away and close it in the background (NULL: nothing). */
void esnap_detach(struct bs_blob *blob);
/** Close @dev once no store channel holds it (background; unload waits). */
void esnap_release(struct bs_store *bs, struct bs_dev *dev);
/** Run @cb once no esnap device is being closed (deferred). */
void esnap_drain(struct bs_store *bs, bs_cpl_fn cb, void *cb_arg);
/** Crash simulation: close every open handle's device (no channel is left). */
void esnap_abandon(struct bs_store *bs, bs_cpl_fn cb, void *cb_arg);
/** The esnap clone at the bottom of @blob's chain, or NULL (also: an ancestor ends before @i). */
const struct bs_blob *blob_chain_esnap(const struct bs_blob *blob, uint64_t i);
/** The esnap clone at the bottom of @blob's chain, or NULL. */
const struct bs_blob *blob_chain_bottom_esnap(const struct bs_blob *blob);
/**
 * On the metadata thread, fill clusters dst[k] with blob clusters idx[k]
 * read from @eb's external device (zeros past its end), for the k with
 * from_esnap[k]. First error wins.
 */
void esnap_copy_clusters(struct bs_store *bs, const struct bs_blob *eb, const uint64_t *idx,
			 const uint32_t *dst, const bool *from_esnap, uint64_t n,
			 bs_cpl_fn cb_fn, void *cb_arg);

/* ---- copy.c ---- */
/**
 * On the metadata thread, fill clusters dst[i] from src[i] (a device copy,
 * or reads and writes through a bounce buffer); src[i] == 0 zeroes dst[i]
 * unless zeroed[i] says it already reads as zeros. First error wins.
 */
void md_copy_clusters(struct bs_store *bs, const uint32_t *src, const uint32_t *dst,
		      const bool *zeroed, uint64_t n, bs_cpl_fn cb_fn, void *cb_arg);

/* ---- recover.c ---- */
void store_recover(struct bs_store *bs, bs_cpl_fn cb_fn, void *cb_arg);

/* ---- check on the metadata thread ---- */
static inline bool on_md_thread(const struct bs_store *bs)
{
	return bs_thread_get_current() == bs->md_thread;
}

#endif /* BS_BLOB_STORE_INT_H */
