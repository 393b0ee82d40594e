/*
 * Intrusive lock-free multi-producer single-consumer queue (the classic
 * "stub node" design): a producer links its node with one atomic exchange
 * of the head and then publishes the back link; the consumer walks from the
 * tail. A producer preempted between those two steps makes the queue look
 * empty for a moment; the consumer then returns NULL and finds the message
 * on a later poll (the producer wakes a sleeping reactor only after it has
 * finished publishing, so no message is ever stranded).
 *
 * FIFO per producer: a producer's nodes are exchanged in program order.
 */
#include <stddef.h>

#include "runtime/runtime_int.h"

void rt_mpsc_init(struct rt_mpsc *q)
{
	atomic_store_explicit(&q->stub.next, NULL, memory_order_relaxed);
	atomic_store_explicit(&q->head, &q->stub, memory_order_relaxed);
	q->tail = &q->stub;
}

void rt_mpsc_push(struct rt_mpsc *q, struct rt_msg *m)
{
	struct rt_msg *prev;

	atomic_store_explicit(&m->next, NULL, memory_order_relaxed);
	prev = atomic_exchange_explicit(&q->head, m, memory_order_acq_rel);
	/* Publish the link: the consumer reads it with acquire. */
	atomic_store_explicit(&prev->next, m, memory_order_release);
}

/*
 * Pop the oldest message, or NULL if the queue is empty or a producer is
 * half-way through a push (retry on a later poll).
 */
struct rt_msg *rt_mpsc_pop(struct rt_mpsc *q)
{
	struct rt_msg *tail = q->tail;
	struct rt_msg *next = atomic_load_explicit(&tail->next, memory_order_acquire);

	if (tail == &q->stub) {
		if (next == NULL)
			return NULL;
		q->tail = next;
		tail = next;
		next = atomic_load_explicit(&next->next, memory_order_acquire);
	}
	if (next != NULL) {
		q->tail = next;
		return tail;
	}
	if (tail != atomic_load_explicit(&q->head, memory_order_acquire))
		return NULL; /* a push is in progress */
	/* tail is the last node: re-insert the stub behind it to detach it. */
	rt_mpsc_push(q, &q->stub);
	next = atomic_load_explicit(&tail->next, memory_order_acquire);
	if (next != NULL) {
		q->tail = next;
		return tail;
	}
	return NULL;
}

/* True if a message may be queued (used before a reactor sleeps). */
bool rt_mpsc_maybe_nonempty(struct rt_mpsc *q)
{
	struct rt_msg *head = atomic_load_explicit(&q->head, memory_order_seq_cst);

	return head != &q->stub || q->tail != &q->stub;
}
