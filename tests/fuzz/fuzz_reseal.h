/*
 * Structure-aware resealing of a store image for the loader fuzzer:
 * recompute CRC-32C of metadata pages bottom-up (extent, xattr and mask
 * pages, index pages level by level fixing their children's CRCs in the
 * references, then roots and both super copies).
 */
#ifndef BS_FUZZ_RESEAL_H
#define BS_FUZZ_RESEAL_H

#include <stdbool.h>
#include <stdint.h>

struct fz_reseal_opts {
	bool faithful;		/* reseal only pages (and refs) that were valid */
	bool restamp;		/* set every page's store id to @store_id first */
	uint64_t store_id;
};

/** Reseal the first @p npages metadata pages of @p img. */
void fz_reseal(uint8_t *img, uint64_t npages, const struct fz_reseal_opts *o);

/** Seal both super copies (after editing them), if they carry the magic. */
void fz_reseal_supers(uint8_t *img);

#endif /* BS_FUZZ_RESEAL_H */
