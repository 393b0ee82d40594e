/*
 * pread/pwrite backend of the file/block-device device: the fallback for
 * hosts without a usable io_uring, and a reference for its semantics.
 *
 * Every op runs synchronously inside the submit call (preadv/pwritev,
 * fdatasync, fallocate, BLKDISCARD, copy_file_range when the device offers
 * copy, see file_copy.c) and completes through
 * bs_dev_io_complete_deferred(), so the callback still runs on a later poll
 * and never inline. The thread blocks for the duration of each IO; there is
 * no queue and no per-channel state.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "dev/file_dev_int.h"
#include "util/log_int.h"

/* Nothing per channel; the runtime still wants a context to hand around. */
struct psyncdev_channel {
	struct filedev *fdev;
};

uint32_t psyncdev_channel_ctx_size(void)
{
	return sizeof(struct psyncdev_channel);
}

/* One system call of @p io's transfer from io->done on: the whole vector
 * first, then (after a short transfer, or if it is too long for one call)
 * the rest of one segment at a time. */
static ssize_t psyncdev_xfer_once(struct filedev *fdev, struct bs_dev_io *io)
{
	off_t off = (off_t)(filedev_io_offset(io) + io->done);
	bool rd = filedev_io_is_read(io);
	uint32_t len;
	void *base;

	if (filedev_io_whole(io)) {
		return rd ? preadv(fdev->fd, io->iov, io->iovcnt, off)
			  : pwritev(fdev->fd, io->iov, io->iovcnt, off);
	}
	filedev_iov_cursor(io, io->done, &base, &len);
	return rd ? pread(fdev->fd, base, len, off) : pwrite(fdev->fd, base, len, off);
}

/* The whole transfer: loop over short results and EINTR. A call that makes
 * no progress (end of file on a read) fails with -EIO. */
static int psyncdev_xfer(struct filedev *fdev, struct bs_dev_io *io)
{
	uint64_t total = filedev_io_bytes(io);
	ssize_t n;

	while (io->done < total) {
		n = psyncdev_xfer_once(fdev, io);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		io->done += (uint64_t)n;
	}
	return 0;
}

/* read, write, readv and writev. */
static void psyncdev_rw(struct bs_dev *dev, void *ch_ctx, struct bs_dev_io *io)
{
	bs_dev_io_complete_deferred(io, psyncdev_xfer(filedev_from_dev(dev), io));
}

static void psyncdev_flush(struct bs_dev *dev, void *ch_ctx, struct bs_dev_io *io)
{
	struct filedev *fdev = filedev_from_dev(dev);

	bs_dev_io_complete_deferred(io, fdatasync(fdev->fd) == 0 ? 0 : -errno);
}

/* fallocate(@p mode) over @p io's range; 0 or -errno. */
static int psyncdev_fallocate(struct filedev *fdev, struct bs_dev_io *io, int mode)
{
	int rc;

	do {
		rc = fallocate(fdev->fd, mode, (off_t)filedev_io_offset(io),
			       (off_t)filedev_io_bytes(io));
	} while (rc != 0 && errno == EINTR);
	return rc == 0 ? 0 : -errno;
}

static void psyncdev_write_zeroes(struct bs_dev *dev, void *ch_ctx, struct bs_dev_io *io)
{
	struct filedev *fdev = filedev_from_dev(dev);
	int rc = psyncdev_fallocate(fdev, io, filedev_zero_mode(fdev));

	if (filedev_zero_fallback(fdev, io, rc))
		rc = psyncdev_fallocate(fdev, io, filedev_zero_mode(fdev));

	bs_dev_io_complete_deferred(io, rc);
}

/* Unmap: punch a hole in a file, discard on a block device. */
static void psyncdev_unmap(struct bs_dev *dev, void *ch_ctx, struct bs_dev_io *io)
{
	struct filedev *fdev = filedev_from_dev(dev);
	int rc;

	if (fdev->is_bdev)
		rc = filedev_discard(fdev, filedev_io_offset(io), filedev_io_bytes(io));
	else
		rc = psyncdev_fallocate(fdev, io, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
	bs_dev_io_complete_deferred(io, rc);
}

static int psyncdev_channel_create(struct bs_dev *dev, void *ch_ctx)
{
	struct psyncdev_channel *ch = ch_ctx;

	ch->fdev = filedev_from_dev(dev);
	return 0;
}

static void psyncdev_channel_destroy(struct bs_dev *dev, void *ch_ctx)
{
}

const struct bs_dev_ops psyncdev_ops = {
	.channel_create = psyncdev_channel_create,
	.channel_destroy = psyncdev_channel_destroy,
	.read = psyncdev_rw,
	.write = psyncdev_rw,
	.readv = psyncdev_rw,
	.writev = psyncdev_rw,
	.flush = psyncdev_flush,
	.write_zeroes = psyncdev_write_zeroes,
	.unmap = psyncdev_unmap,
	/* .copy = filedev_copy is added per device (bs_file_dev_opts.copy) */
	.destroy = filedev_destroy,
};
