/*
 * Internal state of the async runtime (threads, pollers, channels).
 *
 * Ownership: every field of a bs_thread below "owner-only" is touched only
 * by the pthread currently running that thread. The message queue is the
 * only structure written by other pthreads; it is a lock-free intrusive
 * multi-producer single-consumer queue (push = one atomic exchange).
 * The registry of IO devices and the list of all threads are protected by
 * one mutex; they are used when channels are created or destroyed, never on
 * the IO path.
 */
#ifndef BS_RUNTIME_INT_H
#define BS_RUNTIME_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <blobstore/thread.h>

/* One queued cross-thread message. */
struct rt_msg {
	_Atomic(struct rt_msg *) next;
	bs_msg_fn fn;
	void *ctx;
};

/* Lock-free MPSC queue: producers exchange `head`; the consumer owns `tail`. */
struct rt_mpsc {
	_Atomic(struct rt_msg *) head;
	struct rt_msg *tail;
	struct rt_msg stub;
};

enum rt_poller_state {
	RT_POLLER_ACTIVE,
	RT_POLLER_DEAD,		/* unregistered; freed by the next sweep */
};

struct bs_poller {
	TAILQ_ENTRY(bs_poller) link;
	bs_poller_fn fn;
	void *arg;
	uint64_t period_ns;	/* 0 = busy poller */
	uint64_t next_run_ns;
	enum rt_poller_state state;
	struct bs_thread *thread;
};

struct rt_io_device;

struct bs_io_channel {
	TAILQ_ENTRY(bs_io_channel) link;
	struct rt_io_device *dev;
	struct bs_thread *thread;
	uint32_t ref;
	bool destroy_pending;
	struct bs_defer destroy_node;
	/* Context buffer follows, 64-byte aligned. */
	_Alignas(64) unsigned char ctx[];
};

struct bs_thread {
	char name[32];
	TAILQ_ENTRY(bs_thread) global_link;	/* g_threads, under g_rt_lock */

	/* Written by any pthread. */
	struct rt_mpsc msgs;
	atomic_int sleeping;		/* reactor is (about to be) asleep */
	atomic_bool exit_requested;
	atomic_bool exited;
	atomic_bool polling;		/* a pthread is inside bs_thread_poll */
	int efd;			/* eventfd: wakes a sleeping reactor */

	/* Owner-only. */
	struct bs_defer *defer_head;
	struct bs_defer **defer_tail;
	TAILQ_HEAD(, bs_poller) pollers;
	uint32_t npollers;		/* active pollers */
	bool in_pollers;		/* running the poller list */
	bool has_dead_pollers;
	TAILQ_HEAD(, bs_io_channel) channels;
	uint32_t nchannels;
	int32_t holds;			/* bs_thread_hold() count */
	bs_wait_fn wait_fn;		/* a device's sleep (bs_thread_set_waiter) */
	void *wait_arg;

	/* Bound to one pthread for life (bs_thread_bind, or a reactor's own).
	 * Written and read only with `polling` claimed. */
	bool bound;
	pthread_t bound_to;

	/* Reactor mode. */
	bool started;
	pthread_t pthread;
};

/* ---- thread.c ---- */
uint64_t rt_now_ns(void);
void rt_set_current(struct bs_thread *t);

/* ---- mpsc.c ---- */
void rt_mpsc_init(struct rt_mpsc *q);
void rt_mpsc_push(struct rt_mpsc *q, struct rt_msg *m);
struct rt_msg *rt_mpsc_pop(struct rt_mpsc *q);
bool rt_mpsc_maybe_nonempty(struct rt_mpsc *q);

/* ---- poller.c ---- */
int rt_run_pollers(struct bs_thread *t, uint64_t now);
void rt_sweep_pollers(struct bs_thread *t);
uint64_t rt_next_timer_ns(struct bs_thread *t, uint64_t now, bool *busy);

/* ---- channel.c ---- */
extern pthread_mutex_t g_rt_lock;
TAILQ_HEAD(rt_thread_list, bs_thread);
extern struct rt_thread_list g_threads;

#endif /* BS_RUNTIME_INT_H */
