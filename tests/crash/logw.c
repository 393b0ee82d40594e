/*
 * The writes of a recorded log (crash-testing.md 3.2 definitions): each
 * write, unmap or write_zeroes with its issue and completion events, and
 * the completion event of the first flush issued after it completed (the
 * point from which it is durable), NONE while it is not.
 */
#include <stdlib.h>

#include "crash.h"

static uint64_t find_issue(const struct rdev_event *ev, uint64_t j)
{
	for (uint64_t i = j; i-- > 0;)
		if (ev[i].io_id == ev[j].io_id && ev[i].phase == RP_ISSUE)
			return i;
	return NONE;
}

static void flush_done(struct logw *ws, int nws, uint64_t fissue, uint64_t j)
{
	for (int k = 0; k < nws; k++)
		if (ws[k].cpl != NONE && ws[k].cpl < fissue && ws[k].dur == NONE)
			ws[k].dur = j;
}

static void write_done(struct logw *ws, int nws, uint32_t io_id, uint64_t i)
{
	for (int k = nws; k-- > 0;) {
		if (ws[k].io_id == io_id && ws[k].cpl == NONE) {
			ws[k].cpl = i;
			return;
		}
	}
}

struct logw *log_writes(const struct rdev *r, int *nws)
{
	uint64_t n;
	const struct rdev_event *ev = rdev_events(r, &n);
	struct logw *ws = calloc(n / 2 + 1, sizeof(*ws));

	*nws = 0;
	if (ws == NULL)
		abort();
	for (uint64_t i = 0; i < n; i++) {
		const struct rdev_event *e = &ev[i];
		bool wr = e->kind == RK_WRITE || e->kind == RK_UNMAP || e->kind == RK_ZEROES;

		if (wr && e->phase == RP_ISSUE && e->nblocks > 0 && e->status == 0)
			ws[(*nws)++] = (struct logw){ i, NONE, NONE, e->lba, e->nblocks, e->io_id,
						      rdev_payload(r, e) };
		else if (wr && e->phase == RP_COMPLETE)
			write_done(ws, *nws, e->io_id, i);
		else if (e->kind == RK_FLUSH && e->phase == RP_COMPLETE && e->status == 0)
			flush_done(ws, *nws, find_issue(ev, i), i);
	}
	return ws;
}
