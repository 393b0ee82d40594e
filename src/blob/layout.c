/*
 * Store geometry: where the super copies, masks, root slots and page pool
 * go for a given device and options, and the in-memory allocation masks.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "blob/store_int.h"
#include "util/assert_int.h"
#include "util/log_int.h"

#define LAYOUT_MIN_CLUSTER 4096u
#define LAYOUT_MAX_CLUSTER (1u << 30)

static uint64_t div_up(uint64_t a, uint64_t b)
{
	return (a + b - 1) / b;
}

uint64_t page_to_lba(const struct bs_store *bs, uint64_t page_no)
{
	return page_no * bs->blocks_per_page;
}

/* Place the masks back to back from mask_start. */
static void layout_masks(struct bs_store *bs)
{
	uint64_t at = bs->mask_start;

	for (int k = 0; k < MD_MASK_NKINDS; k++) {
		bs->mask_kind_start[k] = at;
		bs->mask_kind_pages[k] = mask_kind_pages(bs, k);
		at += bs->mask_kind_pages[k];
	}
	bs->mask_pages = at - bs->mask_start;
}

/* Default pool: twice the extent and index pages a fully allocated device
 * needs (shadow paging keeps old and new copies), plus xattr headroom. */
static uint64_t layout_default_pool(uint64_t total_clusters, uint64_t max_blobs)
{
	uint64_t leaves = div_up(total_clusters, MD_EXTENTS_PER_PAGE);
	uint64_t index = div_up(leaves, MD_REFS_PER_INDEX) * 2;

	return 2 * (leaves + index) + max_blobs / 4 + 256;
}

static int layout_check_opts(const struct bs_dev *dev, const struct bs_opts *opts)
{
	if (dev->block_len > MD_PAGE_SIZE || MD_PAGE_SIZE % dev->block_len != 0) {
		LOG_ERR("init: unsupported device block size %u (must divide 4096)", dev->block_len);
		return -EINVAL;
	}
	if (!BS_IS_POW2(opts->cluster_size) || opts->cluster_size < LAYOUT_MIN_CLUSTER ||
	    opts->cluster_size > LAYOUT_MAX_CLUSTER) {
		LOG_ERR("init: cluster size %u must be a power of two from 4 KiB to 1 GiB",
			opts->cluster_size);
		return -EINVAL;
	}
	if (opts->max_channel_ops == 0 || opts->clear_method > BS_CLEAR_NONE) {
		LOG_ERR("init: bad max_channel_ops or clear_method");
		return -EINVAL;
	}
	return 0;
}

int layout_compute(struct bs_store *bs, const struct bs_dev *dev, const struct bs_opts *opts)
{
	uint64_t md_pages;
	int rc = layout_check_opts(dev, opts);

	if (rc != 0)
		return rc;
	bs->block_len = dev->block_len;
	bs->blocks_per_page = MD_PAGE_SIZE / dev->block_len;
	bs->cluster_size = opts->cluster_size;
	bs->blocks_per_cluster = opts->cluster_size / dev->block_len;
	bs->dev_size = dev->block_count * dev->block_len;
	bs->total_clusters = bs->dev_size / opts->cluster_size;
	if (bs->total_clusters > UINT32_MAX)
		bs->total_clusters = UINT32_MAX; /* cluster numbers are 32-bit */
	bs->max_blobs = opts->max_blobs ? opts->max_blobs : BS_MAX(64, bs->total_clusters / 8);
	if (bs->max_blobs > (1ull << 31)) {
		LOG_ERR("init: max_blobs %" PRIu64 " too large", bs->max_blobs);
		return -EINVAL;
	}
	bs->pool_pages = opts->md_pool_pages ? opts->md_pool_pages :
			 layout_default_pool(bs->total_clusters, bs->max_blobs);
	bs->mask_start = 2;
	layout_masks(bs);
	bs->root_start = bs->mask_start + bs->mask_pages;
	bs->pool_start = bs->root_start + 2 * bs->max_blobs;
	md_pages = bs->pool_start + bs->pool_pages;
	bs->md_clusters = div_up(md_pages * MD_PAGE_SIZE, opts->cluster_size);
	if (bs->pool_pages > UINT32_MAX || bs->md_clusters >= bs->total_clusters) {
		LOG_ERR("init: device of %" PRIu64 " bytes too small: metadata needs %" PRIu64
			" clusters of %" PRIu64, bs->dev_size, bs->md_clusters, bs->total_clusters);
		return -ENOSPC;
	}
	memcpy(bs->bstype, opts->bstype, sizeof(bs->bstype));
	return 0;
}

/* Adopt a checked super block's geometry. -EILSEQ if its mask region is
 * not the size this geometry needs (unload would write past it). */
int layout_from_super(struct bs_store *bs, const struct md_super *sb)
{
	bs->block_len = sb->block_len;
	bs->blocks_per_page = MD_PAGE_SIZE / sb->block_len;
	bs->cluster_size = sb->cluster_size;
	bs->blocks_per_cluster = sb->cluster_size / sb->block_len;
	bs->dev_size = sb->dev_size;
	bs->total_clusters = sb->total_clusters;
	bs->md_clusters = sb->md_clusters;
	bs->max_blobs = sb->max_blobs;
	bs->pool_pages = sb->pool_pages;
	bs->mask_start = sb->mask_start;
	layout_masks(bs);
	bs->root_start = sb->root_start;
	bs->pool_start = sb->pool_start;
	bs->store_id = sb->hdr.store_id;
	memcpy(bs->bstype, sb->bstype, sizeof(bs->bstype));
	memcpy(bs->uuid, sb->uuid, sizeof(bs->uuid));
	bs->features_incompat = sb->features_incompat;
	bs->features_ro_compat = sb->features_ro_compat;
	bs->features_compat = sb->features_compat;
	bs->super_blob = sb->super_blob;
	if (bs->mask_pages != sb->mask_pages) {
		LOG_ERR("load: super block says %" PRIu64 " mask pages, the geometry needs %" PRIu64,
			sb->mask_pages, bs->mask_pages);
		return -EILSEQ;
	}
	return 0;
}

uint64_t store_max_blob_clusters(const struct bs_store *bs)
{
	return bs->total_clusters * bs->cluster_size / sizeof(uint32_t);
}

int store_alloc_masks(struct bs_store *bs)
{
	if (bitarray_init(&bs->clusters_used, bs->total_clusters) != 0 ||
	    bitarray_init(&bs->zeroed, bs->total_clusters) != 0 ||
	    bitarray_init(&bs->pool_used, bs->pool_pages) != 0 ||
	    bitarray_init(&bs->slots_used, bs->max_blobs) != 0 ||
	    bitarray_init(&bs->slots_corrupt, bs->max_blobs) != 0 ||
	    bitarray_init(&bs->slots_hidden, bs->max_blobs) != 0)
		return -ENOMEM;
	bs->slot_inc = calloc(bs->max_blobs, sizeof(uint32_t));
	bs->slot_parent = calloc(bs->max_blobs, sizeof(uint64_t));
	return bs->slot_inc && bs->slot_parent ? 0 : -ENOMEM;
}

void store_free(struct bs_store *bs)
{
	struct bs_blob *b;

	if (bs == NULL)
		return;
	while ((b = TAILQ_FIRST(&bs->blobs)) != NULL) {
		TAILQ_REMOVE(&bs->blobs, b, link);
		blob_destroy(b);
	}
	bitarray_free(&bs->clusters_used);
	bitarray_free(&bs->zeroed);
	bitarray_free(&bs->pool_used);
	bitarray_free(&bs->slots_used);
	bitarray_free(&bs->slots_corrupt);
	bitarray_free(&bs->slots_hidden);
	free(bs->slot_inc);
	free(bs->slot_parent);
	free(bs);
}
