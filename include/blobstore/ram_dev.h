/*
 * RAM device: a block device in memory for tests, demos and throwaway
 * stores. Every crash test stands on it, so it models what real devices do
 * and a naive fake does not:
 *
 *  - Completions are always deferred (never inline) and delivered in a
 *    selectable order: FIFO, LIFO or seeded random.
 *  - Volatile write cache: a write is visible to reads as soon as it is
 *    submitted, but durable only once it has completed and a flush issued
 *    after that completion has completed. write_zeroes and unmap are
 *    volatile writes of zeros.
 *  - Power cut: every write that is not durable is kept, dropped, or torn
 *    per 512-byte sector, chosen from a seed; the result becomes the
 *    device's contents and every IO in flight or submitted later fails with
 *    -EIO until bs_ram_dev_power_on().
 *  - Fault injection: fail the N-th IO of a kind (or of any kind) with a
 *    chosen errno, once or from then on. A failed write changes nothing.
 *  - Counters of ops and bytes per kind.
 *
 * Thread safety: IO may be submitted from several threads (each through its
 * own channel). The control functions below may be called from any thread
 * while no IO is being submitted concurrently.
 */
#ifndef BLOBSTORE_RAM_DEV_H
#define BLOBSTORE_RAM_DEV_H

#include <stdint.h>
#include <stddef.h>

#include <blobstore/dev.h>

#ifdef __cplusplus
extern "C" {
#endif

enum bs_ram_order {
	BS_RAM_ORDER_FIFO = 0,	/* completions in submission order */
	BS_RAM_ORDER_LIFO = 1,	/* newest pending first */
	BS_RAM_ORDER_RANDOM = 2	/* seeded random among pending */
};

struct bs_ram_dev_opts {
	size_t opts_size;		/* sizeof(struct bs_ram_dev_opts) */
	uint32_t block_len;		/* default 512 */
	uint64_t block_count;		/* required */
	uint32_t phys_block_len;	/* default block_len */
	uint32_t atomic_write_len;	/* default block_len */
	enum bs_ram_order order;	/* default FIFO */
	uint64_t seed;			/* for RANDOM order */
	bool volatile_cache;		/* default true: model a write cache */
	bool enable_copy;		/* default true: provide ops->copy */
	const void *image;		/* optional initial contents (block_count*block_len bytes) */
};

/** Fill @p opts with defaults. */
void bs_ram_dev_opts_init(struct bs_ram_dev_opts *opts);

/**
 * Create a RAM device.
 * @return 0 and *@p out, -EINVAL (bad geometry, one log line), -ENOMEM.
 */
int bs_ram_dev_create(const struct bs_ram_dev_opts *opts, struct bs_dev **out);

/** Change the completion order (takes effect for the next completions). */
void bs_ram_dev_set_order(struct bs_dev *dev, enum bs_ram_order order, uint64_t seed);

/** Every kind: use as the kind argument of bs_ram_dev_inject(). */
#define BS_RAM_ANY_IO (-1)

/**
 * Fail the @p nth (1-based, counted from now) IO of kind @p kind
 * (enum bs_io_type, or BS_RAM_ANY_IO) with @p err (negative errno, e.g.
 * -EIO or -ENOSPC). With @p persistent, that IO and every later IO of the
 * kind fail. One injection per kind is active at a time; a new one replaces
 * it. READ and READV count as one kind, as do WRITE and WRITEV.
 */
void bs_ram_dev_inject(struct bs_dev *dev, int kind, uint64_t nth, int err, bool persistent);

/** Remove every injection. */
void bs_ram_dev_clear_faults(struct bs_dev *dev);

enum bs_power_cut_mode {
	BS_CUT_KEEP_ALL = 0,	/* every volatile write lands */
	BS_CUT_DROP_ALL = 1,	/* only durable writes survive */
	BS_CUT_RANDOM = 2,	/* each volatile write kept, dropped or torn (seeded) */
	BS_CUT_TEAR_ALL = 3,	/* each volatile write torn per 512 B sector (seeded) */
};

/**
 * Simulate a power cut now. The device contents become durable state plus
 * the chosen volatile writes (applied in submission order); the cache is
 * empty afterwards. IO in flight and IO submitted until
 * bs_ram_dev_power_on() completes with -EIO.
 */
void bs_ram_dev_power_cut(struct bs_dev *dev, enum bs_power_cut_mode mode, uint64_t seed);

/** Resume normal operation after a power cut. */
void bs_ram_dev_power_on(struct bs_dev *dev);

/** Number of writes that are not yet durable. */
uint64_t bs_ram_dev_volatile_writes(struct bs_dev *dev);

/** What reads see now (block_count * block_len bytes). Do not free. */
const uint8_t *bs_ram_dev_view(struct bs_dev *dev);

/** The durable image: what survives a BS_CUT_DROP_ALL power cut. */
const uint8_t *bs_ram_dev_durable(struct bs_dev *dev);

struct bs_ram_dev_stats {
	uint64_t ops[BS_IO_NTYPES];		/* completed ops per kind */
	uint64_t bytes_read;
	uint64_t bytes_written;		/* write, writev, write_zeroes */
	uint64_t bytes_copied;
	uint64_t failed;		/* completed with an error */
};

void bs_ram_dev_get_stats(struct bs_dev *dev, struct bs_ram_dev_stats *stats);
void bs_ram_dev_reset_stats(struct bs_dev *dev);

#ifdef __cplusplus
}
#endif
#endif /* BLOBSTORE_RAM_DEV_H */
