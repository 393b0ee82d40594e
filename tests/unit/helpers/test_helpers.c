/* Shared cmocka test helpers (see test_helpers.h). */
#include <stdlib.h>
#include <string.h>

#include "test_helpers.h"

void th_cpl_fn(void *cb_arg, int err)
{
	struct th_cpl *c = cb_arg;

	c->done = true;
	c->err = err;
	c->calls++;
}

bool th_poll_until(struct bs_thread *t, const bool *flag, uint64_t max_iters)
{
	for (uint64_t i = 0; i < max_iters && !*flag; i++)
		bs_thread_poll(t, 0);
	return *flag;
}

void th_poll_idle(struct bs_thread *t)
{
	int idle = 0;

	while (idle < 3)
		idle = bs_thread_poll(t, 0) == 0 ? idle + 1 : 0;
}

int th_wait(struct bs_thread *t, struct th_cpl *c)
{
	assert_true(th_poll_until(t, &c->done, 100000000ull));
	return c->err;
}

void th_thread_finish(struct bs_thread *t)
{
	bs_thread_exit(t);
	for (int i = 0; i < 10000000 && !bs_thread_is_exited(t); i++)
		bs_thread_poll(t, 0);
	assert_true(bs_thread_is_exited(t));
	assert_int_equal(bs_thread_destroy(t), 0);
}

const char *th_test_dir(void)
{
	const char *d = getenv("BS_TEST_DIR");

	return d && *d ? d : "/tmp";
}

uint64_t th_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void th_fill(void *buf, size_t len, uint64_t seed)
{
	unsigned char *p = buf;
	uint64_t s = seed;

	while (len >= 8) {
		uint64_t v = th_rand(&s);

		memcpy(p, &v, 8);
		p += 8;
		len -= 8;
	}
	while (len--) {
		*p++ = (unsigned char)th_rand(&s);
	}
}

struct th_run {
	bs_msg_fn fn;
	void *arg;
	bool ran;
};

static void th_run_msg(void *ctx)
{
	struct th_run *r = ctx;

	r->fn(r->arg);
	r->ran = true;
}

void th_run_on(struct bs_thread *t, bs_msg_fn fn, void *arg)
{
	struct th_run r = { fn, arg, false };

	assert_int_equal(bs_thread_send_msg(t, th_run_msg, &r), 0);
	assert_true(th_poll_until(t, &r.ran, 100000000ull));
}
