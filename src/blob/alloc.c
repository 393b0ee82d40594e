/*
 * Allocation of data clusters (any thread, lock-free) and of pool pages
 * (metadata thread).
 *
 * Clusters: a claim sets the cluster's bit in clusters_used with an atomic
 * fetch-or; losing a race just moves on to the next clear bit. The search
 * starts at a shared rotating hint so threads spread out. The zeroed bit is
 * taken with an atomic fetch-and so exactly one claimant learns that the
 * cluster is known-zero (D8).
 */
#include <errno.h>
#include <inttypes.h>

#include "blob/store_int.h"
#include "util/assert_int.h"
#include "util/log_int.h"

static bool word_try_claim(uint64_t *word, uint64_t bit)
{
	uint64_t old = __atomic_fetch_or(word, bit, __ATOMIC_ACQ_REL);

	return (old & bit) == 0;
}

/* Scan from @from for a clear bit and claim it; 0 if none in [from, end). */
static uint32_t cluster_scan_claim(struct bs_store *bs, uint64_t from, uint64_t end)
{
	uint64_t *words = bs->clusters_used.words;

	for (uint64_t i = from; i < end;) {
		uint64_t w = __atomic_load_n(&words[i >> 6], __ATOMIC_RELAXED);
		uint64_t free_bits = ~w & (~0ull << (i & 63));

		if (free_bits == 0) {
			i = (i | 63) + 1;
			continue;
		}
		i = (i & ~63ull) + (uint64_t)__builtin_ctzll(free_bits);
		if (i >= end)
			break;
		if (word_try_claim(&words[i >> 6], 1ull << (i & 63)))
			return (uint32_t)i;
	}
	return 0;
}

uint32_t cluster_claim(struct bs_store *bs, bool *zeroed)
{
	uint64_t hint = atomic_load_explicit(&bs->alloc_hint, memory_order_relaxed);
	uint64_t fresh = atomic_load(&bs->free_clusters);
	uint32_t c;
	uint64_t bit, old;

	do {
		if (fresh == 0)
			return 0;
	} while (!atomic_compare_exchange_weak(&bs->free_clusters, &fresh, fresh - 1));
	if (hint < bs->md_clusters || hint >= bs->total_clusters)
		hint = bs->md_clusters;
	c = cluster_scan_claim(bs, hint, bs->total_clusters);
	if (c == 0)
		c = cluster_scan_claim(bs, bs->md_clusters, hint);
	if (c == 0) {
		/* The counter said one was free: a concurrent release is in flight. */
		atomic_fetch_add(&bs->free_clusters, 1);
		return 0;
	}
	atomic_store_explicit(&bs->alloc_hint, (uint64_t)c + 1, memory_order_relaxed);
	bit = 1ull << (c & 63);
	old = __atomic_fetch_and(&bs->zeroed.words[c >> 6], ~bit, __ATOMIC_ACQ_REL);
	*zeroed = (old & bit) != 0;
	return c;
}

/*
 * Freeing what is already free means the allocation state a clean load
 * trusted (D7) disagrees with the metadata (a damaged image whose masks
 * still validate). Do not guess: latch the store read-only (D10); the next
 * load can recover. Only metadata-thread callers can get here (the data
 * path frees only clusters it has just claimed).
 */
static void alloc_double_free(struct bs_store *bs, const char *what, uint64_t idx)
{
	LOG_ERR("store %s: %s %" PRIu64 " is already free: allocation state is inconsistent",
		bs->dev->name, what, idx);
	store_latch_error(bs, -EIO, "freeing"); /* D10: later metadata calls get -EIO */
}

void cluster_release(struct bs_store *bs, uint32_t cluster, bool zeroed)
{
	uint64_t bit = 1ull << (cluster & 63), old;

	assert(cluster >= bs->md_clusters && cluster < bs->total_clusters);
	if (zeroed)
		__atomic_fetch_or(&bs->zeroed.words[cluster >> 6], bit, __ATOMIC_RELEASE);
	old = __atomic_fetch_and(&bs->clusters_used.words[cluster >> 6], ~bit, __ATOMIC_RELEASE);
	if (!(old & bit)) {
		alloc_double_free(bs, "cluster", cluster);
		return;
	}
	atomic_fetch_add(&bs->free_clusters, 1);
}

/* Mark a cluster used while rebuilding state (load, metadata thread). */
void cluster_mark_used(struct bs_store *bs, uint32_t cluster)
{
	if (!bitarray_get(&bs->clusters_used, cluster)) {
		bitarray_set(&bs->clusters_used, cluster);
		atomic_fetch_sub(&bs->free_clusters, 1);
	}
	bitarray_clear(&bs->zeroed, cluster);
}

int pool_page_alloc(void *arg, uint32_t *pool_idx)
{
	struct bs_store *bs = arg;
	uint64_t i = bitarray_find_first_clear(&bs->pool_used, bs->pool_hint);

	if (i == BITARRAY_NONE)
		i = bitarray_find_first_clear(&bs->pool_used, 0);
	if (i == BITARRAY_NONE)
		return -ENOSPC;
	bitarray_set(&bs->pool_used, i);
	bs->pool_hint = i + 1;
	*pool_idx = (uint32_t)i;
	return 0;
}

void pool_page_free(struct bs_store *bs, uint32_t pool_idx)
{
	if (!bitarray_get(&bs->pool_used, pool_idx)) {
		alloc_double_free(bs, "pool page", pool_idx);
		return;
	}
	bitarray_clear(&bs->pool_used, pool_idx);
}
