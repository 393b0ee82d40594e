/*
 * IO devices and per-thread IO channels.
 *
 * An IO device is any pointer registered with a channel constructor and
 * destructor. A thread's first bs_get_io_channel() for it builds a channel
 * on that thread; later calls take references. The last put destroys the
 * channel on a later poll (so a put from inside the channel's own callbacks
 * is safe). Unregistering completes once the last channel is gone.
 *
 * The registry and the global thread list share one mutex, taken only when
 * channels are created or destroyed, never for IO.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime_int.h"
#include "util/assert_int.h"
#include "util/log_int.h"

struct rt_io_device {
	TAILQ_ENTRY(rt_io_device) link;
	void *io_device;
	bs_channel_create_fn create_cb;
	bs_channel_destroy_fn destroy_cb;
	uint32_t ctx_size;
	char name[32];
	uint32_t nchannels;
	bool unregistering;
	struct bs_thread *unreg_thread;
	bs_cpl_fn unreg_cb;
	void *unreg_arg;
};

struct rt_unreg_done {
	bs_cpl_fn cb_fn;
	void *cb_arg;
	int err;
};

pthread_mutex_t g_rt_lock = PTHREAD_MUTEX_INITIALIZER;
struct rt_thread_list g_threads = TAILQ_HEAD_INITIALIZER(g_threads);
static TAILQ_HEAD(, rt_io_device) g_devices = TAILQ_HEAD_INITIALIZER(g_devices);

/* Caller holds g_rt_lock. */
static struct rt_io_device *device_find(void *io_device)
{
	struct rt_io_device *d;

	TAILQ_FOREACH(d, &g_devices, link) {
		if (d->io_device == io_device)
			return d;
	}
	return NULL;
}

int bs_io_device_register(void *io_device, bs_channel_create_fn create_cb,
			  bs_channel_destroy_fn destroy_cb, uint32_t ctx_size,
			  const char *name)
{
	struct rt_io_device *d;

	if (io_device == NULL || create_cb == NULL || destroy_cb == NULL)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return -ENOMEM;
	d->io_device = io_device;
	d->create_cb = create_cb;
	d->destroy_cb = destroy_cb;
	d->ctx_size = ctx_size;
	snprintf(d->name, sizeof(d->name), "%s", name ? name : "io_device");
	pthread_mutex_lock(&g_rt_lock);
	if (device_find(io_device) != NULL) {
		pthread_mutex_unlock(&g_rt_lock);
		free(d);
		return -EEXIST;
	}
	TAILQ_INSERT_TAIL(&g_devices, d, link);
	pthread_mutex_unlock(&g_rt_lock);
	return 0;
}

static void unreg_done_msg(void *ctx)
{
	struct rt_unreg_done *done = ctx;

	done->cb_fn(done->cb_arg, done->err);
	free(done);
}

/* Deliver an unregister completion as a message to @t. */
static void unreg_notify(struct bs_thread *t, bs_cpl_fn cb_fn, void *cb_arg, int err)
{
	struct rt_unreg_done *done;

	if (cb_fn == NULL)
		return;
	done = malloc(sizeof(*done));
	if (done != NULL) {
		done->cb_fn = cb_fn;
		done->cb_arg = cb_arg;
		done->err = err;
	}
	if (done == NULL || bs_thread_send_msg(t, unreg_done_msg, done) != 0) {
		/* No memory for a message: there is no other safe way to call back. */
		LOG_ERR("io_device unregister: cannot deliver completion");
		free(done);
	}
}

void bs_io_device_unregister(void *io_device, bs_cpl_fn cb_fn, void *cb_arg)
{
	struct bs_thread *t = bs_thread_get_current();
	struct rt_io_device *d;

	assert(t != NULL);
	pthread_mutex_lock(&g_rt_lock);
	d = device_find(io_device);
	if (d == NULL || d->unregistering) {
		pthread_mutex_unlock(&g_rt_lock);
		unreg_notify(t, cb_fn, cb_arg, -ENOENT);
		return;
	}
	d->unregistering = true;
	d->unreg_thread = t;
	d->unreg_cb = cb_fn;
	d->unreg_arg = cb_arg;
	if (d->nchannels != 0) {
		pthread_mutex_unlock(&g_rt_lock);
		return;
	}
	TAILQ_REMOVE(&g_devices, d, link);
	pthread_mutex_unlock(&g_rt_lock);
	unreg_notify(t, cb_fn, cb_arg, 0);
	free(d);
}

/* Find the current thread's live-or-dying channel for @io_device. */
static struct bs_io_channel *thread_find_channel(struct bs_thread *t, void *io_device)
{
	struct bs_io_channel *ch;

	TAILQ_FOREACH(ch, &t->channels, link) {
		if (ch->dev->io_device == io_device)
			return ch;
	}
	return NULL;
}

/* Reserve a channel slot on the device; NULL with errno if refused. */
static struct rt_io_device *device_claim(void *io_device)
{
	struct rt_io_device *d;

	pthread_mutex_lock(&g_rt_lock);
	d = device_find(io_device);
	if (d == NULL || d->unregistering) {
		pthread_mutex_unlock(&g_rt_lock);
		errno = ENODEV;
		return NULL;
	}
	d->nchannels++;
	pthread_mutex_unlock(&g_rt_lock);
	return d;
}

/* Give back a channel slot; completes a pending unregister on the last. */
static void device_release(struct rt_io_device *d)
{
	bool last;

	pthread_mutex_lock(&g_rt_lock);
	assert(d->nchannels > 0);
	last = --d->nchannels == 0 && d->unregistering;
	if (last)
		TAILQ_REMOVE(&g_devices, d, link);
	pthread_mutex_unlock(&g_rt_lock);
	if (last) {
		unreg_notify(d->unreg_thread, d->unreg_cb, d->unreg_arg, 0);
		free(d);
	}
}

struct bs_io_channel *bs_get_io_channel(void *io_device)
{
	struct bs_thread *t = bs_thread_get_current();
	struct bs_io_channel *ch;
	struct rt_io_device *d;
	int rc;

	if (t == NULL) {
		errno = EPERM;
		return NULL;
	}
	ch = thread_find_channel(t, io_device);
	if (ch != NULL) {
		ch->ref++;
		return ch;
	}
	d = device_claim(io_device);
	if (d == NULL)
		return NULL;
	ch = aligned_alloc(64, (sizeof(*ch) + d->ctx_size + 63) & ~(size_t)63);
	if (ch == NULL) {
		errno = ENOMEM;
		goto out_release_dev;
	}
	memset(ch, 0, sizeof(*ch) + d->ctx_size);
	ch->dev = d;
	ch->thread = t;
	ch->ref = 1;
	rc = d->create_cb(io_device, ch->ctx);
	if (rc != 0) {
		errno = rc < 0 ? -rc : rc;
		goto out_free_ch;
	}
	TAILQ_INSERT_TAIL(&t->channels, ch, link);
	t->nchannels++;
	return ch;

out_free_ch:
	free(ch);
out_release_dev:
	{
		int err = errno;

		device_release(d);
		errno = err;
	}
	return NULL;
}

/* Deferred destruction: skipped if the channel was taken again meanwhile. */
static void channel_destroy_deferred(void *ctx)
{
	struct bs_io_channel *ch = ctx;
	struct bs_thread *t = ch->thread;
	struct rt_io_device *d = ch->dev;

	ch->destroy_pending = false;
	if (ch->ref != 0)
		return;
	TAILQ_REMOVE(&t->channels, ch, link);
	t->nchannels--;
	d->destroy_cb(d->io_device, ch->ctx);
	free(ch);
	device_release(d);
}

void bs_put_io_channel(struct bs_io_channel *ch)
{
	assert(ch->thread == bs_thread_get_current());
	assert(ch->ref > 0);
	if (--ch->ref != 0 || ch->destroy_pending)
		return;
	ch->destroy_pending = true;
	bs_thread_defer(&ch->destroy_node, channel_destroy_deferred, ch);
}

void *bs_io_channel_get_ctx(struct bs_io_channel *ch)
{
	return ch->ctx;
}

struct bs_io_channel *bs_io_channel_from_ctx(void *ctx)
{
	return BS_CONTAINER_OF(ctx, struct bs_io_channel, ctx);
}

struct bs_thread *bs_io_channel_get_thread(struct bs_io_channel *ch)
{
	return ch->thread;
}

void *bs_io_channel_get_io_device(struct bs_io_channel *ch)
{
	return ch->dev->io_device;
}
