/*
 * Crash-state generator (crash-testing.md 3.2), offline on a recorded log.
 *
 * For each cut c (crash after the first c events; consecutive cuts with the
 * same issued and durable sets collapsed, the last one kept) a write is
 * durable if a flush issued after its completion completed before c, and
 * volatile if it was issued before c and is not durable. A state is a set
 * of (volatile write, A-sized unit) pieces applied in issue order over the
 * durable image. States are deduplicated by a hash of the pieces, the
 * unit size and the durable frontier. The durable image is kept
 * incrementally; a state is an overlay on the replay device whose dirty
 * pages are restored from it afterwards.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crash.h"
#include "util/assert_int.h"

const char *const strat_name[ST_COUNT] = { "P", "N", "D1", "K1", "X", "T4096", "T512", "R",
					     "S" };

#define XMAX 10
#define RCOUNT 16
#define SAMPLE_EVERY 50
#define I12_EVERY 20	/* I12: 5% of the contract states (seq-1: all) */
#define SMAX 6		/* stale pool pages tried per cut */
#define BASE_VER (NONE - 1)	/* stale version: the start image's page */

struct piece {
	uint32_t w, unit;
};

struct gen {
	const struct workload *wl;
	int widx;
	const struct model *m;
	struct run rep;
	struct logw *ws;
	int nws;
	uint8_t *dimg;
	uint64_t cut, ndur, rng;
	int vol[1024];
	int nv;
	struct piece *pc;
	uint64_t npc, cap_pc;
	uint64_t *hs;
	uint64_t hcap, hn;
	struct figures *f;
	const struct repro *rp;
	uint64_t sidx[ST_COUNT];
	const uint8_t *base;
	uint64_t stale_w, stale_page;	/* strategy S: version put back, NONE if none */
};

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* --------------------------------------------------------------- images */

static void apply_range(struct gen *g, const struct logw *w, uint64_t lo, uint64_t hi,
			uint8_t *img, uint8_t *dirty)
{
	uint64_t a = BS_MAX(lo, w->lba), b = BS_MIN(hi, w->lba + w->n);

	if (a >= b)
		return;
	if (w->data != NULL)
		memcpy(img + a * CT_BLOCK, w->data + (a - w->lba) * CT_BLOCK, (b - a) * CT_BLOCK);
	else
		memset(img + a * CT_BLOCK, 0, (b - a) * CT_BLOCK);
	for (uint64_t p = a * CT_BLOCK / 4096; dirty && p <= (b * CT_BLOCK - 1) / 4096; p++)
		dirty[p] = 1;
}

/* Bring the durable image (and the replay view, equal to it) to cut c. */
static void advance_durable(struct gen *g)
{
	uint8_t *view = rdev_view(g->rep.r);

	for (int k = 0; k < g->nws; k++) {
		struct logw *w = &g->ws[k];

		if (w->dur != NONE && w->dur < g->cut && w->dur >= g->ndur) {
			apply_range(g, w, w->lba, w->lba + w->n, g->dimg, NULL);
			apply_range(g, w, w->lba, w->lba + w->n, view, NULL);
		}
	}
	g->ndur = g->cut;
}

static void restore(struct gen *g)
{
	uint8_t *dirty = rdev_dirty(g->rep.r), *view = rdev_view(g->rep.r);

	for (uint64_t p = 0; p < CT_DEV_BYTES / 4096; p++) {
		if (dirty[p]) {
			memcpy(view + p * 4096, g->dimg + p * 4096, 4096);
			dirty[p] = 0;
		}
	}
}

/* ---------------------------------------------------------------- dedup */

static bool seen(struct gen *g, uint64_t h)
{
	if (h == 0)
		h = 1;
	if (g->hn * 2 >= g->hcap) {
		uint64_t *old = g->hs, oc = g->hcap;

		g->hcap = oc ? oc * 2 : 4096;
		g->hs = calloc(g->hcap, sizeof(*g->hs));
		g->hn = 0;
		for (uint64_t i = 0; i < oc; i++)
			if (old[i])
				seen(g, old[i]);
		free(old);
	}
	for (uint64_t i = h & (g->hcap - 1);; i = (i + 1) & (g->hcap - 1)) {
		if (g->hs[i] == h)
			return true;
		if (g->hs[i] == 0) {
			g->hs[i] = h;
			g->hn++;
			return false;
		}
	}
}

static uint64_t state_hash(const struct gen *g, uint32_t upb)
{
	uint64_t h = 0xcbf29ce484222325ull ^ upb;
	uint64_t durable = 0;

	for (int k = 0; k < g->nws; k++)
		durable += g->ws[k].dur != NONE && g->ws[k].dur < g->cut;
	h = (h ^ durable) * 0x100000001b3ull;
	for (uint64_t i = 0; i < g->npc; i++)
		h = (h ^ ((uint64_t)g->pc[i].w << 32 | g->pc[i].unit)) * 0x100000001b3ull;
	if (g->stale_w != NONE)
		h = (h ^ (g->stale_w * 4099u + g->stale_page) ^ 0x5354414c45ull) * 0x100000001b3ull;
	return h;
}

/* --------------------------------------------------------------- pieces */

static void pc_add(struct gen *g, uint32_t w, uint32_t unit)
{
	if (g->npc == g->cap_pc) {
		g->cap_pc = g->cap_pc ? g->cap_pc * 2 : 256;
		g->pc = realloc(g->pc, g->cap_pc * sizeof(*g->pc));
		if (g->pc == NULL)
			abort();
	}
	g->pc[g->npc++] = (struct piece){ w, unit };
}

static uint32_t unit_lo(const struct logw *w, uint32_t upb) { return (uint32_t)(w->lba / upb); }
static uint32_t unit_hi(const struct logw *w, uint32_t upb)
{
	return (uint32_t)((w->lba + w->n - 1) / upb);
}

static void pc_write(struct gen *g, int vi, uint32_t upb)
{
	const struct logw *w = &g->ws[g->vol[vi]];

	for (uint32_t u = unit_lo(w, upb); u <= unit_hi(w, upb); u++)
		pc_add(g, (uint32_t)g->vol[vi], u);
}

static void print_pieces(const struct gen *g)
{
	printf("    pieces:");
	for (uint64_t i = 0; i < g->npc; i++)
		printf(" %u@%u", g->pc[i].w, g->pc[i].unit);
	printf("\n");
}

static int cmp_piece(const void *a, const void *b)
{
	const struct piece *x = a, *y = b;

	if (x->w != y->w)
		return x->w < y->w ? -1 : 1;
	return x->unit < y->unit ? -1 : (x->unit > y->unit);
}

/* Strategy S: put the chosen older version of one pool page back. */
static void apply_stale(struct gen *g, uint8_t *view, uint8_t *dirty)
{
	uint64_t bpp = 4096 / CT_BLOCK, lo = g->stale_page * bpp;

	if (g->stale_w == NONE)
		return;
	if (g->stale_w == BASE_VER) {
		memcpy(view + g->stale_page * 4096, g->base + g->stale_page * 4096, 4096);
		dirty[g->stale_page] = 1;
	} else {
		apply_range(g, &g->ws[g->stale_w], lo, lo + bpp, view, dirty);
	}
}

/* One generated state: dedupe, materialise, check, count. */
static void emit(struct gen *g, int st, uint32_t upb)
{
	uint64_t idx = g->sidx[st]++;
	struct ocheck o = { .cut = g->cut, .beyond = upb == 1 || g->stale_w != NONE,
			    .stale = g->stale_w != NONE };
	uint8_t *view = rdev_view(g->rep.r), *dirty = rdev_dirty(g->rep.r);
	uint64_t i12_failing = g->f->i12.failing;

	if (g->rp->on && (g->rp->cut != g->cut || g->rp->strat != st || g->rp->index != idx))
		return;
	if (g->npc > 1)
		qsort(g->pc, g->npc, sizeof(*g->pc), cmp_piece);
	g->f->gen[st]++;
	if (!g->rp->on && seen(g, state_hash(g, upb)))
		return;
	g->f->distinct[st]++;
	o.sample = g->rp->on || g->f->distinct[st] % SAMPLE_EVERY == 0;
	g->f->states_sampled += o.sample;
	for (uint64_t i = 0; i < g->npc; i++)
		apply_range(g, &g->ws[g->pc[i].w], (uint64_t)g->pc[i].unit * upb,
			    (uint64_t)(g->pc[i].unit + 1) * upb, view, dirty);
	apply_stale(g, view, dirty);
	if (!o.beyond && (g->rp->on || (g->wl->nsteps == 1 && !g->wl->w3) ||
			  g->f->distinct[st] % I12_EVERY == 0))
		dfail_run(g->rep.t, g->m, &o, view, &g->f->i12);
	if (g->f->i12.failing != i12_failing) {
		g->f->failing[st]++;
		printf("  repro: --repro '%s|%" PRIu64 "|%s|%" PRIu64 "'\n", g->wl->name, g->cut,
		       strat_name[st], idx);
	} else if (oracle_check(&g->rep, g->m, &o) != 0) {
		g->f->failing[st]++;
		printf("FAIL %s\n  repro: --repro '%s|%" PRIu64 "|%s|%" PRIu64 "'\n", o.fail,
		       g->wl->name, g->cut, strat_name[st], idx);
		if (g->rp->on)
			print_pieces(g);
		fflush(stdout);
	}
	g->f->avail_loss += o.avail_loss;
	restore(g);
}

/* ------------------------------------------------------------ strategies */

static void st_subsets(struct gen *g)
{
	g->npc = 0;
	for (int i = 0; i < g->nv; i++)
		pc_write(g, i, 8);
	emit(g, ST_P, 8);
	g->npc = 0;
	emit(g, ST_N, 8);
	for (int skip = 0; skip < g->nv; skip++) {
		g->npc = 0;
		for (int i = 0; i < g->nv; i++)
			if (i != skip)
				pc_write(g, i, 8);
		emit(g, ST_D1, 8);
		g->npc = 0;
		pc_write(g, skip, 8);
		emit(g, ST_K1, 8);
	}
	for (uint32_t mask = 0; g->nv <= XMAX && mask < (1u << g->nv); mask++) {
		g->npc = 0;
		for (int i = 0; i < g->nv; i++)
			if (mask & (1u << i))
				pc_write(g, i, 8);
		emit(g, ST_X, 8);
	}
}

/* Volatile writes before vi in full, then the units of vi selected by sel(). */
static void torn_one(struct gen *g, int vi, uint32_t upb, int st, uint64_t bits, uint32_t k)
{
	const struct logw *w = &g->ws[g->vol[vi]];

	g->npc = 0;
	for (int i = 0; i < vi; i++)
		pc_write(g, i, upb);
	for (uint32_t j = 0; j < k && j < 64; j++)
		if (bits & (1ull << j))
			pc_add(g, (uint32_t)g->vol[vi], unit_lo(w, upb) + j);
	emit(g, st, upb);
}

static void st_torn(struct gen *g, uint32_t upb, int st)
{
	for (int vi = 0; vi < g->nv; vi++) {
		const struct logw *w = &g->ws[g->vol[vi]];
		uint32_t k = unit_hi(w, upb) - unit_lo(w, upb) + 1;
		uint64_t all = k >= 64 ? ~0ull : (1ull << k) - 1;

		for (uint32_t j = 1; j < k && j < 64; j++) {
			torn_one(g, vi, upb, st, (1ull << j) - 1, k);
			torn_one(g, vi, upb, st, all & ~((1ull << (k - j)) - 1), k);
		}
		for (int r = 0; r < 4 && k > 1; r++)
			torn_one(g, vi, upb, st, rnd(&g->rng) & all, k);
	}
}

/* Per unit, a random version: durable or one of the volatile writes covering it. */
static void st_random(struct gen *g)
{
	for (int r = 0; r < RCOUNT && g->nv > 0; r++) {
		g->npc = 0;
		for (int vi = 0; vi < g->nv; vi++) {
			const struct logw *w = &g->ws[g->vol[vi]];

			for (uint32_t u = unit_lo(w, 8); u <= unit_hi(w, 8); u++)
				if (rnd(&g->rng) & 1)
					pc_add(g, (uint32_t)g->vol[vi], u);
		}
		emit(g, ST_R, 8);
	}
}

static bool page_zero(const uint8_t *p)
{
	for (int i = 0; i < 4096; i++)
		if (p[i] != 0)
			return false;
	return true;
}

/*
 * S (longhorn#13944): the P image, with one md pool page that was
 * rewritten in the log put back to its version before the last rewrite (a
 * CRC-valid older page from history: the start image's or an earlier
 * write's). Beyond contract: the device lied about a flushed write.
 */
static void st_stale(struct gen *g)
{
	uint64_t np = g->m->pool_hi - g->m->pool_lo, last[64], prev[64];
	int tried = 0;

	for (uint64_t p = 0; p < np && p < 64; p++) {
		last[p] = NONE;
		prev[p] = page_zero(g->base + (g->m->pool_lo + p) * 4096) ? NONE : BASE_VER;
	}
	for (int k = 0; k < g->nws && g->ws[k].issue < g->cut; k++)
		for (uint64_t p = 0; p < np && p < 64; p++) {
			uint64_t b = (g->m->pool_lo + p) * (4096 / CT_BLOCK);

			if (g->ws[k].data != NULL && g->ws[k].lba <= b &&
			    g->ws[k].lba + g->ws[k].n >= b + 4096 / CT_BLOCK) {
				prev[p] = last[p] == NONE ? prev[p] : last[p];
				last[p] = (uint64_t)k;
			}
		}
	for (uint64_t p = 0; p < np && p < 64 && tried < SMAX; p++) {
		if (last[p] == NONE || prev[p] == NONE)
			continue;
		g->npc = 0;
		for (int i = 0; i < g->nv; i++)
			pc_write(g, i, 8);
		g->stale_w = prev[p];
		g->stale_page = g->m->pool_lo + p;
		emit(g, ST_S, 8);
		tried++;
	}
	g->stale_w = NONE;
}

/* ----------------------------------------------------------------- cuts */

static void cut_key(const struct gen *g, uint64_t c, uint64_t *issued, uint64_t *dur)
{
	*issued = *dur = 0;
	for (int k = 0; k < g->nws; k++) {
		*issued += g->ws[k].issue < c;
		*dur += g->ws[k].dur != NONE && g->ws[k].dur < c;
	}
}

static void do_cut(struct gen *g)
{
	g->nv = 0;
	advance_durable(g);
	for (int k = 0; k < g->nws && g->nv < 1024; k++) {
		const struct logw *w = &g->ws[k];

		if (w->issue < g->cut && !(w->dur != NONE && w->dur < g->cut))
			g->vol[g->nv++] = k;
	}
	if ((uint64_t)g->nv > g->f->max_v)
		g->f->max_v = (uint64_t)g->nv;
	memset(g->sidx, 0, sizeof(g->sidx));
	g->rng = (uint64_t)g->widx * 1000003u + g->cut;
	g->f->cuts++;
	st_subsets(g);
	st_torn(g, 8, ST_T4K);
	st_torn(g, 1, ST_T512);
	st_random(g);
	if (g->wl->w3 || g->wl->order == RO_LIFO)
		st_stale(g); /* targeted in CI: W3 (and nightly LIFO runs) */
}

void gen_run(const struct workload *w, int widx, struct run *rec, const uint8_t *base,
	     struct figures *f, const struct repro *rp)
{
	struct gen g = { .wl = w, .widx = widx, .m = rec->m, .f = f, .rp = rp, .base = base,
			 .stale_w = NONE };
	uint64_t n, i1, d1, i2, d2;
	const struct rdev_lints *l;

	rdev_events(rec->r, &n);
	g.ws = log_writes(rec->r, &g.nws);
	g.rep.t = rec->t;
	g.rep.m = rec->m;
	g.rep.r = rdev_create(CT_DEV_BYTES / CT_BLOCK, CT_BLOCK, base, false);
	g.dimg = malloc(CT_DEV_BYTES);
	memcpy(g.dimg, base, CT_DEV_BYTES);
	for (uint64_t c = 0; c <= n; c++) {
		cut_key(&g, c, &i1, &d1);
		cut_key(&g, c + 1, &i2, &d2);
		if (c < n && i1 == i2 && d1 == d2)
			continue;
		g.cut = c;
		if (!rp->on || rp->cut == c)
			do_cut(&g);
	}
	l = rdev_get_lints(g.rep.r);
	f->lints += l->overlap_writes + l->read_overlap + l->range + l->misaligned;
	run_close_dev(&g.rep);
	rdev_free(g.rep.r);
	free(g.dimg);
	free(g.ws);
	free(g.pc);
	free(g.hs);
}
