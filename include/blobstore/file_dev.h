/*
 * File and block-device backends.
 *
 * bs_file_dev_open() opens a regular file or a raw block device with
 * O_DIRECT (no page cache) and serves IO through io_uring: one ring per
 * channel, reaped by a poller on the channel's thread; a full submission
 * queue is back-pressure (IO waits in a queue, it is never refused); short
 * reads and writes are resubmitted; flush is IORING_OP_FSYNC (datasync);
 * write_zeroes is fallocate(ZERO_RANGE) (BLKZEROOUT on a block device),
 * except that on a regular file a range of up to 1 MiB is written with
 * zeros, so that the file's extents stay written (later partial writes into
 * an unwritten extent convert it, at about half the IOPS on ext4); unmap is
 * fallocate(PUNCH_HOLE) on a file and BLKDISCARD on a block device.
 *
 * Copy offload (struct bs_dev_ops.copy, bs_dev_has_copy()): on a regular
 * file, a copy within the device is copy_file_range() from the file to
 * itself, which on btrfs and XFS shares the extents (a reflink: no data
 * moves) and elsewhere makes the kernel copy the bytes (no trip through
 * user space, but a real copy). bs_file_dev_opts.copy chooses whether the
 * device offers it: AUTO only on btrfs and XFS, where it is cheap; ON on any
 * regular file; OFF never. Block devices and read-only devices never offer
 * it. Without it, callers copy with read and write (the blob layer does).
 * The copy runs synchronously inside the submit call (io_uring has no
 * copy_file_range opcode), so the channel's thread blocks for it, and its
 * completion is delivered on a later poll like any other. Durable, like a
 * write, once a flush issued after its completion has completed.
 *
 * Where io_uring cannot be set up (ENOSYS, EPERM: some containers forbid it)
 * the same device is served by a plain pread/pwrite backend, with one log
 * line saying so. It can be forced with BS_FILE_BACKEND_PSYNC or with the
 * environment variable BLOBSTORE_IO=psync (BLOBSTORE_IO=uring forbids the
 * fallback).
 */
#ifndef BLOBSTORE_FILE_DEV_H
#define BLOBSTORE_FILE_DEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <blobstore/dev.h>

#ifdef __cplusplus
extern "C" {
#endif

enum bs_file_backend {
	BS_FILE_BACKEND_AUTO = 0,	/* io_uring, else pread/pwrite */
	BS_FILE_BACKEND_URING = 1,	/* io_uring or fail */
	BS_FILE_BACKEND_PSYNC = 2,	/* pread/pwrite */
};

/** Whether the device offers copy offload (see the comment at the top). */
enum bs_file_copy {
	BS_FILE_COPY_AUTO = 0,		/* on regular files on btrfs and XFS only */
	BS_FILE_COPY_ON = 1,		/* on any regular file; a block device: -EINVAL */
	BS_FILE_COPY_OFF = 2,		/* never */
};

struct bs_file_dev_opts {
	size_t opts_size;		/* sizeof(struct bs_file_dev_opts) */
	/* Logical block size: 0 = the device's (block device) or 4096 (file).
	 * Must be a power of two from 512 to 65536, and at least the O_DIRECT
	 * alignment the file system or device requires. */
	uint32_t block_len;
	uint32_t queue_depth;		/* per channel, default 128, max 4096 */
	/* Create the file (or extend a shorter one) to this many bytes.
	 * 0 = open an existing file or device as it is. */
	uint64_t create_size;
	/* Refuse devices smaller than this many bytes (default: one block). */
	uint64_t min_size;
	enum bs_file_backend backend;
	bool read_only;			/* a read-only device never offers copy */
	enum bs_file_copy copy;		/* copy offload, default AUTO */
	/* io_uring backend, channels on a bound thread (a reactor or
	 * bs_thread_bind()): while at least this many IOs are in flight the
	 * channel keeps its thread polling instead of sleeping, so completions
	 * are picked up without a wake-up (one core stays busy meanwhile).
	 * Default 4; 0 = always sleep when idle. Unbound threads never
	 * busy-poll: their completions arrive by wake-up either way. */
	uint32_t busy_poll_depth;
};

/** Fill @p opts with defaults. */
void bs_file_dev_opts_init(struct bs_file_dev_opts *opts);

/**
 * Open @p path as a device. Synchronous.
 * @return 0 and *@p out, or with one log line: -ENOENT (missing), -EISDIR
 *         (a directory), -ENODEV (neither file nor block device), -EINVAL
 *         (unsupported block size, size not a multiple of it, bad options,
 *         copy ON on a block device), -EOPNOTSUPP/-ENOSYS/-EXDEV (copy ON
 *         but copy_file_range refused on this file),
 *         -ENOSPC (smaller than min_size), -ENOSYS/-EPERM (io_uring forced
 *         but unavailable), or another -errno from open/ioctl.
 */
int bs_file_dev_open(const char *path, const struct bs_file_dev_opts *opts,
		     struct bs_dev **out);

/** Which backend serves @p dev ("io_uring" or "psync"); NULL if not a file dev. */
const char *bs_file_dev_backend(const struct bs_dev *dev);

/**
 * Zeroes device: @p block_count blocks that read as zeros; writes,
 * write_zeroes and unmap are refused with -EROFS; flush succeeds.
 * @return 0, -EINVAL, -ENOMEM.
 */
int bs_zeroes_dev_create(uint32_t block_len, uint64_t block_count, struct bs_dev **out);

#ifdef __cplusplus
}
#endif
#endif /* BLOBSTORE_FILE_DEV_H */
