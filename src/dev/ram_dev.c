/*
 * RAM device backend (include/blobstore/ram_dev.h).
 *
 * Life of an IO: the generic layer validates it and calls one of our ops on
 * the submitting thread. ramdev_submit() decides its fate at once (power
 * state, range, fault injection), moves its data (reads copy out of `view`,
 * writes go into `view` and, with a volatile cache, into the write log; see
 * ram_dev_int.h and ram_dev_cache.c), and parks it on the channel's pending
 * queue with its status. A busy poller per channel (ramdev_poll) completes
 * what was pending when it started, in FIFO, LIFO or seeded random order,
 * so no completion ever runs inside the submitting call.
 *
 * Scratch in struct bs_dev_io: dev_priv[0] is the power epoch at
 * submission (an IO that straddles a power cut fails with -EIO);
 * dev_priv[1] is the log entry of a cached write, or the completion clock
 * at issue for a flush.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <blobstore/ram_dev.h>

#include "dev/ram_dev_int.h"
#include "util/assert_int.h"
#include "util/log_int.h"

enum {
	RAMDEV_PRIV_EPOCH = 0,
	RAMDEV_PRIV_ARG = 1,
};

#define RAMDEV_MAX_QUEUE_DEPTH (1u << 20)

/* Per-channel state (the generic layer allocates and zeroes it). */
struct ramdev_channel {
	struct ramdev *rd;
	struct bs_poller *poller;
	struct bs_dev_io *head;		/* submitted, not yet taken by a poll */
	struct bs_dev_io *tail;
	uint64_t outstanding;		/* queued or in the batch being completed */
};

static const struct bs_dev_ops ramdev_ops;
static const struct bs_dev_ops ramdev_ops_nocopy;
static uint32_t ramdev_next_id;

/* The RAM device behind @p dev, or NULL (and an assert) for another backend. */
static struct ramdev *ramdev_from_dev(struct bs_dev *dev)
{
	if (!ALWAYS(dev != NULL &&
		    (dev->ops == &ramdev_ops || dev->ops == &ramdev_ops_nocopy)))
		return NULL;
	return (struct ramdev *)dev;
}

static bool ramdev_type_is_write(uint8_t type)
{
	return type == BS_IO_WRITE || type == BS_IO_WRITEV ||
	       type == BS_IO_WRITE_ZEROES || type == BS_IO_UNMAP ||
	       type == BS_IO_COPY;
}

/* ------------------------------------------------------------------------
 * Admission: range, power state and fault injection
 * ------------------------------------------------------------------------ */

/* Fault slot for an IO type: READV counts as READ, WRITEV as WRITE. */
static int ramdev_fault_slot(int type)
{
	if (type == BS_IO_READV)
		return BS_IO_READ;
	if (type == BS_IO_WRITEV)
		return BS_IO_WRITE;
	return type;
}

/* Count one IO against @p f; true if this IO is the one (or one) that fails. */
static bool ramdev_fault_hit(struct ramdev_fault *f)
{
	bool hit;

	if (!f->active)
		return false;
	f->seen++;
	hit = f->seen == f->nth || (f->persistent && f->seen > f->nth);
	if (hit && !f->persistent)
		f->active = false;
	return hit;
}

/* The injected error for an IO of @p type, or 0 (lock held). */
static int ramdev_fault_check(struct ramdev *rd, uint8_t type)
{
	struct ramdev_fault *kind = &rd->faults[ramdev_fault_slot(type)];
	struct ramdev_fault *any = &rd->faults[RAMDEV_FAULT_ANY];
	bool kind_hit = ramdev_fault_hit(kind);
	bool any_hit = ramdev_fault_hit(any);

	if (kind_hit)
		return kind->err;
	if (any_hit)
		return any->err;
	return 0;
}

/* True if @p count blocks at @p lba lie inside the device. */
static bool ramdev_range_ok(const struct ramdev *rd, uint64_t lba, uint64_t count)
{
	uint64_t bc = rd->dev.block_count;

	return count != 0 && lba < bc && count <= bc - lba;
}

/*
 * Decide whether @p io may run: 0, or the error it completes with. The
 * generic layer has validated it already; the range check is a cheap
 * second line of defence. Records the epoch and, for a flush, the
 * completion clock that defines what it covers.
 */
static int ramdev_admit(struct ramdev *rd, struct bs_dev_io *io)
{
	bool data = io->type != BS_IO_FLUSH;
	int rc = 0;

	if (data && (!ramdev_range_ok(rd, io->lba, io->lba_count) ||
		     (io->type == BS_IO_COPY &&
		      !ramdev_range_ok(rd, io->src_lba, io->lba_count)))) {
		LOG_ERR("%s: %s of %" PRIu64 " blocks at %" PRIu64 " is out of range",
			rd->dev.name, bs_io_type_name(io->type), io->lba_count, io->lba);
		return -ERANGE;
	}
	pthread_mutex_lock(&rd->lock);
	io->dev_priv[RAMDEV_PRIV_EPOCH] = rd->epoch;
	io->dev_priv[RAMDEV_PRIV_ARG] = rd->cpl_clock;
	if (rd->powered_off)
		rc = -EIO;
	else
		rc = ramdev_fault_check(rd, io->type);
	pthread_mutex_unlock(&rd->lock);
	return rc;
}

/* ------------------------------------------------------------------------
 * Data movement, done at submission
 * ------------------------------------------------------------------------ */

/* Copy @p len bytes out of the iovec into @p dst. */
static void ramdev_iov_gather(uint8_t *dst, const struct iovec *iov, int iovcnt,
			      uint64_t len)
{
	for (int i = 0; i < iovcnt && len > 0; i++) {
		size_t n = BS_MIN(iov[i].iov_len, len);

		memcpy(dst, iov[i].iov_base, n);
		dst += n;
		len -= n;
	}
	assert(len == 0);
}

/* Copy @p len bytes from @p src into the iovec. */
static void ramdev_iov_scatter(const struct iovec *iov, int iovcnt, const uint8_t *src,
			       uint64_t len)
{
	for (int i = 0; i < iovcnt && len > 0; i++) {
		size_t n = BS_MIN(iov[i].iov_len, len);

		memcpy(iov[i].iov_base, src, n);
		src += n;
		len -= n;
	}
	assert(len == 0);
}

/* The iovec of a data IO; single-buffer IO uses iov_one. */
static const struct iovec *ramdev_io_iov(struct bs_dev_io *io, int *iovcnt)
{
	if (io->iov == NULL) {
		*iovcnt = 1;
		return &io->iov_one;
	}
	*iovcnt = io->iovcnt;
	return io->iov;
}

static void ramdev_do_read(struct ramdev *rd, struct bs_dev_io *io)
{
	uint64_t off = io->lba * rd->dev.block_len;
	uint64_t len = io->lba_count * rd->dev.block_len;
	const struct iovec *iov;
	int iovcnt;

	iov = ramdev_io_iov(io, &iovcnt);
	pthread_rwlock_rdlock(&rd->data_lock);
	ramdev_iov_scatter(iov, iovcnt, rd->view + off, len);
	pthread_rwlock_unlock(&rd->data_lock);
}

/* Write @p io straight into `view` (no modelled cache; data_lock held). */
static void ramdev_view_write(struct ramdev *rd, struct bs_dev_io *io)
{
	uint32_t bl = rd->dev.block_len;
	uint8_t *dst = rd->view + io->lba * bl;
	uint64_t len = io->lba_count * bl;
	const struct iovec *iov;
	int iovcnt;

	switch (io->type) {
	case BS_IO_WRITE_ZEROES:
	case BS_IO_UNMAP:
		memset(dst, 0, len);
		break;
	case BS_IO_COPY:
		memmove(dst, rd->view + io->src_lba * bl, len);
		break;
	default:
		iov = ramdev_io_iov(io, &iovcnt);
		ramdev_iov_gather(dst, iov, iovcnt, len);
		break;
	}
}

/*
 * A write-like IO. With a cache, the payload is captured in a new log entry
 * (outside the locks for user buffers; a copy source is read under
 * data_lock), logged and applied to `view` in one data_lock section so the
 * view and the log agree on the order of overlapping writes.
 */
static int ramdev_do_write(struct ramdev *rd, struct bs_dev_io *io)
{
	uint64_t len = io->lba_count * rd->dev.block_len;
	bool zeroes = io->type == BS_IO_WRITE_ZEROES || io->type == BS_IO_UNMAP;
	struct ramdev_wlog *e = NULL;
	const struct iovec *iov;
	int iovcnt;

	if (rd->volatile_cache) {
		e = ramdev_wlog_alloc(io->lba * rd->dev.block_len, len, zeroes);
		if (e == NULL)
			return -ENOMEM;
		if (!zeroes && io->type != BS_IO_COPY) {
			iov = ramdev_io_iov(io, &iovcnt);
			ramdev_iov_gather(e->data, iov, iovcnt, len);
		}
	}
	pthread_rwlock_wrlock(&rd->data_lock);
	if (e == NULL) {
		ramdev_view_write(rd, io);
	} else {
		if (io->type == BS_IO_COPY)
			memcpy(e->data, rd->view + io->src_lba * rd->dev.block_len, len);
		pthread_mutex_lock(&rd->lock);
		ramdev_log_append(rd, e);
		pthread_mutex_unlock(&rd->lock);
		ramdev_wlog_apply(e, rd->view);
	}
	pthread_rwlock_unlock(&rd->data_lock);
	io->dev_priv[RAMDEV_PRIV_ARG] = (uintptr_t)e;
	return 0;
}

/* Run the data part of an admitted IO; 0 or -errno. */
static int ramdev_execute(struct ramdev *rd, struct bs_dev_io *io)
{
	switch (io->type) {
	case BS_IO_READ:
	case BS_IO_READV:
		ramdev_do_read(rd, io);
		return 0;
	case BS_IO_FLUSH:
		return 0;
	case BS_IO_COPY:
		if (rd->dev.ops != &ramdev_ops)
			return -EOPNOTSUPP;
		return ramdev_do_write(rd, io);
	case BS_IO_WRITE:
	case BS_IO_WRITEV:
	case BS_IO_WRITE_ZEROES:
	case BS_IO_UNMAP:
		return ramdev_do_write(rd, io);
	default:
		return -EOPNOTSUPP;
	}
}

/* ------------------------------------------------------------------------
 * Pending queue and completion
 * ------------------------------------------------------------------------ */

static void ramdev_enqueue(struct ramdev_channel *ch, struct bs_dev_io *io)
{
	io->next = NULL;
	if (ch->tail != NULL)
		ch->tail->next = io;
	else
		ch->head = io;
	ch->tail = io;
	if (ch->outstanding++ == 0)
		bs_thread_hold();
}

/*
 * Every op lands here: decide the IO's status, move its data and park it.
 * The status is final except that an IO overtaken by a power cut fails with
 * -EIO when it completes (ramdev_settle).
 */
static void ramdev_submit(struct bs_dev *dev, void *ch_ctx, struct bs_dev_io *io)
{
	struct ramdev *rd = ramdev_from_dev(dev);
	struct ramdev_channel *ch = ch_ctx;
	int rc;

	assert(rd != NULL && ch->rd == rd);
	rc = ramdev_admit(rd, io);
	if (rc == 0)
		rc = ramdev_execute(rd, io);
	io->status = rc;
	ramdev_enqueue(ch, io);
}

/* Account one completion (lock held). */
static void ramdev_count(struct ramdev *rd, const struct bs_dev_io *io, int status)
{
	struct bs_ram_dev_stats *st = &rd->stats;
	uint64_t bytes = io->lba_count * rd->dev.block_len;

	if (status != 0) {
		st->failed++;
		return;
	}
	st->ops[io->type]++;
	if (io->type == BS_IO_READ || io->type == BS_IO_READV)
		st->bytes_read += bytes;
	else if (io->type == BS_IO_WRITE || io->type == BS_IO_WRITEV ||
		 io->type == BS_IO_WRITE_ZEROES)
		st->bytes_written += bytes;
	else if (io->type == BS_IO_COPY)
		st->bytes_copied += bytes;
}

/*
 * Final status of @p io as it completes, and its effect on the cache model:
 * a completed write gets its completion stamp, a completed flush makes
 * durable what it covers. An IO issued before the latest power cut fails
 * (its log entry, if any, is gone).
 */
static int ramdev_settle(struct ramdev *rd, struct bs_dev_io *io)
{
	struct ramdev_wlog *e;
	int status;

	pthread_mutex_lock(&rd->lock);
	status = io->status;
	if (status == 0 && (rd->powered_off ||
			    io->dev_priv[RAMDEV_PRIV_EPOCH] != rd->epoch))
		status = -EIO;
	if (status == 0 && rd->volatile_cache && ramdev_type_is_write(io->type)) {
		e = (struct ramdev_wlog *)(uintptr_t)io->dev_priv[RAMDEV_PRIV_ARG];
		ramdev_log_complete(rd, e);
	} else if (status == 0 && rd->volatile_cache && io->type == BS_IO_FLUSH) {
		ramdev_log_flush(rd, io->dev_priv[RAMDEV_PRIV_ARG]);
	}
	ramdev_count(rd, io, status);
	pthread_mutex_unlock(&rd->lock);
	return status;
}

static void ramdev_complete(struct ramdev_channel *ch, struct bs_dev_io *io)
{
	int status = ramdev_settle(ch->rd, io);

	assert(ch->outstanding > 0);
	if (--ch->outstanding == 0)
		bs_thread_release();
	bs_dev_io_complete(io, status);
}

static enum bs_ram_order ramdev_get_order(struct ramdev *rd)
{
	enum bs_ram_order order;

	pthread_mutex_lock(&rd->lock);
	order = rd->order;
	pthread_mutex_unlock(&rd->lock);
	return order;
}

static uint64_t ramdev_rand_below(struct ramdev *rd, uint64_t n)
{
	uint64_t r;

	pthread_mutex_lock(&rd->lock);
	r = ramdev_rng_next(&rd->order_rng) % n;
	pthread_mutex_unlock(&rd->lock);
	return r;
}

static struct bs_dev_io *ramdev_list_reverse(struct bs_dev_io *io)
{
	struct bs_dev_io *rev = NULL, *next;

	for (; io != NULL; io = next) {
		next = io->next;
		io->next = rev;
		rev = io;
	}
	return rev;
}

/* Unlink and return the @p idx-th IO of the list at *@p headp. */
static struct bs_dev_io *ramdev_list_take(struct bs_dev_io **headp, uint64_t idx)
{
	struct bs_dev_io **pp = headp;
	struct bs_dev_io *io;

	while (idx-- > 0)
		pp = &(*pp)->next;
	io = *pp;
	*pp = io->next;
	io->next = NULL;
	return io;
}

/*
 * Busy poller: complete every IO that was pending when this poll started
 * (IO submitted by the completions waits for the next poll), in the
 * channel's order. LIFO reverses the batch; RANDOM draws each next IO
 * uniformly from what is left of it.
 */
static int ramdev_poll(void *arg)
{
	struct ramdev_channel *ch = arg;
	struct bs_dev_io *batch = ch->head;
	enum bs_ram_order order;
	uint64_t left = 0, done = 0, idx;

	if (batch == NULL)
		return 0;
	ch->head = NULL;
	ch->tail = NULL;
	order = ramdev_get_order(ch->rd);
	if (order == BS_RAM_ORDER_LIFO)
		batch = ramdev_list_reverse(batch);
	for (struct bs_dev_io *io = batch; io != NULL; io = io->next)
		left++;
	while (left > 0) {
		idx = order == BS_RAM_ORDER_RANDOM ? ramdev_rand_below(ch->rd, left) : 0;
		ramdev_complete(ch, ramdev_list_take(&batch, idx));
		left--;
		done++;
	}
	return (int)BS_MIN(done, (uint64_t)INT_MAX);
}

/* ------------------------------------------------------------------------
 * Channels and lifecycle
 * ------------------------------------------------------------------------ */

static int ramdev_channel_create(struct bs_dev *dev, void *ch_ctx)
{
	struct ramdev_channel *ch = ch_ctx;

	ch->rd = ramdev_from_dev(dev);
	if (ch->rd == NULL)
		return -EINVAL;
	ch->poller = bs_poller_register(ramdev_poll, ch, 0);
	if (ch->poller == NULL)
		return errno != 0 ? -errno : -ENOMEM;
	return 0;
}

/*
 * The last reference is gone. IO still pending means a caller put its
 * channel too early; complete it with -ECANCELED rather than lose it.
 */
static void ramdev_channel_destroy(struct bs_dev *dev, void *ch_ctx)
{
	struct ramdev_channel *ch = ch_ctx;
	struct bs_dev_io *io;

	bs_poller_unregister(&ch->poller);
	if (ch->outstanding == 0)
		return;
	LOG_ERR("%s: channel destroyed with %" PRIu64 " IOs pending", dev->name,
		ch->outstanding);
	while ((io = ch->head) != NULL) {
		ch->head = io->next;
		ch->outstanding--;
		bs_dev_io_complete(io, -ECANCELED);
	}
	ch->tail = NULL;
	bs_thread_release();
}

static void ramdev_unmap_mem(struct ramdev *rd)
{
	if (rd->durable != NULL && rd->durable != rd->view)
		munmap(rd->durable, rd->size);
	if (rd->view != NULL)
		munmap(rd->view, rd->size);
	rd->durable = NULL;
	rd->view = NULL;
}

static void ramdev_destroy(struct bs_dev *dev)
{
	struct ramdev *rd = ramdev_from_dev(dev);

	if (rd == NULL)
		return;
	ramdev_log_free_all(rd);
	ramdev_unmap_mem(rd);
	pthread_mutex_destroy(&rd->lock);
	pthread_rwlock_destroy(&rd->data_lock);
	free(rd);
}

static const struct bs_dev_ops ramdev_ops = {
	.channel_create = ramdev_channel_create,
	.channel_destroy = ramdev_channel_destroy,
	.read = ramdev_submit,
	.write = ramdev_submit,
	.readv = ramdev_submit,
	.writev = ramdev_submit,
	.flush = ramdev_submit,
	.write_zeroes = ramdev_submit,
	.unmap = ramdev_submit,
	.copy = ramdev_submit,
	.destroy = ramdev_destroy,
};

static const struct bs_dev_ops ramdev_ops_nocopy = {
	.channel_create = ramdev_channel_create,
	.channel_destroy = ramdev_channel_destroy,
	.read = ramdev_submit,
	.write = ramdev_submit,
	.readv = ramdev_submit,
	.writev = ramdev_submit,
	.flush = ramdev_submit,
	.write_zeroes = ramdev_submit,
	.unmap = ramdev_submit,
	.copy = NULL,
	.destroy = ramdev_destroy,
};

void bs_ram_dev_opts_init(struct bs_ram_dev_opts *opts)
{
	if (!ALWAYS(opts != NULL))
		return;
	memset(opts, 0, sizeof(*opts));
	opts->opts_size = sizeof(*opts);
	opts->block_len = 512;
	opts->order = BS_RAM_ORDER_FIFO;
	opts->volatile_cache = true;
	opts->enable_copy = true;
}

/*
 * Copy the caller's options over the defaults, honouring opts_size so a
 * caller built against an older, shorter struct still works.
 */
static int ramdev_opts_load(const struct bs_ram_dev_opts *in, struct bs_ram_dev_opts *o)
{
	size_t min = offsetof(struct bs_ram_dev_opts, block_count) + sizeof(in->block_count);

	if (in->opts_size < min || in->opts_size > sizeof(*o)) {
		LOG_ERR("ram_dev: opts_size %zu is not in %zu..%zu", in->opts_size,
			min, sizeof(*o));
		return -EINVAL;
	}
	bs_ram_dev_opts_init(o);
	memcpy(o, in, in->opts_size);
	if (o->phys_block_len == 0)
		o->phys_block_len = o->block_len;
	if (o->atomic_write_len == 0)
		o->atomic_write_len = o->block_len;
	return 0;
}

/* Check the geometry in @p o; -EINVAL with one log line if it is bad. */
static int ramdev_opts_check(const struct bs_ram_dev_opts *o)
{
	const char *why = NULL;

	if (!BS_IS_POW2(o->block_len) || o->block_len < 512 || o->block_len > 65536)
		why = "block_len must be a power of two in 512..65536";
	else if (o->block_count == 0)
		why = "block_count must not be 0";
	else if (o->block_count > SIZE_MAX / o->block_len)
		why = "device size does not fit in memory";
	else if (!BS_IS_POW2(o->phys_block_len) || o->phys_block_len < o->block_len)
		why = "phys_block_len must be a power of two >= block_len";
	else if (o->atomic_write_len % o->block_len != 0)
		why = "atomic_write_len must be a multiple of block_len";
	else if ((unsigned int)o->order > BS_RAM_ORDER_RANDOM)
		why = "order is not a bs_ram_order";
	if (why == NULL)
		return 0;
	LOG_ERR("ram_dev: %s (block_len %u, block_count %" PRIu64
		", phys_block_len %u, atomic_write_len %u)", why, o->block_len,
		o->block_count, o->phys_block_len, o->atomic_write_len);
	return -EINVAL;
}

/* A zeroed, lazily backed mapping: a big sparse device costs what it touches. */
static uint8_t *ramdev_map(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* Map `view` (and `durable` with a cache) and load the initial image. */
static int ramdev_alloc_mem(struct ramdev *rd, const struct bs_ram_dev_opts *o)
{
	rd->size = (size_t)(o->block_count * o->block_len);
	rd->view = ramdev_map(rd->size);
	if (rd->view == NULL)
		goto out_nomem;
	rd->durable = rd->view;
	if (o->volatile_cache) {
		rd->durable = ramdev_map(rd->size);
		if (rd->durable == NULL)
			goto out_unmap_view;
	}
	if (o->image != NULL) {
		memcpy(rd->view, o->image, rd->size);
		if (rd->durable != rd->view)
			memcpy(rd->durable, o->image, rd->size);
	}
	return 0;

out_unmap_view:
	munmap(rd->view, rd->size);
	rd->view = NULL;
out_nomem:
	LOG_ERR("ram_dev: cannot map %zu bytes", rd->size);
	return -ENOMEM;
}

/* Fill the public struct bs_dev from validated options. */
static void ramdev_fill_dev(struct ramdev *rd, const struct bs_ram_dev_opts *o)
{
	struct bs_dev *dev = &rd->dev;

	dev->ops = o->enable_copy ? &ramdev_ops : &ramdev_ops_nocopy;
	snprintf(dev->name, sizeof(dev->name), "ram%u",
		 __atomic_fetch_add(&ramdev_next_id, 1, __ATOMIC_RELAXED));
	dev->block_len = o->block_len;
	dev->block_count = o->block_count;
	dev->phys_block_len = o->phys_block_len;
	dev->atomic_write_len = o->atomic_write_len;
	dev->buf_align = 1;
	dev->channel_ctx_size = sizeof(struct ramdev_channel);
	dev->flags = BS_DEV_F_UNMAP_ZEROES;
	if (o->volatile_cache)
		dev->flags |= BS_DEV_F_VOLATILE_CACHE;
	dev->max_queue_depth = RAMDEV_MAX_QUEUE_DEPTH;
	rd->volatile_cache = o->volatile_cache;
	rd->order = o->order;
	rd->order_rng = o->seed;
}

int bs_ram_dev_create(const struct bs_ram_dev_opts *opts, struct bs_dev **out)
{
	struct bs_ram_dev_opts o;
	struct ramdev *rd;
	int rc;

	if (opts == NULL || out == NULL) {
		LOG_ERR("ram_dev: NULL %s", opts == NULL ? "opts" : "out");
		return -EINVAL;
	}
	rc = ramdev_opts_load(opts, &o);
	if (rc == 0)
		rc = ramdev_opts_check(&o);
	if (rc != 0)
		return rc;
	rd = calloc(1, sizeof(*rd));
	if (rd == NULL)
		return -ENOMEM;
	rc = ramdev_alloc_mem(rd, &o);
	if (rc != 0)
		goto out_free_rd;
	pthread_mutex_init(&rd->lock, NULL);
	pthread_rwlock_init(&rd->data_lock, NULL);
	ramdev_fill_dev(rd, &o);
	rc = bs_dev_register(&rd->dev);
	if (rc != 0)
		goto out_destroy_locks;
	*out = &rd->dev;
	return 0;

out_destroy_locks:
	pthread_rwlock_destroy(&rd->data_lock);
	pthread_mutex_destroy(&rd->lock);
	ramdev_unmap_mem(rd);
out_free_rd:
	free(rd);
	return rc;
}

/* ------------------------------------------------------------------------
 * Control functions
 * ------------------------------------------------------------------------ */

void bs_ram_dev_set_order(struct bs_dev *dev, enum bs_ram_order order, uint64_t seed)
{
	struct ramdev *rd = ramdev_from_dev(dev);

	if (rd == NULL)
		return;
	if ((unsigned int)order > BS_RAM_ORDER_RANDOM) {
		LOG_ERR("%s: bad completion order %d", dev->name, (int)order);
		return;
	}
	pthread_mutex_lock(&rd->lock);
	rd->order = order;
	rd->order_rng = seed;
	pthread_mutex_unlock(&rd->lock);
}

void bs_ram_dev_inject(struct bs_dev *dev, int kind, uint64_t nth, int err, bool persistent)
{
	struct ramdev *rd = ramdev_from_dev(dev);
	struct ramdev_fault *f;

	if (rd == NULL)
		return;
	if (kind < BS_RAM_ANY_IO || kind >= BS_IO_NTYPES || nth == 0 || err >= 0) {
		LOG_ERR("%s: bad fault injection (kind %d, nth %" PRIu64 ", err %d)",
			dev->name, kind, nth, err);
		return;
	}
	pthread_mutex_lock(&rd->lock);
	f = &rd->faults[kind == BS_RAM_ANY_IO ? RAMDEV_FAULT_ANY : ramdev_fault_slot(kind)];
	f->active = true;
	f->persistent = persistent;
	f->nth = nth;
	f->seen = 0;
	f->err = err;
	pthread_mutex_unlock(&rd->lock);
}

void bs_ram_dev_clear_faults(struct bs_dev *dev)
{
	struct ramdev *rd = ramdev_from_dev(dev);

	if (rd == NULL)
		return;
	pthread_mutex_lock(&rd->lock);
	memset(rd->faults, 0, sizeof(rd->faults));
	pthread_mutex_unlock(&rd->lock);
}

void bs_ram_dev_power_cut(struct bs_dev *dev, enum bs_power_cut_mode mode, uint64_t seed)
{
	struct ramdev *rd = ramdev_from_dev(dev);

	if (rd == NULL)
		return;
	if ((unsigned int)mode > BS_CUT_TEAR_ALL) {
		LOG_ERR("%s: bad power cut mode %d", dev->name, (int)mode);
		return;
	}
	pthread_rwlock_wrlock(&rd->data_lock);
	pthread_mutex_lock(&rd->lock);
	rd->powered_off = true;
	rd->epoch++;
	ramdev_log_power_cut(rd, mode, seed);
	pthread_mutex_unlock(&rd->lock);
	pthread_rwlock_unlock(&rd->data_lock);
	LOG_INFO("%s: power cut (mode %d, seed %" PRIu64 ")", dev->name, (int)mode, seed);
}

void bs_ram_dev_power_on(struct bs_dev *dev)
{
	struct ramdev *rd = ramdev_from_dev(dev);

	if (rd == NULL)
		return;
	pthread_mutex_lock(&rd->lock);
	rd->powered_off = false;
	pthread_mutex_unlock(&rd->lock);
}

uint64_t bs_ram_dev_volatile_writes(struct bs_dev *dev)
{
	struct ramdev *rd = ramdev_from_dev(dev);
	uint64_t n;

	if (rd == NULL)
		return 0;
	pthread_mutex_lock(&rd->lock);
	n = rd->nvolatile;
	pthread_mutex_unlock(&rd->lock);
	return n;
}

const uint8_t *bs_ram_dev_view(struct bs_dev *dev)
{
	struct ramdev *rd = ramdev_from_dev(dev);

	return rd != NULL ? rd->view : NULL;
}

const uint8_t *bs_ram_dev_durable(struct bs_dev *dev)
{
	struct ramdev *rd = ramdev_from_dev(dev);

	return rd != NULL ? rd->durable : NULL;
}

void bs_ram_dev_get_stats(struct bs_dev *dev, struct bs_ram_dev_stats *stats)
{
	struct ramdev *rd = ramdev_from_dev(dev);

	if (rd == NULL || !ALWAYS(stats != NULL))
		return;
	pthread_mutex_lock(&rd->lock);
	*stats = rd->stats;
	pthread_mutex_unlock(&rd->lock);
}

void bs_ram_dev_reset_stats(struct bs_dev *dev)
{
	struct ramdev *rd = ramdev_from_dev(dev);

	if (rd == NULL)
		return;
	pthread_mutex_lock(&rd->lock);
	memset(&rd->stats, 0, sizeof(rd->stats));
	pthread_mutex_unlock(&rd->lock);
}
