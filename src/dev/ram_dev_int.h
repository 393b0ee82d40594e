/*
 * RAM device internals shared by ram_dev.c (device, channels, IO paths) and
 * ram_dev_cache.c (the volatile write cache and the power-cut model).
 *
 * Memory: `view` holds what reads see; `durable` holds what survives a
 * power cut that drops every volatile write. Without a modelled cache the
 * two are the same mapping.
 *
 * Write log: with a volatile cache every successful write (write, writev,
 * write_zeroes, unmap, copy) is applied to `view` at submission and appended
 * to the log in submission (seq) order. An entry is completed when its IO
 * completes and becomes durable when a flush issued after that completion
 * completes. Durable entries are applied to `durable` at once but stay in
 * the log until every older entry is durable too, so that replaying the log
 * in seq order always lets a newer write win over an older one that became
 * durable later (see ramdev_log_flush()).
 *
 * Invariant C1: outside the union of the ranges of the entries in the log,
 * `view` and `durable` hold the same bytes.
 * Invariant C2: `durable` equals the initial image with every durable write
 * ever logged applied in seq order.
 *
 * Locking: data_lock (rwlock) guards the bytes of `view`; lock (mutex)
 * guards everything else, including the bytes of `durable`. Lock order:
 * data_lock before lock.
 */
#ifndef BS_DEV_RAM_DEV_INT_H
#define BS_DEV_RAM_DEV_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <blobstore/ram_dev.h>

/* Tearing granularity of a power cut (ram_dev.h: "torn per 512-byte sector"). */
#define RAMDEV_SECTOR 512u

/* One logged volatile write. */
struct ramdev_wlog {
	struct ramdev_wlog *next;	/* log order = seq order */
	uint64_t seq;			/* submission order, from 1 */
	uint64_t cpl_stamp;		/* completion clock value, 0 = in flight */
	uint64_t off;			/* byte offset in the device */
	uint64_t len;			/* bytes */
	bool durable;			/* covered by a completed flush */
	uint8_t *data;			/* payload, NULL for a write of zeros */
	uint8_t payload[];
};

/* One armed fault injection. */
struct ramdev_fault {
	bool active;
	bool persistent;
	uint64_t nth;			/* 1-based IO number that fails */
	uint64_t seen;			/* IOs of the kind since injection */
	int err;			/* negative errno */
};

/* Fault slots: one per enum bs_io_type (READV/WRITEV fold), plus ANY. */
enum {
	RAMDEV_FAULT_ANY = BS_IO_NTYPES,
	RAMDEV_NFAULTS
};

struct ramdev {
	struct bs_dev dev;		/* first: struct bs_dev * casts to this */
	pthread_rwlock_t data_lock;
	pthread_mutex_t lock;
	uint8_t *view;
	uint8_t *durable;		/* == view without a modelled cache */
	size_t size;			/* bytes in each mapping */
	bool volatile_cache;

	/* Everything below is guarded by lock. */
	enum bs_ram_order order;
	uint64_t order_rng;		/* PRNG state for BS_RAM_ORDER_RANDOM */
	bool powered_off;
	uint64_t epoch;			/* bumped by every power cut */
	struct ramdev_wlog *log_head;
	struct ramdev_wlog *log_tail;
	uint64_t next_seq;
	uint64_t cpl_clock;		/* counts completed logged writes */
	uint64_t nvolatile;		/* log entries not yet durable */
	struct ramdev_fault faults[RAMDEV_NFAULTS];
	struct bs_ram_dev_stats stats;
};

/* splitmix64: small, seedable, good enough for test scheduling. */
uint64_t ramdev_rng_next(uint64_t *state);

/* A log entry for @p len bytes at @p off; payload space unless @p zeroes. */
struct ramdev_wlog *ramdev_wlog_alloc(uint64_t off, uint64_t len, bool zeroes);

/* Append @p e (lock held). */
void ramdev_log_append(struct ramdev *rd, struct ramdev_wlog *e);

/* Write the bytes of @p e into @p image. */
void ramdev_wlog_apply(const struct ramdev_wlog *e, uint8_t *image);

/* Mark @p e completed (lock held). */
void ramdev_log_complete(struct ramdev *rd, struct ramdev_wlog *e);

/* Complete a flush issued when the completion clock read @p stamp (lock held). */
void ramdev_log_flush(struct ramdev *rd, uint64_t stamp);

/* Build the post-cut image and empty the log (data_lock and lock held). */
void ramdev_log_power_cut(struct ramdev *rd, enum bs_power_cut_mode mode, uint64_t seed);

/* Free every entry without applying it (device teardown). */
void ramdev_log_free_all(struct ramdev *rd);

#endif /* BS_DEV_RAM_DEV_INT_H */
