/*
 * Zeroes device: a read-only device of any size whose every block reads as
 * zeros. Useful as the backing of a thin or sparse layer and for tests.
 *
 * Reads fill the caller's buffers with zeros; writes, write_zeroes and unmap
 * fail with -EROFS (the generic layer already refuses them because the
 * device is flagged read-only; the ops are here for completeness); flush
 * succeeds. Every completion is deferred to a later poll.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <blobstore/file_dev.h>

#include "util/assert_int.h"
#include "util/log_int.h"

/* Nothing per channel; the runtime still wants a context to hand around. */
struct zeroesdev_channel {
	struct bs_dev *dev;
};

static void zeroesdev_read(struct bs_dev *dev, void *ch_ctx, struct bs_dev_io *io)
{
	int i;

	for (i = 0; i < io->iovcnt; i++)
		memset(io->iov[i].iov_base, 0, io->iov[i].iov_len);
	bs_dev_io_complete_deferred(io, 0);
}

static void zeroesdev_refuse(struct bs_dev *dev, void *ch_ctx, struct bs_dev_io *io)
{
	bs_dev_io_complete_deferred(io, -EROFS);
}

static void zeroesdev_flush(struct bs_dev *dev, void *ch_ctx, struct bs_dev_io *io)
{
	bs_dev_io_complete_deferred(io, 0);
}

static int zeroesdev_channel_create(struct bs_dev *dev, void *ch_ctx)
{
	struct zeroesdev_channel *ch = ch_ctx;

	ch->dev = dev;
	return 0;
}

static void zeroesdev_channel_destroy(struct bs_dev *dev, void *ch_ctx)
{
}

static void zeroesdev_destroy(struct bs_dev *dev)
{
	free(dev);
}

static const struct bs_dev_ops zeroesdev_ops = {
	.channel_create = zeroesdev_channel_create,
	.channel_destroy = zeroesdev_channel_destroy,
	.read = zeroesdev_read,
	.write = zeroesdev_refuse,
	.readv = zeroesdev_read,
	.writev = zeroesdev_refuse,
	.flush = zeroesdev_flush,
	.write_zeroes = zeroesdev_refuse,
	.unmap = zeroesdev_refuse,
	.destroy = zeroesdev_destroy,
};

int bs_zeroes_dev_create(uint32_t block_len, uint64_t block_count, struct bs_dev **out)
{
	struct bs_dev *dev;
	int rc;

	if (out == NULL || !BS_IS_POW2(block_len) || block_len < 512 ||
	    block_len > 65536 || block_count == 0 || block_count > UINT64_MAX / block_len) {
		LOG_ERR("zeroes: bad geometry (%u-byte blocks, %llu blocks)", block_len,
			(unsigned long long)block_count);
		return -EINVAL;
	}
	dev = calloc(1, sizeof(*dev));
	if (dev == NULL)
		return -ENOMEM;
	dev->ops = &zeroesdev_ops;
	snprintf(dev->name, sizeof(dev->name), "zeroes");
	dev->block_len = block_len;
	dev->block_count = block_count;
	dev->phys_block_len = block_len;
	dev->atomic_write_len = block_len;
	dev->buf_align = 1;	/* memset needs no alignment */
	dev->channel_ctx_size = sizeof(struct zeroesdev_channel);
	dev->flags = BS_DEV_F_READ_ONLY;
	dev->max_queue_depth = UINT32_MAX;
	rc = bs_dev_register(dev);
	if (rc != 0) {
		free(dev);
		return rc;
	}
	*out = dev;
	return 0;
}
