/*
 * Generic device layer: registration, channels, and the IO entry points.
 *
 * Every IO passes through here first. The wrappers fill the caller's
 * bs_dev_io, check it (length, range, alignment, read-only, support) and
 * only then hand it to the backend, so backends see valid requests only.
 * A rejected request logs one line and completes with -errno on the next
 * poll of the thread, like any other completion.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <blobstore/dev.h>

#include "util/assert_int.h"
#include "util/log_int.h"

struct dev_close_ctx {
	struct bs_dev *dev;
	bs_cpl_fn cb_fn;
	void *cb_arg;
};

static const char *const g_io_names[BS_IO_NTYPES] = {
	"read", "write", "readv", "writev", "flush", "write_zeroes", "unmap", "copy",
};

const char *bs_io_type_name(enum bs_io_type type)
{
	return (unsigned)type < BS_IO_NTYPES ? g_io_names[type] : "unknown";
}

static int dev_channel_create(void *io_device, void *ctx)
{
	struct bs_dev *dev = io_device;

	return dev->ops->channel_create ? dev->ops->channel_create(dev, ctx) : 0;
}

static void dev_channel_destroy(void *io_device, void *ctx)
{
	struct bs_dev *dev = io_device;

	if (dev->ops->channel_destroy)
		dev->ops->channel_destroy(dev, ctx);
}

/* Geometry rules every device must meet; one log line for the first miss. */
static int dev_check_geometry(struct bs_dev *dev)
{
	const char *why = NULL;

	if (dev->ops == NULL || dev->ops->destroy == NULL)
		why = "missing ops";
	else if (!BS_IS_POW2(dev->block_len) || dev->block_len < 512 || dev->block_len > 65536)
		why = "block length must be a power of two from 512 to 65536";
	else if (dev->block_count == 0 || dev->block_count > UINT64_MAX / dev->block_len)
		why = "bad block count";
	else if (!BS_IS_POW2(dev->phys_block_len) || dev->phys_block_len < dev->block_len)
		why = "physical block must be a power of two >= the logical block";
	else if (dev->atomic_write_len < dev->block_len || dev->atomic_write_len % dev->block_len)
		why = "atomic write unit must be a multiple of the block length";
	else if (!BS_IS_POW2(dev->buf_align) || dev->buf_align > 65536)
		why = "buffer alignment must be a power of two <= 65536";
	if (why == NULL)
		return 0;
	LOG_ERR("device %s: %s (block_len %u, phys %u, atomic %u, align %u)",
		dev->name, why, dev->block_len, dev->phys_block_len,
		dev->atomic_write_len, dev->buf_align);
	return -EINVAL;
}

int bs_dev_register(struct bs_dev *dev)
{
	int rc;

	if (dev->phys_block_len == 0)
		dev->phys_block_len = dev->block_len;
	if (dev->atomic_write_len == 0)
		dev->atomic_write_len = dev->block_len;
	if (dev->buf_align == 0)
		dev->buf_align = 1;
	rc = dev_check_geometry(dev);
	if (rc != 0)
		return rc;
	rc = bs_io_device_register(dev, dev_channel_create, dev_channel_destroy,
				   dev->channel_ctx_size, dev->name);
	if (rc != 0)
		LOG_ERR("device %s: register: %s", dev->name, strerror(-rc));
	return rc;
}

static void dev_close_unreg_cpl(void *cb_arg, int err)
{
	struct dev_close_ctx *ctx = cb_arg;

	if (err == 0)
		ctx->dev->ops->destroy(ctx->dev);
	if (ctx->cb_fn != NULL)
		ctx->cb_fn(ctx->cb_arg, err);
	free(ctx);
}

static void dev_close_nomem_cpl(void *ctx)
{
	struct dev_close_ctx *c = ctx;

	c->cb_fn(c->cb_arg, -ENOMEM);
}

void bs_dev_close(struct bs_dev *dev, bs_cpl_fn cb_fn, void *cb_arg)
{
	struct dev_close_ctx *ctx = malloc(sizeof(*ctx));

	if (ctx == NULL) {
		static __thread struct bs_defer node;
		static __thread struct dev_close_ctx fallback;

		LOG_ERR("device %s: close: out of memory", dev->name);
		fallback = (struct dev_close_ctx){ dev, cb_fn, cb_arg };
		if (cb_fn != NULL)
			bs_thread_defer(&node, dev_close_nomem_cpl, &fallback);
		return;
	}
	ctx->dev = dev;
	ctx->cb_fn = cb_fn;
	ctx->cb_arg = cb_arg;
	bs_io_device_unregister(dev, dev_close_unreg_cpl, ctx);
}

struct bs_io_channel *bs_dev_get_channel(struct bs_dev *dev)
{
	return bs_get_io_channel(dev);
}

void bs_dev_put_channel(struct bs_io_channel *ch)
{
	bs_put_io_channel(ch);
}

bool bs_dev_has_copy(const struct bs_dev *dev)
{
	return dev->ops->copy != NULL;
}

static void dev_io_deferred_cpl(void *ctx)
{
	struct bs_dev_io *io = ctx;

	io->cb_fn(io->cb_arg, io->status);
}

void bs_dev_io_complete(struct bs_dev_io *io, int status)
{
	io->status = status;
	io->cb_fn(io->cb_arg, status);
}

void bs_dev_io_complete_deferred(struct bs_dev_io *io, int status)
{
	io->status = status;
	bs_thread_defer(&io->defer, dev_io_deferred_cpl, io);
}

/* Fill the common fields of @io. */
static struct bs_dev *io_init(struct bs_io_channel *ch, struct bs_dev_io *io,
			      enum bs_io_type type, uint64_t lba, uint64_t lba_count,
			      bs_cpl_fn cb_fn, void *cb_arg)
{
	struct bs_dev *dev = bs_io_channel_get_io_device(ch);

	assert(bs_io_channel_get_thread(ch) == bs_thread_get_current());
	memset(io, 0, sizeof(*io));
	io->cb_fn = cb_fn;
	io->cb_arg = cb_arg;
	io->dev = dev;
	io->ch = ch;
	io->type = (uint8_t)type;
	io->lba = lba;
	io->lba_count = lba_count;
	return dev;
}

/* Reject @io: one log line, deferred completion with @err. */
static void io_reject(struct bs_dev_io *io, int err, const char *why)
{
	LOG_ERR("device %s: %s lba %" PRIu64 " count %" PRIu64 ": %s",
		io->dev->name, bs_io_type_name(io->type), io->lba, io->lba_count, why);
	bs_dev_io_complete_deferred(io, err);
}

static bool range_ok(const struct bs_dev *dev, uint64_t lba, uint64_t count)
{
	return lba < dev->block_count && count <= dev->block_count - lba;
}

/* Checks shared by every op that addresses blocks. 0 or -errno (logged). */
static int io_check_range(struct bs_dev_io *io, bool writes)
{
	struct bs_dev *dev = io->dev;

	if (io->lba_count == 0) {
		io_reject(io, -EINVAL, "zero length");
		return -EINVAL;
	}
	if (!range_ok(dev, io->lba, io->lba_count)) {
		io_reject(io, -ERANGE, "past the end of the device");
		return -ERANGE;
	}
	if (writes && (dev->flags & BS_DEV_F_READ_ONLY)) {
		io_reject(io, -EROFS, "device is read-only");
		return -EROFS;
	}
	return 0;
}

/* Checks on the iovec of a data op. 0 or -EINVAL (logged). */
static int io_check_iov(struct bs_dev_io *io)
{
	struct bs_dev *dev = io->dev;
	uint64_t total = 0;

	if (io->iov == NULL || io->iovcnt < 1 || io->iovcnt > IOV_MAX) {
		io_reject(io, -EINVAL, "bad iovec count");
		return -EINVAL;
	}
	for (int i = 0; i < io->iovcnt; i++) {
		const struct iovec *v = &io->iov[i];

		if (((uintptr_t)v->iov_base | v->iov_len) & (dev->buf_align - 1)) {
			io_reject(io, -EINVAL, "buffer not aligned to the device");
			return -EINVAL;
		}
		if (v->iov_len == 0 || v->iov_base == NULL) {
			io_reject(io, -EINVAL, "empty iovec element");
			return -EINVAL;
		}
		total += v->iov_len;
	}
	if (total != io->lba_count * dev->block_len) {
		io_reject(io, -EINVAL, "iovec length does not match the block count");
		return -EINVAL;
	}
	return 0;
}

typedef void (*dev_op_fn)(struct bs_dev *, void *, struct bs_dev_io *);

/* Look up the backend entry point for @io->type. */
static dev_op_fn io_op(const struct bs_dev *dev, enum bs_io_type type)
{
	const struct bs_dev_ops *ops = dev->ops;

	switch (type) {
	case BS_IO_READ: return ops->read ? ops->read : ops->readv;
	case BS_IO_WRITE: return ops->write ? ops->write : ops->writev;
	case BS_IO_READV: return ops->readv;
	case BS_IO_WRITEV: return ops->writev;
	case BS_IO_FLUSH: return ops->flush;
	case BS_IO_WRITE_ZEROES: return ops->write_zeroes;
	case BS_IO_UNMAP: return ops->unmap;
	case BS_IO_COPY: return ops->copy;
	default: return NULL;
	}
}

/* Hand a checked request to the backend, or reject an unsupported one. */
static void io_dispatch(struct bs_dev_io *io)
{
	dev_op_fn op = io_op(io->dev, (enum bs_io_type)io->type);

	if (op == NULL) {
		io_reject(io, -EOPNOTSUPP, "not supported by this device");
		return;
	}
	op(io->dev, bs_io_channel_get_ctx(io->ch), io);
}

static void io_submit_data(struct bs_dev_io *io, bool writes)
{
	if (io_check_range(io, writes) != 0 || io_check_iov(io) != 0)
		return;
	io_dispatch(io);
}

/* Make @p io a single-buffer IO of @p len bytes at @p buf. */
static void io_set_buf(struct bs_dev_io *io, const void *buf, size_t len)
{
	io->iov_one.iov_base = (void *)buf;
	io->iov_one.iov_len = len;
	io->iov = &io->iov_one;
	io->iovcnt = 1;
}

void bs_dev_read(struct bs_io_channel *ch, struct bs_dev_io *io, void *buf,
		 uint64_t lba, uint64_t lba_count, bs_cpl_fn cb_fn, void *cb_arg)
{
	struct bs_dev *dev = io_init(ch, io, BS_IO_READ, lba, lba_count, cb_fn, cb_arg);

	io_set_buf(io, buf, range_ok(dev, lba, lba_count) ? lba_count * dev->block_len : 0);
	io_submit_data(io, false);
}

void bs_dev_write(struct bs_io_channel *ch, struct bs_dev_io *io, const void *buf,
		  uint64_t lba, uint64_t lba_count, bs_cpl_fn cb_fn, void *cb_arg)
{
	struct bs_dev *dev = io_init(ch, io, BS_IO_WRITE, lba, lba_count, cb_fn, cb_arg);

	io_set_buf(io, buf, range_ok(dev, lba, lba_count) ? lba_count * dev->block_len : 0);
	io_submit_data(io, true);
}

void bs_dev_readv(struct bs_io_channel *ch, struct bs_dev_io *io, struct iovec *iov,
		  int iovcnt, uint64_t lba, uint64_t lba_count,
		  bs_cpl_fn cb_fn, void *cb_arg)
{
	io_init(ch, io, BS_IO_READV, lba, lba_count, cb_fn, cb_arg);
	io->iov = iov;
	io->iovcnt = iovcnt;
	io_submit_data(io, false);
}

void bs_dev_writev(struct bs_io_channel *ch, struct bs_dev_io *io, struct iovec *iov,
		   int iovcnt, uint64_t lba, uint64_t lba_count,
		   bs_cpl_fn cb_fn, void *cb_arg)
{
	io_init(ch, io, BS_IO_WRITEV, lba, lba_count, cb_fn, cb_arg);
	io->iov = iov;
	io->iovcnt = iovcnt;
	io_submit_data(io, true);
}

void bs_dev_flush(struct bs_io_channel *ch, struct bs_dev_io *io,
		  bs_cpl_fn cb_fn, void *cb_arg)
{
	io_init(ch, io, BS_IO_FLUSH, 0, 0, cb_fn, cb_arg);
	io_dispatch(io);
}

void bs_dev_write_zeroes(struct bs_io_channel *ch, struct bs_dev_io *io,
			 uint64_t lba, uint64_t lba_count, bs_cpl_fn cb_fn, void *cb_arg)
{
	struct bs_dev *dev = io_init(ch, io, BS_IO_WRITE_ZEROES, lba, lba_count, cb_fn, cb_arg);

	if (io_check_range(io, true) != 0)
		return;
	if (dev->zero_buf != NULL && lba_count * dev->block_len <= dev->zero_buf_len) {
		io->type = BS_IO_WRITE;	/* see struct bs_dev: zero_buf */
		io_set_buf(io, dev->zero_buf, lba_count * dev->block_len);
	}
	io_dispatch(io);
}

void bs_dev_unmap(struct bs_io_channel *ch, struct bs_dev_io *io,
		  uint64_t lba, uint64_t lba_count, bs_cpl_fn cb_fn, void *cb_arg)
{
	io_init(ch, io, BS_IO_UNMAP, lba, lba_count, cb_fn, cb_arg);
	if (io_check_range(io, true) == 0)
		io_dispatch(io);
}

void bs_dev_copy(struct bs_io_channel *ch, struct bs_dev_io *io, uint64_t dst_lba,
		 uint64_t src_lba, uint64_t lba_count, bs_cpl_fn cb_fn, void *cb_arg)
{
	struct bs_dev *dev = io_init(ch, io, BS_IO_COPY, dst_lba, lba_count, cb_fn, cb_arg);

	io->src_lba = src_lba;
	if (io_check_range(io, true) != 0)
		return;
	if (!range_ok(dev, src_lba, lba_count)) {
		io_reject(io, -ERANGE, "copy source past the end of the device");
		return;
	}
	if (src_lba < dst_lba + lba_count && dst_lba < src_lba + lba_count) {
		io_reject(io, -EINVAL, "copy source and destination overlap");
		return;
	}
	io_dispatch(io);
}
