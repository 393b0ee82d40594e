/*
 * Internal interface shared by the file/block-device backends:
 *  - file_dev.c   opens the path, probes the geometry, picks a backend and
 *                 owns the device object (struct filedev);
 *  - uring_dev.c  io_uring backend (one ring and one poller per channel);
 *  - psync_dev.c  synchronous preadv/pwritev fallback;
 *  - file_copy.c  copy offload (copy_file_range) and whether to offer it.
 *
 * Both backends share the device object, its destroy function, the iovec
 * cursor used to resume a short transfer, the synchronous BLKDISCARD and
 * the synchronous copy.
 */
#ifndef BS_DEV_FILE_DEV_INT_H
#define BS_DEV_FILE_DEV_INT_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include <blobstore/dev.h>
#include <blobstore/file_dev.h>

#include "util/assert_int.h"

/* Longest single read/write handed to the kernel by default (a multiple of
 * every block size); longer transfers continue like short ones. */
#define FILEDEV_MAX_XFER (1u << 30)

/* A file or block device opened by bs_file_dev_open(). */
struct filedev {
	struct bs_dev dev;		/* first: the generic layer's handle */
	/* dev.ops points here: the backend's table, plus .copy when the device
	 * offers copy offload (bs_file_dev_opts.copy). */
	struct bs_dev_ops ops;
	const struct bs_dev_ops *backend;	/* &uringdev_ops or &psyncdev_ops */
	int fd;
	bool is_bdev;
	uint32_t queue_depth;		/* per channel */
	uint32_t busy_poll_depth;	/* bs_file_dev_opts.busy_poll_depth */
	/* Longest single transfer, FILEDEV_MAX_XFER. A multiple of block_len;
	 * unit tests lower it to drive every IO through the resume path. */
	uint32_t max_xfer;
	/* fallocate(ZERO_RANGE) refused (tmpfs, some file systems): zero a
	 * file's range by punching a hole instead, which also reads as zeros. */
	bool zero_by_punch;
};

/* fallocate mode for write_zeroes on this device. */
static inline int filedev_zero_mode(const struct filedev *fdev)
{
	return (fdev->zero_by_punch ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE) |
	       FALLOC_FL_KEEP_SIZE;
}

/* A refused ZERO_RANGE on a regular file: switch to punching holes. */
static inline bool filedev_zero_fallback(struct filedev *fdev, const struct bs_dev_io *io, int res)
{
	if (res != -EOPNOTSUPP || io->type != BS_IO_WRITE_ZEROES || fdev->is_bdev ||
	    fdev->zero_by_punch)
		return false;
	fdev->zero_by_punch = true;
	return true;
}

static inline struct filedev *filedev_from_dev(struct bs_dev *dev)
{
	return BS_CONTAINER_OF(dev, struct filedev, dev);
}

/* Byte offset of @p io's first block. */
static inline uint64_t filedev_io_offset(const struct bs_dev_io *io)
{
	return io->lba * io->dev->block_len;
}

/* Total bytes @p io moves. */
static inline uint64_t filedev_io_bytes(const struct bs_dev_io *io)
{
	return io->lba_count * io->dev->block_len;
}

/* True for the four data kinds (read, write and their vectored forms). */
static inline bool filedev_io_is_data(const struct bs_dev_io *io)
{
	return io->type <= BS_IO_WRITEV;
}

/* True if @p io reads (the kernel fills its buffers). */
static inline bool filedev_io_is_read(const struct bs_dev_io *io)
{
	return io->type == BS_IO_READ || io->type == BS_IO_READV;
}

/*
 * True if @p io's next step is its whole iovec array in one call: it has not
 * started and is not longer than one transfer.
 */
static inline bool filedev_io_whole(const struct bs_dev_io *io)
{
	const struct filedev *fdev = BS_CONTAINER_OF(io->dev, struct filedev, dev);

	return io->done == 0 && filedev_io_bytes(io) <= fdev->max_xfer;
}

/*
 * The part of @p io's buffers that starts @p done bytes in: its address and
 * length within one iovec segment, capped at the device's max_xfer. Used to
 * resume a short transfer without touching the caller's iovec array.
 */
void filedev_iov_cursor(const struct bs_dev_io *io, uint64_t done,
			void **base, uint32_t *len);

/* BLKDISCARD bytes [off, off + len) of a block device, synchronously.
 * Returns 0 or -errno; a device without discard support counts as done. */
int filedev_discard(struct filedev *fdev, uint64_t off, uint64_t len);

/*
 * Should the device at @p fd (named @p path) offer copy offload under
 * @p mode? Sets *@p on. 0, or -errno with one log line: -EINVAL for ON on a
 * block device, the error of a probing copy_file_range for ON on a file
 * that refuses it (under AUTO such a file gets no offload and a notice).
 */
int filedev_copy_choose(const char *path, int fd, bool is_bdev, bool read_only,
			enum bs_file_copy mode, bool *on);

/* ops->copy of both backends: copy_file_range within the file. */
void filedev_copy(struct bs_dev *dev, void *ch_ctx, struct bs_dev_io *io);

/* ops->destroy of both backends: close the descriptor, free the device. */
void filedev_destroy(struct bs_dev *dev);

/* io_uring backend (uring_dev.c). */
extern const struct bs_dev_ops uringdev_ops;
uint32_t uringdev_channel_ctx_size(void);
/* Tests: whether the channel (its ctx) has a deferred ring, and whether it
 * holds its thread awake now. */
bool uringdev_channel_deferred(const void *ch_ctx);
bool uringdev_channel_held(const void *ch_ctx);
/* Can this process set up a ring of @p entries with the opcodes we need?
 * 0 or -errno (-ENOSYS/-EPERM/-EACCES: io_uring unavailable here). */
int uringdev_probe(uint32_t entries);

/* pread/pwrite backend (psync_dev.c). */
extern const struct bs_dev_ops psyncdev_ops;
uint32_t psyncdev_channel_ctx_size(void);

#endif /* BS_DEV_FILE_DEV_INT_H */
