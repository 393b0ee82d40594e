/*
 * Bit arrays: 64-bit words, searches skip full (or empty) words and finish
 * with one count-trailing-zeros.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/assert_int.h"
#include "util/bitarray.h"

static uint64_t nwords(uint64_t nbits)
{
	return (nbits + 63) / 64;
}

int bitarray_init(struct bitarray *ba, uint64_t nbits)
{
	ba->nbits = nbits;
	ba->words = calloc(nwords(nbits) ? nwords(nbits) : 1, sizeof(uint64_t));
	return ba->words ? 0 : -ENOMEM;
}

void bitarray_free(struct bitarray *ba)
{
	free(ba->words);
	ba->words = NULL;
	ba->nbits = 0;
}

/* Clear the bits past nbits in the last word. */
static void trim_tail(struct bitarray *ba)
{
	if (ba->nbits & 63)
		ba->words[ba->nbits >> 6] &= (1ull << (ba->nbits & 63)) - 1;
}

int bitarray_resize(struct bitarray *ba, uint64_t nbits)
{
	uint64_t old = nwords(ba->nbits), new = nwords(nbits);
	uint64_t *w;

	if (new == 0)
		new = 1;
	w = realloc(ba->words, new * sizeof(uint64_t));
	if (w == NULL)
		return -ENOMEM;
	if (new > old)
		memset(w + old, 0, (new - old) * sizeof(uint64_t));
	ba->words = w;
	if (nbits < ba->nbits) {
		ba->nbits = nbits;
		trim_tail(ba);
	}
	ba->nbits = nbits;
	return 0;
}

/* Shared search: @invert = ~0 finds clear bits, 0 finds set bits. */
static uint64_t find_first(const struct bitarray *ba, uint64_t from, uint64_t invert)
{
	uint64_t i, w;

	if (from >= ba->nbits)
		return BITARRAY_NONE;
	i = from >> 6;
	w = (ba->words[i] ^ invert) & (~0ull << (from & 63));
	for (;;) {
		if (w != 0) {
			uint64_t bit = (i << 6) + (uint64_t)__builtin_ctzll(w);

			return bit < ba->nbits ? bit : BITARRAY_NONE;
		}
		if (++i >= nwords(ba->nbits))
			return BITARRAY_NONE;
		w = ba->words[i] ^ invert;
	}
}

uint64_t bitarray_find_first_clear(const struct bitarray *ba, uint64_t from)
{
	return find_first(ba, from, ~0ull);
}

uint64_t bitarray_find_first_set(const struct bitarray *ba, uint64_t from)
{
	return find_first(ba, from, 0);
}

uint64_t bitarray_count_set(const struct bitarray *ba)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < nwords(ba->nbits); i++)
		n += (uint64_t)__builtin_popcountll(ba->words[i]);
	return n;
}

void bitarray_set_range(struct bitarray *ba, uint64_t from, uint64_t n)
{
	assert(from + n <= ba->nbits);
	for (uint64_t i = from; i < from + n; i++) {
		if ((i & 63) == 0 && i + 64 <= from + n) {
			ba->words[i >> 6] = ~0ull;
			i += 63;
			continue;
		}
		bitarray_set(ba, i);
	}
}

void bitarray_clear_range(struct bitarray *ba, uint64_t from, uint64_t n)
{
	assert(from + n <= ba->nbits);
	for (uint64_t i = from; i < from + n; i++) {
		if ((i & 63) == 0 && i + 64 <= from + n) {
			ba->words[i >> 6] = 0;
			i += 63;
			continue;
		}
		bitarray_clear(ba, i);
	}
}

void bitarray_clear_all(struct bitarray *ba)
{
	memset(ba->words, 0, nwords(ba->nbits) * sizeof(uint64_t));
}

bool bitarray_equal(const struct bitarray *a, const struct bitarray *b)
{
	if (a->nbits != b->nbits)
		return false;
	return memcmp(a->words, b->words, nwords(a->nbits) * sizeof(uint64_t)) == 0;
}
