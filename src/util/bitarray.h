/*
 * Fixed-size bit arrays with word-at-a-time search, for allocation masks
 * (clusters, metadata pages, blob ids). Bits past `nbits` in the last word
 * are kept clear, so whole-word operations never see phantom bits.
 */
#ifndef BS_UTIL_BITARRAY_H
#define BS_UTIL_BITARRAY_H

#include <stdbool.h>
#include <stdint.h>

#define BITARRAY_NONE UINT64_MAX

struct bitarray {
	uint64_t nbits;
	uint64_t *words;
};

/** Allocate @p nbits clear bits. 0 or -ENOMEM. */
int bitarray_init(struct bitarray *ba, uint64_t nbits);
void bitarray_free(struct bitarray *ba);
/** Grow or shrink, keeping existing bits (new bits clear). 0 or -ENOMEM. */
int bitarray_resize(struct bitarray *ba, uint64_t nbits);

static inline bool bitarray_get(const struct bitarray *ba, uint64_t i)
{
	return (ba->words[i >> 6] >> (i & 63)) & 1;
}

static inline void bitarray_set(struct bitarray *ba, uint64_t i)
{
	ba->words[i >> 6] |= 1ull << (i & 63);
}

static inline void bitarray_clear(struct bitarray *ba, uint64_t i)
{
	ba->words[i >> 6] &= ~(1ull << (i & 63));
}

/** First clear bit at or after @p from, or BITARRAY_NONE. */
uint64_t bitarray_find_first_clear(const struct bitarray *ba, uint64_t from);
/** First set bit at or after @p from, or BITARRAY_NONE. */
uint64_t bitarray_find_first_set(const struct bitarray *ba, uint64_t from);
/** Number of set bits. */
uint64_t bitarray_count_set(const struct bitarray *ba);
/** Set or clear the range [@p from, @p from + @p n). */
void bitarray_set_range(struct bitarray *ba, uint64_t from, uint64_t n);
void bitarray_clear_range(struct bitarray *ba, uint64_t from, uint64_t n);
void bitarray_clear_all(struct bitarray *ba);
/** True if both arrays have the same size and bits. */
bool bitarray_equal(const struct bitarray *a, const struct bitarray *b);

#endif /* BS_UTIL_BITARRAY_H */
