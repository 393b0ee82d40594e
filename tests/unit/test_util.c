/*
 * Utilities suite: CRC-32C known answers and chaining, bit-array searches
 * against a naive model, logger levels and hook.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_helpers.h"
#include "util/assert_int.h"
#include "util/bitarray.h"
#include "util/crc.h"
#include "util/log_int.h"

static void test_crc32c_known_answers(void **state)
{
	static const unsigned char zeros[32];
	unsigned char ones[32];

	memset(ones, 0xff, sizeof(ones));
	/* RFC 3720 B.4 test vectors and the classic check value. */
	assert_int_equal(bs_crc32c("123456789", 9), 0xE3069283u);
	assert_int_equal(bs_crc32c(zeros, 32), 0x8A9136AAu);
	assert_int_equal(bs_crc32c(ones, 32), 0x62A8AB43u);
	assert_int_equal(bs_crc32c("", 0), 0);
}

static void test_crc32c_chaining(void **state)
{
	unsigned char buf[10000];
	uint32_t whole, part;

	th_fill(buf, sizeof(buf), 7);
	whole = bs_crc32c(buf, sizeof(buf));
	part = crc32c_update(BS_CRC32C_SEED, buf, 1234);
	part = crc32c_update(part, buf + 1234, sizeof(buf) - 1234) ^ BS_CRC32C_SEED;
	assert_int_equal(whole, part);
	buf[5000] ^= 1;
	assert_int_not_equal(bs_crc32c(buf, sizeof(buf)), whole);
}

/* Naive reference searches. */
static uint64_t ref_find(const unsigned char *m, uint64_t n, uint64_t from, int want)
{
	for (uint64_t i = from; i < n; i++)
		if (m[i] == want)
			return i;
	return BITARRAY_NONE;
}

static void check_against_model(struct bitarray *ba, const unsigned char *m, uint64_t n,
				uint64_t *rng)
{
	uint64_t count = 0;

	for (uint64_t i = 0; i < n; i++)
		count += m[i];
	assert_int_equal(bitarray_count_set(ba), count);
	for (int k = 0; k < 50; k++) {
		uint64_t from = th_rand(rng) % (n + 2);

		assert_int_equal(bitarray_find_first_clear(ba, from), ref_find(m, n, from, 0));
		assert_int_equal(bitarray_find_first_set(ba, from), ref_find(m, n, from, 1));
	}
}

static void test_bitarray_random_model(void **state)
{
	static const uint64_t sizes[] = { 1, 63, 64, 65, 127, 128, 1000, 4099 };
	uint64_t rng = 42;

	for (size_t s = 0; s < BS_ARRAY_SIZE(sizes); s++) {
		uint64_t n = sizes[s];
		unsigned char *m = calloc(n, 1);
		struct bitarray ba;

		assert_int_equal(bitarray_init(&ba, n), 0);
		for (int round = 0; round < 200; round++) {
			uint64_t a = th_rand(&rng) % n, len = th_rand(&rng) % (n - a + 1);
			int op = (int)(th_rand(&rng) % 4);

			if (op == 0)
				bitarray_set_range(&ba, a, len);
			else if (op == 1)
				bitarray_clear_range(&ba, a, len);
			else if (op == 2)
				bitarray_set(&ba, a);
			else
				bitarray_clear(&ba, a);
			if (op < 2)
				memset(m + a, op == 0, len);
			else
				m[a] = op == 2;
			for (uint64_t i = 0; i < n; i++)
				assert_int_equal(bitarray_get(&ba, i), m[i]);
			check_against_model(&ba, m, n, &rng);
		}
		bitarray_free(&ba);
		free(m);
	}
}

static void test_bitarray_full_and_resize(void **state)
{
	struct bitarray a, b;

	assert_int_equal(bitarray_init(&a, 130), 0);
	bitarray_set_range(&a, 0, 130);
	assert_int_equal(bitarray_find_first_clear(&a, 0), BITARRAY_NONE);
	assert_int_equal(bitarray_count_set(&a), 130);
	/* Shrinking drops the tail bits; growing adds clear ones. */
	assert_int_equal(bitarray_resize(&a, 70), 0);
	assert_int_equal(bitarray_count_set(&a), 70);
	assert_int_equal(bitarray_resize(&a, 200), 0);
	assert_int_equal(bitarray_count_set(&a), 70);
	assert_int_equal(bitarray_find_first_clear(&a, 0), 70);
	assert_int_equal(bitarray_init(&b, 200), 0);
	bitarray_set_range(&b, 0, 70);
	assert_true(bitarray_equal(&a, &b));
	bitarray_clear(&b, 3);
	assert_false(bitarray_equal(&a, &b));
	bitarray_clear_all(&a);
	assert_int_equal(bitarray_find_first_set(&a, 0), BITARRAY_NONE);
	bitarray_free(&a);
	bitarray_free(&b);
}

struct log_capture {
	int lines;
	char last[512];
	enum bs_log_level level;
};

static void log_hook(void *arg, enum bs_log_level level, const char *line)
{
	struct log_capture *c = arg;

	c->lines++;
	c->level = level;
	snprintf(c->last, sizeof(c->last), "%s", line);
}

static void test_log_levels_and_hook(void **state)
{
	struct log_capture c = { 0 };
	enum bs_log_level saved = bs_log_get_level();

	bs_log_set_hook(log_hook, &c);
	bs_log_set_level(BS_LOG_WARN);
	LOG_ERR("an error %d", 1);
	LOG_WARN("a warning");
	LOG_INFO("not shown");
	LOG_DEBUG("not shown");
	assert_int_equal(c.lines, 2);
	assert_string_equal(c.last, "a warning");
	assert_int_equal(c.level, BS_LOG_WARN);
	bs_log_set_level(BS_LOG_DEBUG);
	LOG_DEBUG("now shown");
	assert_int_equal(c.lines, 3);
	bs_log_set_level((enum bs_log_level)99); /* clamped */
	assert_int_equal(bs_log_get_level(), BS_LOG_DEBUG);
	bs_log_set_hook(NULL, NULL);
	bs_log_set_level(saved);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c_known_answers),
		cmocka_unit_test(test_crc32c_chaining),
		cmocka_unit_test(test_bitarray_random_model),
		cmocka_unit_test(test_bitarray_full_and_resize),
		cmocka_unit_test(test_log_levels_and_hook),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
