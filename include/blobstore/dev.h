/*
 * Blobstore block device interface.
 *
 * A device is a linear array of logical blocks. The store, the tools and the
 * tests reach every backend (RAM, io_uring file or block device, pread/pwrite
 * fallback, zeroes, user devices) through the struct bs_dev vtable below.
 *
 * IO model:
 *  - Each thread that does IO takes a channel: bs_dev_get_channel().
 *  - The caller owns a struct bs_dev_io per IO in flight (no allocation on
 *    the IO path). It is private to the device until the completion runs.
 *  - All offsets and lengths are in logical blocks. Buffers and iovec bases
 *    and lengths must be aligned to dev->buf_align; iovec lengths must be
 *    multiples of the block length and add up to lba_count blocks.
 *  - Every IO completes exactly once through cb_fn(cb_arg, err) on the
 *    channel's thread, never before the submitting call returns. Bad input
 *    (zero length, misalignment, past the end, unsupported op) completes
 *    with -EINVAL, -ERANGE or -EOPNOTSUPP and logs one line.
 *
 * Durability model: devices may have a volatile write cache. A write is
 * durable once it has completed and a flush issued after that completion has
 * completed. No write larger than dev->atomic_write_len is atomic on power
 * loss; a write may be torn at logical-block granularity.
 */
#ifndef BLOBSTORE_DEV_H
#define BLOBSTORE_DEV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include <blobstore/thread.h>

#ifdef __cplusplus
extern "C" {
#endif

struct bs_dev;

/** IO kinds. Values are stable (they appear in fault-injection APIs). */
enum bs_io_type {
	BS_IO_READ = 0,
	BS_IO_WRITE = 1,
	BS_IO_READV = 2,
	BS_IO_WRITEV = 3,
	BS_IO_FLUSH = 4,
	BS_IO_WRITE_ZEROES = 5,
	BS_IO_UNMAP = 6,
	BS_IO_COPY = 7,
	BS_IO_NTYPES
};

/** Device capability flags (struct bs_dev.flags). */
enum {
	/** Unmapped blocks read back as zeros. */
	BS_DEV_F_UNMAP_ZEROES = 1u << 0,
	/** The device may lose completed writes that were not flushed. */
	BS_DEV_F_VOLATILE_CACHE = 1u << 1,
	/** Writes, write_zeroes and unmap are refused with -EROFS. */
	BS_DEV_F_READ_ONLY = 1u << 2,
	/** Block device (not a regular file, not memory). */
	BS_DEV_F_BLOCKDEV = 1u << 3,
};

/**
 * One IO in flight. Caller-owned; the fields are private to the device layer
 * from submission until the completion callback starts.
 */
struct bs_dev_io {
	bs_cpl_fn cb_fn;
	void *cb_arg;
	struct bs_dev *dev;
	struct bs_io_channel *ch;
	struct bs_dev_io *next;		/* device-private queue link */
	struct bs_defer defer;		/* deferred completion node */
	uint64_t lba;
	uint64_t lba_count;
	uint64_t src_lba;		/* BS_IO_COPY source */
	struct iovec *iov;
	int iovcnt;
	uint8_t type;			/* enum bs_io_type */
	int status;
	struct iovec iov_one;		/* single-buffer IO uses this */
	uint64_t done;			/* bytes done (short-IO resubmission) */
	uint64_t dev_priv[4];		/* scratch for the backend */
};

/**
 * Backend vtable. Every IO entry point receives a validated request and the
 * channel context of the calling thread; it must finish the request with
 * bs_dev_io_complete() on that thread, never inline. Optional entries may be
 * NULL: the wrapper then completes with -EOPNOTSUPP.
 */
struct bs_dev_ops {
	int (*channel_create)(struct bs_dev *dev, void *ch_ctx);
	void (*channel_destroy)(struct bs_dev *dev, void *ch_ctx);
	void (*read)(struct bs_dev *dev, void *ch_ctx, struct bs_dev_io *io);
	void (*write)(struct bs_dev *dev, void *ch_ctx, struct bs_dev_io *io);
	void (*readv)(struct bs_dev *dev, void *ch_ctx, struct bs_dev_io *io);
	void (*writev)(struct bs_dev *dev, void *ch_ctx, struct bs_dev_io *io);
	void (*flush)(struct bs_dev *dev, void *ch_ctx, struct bs_dev_io *io);
	void (*write_zeroes)(struct bs_dev *dev, void *ch_ctx, struct bs_dev_io *io);
	void (*unmap)(struct bs_dev *dev, void *ch_ctx, struct bs_dev_io *io);
	void (*copy)(struct bs_dev *dev, void *ch_ctx, struct bs_dev_io *io);
	/** Free the device. Called once, after every channel is gone. */
	void (*destroy)(struct bs_dev *dev);
};

/**
 * A device. Backends embed it (first member) and fill it before calling
 * bs_dev_register(). Users read the geometry fields; they never change while
 * the device is open.
 */
struct bs_dev {
	const struct bs_dev_ops *ops;
	char name[64];
	uint32_t block_len;		/* logical block: power of two, 512..65536 */
	uint64_t block_count;
	uint32_t phys_block_len;	/* physical block (>= block_len) */
	uint32_t atomic_write_len;	/* bytes written atomically on power loss */
	uint32_t buf_align;		/* required buffer/iovec alignment */
	uint32_t channel_ctx_size;	/* bytes of per-channel backend state */
	uint32_t flags;			/* BS_DEV_F_* */
	uint32_t max_queue_depth;	/* per channel; more IO is queued, not refused */
	/*
	 * Optional, set by the backend: write_zeroes of at most zero_buf_len
	 * bytes is issued as an ordinary write of this all-zero buffer. Regular
	 * files want it: fallocate(ZERO_RANGE) leaves unwritten extents, and
	 * every later partial write into them pays an extent conversion.
	 */
	const void *zero_buf;
	uint32_t zero_buf_len;
};

/* ------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------ */

/**
 * Make a filled-in @p dev usable (backends call this at the end of their
 * open/create function). Checks the geometry.
 * @return 0, -EINVAL for bad geometry (one log line), -ENOMEM.
 */
int bs_dev_register(struct bs_dev *dev);

/**
 * Close @p dev: new channels are refused, @p cb_fn runs on the calling
 * thread once every channel has been put, after ops->destroy freed the
 * device. Must be called on a bs_thread.
 */
void bs_dev_close(struct bs_dev *dev, bs_cpl_fn cb_fn, void *cb_arg);

/**
 * Get the calling thread's channel for @p dev (reference counted).
 * @return the channel or NULL with errno (EPERM: not on a bs_thread,
 *         ENODEV: device closing, ENOMEM, or the backend's error).
 */
struct bs_io_channel *bs_dev_get_channel(struct bs_dev *dev);

/** Drop a channel reference, on its own thread. */
void bs_dev_put_channel(struct bs_io_channel *ch);

/* ------------------------------------------------------------------------
 * IO. All complete through cb_fn on the channel's thread, never inline.
 * Errors: -EINVAL (zero length, misaligned buffer or iovec, bad iovcnt),
 * -ERANGE (past the end), -EROFS (write to a read-only device),
 * -EOPNOTSUPP (op not provided), -EIO/-ENOSPC and others from the backend.
 * ------------------------------------------------------------------------ */

void bs_dev_read(struct bs_io_channel *ch, struct bs_dev_io *io, void *buf,
		 uint64_t lba, uint64_t lba_count, bs_cpl_fn cb_fn, void *cb_arg);
void bs_dev_write(struct bs_io_channel *ch, struct bs_dev_io *io, const void *buf,
		  uint64_t lba, uint64_t lba_count, bs_cpl_fn cb_fn, void *cb_arg);
void bs_dev_readv(struct bs_io_channel *ch, struct bs_dev_io *io, struct iovec *iov,
		  int iovcnt, uint64_t lba, uint64_t lba_count,
		  bs_cpl_fn cb_fn, void *cb_arg);
void bs_dev_writev(struct bs_io_channel *ch, struct bs_dev_io *io, struct iovec *iov,
		   int iovcnt, uint64_t lba, uint64_t lba_count,
		   bs_cpl_fn cb_fn, void *cb_arg);
/**
 * Make every write that completed before this call durable. Completes when
 * they are (fdatasync or a device cache flush).
 */
void bs_dev_flush(struct bs_io_channel *ch, struct bs_dev_io *io,
		  bs_cpl_fn cb_fn, void *cb_arg);
/** The range reads back as zeros afterwards (volatile like a write). */
void bs_dev_write_zeroes(struct bs_io_channel *ch, struct bs_dev_io *io,
			 uint64_t lba, uint64_t lba_count, bs_cpl_fn cb_fn, void *cb_arg);
/**
 * Hint that the range is unused. It reads back as zeros only if the device
 * has BS_DEV_F_UNMAP_ZEROES; otherwise its contents are undefined.
 */
void bs_dev_unmap(struct bs_io_channel *ch, struct bs_dev_io *io,
		  uint64_t lba, uint64_t lba_count, bs_cpl_fn cb_fn, void *cb_arg);
/** Optional: copy blocks within the device (-EOPNOTSUPP if absent). */
void bs_dev_copy(struct bs_io_channel *ch, struct bs_dev_io *io, uint64_t dst_lba,
		 uint64_t src_lba, uint64_t lba_count, bs_cpl_fn cb_fn, void *cb_arg);

/** True if the device implements the optional copy operation. */
bool bs_dev_has_copy(const struct bs_dev *dev);

/**
 * Allocate @p len bytes of IO buffer, aligned to @p align (a power of two;
 * 0 = 4096), suitable for any device (O_DIRECT included). Buffers of 2 MiB
 * or more are 2 MiB aligned and asked to be backed by transparent huge pages
 * (madvise MADV_HUGEPAGE), so a large IO spans few physical segments and the
 * kernel need not split it; this is worth a large factor for 1 MiB IO on
 * devices with a low segment limit (virtio-blk: 254). Any thread.
 * @return the buffer, or NULL with errno ENOMEM or EINVAL (bad @p align,
 *         @p len 0). Free with bs_buf_free().
 */
void *bs_buf_alloc(size_t len, size_t align);

/** Free a buffer from bs_buf_alloc() (NULL is ignored). */
void bs_buf_free(void *buf);

/* ------------------------------------------------------------------------
 * For backends
 * ------------------------------------------------------------------------ */

/** Finish @p io now (must be on the channel's thread, not inline). */
void bs_dev_io_complete(struct bs_dev_io *io, int status);

/** Finish @p io on the next poll of the current thread (safe inline). */
void bs_dev_io_complete_deferred(struct bs_dev_io *io, int status);

/** Name of an IO kind, for log lines ("read", "write", ...). */
const char *bs_io_type_name(enum bs_io_type type);

#ifdef __cplusplus
}
#endif
#endif /* BLOBSTORE_DEV_H */
