/*
 * Metadata dump: print a store's on-disk metadata, every field decoded, for
 * operators and for post-mortems (`blobcli dump`).
 *
 * The dump reads the device directly; it does not load the store, so it
 * works on a store that does not load (both super copies torn, corrupt
 * masks, a blob whose tree fails validation). What it prints, in order:
 *
 *  - both super block copies, every field, each marked valid or with the
 *    reason it fails (magic, version, CRC, identity), and which one wins;
 *  - every mask page: header, validity against the winning super block
 *    (generation mask_gen when the store is clean; stale otherwise) and the
 *    set bits as ranges (incarnations: the non-zero slots);
 *  - every root slot that was ever written: both pages decoded, which one
 *    is live (the valid page with the higher generation, D3), tombstones;
 *  - for every live blob: its xattr stream decoded, and every page of its
 *    tree (xattr pages, index pages, extent pages) reached from the live
 *    root, each validated against the reference that names it (D1).
 *
 * Problems are flagged on the page's own line ("BAD: crc mismatch") and
 * counted; the dump goes on. Children of a page that fails validation are
 * not followed (their references cannot be trusted).
 *
 * Lines that start with "page N" describe metadata page N (byte offset
 * N * 4096 on the device); indented lines below them are its fields. The
 * exact wording is for people; scripts may rely on the "page N" prefix, on
 * the page kind that follows it (super, mask, root, xattr, index, extent),
 * on "blob 0x..." naming the owner, and on "ok" / "BAD" as the verdict.
 *
 * Threads: bs_dump() must be called on a bs_thread; it takes that thread's
 * channel of @p dev and gives it back before the callback, which runs on
 * the same thread, never before bs_dump() returns.
 *
 * Durability: read only. Nothing is ever written to the device. The dump
 * shows what is on the medium now: run against a store that another thread
 * or process is changing, it may show pages of different commits.
 */
#ifndef BLOBSTORE_DUMP_H
#define BLOBSTORE_DUMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <blobstore/dev.h>
#include <blobstore/thread.h>

#ifdef __cplusplus
extern "C" {
#endif

struct bs_dump_opts {
	size_t opts_size;		/* set by bs_dump_opts_init() */
	/* Bit ranges of a mask page, runs of an extent page, incarnations and
	 * xattrs printed per page before "... N more"; 0 = no limit. Default 32. */
	uint32_t max_items;
	/* Bytes of an xattr value printed before "..."; default 64. */
	uint32_t max_value_bytes;
};

/** Fill @p opts with defaults. @p opts_size = sizeof(struct bs_dump_opts). */
void bs_dump_opts_init(struct bs_dump_opts *opts, size_t opts_size);

/** What a dump found. */
struct bs_dump_report {
	uint64_t pages;			/* metadata pages examined */
	uint64_t bad_pages;		/* pages that failed magic, CRC or identity checks */
	uint64_t blobs;			/* slots whose live root is a blob */
	uint64_t tombstones;		/* slots whose live root is a tombstone */
	uint64_t corrupt_slots;		/* slots written but with no valid root page */
	int super_copy;			/* copy (0/1) that gave the geometry, -1 = none */
	bool clean;			/* that copy says clean */
};

/**
 * Print the metadata on @p dev to @p out (see the file comment), then call
 * @p cb_fn(@p cb_arg, err). @p opts may be NULL (defaults); @p report may
 * be NULL. @p out stays the caller's; it is not closed or flushed.
 *
 * @return 0 when the dump started (the callback will run), or without
 *         calling back: -EINVAL (NULL @p dev or @p out, bad opts_size, a
 *         device block larger than a page), -EPERM (not on a bs_thread),
 *         -ENOMEM, or the device's channel error.
 * Callback errors: 0 (the dump is complete, whatever problems it printed),
 *         -EILSEQ (no valid super block: both copies are printed, nothing
 *         after), -ERANGE (the super block's geometry exceeds the device:
 *         the regions inside the device are printed), -ENOMEM, or the device
 *         read error that stopped it (what was printed before stays).
 */
int bs_dump(struct bs_dev *dev, FILE *out, const struct bs_dump_opts *opts,
	    struct bs_dump_report *report, bs_cpl_fn cb_fn, void *cb_arg);

#ifdef __cplusplus
}
#endif
#endif /* BLOBSTORE_DUMP_H */
