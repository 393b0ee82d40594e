/*
 * Copy offload of the file device: copy_file_range() from the file to
 * itself, and the choice whether a device offers it (bs_file_dev_opts.copy).
 *
 * Why copy_file_range and when it pays: on btrfs and XFS a copy within one
 * file shares the source's extents (a reflink), so a cluster copy is a
 * small metadata update and no data moves; that is what AUTO looks for. On
 * other file systems (ext4, tmpfs) the kernel copies the bytes itself,
 * which saves the trip through user space but not the IO; ON allows it
 * there. Block devices have no copy_file_range (the kernel refuses anything
 * but regular files), so ON on one is an error.
 *
 * O_DIRECT: the device's only descriptor is O_DIRECT, and copy_file_range
 * accepts it (checked on Linux 6.18, ext4 and tmpfs: the data reads back
 * through O_DIRECT reads and buffered reads alike; a reflink does not go
 * through the page cache at all). On ext4 the in-kernel copy then does
 * direct IO, so ranges must be aligned like any O_DIRECT transfer; device
 * copies are whole blocks of at least the O_DIRECT alignment, so they are.
 * No second, buffered descriptor is needed.
 *
 * Durability: a copy is a write of its destination range. It is durable
 * once a flush (fdatasync, which also commits the extent changes of a
 * reflink) issued after its completion has completed.
 */
#include <errno.h>
#include <linux/magic.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "dev/file_dev_int.h"
#include "util/log_int.h"

/* Is the file at @p fd on a file system where a copy within it is a
 * reflink? Unknown (fstatfs failed) counts as no. */
static bool filedev_fs_reflinks(int fd)
{
	struct statfs sfs;

	if (fstatfs(fd, &sfs) != 0)
		return false;
	return (unsigned long)sfs.f_type == BTRFS_SUPER_MAGIC ||
	       (unsigned long)sfs.f_type == XFS_SUPER_MAGIC;
}

/* A zero-length copy_file_range checks what a real one would (the syscall
 * exists and is allowed, the file type and file system accept it) without
 * copying anything. 0 or -errno. */
static int filedev_copy_probe(int fd)
{
	loff_t src = 0, dst = 0;

	return copy_file_range(fd, &src, fd, &dst, 0, 0) == 0 ? 0 : -errno;
}

/* AUTO falls back to no offload, with a notice, where the probe fails (a
 * sandbox forbidding the syscall); ON fails the open with one error line. */
int filedev_copy_choose(const char *path, int fd, bool is_bdev, bool read_only,
			enum bs_file_copy mode, bool *on)
{
	int rc;

	*on = false;
	if (mode == BS_FILE_COPY_ON && is_bdev) {
		LOG_ERR("%s: cannot open with copy on: a block device has no copy_file_range",
			path);
		return -EINVAL;
	}
	if (read_only || is_bdev || mode == BS_FILE_COPY_OFF)
		return 0;
	if (mode == BS_FILE_COPY_AUTO && !filedev_fs_reflinks(fd))
		return 0;
	rc = filedev_copy_probe(fd);
	if (rc == 0) {
		*on = true;
		return 0;
	}
	if (mode == BS_FILE_COPY_ON) {
		LOG_ERR("%s: cannot open with copy on: copy_file_range refused: %s",
			path, strerror(-rc));
		return rc;
	}
	LOG_NOTICE("%s: copy_file_range refused (%s): no copy offload", path, strerror(-rc));
	return 0;
}

/*
 * Copy @p len bytes from @p src to @p dst within the file: loop over short
 * copies (each call is capped at max_xfer, so unit tests can force the
 * loop) and EINTR. A call that copies nothing (the source is past the end
 * of a file shrunk behind our back) fails with -EIO, like a short read.
 */
static int filedev_copy_range(struct filedev *fdev, uint64_t dst, uint64_t src, uint64_t len)
{
	loff_t s = (loff_t)src, d = (loff_t)dst;
	uint64_t done = 0;
	ssize_t n;

	while (done < len) {
		n = copy_file_range(fdev->fd, &s, fdev->fd, &d,
				    (size_t)BS_MIN(len - done, (uint64_t)fdev->max_xfer), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		done += (uint64_t)n;
	}
	return 0;
}

/*
 * ops->copy. io_uring has no copy_file_range opcode (and splice needs a
 * pipe on one side), so both backends copy synchronously here and deliver
 * the completion on a later poll, as the IO contract demands. The channel's
 * thread blocks meanwhile: for the blob layer's copies (one cluster, 1 MiB
 * by default) that is a reflink's metadata update on btrfs and XFS, and an
 * in-kernel copy of the cluster, about as long as a read and a write of it,
 * where ON forced the offload onto another file system. The generic layer
 * has already refused overlapping ranges.
 */
void filedev_copy(struct bs_dev *dev, void *ch_ctx, struct bs_dev_io *io)
{
	struct filedev *fdev = filedev_from_dev(dev);
	uint64_t len = filedev_io_bytes(io);
	uint64_t src = io->src_lba * dev->block_len;
	uint64_t dst = filedev_io_offset(io);

	assert(src + len <= dst || dst + len <= src);
	bs_dev_io_complete_deferred(io, filedev_copy_range(fdev, dst, src, len));
}
