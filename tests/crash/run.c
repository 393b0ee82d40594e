/* Synchronous driving of the async API on the harness's own thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blob/store_int.h"
#include "crash.h"

#define RUN_MAX_POLLS 20000000ull

void cpl_fn(void *arg, int err)
{
	struct cpl *c = arg;

	c->done = true;
	c->err = err;
}

int run_wait(struct run *x, struct cpl *c)
{
	uint64_t n = 0;

	while (!c->done) {
		bs_thread_poll(x->t, 0);
		if (++n > RUN_MAX_POLLS) {
			fprintf(stderr, "crashtest: operation hung (watchdog)\n");
			abort();
		}
	}
	return c->err;
}

int run_load(struct run *x)
{
	struct bs_opts o;
	struct cpl c = { 0 };

	bs_opts_init(&o, sizeof(o));
	bs_load(rdev_bs(x->r), &o, &x->bs, cpl_fn, &c);
	if (run_wait(x, &c) != 0)
		x->bs = NULL;
	return c.err;
}

static void run_free_channel(struct run *x)
{
	if (x->ch != NULL) {
		bs_free_channel(x->ch);
		x->ch = NULL;
		while (bs_thread_poll(x->t, 0) > 0)
			;
	}
}

int run_unload(struct run *x)
{
	struct cpl c = { 0 };

	run_free_channel(x);
	bs_unload(x->bs, cpl_fn, &c);
	if (run_wait(x, &c) != -EBUSY)
		x->bs = NULL;
	return c.err;
}

/* What a crash does to the instance: drop it without writing anything. */
void run_abandon(struct run *x)
{
	struct cpl c = { 0 };

	run_free_channel(x);
	for (int i = 0; i < 16 && bs_thread_poll(x->t, 0) > 0; i++)
		;
	if (x->bs != NULL) {
		store_abandon(x->bs, cpl_fn, &c);
		run_wait(x, &c);
	}
	x->bs = NULL;
}

void run_close_dev(struct run *x)
{
	struct cpl c = { 0 };

	bs_dev_close(rdev_bs(x->r), cpl_fn, &c);
	run_wait(x, &c);
}

struct bs_io_channel *run_channel(struct run *x)
{
	if (x->ch == NULL)
		x->ch = bs_alloc_channel(x->bs);
	if (x->ch == NULL) {
		fprintf(stderr, "crashtest: no channel\n");
		abort();
	}
	return x->ch;
}

void *ct_buf(uint64_t bytes)
{
	void *p = aligned_alloc(4096, (bytes + 4095) & ~4095ull);

	if (p == NULL)
		abort();
	memset(p, 0, bytes);
	return p;
}
