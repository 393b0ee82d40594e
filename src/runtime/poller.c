/*
 * Pollers: functions a thread runs on every iteration (busy pollers) or at
 * most once per period (timed pollers).
 *
 * Unregistering only marks a poller dead; it is unlinked and freed by a
 * sweep after the poller list has been walked, so a poller may unregister
 * itself or any other poller of its thread from inside its body.
 */
#include <errno.h>
#include <stdlib.h>

#include "runtime/runtime_int.h"
#include "util/assert_int.h"

struct bs_poller *bs_poller_register(bs_poller_fn fn, void *arg, uint64_t period_us)
{
	struct bs_thread *t = bs_thread_get_current();
	struct bs_poller *p;

	if (t == NULL) {
		errno = EPERM;
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	p->fn = fn;
	p->arg = arg;
	p->period_ns = period_us * 1000ull;
	p->next_run_ns = rt_now_ns() + p->period_ns;
	p->state = RT_POLLER_ACTIVE;
	p->thread = t;
	TAILQ_INSERT_TAIL(&t->pollers, p, link);
	t->npollers++;
	return p;
}

void bs_poller_unregister(struct bs_poller **pp)
{
	struct bs_poller *p = *pp;
	struct bs_thread *t;

	if (p == NULL)
		return;
	*pp = NULL;
	t = p->thread;
	assert(t == bs_thread_get_current());
	assert(p->state == RT_POLLER_ACTIVE);
	p->state = RT_POLLER_DEAD;
	t->npollers--;
	t->has_dead_pollers = true;
	if (!t->in_pollers)
		rt_sweep_pollers(t);
}

/* Unlink and free dead pollers. Never called while the list is walked. */
void rt_sweep_pollers(struct bs_thread *t)
{
	struct bs_poller *p, *next;

	if (!t->has_dead_pollers)
		return;
	for (p = TAILQ_FIRST(&t->pollers); p != NULL; p = next) {
		next = TAILQ_NEXT(p, link);
		if (p->state == RT_POLLER_DEAD) {
			TAILQ_REMOVE(&t->pollers, p, link);
			free(p);
		}
	}
	t->has_dead_pollers = false;
}

/* Run every due poller once; return the work they reported. */
int rt_run_pollers(struct bs_thread *t, uint64_t now)
{
	struct bs_poller *p;
	int work = 0;

	t->in_pollers = true;
	TAILQ_FOREACH(p, &t->pollers, link) {
		int rc;

		if (p->state != RT_POLLER_ACTIVE)
			continue;
		if (p->period_ns != 0) {
			if (now < p->next_run_ns)
				continue;
			p->next_run_ns = now + p->period_ns;
		}
		rc = p->fn(p->arg);
		if (rc > 0)
			work += rc;
	}
	t->in_pollers = false;
	rt_sweep_pollers(t);
	return work;
}

/*
 * Nanoseconds until the next timed poller is due (UINT64_MAX if none).
 * *busy is set when a busy poller exists.
 */
uint64_t rt_next_timer_ns(struct bs_thread *t, uint64_t now, bool *busy)
{
	uint64_t best = UINT64_MAX;
	struct bs_poller *p;

	TAILQ_FOREACH(p, &t->pollers, link) {
		if (p->state != RT_POLLER_ACTIVE)
			continue;
		if (p->period_ns == 0) {
			*busy = true;
			continue;
		}
		if (p->next_run_ns <= now)
			return 0;
		if (p->next_run_ns - now < best)
			best = p->next_run_ns - now;
	}
	return best;
}
