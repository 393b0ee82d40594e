/*
 * Lightweight threads: an event loop owned by one pthread at a time.
 *
 * One iteration (bs_thread_poll) runs, in this order:
 *   1. up to a batch of cross-thread messages (FIFO per sender);
 *   2. the deferred-work list as it stood when the step began (work deferred
 *      while it runs waits for the next iteration, so nothing starves);
 *   3. every due poller.
 * Then the exit condition is checked (see bs_thread_exit()).
 *
 * A reactor (bs_thread_start) spins while there is work or a hold, and after
 * a short idle spin (RT_IDLE_SPIN_NS) sleeps on the thread's eventfd until a
 * message arrives, the next timed poller is due, or a device signals the
 * eventfd (an io_uring channel registers it, so completions wake the thread;
 * see bs_thread_wakeup_fd()). Senders write the eventfd only when the thread
 * has announced that it is going to sleep, so the message path makes no
 * system call while the thread is busy. bs_thread_wait() offers the same
 * sleep to an application that drives a thread from its own loop.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "runtime/runtime_int.h"
#include "util/assert_int.h"
#include "util/log_int.h"

#define RT_DEFAULT_MSG_BATCH 64
/*
 * How long an idle reactor spins before it sleeps (BLOBSTORE_IDLE_SPIN_US).
 * None by default: on the development VM any spin cost IOPS at low queue
 * depth (a spinning vCPU delays the hypervisor's IO emulation), and a sleep
 * in io_uring_enter() wakes within microseconds.
 */
#define RT_IDLE_SPIN_NS 0ull

static __thread struct bs_thread *tls_current;

uint64_t rt_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void rt_set_current(struct bs_thread *t)
{
	tls_current = t;
}

struct bs_thread *bs_thread_get_current(void)
{
	return tls_current;
}

const char *bs_thread_get_name(const struct bs_thread *t)
{
	return t->name;
}

struct bs_thread *bs_thread_create(const char *name)
{
	struct bs_thread *t = calloc(1, sizeof(*t));

	if (t == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	snprintf(t->name, sizeof(t->name), "%s", name ? name : "thread");
	t->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (t->efd < 0) {
		int err = errno;

		LOG_ERR("thread %s: eventfd: %s", t->name, strerror(err));
		free(t);
		errno = err;
		return NULL;
	}
	rt_mpsc_init(&t->msgs);
	t->defer_tail = &t->defer_head;
	TAILQ_INIT(&t->pollers);
	TAILQ_INIT(&t->channels);
	pthread_mutex_lock(&g_rt_lock);
	TAILQ_INSERT_TAIL(&g_threads, t, global_link);
	pthread_mutex_unlock(&g_rt_lock);
	return t;
}

/* Wake a reactor that is asleep (or about to sleep) on its eventfd. */
static void thread_kick(struct bs_thread *t)
{
	uint64_t one = 1;

	if (atomic_load_explicit(&t->sleeping, memory_order_seq_cst) == 0)
		return;
	if (write(t->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		LOG_WARN("thread %s: eventfd write: %s", t->name, strerror(errno));
}

int bs_thread_send_msg(struct bs_thread *t, bs_msg_fn fn, void *ctx)
{
	struct rt_msg *m;

	assert(t != NULL && fn != NULL);
	if (atomic_load_explicit(&t->exited, memory_order_acquire))
		return -ESHUTDOWN;
	m = malloc(sizeof(*m));
	if (m == NULL)
		return -ENOMEM;
	m->fn = fn;
	m->ctx = ctx;
	rt_mpsc_push(&t->msgs, m);
	thread_kick(t);
	return 0;
}

void bs_thread_defer(struct bs_defer *node, bs_msg_fn fn, void *ctx)
{
	struct bs_thread *t = tls_current;

	assert(t != NULL);
	node->next = NULL;
	node->fn = fn;
	node->ctx = ctx;
	*t->defer_tail = node;
	t->defer_tail = &node->next;
}

void bs_thread_hold(void)
{
	assert(tls_current != NULL);
	tls_current->holds++;
}

void bs_thread_release(void)
{
	assert(tls_current != NULL && tls_current->holds > 0);
	tls_current->holds--;
}

/* Step 1: run up to @max queued messages. */
static int thread_run_msgs(struct bs_thread *t, uint32_t max)
{
	int n = 0;

	while ((uint32_t)n < max) {
		struct rt_msg *m = rt_mpsc_pop(&t->msgs);

		if (m == NULL)
			break;
		m->fn(m->ctx);
		free(m);
		n++;
	}
	return n;
}

/* Step 2: run the deferred list as it stood on entry. */
static int thread_run_deferred(struct bs_thread *t)
{
	struct bs_defer *node = t->defer_head;
	int n = 0;

	t->defer_head = NULL;
	t->defer_tail = &t->defer_head;
	while (node != NULL) {
		struct bs_defer *next = node->next;

		node->fn(node->ctx);
		node = next;
		n++;
	}
	return n;
}

/* The exit condition: nothing left that could still call back. */
static void thread_check_exited(struct bs_thread *t)
{
	if (!atomic_load_explicit(&t->exit_requested, memory_order_acquire))
		return;
	if (t->nchannels != 0 || t->npollers != 0 || t->defer_head != NULL)
		return;
	if (rt_mpsc_maybe_nonempty(&t->msgs))
		return;
	atomic_store_explicit(&t->exited, true, memory_order_release);
}

/* One iteration on the calling pthread; the caller has claimed `polling`. */
static int thread_poll_once(struct bs_thread *t, uint32_t max_msgs)
{
	struct bs_thread *prev = tls_current;
	int work;

	tls_current = t;
	work = thread_run_msgs(t, max_msgs ? max_msgs : RT_DEFAULT_MSG_BATCH);
	work += thread_run_deferred(t);
	work += rt_run_pollers(t, rt_now_ns());
	thread_check_exited(t);
	tls_current = prev;
	return work;
}

/*
 * Claim @t for one poll, wait or bind on the calling pthread: -EBUSY if it is
 * a reactor or another pthread is in it, -EPERM if it is bound to another
 * pthread. The claim (an acquire) also orders `bound` and `bound_to`.
 */
static int thread_claim(struct bs_thread *t)
{
	bool expected = false;

	if (t->started)
		return -EBUSY;
	if (!atomic_compare_exchange_strong(&t->polling, &expected, true))
		return -EBUSY;
	if (t->bound && !pthread_equal(t->bound_to, pthread_self())) {
		atomic_store_explicit(&t->polling, false, memory_order_release);
		return -EPERM;
	}
	return 0;
}

static void thread_unclaim(struct bs_thread *t)
{
	atomic_store_explicit(&t->polling, false, memory_order_release);
}

int bs_thread_poll(struct bs_thread *t, uint32_t max_msgs)
{
	int work = thread_claim(t);

	if (work != 0)
		return work;
	work = thread_poll_once(t, max_msgs);
	thread_unclaim(t);
	return work;
}

/* Discard the eventfd's count: every signal so far is about to be served. */
static void thread_drain_wakeups(struct bs_thread *t)
{
	uint64_t drain;

	while (read(t->efd, &drain, sizeof(drain)) > 0)
		;
}

/* True when the thread must not sleep: work queued, a hold, or exiting. */
static bool thread_has_pending(struct bs_thread *t)
{
	return rt_mpsc_maybe_nonempty(&t->msgs) || t->defer_head != NULL ||
	       t->holds > 0 || atomic_load(&t->exit_requested);
}

/* Sleep on the eventfd itself (no device waiter): level-triggered poll(2). */
static void thread_ppoll(struct bs_thread *t, uint64_t wait_ns)
{
	struct pollfd pfd = { .fd = t->efd, .events = POLLIN };
	struct timespec ts = {
		.tv_sec = (time_t)(wait_ns / 1000000000ull),
		.tv_nsec = (long)(wait_ns % 1000000000ull),
	};

	(void)ppoll(&pfd, 1, wait_ns == UINT64_MAX ? NULL : &ts, NULL);
	thread_drain_wakeups(t);
}

/*
 * Sleep until there may be work: a message, a due timed poller, a device
 * event, or @max_ns. The `sleeping` flag is raised before the last look at
 * the queues, and senders read it after publishing their message (and then
 * signal the eventfd), so a message is either seen here or wakes the sleep.
 * A device waiter (bs_thread_set_waiter) wakes on its own completions and on
 * every eventfd signal, so nothing else is needed. Without one, poll(2) on
 * the eventfd is level-triggered and devices signal it on completion: the
 * eventfd is drained after each sleep, so a signal is never left to cause a
 * spurious wake-up, and one lost to the drain is found by the next poll.
 */
static void thread_sleep(struct bs_thread *t, uint64_t max_ns)
{
	bool busy = false;
	uint64_t wait_ns;

	atomic_store_explicit(&t->sleeping, 1, memory_order_seq_cst);
	wait_ns = rt_next_timer_ns(t, rt_now_ns(), &busy);
	if (wait_ns > max_ns)
		wait_ns = max_ns;
	if (wait_ns > 0 && !thread_has_pending(t) &&
	    !atomic_load_explicit(&t->exited, memory_order_acquire)) {
		if (t->wait_fn != NULL)
			(void)t->wait_fn(t->wait_arg, wait_ns);
		else
			thread_ppoll(t, wait_ns);
	}
	atomic_store_explicit(&t->sleeping, 0, memory_order_seq_cst);
}

int bs_thread_wait(struct bs_thread *t, uint64_t max_ns)
{
	int rc = thread_claim(t);

	if (rc != 0)
		return rc;
	thread_sleep(t, max_ns);
	thread_unclaim(t);
	return 0;
}

int bs_thread_bind(struct bs_thread *t)
{
	int rc = thread_claim(t);

	if (rc != 0)
		return rc;
	t->bound = true;
	t->bound_to = pthread_self();
	thread_unclaim(t);
	return 0;
}

bool bs_thread_is_bound(void)
{
	return tls_current != NULL && tls_current->bound;
}

int bs_thread_wakeup_fd(void)
{
	return tls_current != NULL ? tls_current->efd : -1;
}

int bs_thread_set_waiter(bs_wait_fn fn, void *arg)
{
	struct bs_thread *t = tls_current;

	assert(t != NULL && fn != NULL);
	if (t->wait_fn != NULL)
		return -EBUSY;
	t->wait_fn = fn;
	t->wait_arg = arg;
	return 0;
}

void bs_thread_clear_waiter(void *arg)
{
	struct bs_thread *t = tls_current;

	assert(t != NULL);
	if (t->wait_fn != NULL && t->wait_arg == arg) {
		t->wait_fn = NULL;
		t->wait_arg = NULL;
	}
}

/* The idle spin, in ns: RT_IDLE_SPIN_NS unless BLOBSTORE_IDLE_SPIN_US says. */
static uint64_t reactor_spin_ns(void)
{
	const char *env = getenv("BLOBSTORE_IDLE_SPIN_US");
	char *end;
	unsigned long long us;

	if (env == NULL || *env == '\0')
		return RT_IDLE_SPIN_NS;
	errno = 0;
	us = strtoull(env, &end, 10);
	if (errno != 0 || *end != '\0' || us > 1000000ull) {
		LOG_WARN("BLOBSTORE_IDLE_SPIN_US='%s' is not 0..1000000; using %llu",
			 env, RT_IDLE_SPIN_NS / 1000);
		return RT_IDLE_SPIN_NS;
	}
	return us * 1000ull;
}

static void *reactor_main(void *arg)
{
	struct bs_thread *t = arg;
	uint64_t spin_ns = reactor_spin_ns();
	uint64_t idle_since = 0;

	t->bound = true;	/* a reactor is its pthread's for life */
	t->bound_to = pthread_self();
	while (!atomic_load_explicit(&t->exited, memory_order_acquire)) {
		int work = thread_poll_once(t, 0);

		if (work > 0 || t->holds > 0) {
			idle_since = 0;
			continue;
		}
		if (spin_ns > 0 && idle_since == 0)
			idle_since = rt_now_ns();
		if (spin_ns > 0 && rt_now_ns() - idle_since < spin_ns)
			continue;
		thread_sleep(t, UINT64_MAX);
		idle_since = 0;
	}
	return NULL;
}

int bs_thread_start(struct bs_thread *t)
{
	int rc = thread_claim(t);

	if (rc != 0)
		return rc;
	if (t->bound) {
		thread_unclaim(t);	/* bound to an application pthread */
		return -EPERM;
	}
	t->started = true;
	rc = pthread_create(&t->pthread, NULL, reactor_main, t);
	if (rc != 0) {
		t->started = false;
		thread_unclaim(t);
		LOG_ERR("thread %s: pthread_create: %s", t->name, strerror(rc));
		return -rc;
	}
	return 0;
}

void bs_thread_exit(struct bs_thread *t)
{
	atomic_store_explicit(&t->exit_requested, true, memory_order_release);
	/* Make sure a sleeping reactor re-evaluates the exit condition. */
	atomic_store_explicit(&t->sleeping, 1, memory_order_seq_cst);
	thread_kick(t);
}

bool bs_thread_is_exited(struct bs_thread *t)
{
	return atomic_load_explicit(&t->exited, memory_order_acquire);
}

/* Free messages that arrived after the thread exited (they cannot run). */
static void thread_drop_late_msgs(struct bs_thread *t)
{
	struct rt_msg *m;
	unsigned n = 0;

	while ((m = rt_mpsc_pop(&t->msgs)) != NULL) {
		free(m);
		n++;
	}
	if (n > 0)
		LOG_WARN("thread %s: dropped %u messages sent after exit", t->name, n);
}

int bs_thread_destroy(struct bs_thread *t)
{
	if (t == NULL)
		return 0;
	if (!atomic_load(&t->exit_requested))
		return -EBUSY;
	if (t->started) {
		pthread_join(t->pthread, NULL);
		t->started = false;
	} else if (!bs_thread_is_exited(t)) {
		return -EBUSY;
	}
	rt_sweep_pollers(t);
	thread_drop_late_msgs(t);
	pthread_mutex_lock(&g_rt_lock);
	TAILQ_REMOVE(&g_threads, t, global_link);
	pthread_mutex_unlock(&g_rt_lock);
	close(t->efd);
	free(t);
	return 0;
}
