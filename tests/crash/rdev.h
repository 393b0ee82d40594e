/*
 * Recording device for the crash-state harness (crash-testing.md 3.1).
 *
 * A struct bs_dev over an in-memory view. In recording mode every IO is
 * logged twice (ISSUE when submitted, COMPLETE when its completion runs)
 * with a global sequence number, the harness's op tag and, for writes, the
 * payload (copied into an append-only arena). Writes reach the view at
 * submission; completions are deferred to a poller and delivered FIFO, LIFO
 * or seeded RANDOM, like the RAM device. In replay mode (crash images)
 * nothing is logged; written 4 KiB pages are marked dirty so the harness
 * can restore just them. Both modes lint: overlapping in-flight writes, a
 * read overlapping an in-flight write, out-of-range or misaligned IO.
 */
#ifndef CRASH_RDEV_H
#define CRASH_RDEV_H

#include <stdbool.h>
#include <stdint.h>

#include <blobstore/dev.h>

enum rdev_kind { RK_WRITE, RK_FLUSH, RK_UNMAP, RK_ZEROES, RK_READ };
enum rdev_phase { RP_ISSUE, RP_COMPLETE };
enum rdev_order { RO_FIFO, RO_LIFO, RO_RANDOM };

struct rdev_event {
	uint8_t kind;		/* enum rdev_kind */
	uint8_t phase;		/* enum rdev_phase */
	uint32_t io_id;
	uint32_t tag;
	int status;
	uint64_t lba, nblocks;
	uint64_t payload_off;	/* arena offset (RK_WRITE), else UINT64_MAX */
};

struct rdev_lints {
	uint64_t overlap_writes;
	uint64_t read_overlap;
	uint64_t range;
	uint64_t misaligned;
};

struct rdev;

/** A device of @p nblocks blocks of @p block_len over a copy of @p image (NULL = zeros). */
struct rdev *rdev_create(uint64_t nblocks, uint32_t block_len, const uint8_t *image,
			 bool recording);
struct bs_dev *rdev_bs(struct rdev *r);
void rdev_set_order(struct rdev *r, enum rdev_order order, uint64_t seed);
void rdev_set_tag(struct rdev *r, uint32_t tag);
/**
 * Error injection: the @p skip writes/flushes after this call go through,
 * every later one fails with -EIO and moves no data, until rdev_fail_off().
 */
void rdev_fail_after(struct rdev *r, uint64_t skip);
/** The same for reads: the @p skip reads after this call go through, later ones fail. */
void rdev_fail_reads_after(struct rdev *r, uint64_t skip);
void rdev_fail_off(struct rdev *r);
uint8_t *rdev_view(struct rdev *r);
uint64_t rdev_size(const struct rdev *r);
/** Events logged so far; the log is valid until the next IO. */
const struct rdev_event *rdev_events(const struct rdev *r, uint64_t *n);
const uint8_t *rdev_payload(const struct rdev *r, const struct rdev_event *ev);
const struct rdev_lints *rdev_get_lints(const struct rdev *r);
/** Replay mode: the 4 KiB page dirty map (one byte per page). */
uint8_t *rdev_dirty(struct rdev *r);
/** Free a device that was never registered or is closed (bs_dev_close). */
void rdev_free(struct rdev *r);

#endif /* CRASH_RDEV_H */
