/* The W1 operation alphabet, each op logged in the reference model. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crash.h"
#include "ops.h"

const char *const op_name[OP_COUNT] = {
	"create_thin", "create_thick", "resize_up", "resize_down", "xattr_small",
	"xattr_big", "xattr_rm", "write_alloc", "write_thin", "write_cross",
	"write_cow", "flush", "sync", "snapshot", "clone", "inflate", "decouple",
	"delete", "delete_snap", "reload", "burst",
};

static int open_blob(struct run *x, int b)
{
	struct cpl c = { 0 };

	bs_blob_open(x->bs, x->m->id[b], &x->m->h[b], cpl_fn, &c);
	return run_wait(x, &c);
}

int ops_create(struct run *x, bool thin, uint64_t clusters)
{
	struct bs_blob_opts o;
	struct cpl c = { 0 };
	bs_blob_id id = 0;
	int op = m_begin(x, thin ? "create_thin" : "create_thick"), b = -1;

	bs_blob_opts_init(&o, sizeof(o));
	o.num_clusters = clusters;
	o.thin_provision = thin;
	bs_blob_create(x->bs, &o, &id, cpl_fn, &c);
	if ((x->last_err = run_wait(x, &c)) == 0) {
		b = m_add(x->m, id);
		c.err = open_blob(x, b);
	}
	m_end(x, op, c.err, OPF_PERSIST, b >= 0 ? 1u << b : 0);
	return b;
}

/* A write in flight: its completion stamps the model's done clock. */
struct wio {
	struct cpl c;
	struct run *x;
	int wi;
	uint8_t *buf;
};

static void wio_fn(void *arg, int err)
{
	struct wio *p = arg;

	p->c.done = true;
	p->c.err = err;
	p->x->m->w[p->wi].done = m_now(p->x);
}

static void write_start(struct run *x, int b, uint64_t sect, struct wio *p)
{
	struct model *m = x->m;
	struct mwrite *w;

	if (m->nw >= MAXW)
		abort();
	w = &m->w[m->nw];
	*w = (struct mwrite){ b, sect, 8, ++m->gen, m_now(x), 0, UINT64_MAX };
	m->hist[b][m->nw / 64] |= 1ull << (m->nw % 64);
	*p = (struct wio){ .x = x, .wi = m->nw++, .buf = ct_buf(4096) };
	tag_fill(p->buf, 8, m->id[b], sect, w->gen);
	bs_blob_write(m->h[b], run_channel(x), p->buf, sect, 8, wio_fn, p);
}

static int write_wait(struct run *x, struct wio *p)
{
	run_wait(x, &p->c);
	if (p->c.err != 0)
		x->m->w[p->wi].trunc = x->m->w[p->wi].call; /* failed: never acknowledged */
	free(p->buf);
	return p->c.err;
}

int ops_write(struct run *x, int b, uint64_t sect)
{
	struct wio p;
	int op = m_begin(x, "write");

	write_start(x, b, sect, &p);
	m_end(x, op, write_wait(x, &p), 0, 0);
	return p.c.err;
}

/*
 * Queue depth > 1: 4 KiB writes to up to two clusters of each of the
 * start image's blobs T, N, C at once (thin allocation, COW and
 * overwrite in flight together), offsets varied by the write count.
 */
static int ops_burst(struct run *x)
{
	struct wio p[6];
	int n = 0, rc = 0, op = m_begin(x, "burst"), k = x->m->nw;

	for (int b = ROLE_T; b <= ROLE_C; b++)
		for (uint64_t cl = 0; b < x->m->nb && x->m->alive[b] && x->m->h[b] && cl < 2;
		     cl++) {
			if ((cl + 1) * CT_UPC > bs_blob_get_num_io_units(x->m->h[b]))
				continue;
			write_start(x, b, cl * CT_UPC + 8u * (uint64_t)((k + b + (int)cl) % 4),
				    &p[n++]);
		}
	for (int i = 0; i < n; i++) {
		int e = write_wait(x, &p[i]);

		rc = rc ? rc : e;
	}
	m_end(x, op, rc, 0, 0);
	return rc;
}

/* Unmap whole cluster @p cl of blob @p b (a thin blob gives it back). */
static void unmap_start(struct run *x, int b, uint64_t cl, struct cpl *c)
{
	struct model *m = x->m;
	uint64_t lo = cl * CT_UPC, hi = lo + CT_UPC;

	for (int i = 0; i < m->nw; i++) {
		struct mwrite *w = &m->w[i];

		if ((m->hist[b][i / 64] & (1ull << (i % 64))) && w->sect < hi &&
		    w->sect + w->nsect > lo && w->trunc == UINT64_MAX)
			w->trunc = m_now(x);
	}
	bs_blob_unmap(m->h[b], run_channel(x), lo, CT_UPC, cpl_fn, c);
}

/* #3682: allocate cluster @p alloc and release cluster @p rel of @p b at once. */
int ops_alloc_release(struct run *x, int b, uint64_t alloc, uint64_t rel)
{
	struct wio p;
	struct cpl c = { 0 };
	int op = m_begin(x, "alloc_release"), rc;

	write_start(x, b, alloc * CT_UPC + 8, &p);
	unmap_start(x, b, rel, &c);
	rc = write_wait(x, &p);
	if (run_wait(x, &c) != 0 && rc == 0)
		rc = c.err;
	m_end(x, op, rc, 0, 0);
	return rc;
}

int ops_sync(struct run *x, int b)
{
	struct cpl c = { 0 };
	int op = m_begin(x, "sync");

	bs_blob_sync(x->m->h[b], cpl_fn, &c);
	m_end(x, op, run_wait(x, &c), OPF_PERSIST | OPF_DATA, 1u << b);
	return c.err;
}

int ops_flush(struct run *x)
{
	struct cpl c = { 0 };
	int op = m_begin(x, "flush");

	bs_flush(x->bs, cpl_fn, &c);
	m_end(x, op, run_wait(x, &c), OPF_PERSIST | OPF_DATA, m_alive_mask(x->m));
	return c.err;
}

int ops_resize_to(struct run *x, int b, uint64_t n)
{
	struct model *m = x->m;
	struct cpl c = { 0 };
	bool down = n < bs_blob_get_num_clusters(m->h[b]);
	int op = m_begin(x, down ? "resize_down" : "resize_up");

	for (int i = 0; i < m->nw && down; i++) {
		if (m->w[i].sect + m->w[i].nsect > n * CT_UPC && m->w[i].trunc == UINT64_MAX)
			m->w[i].trunc = m_now(x);
	}
	bs_blob_resize(m->h[b], n, cpl_fn, &c);
	m_end(x, op, run_wait(x, &c), 0, 0);
	return c.err;
}

static int ops_resize(struct run *x, int b, int delta)
{
	return ops_resize_to(x, b, bs_blob_get_num_clusters(x->m->h[b]) + (uint64_t)(int64_t)delta);
}

int ops_xattr(struct run *x, int b, const char *name, uint32_t len, bool rm)
{
	uint8_t *v = calloc(1, len + 1);
	int op = m_begin(x, rm ? "xattr_rm" : "xattr_set"), rc;

	for (uint32_t i = 0; i < len; i++)
		v[i] = (uint8_t)(i * 7 + len + x->m->gen);
	rc = rm ? bs_blob_remove_xattr(x->m->h[b], name) :
		  bs_blob_set_xattr(x->m->h[b], name, v, len);
	free(v);
	m_end(x, op, rc, 0, 0);
	return rc;
}

/* Close every handle (each close syncs) or reopen them all. */
int ops_close_all(struct run *x)
{
	struct model *m = x->m;
	int op = m_begin(x, "close_all"), rc = 0;

	for (int b = 0; b < m->nb; b++) {
		struct cpl c = { 0 };

		if (m->h[b] == NULL)
			continue;
		m_observe(x, m->h[b], &m->cur[b]);
		bs_blob_close(m->h[b], cpl_fn, &c);
		m->h[b] = NULL;
		if (run_wait(x, &c) != 0)
			rc = c.err;
	}
	m_end(x, op, rc, OPF_PERSIST, m_alive_mask(m)); /* close promises no data flush */
	return rc;
}

int ops_open_all(struct run *x)
{
	struct model *m = x->m;
	int rc = 0;

	for (int b = 0; b < m->nb; b++)
		if (m->alive[b] && m->h[b] == NULL && open_blob(x, b) != 0)
			rc = -EIO;
	return rc;
}

/* Model bits of the clones of blob @p b: they change with its deletion. */
static uint32_t clone_mask(struct run *x, int b)
{
	bs_blob_id ids[MAXB];
	size_t n = MAXB;
	uint32_t mask = 0;

	if (bs_blob_get_clones(x->bs, x->m->id[b], ids, &n) != 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		for (int k = 0; k < x->m->nb; k++)
			mask |= x->m->id[k] == ids[i] ? 1u << k : 0;
	return mask;
}

/*
 * Delete blob @p b. With @p fail_skip >= 0 the device fails every write
 * and flush after the first @p fail_skip of the delete with -EIO (#2368):
 * the outcome stays open (the blob is there or gone as a whole) and the
 * store is left to the crash.
 */
int ops_delete_ex(struct run *x, int b, int fail_skip)
{
	struct cpl c = { 0 };
	uint32_t group = 0;
	int op, rc;

	if (ops_close_all(x) != 0)
		return -EIO;
	group = clone_mask(x, b) | 1u << b;
	op = m_begin(x, "delete");
	if (fail_skip >= 0)
		rdev_fail_after(x->r, (uint64_t)fail_skip);
	bs_blob_delete(x->bs, x->m->id[b], cpl_fn, &c);
	rc = run_wait(x, &c);
	rdev_fail_off(x->r);
	x->m->alive[b] = false; /* the post state: gone */
	if (rc == 0)
		rc = ops_open_all(x);
	m_end(x, op, rc, OPF_PERSIST, m_alive_mask(x->m) | 1u << b);
	m_set_group(x, op, group);
	x->m->alive[b] = rc != 0;
	return rc;
}

static int ops_delete(struct run *x, int b)
{
	return ops_delete_ex(x, b, -1);
}

/* bs_blob_snapshot and bs_blob_clone: a new blob derived from another. */
typedef void (*derive_fn)(struct bs_store *bs, bs_blob_id id, const struct bs_xattr *xattrs,
			  uint32_t xattr_count, bs_blob_id *out, bs_cpl_fn cb_fn, void *cb_arg);

/*
 * Derive a new blob from blob @src with @fn, open it and record the op with
 * @flags; @src_touched says whether @src's own state changes too. Returns
 * the new blob's model slot, or -1.
 */
static int ops_derive(struct run *x, int src, const char *name, derive_fn fn, unsigned flags,
		      bool src_touched)
{
	struct model *m = x->m;
	struct cpl c = { 0 };
	bs_blob_id id = 0;
	int op = m_begin(x, name), n = -1;

	fn(x->bs, m->id[src], NULL, 0, &id, cpl_fn, &c);
	if ((x->last_err = run_wait(x, &c)) == 0) {
		n = m_add(m, id);
		m_hist_copy(m, n, src);
		c.err = open_blob(x, n);
	}
	m_end(x, op, c.err, flags, (src_touched ? 1u << src : 0) | (n >= 0 ? 1u << n : 0));
	if (src_touched && n >= 0)
		m_set_group(x, op, 1u << src | 1u << n);
	return n;
}

int ops_snapshot(struct run *x, int b)
{
	return ops_derive(x, b, "snapshot", bs_blob_snapshot, OPF_PERSIST | OPF_DATA, true);
}

int ops_clone(struct run *x, int s)
{
	return ops_derive(x, s, "clone", bs_blob_clone, OPF_PERSIST, false);
}

/*
 * Model bits of blob @p b and its siblings (the other clones of its parent):
 * when @p b leaves a hidden snapshot (a deleted snapshot kept for its
 * clones) with one clone, that snapshot merges into the sibling, which
 * changes the sibling's parent in the same commit.
 */
static uint32_t sibling_mask(struct run *x, int b)
{
	bs_blob_id parent = 0;
	uint32_t mask = 1u << b;

	if (bs_blob_get_parent(x->bs, x->m->id[b], &parent) != 0 || parent == 0)
		return mask;
	for (int k = 0; k < x->m->nb; k++)
		if (x->m->id[k] == parent)
			mask |= 1u << k | clone_mask(x, k);
	return mask;
}

static int ops_reparent(struct run *x, int b, bool inflate)
{
	struct cpl c = { 0 };
	uint32_t group = sibling_mask(x, b);
	int op = m_begin(x, inflate ? "inflate" : "decouple");

	if (inflate)
		bs_blob_inflate(x->bs, x->m->id[b], cpl_fn, &c);
	else
		bs_blob_decouple_parent(x->bs, x->m->id[b], cpl_fn, &c);
	m_end(x, op, run_wait(x, &c), OPF_PERSIST, group);
	return c.err;
}

int ops_reload(struct run *x)
{
	int op, rc;

	if (ops_close_all(x) != 0)
		return -EIO;
	op = m_begin(x, "unload");
	rc = run_unload(x);
	m_end(x, op, rc, OPF_PERSIST | OPF_DATA, m_alive_mask(x->m));
	if (rc == 0)
		rc = run_load(x);
	return rc ? rc : ops_open_all(x);
}

static bool alive(const struct run *x, int b)
{
	return b < x->m->nb && x->m->alive[b] && x->m->h[b] != NULL;
}

/* Whether op @p code makes sense on the model's blobs now (random sequences). */
bool ops_applicable(struct run *x, int code)
{
	const void *v;
	uint32_t len;
	bs_blob_id parent = 0;

	switch (code) {
	case OP_CREATE_THIN: case OP_CREATE_THICK: case OP_FLUSH: case OP_RELOAD:
		return x->m->nb < MAXB - 1;
	case OP_WRITE_CROSS:
		return alive(x, ROLE_T) && bs_blob_get_num_clusters(x->m->h[ROLE_T]) > 1;
	case OP_RESIZE_DOWN:
		return alive(x, ROLE_T) && bs_blob_get_num_clusters(x->m->h[ROLE_T]) > 1;
	case OP_XATTR_RM:
		return alive(x, ROLE_T) &&
		       bs_blob_get_xattr(x->m->h[ROLE_T], "x0", &v, &len) == 0;
	case OP_BURST:
		return alive(x, ROLE_T) || alive(x, ROLE_N);
	case OP_WRITE_THIN: case OP_DELETE:
		return alive(x, ROLE_N);
	case OP_WRITE_COW: case OP_INFLATE:
		return alive(x, ROLE_C);
	case OP_DECOUPLE:
		return alive(x, ROLE_C) && bs_blob_get_parent(x->bs, x->m->id[ROLE_C],
							     &parent) == 0 && parent != 0;
	case OP_CLONE:
		return alive(x, ROLE_S) && x->m->nb < MAXB - 1;
	case OP_DELETE_SNAP:
		return alive(x, ROLE_S) && alive(x, ROLE_C) &&
		       bs_blob_get_parent(x->bs, x->m->id[ROLE_C], &parent) == 0 &&
		       parent == x->m->id[ROLE_S];
	case OP_SNAPSHOT:
		return alive(x, ROLE_T) && x->m->nb < MAXB - 1;
	default:
		return alive(x, ROLE_T);
	}
}

/* Run op @p code on the start image's blobs; the model blob it targets. */
int ops_apply(struct run *x, int code, int *target)
{
	int rc = 0;

	*target = ROLE_T;
	switch (code) {
	case OP_CREATE_THIN: *target = ops_create(x, true, 2); break;
	case OP_CREATE_THICK: *target = ops_create(x, false, 1); break;
	case OP_RESIZE_UP: rc = ops_resize(x, ROLE_T, 1); break;
	case OP_RESIZE_DOWN: rc = ops_resize(x, ROLE_T, -1); break;
	case OP_XATTR_SMALL: rc = ops_xattr(x, ROLE_T, "small", 16, false); break;
	case OP_XATTR_BIG: rc = ops_xattr(x, ROLE_T, "big", 7000, false); break;
	case OP_XATTR_RM: rc = ops_xattr(x, ROLE_T, "x0", 0, true); break;
	case OP_WRITE_ALLOC: rc = ops_write(x, ROLE_T, 8); break;
	case OP_WRITE_THIN: *target = ROLE_N; rc = ops_write(x, ROLE_N, CT_UPC + 8); break;
	case OP_WRITE_CROSS: rc = ops_write(x, ROLE_T, CT_UPC - 4); break;
	case OP_WRITE_COW: *target = ROLE_C; rc = ops_write(x, ROLE_C, CT_UPC + 16); break;
	case OP_FLUSH: rc = ops_flush(x); break;
	case OP_SYNC: rc = ops_sync(x, ROLE_T); break;
	case OP_SNAPSHOT: rc = ops_snapshot(x, ROLE_T) < 0 ? -EIO : 0; break;
	case OP_CLONE: *target = ops_clone(x, ROLE_S); break;
	case OP_INFLATE: *target = ROLE_C; rc = ops_reparent(x, ROLE_C, true); break;
	case OP_DECOUPLE: *target = ROLE_C; rc = ops_reparent(x, ROLE_C, false); break;
	case OP_DELETE: *target = -1; rc = ops_delete(x, ROLE_N); break;
	case OP_DELETE_SNAP: *target = ROLE_C; rc = ops_delete(x, ROLE_S); break;
	case OP_RELOAD: *target = -1; rc = ops_reload(x); break;
	case OP_BURST: rc = ops_burst(x); break;
	default: rc = -EINVAL; break;
	}
	if (*target < 0 && code != OP_DELETE && code != OP_RELOAD)
		rc = x->last_err ? x->last_err : -EIO;
	return rc;
}
