/*
 * Oracle (crash-testing.md 3.3): load a crash image and check it against
 * the reference model at the cut. Invariant ids in failure messages:
 * I1 load, I2 geometry, I3-I5 bs_check (chains, ownership, masks),
 * I6 metadata tuple, I7 unknown blob, I8 deletions (a deleted blob stays
 * gone; a delete of a snapshot and its clones is all or nothing), I9
 * snapshots (parents exist and are read-only; a snapshot and its source
 * change together), I10 data tags (this also covers I11: a clone's COW
 * cluster holds the parent's data merged with the write, the parent never
 * shows the clone's data), I13 liveness, I14 drain. S-I6: under strategy S
 * a blob is one of the states it ever had, never a mixture.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crash.h"

static int fail(struct ocheck *o, const char *fmt, ...)
{
	va_list ap;

	if (o->fail[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(o->fail, sizeof(o->fail), fmt, ap);
		va_end(ap);
	}
	return -1;
}

static bool mst_eq(const struct mst *a, const struct mst *b)
{
	if (a->exists != b->exists)
		return false;
	return !a->exists || (a->thin == b->thin && a->ro == b->ro && a->size == b->size &&
			      a->parent == b->parent && a->nx == b->nx && a->xh == b->xh);
}

static const struct mst absent_mst;

/* The state of blob @p b after the last persisting op done by cut @p c. */
static const struct mst *md_last(const struct model *m, int b, uint64_t c)
{
	const struct mst *last = &absent_mst;

	for (int i = 0; i < m->nops; i++) {
		const struct mop *op = &m->ops[i];

		if ((op->flags & OPF_PERSIST) && (op->affects & (1u << b)) && op->done <= c)
			last = &op->post[b];
	}
	return last;
}

/*
 * Is @p got one of blob @p b's allowed metadata states at cut @p c (I6)?
 * With @p any (strategy S), every state the blob ever had by the cut is
 * allowed: a stale page may roll a blob back, never mix two versions.
 */
static bool md_allowed(const struct model *m, int b, uint64_t c, const struct mst *got,
		       bool any)
{
	for (int i = 0; i < m->nops; i++) {
		const struct mop *op = &m->ops[i];

		if (!(op->flags & OPF_PERSIST) || !(op->affects & (1u << b)) || op->call > c)
			continue;
		if ((op->done > c || any) && mst_eq(&op->post[b], got))
			return true;
	}
	return mst_eq(md_last(m, b, c), got) || (any && !got->exists);
}

static bool write_acked(const struct model *m, const struct mwrite *w, uint64_t c)
{
	if (w->done > c || w->trunc <= c)
		return false;
	for (int i = 0; i < m->nops; i++) {
		const struct mop *op = &m->ops[i];

		if ((op->flags & OPF_DATA) && (op->affects & (1u << w->blob)) &&
		    op->call >= w->done && op->done <= c)
			return true;
	}
	return false;
}

static bool covers(const struct mwrite *w, uint64_t s)
{
	return s >= w->sect && s < w->sect + w->nsect;
}

/* I10 for one sector @p s of blob @p b. */
static int check_sector(const struct model *m, int b, uint64_t s, const uint8_t *data,
			struct ocheck *o)
{
	uint64_t floor = 0, tsect = 0, tgen = 0;
	bs_blob_id tid = 0;
	bool match = false;
	int kind = tag_parse(data, &tid, &tsect, &tgen);

	for (int i = 0; i < m->nw; i++) {
		const struct mwrite *w = &m->w[i];

		if (!(m->hist[b][i / 64] & (1ull << (i % 64))) || !covers(w, s))
			continue;
		if (write_acked(m, w, o->cut) && w->gen > floor)
			floor = w->gen;
		if (kind == 1 && w->call <= o->cut && m->id[w->blob] == tid && tsect == s &&
		    w->gen == tgen)
			match = true;
	}
	if (kind < 0)
		return fail(o, "I10 blob %d sector %" PRIu64 ": garbage", b, s);
	if (kind == 1 && !match)
		return fail(o, "I10 blob %d sector %" PRIu64 ": foreign data (blob %" PRIu64
			    " gen %" PRIu64 ")", b, s, tid, tgen);
	if (o->beyond || floor == 0)
		return 0;
	if (kind == 0 || tgen < floor)
		return fail(o, "I10 blob %d sector %" PRIu64 ": durable write gen %" PRIu64
			    " lost", b, s, floor);
	return 0;
}

static int check_data(struct run *x, const struct model *m, int b, struct bs_blob *h,
		      struct ocheck *o)
{
	uint64_t units = bs_blob_get_num_io_units(h);
	uint8_t *buf;
	struct cpl c = { 0 };
	int rc = 0;

	if (units == 0)
		return 0;
	buf = ct_buf(units * CT_BLOCK);
	bs_blob_read(h, run_channel(x), buf, 0, units, cpl_fn, &c);
	if (run_wait(x, &c) != 0)
		rc = fail(o, "I10 blob %d read failed: %d", b, c.err);
	for (uint64_t s = 0; s < units && rc == 0; s++)
		rc = check_sector(m, b, s, buf + s * CT_BLOCK, o);
	free(buf);
	return rc;
}

static int model_index(const struct model *m, bs_blob_id id)
{
	for (int b = 0; b < m->nb; b++)
		if (m->id[b] == id)
			return b;
	return -1;
}

static int open_h(struct run *x, bs_blob_id id, struct bs_blob **h)
{
	struct cpl c = { 0 };

	bs_blob_open(x->bs, id, h, cpl_fn, &c);
	return run_wait(x, &c);
}

static void close_h(struct run *x, struct bs_blob *h)
{
	struct cpl c = { 0 };

	bs_blob_close(h, cpl_fn, &c);
	run_wait(x, &c);
}

/* Open every blob the store iterates (I7: only blobs the model created). */
static int open_found(struct run *x, const struct model *m, struct bs_blob **h,
		      struct ocheck *o)
{
	for (bs_blob_id id = bs_iter_first(x->bs); id != 0; id = bs_iter_next(x->bs, id)) {
		int b = model_index(m, id);

		if (b < 0)
			return fail(o, "I7 blob %" PRIu64 " was never created", id);
		if (open_h(x, id, &h[b]) != 0 && o->stale)
			o->avail_loss = true; /* S: a stale page found at open */
		else if (h[b] == NULL)
			return fail(o, "I6 blob %d does not open", b);
	}
	return 0;
}

/* I6 (I8 for a deleted blob) for blob @p b. */
static int check_md(const struct model *m, int b, const struct mst *got, struct ocheck *o)
{
	if (md_allowed(m, b, o->cut, got, o->stale))
		return 0;
	if (o->beyond && !o->stale) {
		o->avail_loss = true;
		return 0;
	}
	if (got->exists && !md_last(m, b, o->cut)->exists)
		return fail(o, "I8 deleted blob %d is present", b);
	return fail(o, "%s blob %d: size %" PRIu64 " thin %d ro %d parent %" PRIu64 " nx %u "
		    "exists %d not allowed", o->stale ? "S-I6" : "I6", b, got->size, got->thin,
		    got->ro, got->parent, got->nx, got->exists);
}

/* I8/I9: a multi-blob op in flight at the cut left its group all old or all new. */
static int check_groups(const struct model *m, const struct mst *got, struct ocheck *o)
{
	for (int i = 0; i < m->nops; i++) {
		const struct mop *op = &m->ops[i];
		bool old_ok = true, new_ok = true;

		if (__builtin_popcount(op->group) < 2 || op->call > o->cut || op->done <= o->cut)
			continue;
		for (int b = 0; b < m->nb; b++) {
			if (!(op->group & (1u << b)))
				continue;
			old_ok = old_ok && mst_eq(md_last(m, b, o->cut), &got[b]);
			new_ok = new_ok && mst_eq(&op->post[b], &got[b]);
		}
		if (!old_ok && !new_ok)
			return fail(o, "%s group of op %d (%s) is half old, half new",
				    strcmp(op->name, "delete") ? "I9" : "I8", i, op->name);
	}
	return 0;
}

/* I6-I10 over every blob, found or expected. */
static int check_blobs(struct run *x, const struct model *m, struct ocheck *o)
{
	struct bs_blob *h[MAXB] = { 0 };
	struct mst got[MAXB];
	int rc = open_found(x, m, h, o);

	for (int b = 0; b < m->nb; b++)
		m_observe(x, h[b], &got[b]);
	for (int b = 0; b < m->nb && rc == 0; b++) {
		rc = check_md(m, b, &got[b], o);
		if (rc == 0 && h[b] != NULL)
			rc = check_data(x, m, b, h[b], o);
	}
	if (rc == 0 && !o->beyond)
		rc = check_groups(m, got, o);
	for (int b = 0; b < m->nb; b++)
		if (h[b] != NULL)
			close_h(x, h[b]);
	return rc;
}

static int check_store(struct run *x, struct ocheck *o)
{
	struct bs_check_report r;
	struct cpl c = { 0 };

	if (bs_get_cluster_size(x->bs) != CT_CLUSTER || bs_get_page_size(x->bs) != 4096 ||
	    bs_get_max_blobs(x->bs) != CT_MAX_BLOBS || bs_get_io_unit_size(x->bs) != CT_BLOCK)
		return fail(o, "I2 geometry changed");
	memset(&r, 0, sizeof(r));
	bs_check(x->bs, &r, NULL, NULL, cpl_fn, &c);
	if (run_wait(x, &c) != 0)
		return fail(o, "I3 check failed to run: %d", c.err);
	if (o->stale && r.problems == r.corrupt_blobs) {
		/* S: a blob whose stale page was rejected is lost, not followed (I3). */
		o->avail_loss = o->avail_loss || r.corrupt_blobs != 0;
		return 0;
	}
	if (r.problems != 0)
		return fail(o, "I3-I5 check: %" PRIu64 " problems (corrupt %" PRIu64
			    " leaked %" PRIu64 " double %" PRIu64 " lost %" PRIu64 " pool %"
			    PRIu64 ")", r.problems, r.corrupt_blobs, r.leaked_clusters,
			    r.double_owned_clusters, r.lost_clusters, r.pool_mismatches);
	return 0;
}

/* I13: the recovered store works and unloads cleanly. */
static int check_live(struct run *x, struct ocheck *o)
{
	struct bs_blob_opts bo;
	struct bs_blob *h = NULL;
	struct bs_load_report lr;
	struct cpl c1 = { 0 }, c2 = { 0 };
	bs_blob_id id = 0;
	uint8_t *buf = ct_buf(4096);
	bool full = bs_get_free_cluster_count(x->bs) == 0;
	int rc;

	bs_blob_opts_init(&bo, sizeof(bo));
	bo.num_clusters = 1;
	bo.thin_provision = true;
	bs_blob_create(x->bs, &bo, &id, cpl_fn, &c1);
	rc = run_wait(x, &c1);
	if (rc == 0)
		rc = open_h(x, id, &h);
	if (rc == 0) {
		tag_fill(buf, 8, id, 0, 1);
		bs_blob_write(h, run_channel(x), buf, 0, 8, cpl_fn, &c2);
		rc = run_wait(x, &c2);
		close_h(x, h);
	}
	free(buf);
	if (rc == 0) {
		struct cpl c3 = { 0 };

		bs_blob_delete(x->bs, id, cpl_fn, &c3);
		rc = run_wait(x, &c3);
	}
	if (rc == -ENOSPC && full)
		rc = 0; /* a full store may refuse the thin allocation */
	if (rc == 0 && (rc = run_unload(x)) == 0 && (rc = run_load(x)) == 0) {
		bs_get_load_report(x->bs, &lr);
		if (!lr.was_clean || lr.recovered)
			return fail(o, "I13 reload after clean unload was not clean");
	}
	return rc ? fail(o, "I13 liveness: %d", rc) : 0;
}

/* I14: delete everything; every cluster is free. */
static int check_drain(struct run *x, struct ocheck *o)
{
	for (int pass = 0; pass < 4 && bs_iter_first(x->bs) != 0; pass++) {
		bs_blob_id next;

		for (bs_blob_id id = bs_iter_first(x->bs); id != 0; id = next) {
			struct cpl c = { 0 };

			next = bs_iter_next(x->bs, id);
			bs_blob_delete(x->bs, id, cpl_fn, &c);
			run_wait(x, &c);
		}
	}
	if (bs_iter_first(x->bs) != 0)
		return fail(o, "I14 blobs left after drain");
	if (bs_get_free_cluster_count(x->bs) != bs_get_total_data_cluster_count(x->bs))
		return fail(o, "I14 %" PRIu64 " of %" PRIu64 " clusters free after drain",
			    bs_get_free_cluster_count(x->bs),
			    bs_get_total_data_cluster_count(x->bs));
	return 0;
}

int oracle_check(struct run *x, const struct model *m, struct ocheck *o)
{
	int rc = run_load(x);

	o->fail[0] = '\0';
	o->avail_loss = false;
	if (rc != 0)
		return fail(o, "I1 load failed: %d", rc);
	return oracle_check_loaded(x, m, o);
}

int oracle_check_loaded(struct run *x, const struct model *m, struct ocheck *o)
{
	int rc;

	o->fail[0] = '\0';
	o->avail_loss = false;
	rc = check_store(x, o);
	if (rc == 0)
		rc = check_blobs(x, m, o);
	if (rc == 0 && o->sample && !o->beyond)
		rc = check_live(x, o);
	if (rc == 0 && o->sample)
		rc = check_drain(x, o);
	run_abandon(x);
	return rc;
}
