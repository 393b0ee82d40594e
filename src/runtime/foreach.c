/*
 * bs_for_each_channel(): visit every thread that holds a channel for an IO
 * device, one thread at a time, hopping by messages along the global thread
 * list; then report the first error to the thread that started the walk.
 * Threads must not be destroyed while a walk may visit them.
 */
#include <errno.h>
#include <stdlib.h>

#include "runtime/runtime_int.h"
#include "util/assert_int.h"
#include "util/log_int.h"

struct bs_channel_iter {
	void *io_device;
	bs_channel_fn fn;
	void *ctx;
	bs_cpl_fn cpl;
	struct bs_thread *orig;
	struct bs_thread *cur;
	int err;
};

static void iter_on_thread(void *arg);

static void iter_finish(void *arg)
{
	struct bs_channel_iter *it = arg;

	it->cpl(it->ctx, it->err);
	free(it);
}

/* Send the walk to the thread after it->cur, or finish on the origin. */
static void iter_advance(struct bs_channel_iter *it)
{
	for (;;) {
		pthread_mutex_lock(&g_rt_lock);
		it->cur = it->cur ? TAILQ_NEXT(it->cur, global_link) : TAILQ_FIRST(&g_threads);
		pthread_mutex_unlock(&g_rt_lock);
		if (it->cur == NULL)
			break;
		if (bs_thread_send_msg(it->cur, iter_on_thread, it) == 0)
			return;
		/* An exited thread holds no channels: skip it. */
	}
	if (bs_thread_send_msg(it->orig, iter_finish, it) != 0) {
		LOG_ERR("for_each_channel: origin thread gone; completion lost");
		free(it);
	}
}

static void iter_on_thread(void *arg)
{
	struct bs_channel_iter *it = arg;
	struct bs_thread *t = bs_thread_get_current();
	struct bs_io_channel *ch;

	TAILQ_FOREACH(ch, &t->channels, link) {
		if (bs_io_channel_get_io_device(ch) == it->io_device && ch->ref > 0) {
			it->fn(it, ch, it->ctx);
			return;
		}
	}
	iter_advance(it);
}

int bs_for_each_channel(void *io_device, bs_channel_fn fn, void *ctx, bs_cpl_fn cpl)
{
	struct bs_channel_iter *it = calloc(1, sizeof(*it));

	assert(bs_thread_get_current() != NULL);
	if (it == NULL)
		return -ENOMEM;
	it->io_device = io_device;
	it->fn = fn;
	it->ctx = ctx;
	it->cpl = cpl;
	it->orig = bs_thread_get_current();
	iter_advance(it);
	return 0;
}

void bs_for_each_channel_continue(struct bs_channel_iter *it, int err)
{
	if (err != 0) {
		if (it->err == 0)
			it->err = err;
		it->cur = NULL;
		if (bs_thread_send_msg(it->orig, iter_finish, it) != 0)
			free(it);
		return;
	}
	iter_advance(it);
}
