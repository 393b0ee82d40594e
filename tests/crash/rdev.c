/* Recording device (rdev.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdev.h"

#define RDEV_PAGE 4096u
#define NONE UINT64_MAX

struct rdev_inflight {
	uint64_t lba, n;
	uint32_t io_id;
	bool write;
};

struct rdev {
	struct bs_dev dev;		/* first */
	uint8_t *view;
	uint8_t *dirty;
	uint64_t size;
	bool recording;
	enum rdev_order order;
	uint64_t rng;
	uint32_t tag;
	uint32_t next_io;
	struct rdev_event *ev;
	uint64_t nev, cap_ev;
	uint8_t *arena;
	uint64_t narena, cap_arena;
	struct rdev_inflight *fl;
	uint64_t nfl, cap_fl;
	struct rdev_lints lints;
	bool failing;
	bool fail_reads;		/* the injection counts and fails reads instead */
	uint64_t fail_skip;		/* writes/flushes (or reads) still let through */
};

struct rdev_channel {
	struct rdev *r;
	struct bs_poller *poller;
	struct bs_dev_io *head, *tail;
	uint64_t outstanding;
};

enum { PRIV_ID = 0 };

static void *grow(void *p, uint64_t *cap, uint64_t need, size_t elem)
{
	uint64_t c = *cap ? *cap : 64;

	if (need <= *cap)
		return p;
	while (c < need)
		c *= 2;
	p = realloc(p, c * elem);
	if (p == NULL) {
		fprintf(stderr, "crashtest: out of memory\n");
		abort();
	}
	*cap = c;
	return p;
}

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint8_t kind_of(uint8_t type)
{
	switch (type) {
	case BS_IO_WRITE:
	case BS_IO_WRITEV:
		return RK_WRITE;
	case BS_IO_FLUSH:
		return RK_FLUSH;
	case BS_IO_UNMAP:
		return RK_UNMAP;
	case BS_IO_WRITE_ZEROES:
		return RK_ZEROES;
	default:
		return RK_READ;
	}
}

static bool is_write_kind(uint8_t k)
{
	return k == RK_WRITE || k == RK_UNMAP || k == RK_ZEROES;
}

static void log_event(struct rdev *r, const struct bs_dev_io *io, uint8_t phase,
		      uint64_t payload_off)
{
	struct rdev_event *e;

	if (!r->recording)
		return;
	r->ev = grow(r->ev, &r->cap_ev, r->nev + 1, sizeof(*r->ev));
	e = &r->ev[r->nev++];
	e->kind = kind_of(io->type);
	e->phase = phase;
	e->io_id = (uint32_t)io->dev_priv[PRIV_ID];
	e->tag = r->tag;
	e->status = io->status; /* at issue: admission (lint or injected error) */
	e->lba = io->type == BS_IO_FLUSH ? 0 : io->lba;
	e->nblocks = io->type == BS_IO_FLUSH ? 0 : io->lba_count;
	e->payload_off = payload_off;
}

static bool overlaps(uint64_t a, uint64_t an, uint64_t b, uint64_t bn)
{
	return a < b + bn && b < a + an;
}

/* Lint @p io against the in-flight set and register it. */
static void lint_and_track(struct rdev *r, const struct bs_dev_io *io, bool write)
{
	for (uint64_t i = 0; i < r->nfl; i++) {
		const struct rdev_inflight *f = &r->fl[i];

		if (!f->write || !overlaps(f->lba, f->n, io->lba, io->lba_count))
			continue;
		if (write)
			r->lints.overlap_writes++;
		else
			r->lints.read_overlap++;
	}
	r->fl = grow(r->fl, &r->cap_fl, r->nfl + 1, sizeof(*r->fl));
	r->fl[r->nfl++] = (struct rdev_inflight){ io->lba, io->lba_count,
						  (uint32_t)io->dev_priv[PRIV_ID], write };
}

static void untrack(struct rdev *r, uint32_t id)
{
	for (uint64_t i = 0; i < r->nfl; i++) {
		if (r->fl[i].io_id == id) {
			r->fl[i] = r->fl[--r->nfl];
			return;
		}
	}
}

static const struct iovec *io_iov(struct bs_dev_io *io, int *cnt)
{
	if (io->iov == NULL) {
		*cnt = 1;
		return &io->iov_one;
	}
	*cnt = io->iovcnt;
	return io->iov;
}

static bool io_misaligned(const struct rdev *r, struct bs_dev_io *io)
{
	const struct iovec *iov;
	int cnt;
	uint64_t total = 0;

	if (io->type == BS_IO_FLUSH || io->type == BS_IO_UNMAP ||
	    io->type == BS_IO_WRITE_ZEROES)
		return false;
	iov = io_iov(io, &cnt);
	for (int i = 0; i < cnt; i++) {
		if (iov[i].iov_len % r->dev.block_len != 0)
			return true;
		total += iov[i].iov_len;
	}
	return total != io->lba_count * r->dev.block_len;
}

static void mark_dirty(struct rdev *r, uint64_t off, uint64_t len)
{
	for (uint64_t p = off / RDEV_PAGE; p <= (off + len - 1) / RDEV_PAGE; p++)
		r->dirty[p] = 1;
}

/* Move the data of an admitted IO; returns the arena offset of a write payload. */
static uint64_t do_data(struct rdev *r, struct bs_dev_io *io)
{
	uint64_t off = io->lba * r->dev.block_len, len = io->lba_count * r->dev.block_len;
	uint64_t poff = NONE;
	const struct iovec *iov;
	int cnt;
	uint8_t *p = r->view + off;

	if (io->type == BS_IO_UNMAP || io->type == BS_IO_WRITE_ZEROES) {
		memset(p, 0, len);
		mark_dirty(r, off, len);
		return NONE;
	}
	iov = io_iov(io, &cnt);
	for (int i = 0; i < cnt; i++, p += iov[i - 1].iov_len) {
		if (io->type == BS_IO_READ || io->type == BS_IO_READV)
			memcpy(iov[i].iov_base, p, iov[i].iov_len);
		else
			memcpy(p, iov[i].iov_base, iov[i].iov_len);
	}
	if (io->type == BS_IO_WRITE || io->type == BS_IO_WRITEV) {
		mark_dirty(r, off, len);
		if (r->recording) {
			r->arena = grow(r->arena, &r->cap_arena, r->narena + len, 1);
			memcpy(r->arena + r->narena, r->view + off, len);
			poff = r->narena;
			r->narena += len;
		}
	}
	return poff;
}

/* Whether an injected error fails @p io (writes/flushes, or only reads). */
static bool inject(struct rdev *r, const struct bs_dev_io *io)
{
	bool rd = io->type == BS_IO_READ || io->type == BS_IO_READV;

	if (!r->failing || rd != r->fail_reads)
		return false;
	if (r->fail_skip > 0) {
		r->fail_skip--;
		return false;
	}
	return true;
}

/* Admission and data movement; every IO is then parked for the poller. */
static void rdev_submit(struct bs_dev *dev, void *ch_ctx, struct bs_dev_io *io)
{
	struct rdev *r = (struct rdev *)dev;
	struct rdev_channel *ch = ch_ctx;
	bool data = io->type != BS_IO_FLUSH;
	uint64_t poff = NONE;

	io->dev_priv[PRIV_ID] = ++r->next_io;
	io->status = 0;
	if (data && (io->lba_count == 0 || io->lba >= dev->block_count ||
		     io->lba_count > dev->block_count - io->lba)) {
		r->lints.range++;
		io->status = -ERANGE;
	} else if (io_misaligned(r, io)) {
		r->lints.misaligned++;
		io->status = -EINVAL;
	} else if (io->type == BS_IO_COPY) {
		io->status = -EOPNOTSUPP;
	} else if (inject(r, io)) {
		io->status = -EIO;
	} else if (data) {
		lint_and_track(r, io, is_write_kind(kind_of(io->type)));
		poff = do_data(r, io);
	}
	log_event(r, io, RP_ISSUE, poff);
	io->next = NULL;
	if (ch->tail != NULL)
		ch->tail->next = io;
	else
		ch->head = io;
	ch->tail = io;
	if (ch->outstanding++ == 0)
		bs_thread_hold();
}

static void complete_one(struct rdev_channel *ch, struct bs_dev_io *io)
{
	struct rdev *r = ch->r;

	untrack(r, (uint32_t)io->dev_priv[PRIV_ID]);
	log_event(r, io, RP_COMPLETE, NONE);
	if (--ch->outstanding == 0)
		bs_thread_release();
	bs_dev_io_complete(io, io->status);
}

static struct bs_dev_io *take_nth(struct bs_dev_io **head, uint64_t idx)
{
	struct bs_dev_io **pp = head, *io;

	while (idx-- > 0)
		pp = &(*pp)->next;
	io = *pp;
	*pp = io->next;
	return io;
}

/* Complete what was pending when the poll started, in the device's order. */
static int rdev_poll(void *arg)
{
	struct rdev_channel *ch = arg;
	struct bs_dev_io *batch = ch->head;
	uint64_t left = 0, idx;
	int done = 0;

	if (batch == NULL)
		return 0;
	ch->head = ch->tail = NULL;
	for (struct bs_dev_io *io = batch; io != NULL; io = io->next)
		left++;
	while (left > 0) {
		if (ch->r->order == RO_RANDOM)
			idx = rng_next(&ch->r->rng) % left;
		else
			idx = ch->r->order == RO_LIFO ? left - 1 : 0;
		complete_one(ch, take_nth(&batch, idx));
		left--;
		done++;
	}
	return done;
}

static int rdev_channel_create(struct bs_dev *dev, void *ch_ctx)
{
	struct rdev_channel *ch = ch_ctx;

	ch->r = (struct rdev *)dev;
	ch->poller = bs_poller_register(rdev_poll, ch, 0);
	return ch->poller == NULL ? -ENOMEM : 0;
}

static void rdev_channel_destroy(struct bs_dev *dev, void *ch_ctx)
{
	struct rdev_channel *ch = ch_ctx;
	struct bs_dev_io *io;

	bs_poller_unregister(&ch->poller);
	while ((io = ch->head) != NULL) {
		ch->head = io->next;
		io->status = -ECANCELED;
		complete_one(ch, io);
	}
}

static void rdev_destroy(struct bs_dev *dev)
{
	(void)dev; /* memory is the harness's: rdev_free() */
}

static const struct bs_dev_ops rdev_ops = {
	.channel_create = rdev_channel_create,
	.channel_destroy = rdev_channel_destroy,
	.read = rdev_submit,
	.write = rdev_submit,
	.readv = rdev_submit,
	.writev = rdev_submit,
	.flush = rdev_submit,
	.write_zeroes = rdev_submit,
	.unmap = rdev_submit,
	.copy = NULL,
	.destroy = rdev_destroy,
};

struct rdev *rdev_create(uint64_t nblocks, uint32_t block_len, const uint8_t *image,
			 bool recording)
{
	struct rdev *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->size = nblocks * block_len;
	r->view = aligned_alloc(RDEV_PAGE, r->size);
	r->dirty = calloc(r->size / RDEV_PAGE + 1, 1);
	if (r->view == NULL || r->dirty == NULL) {
		rdev_free(r);
		return NULL;
	}
	if (image != NULL)
		memcpy(r->view, image, r->size);
	else
		memset(r->view, 0, r->size);
	r->recording = recording;
	r->dev.ops = &rdev_ops;
	snprintf(r->dev.name, sizeof(r->dev.name), "rdev");
	r->dev.block_len = block_len;
	r->dev.block_count = nblocks;
	r->dev.phys_block_len = block_len;
	r->dev.atomic_write_len = block_len;
	r->dev.buf_align = 1;
	r->dev.channel_ctx_size = sizeof(struct rdev_channel);
	r->dev.flags = BS_DEV_F_UNMAP_ZEROES | BS_DEV_F_VOLATILE_CACHE;
	r->dev.max_queue_depth = 1u << 16;
	if (bs_dev_register(&r->dev) != 0) {
		rdev_free(r);
		return NULL;
	}
	return r;
}

struct bs_dev *rdev_bs(struct rdev *r) { return &r->dev; }
void rdev_set_tag(struct rdev *r, uint32_t tag) { r->tag = tag; }
uint8_t *rdev_view(struct rdev *r) { return r->view; }
uint64_t rdev_size(const struct rdev *r) { return r->size; }
uint8_t *rdev_dirty(struct rdev *r) { return r->dirty; }
const struct rdev_lints *rdev_get_lints(const struct rdev *r) { return &r->lints; }

void rdev_fail_after(struct rdev *r, uint64_t skip)
{
	r->failing = true;
	r->fail_reads = false;
	r->fail_skip = skip;
}

void rdev_fail_reads_after(struct rdev *r, uint64_t skip)
{
	r->failing = true;
	r->fail_reads = true;
	r->fail_skip = skip;
}

void rdev_fail_off(struct rdev *r) { r->failing = false; }

void rdev_set_order(struct rdev *r, enum rdev_order order, uint64_t seed)
{
	r->order = order;
	r->rng = seed;
}

const struct rdev_event *rdev_events(const struct rdev *r, uint64_t *n)
{
	*n = r->nev;
	return r->ev;
}

const uint8_t *rdev_payload(const struct rdev *r, const struct rdev_event *ev)
{
	return ev->payload_off == NONE ? NULL : r->arena + ev->payload_off;
}

void rdev_free(struct rdev *r)
{
	if (r == NULL)
		return;
	free(r->view);
	free(r->dirty);
	free(r->ev);
	free(r->arena);
	free(r->fl);
	free(r);
}
