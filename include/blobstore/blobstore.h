/*
 * Blobstore: a power-fail-safe blob allocator that owns a whole device.
 *
 * Units: the device is cut into clusters (allocation unit, default 1 MiB) of
 * pages (metadata unit, 4 KiB) of io units (the device's logical block). A
 * blob is an ordered list of clusters plus metadata (size, flags, xattrs),
 * named by the id returned at create.
 *
 * Threads. The thread that calls bs_init() or bs_load() becomes the store's
 * metadata thread: every function below that is not marked "any thread"
 * must be called on it (otherwise it fails with -EPERM or returns NULL with
 * errno EPERM). Data IO goes through channels (bs_alloc_channel), one per
 * thread, and needs no locks.
 *
 * Callbacks. Every asynchronous call ends in (cb_fn, cb_arg); the callback
 * gets 0 or a negative errno, runs on the calling thread, and never runs
 * before the call returns. Results are returned through out-parameters that
 * are valid when the callback reports 0.
 *
 * Durability. docs/durability.md has the rules. In short: when init,
 * create, sync, delete, set_super, unload or flush reports success, the
 * result survives a power cut; a data write is durable once it completed and
 * a later bs_flush() or bs_blob_sync() of its blob completed.
 */
#ifndef BLOBSTORE_BLOBSTORE_H
#define BLOBSTORE_BLOBSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <blobstore/dev.h>
#include <blobstore/thread.h>

#ifdef __cplusplus
extern "C" {
#endif

struct bs_store;
struct bs_blob;
typedef uint64_t bs_blob_id;

#define BS_BLOB_ID_INVALID ((bs_blob_id)0)

/**
 * What init does to the data area. Whatever is chosen, a cluster reads as
 * zeros when it is first given to a blob (D8: the store zeroes it first).
 * On a block device with discard UNMAP is cheap and lets thin or flash
 * storage reclaim the space. On a regular file UNMAP punches holes and
 * WRITE_ZEROES leaves unwritten extents, so the file system has to
 * allocate or convert extents again under the first writes of every blob
 * (bench/blobperf: fresh-thin random writes well below a pre-written
 * file's); NONE costs nothing at init and keeps the file's blocks written:
 * prefer it for file-backed stores.
 */
enum bs_clear_method {
	BS_CLEAR_UNMAP = 0,		/* unmap (or zero) every data cluster */
	BS_CLEAR_WRITE_ZEROES = 1,	/* write zeroes over every data cluster */
	BS_CLEAR_NONE = 2,		/* leave data as is: clusters are zeroed on first allocation */
};

struct bs_opts {
	size_t opts_size;		/* set by bs_opts_init() */
	uint32_t cluster_size;		/* bytes, power of two, >= 4 KiB; default 1 MiB */
	uint64_t max_blobs;		/* root slots; default total clusters / 8 (>= 64) */
	uint64_t md_pool_pages;		/* extent/index/xattr pages; 0 = sized for the device */
	uint32_t max_channel_ops;	/* outstanding blob IOs per channel; default 512 */
	enum bs_clear_method clear_method;	/* init only; default BS_CLEAR_UNMAP */
	uint8_t bstype[16];		/* application store type; zeros = any on load */
	bool force_recover;		/* load: run dirty recovery even if clean */
	/*
	 * External snapshots (docs/snapshots.md): called on the metadata
	 * thread when a blob whose parent is an external device is opened
	 * (also by bs_blob_set_external_parent). Return 0 and a registered,
	 * readable device in *out, or -errno (or 0 with *out NULL): the blob
	 * then opens degraded. The store owns a returned device: it closes it
	 * (bs_dev_close) when the blob's last handle is closed, after putting
	 * every channel it took; return a new device per call. The device's
	 * block length must divide the store's io unit. NULL (the default) =
	 * no external devices: every esnap clone opens degraded.
	 */
	int (*esnap_dev_create)(void *ctx, bs_blob_id blob, const void *esnap_id,
				uint32_t id_len, struct bs_dev **out);
	void *esnap_ctx;		/* first argument of esnap_dev_create */
};

/** Fill @p opts with defaults. @p opts_size = sizeof(struct bs_opts). */
void bs_opts_init(struct bs_opts *opts, size_t opts_size);

/* ------------------------------------------------------------------------
 * Store lifecycle
 * ------------------------------------------------------------------------ */

/**
 * Lay out a new store on @p dev. The caller keeps ownership of @p dev and
 * may close it once unload (or destroy) has completed. The calling thread
 * becomes the metadata thread.
 * Errors: -EINVAL (bad options, unsupported block size), -ENOSPC (device too
 * small for the metadata), -ENOMEM, -EIO.
 * Durable: the empty store, when the callback reports 0.
 */
void bs_init(struct bs_dev *dev, const struct bs_opts *opts, struct bs_store **bs_out,
	     bs_cpl_fn cb_fn, void *cb_arg);

/**
 * Load the store on @p dev. A cleanly unloaded store loads from its masks
 * without opening any blob; otherwise (or with force_recover) the allocation
 * state is rebuilt from every blob's metadata with batched, deep-queue reads.
 * A blob whose metadata is corrupt is reported (bs_load_report) and skipped;
 * everything else loads.
 * Errors: -EILSEQ (not a store, or both super copies corrupt), -EOPNOTSUPP
 * (future format version or unknown incompatible feature), -ERANGE (store
 * geometry larger than the device), -EINVAL (bstype mismatch, block size
 * differs), -ENOMEM, -EIO.
 */
void bs_load(struct bs_dev *dev, const struct bs_opts *opts, struct bs_store **bs_out,
	     bs_cpl_fn cb_fn, void *cb_arg);

/**
 * Write the allocation masks and a clean super block and free the store.
 * Every channel (bs_alloc_channel) must have been freed; the callback runs
 * once they are. The device is left open. Errors: -EBUSY (blobs are open;
 * nothing changes), -EIO (the store is freed; on-disk state is the last
 * durable commit and the next load recovers). Durable: everything, on 0.
 */
void bs_unload(struct bs_store *bs, bs_cpl_fn cb_fn, void *cb_arg);

/**
 * Erase the store's super blocks and free the store (the device stays open).
 * Errors: -EBUSY (blobs open), -EIO.
 */
void bs_destroy(struct bs_store *bs, bs_cpl_fn cb_fn, void *cb_arg);

/**
 * Make every data write that completed before this call durable, together
 * with the cluster allocations it made (D9).
 * Errors: -EIO (then the store is in its error state, see bs_get_error).
 */
void bs_flush(struct bs_store *bs, bs_cpl_fn cb_fn, void *cb_arg);

/** Record @p id as the super blob (0 clears it). Durable on success.
 * Errors: -ENOENT (no such blob), -EIO, -EROFS. */
void bs_set_super(struct bs_store *bs, bs_blob_id id, bs_cpl_fn cb_fn, void *cb_arg);

/** The super blob id, or -ENOENT if none is set. Synchronous. */
int bs_get_super(struct bs_store *bs, bs_blob_id *id);

/* Getters: synchronous, any thread. */
uint64_t bs_get_cluster_size(const struct bs_store *bs);
uint64_t bs_get_page_size(const struct bs_store *bs);
uint64_t bs_get_io_unit_size(const struct bs_store *bs);
uint64_t bs_get_free_cluster_count(const struct bs_store *bs);
uint64_t bs_get_total_data_cluster_count(const struct bs_store *bs);
uint64_t bs_get_max_blobs(const struct bs_store *bs);
/** The bstype given at init (16 bytes). */
const uint8_t *bs_get_bstype(const struct bs_store *bs);
/** 0, or the error that latched the store read-only (D10). */
int bs_get_error(const struct bs_store *bs);
/** True if the store was loaded read-only (unknown ro_compat feature). */
bool bs_is_read_only(const struct bs_store *bs);

/** What the last load found. */
struct bs_load_report {
	bool was_clean;			/* clean fast path taken */
	bool recovered;			/* dirty recovery ran */
	uint64_t blobs;			/* live blobs */
	uint64_t corrupt_blobs;		/* skipped: metadata failed validation */
	uint64_t fallback_roots;	/* blobs loaded from their previous root */
	uint64_t md_bytes_read;
	uint64_t usec;
};
void bs_get_load_report(const struct bs_store *bs, struct bs_load_report *r);

/* ------------------------------------------------------------------------
 * Iteration: ids in slot order. Synchronous (no blob is opened).
 * ------------------------------------------------------------------------ */

/** First blob id, or BS_BLOB_ID_INVALID when the store is empty. */
bs_blob_id bs_iter_first(struct bs_store *bs);
/** Next blob id after @p prev, or BS_BLOB_ID_INVALID at the end. */
bs_blob_id bs_iter_next(struct bs_store *bs, bs_blob_id prev);
/** Ids of blobs whose metadata failed validation (corrupt), same scheme. */
bs_blob_id bs_iter_corrupt(struct bs_store *bs, bs_blob_id prev);

/* ------------------------------------------------------------------------
 * Blobs
 * ------------------------------------------------------------------------ */

struct bs_xattr {
	const char *name;
	const void *value;
	uint32_t value_len;
};

struct bs_blob_opts {
	size_t opts_size;		/* set by bs_blob_opts_init() */
	uint64_t num_clusters;		/* initial size */
	bool thin_provision;		/* allocate on first write */
	const struct bs_xattr *xattrs;	/* initial xattrs */
	uint32_t xattr_count;
};
void bs_blob_opts_init(struct bs_blob_opts *opts, size_t opts_size);

/**
 * Create a blob (closed). @p opts may be NULL (empty thick blob).
 * Errors: -ENOSPC (no free slot, or not enough clusters for a thick blob),
 * -EINVAL (bad xattr), -EROFS, -EIO, -ENOMEM.
 * Durable: the blob with its size and xattrs, when it reports 0.
 */
void bs_blob_create(struct bs_store *bs, const struct bs_blob_opts *opts, bs_blob_id *id_out,
		    bs_cpl_fn cb_fn, void *cb_arg);

/**
 * Open a blob. Opens are reference counted: opening an open blob returns
 * the same handle. Errors: -ENOENT (no such blob), -EILSEQ (its metadata is
 * corrupt), -EOPNOTSUPP (unknown invalid flag), -ENOMEM, -EIO.
 */
void bs_blob_open(struct bs_store *bs, bs_blob_id id, struct bs_blob **blob_out,
		  bs_cpl_fn cb_fn, void *cb_arg);

/**
 * Drop a reference; every close first syncs unsaved metadata (as bs_blob_sync).
 * Errors: -EIO (sync failed; the handle is still released).
 */
void bs_blob_close(struct bs_blob *blob, bs_cpl_fn cb_fn, void *cb_arg);

/**
 * Delete a blob the application holds no handle of. A snapshot with one
 * clone is merged into it (the clone takes over its clusters); a snapshot
 * with several clones is hidden: it disappears from iteration and open,
 * keeps serving its clones, and goes away by itself when at most one clone
 * is left. Its clones may be open meanwhile (their IO is paused during the
 * merge; their handles keep working).
 * Errors: -ENOENT, -EBUSY (the blob has a handle, a sync or another
 * operation on it or its clone is running), -EROFS, -EIO.
 * Callback: the metadata thread. Durable: the blob is gone, when it reports
 * 0 (D11; a merge as one group, D13).
 */
void bs_blob_delete(struct bs_store *bs, bs_blob_id id, bs_cpl_fn cb_fn, void *cb_arg);

/**
 * Change the size to @p num_clusters. A thick blob allocates (zeroed) or
 * frees clusters; a thin blob only changes its size. In-flight IO is drained
 * first. Not durable until bs_blob_sync().
 * Errors: -EPERM (read-only blob), -ENOSPC, -EIO, -ENOMEM.
 */
void bs_blob_resize(struct bs_blob *blob, uint64_t num_clusters, bs_cpl_fn cb_fn, void *cb_arg);

/**
 * Persist the blob's metadata (size, flags, xattrs, cluster map) and make
 * its completed data writes durable. Errors: -EIO, -EROFS (store latched),
 * -EPERM (metadata read-only).
 */
void bs_blob_sync(struct bs_blob *blob, bs_cpl_fn cb_fn, void *cb_arg);

/** Mark the blob read-only (in RAM until synced). 0 or -EPERM. */
int bs_blob_set_read_only(struct bs_blob *blob);

/* Xattrs: synchronous, in RAM until bs_blob_sync(). Names are 1..255 bytes,
 * values 0..65536 bytes; all of a blob's xattrs together fit in 129024
 * bytes of stream. Errors: -EINVAL (bad name/value), -ENOSPC (too much in
 * total), -ENOENT (no such name), -EPERM (metadata read-only). */
int bs_blob_set_xattr(struct bs_blob *blob, const char *name, const void *value,
		      uint32_t value_len);
/** *value points into the handle; valid until the xattr changes or the blob closes. */
int bs_blob_get_xattr(struct bs_blob *blob, const char *name, const void **value,
		      uint32_t *value_len);
int bs_blob_remove_xattr(struct bs_blob *blob, const char *name);
/** Number of user xattrs; names through bs_blob_get_xattr_name(). */
uint32_t bs_blob_get_xattr_count(struct bs_blob *blob);
/** The i-th user xattr name (0-based), NULL past the end. */
const char *bs_blob_get_xattr_name(struct bs_blob *blob, uint32_t i);

/* Queries: synchronous, any thread while the blob is open. */
bs_blob_id bs_blob_get_id(const struct bs_blob *blob);
uint64_t bs_blob_get_num_clusters(const struct bs_blob *blob);
uint64_t bs_blob_get_num_io_units(const struct bs_blob *blob);
uint64_t bs_blob_get_num_allocated_clusters(const struct bs_blob *blob);
bool bs_blob_is_thin(const struct bs_blob *blob);
bool bs_blob_is_read_only(const struct bs_blob *blob);
/** First allocated (resp. unallocated) io unit at or after @p offset, or UINT64_MAX. */
uint64_t bs_blob_next_allocated_io_unit(const struct bs_blob *blob, uint64_t offset);
uint64_t bs_blob_next_unallocated_io_unit(const struct bs_blob *blob, uint64_t offset);

/* ------------------------------------------------------------------------
 * Data IO, through a channel of the calling thread. Offsets and lengths are
 * in io units. Requests are split at cluster boundaries. Reads of
 * unallocated clusters of a thin blob return zeros; the first write to one
 * allocates it. All complete on the channel's thread.
 * Errors: -EINVAL (zero length, misaligned buffer), -ERANGE (past the end),
 * -EPERM (write to a read-only blob, or a thin allocation in a blob whose
 * metadata is read-only), -EROFS (write while the store is loaded
 * read-only), -EBADF (blob closed), -ENOSPC (thin allocation failed),
 * -EAGAIN (channel out of request slots), -EIO.
 * ------------------------------------------------------------------------ */

/** Allocate the calling thread's channel. NULL with errno on failure. */
struct bs_io_channel *bs_alloc_channel(struct bs_store *bs);
void bs_free_channel(struct bs_io_channel *ch);

void bs_blob_read(struct bs_blob *blob, struct bs_io_channel *ch, void *buf,
		  uint64_t offset, uint64_t length, bs_cpl_fn cb_fn, void *cb_arg);
void bs_blob_write(struct bs_blob *blob, struct bs_io_channel *ch, const void *buf,
		   uint64_t offset, uint64_t length, bs_cpl_fn cb_fn, void *cb_arg);
void bs_blob_readv(struct bs_blob *blob, struct bs_io_channel *ch, struct iovec *iov,
		   int iovcnt, uint64_t offset, uint64_t length, bs_cpl_fn cb_fn, void *cb_arg);
void bs_blob_writev(struct bs_blob *blob, struct bs_io_channel *ch, struct iovec *iov,
		    int iovcnt, uint64_t offset, uint64_t length, bs_cpl_fn cb_fn, void *cb_arg);
/** Unmapping whole clusters of a thin blob frees them; other ranges read as zeros after. */
void bs_blob_unmap(struct bs_blob *blob, struct bs_io_channel *ch, uint64_t offset,
		   uint64_t length, bs_cpl_fn cb_fn, void *cb_arg);
void bs_blob_write_zeroes(struct bs_blob *blob, struct bs_io_channel *ch, uint64_t offset,
			  uint64_t length, bs_cpl_fn cb_fn, void *cb_arg);

/* ------------------------------------------------------------------------
 * Snapshots and clones (docs/snapshots.md). All on the metadata thread.
 * Multi-blob changes are all-or-nothing across power cuts (D13).
 * ------------------------------------------------------------------------ */

/**
 * Take a snapshot of blob @p id: a new read-only blob takes over all of its
 * clusters, and @p id becomes a thin clone of it. The blob may be open; its
 * IO is paused meanwhile. Completed writes are in the snapshot and durable.
 * @p xattrs (may be NULL) are set on the snapshot. The snapshot of an
 * esnap clone takes over the external parent (id and device): it becomes
 * the esnap clone and @p id its clone.
 * Errors: -ENOENT, -EINVAL (blob is read-only: clone it instead),
 * -ENXIO (the blob is degraded: nothing changes),
 * -EPERM (metadata read-only), -ENOSPC (no slot or pool page), -EBUSY
 * (a sync or resize of the blob is running), -EIO, -EROFS.
 * Durable: both blobs, when it reports 0.
 */
void bs_blob_snapshot(struct bs_store *bs, bs_blob_id id, const struct bs_xattr *xattrs,
		      uint32_t xattr_count, bs_blob_id *snap_out, bs_cpl_fn cb_fn, void *cb_arg);

/**
 * Create a thin clone of the read-only blob @p parent (same size).
 * Errors: -ENOENT, -EINVAL (parent is writable), -ENXIO (parent is
 * degraded), -ENOSPC, -EIO, -EROFS. Durable when it reports 0.
 */
void bs_blob_clone(struct bs_store *bs, bs_blob_id parent, const struct bs_xattr *xattrs,
		   uint32_t xattr_count, bs_blob_id *clone_out, bs_cpl_fn cb_fn, void *cb_arg);

/**
 * Give blob @p id a cluster of its own for every cluster (copied from its
 * chain or from the external device at its bottom, or zeroed) and drop its
 * parent; an esnap clone stops depending on its device. Errors: -ENOENT,
 * -ENXIO (degraded: the external data cannot be copied), -ENOSPC, -EBUSY,
 * -EIO. Durable when it reports 0.
 */
void bs_blob_inflate(struct bs_store *bs, bs_blob_id id, bs_cpl_fn cb_fn, void *cb_arg);

/**
 * Copy into blob @p id the clusters its parent owns (where it has none of
 * its own), then make its grandparent its parent. Errors: -ENOENT, -EINVAL
 * (no blob parent, as for an esnap clone: inflate it instead; or the
 * parent is an esnap clone, whose external parent cannot pass down),
 * -ENOSPC, -EBUSY, -EIO. Durable when it reports 0.
 */
void bs_blob_decouple_parent(struct bs_store *bs, bs_blob_id id, bs_cpl_fn cb_fn, void *cb_arg);

/**
 * Make the read-only blob @p parent the parent of thin blob @p id. They must
 * have the same size, and @p parent must not descend from @p id. An esnap
 * clone stops being one (its device is closed once the change is durable).
 * Errors: -ENOENT, -EINVAL (size mismatch, parent writable, cycle, same
 * blob), -EBUSY, -EIO. Durable when it reports 0.
 */
void bs_blob_set_parent(struct bs_store *bs, bs_blob_id id, bs_blob_id parent,
			bs_cpl_fn cb_fn, void *cb_arg);

/** Progress of a long operation: @p done of @p total units (clusters) finished. */
typedef void (*bs_progress_fn)(void *arg, uint64_t done_clusters, uint64_t total_clusters);

/**
 * Shallow copy: copy every cluster that the read-only blob @p id owns itself
 * (not those its ancestors serve) to the same byte offset (cluster index *
 * cluster size) of device @p dst. Other ranges of @p dst are not touched.
 * Reads go through the store's device, writes through a channel of @p dst
 * taken on the metadata thread; at most 4 clusters are in flight, with
 * buffers allocated at the start. The blob stays open-able and readable
 * meanwhile; the copy holds a reference on it, so deleting it (or merging
 * an ancestor into it) fails with -EBUSY until the copy completes, and so
 * does bs_unload(). @p progress_fn (may be NULL) runs on the metadata
 * thread after each copied cluster with increasing counts, the last call
 * with done == total (no call if the blob owns no cluster).
 * Errors: -ENOENT (no such blob, or hidden), -EPERM (blob writable, or its
 * read-only flag not synced yet; not on the metadata thread), -EINVAL (NULL
 * argument, @p dst is the store's device, block sizes differ, @p dst
 * smaller than the blob), -ESHUTDOWN (unloading), -ENOMEM, -EIO or another
 * -errno from a device (first error wins; no new IO is issued after it and
 * the callback runs once the IO in flight has completed).
 * Callback: on the metadata thread, never inline.
 * Durable: the copied clusters on @p dst (flushed), when it reports 0.
 * Nothing in the store changes.
 */
void bs_blob_shallow_copy(struct bs_store *bs, bs_blob_id id, struct bs_dev *dst,
			  bs_progress_fn progress_fn, void *progress_arg,
			  bs_cpl_fn cb_fn, void *cb_arg);

/* ------------------------------------------------------------------------
 * External snapshots (esnap): a thin blob whose clusters it does not own
 * read from an external read-only device, named by an opaque id the
 * application's bs_opts.esnap_dev_create turns into a device at open.
 * Blob cluster i reads the external device's bytes [i * cluster_size,
 * (i + 1) * cluster_size); bytes past the device's end read as zeros. The
 * device's block length must divide the store's io unit and its buffer
 * alignment must not exceed the store device's (or 4 KiB); otherwise the
 * blob opens degraded. Without a device the blob is *degraded*: reads of
 * clusters it owns and metadata calls work; reads that need the external
 * device and writes that would copy from it fail with -ENXIO.
 * ------------------------------------------------------------------------ */

/** Largest external snapshot id, bytes. */
#define BS_ESNAP_ID_MAX_LEN 1024u

/**
 * Create a thin blob of @p num_clusters clusters backed by the external
 * device named by @p esnap_id (@p id_len bytes, copied). The device is not
 * opened (the factory runs at bs_blob_open). @p xattrs (may be NULL) are
 * set on the blob. Created closed, like bs_blob_create.
 * Errors: -EINVAL (NULL id or id_out, id_len 0 or > BS_ESNAP_ID_MAX_LEN,
 * too many clusters), -ENOSPC (no slot or pool page), -EIO, -EROFS,
 * -ENOMEM. Callback: the metadata thread.
 * Durable: the blob with its esnap id, when it reports 0.
 */
void bs_blob_create_esnap_clone(struct bs_store *bs, const void *esnap_id, uint32_t id_len,
				uint64_t num_clusters, const struct bs_xattr *xattrs,
				uint32_t xattr_count, bs_blob_id *id_out,
				bs_cpl_fn cb_fn, void *cb_arg);

/**
 * Make thin blob @p id (no parent, or a blob parent) an esnap clone of the
 * external device @p esnap_id: its unowned clusters read from that device
 * from now on. The factory is called first; without a device nothing
 * changes. The blob may be open; its IO is paused meanwhile. A previous
 * blob parent loses this clone (a hidden one may collapse).
 * Errors: -EINVAL (blob not thin, has clones, already an esnap clone,
 * id_len 0 or too long, NULL id), -EPERM (blob read-only or its metadata read-only), -ENXIO (the
 * factory gave no usable device), -ENOENT, -EBUSY (sync or resize
 * running), -EIO, -EROFS, -ENOMEM. Callback: the metadata thread.
 * Durable: the new parent link, when it reports 0.
 */
void bs_blob_set_external_parent(struct bs_store *bs, bs_blob_id id, const void *esnap_id,
				 uint32_t id_len, bs_cpl_fn cb_fn, void *cb_arg);

/** True if @p blob's own parent is an external device. Any thread. */
bool bs_blob_is_esnap_clone(const struct bs_blob *blob);

/**
 * The esnap id of esnap clone @p blob (valid while it is open).
 * 0, -EINVAL (not an esnap clone, NULL argument), -EBADF (closed). Sync.
 */
int bs_blob_get_esnap_id(const struct bs_blob *blob, const void **id, size_t *len);

/**
 * True if @p blob or the ancestor at the bottom of its chain is an esnap
 * clone opened without its external device. Any thread.
 */
bool bs_blob_is_degraded(const struct bs_blob *blob);

/** Parent of @p id (0 if none) from the store's parent table. 0, -ENOENT. Sync. */
int bs_blob_get_parent(struct bs_store *bs, bs_blob_id id, bs_blob_id *parent);

/**
 * Clones of @p id. On entry *count is the capacity of @p ids; on return the
 * number of clones (ids filled up to the capacity). 0, -ENOENT, -ENOBUFS
 * (capacity too small; *count says how many there are). Sync.
 */
int bs_blob_get_clones(struct bs_store *bs, bs_blob_id id, bs_blob_id *ids, size_t *count);

/* ------------------------------------------------------------------------
 * Consistency checker
 * ------------------------------------------------------------------------ */

struct bs_check_report {
	uint64_t blobs_checked;
	uint64_t problems;		/* 0 = consistent */
	uint64_t corrupt_blobs;
	uint64_t leaked_clusters;	/* used in the mask, owned by no blob */
	uint64_t double_owned_clusters;
	uint64_t lost_clusters;		/* owned, but free in the mask */
	uint64_t pool_mismatches;	/* pool page mask differs from the trees */
	uint64_t counter_mismatches;
};

/** Called once per problem with a one-line description. */
typedef void (*bs_check_msg_fn)(void *arg, bs_blob_id id, const char *msg);

/**
 * Check the loaded store: re-read every blob's metadata from the device,
 * recompute the allocation masks and compare them with the store's, check
 * that no cluster is owned twice, that every tree validates and that the
 * counters are right. Must run with no blob open for writing.
 * Errors (of the check itself): -ENOMEM, -EIO. Problems are in @p report.
 */
void bs_check(struct bs_store *bs, struct bs_check_report *report, bs_check_msg_fn msg_fn,
	      void *msg_arg, bs_cpl_fn cb_fn, void *cb_arg);

#ifdef __cplusplus
}
#endif
#endif /* BLOBSTORE_BLOBSTORE_H */
