/*
 * Blobstore async runtime: lightweight threads, messages, pollers and
 * per-thread IO channels.
 *
 * A bs_thread is an event loop. It is driven by exactly one pthread at a
 * time, either a reactor pthread the library starts (bs_thread_start) or the
 * application's own loop calling bs_thread_poll(). Everything that touches a
 * thread's state (its pollers, deferred work, channels) happens on that
 * pthread; other pthreads talk to it only through bs_thread_send_msg(), a
 * lock-free multi-producer queue. Messages from one sender run in the order
 * they were sent.
 *
 * Rules every component follows:
 *  - Completions are `void (*)(void *cb_arg, int err)` with 0 or -errno.
 *  - A callback never runs before the call that submitted the work returns:
 *    completions are always deferred to a later poll of the thread.
 *  - Data IO goes through a per-(thread, device) IO channel obtained with
 *    bs_get_io_channel(); channels are reference counted.
 */
#ifndef BLOBSTORE_THREAD_H
#define BLOBSTORE_THREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Completion of an asynchronous operation: err is 0 or a negative errno. */
typedef void (*bs_cpl_fn)(void *cb_arg, int err);

/** A message or deferred function: runs on the target thread. */
typedef void (*bs_msg_fn)(void *ctx);

/** Poller body. Return > 0 when it did work, 0 when it found nothing. */
typedef int (*bs_poller_fn)(void *arg);

struct bs_thread;
struct bs_poller;
struct bs_io_channel;

/**
 * Caller-owned node for bs_thread_defer(): lets hot paths defer a callback
 * to the next poll of the current thread without allocating. Contents are
 * private; the node must stay valid until the deferred function runs.
 */
struct bs_defer {
	struct bs_defer *next;
	bs_msg_fn fn;
	void *ctx;
};

/* ------------------------------------------------------------------------
 * Threads
 * ------------------------------------------------------------------------ */

/**
 * Create a thread object. It does nothing until it is started or polled.
 *
 * @param name  Used in log lines; copied (truncated to 31 characters).
 * @return the thread, or NULL with errno = ENOMEM (or the eventfd error).
 * Thread-safe; may be called from any pthread.
 */
struct bs_thread *bs_thread_create(const char *name);

/**
 * Start a reactor pthread that polls @p t until it has exited. The reactor
 * spins while there is work and sleeps on an eventfd when idle (waking for
 * messages and timed pollers). A reactor is bound to its pthread (see
 * bs_thread_bind()).
 *
 * @return 0, -EBUSY if already started or being polled, -EPERM if @p t is
 *         bound to an application pthread, or -errno from pthread_create.
 */
int bs_thread_start(struct bs_thread *t);

/**
 * Run one iteration of @p t on the calling pthread: up to @p max_msgs
 * cross-thread messages (0 = a default batch), then all deferred work, then
 * every due poller. Use this to drive a thread from an application loop.
 * While it runs, bs_thread_get_current() returns @p t.
 *
 * @return the amount of work done (0 when idle), -EBUSY if the thread is
 *         a started reactor (it must not be polled by anyone else) or is
 *         being polled by another pthread, or -EPERM if it is bound to
 *         another pthread (bs_thread_bind()).
 */
int bs_thread_poll(struct bs_thread *t, uint32_t max_msgs);

/**
 * Block the calling pthread until @p t may have work: a message arrives, a
 * timed poller is due, a device signals (an io_uring channel wakes the
 * thread on every completion), or @p max_ns pass (UINT64_MAX: no limit).
 * Call it after a bs_thread_poll() that returned 0; it returns at once if
 * work is queued, the thread holds (bs_thread_hold()) or is exiting. It runs
 * nothing itself: poll again afterwards. An application loop polls while
 * there is work and then waits; a started reactor does the same.
 *
 * @return 0, -EBUSY if the thread is a started reactor or is being
 *         polled by another pthread, or -EPERM if it is bound to another
 *         pthread.
 */
int bs_thread_wait(struct bs_thread *t, uint64_t max_ns);

/**
 * Bind @p t to the calling pthread for the rest of its life: afterwards only
 * this pthread may poll or wait on it (others get -EPERM) and it cannot be
 * started as a reactor. Unbound, a polled thread may move between pthreads
 * (one at a time); bound, the channels made on it afterwards may use
 * per-pthread kernel facilities. The io_uring file device then has the
 * kernel finish completions only when the thread asks for them, with no
 * interrupt or wake-up per IO, and keeps the thread polling while deep IO
 * is in flight (bs_file_dev_opts.busy_poll_depth). Channels made before the
 * bind keep working as they are. Binding again from the same pthread is a
 * no-op.
 *
 * @return 0, -EBUSY if @p t is a reactor or another pthread is polling it,
 *         or -EPERM if it is bound to another pthread.
 */
int bs_thread_bind(struct bs_thread *t);

/**
 * Ask @p t to exit. The thread keeps running messages, deferred work and
 * pollers until it holds no IO channels and has no pollers, no deferred work
 * and no pending messages; then it is exited and a reactor pthread returns.
 * Call on any pthread. Idempotent.
 */
void bs_thread_exit(struct bs_thread *t);

/** True once @p t has finished exiting (see bs_thread_exit()). */
bool bs_thread_is_exited(struct bs_thread *t);

/**
 * Free @p t. A started reactor is joined first. The thread must have been
 * asked to exit; for a polled thread it must also be exited (keep polling
 * until bs_thread_is_exited()).
 * @return 0, or -EBUSY if the thread has not exited (nothing is freed).
 */
int bs_thread_destroy(struct bs_thread *t);

/** The bs_thread being run by the calling pthread, or NULL. */
struct bs_thread *bs_thread_get_current(void);

/** The name given at bs_thread_create(). */
const char *bs_thread_get_name(const struct bs_thread *t);

/**
 * Send a message: @p fn(@p ctx) runs later on @p t. Callable from any
 * pthread, including @p t itself (the message then runs on a later poll).
 * Messages from one sender run in order.
 *
 * @return 0, -ENOMEM, or -ESHUTDOWN if @p t has already exited.
 */
int bs_thread_send_msg(struct bs_thread *t, bs_msg_fn fn, void *ctx);

/**
 * Defer @p fn(@p ctx) to the next poll of the current thread, without
 * allocating: @p node is caller-owned. Deferred work runs in FIFO order.
 * Must be called on a bs_thread (asserts otherwise).
 */
void bs_thread_defer(struct bs_defer *node, bs_msg_fn fn, void *ctx);

/**
 * Keep the current thread's reactor from sleeping while work is outstanding
 * that a poller will find without any wake-up (for example IO in flight on a
 * ring the poller reaps). Every bs_thread_hold() needs a bs_thread_release().
 */
void bs_thread_hold(void);
void bs_thread_release(void);

/**
 * A thread's way to sleep, supplied by a device: block until the device has
 * completions, the thread's wake-up eventfd (bs_thread_wakeup_fd()) becomes
 * readable, or @p max_ns pass (UINT64_MAX: no limit); return 0 or -errno (the thread just polls
 * again either way). An io_uring channel waits inside io_uring_enter() with
 * a poll on the eventfd in its ring, which wakes faster than poll(2) on the
 * eventfd would.
 */
typedef int (*bs_wait_fn)(void *arg, uint64_t max_ns);

/**
 * Make @p fn(@p arg) the current thread's way to sleep (instead of poll(2)
 * on its wake-up eventfd). One per thread: the first device channel to ask
 * gets it. Call on the thread; clear it before @p arg goes away.
 * @return 0, or -EBUSY when the thread already has a waiter.
 */
int bs_thread_set_waiter(bs_wait_fn fn, void *arg);

/** Drop the current thread's waiter if it is @p arg's. */
void bs_thread_clear_waiter(void *arg);

/**
 * True when the current thread is bound to the calling pthread for life (a
 * reactor, or bs_thread_bind()): a device may then tie per-channel kernel
 * state to this pthread. False off a bs_thread.
 */
bool bs_thread_is_bound(void);

/**
 * The current thread's wake-up eventfd, or -1 when not on a bs_thread. A
 * device whose completions can signal an eventfd (io_uring_register_eventfd,
 * for example) registers this fd instead of holding the thread: the thread
 * then sleeps while the device works and wakes when it signals. The fd
 * belongs to the thread: never read, write or close it. Valid until the
 * thread is destroyed, so unregister it when the channel is destroyed.
 */
int bs_thread_wakeup_fd(void);

/* ------------------------------------------------------------------------
 * Pollers
 * ------------------------------------------------------------------------ */

/**
 * Register a poller on the current thread. @p period_us = 0 makes a busy
 * poller that runs on every iteration; otherwise it runs at most once per
 * period.
 *
 * @return the poller, or NULL with errno = ENOMEM or EPERM (not on a thread).
 */
struct bs_poller *bs_poller_register(bs_poller_fn fn, void *arg, uint64_t period_us);

/**
 * Unregister *@p pp (on the thread that registered it) and set it to NULL.
 * Safe from inside the poller itself. NULL is ignored.
 */
void bs_poller_unregister(struct bs_poller **pp);

/* ------------------------------------------------------------------------
 * IO devices and channels
 *
 * Anything that needs per-thread state (a device ring, a store's request
 * pool) registers itself as an IO device. Each thread that calls
 * bs_get_io_channel() gets its own channel with a context buffer of
 * ctx_size bytes, created on that thread by create_cb and destroyed on that
 * thread by destroy_cb once the last reference is put.
 * ------------------------------------------------------------------------ */

typedef int (*bs_channel_create_fn)(void *io_device, void *ctx);
typedef void (*bs_channel_destroy_fn)(void *io_device, void *ctx);

/**
 * Register @p io_device (any unique pointer).
 * @return 0, -EEXIST if already registered, -EINVAL for a NULL argument,
 *         -ENOMEM.
 */
int bs_io_device_register(void *io_device, bs_channel_create_fn create_cb,
			  bs_channel_destroy_fn destroy_cb, uint32_t ctx_size,
			  const char *name);

/**
 * Unregister @p io_device. New bs_get_io_channel() calls fail with -ENODEV
 * at once; @p cb_fn runs on the calling thread once every existing channel
 * has been destroyed (immediately deferred if there are none).
 * Must be called on a bs_thread. Errors: -ENOENT if not registered.
 */
void bs_io_device_unregister(void *io_device, bs_cpl_fn cb_fn, void *cb_arg);

/**
 * Get the current thread's channel for @p io_device, creating it on first
 * use; each call takes a reference.
 * @return the channel, or NULL with errno = EPERM (not on a thread), ENODEV
 *         (not registered or unregistering), ENOMEM, or the create_cb error.
 */
struct bs_io_channel *bs_get_io_channel(void *io_device);

/**
 * Drop a reference taken by bs_get_io_channel(), on the channel's thread.
 * The channel is destroyed on a later poll when its count reaches zero.
 */
void bs_put_io_channel(struct bs_io_channel *ch);

/** The context buffer of @p ch (ctx_size bytes, zeroed before create_cb). */
void *bs_io_channel_get_ctx(struct bs_io_channel *ch);

/** The channel that owns context buffer @p ctx. */
struct bs_io_channel *bs_io_channel_from_ctx(void *ctx);

/** The thread @p ch belongs to. */
struct bs_thread *bs_io_channel_get_thread(struct bs_io_channel *ch);

/** The io_device @p ch was created for. */
void *bs_io_channel_get_io_device(struct bs_io_channel *ch);

/**
 * Run @p fn(@p ch, @p ctx) once on each thread that has a channel for
 * @p io_device, one thread after another (the iteration hops by messages);
 * then @p cpl(@p ctx, first error) on the calling thread. @p fn reports by
 * calling bs_for_each_channel_continue(iter, err); a non-zero err stops the
 * iteration. Used to freeze or drain IO across threads.
 */
struct bs_channel_iter;
typedef void (*bs_channel_fn)(struct bs_channel_iter *iter,
			      struct bs_io_channel *ch, void *ctx);
/* @return 0 (cpl will run), or -ENOMEM (nothing happens, cpl will not run). */
int bs_for_each_channel(void *io_device, bs_channel_fn fn, void *ctx, bs_cpl_fn cpl);
void bs_for_each_channel_continue(struct bs_channel_iter *iter, int err);

#ifdef __cplusplus
}
#endif
#endif /* BLOBSTORE_THREAD_H */
