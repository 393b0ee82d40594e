/*
 * Runtime suite: message ordering and deferral, cross-thread messages,
 * pollers, IO channel lifetimes, reactor sleep/wake, binding a thread to
 * a pthread (bs_thread_bind, reactors), and orderly shutdown with work in
 * flight.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "test_helpers.h"

/* ---- messages and deferral ---- */

struct seq_log {
	int n;
	int order[4096];
};

struct seq_msg {
	struct seq_log *log;
	int id;
};

static void seq_msg_fn(void *ctx)
{
	struct seq_msg *m = ctx;

	m->log->order[m->log->n++] = m->id;
}

static void test_msg_order_and_never_inline(void **state)
{
	struct bs_thread *t = bs_thread_create("t0");
	struct seq_log log = { 0 };
	static struct seq_msg msgs[1000];

	assert_non_null(t);
	for (int i = 0; i < 1000; i++) {
		msgs[i] = (struct seq_msg){ &log, i };
		assert_int_equal(bs_thread_send_msg(t, seq_msg_fn, &msgs[i]), 0);
	}
	assert_int_equal(log.n, 0); /* nothing runs before a poll */
	th_poll_idle(t);
	assert_int_equal(log.n, 1000);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(log.order[i], i);
	th_thread_finish(t);
}

struct defer_ctx {
	struct bs_defer node;
	struct bs_defer node2;
	int runs;
	int runs2;
	int poll_no;
	int second_ran_on;
};

static void defer_second(void *arg)
{
	struct defer_ctx *c = arg;

	c->runs2++;
	c->second_ran_on = c->poll_no;
}

static void defer_first(void *arg)
{
	struct defer_ctx *c = arg;

	c->runs++;
	/* Deferring from deferred work waits for the next iteration. */
	bs_thread_defer(&c->node2, defer_second, c);
	assert_int_equal(c->runs2, 0);
}

static void defer_from_msg(void *arg)
{
	struct defer_ctx *c = arg;

	bs_thread_defer(&c->node, defer_first, c);
	assert_int_equal(c->runs, 0); /* never inline */
}

static void test_defer(void **state)
{
	struct bs_thread *t = bs_thread_create("t0");
	struct defer_ctx c = { 0 };

	assert_int_equal(bs_thread_send_msg(t, defer_from_msg, &c), 0);
	c.poll_no = 1;
	bs_thread_poll(t, 0); /* runs the msg, then the first deferred fn */
	assert_int_equal(c.runs, 1);
	assert_int_equal(c.runs2, 0);
	c.poll_no = 2;
	bs_thread_poll(t, 0);
	assert_int_equal(c.runs2, 1);
	assert_int_equal(c.second_ran_on, 2);
	th_thread_finish(t);
}

static int idle_poller(void *arg)
{
	return 0;
}

static void test_current_and_misuse(void **state)
{
	struct bs_thread *t = bs_thread_create("t0");
	struct bs_poller *p;

	assert_null(bs_thread_get_current());
	errno = 0;
	p = bs_poller_register(idle_poller, NULL, 0);
	assert_null(p);
	assert_int_equal(errno, EPERM);
	errno = 0;
	assert_null(bs_get_io_channel(t));
	assert_int_equal(errno, EPERM);
	assert_int_equal(bs_thread_destroy(t), -EBUSY); /* not asked to exit */
	assert_string_equal(bs_thread_get_name(t), "t0");
	th_thread_finish(t);
}

/* ---- binding a thread to a pthread ---- */

static void note_bound(void *ctx)
{
	atomic_store((atomic_int *)ctx, bs_thread_is_bound() ? 1 : 0);
}

/* From another pthread: polling, waiting on or binding a bound thread. */
struct bind_probe {
	struct bs_thread *t;
	int poll_rc, wait_rc, bind_rc;
};

static void *bind_probe_main(void *arg)
{
	struct bind_probe *b = arg;

	b->poll_rc = bs_thread_poll(b->t, 0);
	b->wait_rc = bs_thread_wait(b->t, 1000);
	b->bind_rc = bs_thread_bind(b->t);
	return NULL;
}

static void test_bind(void **state)
{
	struct bs_thread *t = bs_thread_create("bound");
	struct bs_thread *r = bs_thread_create("reactor");
	struct bind_probe probe = { .t = t };
	atomic_int seen = -1;
	pthread_t pt;

	assert_false(bs_thread_is_bound());	/* not on a thread */
	th_run_on(t, note_bound, &seen);
	assert_int_equal(atomic_load(&seen), 0);	/* polled, unbound */
	assert_int_equal(bs_thread_bind(t), 0);
	assert_int_equal(bs_thread_bind(t), 0);	/* again: no-op */
	th_run_on(t, note_bound, &seen);
	assert_int_equal(atomic_load(&seen), 1);
	assert_int_equal(pthread_create(&pt, NULL, bind_probe_main, &probe), 0);
	assert_int_equal(pthread_join(pt, NULL), 0);
	assert_int_equal(probe.poll_rc, -EPERM);
	assert_int_equal(probe.wait_rc, -EPERM);
	assert_int_equal(probe.bind_rc, -EPERM);
	assert_int_equal(bs_thread_start(t), -EPERM);	/* a reactor is another pthread */
	assert_true(bs_thread_poll(t, 0) >= 0);	/* still ours */

	/* A reactor is bound to its own pthread; nobody else can bind it. */
	atomic_store(&seen, -1);
	assert_int_equal(bs_thread_start(r), 0);
	assert_int_equal(bs_thread_bind(r), -EBUSY);
	assert_int_equal(bs_thread_send_msg(r, note_bound, &seen), 0);
	for (int i = 0; i < 10000 && atomic_load(&seen) < 0; i++)
		usleep(100);
	assert_int_equal(atomic_load(&seen), 1);
	bs_thread_exit(r);
	assert_int_equal(bs_thread_destroy(r), 0);
	th_thread_finish(t);
}

/* ---- cross-thread messages between real pthreads ---- */

#define XT_SENDERS 4
#define XT_MSGS 20000

struct xt_state {
	atomic_int received;
	int last[XT_SENDERS];
	atomic_int order_errors;
	struct bs_thread *target;
};

struct xt_msg {
	struct xt_state *st;
	int sender;
	int seq;
};

static void xt_recv(void *ctx)
{
	struct xt_msg *m = ctx;

	if (m->seq != m->st->last[m->sender] + 1)
		atomic_fetch_add(&m->st->order_errors, 1);
	m->st->last[m->sender] = m->seq;
	atomic_fetch_add(&m->st->received, 1);
	free(m);
}

struct xt_sender {
	struct xt_state *st;
	int id;
};

static void *xt_sender_main(void *arg)
{
	struct xt_sender *s = arg;

	for (int i = 0; i < XT_MSGS; i++) {
		struct xt_msg *m = malloc(sizeof(*m));

		*m = (struct xt_msg){ s->st, s->id, i };
		while (bs_thread_send_msg(s->st->target, xt_recv, m) != 0)
			;
	}
	return NULL;
}

static void test_cross_thread_msgs(void **state)
{
	struct xt_state st = { 0 };
	struct xt_sender senders[XT_SENDERS];
	pthread_t pt[XT_SENDERS];

	for (int i = 0; i < XT_SENDERS; i++)
		st.last[i] = -1;
	st.target = bs_thread_create("reactor");
	assert_int_equal(bs_thread_start(st.target), 0);
	assert_int_equal(bs_thread_poll(st.target, 0), -EBUSY);
	for (int i = 0; i < XT_SENDERS; i++) {
		senders[i] = (struct xt_sender){ &st, i };
		pthread_create(&pt[i], NULL, xt_sender_main, &senders[i]);
	}
	for (int i = 0; i < XT_SENDERS; i++)
		pthread_join(pt[i], NULL);
	while (atomic_load(&st.received) < XT_SENDERS * XT_MSGS)
		usleep(1000);
	assert_int_equal(atomic_load(&st.order_errors), 0);
	bs_thread_exit(st.target);
	assert_int_equal(bs_thread_destroy(st.target), 0);
}

/* ---- reactor sleep and wake ---- */

struct wake_ctx {
	atomic_bool ran;
	struct timespec sent;
	long latency_us;
};

static long elapsed_us(const struct timespec *a)
{
	struct timespec b;

	clock_gettime(CLOCK_MONOTONIC, &b);
	return (b.tv_sec - a->tv_sec) * 1000000L + (b.tv_nsec - a->tv_nsec) / 1000;
}

static void wake_fn(void *ctx)
{
	struct wake_ctx *w = ctx;

	w->latency_us = elapsed_us(&w->sent);
	atomic_store(&w->ran, true);
}

static void test_reactor_sleeps_and_wakes(void **state)
{
	struct bs_thread *t = bs_thread_create("sleeper");
	struct wake_ctx w = { 0 };

	assert_int_equal(bs_thread_start(t), 0);
	usleep(200 * 1000); /* long enough to fall asleep */
	clock_gettime(CLOCK_MONOTONIC, &w.sent);
	assert_int_equal(bs_thread_send_msg(t, wake_fn, &w), 0);
	while (!atomic_load(&w.ran))
		usleep(100);
	/* Woken by the eventfd, not by the 100 ms sleep cap. */
	assert_true(w.latency_us < 50 * 1000);
	bs_thread_exit(t);
	assert_int_equal(bs_thread_destroy(t), 0);
}

/* ---- pollers ---- */

struct poll_ctx {
	struct bs_poller *busy;
	struct bs_poller *timed;
	int busy_runs;
	int timed_runs;
	int self_runs;
	struct bs_poller *self;
	struct bs_poller *victim;
	int victim_runs;
};

static int busy_poller(void *arg)
{
	((struct poll_ctx *)arg)->busy_runs++;
	return 0;
}

static int timed_poller(void *arg)
{
	((struct poll_ctx *)arg)->timed_runs++;
	return 1;
}

static int self_unreg_poller(void *arg)
{
	struct poll_ctx *c = arg;

	c->self_runs++;
	bs_poller_unregister(&c->victim); /* another poller, mid-walk */
	bs_poller_unregister(&c->self);	  /* and itself */
	return 1;
}

static int victim_poller(void *arg)
{
	((struct poll_ctx *)arg)->victim_runs++;
	return 0;
}

static void poller_setup_msg(void *arg)
{
	struct poll_ctx *c = arg;

	c->busy = bs_poller_register(busy_poller, c, 0);
	c->self = bs_poller_register(self_unreg_poller, c, 0);
	c->victim = bs_poller_register(victim_poller, c, 0);
	c->timed = bs_poller_register(timed_poller, c, 20000);
	assert_non_null(c->busy);
	assert_non_null(c->self);
	assert_non_null(c->victim);
	assert_non_null(c->timed);
}

static void poller_teardown_msg(void *arg)
{
	struct poll_ctx *c = arg;

	bs_poller_unregister(&c->busy);
	bs_poller_unregister(&c->timed);
	assert_null(c->busy);
}

static void test_pollers(void **state)
{
	struct bs_thread *t = bs_thread_create("pollers");
	struct poll_ctx c = { 0 };
	struct timespec start;

	bs_thread_send_msg(t, poller_setup_msg, &c);
	bs_thread_poll(t, 0);
	assert_int_equal(c.self_runs, 1);
	assert_int_equal(c.victim_runs, 0); /* unregistered before its turn */
	assert_null(c.self);
	assert_null(c.victim);
	clock_gettime(CLOCK_MONOTONIC, &start);
	while (elapsed_us(&start) < 110 * 1000)
		bs_thread_poll(t, 0);
	assert_int_equal(c.self_runs, 1);
	assert_true(c.busy_runs > 100);
	/* 20 ms period over ~110 ms: 5 runs, allow scheduling slack. */
	assert_in_range(c.timed_runs, 3, 6);
	/* A thread with pollers does not exit until they are unregistered. */
	bs_thread_exit(t);
	for (int i = 0; i < 100; i++)
		bs_thread_poll(t, 0);
	assert_false(bs_thread_is_exited(t));
	assert_int_equal(bs_thread_destroy(t), -EBUSY);
	th_run_on(t, poller_teardown_msg, &c);
	th_thread_finish(t);
}

/* ---- IO channels ---- */

struct chan_dev {
	atomic_int creates;
	atomic_int destroys;
	int fail_create;
};

struct chan_ctx {
	uint64_t magic;
	struct bs_thread *owner;
};

static int chan_create(void *io_device, void *ctx)
{
	struct chan_dev *d = io_device;
	struct chan_ctx *c = ctx;

	if (d->fail_create)
		return -EIO;
	assert_int_equal(c->magic, 0); /* zeroed */
	c->magic = 0xC4A7;
	c->owner = bs_thread_get_current();
	atomic_fetch_add(&d->creates, 1);
	return 0;
}

static void chan_destroy(void *io_device, void *ctx)
{
	struct chan_dev *d = io_device;
	struct chan_ctx *c = ctx;

	assert_int_equal(c->magic, 0xC4A7);
	assert_ptr_equal(c->owner, bs_thread_get_current());
	atomic_fetch_add(&d->destroys, 1);
}

/* Per-test state for the channel cases; steps run on the thread. */
struct chan_test {
	struct chan_dev dev;
	struct bs_io_channel *ch[2];
	int err;
	struct th_cpl unreg;
	struct th_cpl iter;
	atomic_int visits;
};

static void step_get_two(void *arg)
{
	struct chan_test *c = arg;

	c->ch[0] = bs_get_io_channel(&c->dev);
	c->ch[1] = bs_get_io_channel(&c->dev);
	assert_non_null(c->ch[0]);
	assert_ptr_equal(c->ch[0], c->ch[1]);
	assert_ptr_equal(bs_io_channel_get_io_device(c->ch[0]), &c->dev);
	assert_ptr_equal(bs_io_channel_get_thread(c->ch[0]), bs_thread_get_current());
	assert_ptr_equal(bs_io_channel_from_ctx(bs_io_channel_get_ctx(c->ch[0])), c->ch[0]);
}

static void step_put_both_then_retake(void *arg)
{
	struct chan_test *c = arg;

	bs_put_io_channel(c->ch[0]);
	bs_put_io_channel(c->ch[1]);
	assert_int_equal(atomic_load(&c->dev.destroys), 0); /* deferred */
	/* Re-taking before the deferred destroy runs revives the channel. */
	c->ch[0] = bs_get_io_channel(&c->dev);
}

static void step_put0(void *arg)
{
	bs_put_io_channel(((struct chan_test *)arg)->ch[0]);
}

static void step_put1(void *arg)
{
	bs_put_io_channel(((struct chan_test *)arg)->ch[1]);
}

static void step_get0(void *arg)
{
	struct chan_test *c = arg;

	c->ch[0] = bs_get_io_channel(&c->dev);
	c->err = c->ch[0] ? 0 : errno;
}

static void step_get1(void *arg)
{
	struct chan_test *c = arg;

	c->ch[1] = bs_get_io_channel(&c->dev);
	c->err = c->ch[1] ? 0 : errno;
}

static void step_unregister(void *arg)
{
	struct chan_test *c = arg;

	bs_io_device_unregister(&c->dev, th_cpl_fn, &c->unreg);
	assert_false(c->unreg.done); /* never inline */
}

static void test_channel_refcount_and_deferred_destroy(void **state)
{
	struct bs_thread *t = bs_thread_create("ch");
	struct chan_test c = { 0 };

	assert_int_equal(bs_io_device_register(&c.dev, chan_create, chan_destroy,
					       sizeof(struct chan_ctx), "dev"), 0);
	assert_int_equal(bs_io_device_register(&c.dev, chan_create, chan_destroy, 8, "dup"),
			 -EEXIST);
	assert_int_equal(bs_io_device_register(NULL, chan_create, chan_destroy, 8, "x"), -EINVAL);
	th_run_on(t, step_get_two, &c);
	assert_int_equal(c.dev.creates, 1);
	th_run_on(t, step_put_both_then_retake, &c);
	th_poll_idle(t);
	assert_int_equal(c.dev.destroys, 0);
	assert_int_equal(c.dev.creates, 1);
	th_run_on(t, step_put0, &c);
	th_poll_idle(t);
	assert_int_equal(c.dev.destroys, 1);
	/* Unregister with no channels completes on a later poll. */
	th_run_on(t, step_unregister, &c);
	assert_int_equal(th_wait(t, &c.unreg), 0);
	th_run_on(t, step_get0, &c);
	assert_null(c.ch[0]);
	assert_int_equal(c.err, ENODEV);
	th_thread_finish(t);
}

static void test_channel_create_failure(void **state)
{
	struct bs_thread *t = bs_thread_create("ch");
	struct chan_test c = { .dev.fail_create = 1 };

	assert_int_equal(bs_io_device_register(&c.dev, chan_create, chan_destroy, 16, "bad"), 0);
	th_run_on(t, step_get0, &c);
	assert_null(c.ch[0]);
	assert_int_equal(c.err, EIO);
	th_run_on(t, step_unregister, &c);
	assert_int_equal(th_wait(t, &c.unreg), 0);
	th_thread_finish(t);
}

static void visit_fn(struct bs_channel_iter *it, struct bs_io_channel *ch, void *ctx)
{
	struct chan_test *c = ctx;

	assert_ptr_equal(bs_io_channel_get_thread(ch), bs_thread_get_current());
	atomic_fetch_add(&c->visits, 1);
	bs_for_each_channel_continue(it, 0);
}

static void iter_cpl(void *cb_arg, int err)
{
	th_cpl_fn(&((struct chan_test *)cb_arg)->iter, err);
}

static void step_iterate(void *arg)
{
	struct chan_test *c = arg;

	assert_int_equal(bs_for_each_channel(&c->dev, visit_fn, c, iter_cpl), 0);
}

static void poll_both(struct bs_thread *a, struct bs_thread *b)
{
	for (int i = 0; i < 20; i++) {
		bs_thread_poll(a, 0);
		bs_thread_poll(b, 0);
	}
}

/* Two threads hold channels; iteration visits both; unregister waits for both. */
static void test_channels_on_two_threads(void **state)
{
	struct bs_thread *a = bs_thread_create("a"), *b = bs_thread_create("b");
	struct chan_test c = { 0 };

	assert_int_equal(bs_io_device_register(&c.dev, chan_create, chan_destroy, 16, "two"), 0);
	th_run_on(a, step_get0, &c);
	th_run_on(b, step_get1, &c);
	assert_int_equal(c.dev.creates, 2);
	assert_ptr_not_equal(c.ch[0], c.ch[1]);
	bs_thread_send_msg(a, step_iterate, &c);
	while (!c.iter.done)
		poll_both(a, b);
	assert_int_equal(c.iter.err, 0);
	assert_int_equal(atomic_load(&c.visits), 2);
	bs_thread_send_msg(a, step_unregister, &c);
	poll_both(a, b);
	assert_false(c.unreg.done); /* two channels still open */
	bs_thread_send_msg(a, step_put0, &c);
	poll_both(a, b);
	assert_false(c.unreg.done);
	bs_thread_send_msg(b, step_put1, &c);
	while (!c.unreg.done)
		poll_both(a, b);
	assert_int_equal(c.unreg.err, 0);
	assert_int_equal(c.dev.destroys, 2);
	th_thread_finish(a);
	th_thread_finish(b);
}

/* ---- orderly shutdown with work in flight ---- */

struct inflight {
	struct chan_test c;
	struct bs_poller *poller;
	int ticks;
	atomic_bool work_done;
	atomic_bool exited_early;
	struct bs_thread *t;
};

/* A "device" that finishes its work after 5 ticks, then releases everything. */
static int inflight_poller(void *arg)
{
	struct inflight *f = arg;

	if (bs_thread_is_exited(f->t))
		atomic_store(&f->exited_early, true);
	if (++f->ticks < 5)
		return 0;
	bs_put_io_channel(f->c.ch[0]);
	bs_poller_unregister(&f->poller);
	bs_thread_release();
	atomic_store(&f->work_done, true);
	return 1;
}

static void inflight_start(void *arg)
{
	struct inflight *f = arg;

	f->c.ch[0] = bs_get_io_channel(&f->c.dev);
	f->poller = bs_poller_register(inflight_poller, f, 10000);
	bs_thread_hold(); /* keep spinning while "IO" is in flight */
}

static void test_shutdown_with_work_in_flight(void **state)
{
	struct bs_thread *t = bs_thread_create("busy");
	struct bs_thread *u = bs_thread_create("unreg");
	struct inflight f = { .t = t };

	assert_int_equal(bs_io_device_register(&f.c.dev, chan_create, chan_destroy, 16, "fl"), 0);
	assert_int_equal(bs_thread_start(t), 0);
	assert_int_equal(bs_thread_send_msg(t, inflight_start, &f), 0);
	usleep(5000);
	bs_thread_exit(t); /* asked to exit while the work is in flight */
	assert_false(atomic_load(&f.work_done));
	/* destroy joins the reactor: it returns only after the work finished. */
	assert_int_equal(bs_thread_destroy(t), 0);
	assert_true(atomic_load(&f.work_done));
	assert_false(atomic_load(&f.exited_early));
	assert_int_equal(f.c.dev.creates, 1);
	assert_int_equal(f.c.dev.destroys, 1);
	th_run_on(u, step_unregister, &f.c);
	assert_int_equal(th_wait(u, &f.c.unreg), 0);
	th_thread_finish(u);
}

/* Messages to an exited thread are refused, not lost silently. */
static void noop(void *arg)
{
}

static void test_send_to_exited(void **state)
{
	struct bs_thread *t = bs_thread_create("gone");

	bs_thread_exit(t);
	bs_thread_poll(t, 0);
	assert_true(bs_thread_is_exited(t));
	assert_int_equal(bs_thread_send_msg(t, noop, NULL), -ESHUTDOWN);
	assert_int_equal(bs_thread_destroy(t), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_msg_order_and_never_inline),
		cmocka_unit_test(test_defer),
		cmocka_unit_test(test_current_and_misuse),
		cmocka_unit_test(test_bind),
		cmocka_unit_test(test_cross_thread_msgs),
		cmocka_unit_test(test_reactor_sleeps_and_wakes),
		cmocka_unit_test(test_pollers),
		cmocka_unit_test(test_channel_refcount_and_deferred_destroy),
		cmocka_unit_test(test_channel_create_failure),
		cmocka_unit_test(test_channels_on_two_threads),
		cmocka_unit_test(test_shutdown_with_work_in_flight),
		cmocka_unit_test(test_send_to_exited),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
