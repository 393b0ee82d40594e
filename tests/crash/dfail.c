/*
 * I12, recovery is idempotent and crash-safe (crash-testing.md 3.2 "Double
 * failure", 3.3 I12), for a sample of crash states within the contract.
 *
 * The state's recovery is recorded on a device of its own. Then:
 *  (i)  a second power cut during that recovery: at every cut of its log,
 *       the images P (every issued write), N (the durable ones) and D1 (all
 *       but one volatile write) over the crash state are loaded and checked
 *       against the same model and cut (I1-I11). The last P image is
 *       "recovered, then the power went": loading twice gives an allowed
 *       state again. Images are deduplicated by the set of writes applied.
 *  (ii) -EIO from the k-th write or flush of the recovery (k < I12_EIO_MAX):
 *       the load fails cleanly or succeeds; the device as that attempt left
 *       it then loads and checks.
 *  (iii) -EIO from the first, middle and last read of the load: the load
 *       fails cleanly, or (a read of optional work, like finishing a
 *       collapse) succeeds with a store that checks; the device then loads
 *       and checks.
 * A state whose recovery writes nothing needs no (i) or (ii): its image is
 * the one the main oracle checks.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crash.h"

#define I12_MAX_WRITES 64	/* recoveries with more writes: (ii) only */
#define I12_EIO_MAX 4
#define I12_SEEN_MAX 256

struct dfail {
	struct bs_thread *t;
	const struct model *m;
	struct ocheck o;		/* the state's cut and flags, I13/I14 off */
	const uint8_t *img;		/* the crash state */
	uint8_t *buf;			/* image under test */
	const struct logw *ws;
	int nws;
	uint64_t nev;
	uint64_t seen[I12_SEEN_MAX];	/* write sets already checked */
	int nseen;
	struct i12_figs *f;
	bool failed;
};

/* Count one checked image; report the state's first failure only. */
static void df_verdict(struct dfail *d, int rc, const struct ocheck *o, const char *what,
		       uint64_t arg)
{
	d->f->states++;
	if (rc == 0 || d->failed)
		return;
	d->failed = true;
	d->f->failing++;
	printf("FAIL I12 (%s %" PRIu64 " of the recovery): %s\n", what, arg, o->fail);
}

/* Load @p dev's image as it stands and check it; report a failure once. */
static void df_check(struct dfail *d, struct rdev *r, const char *what, uint64_t arg)
{
	struct run y = { .t = d->t, .r = r, .m = (struct model *)d->m };
	struct ocheck o = d->o;
	int rc = oracle_check(&y, d->m, &o);

	run_close_dev(&y);
	df_verdict(d, rc, &o, what, arg);
}

/* A load that succeeded although its read @p k failed: check that store. */
static void df_check_live(struct dfail *d, struct run *y, uint64_t k)
{
	struct ocheck o = d->o;

	df_verdict(d, oracle_check_loaded(y, d->m, &o), &o, "load that survived -EIO at read", k);
}

static bool df_seen(struct dfail *d, uint64_t set)
{
	for (int i = 0; i < d->nseen; i++)
		if (d->seen[i] == set)
			return true;
	if (d->nseen < I12_SEEN_MAX)
		d->seen[d->nseen++] = set;
	return false;
}

/* The crash state plus the writes in @p set (bit k: write k), in issue order. */
static void df_image(struct dfail *d, uint64_t set, uint64_t cut)
{
	struct rdev *r;

	if (set == 0 || df_seen(d, set))
		return;
	memcpy(d->buf, d->img, CT_DEV_BYTES);
	for (int k = 0; k < d->nws; k++) {
		const struct logw *w = &d->ws[k];

		if (!(set & (1ull << k)))
			continue;
		if (w->data != NULL)
			memcpy(d->buf + w->lba * CT_BLOCK, w->data, w->n * CT_BLOCK);
		else
			memset(d->buf + w->lba * CT_BLOCK, 0, w->n * CT_BLOCK);
	}
	r = rdev_create(CT_DEV_BYTES / CT_BLOCK, CT_BLOCK, d->buf, false);
	if (r == NULL)
		abort();
	df_check(d, r, "cut", cut);
	rdev_free(r);
}

/* (i): P, N and D1 at cut @p c of the recovery's log. */
static void df_cut(struct dfail *d, uint64_t c)
{
	uint64_t dur = 0, vol = 0;

	for (int k = 0; k < d->nws; k++) {
		const struct logw *w = &d->ws[k];

		if (w->dur != NONE && w->dur < c)
			dur |= 1ull << k;
		else if (w->issue < c)
			vol |= 1ull << k;
	}
	df_image(d, dur | vol, c);
	df_image(d, dur, c);
	for (int k = 0; k < d->nws; k++)
		if (vol & (1ull << k))
			df_image(d, dur | (vol & ~(1ull << k)), c);
}

/*
 * (ii): the k-th recovery write or flush (@p reads: the k-th read) fails
 * with -EIO, persistently. The load may fail, cleanly; if it succeeds
 * anyway (the read belonged to optional work, such as finishing a
 * collapse), the store it gave is checked as it is once reads work again.
 * Either way the device as it was left then loads and checks.
 */
static void df_eio(struct dfail *d, uint64_t k, bool reads)
{
	struct rdev *r = rdev_create(CT_DEV_BYTES / CT_BLOCK, CT_BLOCK, d->img, false);
	struct run y = { .t = d->t, .r = r, .m = (struct model *)d->m };
	int rc;

	if (r == NULL)
		abort();
	if (reads)
		rdev_fail_reads_after(r, k);
	else
		rdev_fail_after(r, k);
	rc = run_load(&y);
	if (rc == 0 && !reads)
		run_abandon(&y);
	rdev_fail_off(r);
	d->f->eio++;
	if (rc == 0 && reads)
		df_check_live(d, &y, k);
	df_check(d, r, reads ? "-EIO at read" : "-EIO at write/flush", k);
	rdev_free(r);
}

/* IOs the recorded load issued: its reads (@p reads) or its writes and flushes. */
static uint64_t df_issued(const struct rdev *rec, bool reads)
{
	uint64_t n, count = 0;
	const struct rdev_event *ev = rdev_events(rec, &n);

	for (uint64_t i = 0; i < n; i++)
		count += ev[i].phase == RP_ISSUE && (ev[i].kind == RK_READ) == reads;
	return count;
}

/*
 * Record the recovery of @p d->img: its writes (d->ws, d->nws) and its
 * events (d->nev), both left empty if the load failed (I1: the main oracle
 * reports that).
 */
static void df_record(struct dfail *d, struct rdev **rec)
{
	struct run x = { .t = d->t, .m = (struct model *)d->m };
	int rc;

	x.r = rdev_create(CT_DEV_BYTES / CT_BLOCK, CT_BLOCK, d->img, true);
	if (x.r == NULL)
		abort();
	rc = run_load(&x);
	if (rc == 0)
		run_abandon(&x); /* the second power cut: right after recovery */
	run_close_dev(&x);
	*rec = x.r;
	if (rc != 0)
		return;
	d->ws = log_writes(x.r, &d->nws);
	rdev_events(x.r, &d->nev);
}

void dfail_run(struct bs_thread *t, const struct model *m, const struct ocheck *o,
	       const uint8_t *img, struct i12_figs *f)
{
	struct dfail d = { .t = t, .m = m, .o = *o, .img = img, .f = f };
	struct rdev *rec = NULL;

	d.o.sample = false;
	f->sampled++;
	df_record(&d, &rec);
	if (d.nev > 0) {
		/* -EIO from a read of the load: at the first, the middle, the last. */
		uint64_t nrd = df_issued(rec, true);

		for (uint64_t k = 0; nrd > 0 && k < 3; k++)
			df_eio(&d, k == 0 ? 0 : (k == 1 ? nrd / 2 : nrd - 1), true);
	}
	if (d.nws > 0) {
		uint64_t nio = df_issued(rec, false);

		d.buf = ct_buf(CT_DEV_BYTES);
		for (uint64_t c = 1; d.nws <= I12_MAX_WRITES && c <= d.nev; c++)
			df_cut(&d, c);
		for (uint64_t k = 0; k < nio && k < I12_EIO_MAX; k++)
			df_eio(&d, k, false);
		free(d.buf);
	}
	free((void *)d.ws);
	rdev_free(rec);
}
