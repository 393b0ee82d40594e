/*
 * io_uring backend of the file/block-device device.
 *
 * Each channel owns one ring of queue_depth entries and one busy poller on
 * the channel's thread. The submit entry points only prepare SQEs (the
 * struct bs_dev_io pointer goes in user_data); the poller, once per
 * iteration,
 *
 *   1. reaps every completion (io_uring_peek_batch_cqe, then one
 *      io_uring_cq_advance before any callback runs),
 *   2. moves IO that waited for a free slot into the ring,
 *   3. submits everything prepared with a single io_uring_submit(),
 *
 * so a burst of IO submitted by callbacks or by the application costs one
 * system call.
 *
 * Back-pressure: at most queue_depth IOs are in the ring (prepared or in
 * the kernel). Further IO, or IO that finds no free SQE, waits in a FIFO on
 * the channel (linked through io->next) and is never refused.
 *
 * Sleeping: an idle thread sleeps with IO in flight rather than spin on
 * the ring (a spinning vCPU competes with the hypervisor's IO emulation and
 * adds latency at low queue depth). The first channel on a thread becomes
 * the thread's waiter (bs_thread_set_waiter): its ring keeps a multishot
 * poll on the thread's wake-up eventfd, and the thread sleeps in
 * io_uring_submit_and_wait_timeout() on that ring, which returns on a
 * completion or on a message (senders signal the eventfd). A further
 * channel on the same thread (rare: one thread serving two devices) holds
 * the thread awake while it has IO (one bs_thread_hold() per channel, not
 * per IO): signalling the eventfd from its ring would race with the
 * waiter's last look at that ring, since the eventfd poll is edge-triggered.
 *
 * Short transfers are resumed from io->done: a single-buffer IO continues
 * in its buffer; a vectored one continues one iovec segment at a time
 * (filedev_iov_cursor), so the caller's iovec array is never modified and
 * nothing is allocated. -EAGAIN and -EINTR are resubmitted; a read that
 * returns 0 before it is done (the file shrank) fails with -EIO.
 *
 * Bound threads (a reactor, or bs_thread_bind()) get a ring tied to their
 * pthread: IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN | TASKRUN_FLAG. The
 * kernel then finishes a completion (posts its CQE) only when this thread
 * enters io_uring_enter() for events, and says in the SQ ring flags
 * (IORING_SQ_TASKRUN) that some are waiting; without it every completion
 * interrupts or wakes the submitting thread, which on a VM is an
 * inter-processor interrupt and often a halted vCPU to resume. With IO
 * that deep (busy_poll_depth in flight) the channel also holds its thread
 * awake, and the poller spins on that flag in user space instead of
 * sleeping. On the development VM (2 vCPUs, virtio-blk; devperf, 4 KiB
 * random writes at queue depth 32, medians of six 1 s runs per variant):
 * 153k IOPS plain, 164k deferred, 176k-177k deferred with busy polling;
 * fio, which sets the same flags and hardly sleeps at that depth, 157k-180k
 * in the same batches. Depth 1 reads are unchanged (the thread still
 * sleeps below the threshold).
 * Unbound threads may move between pthreads with IO in flight, so they keep
 * a plain ring (a deferred one would leave completions to the old pthread).
 *
 * flush is IORING_OP_FSYNC (datasync), write_zeroes is fallocate
 * ZERO_RANGE, unmap is fallocate PUNCH_HOLE on a file and BLKDISCARD on a
 * block device (see uringdev_unmap() for why that one is synchronous).
 * copy, when the device offers it, is a synchronous copy_file_range shared
 * with the psync backend (file_copy.c: io_uring has no opcode for it).
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <string.h>

#include "dev/file_dev_int.h"
#include "util/log_int.h"

/* CQEs taken from the ring per peek. */
#define URINGDEV_REAP_BATCH	32
/* Consecutive -EAGAIN/-EINTR results before an IO gives up with the error. */
#define URINGDEV_MAX_RETRIES	1000

struct uringdev_channel {
	struct io_uring ring;
	struct filedev *fdev;
	struct bs_poller *poller;
	struct bs_dev_io *wait_head;	/* FIFO of IO waiting for a slot */
	struct bs_dev_io *wait_tail;
	uint32_t inflight;		/* SQEs prepared and not yet reaped */
	uint32_t depth;			/* limit on inflight */
	uint32_t spin_depth;		/* hold the thread at this inflight; 0: never */
	bool deferred;			/* DEFER_TASKRUN ring: CQEs wait for us */
	bool held;			/* this channel holds its thread awake */
	bool waiter;			/* the thread sleeps in this ring */
	bool wake_armed;		/* the eventfd poll is in the ring */
	uint8_t sq_age;			/* polls that left prepared SQEs unsubmitted */
	bool submit_err_logged;
};

/* io->dev_priv[0]: consecutive retries of the current step. */
#define URINGDEV_RETRIES(io) ((io)->dev_priv[0])

uint32_t uringdev_channel_ctx_size(void)
{
	return sizeof(struct uringdev_channel);
}

#define URINGDEV_DEFER_FLAGS \
	(IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG)

/*
 * Set up a ring: a deferred one (see the top) if @p deferred asks for it and
 * the kernel has it (6.1+), else a plain one. A plain ring suits a thread
 * that may move between pthreads: SINGLE_ISSUER would refuse submissions
 * from any pthread but the first, and COOP_TASKRUN or DEFER_TASKRUN would
 * leave completions to a pthread that may have moved on. Sets *@p deferred
 * to what was made.
 */
static int uringdev_ring_init(struct io_uring *ring, uint32_t entries, bool *deferred)
{
	int rc;

	if (*deferred) {
		rc = io_uring_queue_init(entries, ring, URINGDEV_DEFER_FLAGS);
		if (rc != -EINVAL)
			return rc;
		*deferred = false;	/* kernel before 6.1 */
	}
	return io_uring_queue_init(entries, ring, 0);
}

bool uringdev_channel_deferred(const void *ch_ctx)
{
	return ((const struct uringdev_channel *)ch_ctx)->deferred;
}

bool uringdev_channel_held(const void *ch_ctx)
{
	return ((const struct uringdev_channel *)ch_ctx)->held;
}

int uringdev_probe(uint32_t entries)
{
	static const int needed[] = {
		IORING_OP_READ, IORING_OP_WRITE, IORING_OP_READV, IORING_OP_WRITEV,
		IORING_OP_FSYNC, IORING_OP_FALLOCATE,
	};
	struct io_uring_probe *probe;
	struct io_uring ring;
	bool deferred = false;
	size_t i;
	int rc;

	rc = uringdev_ring_init(&ring, entries, &deferred);
	if (rc < 0)
		return rc;
	probe = io_uring_get_probe_ring(&ring);
	if (probe == NULL) {
		rc = -ENOSYS;	/* kernel before 5.6: no probe, no READ/WRITE ops */
		goto out_exit_ring;
	}
	for (i = 0; i < BS_ARRAY_SIZE(needed); i++) {
		if (!io_uring_opcode_supported(probe, needed[i]))
			rc = -ENOSYS;
	}
	io_uring_free_probe(probe);
out_exit_ring:
	io_uring_queue_exit(&ring);
	return rc;
}

/* ------------------------------------------------------------------------
 * Submission
 * ------------------------------------------------------------------------ */

/*
 * Take or drop the channel's hold on its thread to match its state. A
 * waiter's thread sleeps in this ring, so it needs no hold, except to
 * busy-poll a deferred ring with deep IO (see the top).
 */
static void uringdev_update_hold(struct uringdev_channel *ch)
{
	bool busy = ch->inflight != 0 || ch->wait_head != NULL;

	if (ch->waiter)
		busy = ch->spin_depth != 0 && ch->inflight >= ch->spin_depth;

	if (busy == ch->held)
		return;
	ch->held = busy;
	if (busy)
		bs_thread_hold();
	else
		bs_thread_release();
}

/* Fill @p sqe with the next step of a read or write: the whole vector at
 * first, afterwards (or if it is too long) the rest of the current segment
 * or buffer. */
static void uringdev_prep_data(struct filedev *fdev, struct io_uring_sqe *sqe,
			       struct bs_dev_io *io)
{
	uint64_t off = filedev_io_offset(io) + io->done;
	bool rd = filedev_io_is_read(io);
	uint32_t len;
	void *base;

	if (filedev_io_whole(io) && (io->type == BS_IO_READV || io->type == BS_IO_WRITEV)) {
		if (rd)
			io_uring_prep_readv(sqe, fdev->fd, io->iov, (unsigned)io->iovcnt, off);
		else
			io_uring_prep_writev(sqe, fdev->fd, io->iov, (unsigned)io->iovcnt, off);
		return;
	}
	filedev_iov_cursor(io, io->done, &base, &len);
	if (rd)
		io_uring_prep_read(sqe, fdev->fd, base, len, off);
	else
		io_uring_prep_write(sqe, fdev->fd, base, len, off);
}

/* Fill @p sqe for @p io's next step. */
static void uringdev_prep(struct filedev *fdev, struct io_uring_sqe *sqe,
			  struct bs_dev_io *io)
{
	off_t off = (off_t)filedev_io_offset(io);
	off_t len = (off_t)filedev_io_bytes(io);

	switch (io->type) {
	case BS_IO_FLUSH:
		/* No drain flag: a flush covers the writes that completed
		 * before it was submitted, and fdatasync covers those. */
		io_uring_prep_fsync(sqe, fdev->fd, IORING_FSYNC_DATASYNC);
		break;
	case BS_IO_WRITE_ZEROES:
		io_uring_prep_fallocate(sqe, fdev->fd, filedev_zero_mode(fdev), off, len);
		break;
	case BS_IO_UNMAP:
		io_uring_prep_fallocate(sqe, fdev->fd,
					FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
		break;
	default:
		assert(filedev_io_is_data(io));
		uringdev_prep_data(fdev, sqe, io);
		break;
	}
	io_uring_sqe_set_data(sqe, io);
}

/* Put @p io in the ring if a slot is free. The SQE goes to the kernel with
 * the poller's next io_uring_submit(). */
static bool uringdev_try_prep(struct uringdev_channel *ch, struct bs_dev_io *io)
{
	struct io_uring_sqe *sqe;

	if (ch->inflight >= ch->depth)
		return false;
	sqe = io_uring_get_sqe(&ch->ring);
	if (sqe == NULL)
		return false;
	uringdev_prep(ch->fdev, sqe, io);
	ch->inflight++;
	return true;
}

/* Start (or restart) @p io: into the ring, or behind earlier waiters. */
static void uringdev_queue(struct uringdev_channel *ch, struct bs_dev_io *io)
{
	if (ch->wait_head == NULL && uringdev_try_prep(ch, io))
		return;
	io->next = NULL;
	if (ch->wait_tail != NULL)
		ch->wait_tail->next = io;
	else
		ch->wait_head = io;
	ch->wait_tail = io;
}

static int uringdev_submit_batch(struct uringdev_channel *ch);

/* Prepared SQEs that go to the kernel at once even when it has no IO. */
#define URINGDEV_SUBMIT_AT	2

/*
 * Whether new SQEs should go to the kernel at once: yes while earlier IO is
 * in the kernel (submitted, not reaped), or once URINGDEV_SUBMIT_AT are
 * prepared. The device is busy then, and handing it each request as it
 * comes keeps its pipeline full; on a virtio-blk VM (Firecracker) one
 * system call per IO gave 25% more IOPS at queue depth 32 than one per
 * reaped batch. The count matters when completions are delivered on a
 * later poll (the blob layer defers them): the whole ring is reaped before
 * the first resubmission, the kernel is empty, and without it every IO
 * would wait for the next batch, which keeps the batches in lockstep. A
 * single prepared SQE with nothing in the kernel waits for the poller, so
 * at queue depth 1 the thread's sleep submits and waits in one call.
 */
static bool uringdev_submit_now(struct uringdev_channel *ch)
{
	unsigned ready = io_uring_sq_ready(&ch->ring);

	return ready >= URINGDEV_SUBMIT_AT || ch->inflight > ready;
}

/* Entry point of every ring-backed op. */
static void uringdev_submit(struct bs_dev *dev, void *ch_ctx, struct bs_dev_io *io)
{
	struct uringdev_channel *ch = ch_ctx;

	URINGDEV_RETRIES(io) = 0;
	uringdev_queue(ch, io);
	if (uringdev_submit_now(ch))
		(void)uringdev_submit_batch(ch);
	uringdev_update_hold(ch);
}

/*
 * Unmap. On a file, PUNCH_HOLE through the ring. On a block device there is
 * no io_uring opcode for discard in the kernels we support (the uring_cmd
 * one needs 6.12), and blkdev fallocate(PUNCH_HOLE) is not a discard: it is
 * a zeroing request that fails on devices that cannot zero cheaply. So
 * issue BLKDISCARD here, synchronously: unmap is rare and a discard is
 * usually quick, and the completion is still delivered on a later poll as
 * the IO contract demands. The cost is that this thread blocks meanwhile.
 */
static void uringdev_unmap(struct bs_dev *dev, void *ch_ctx, struct bs_dev_io *io)
{
	struct filedev *fdev = filedev_from_dev(dev);

	if (!fdev->is_bdev) {
		uringdev_submit(dev, ch_ctx, io);
		return;
	}
	bs_dev_io_complete_deferred(io, filedev_discard(fdev, filedev_io_offset(io),
							filedev_io_bytes(io)));
}

/* ------------------------------------------------------------------------
 * Completion
 * ------------------------------------------------------------------------ */

/* Retry @p io after -EAGAIN/-EINTR, unless it keeps failing that way. */
static bool uringdev_retry(struct uringdev_channel *ch, struct bs_dev_io *io)
{
	if (++URINGDEV_RETRIES(io) > URINGDEV_MAX_RETRIES)
		return false;
	uringdev_queue(ch, io);
	return true;
}

/* Handle one CQE of @p io with result @p res. */
static void uringdev_cpl(struct uringdev_channel *ch, struct bs_dev_io *io, int res)
{
	uint64_t total;

	assert(ch->inflight > 0);
	ch->inflight--;
	if ((res == -EAGAIN || res == -EINTR) && uringdev_retry(ch, io))
		return;
	if (filedev_zero_fallback(ch->fdev, io, res)) {
		uringdev_queue(ch, io); /* again, as a hole punch */
		return;
	}
	if (res < 0 || !filedev_io_is_data(io)) {
		bs_dev_io_complete(io, res);
		return;
	}
	if (res == 0) {
		/* No progress: end of file on a read, a stuck write. */
		bs_dev_io_complete(io, -EIO);
		return;
	}
	total = filedev_io_bytes(io);
	io->done += (uint64_t)res;
	assert(io->done <= total);
	if (io->done < total) {
		URINGDEV_RETRIES(io) = 0;
		uringdev_queue(ch, io);
		return;
	}
	bs_dev_io_complete(io, 0);
}

/*
 * Reap completions. The CQEs are copied out and marked seen (one
 * io_uring_cq_advance) before any callback runs, so each is consumed exactly
 * once even if a callback submits more IO. Stops after about one ring's
 * worth so other pollers get their turn.
 */
static int uringdev_reap(struct uringdev_channel *ch)
{
	struct io_uring_cqe *cqes[URINGDEV_REAP_BATCH];
	struct bs_dev_io *ios[URINGDEV_REAP_BATCH];
	int res[URINGDEV_REAP_BATCH];
	unsigned n, i;
	int total = 0;

	if (ch->deferred && (IO_URING_READ_ONCE(*ch->ring.sq.kflags) & IORING_SQ_TASKRUN))
		(void)io_uring_get_events(&ch->ring);	/* post the finished ones */
	do {
		n = io_uring_peek_batch_cqe(&ch->ring, cqes, URINGDEV_REAP_BATCH);
		for (i = 0; i < n; i++) {
			ios[i] = io_uring_cqe_get_data(cqes[i]);
			res[i] = cqes[i]->res;
			if (ios[i] == NULL && !(cqes[i]->flags & IORING_CQE_F_MORE))
				ch->wake_armed = false;	/* the poll ended: re-arm */
		}
		io_uring_cq_advance(&ch->ring, n);
		for (i = 0; i < n; i++) {
			if (ios[i] == NULL)
				continue;	/* eventfd poll: a wake-up, not work */
			uringdev_cpl(ch, ios[i], res[i]);
			total++;
		}
	} while (n == URINGDEV_REAP_BATCH && (uint32_t)total < ch->depth);
	return total;
}

/*
 * Keep a multishot poll on the thread's wake-up eventfd in the waiter's
 * ring (user_data NULL; every IO has a non-NULL one). It takes an SQE but
 * no IO slot: the ring has one SQE more than the IO depth.
 */
static void uringdev_arm_wake(struct uringdev_channel *ch)
{
	struct io_uring_sqe *sqe;

	if (!ch->waiter || ch->wake_armed)
		return;
	sqe = io_uring_get_sqe(&ch->ring);
	if (sqe == NULL)
		return;		/* the next poll tries again */
	io_uring_prep_poll_multishot(sqe, bs_thread_wakeup_fd(), POLLIN);
	io_uring_sqe_set_data(sqe, NULL);
	ch->wake_armed = true;
}

/*
 * The thread's sleep (bs_wait_fn): submit, and wait for one CQE. Without a
 * limit (UINT64_MAX) no timeout goes to the kernel: arming one costs a few
 * percent of IOPS at queue depth 1.
 */
static int uringdev_wait(void *arg, uint64_t max_ns)
{
	struct uringdev_channel *ch = arg;
	struct __kernel_timespec ts = {
		.tv_sec = (long long)(max_ns / 1000000000ull),
		.tv_nsec = (long long)(max_ns % 1000000000ull),
	};
	struct io_uring_cqe *cqe;
	int rc;

	uringdev_arm_wake(ch);
	ch->sq_age = 0;
	if (max_ns == UINT64_MAX)
		rc = io_uring_submit_and_wait(&ch->ring, 1);
	else
		rc = io_uring_submit_and_wait_timeout(&ch->ring, &cqe, 1, &ts, NULL);
	return rc == -ETIME || rc > 0 ? 0 : rc;
}

/* Move waiting IO into free ring slots, oldest first. */
static int uringdev_start_waiting(struct uringdev_channel *ch)
{
	struct bs_dev_io *io;
	int n = 0;

	while ((io = ch->wait_head) != NULL && uringdev_try_prep(ch, io)) {
		ch->wait_head = io->next;
		if (ch->wait_head == NULL)
			ch->wait_tail = NULL;
		io->next = NULL;
		n++;
	}
	return n;
}

/*
 * Hand every prepared SQE to the kernel in one system call. On -EAGAIN,
 * -EBUSY or -EINTR the SQEs stay in the ring and go with the next poll; any
 * other error is logged once and retried the same way (the ring keeps them).
 */
static int uringdev_submit_batch(struct uringdev_channel *ch)
{
	int rc;

	if (io_uring_sq_ready(&ch->ring) == 0)
		return 0;
	rc = io_uring_submit(&ch->ring);
	if (rc >= 0)
		return rc;
	if (rc != -EAGAIN && rc != -EBUSY && rc != -EINTR && !ch->submit_err_logged) {
		LOG_ERR("%s: io_uring_submit: %s", ch->fdev->dev.name, strerror(-rc));
		ch->submit_err_logged = true;
	}
	return 0;
}

/*
 * Whether to submit now. A waiter's SQEs may wait two polls: if the thread
 * goes idle meanwhile, its sleep submits them and waits in one system call
 * (at queue depth 1 that halves the calls per IO); if it keeps running, the
 * next poll but one submits them, a sub-microsecond delay.
 */
static bool uringdev_submit_due(struct uringdev_channel *ch)
{
	if (io_uring_sq_ready(&ch->ring) == 0)
		return false;
	if (!ch->waiter || ++ch->sq_age > 2) {
		ch->sq_age = 0;
		return true;
	}
	return false;
}

/* The channel's busy poller: reap, refill, submit. */
static int uringdev_poll(void *arg)
{
	struct uringdev_channel *ch = arg;
	int work;

	work = uringdev_reap(ch);
	work += uringdev_start_waiting(ch);
	uringdev_arm_wake(ch);
	if (uringdev_submit_due(ch))
		work += uringdev_submit_batch(ch);
	if (work == 0 && ch->inflight > 0 && !ch->waiter && !ch->deferred) {
		/*
		 * IO in flight and nothing reaped: enter the kernel once so it
		 * runs pending completion work now, instead of when a signal-style
		 * kick interrupts the spinning thread. At queue depth 1 this is
		 * the difference between the two. (A waiter's thread soon sleeps
		 * in io_uring_enter(), which runs that work: no extra call. A
		 * deferred ring flags its pending work, which the reap checks.)
		 */
		(void)io_uring_get_events(&ch->ring);
		work = uringdev_reap(ch);
	}
	uringdev_update_hold(ch);
	return work;
}

/* ------------------------------------------------------------------------
 * Channels
 * ------------------------------------------------------------------------ */

static int uringdev_channel_create(struct bs_dev *dev, void *ch_ctx)
{
	struct uringdev_channel *ch = ch_ctx;
	int rc;

	ch->fdev = filedev_from_dev(dev);
	ch->depth = ch->fdev->queue_depth;
	ch->deferred = bs_thread_is_bound();
	rc = uringdev_ring_init(&ch->ring, ch->depth + 1, &ch->deferred);	/* + the wake poll */
	if (rc < 0) {
		LOG_ERR("%s: cannot create io_uring of %u entries: %s", dev->name,
			ch->depth + 1, strerror(-rc));
		return rc;
	}
	ch->waiter = bs_thread_set_waiter(uringdev_wait, ch) == 0;
	ch->spin_depth = ch->deferred ? ch->fdev->busy_poll_depth : 0;
	ch->poller = bs_poller_register(uringdev_poll, ch, 0);
	if (ch->poller == NULL) {
		rc = -errno;
		LOG_ERR("%s: cannot register io_uring poller: %s", dev->name, strerror(-rc));
		goto out_exit_ring;
	}
	return 0;

out_exit_ring:
	if (ch->waiter)
		bs_thread_clear_waiter(ch);
	io_uring_queue_exit(&ch->ring);
	return rc;
}

/*
 * The device layer destroys a channel only when its last reference is put,
 * and users drain their IO before putting it, so nothing can be in flight.
 * If that is broken anyway, the IO is abandoned (its callbacks never run)
 * but the ring and the thread hold are still released.
 */
static void uringdev_channel_destroy(struct bs_dev *dev, void *ch_ctx)
{
	struct uringdev_channel *ch = ch_ctx;

	if (NEVER(ch->inflight != 0 || ch->wait_head != NULL))
		LOG_ERR("%s: channel destroyed with IO in flight", dev->name);
	bs_poller_unregister(&ch->poller);
	if (ch->waiter)
		bs_thread_clear_waiter(ch);
	io_uring_queue_exit(&ch->ring);
	if (ch->held) {
		ch->held = false;
		bs_thread_release();
	}
}

const struct bs_dev_ops uringdev_ops = {
	.channel_create = uringdev_channel_create,
	.channel_destroy = uringdev_channel_destroy,
	.read = uringdev_submit,
	.write = uringdev_submit,
	.readv = uringdev_submit,
	.writev = uringdev_submit,
	.flush = uringdev_submit,
	.write_zeroes = uringdev_submit,
	.unmap = uringdev_unmap,
	/* .copy = filedev_copy is added per device (bs_file_dev_opts.copy) */
	.destroy = filedev_destroy,
};
