/*
 * Input format of the loader fuzzer (tests/fuzz/fuzz_bs_load.c), shared
 * with the seed generator (tests/fuzz/mkcorpus.c). docs/reliability.md,
 * "Loader fuzzing", has the prose version.
 *
 *   byte 0       control byte (FZ_C_* below)
 *   then         patches, back to back, each
 *                  u8 page     metadata page (taken modulo the md pages)
 *                  u16 offset  byte in the page, little-endian (modulo 4096)
 *                  u8 len      bytes that follow (cut at the page end)
 *                  len bytes   written over the base image
 *
 * The base image (one of FZ_NBASE, built in-process with the public API
 * and normalised to a fixed store id) is patched, then optionally the
 * clean flag of both super copies is toggled and every page resealed
 * bottom-up so the patch reaches the parsers behind the CRC checks.
 */
#ifndef BS_FUZZ_INPUT_H
#define BS_FUZZ_INPUT_H

#define FZ_C_FORCE_RECOVER 0x01u	/* first load with force_recover */
#define FZ_C_RESEAL 0x02u		/* recompute every CRC after patching */
#define FZ_C_TOGGLE_CLEAN 0x04u	/* flip super.clean in both copies (resealed) */
#define FZ_C_NO_OPS 0x08u		/* skip the mutation script */
#define FZ_C_BASE_SHIFT 4u		/* bits 4-5: base image */
#define FZ_C_BASE_MASK 0x30u
#define FZ_C_LIFO 0x40u		/* RAM device completes newest IO first */

/* Base images. */
enum fz_base {
	FZ_BASE_EMPTY = 0,	/* empty store, clean */
	FZ_BASE_FULL = 1,	/* blobs, xattrs, thin blobs, snapshot + clone; clean */
	FZ_BASE_DIRTY = 2,	/* FULL plus synced changes, durable image: dirty */
	FZ_BASE_DIRTY_VIEW = 3,	/* FULL plus unsynced changes, volatile view: dirty */
	FZ_NBASE
};

#define FZ_PATCH_HDR 4u	/* page, offset (2), len */

/* Geometry of every base image. */
#define FZ_DEV_BYTES (512u * 1024)
#define FZ_BLOCK_LEN 512u
#define FZ_CLUSTER (16u * 1024)
#define FZ_MAX_BLOBS 8u
#define FZ_POOL_PAGES 18u
#define FZ_STORE_ID 0x465a5a5346545342ull	/* fixed id the bases are restamped with */

#endif /* BS_FUZZ_INPUT_H */
