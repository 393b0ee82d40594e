/*
 * The one bs_thread blobcli drives. The store's metadata thread is this
 * bs_thread; the process's pthread runs it with bs_thread_poll() only while
 * a call is in flight (rt_run), so nothing spins while the shell waits for
 * a line.
 */
#include <errno.h>
#include <sched.h>

#include "cli.h"

volatile sig_atomic_t cli_interrupted;

/* Only this pthread ever drives the thread: bind it (deferred io_uring rings). */
int rt_start(struct cli *c)
{
	int rc;

	c->thread = bs_thread_create("blobcli");
	if (c->thread == NULL)
		return -errno;
	rc = bs_thread_bind(c->thread);
	if (rc != 0)
		rt_stop(c);	/* asks it to exit and frees it */
	return rc;
}

/* Ask the thread to exit and poll until it has (channels all put). */
void rt_stop(struct cli *c)
{
	if (c->thread == NULL)
		return;
	bs_thread_exit(c->thread);
	while (!bs_thread_is_exited(c->thread))
		bs_thread_poll(c->thread, 0);
	bs_thread_destroy(c->thread);
	c->thread = NULL;
}

void rt_done(struct cli_op *op, int err)
{
	op->err = err;
	op->done = true;
}

void rt_cpl(void *cb_arg, int err)
{
	rt_done(cb_arg, err);
}

/* Message body: start the call on the thread. */
static void rt_go(void *ctx)
{
	struct cli_op *op = ctx;

	op->go(op);
}

int rt_run(struct cli *c, struct cli_op *op, cli_go_fn go)
{
	int rc;

	op->go = go;
	op->done = false;
	op->err = 0;
	rc = bs_thread_send_msg(c->thread, rt_go, op);
	if (rc != 0)
		return rc;
	while (!op->done) {
		if (bs_thread_poll(c->thread, 0) == 0)
			sched_yield(); /* idle: IO in flight, let the device work */
	}
	return op->err;
}
