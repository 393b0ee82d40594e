/*
 * RAM device: the volatile write cache and the power-cut model.
 *
 * The log, the flush rule and the two invariants C1/C2 are described in
 * ram_dev_int.h. This file owns every change to the `durable` image:
 *
 *  - ramdev_log_flush(): a completed flush makes durable exactly the
 *    entries that had completed when it was issued.
 *  - ramdev_log_power_cut(): every entry still volatile is kept, dropped or
 *    torn per 512-byte sector, from a seeded PRNG, in seq order; durable
 *    entries still in the log are replayed in their place so newer writes
 *    keep winning. The result becomes both `view` and `durable`.
 *
 * Hence the set of images a power cut can produce: for each 512-byte
 * sector, its durable content or the content one of the volatile writes
 * covering it put there (an older volatile write hidden by a newer durable
 * one in the log cannot resurface).
 */
#include <stdlib.h>
#include <string.h>

#include "dev/ram_dev_int.h"
#include "util/assert_int.h"

/* What a power cut does to one volatile write. */
enum ramdev_cut_action {
	RAMDEV_CUT_KEEP,
	RAMDEV_CUT_DROP,
	RAMDEV_CUT_TEAR,
};

uint64_t ramdev_rng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

struct ramdev_wlog *ramdev_wlog_alloc(uint64_t off, uint64_t len, bool zeroes)
{
	struct ramdev_wlog *e;
	size_t payload = zeroes ? 0 : (size_t)len;

	if (len > SIZE_MAX - sizeof(*e))
		return NULL;
	e = malloc(sizeof(*e) + payload);
	if (e == NULL)
		return NULL;
	memset(e, 0, sizeof(*e));
	e->off = off;
	e->len = len;
	e->data = zeroes ? NULL : e->payload;
	return e;
}

void ramdev_log_append(struct ramdev *rd, struct ramdev_wlog *e)
{
	e->seq = ++rd->next_seq;
	e->next = NULL;
	if (rd->log_tail != NULL)
		rd->log_tail->next = e;
	else
		rd->log_head = e;
	rd->log_tail = e;
	rd->nvolatile++;
}

void ramdev_wlog_apply(const struct ramdev_wlog *e, uint8_t *image)
{
	if (e->data != NULL)
		memcpy(image + e->off, e->data, e->len);
	else
		memset(image + e->off, 0, e->len);
}

void ramdev_log_complete(struct ramdev *rd, struct ramdev_wlog *e)
{
	assert(e->cpl_stamp == 0);
	e->cpl_stamp = ++rd->cpl_clock;
}

/* Free the leading durable entries: their bytes are in `durable` for good. */
static void ramdev_log_prune(struct ramdev *rd)
{
	struct ramdev_wlog *e;

	while (rd->log_head != NULL && rd->log_head->durable) {
		e = rd->log_head;
		rd->log_head = e->next;
		free(e);
	}
	if (rd->log_head == NULL)
		rd->log_tail = NULL;
}

/*
 * A flush completed. It covers the entries whose completion stamp is at
 * most @p stamp (the clock when it was issued). Those become durable and
 * are applied to `durable`; any durable entry newer than the first newly
 * durable one is applied again after it, so a write that became durable
 * late never overwrites a newer one (C2). Then the durable prefix of the
 * log is dropped, which keeps C1.
 */
void ramdev_log_flush(struct ramdev *rd, uint64_t stamp)
{
	struct ramdev_wlog *e;
	bool replay = false;

	for (e = rd->log_head; e != NULL; e = e->next) {
		if (!e->durable && e->cpl_stamp != 0 && e->cpl_stamp <= stamp) {
			e->durable = true;
			assert(rd->nvolatile > 0);
			rd->nvolatile--;
			replay = true;
		}
		if (replay && e->durable)
			ramdev_wlog_apply(e, rd->durable);
	}
	ramdev_log_prune(rd);
}

/* Draw what happens to one volatile write under @p mode. */
static enum ramdev_cut_action ramdev_cut_pick(enum bs_power_cut_mode mode, uint64_t *rng)
{
	switch (mode) {
	case BS_CUT_KEEP_ALL:
		return RAMDEV_CUT_KEEP;
	case BS_CUT_DROP_ALL:
		return RAMDEV_CUT_DROP;
	case BS_CUT_TEAR_ALL:
		return RAMDEV_CUT_TEAR;
	case BS_CUT_RANDOM:
	default:
		return (enum ramdev_cut_action)(ramdev_rng_next(rng) % 3);
	}
}

/* Apply a seeded random subset of the 512-byte sectors of @p e. */
static void ramdev_wlog_apply_torn(const struct ramdev_wlog *e, uint8_t *image,
				   uint64_t *rng)
{
	uint64_t bits = 0;
	unsigned int nbits = 0;

	assert(e->off % RAMDEV_SECTOR == 0 && e->len % RAMDEV_SECTOR == 0);
	for (uint64_t pos = 0; pos < e->len; pos += RAMDEV_SECTOR) {
		if (nbits == 0) {
			bits = ramdev_rng_next(rng);
			nbits = 64;
		}
		nbits--;
		if ((bits >> nbits) & 1) {
			uint8_t *dst = image + e->off + pos;

			if (e->data != NULL)
				memcpy(dst, e->data + pos, RAMDEV_SECTOR);
			else
				memset(dst, 0, RAMDEV_SECTOR);
		}
	}
}

/* Free every entry without applying it; the log is empty afterwards. */
void ramdev_log_free_all(struct ramdev *rd)
{
	struct ramdev_wlog *e, *next;

	for (e = rd->log_head; e != NULL; e = next) {
		next = e->next;
		free(e);
	}
	rd->log_head = NULL;
	rd->log_tail = NULL;
	rd->nvolatile = 0;
}

/*
 * Power cut: replay the log onto `durable` in seq order, choosing per
 * volatile entry from @p seed; durable entries are replayed as they are
 * (they are already in `durable`; replaying keeps newer-wins). Then copy the
 * touched ranges back to `view`: by C1 nothing else differs.
 */
void ramdev_log_power_cut(struct ramdev *rd, enum bs_power_cut_mode mode, uint64_t seed)
{
	uint64_t rng = seed;
	struct ramdev_wlog *e;

	for (e = rd->log_head; e != NULL; e = e->next) {
		enum ramdev_cut_action act = RAMDEV_CUT_KEEP;

		if (!e->durable)
			act = ramdev_cut_pick(mode, &rng);
		if (act == RAMDEV_CUT_KEEP)
			ramdev_wlog_apply(e, rd->durable);
		else if (act == RAMDEV_CUT_TEAR)
			ramdev_wlog_apply_torn(e, rd->durable, &rng);
	}
	if (rd->view != rd->durable) {
		for (e = rd->log_head; e != NULL; e = e->next)
			memcpy(rd->view + e->off, rd->durable + e->off, e->len);
	}
	ramdev_log_free_all(rd);
}
