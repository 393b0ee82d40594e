/*
 * Shared helpers for the cmocka suites: driving a bs_thread from the test's
 * own pthread until a condition holds, completion capture without globals,
 * temp paths, and a deterministic PRNG.
 */
#ifndef BS_TEST_HELPERS_H
#define BS_TEST_HELPERS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <blobstore/thread.h>

/** One completion: `done` becomes true and `err` holds its status. */
struct th_cpl {
	bool done;
	int err;
	int calls;
};

/** bs_cpl_fn that records into a struct th_cpl. */
void th_cpl_fn(void *cb_arg, int err);

/**
 * Poll @p t until *@p flag is true or @p max_iters polls ran.
 * @return true if the flag became true.
 */
bool th_poll_until(struct bs_thread *t, const bool *flag, uint64_t max_iters);

/** Poll @p t until idle (a poll returns 0 work) n times in a row. */
void th_poll_idle(struct bs_thread *t);

/** Wait (poll @p t) for @p c to complete; fail the test if it never does. */
int th_wait(struct bs_thread *t, struct th_cpl *c);

/** Ask @p t to exit, poll until it has, destroy it. */
void th_thread_finish(struct bs_thread *t);

/**
 * Run @p fn(@p arg) on @p t (as a message) and poll @p t until it has run:
 * a synchronous way for a test to act "on" a polled thread.
 */
void th_run_on(struct bs_thread *t, bs_msg_fn fn, void *arg);

/** Directory for test files: $BS_TEST_DIR or /tmp. */
const char *th_test_dir(void);

/** splitmix64 step: deterministic PRNG. */
uint64_t th_rand(uint64_t *state);

/** Fill @p buf with bytes derived from @p seed. */
void th_fill(void *buf, size_t len, uint64_t seed);

#endif /* BS_TEST_HELPERS_H */
