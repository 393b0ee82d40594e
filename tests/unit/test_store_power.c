/*
 * Power-fail suite: proves the commit protocol (docs/durability.md) by
 * killing the device at every IO of every metadata-changing operation.
 *
 * Every case builds a base store (bystander blobs, a deleted blob whose
 * clusters hold garbage, the operation's target) and saves its durable
 * image. An operation is a short script of steps (create, sync, resize,
 * delete, ...); a dry run counts its device IOs N. Then, for each state:
 * restore the image, load, run the script with a fault armed, cut the power
 * or just forget the instance, load again and prove what loaded.
 *
 * The oracle (crash-testing.md section 3): the load succeeds, the checker
 * finds no problem (no leaked, lost or doubly owned cluster, every tree
 * valid), and every blob is EXACTLY its state before the operation or its
 * state after it (size, thin and read-only flags, every xattr, allocated
 * clusters, data bytes, zeros everywhere else in its clusters), and the
 * super blob id is old or new. An operation that reported success must be
 * in its new state (D4). The store is then unloaded cleanly and reloaded:
 * the clean path must load the very same state (D7).
 *
 * Three families, each run for every operation and every geometry (512 B
 * and 4 KiB blocks, 64 KiB and 1 MiB clusters):
 *   power_cut_sweep  persistent -EIO from IO k = 1..N+1, then a power cut
 *                    that keeps, drops, tears (3 seeds) or randomly treats
 *                    (3 seeds) every volatile write;
 *   eio_sweep        one -EIO at each IO in turn (per IO kind, so the test
 *                    knows what failed): the operation fails, never hangs,
 *                    a failed metadata write latches the store (D10), and
 *                    the device as it is then loads consistently;
 *   double_failure   the recovery load itself dies (persistent -EIO and a
 *                    power cut) or hits a transient -EIO at each of its IOs;
 *                    the next load is consistent (I12).
 * The first two run on two base images, cleanly unloaded and crashed, so
 * the operation follows a mask load (and first marks the super dirty, D7)
 * or a recovery (no cluster known-zero, D8); the third on the crashed one.
 * Map depth changes use a thin blob of 64 * 1008 + 1 clusters, which needs
 * no space, so every geometry covers them.
 *
 * BS_POWER_LOG=1 shows the library's log lines (hidden otherwise);
 * BS_POWER_FILTER=<glob> runs only the matching cases; BS_POWER_SEEDS=<n>
 * sets the seeds per tearing mode (3, or 1 under a sanitizer).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <blobstore/log.h>

#include "store_env.h"

static const struct store_param g_params[] = {
	{ 512, 64 * 1024, 8ull << 20 },
	{ 4096, 64 * 1024, 8ull << 20 },
	{ 512, 1024 * 1024, 16ull << 20 },
	{ 4096, 1024 * 1024, 16ull << 20 },
};

/* ------------------------------------------------------------------ model */

/* Model blobs: bystanders A and B, targets T and U, G deleted in the base. */
enum { BA, BB, BT, BU, BG, NB };

#define MAXX 4		/* xattrs per blob */
#define MAXE 8		/* written extents per blob */
#define MAXA 8		/* allocated clusters of a thin blob */
#define MAXSTEPS 24
#define NOBLOB (-1)

struct xa {
	const char *name;
	uint32_t len;
	uint64_t seed;		/* value: th_fill(seed) */
};

struct xa_list {
	uint32_t n;
	struct xa x[MAXX];
};

struct mext {
	uint64_t off, len;	/* io units */
	uint64_t seed;		/* pat_fill stream */
};

struct mblob {
	bool known;		/* was created at some point: verify it */
	bool exists;
	bs_blob_id id;
	uint64_t clusters;
	bool thin, ro;
	uint32_t nx;
	struct xa x[MAXX];
	uint32_t next;
	struct mext ext[MAXE];	/* later extents overwrite earlier ones */
	uint32_t nalloc;
	uint64_t alloc[MAXA];	/* thin: allocated cluster indexes */
};

struct model {
	struct mblob b[NB];
	int super;		/* model index of the super blob, NOBLOB if none */
};

/* ------------------------------------------------------------ step script */

enum st {
	S_END, S_CREATE, S_OPEN, S_CLOSE, S_XSET, S_XDEL, S_RO, S_RESIZE, S_WRITE,
	S_SYNC, S_FLUSH, S_DELETE, S_SUPER, S_UNLOAD,
};

struct step {
	enum st kind;
	int b;			/* model blob */
	uint64_t n;		/* clusters (create, resize); 1/16 cluster position (write) */
	uint64_t len;		/* write length in 1/16 clusters */
	uint64_t seed;
	bool thin;
	const struct xa_list *xa;
	struct xa x;		/* xset, xdel */
};

#define CREATE(b_, n_, thin_, xa_) \
	{ .kind = S_CREATE, .b = (b_), .n = (n_), .thin = (thin_), .xa = (xa_) }
#define OPEN(b_) { .kind = S_OPEN, .b = (b_) }
#define CLOSE(b_) { .kind = S_CLOSE, .b = (b_) }
#define XSET(b_, nm_, len_, seed_) { .kind = S_XSET, .b = (b_), .x = { (nm_), (len_), (seed_) } }
#define XDEL(b_, nm_) { .kind = S_XDEL, .b = (b_), .x = { (nm_), 0, 0 } }
#define SETRO(b_) { .kind = S_RO, .b = (b_) }
#define RESIZE(b_, n_) { .kind = S_RESIZE, .b = (b_), .n = (n_) }
#define WRITE(b_, pos_, len_, seed_) \
	{ .kind = S_WRITE, .b = (b_), .n = (pos_), .len = (len_), .seed = (seed_) }
#define SYNC(b_) { .kind = S_SYNC, .b = (b_) }
#define FLUSH() { .kind = S_FLUSH, .b = NOBLOB }
#define DELETE(b_) { .kind = S_DELETE, .b = (b_) }
#define SUPER(b_) { .kind = S_SUPER, .b = (b_) }
#define UNLOAD() { .kind = S_UNLOAD, .b = NOBLOB }
#define END { .kind = S_END, .b = NOBLOB }

/* An operation under test. */
struct pw_op {
	const char *name;
	const struct step *base;	/* builds its target in the base image */
	const struct step *prep;	/* each state, after the load: not counted */
	const struct step *op;		/* the operation: every IO is a cut point */
};

/* IO kinds as fault injection counts them (READV is READ, WRITEV is WRITE). */
enum { K_READ, K_WRITE, K_FLUSH, K_ZEROES, K_UNMAP, K_COPY, NKINDS };
static const int g_kind_io[NKINDS] = {
	BS_IO_READ, BS_IO_WRITE, BS_IO_FLUSH, BS_IO_WRITE_ZEROES, BS_IO_UNMAP, BS_IO_COPY,
};
static const char *const g_kind_name[NKINDS] = {
	"read", "write", "flush", "write_zeroes", "unmap", "copy",
};

struct pw_ctx {
	struct store_env *e;
	struct bs_opts opts;		/* init and every load */
	const struct pw_op *op;
	bool clean_base;		/* base image cleanly unloaded (else crashed) */
	uint8_t *image;			/* durable base image */
	uint8_t *image2;		/* a crashed image (double failure) */
	struct model base;		/* before the operation */
	struct model post;		/* after it */
	struct bs_blob *h[NB];		/* open handles */
	bs_blob_id last_id;		/* of the last create */
	uint64_t tally[MAXSTEPS][NKINDS]; /* dry run: IOs per step and kind */
	uint64_t kinds[NKINDS];
	uint64_t nio;			/* IOs of the operation */
	uint8_t *buf, *want;		/* one cluster each */
	char where[192];		/* the state under test */
	uint64_t states;
	uint64_t fallbacks;		/* loads that used a previous root */
	uint64_t latched;		/* states that proved the D10 latch */
};

/* ------------------------------------------------------------ reporting */

static void pw_fail(const struct pw_ctx *c, const char *what, int line)
{
	print_message("power: %s [%s]: line %d: %s\n", c->op ? c->op->name : "-", c->where,
		      line, what);
	fail();
}

#define PW_CHECK(c, cond) do { if (!(cond)) pw_fail((c), #cond, __LINE__); } while (0)
#define PW_EQ(c, a, b) do {                                                           \
	long long a_ = (long long)(a), b_ = (long long)(b);                          \
	if (a_ != b_) {                                                               \
		char m_[256];                                                         \
		snprintf(m_, sizeof(m_), "%s == %s (%lld != %lld)", #a, #b, a_, b_);  \
		pw_fail((c), m_, __LINE__);                                           \
	}                                                                             \
} while (0)

static bool miss(bool verbose, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A mismatch against one expected state: say why when asked. */
static bool miss(bool verbose, const char *fmt, ...)
{
	va_list ap;

	if (verbose) {
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	return false;
}

static void pw_log_hook(void *arg, enum bs_log_level level, const char *line)
{
	(void)arg;
	(void)level;
	(void)line;
}

/* ------------------------------------------------------------ geometry */

static uint64_t upc(const struct pw_ctx *c)
{
	return c->e->cluster_size / c->e->block_len;
}

/* 1/16 cluster positions (step scripts) to io units. */
static uint64_t sixteenths(const struct pw_ctx *c, uint64_t n)
{
	return n * (upc(c) / 16);
}

/* Data pattern: word w of stream @seed, so any range can be rebuilt alone. */
static void pat_fill(uint8_t *buf, uint64_t seed, uint64_t byte_off, uint64_t len)
{
	for (uint64_t i = 0; i < len; i += 8) {
		uint64_t s = seed * 0x9e3779b97f4a7c15ull + (byte_off + i) / 8;
		uint64_t v = th_rand(&s);

		memcpy(buf + i, &v, 8);
	}
}

/* ------------------------------------------------------------ model ops */

static void mblob_create(struct mblob *b, const struct step *s, bs_blob_id id)
{
	memset(b, 0, sizeof(*b));
	b->known = true;
	b->exists = true;
	b->id = id;
	b->clusters = s->n;
	b->thin = s->thin;
	for (uint32_t i = 0; s->xa != NULL && i < s->xa->n; i++)
		b->x[b->nx++] = s->xa->x[i];
}

static void mx_del(struct mblob *b, const char *name)
{
	for (uint32_t i = 0; i < b->nx; i++) {
		if (strcmp(b->x[i].name, name) == 0) {
			memmove(&b->x[i], &b->x[i + 1], (b->nx - i - 1) * sizeof(b->x[0]));
			b->nx--;
			return;
		}
	}
}

static void mx_put(struct mblob *b, const struct xa *x)
{
	for (uint32_t i = 0; i < b->nx; i++) {
		if (strcmp(b->x[i].name, x->name) == 0) {
			b->x[i] = *x;
			return;
		}
	}
	assert_true(b->nx < MAXX);
	b->x[b->nx++] = *x;
}

static void mblob_note_alloc(struct mblob *b, uint64_t ci)
{
	for (uint32_t i = 0; i < b->nalloc; i++)
		if (b->alloc[i] == ci)
			return;
	assert_true(b->nalloc < MAXA);
	b->alloc[b->nalloc++] = ci;
}

static void mblob_write(const struct pw_ctx *c, struct mblob *b, const struct step *s)
{
	struct mext x = { sixteenths(c, s->n), sixteenths(c, s->len), s->seed };

	assert_true(b->next < MAXE);
	b->ext[b->next++] = x;
	for (uint64_t ci = x.off / upc(c); b->thin && ci <= (x.off + x.len - 1) / upc(c); ci++)
		mblob_note_alloc(b, ci);
}

/* Shrink: drop allocations and clip extents past the new end. */
static void mblob_resize(const struct pw_ctx *c, struct mblob *b, uint64_t n)
{
	uint64_t end = n * upc(c);
	uint32_t j = 0;

	for (uint32_t i = 0; i < b->nalloc; i++)
		if (b->alloc[i] < n)
			b->alloc[j++] = b->alloc[i];
	b->nalloc = j;
	j = 0;
	for (uint32_t i = 0; i < b->next; i++) {
		struct mext x = b->ext[i];

		if (x.off >= end)
			continue;
		x.len = x.off + x.len > end ? end - x.off : x.len;
		b->ext[j++] = x;
	}
	b->next = j;
	b->clusters = n;
}

/* What a successful step does to the model. */
static void model_apply(struct pw_ctx *c, struct model *m, const struct step *s)
{
	struct mblob *b = s->b >= 0 ? &m->b[s->b] : NULL;

	switch (s->kind) {
	case S_CREATE:
		mblob_create(b, s, c->last_id);
		break;
	case S_XSET:
		mx_put(b, &s->x);
		break;
	case S_XDEL:
		mx_del(b, s->x.name);
		break;
	case S_RO:
		b->ro = true;
		break;
	case S_RESIZE:
		mblob_resize(c, b, s->n);
		break;
	case S_WRITE:
		mblob_write(c, b, s);
		break;
	case S_DELETE:
		b->exists = false;
		break;
	case S_SUPER:
		m->super = s->b;
		break;
	default:
		break;
	}
}

/* ------------------------------------------------------------ executor */

static int env_set_super(struct store_env *e, bs_blob_id id)
{
	struct th_cpl cpl = { 0 };

	bs_set_super(e->bs, id, th_cpl_fn, &cpl);
	return env_wait(e, &cpl);
}

static int step_create(struct pw_ctx *c, const struct step *s, const struct model *m)
{
	struct bs_xattr xs[MAXX];
	void *vals[MAXX] = { NULL };
	uint32_t n = s->xa != NULL ? s->xa->n : 0;
	struct th_cpl cpl = { 0 };
	struct bs_blob_opts o;
	bs_blob_id id = 0;
	int rc;

	for (uint32_t i = 0; i < n; i++) {
		vals[i] = malloc(s->xa->x[i].len);
		th_fill(vals[i], s->xa->x[i].len, s->xa->x[i].seed);
		xs[i] = (struct bs_xattr){ s->xa->x[i].name, vals[i], s->xa->x[i].len };
	}
	bs_blob_opts_init(&o, sizeof(o));
	o.num_clusters = s->n;
	o.thin_provision = s->thin;
	o.xattrs = xs;
	o.xattr_count = n;
	bs_blob_create(c->e->bs, &o, &id, th_cpl_fn, &cpl);
	rc = env_wait(c->e, &cpl);
	for (uint32_t i = 0; i < n; i++)
		free(vals[i]);
	if (rc == 0 && m == NULL)
		PW_EQ(c, id, c->post.b[s->b].id); /* the same id as in the dry run */
	c->last_id = id;
	return rc;
}

static int step_xset(struct pw_ctx *c, const struct step *s)
{
	uint8_t *v = malloc(s->x.len ? s->x.len : 1);
	int rc;

	th_fill(v, s->x.len, s->x.seed);
	rc = bs_blob_set_xattr(c->h[s->b], s->x.name, v, s->x.len);
	free(v);
	return rc;
}

static int step_write(struct pw_ctx *c, const struct step *s)
{
	uint64_t off = sixteenths(c, s->n), len = sixteenths(c, s->len);
	uint8_t *buf = env_buf(len * c->e->block_len);
	int rc;

	pat_fill(buf, s->seed, 0, len * c->e->block_len);
	rc = env_write(c->e, c->h[s->b], buf, off, len);
	free(buf);
	return rc;
}

static int step_close(struct pw_ctx *c, int b)
{
	int rc = env_close(c->e, c->h[b]);

	c->h[b] = NULL; /* released even when the sync failed */
	return rc;
}

/* Run one step; ids come from @m while it is being built, else from post. */
static int pw_step(struct pw_ctx *c, const struct step *s, const struct model *m)
{
	const struct model *ids = m != NULL ? m : &c->post;
	bs_blob_id id = s->b >= 0 ? ids->b[s->b].id : 0;
	struct store_env *e = c->e;

	switch (s->kind) {
	case S_CREATE:
		return step_create(c, s, m);
	case S_OPEN:
		return env_open(e, id, &c->h[s->b]);
	case S_CLOSE:
		return step_close(c, s->b);
	case S_XSET:
		return step_xset(c, s);
	case S_XDEL:
		return bs_blob_remove_xattr(c->h[s->b], s->x.name);
	case S_RO:
		return bs_blob_set_read_only(c->h[s->b]);
	case S_RESIZE:
		return env_resize(e, c->h[s->b], s->n);
	case S_WRITE:
		return step_write(c, s);
	case S_SYNC:
		return env_sync(e, c->h[s->b]);
	case S_FLUSH:
		return env_flush(e);
	case S_DELETE:
		return env_delete(e, id);
	case S_SUPER:
		return env_set_super(e, id);
	case S_UNLOAD:
		return env_unload(e);
	default:
		return -EINVAL;
	}
}

static void tally_add(uint64_t *t, const struct bs_ram_dev_stats *a,
		      const struct bs_ram_dev_stats *b)
{
	t[K_READ] += b->ops[BS_IO_READ] + b->ops[BS_IO_READV] - a->ops[BS_IO_READ] -
		     a->ops[BS_IO_READV];
	t[K_WRITE] += b->ops[BS_IO_WRITE] + b->ops[BS_IO_WRITEV] - a->ops[BS_IO_WRITE] -
		      a->ops[BS_IO_WRITEV];
	t[K_FLUSH] += b->ops[BS_IO_FLUSH] - a->ops[BS_IO_FLUSH];
	t[K_ZEROES] += b->ops[BS_IO_WRITE_ZEROES] - a->ops[BS_IO_WRITE_ZEROES];
	t[K_UNMAP] += b->ops[BS_IO_UNMAP] - a->ops[BS_IO_UNMAP];
	t[K_COPY] += b->ops[BS_IO_COPY] - a->ops[BS_IO_COPY];
}

/*
 * Run @steps until one fails; return its error. With @m, apply each
 * successful step to it. With @tally, count each step's IOs by kind.
 */
static int run_steps(struct pw_ctx *c, const struct step *steps, struct model *m, bool tally)
{
	for (int i = 0; steps[i].kind != S_END; i++) {
		struct bs_ram_dev_stats s0, s1;
		int rc;

		assert_true(i < MAXSTEPS);
		bs_ram_dev_get_stats(c->e->dev, &s0);
		rc = pw_step(c, &steps[i], m);
		bs_ram_dev_get_stats(c->e->dev, &s1);
		if (tally)
			tally_add(c->tally[i], &s0, &s1);
		if (rc != 0)
			return rc;
		if (m != NULL)
			model_apply(c, m, &steps[i]);
	}
	return 0;
}

/* The step of the operation that issued the @j-th IO of @kind (dry run). */
static int step_of(const struct pw_ctx *c, int kind, uint64_t j)
{
	uint64_t seen = 0;

	for (int i = 0; c->op->op[i].kind != S_END; i++) {
		seen += c->tally[i][kind];
		if (seen >= j)
			return i;
	}
	return -1;
}

/* ------------------------------------------------------------ device image */

static void dev_io_wait(struct pw_ctx *c, struct th_cpl *cpl)
{
	PW_EQ(c, env_wait(c->e, cpl), 0);
}

/*
 * Put @image back on the device: empty its cache, rewrite the 64 KiB
 * chunks that differ, flush. Cheaper than a new device (no page faults)
 * and leaves it exactly as one created from the image.
 */
static void dev_restore(struct pw_ctx *c, const uint8_t *image)
{
	const uint64_t chunk = 64 * 1024;
	struct store_env *e = c->e;
	uint64_t bpc = chunk / e->block_len;
	const uint8_t *view;
	struct bs_io_channel *ch;
	struct bs_dev_io io;
	struct th_cpl cpl;

	bs_ram_dev_power_cut(e->dev, BS_CUT_KEEP_ALL, 0);
	bs_ram_dev_power_on(e->dev);
	bs_ram_dev_clear_faults(e->dev);
	view = bs_ram_dev_view(e->dev);
	ch = bs_dev_get_channel(e->dev);
	assert_non_null(ch);
	for (uint64_t off = 0; off < e->dev_bytes; off += chunk) {
		if (memcmp(view + off, image + off, chunk) == 0)
			continue;
		memset(&cpl, 0, sizeof(cpl));
		bs_dev_write(ch, &io, image + off, off / e->block_len, bpc, th_cpl_fn, &cpl);
		dev_io_wait(c, &cpl);
	}
	memset(&cpl, 0, sizeof(cpl));
	bs_dev_flush(ch, &io, th_cpl_fn, &cpl);
	dev_io_wait(c, &cpl);
	bs_dev_put_channel(ch);
	th_poll_idle(e->t);
	bs_ram_dev_reset_stats(e->dev);
}

static uint64_t stats_total(struct pw_ctx *c)
{
	struct bs_ram_dev_stats s;
	uint64_t n = 0;

	bs_ram_dev_get_stats(c->e->dev, &s);
	for (int k = 0; k < BS_IO_NTYPES; k++)
		n += s.ops[k];
	return n + s.failed;
}

/* ------------------------------------------------------------ verification */

static bool xattrs_match(struct bs_blob *h, const struct mblob *m, bool verbose)
{
	uint32_t count = bs_blob_get_xattr_count(h);

	if (count != m->nx)
		return miss(verbose, "  %u xattrs, want %u", count, m->nx);
	for (uint32_t i = 0; i < m->nx; i++) {
		const struct xa *x = &m->x[i];
		uint8_t *want = malloc(x->len ? x->len : 1);
		const void *v;
		uint32_t len;
		bool eq;

		th_fill(want, x->len, x->seed);
		eq = bs_blob_get_xattr(h, x->name, &v, &len) == 0 && len == x->len &&
		     memcmp(v, want, len) == 0;
		free(want);
		if (!eq)
			return miss(verbose, "  xattr %s missing or differs (want %u bytes)",
				    x->name, x->len);
	}
	return true;
}

static bool allocs_match(const struct pw_ctx *c, struct bs_blob *h, const struct mblob *m,
			 bool verbose)
{
	uint64_t want = m->thin ? m->nalloc : m->clusters;
	uint64_t have = bs_blob_get_num_allocated_clusters(h);

	if (have != want)
		return miss(verbose, "  %" PRIu64 " clusters allocated, want %" PRIu64, have, want);
	for (uint32_t i = 0; m->thin && i < m->nalloc; i++) {
		if (bs_blob_next_allocated_io_unit(h, m->alloc[i] * upc(c)) != m->alloc[i] * upc(c))
			return miss(verbose, "  cluster %" PRIu64 " not allocated", m->alloc[i]);
	}
	return true;
}

/* Expected bytes of blob cluster @ci: zeros (D8) under the written extents. */
static void expect_cluster(struct pw_ctx *c, const struct mblob *m, uint64_t ci)
{
	uint64_t lo0 = ci * upc(c), hi0 = lo0 + upc(c), bl = c->e->block_len;

	memset(c->want, 0, c->e->cluster_size);
	for (uint32_t i = 0; i < m->next; i++) {
		const struct mext *x = &m->ext[i];
		uint64_t lo = x->off > lo0 ? x->off : lo0;
		uint64_t hi = x->off + x->len < hi0 ? x->off + x->len : hi0;

		if (lo < hi)
			pat_fill(c->want + (lo - lo0) * bl, x->seed, (lo - x->off) * bl,
				 (hi - lo) * bl);
	}
}

static bool cluster_match(struct pw_ctx *c, struct bs_blob *h, const struct mblob *m,
			  uint64_t ci, bool verbose)
{
	uint64_t n = c->e->cluster_size;

	PW_EQ(c, env_read(c->e, h, c->buf, ci * upc(c), upc(c)), 0);
	expect_cluster(c, m, ci);
	if (memcmp(c->buf, c->want, n) == 0)
		return true;
	for (uint64_t i = 0; i < n; i++) {
		if (c->buf[i] != c->want[i])
			return miss(verbose, "  cluster %" PRIu64 " differs at byte %" PRIu64
				    " (0x%02x, want 0x%02x)", ci, i, c->buf[i], c->want[i]);
	}
	return false;
}

static bool data_match(struct pw_ctx *c, struct bs_blob *h, const struct mblob *m, bool verbose)
{
	uint64_t n = m->thin ? m->nalloc : m->clusters;

	for (uint64_t i = 0; i < n; i++) {
		if (!cluster_match(c, h, m, m->thin ? m->alloc[i] : i, verbose))
			return false;
	}
	return true;
}

/* Is the open blob @h exactly in state @m? */
static bool blob_match(struct pw_ctx *c, struct bs_blob *h, const struct mblob *m, bool verbose)
{
	if (!m->exists)
		return miss(verbose, "  the blob exists");
	if (bs_blob_get_num_clusters(h) != m->clusters)
		return miss(verbose, "  %" PRIu64 " clusters, want %" PRIu64,
			    bs_blob_get_num_clusters(h), m->clusters);
	if (bs_blob_is_thin(h) != m->thin || bs_blob_is_read_only(h) != m->ro)
		return miss(verbose, "  thin %d read-only %d, want %d %d", bs_blob_is_thin(h),
			    bs_blob_is_read_only(h), m->thin, m->ro);
	return xattrs_match(h, m, verbose) && allocs_match(c, h, m, verbose) &&
	       data_match(c, h, m, verbose);
}

struct tally_v {
	uint64_t opened;		/* model blobs that exist */
	uint64_t allocated;		/* their clusters */
};

/* Which of old (bit 0) and new (bit 1) model blob @b matches. */
static uint32_t verify_blob(struct pw_ctx *c, int b, bool verbose, struct tally_v *t)
{
	const struct mblob *o = &c->base.b[b], *n = &c->post.b[b];
	bs_blob_id id = n->id != 0 ? n->id : o->id;
	struct bs_blob *h;
	uint32_t mask;
	int rc = env_open(c->e, id, &h);

	if (rc == -ENOENT) {
		if (verbose)
			fprintf(stderr, " blob %d (0x%" PRIx64 "): does not exist\n", b, id);
		return (uint32_t)!o->exists | (uint32_t)!n->exists << 1;
	}
	PW_EQ(c, rc, 0);
	if (verbose)
		fprintf(stderr, " blob %d (0x%" PRIx64 ") against its old state:\n", b, id);
	mask = blob_match(c, h, o, verbose);
	if (verbose)
		fprintf(stderr, " blob %d against its new state:\n", b);
	mask |= (uint32_t)blob_match(c, h, n, verbose) << 1;
	t->opened++;
	t->allocated += bs_blob_get_num_allocated_clusters(h);
	PW_EQ(c, env_close(c->e, h), 0);
	return mask;
}

static uint32_t verify_super(struct pw_ctx *c)
{
	bs_blob_id id = 0, want[2];
	int rc = bs_get_super(c->e->bs, &id);
	uint32_t mask = 0;

	PW_CHECK(c, rc == 0 || rc == -ENOENT);
	want[0] = c->base.super >= 0 ? c->base.b[c->base.super].id : 0;
	want[1] = c->post.super >= 0 ? c->post.b[c->post.super].id : 0;
	for (int s = 0; s < 2; s++)
		mask |= (uint32_t)(id == want[s]) << s;
	return mask;
}

static uint64_t count_listed(struct bs_store *bs)
{
	uint64_t n = 0;

	for (bs_blob_id id = bs_iter_first(bs); id != BS_BLOB_ID_INVALID; id = bs_iter_next(bs, id))
		n++;
	return n;
}

/* Check a blob/super match mask: old or new, new when the operation succeeded. */
static bool mask_ok(uint32_t m, bool op_ok)
{
	return m != 0 && (!op_ok || (m & 2) != 0);
}

/*
 * Prove the loaded store holds, blob by blob, the old or the new state
 * (only the new one if @op_ok), that nothing else is listed and that
 * every data cluster is free or owned. Returns the match masks; with
 * @want, they must equal it (a reload shows the same state).
 */
static uint32_t verify_all(struct pw_ctx *c, bool op_ok, uint32_t want)
{
	struct tally_v t = { 0, 0 };
	uint32_t acc = 0, m;
	struct bs_store *bs;

	for (int b = 0; b < NB; b++) {
		if (!c->base.b[b].known && !c->post.b[b].known)
			continue;
		m = verify_blob(c, b, false, &t);
		if (!mask_ok(m, op_ok)) {
			verify_blob(c, b, true, &t);
			pw_fail(c, "a blob is in neither its old nor (when required) its new state",
				__LINE__);
		}
		acc |= m << (2 * b);
	}
	m = verify_super(c);
	if (!mask_ok(m, op_ok))
		pw_fail(c, "super blob id is neither old nor (when required) new", __LINE__);
	acc |= m << (2 * NB);
	bs = c->e->bs;
	PW_EQ(c, count_listed(bs), t.opened);
	PW_EQ(c, bs_iter_corrupt(bs, BS_BLOB_ID_INVALID), BS_BLOB_ID_INVALID);
	PW_EQ(c, t.allocated + bs_get_free_cluster_count(bs), bs_get_total_data_cluster_count(bs));
	if (want != 0)
		PW_EQ(c, acc, want);
	return acc;
}

static void check_msg(void *arg, bs_blob_id id, const char *msg)
{
	const struct pw_ctx *c = arg;

	print_message("power: %s [%s]: check: blob 0x%" PRIx64 ": %s\n", c->op->name, c->where,
		      id, msg);
}

/* The checker re-reads everything from the device: 0 problems. */
static void store_check(struct pw_ctx *c)
{
	struct bs_check_report r;
	struct th_cpl cpl = { 0 };

	bs_check(c->e->bs, &r, check_msg, c, th_cpl_fn, &cpl);
	PW_EQ(c, env_wait(c->e, &cpl), 0);
	PW_EQ(c, r.problems, 0);
	PW_EQ(c, r.leaked_clusters + r.lost_clusters + r.double_owned_clusters, 0);
}

/* ------------------------------------------------------------ states */

static bool op_is_unload(const struct pw_op *op)
{
	int i = 0;

	while (op->op[i].kind != S_END)
		i++;
	return i > 0 && op->op[i - 1].kind == S_UNLOAD;
}

/*
 * Prove the loaded store (the oracle in the head comment), then unload it
 * cleanly and prove the clean load shows the same state (D7).
 */
static void state_prove(struct pw_ctx *c, bool op_ok)
{
	struct bs_load_report r;
	uint32_t mask;

	bs_get_load_report(c->e->bs, &r);
	PW_EQ(c, r.corrupt_blobs, 0);
	c->fallbacks += r.fallback_roots != 0;
	if (op_ok && op_is_unload(c->op))
		PW_CHECK(c, r.was_clean); /* D7: a completed unload loads from its masks */
	store_check(c);
	mask = verify_all(c, op_ok, 0);
	PW_EQ(c, env_unload(c->e), 0);
	PW_EQ(c, env_load(c->e, &c->opts), 0);
	bs_get_load_report(c->e->bs, &r);
	PW_CHECK(c, r.was_clean);
	store_check(c);
	verify_all(c, op_ok, mask);
	PW_EQ(c, env_unload(c->e), 0);
	c->states++;
}

static void state_recover(struct pw_ctx *c, bool op_ok)
{
	PW_EQ(c, env_load(c->e, &c->opts), 0);
	state_prove(c, op_ok);
}

/* Restore @image, load it, prepare: the store as the operation finds it. */
static void state_begin(struct pw_ctx *c, const uint8_t *image)
{
	dev_restore(c, image);
	PW_EQ(c, env_load(c->e, &c->opts), 0);
	PW_EQ(c, run_steps(c, c->op->prep, NULL, false), 0);
	bs_ram_dev_reset_stats(c->e->dev);
}

/* Power cut (or KEEP_ALL: none), drop the instance, power on, no faults. */
static void state_crash(struct pw_ctx *c, enum bs_power_cut_mode mode, uint64_t seed)
{
	env_crash(c->e, mode, seed);
	memset(c->h, 0, sizeof(c->h));
	bs_ram_dev_clear_faults(c->e->dev);
}

static const char *const g_mode_name[] = { "keep", "drop", "random", "tear" };

static void where(struct pw_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Name the state under test (failure messages). */
static void where(struct pw_ctx *c, const char *fmt, ...)
{
	int n = snprintf(c->where, sizeof(c->where), "%s base, %u B blocks, %u KiB clusters: ",
			 c->clean_base ? "clean" : "crashed", c->e->block_len,
			 c->e->cluster_size / 1024);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->where + n, sizeof(c->where) - (size_t)n, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------ base image */

static const struct xa_list xa_name = { 1, { { "name", 5, 0xa1 } } };

/* Bystanders and garbage every base holds: G's freed clusters are not zero. */
static const struct step g_base_common[] = {
	CREATE(BG, 3, false, NULL), OPEN(BG), WRITE(BG, 0, 48, 0x6a), SYNC(BG), CLOSE(BG),
	DELETE(BG),
	CREATE(BA, 1, false, &xa_name), OPEN(BA), WRITE(BA, 2, 4, 0xa2), SYNC(BA), CLOSE(BA),
	CREATE(BB, 3, true, NULL), OPEN(BB), WRITE(BB, 17, 2, 0xb1), SYNC(BB), CLOSE(BB),
	END
};

/* Build the base on a fresh store and save its durable image. */
static void build_base(struct pw_ctx *c, bool clean)
{
	struct store_env *e = c->e;

	c->clean_base = clean;
	where(c, "building the base");
	memset(&c->base, 0, sizeof(c->base));
	c->base.super = NOBLOB;
	bs_ram_dev_power_cut(e->dev, BS_CUT_KEEP_ALL, 0);
	bs_ram_dev_power_on(e->dev);
	bs_ram_dev_clear_faults(e->dev);
	PW_EQ(c, env_init_store(e, &c->opts), 0);
	PW_EQ(c, run_steps(c, g_base_common, &c->base, false), 0);
	PW_EQ(c, run_steps(c, c->op->base, &c->base, false), 0);
	PW_EQ(c, env_flush(e), 0);
	if (clean)
		PW_EQ(c, env_unload(e), 0);
	else
		env_crash(e, BS_CUT_DROP_ALL, 0); /* all flushed: nothing is lost */
	memcpy(c->image, bs_ram_dev_durable(e->dev), e->dev_bytes);
}

/*
 * Dry run: the operation without faults. Counts its IOs (per step and
 * kind), completes the models (prep effects, the new state with the ids
 * the run assigned), and proves the completed state after a power cut.
 */
static void dry_run(struct pw_ctx *c)
{
	int rc;

	where(c, "dry run");
	dev_restore(c, c->image);
	PW_EQ(c, env_load(c->e, &c->opts), 0);
	PW_EQ(c, run_steps(c, c->op->prep, &c->base, false), 0);
	c->post = c->base;
	memset(c->tally, 0, sizeof(c->tally));
	bs_ram_dev_reset_stats(c->e->dev);
	rc = run_steps(c, c->op->op, &c->post, true);
	PW_EQ(c, rc, 0);
	c->nio = stats_total(c);
	memset(c->kinds, 0, sizeof(c->kinds));
	for (int i = 0; i < MAXSTEPS; i++)
		for (int k = 0; k < NKINDS; k++)
			c->kinds[k] += c->tally[i][k];
	state_crash(c, BS_CUT_DROP_ALL, 0);
	state_recover(c, true);
}

/* ------------------------------------------------------------ sweeps */

/*
 * The device dies at IO k: that IO and every later one fail. Then the
 * power goes (@mode, @seed). A reported success means the new state (D4).
 */
static void cut_state(struct pw_ctx *c, uint64_t k, enum bs_power_cut_mode mode, uint64_t seed)
{
	int rc;

	where(c, "device dies at IO %" PRIu64 " of %" PRIu64 ", power cut %s seed %" PRIu64, k,
	      c->nio, g_mode_name[mode], seed);
	state_begin(c, c->image);
	bs_ram_dev_inject(c->e->dev, BS_RAM_ANY_IO, k, -EIO, true);
	rc = run_steps(c, c->op->op, NULL, false);
	if (k <= c->nio)
		PW_CHECK(c, rc != 0); /* D4: no success without its flush */
	else
		PW_EQ(c, rc, 0);
	state_crash(c, mode, seed);
	state_recover(c, rc == 0);
}

/* Seeds per tearing mode: 3, 1 under a sanitizer; BS_POWER_SEEDS overrides. */
#if defined(__SANITIZE_ADDRESS__)
#define PW_SEEDS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PW_SEEDS 1
#endif
#endif
#ifndef PW_SEEDS
#define PW_SEEDS 3
#endif

static uint64_t seeds(void)
{
	const char *v = getenv("BS_POWER_SEEDS");

	return v != NULL && atoi(v) > 0 ? (uint64_t)atoi(v) : PW_SEEDS;
}

static void cut_sweep_base(struct pw_ctx *c)
{
	uint64_t nseeds = seeds();

	dry_run(c);
	for (uint64_t k = 1; k <= c->nio + 1; k++) {
		cut_state(c, k, BS_CUT_KEEP_ALL, 0);
		cut_state(c, k, BS_CUT_DROP_ALL, 0);
		for (uint64_t s = 1; s <= nseeds; s++) {
			cut_state(c, k, BS_CUT_TEAR_ALL, k * 100 + s);
			cut_state(c, k, BS_CUT_RANDOM, k * 100 + s);
		}
	}
}

/* D10: metadata calls fail with -EIO; reads of open blobs still work. */
static void prove_latched(struct pw_ctx *c)
{
	struct store_env *e = c->e;
	bs_blob_id id;

	PW_CHECK(c, bs_get_error(e->bs) != 0);
	c->latched++;
	PW_EQ(c, env_create(e, 1, true, &id), -EIO);
	PW_EQ(c, env_set_super(e, BS_BLOB_ID_INVALID), -EIO);
	PW_EQ(c, env_flush(e), -EIO);
	PW_EQ(c, env_delete(e, c->post.b[BB].id), -EIO);
	if (c->h[BA] == NULL)
		return;
	PW_EQ(c, env_sync(e, c->h[BA]), -EIO);
	PW_EQ(c, env_resize(e, c->h[BA], 2), -EIO);
	PW_CHECK(c, cluster_match(c, c->h[BA], &c->base.b[BA], 0, true));
}

static bool kind_writes(int kind)
{
	return kind == K_WRITE || kind == K_FLUSH || kind == K_ZEROES;
}

/*
 * One transient -EIO at the @j-th IO of @kind. The operation fails (an
 * unmap is a hint and may be lost); a failed metadata write or flush
 * latches the store (D10). Then the instance is dropped and the device,
 * as it is, loads consistently.
 */
static void eio_state(struct pw_ctx *c, int kind, uint64_t j)
{
	int step = step_of(c, kind, j), rc;
	bool data;

	assert_true(step >= 0);
	data = c->op->op[step].kind == S_WRITE;
	where(c, "one -EIO at %s %" PRIu64 " of %" PRIu64 " (step %d)", g_kind_name[kind], j,
	      c->kinds[kind], step);
	state_begin(c, c->image);
	bs_ram_dev_inject(c->e->dev, g_kind_io[kind], j, -EIO, false);
	rc = run_steps(c, c->op->op, NULL, false);
	if (kind != K_UNMAP)
		PW_CHECK(c, rc != 0);
	if (!data && kind_writes(kind) && c->e->bs != NULL)
		PW_CHECK(c, bs_get_error(c->e->bs) != 0);
	if (c->e->bs != NULL && bs_get_error(c->e->bs) != 0)
		prove_latched(c);
	state_crash(c, BS_CUT_KEEP_ALL, 0);
	state_recover(c, rc == 0);
}

static void eio_sweep_base(struct pw_ctx *c)
{
	dry_run(c);
	for (int kind = 0; kind < NKINDS; kind++)
		for (uint64_t j = 1; j <= c->kinds[kind]; j++)
			eio_state(c, kind, j);
}

/*
 * Reach a crashed image (the device dies at IO @k, power cut RANDOM @seed),
 * save it in image2 and count the IOs of the load that recovers it.
 */
static uint64_t double_prepare(struct pw_ctx *c, uint64_t k, uint64_t seed, bool *op_ok,
			       bool *fell_back)
{
	struct bs_load_report r;
	uint64_t n;
	int rc;

	where(c, "device dies at IO %" PRIu64 " of %" PRIu64 ", power cut random seed %" PRIu64,
	      k, c->nio, seed);
	state_begin(c, c->image);
	bs_ram_dev_inject(c->e->dev, BS_RAM_ANY_IO, k, -EIO, true);
	rc = run_steps(c, c->op->op, NULL, false);
	*op_ok = rc == 0;
	state_crash(c, BS_CUT_RANDOM, seed);
	memcpy(c->image2, bs_ram_dev_durable(c->e->dev), c->e->dev_bytes);
	bs_ram_dev_reset_stats(c->e->dev);
	PW_EQ(c, env_load(c->e, &c->opts), 0);
	n = stats_total(c);
	bs_get_load_report(c->e->bs, &r);
	*fell_back = r.fallback_roots != 0;
	env_abandon(c->e);
	return n;
}

/* The recovery load dies at its IO @j (and the power goes): it fails; the next one works. */
static void double_load_crash(struct pw_ctx *c, uint64_t j, uint64_t m, bool op_ok)
{
	size_t n = strlen(c->where);

	snprintf(c->where + n, sizeof(c->where) - n, "; load dies at IO %" PRIu64 " of %" PRIu64,
		 j, m);
	dev_restore(c, c->image2);
	bs_ram_dev_inject(c->e->dev, BS_RAM_ANY_IO, j, -EIO, true);
	PW_CHECK(c, env_load(c->e, &c->opts) != 0);
	state_crash(c, BS_CUT_RANDOM, j);
	state_recover(c, op_ok);
	c->where[n] = '\0';
}

/* One transient -EIO at the load's IO @j: it fails, or what it loads is right. */
static void double_load_eio(struct pw_ctx *c, uint64_t j, uint64_t m, bool op_ok)
{
	size_t n = strlen(c->where);
	int rc;

	snprintf(c->where + n, sizeof(c->where) - n,
		 "; one -EIO at load IO %" PRIu64 " of %" PRIu64, j, m);
	dev_restore(c, c->image2);
	bs_ram_dev_inject(c->e->dev, BS_RAM_ANY_IO, j, -EIO, false);
	rc = env_load(c->e, &c->opts);
	bs_ram_dev_clear_faults(c->e->dev);
	if (rc == 0)
		state_prove(c, op_ok);
	else
		state_recover(c, op_ok);
	c->where[n] = '\0';
}

/*
 * Cut points: at the last IO (the commit's flush; look for a seed whose
 * recovery falls back to a previous root and so rewrites it: the load both
 * dies and meets a transient error at each of its IOs), half way (the load
 * dies), and after the operation (transient errors: a completed operation
 * must survive them, never be rolled back).
 */
static void double_sweep_base(struct pw_ctx *c)
{
	uint64_t ks[3];
	bool op_ok, fell_back;

	dry_run(c);
	ks[0] = c->nio;
	ks[1] = c->nio / 2 + 1;
	ks[2] = c->nio + 1;

	for (int i = 0; i < 3; i++) {
		uint64_t m = 0, seed = 0;

		if (i == 1 && ks[1] == ks[0])
			continue;
		do {
			seed++;
			m = double_prepare(c, ks[i], seed, &op_ok, &fell_back);
		} while (i == 0 && !fell_back && seed < 16);
		for (uint64_t j = 1; i < 2 && j <= m; j++)
			double_load_crash(c, j, m, op_ok);
		for (uint64_t j = 1; i != 1 && j <= m; j++)
			double_load_eio(c, j, m, op_ok);
	}
}

/* ------------------------------------------------------------ operations */

static const struct xa_list xa_small = { 2, { { "owner", 5, 0x51 }, { "tag", 100, 0x52 } } };
static const struct xa_list xa_big = { 2, { { "big", 6000, 0x61 }, { "small", 10, 0x62 } } };
static const struct step g_none[] = { END };
static const struct step g_reader[] = { OPEN(BA), END };

#define DEPTH2 (64ull * 1008 + 1) /* clusters: the map needs an index level */

static const struct step op_create_thin_op[] = { CREATE(BU, 4, true, NULL), END };
static const struct pw_op op_create_thin = { "create_thin", g_none, g_reader,
					     op_create_thin_op };

static const struct step op_create_thick_op[] = { CREATE(BU, 2, false, NULL), END };
static const struct pw_op op_create_thick = { "create_thick", g_none, g_reader,
					      op_create_thick_op };

static const struct step op_create_xattrs_inline_op[] = { CREATE(BU, 1, true, &xa_small), END };
static const struct pw_op op_create_xattrs_inline = { "create_xattrs_inline", g_none, g_reader,
						      op_create_xattrs_inline_op };

static const struct step op_create_xattr_pages_op[] = { CREATE(BU, 1, false, &xa_big), END };
static const struct pw_op op_create_xattr_pages = { "create_xattr_pages", g_none, g_reader,
						    op_create_xattr_pages_op };

static const struct step xattr_inline_base[] = {
	CREATE(BT, 1, false, &xa_small), OPEN(BT), WRITE(BT, 1, 2, 0x71), SYNC(BT), CLOSE(BT), END
};
static const struct step xattr_pages_base[] = {
	CREATE(BT, 2, true, &xa_big), OPEN(BT), WRITE(BT, 20, 2, 0x72), SYNC(BT), CLOSE(BT), END
};
static const struct step g_reader_t[] = { OPEN(BA), OPEN(BT), END };

static const struct step op_sync_xattrs_to_pages_op[] = {
	XSET(BT, "big", 9000, 0x73), SYNC(BT), END
};
static const struct pw_op op_sync_xattrs_to_pages = { "sync_xattrs_to_pages", xattr_inline_base,
						      g_reader_t, op_sync_xattrs_to_pages_op };

static const struct step op_sync_xattrs_to_inline_op[] = {
	XDEL(BT, "big"), XSET(BT, "owner", 7, 0x74), SYNC(BT), END
};
static const struct pw_op op_sync_xattrs_to_inline = { "sync_xattrs_to_inline", xattr_pages_base,
						       g_reader_t, op_sync_xattrs_to_inline_op };

static const struct step op_sync_read_only_op[] = {
	SETRO(BT), XSET(BT, "tag", 50, 0x75), SYNC(BT), END
};
static const struct pw_op op_sync_read_only = { "sync_read_only", xattr_inline_base, g_reader_t,
						op_sync_read_only_op };

static const struct step thick1_base[] = {
	CREATE(BT, 1, false, NULL), OPEN(BT), WRITE(BT, 3, 5, 0x81), SYNC(BT), CLOSE(BT), END
};
static const struct step op_resize_grow_thick_op[] = { RESIZE(BT, 3), SYNC(BT), END };
static const struct pw_op op_resize_grow_thick = { "resize_grow_thick", thick1_base, g_reader_t,
						   op_resize_grow_thick_op };

static const struct step thick3_base[] = {
	CREATE(BT, 3, false, &xa_small), OPEN(BT), WRITE(BT, 2, 4, 0x82), WRITE(BT, 36, 6, 0x83),
	SYNC(BT), CLOSE(BT), END
};
static const struct step op_resize_shrink_thick_op[] = { RESIZE(BT, 1), SYNC(BT), END };
static const struct pw_op op_resize_shrink_thick = { "resize_shrink_thick", thick3_base,
						     g_reader_t, op_resize_shrink_thick_op };

static const struct step thin2_base[] = {
	CREATE(BT, 2, true, NULL), OPEN(BT), WRITE(BT, 18, 3, 0x84), SYNC(BT), CLOSE(BT), END
};
static const struct step op_resize_grow_thin_op[] = { RESIZE(BT, 6), SYNC(BT), END };
static const struct pw_op op_resize_grow_thin = { "resize_grow_thin", thin2_base, g_reader_t,
						  op_resize_grow_thin_op };

static const struct step thin4_base[] = {
	CREATE(BT, 4, true, &xa_small), OPEN(BT), WRITE(BT, 16, 2, 0x85), WRITE(BT, 50, 4, 0x86),
	SYNC(BT), CLOSE(BT), END
};
static const struct step op_resize_shrink_thin_op[] = { RESIZE(BT, 2), SYNC(BT), END };
static const struct pw_op op_resize_shrink_thin = { "resize_shrink_thin", thin4_base, g_reader_t,
						    op_resize_shrink_thin_op };

static const struct step thin_empty_base[] = { CREATE(BT, 4, true, NULL), END };
/* First writes: inside cluster 0, and across the boundary of clusters 1 and 2. */
static const struct step op_thin_write_flush_op[] = {
	WRITE(BT, 1, 3, 0x91), WRITE(BT, 28, 8, 0x92), FLUSH(), END
};
static const struct pw_op op_thin_write_flush = { "thin_write_flush", thin_empty_base,
						  g_reader_t, op_thin_write_flush_op };

static const struct step thick2_base[] = {
	CREATE(BT, 2, false, &xa_small), OPEN(BT), WRITE(BT, 4, 20, 0xa3), SYNC(BT), CLOSE(BT), END
};
static const struct step op_delete_op[] = { DELETE(BT), END };
static const struct pw_op op_delete_thick = { "delete_thick", thick2_base, g_reader,
					      op_delete_op };
static const struct pw_op op_delete_thin = { "delete_thin", thin4_base, g_reader, op_delete_op };
static const struct pw_op op_delete_xattr_pages = { "delete_xattr_pages", xattr_pages_base,
						    g_reader, op_delete_op };

static const struct step super_base[] = { CREATE(BT, 1, true, NULL), SUPER(BB), END };
static const struct step op_set_super_op[] = { SUPER(BT), END };
static const struct pw_op op_set_super = { "set_super", super_base, g_reader, op_set_super_op };

static const struct step op_unload_op[] = { UNLOAD(), END };
static const struct pw_op op_unload = { "unload", xattr_pages_base, g_none, op_unload_op };
/* The masks the unload writes differ from those on disk (clean base). */
static const struct step unload_prep[] = { DELETE(BT), END };
static const struct pw_op op_unload_after_delete = { "unload_after_delete", thick2_base,
						     unload_prep, op_unload_op };

static const struct step op_map_depth_grow_op[] = {
	RESIZE(BT, DEPTH2), WRITE(BT, (DEPTH2 - 1) * 16 + 2, 3, 0xb3), SYNC(BT), END
};
static const struct pw_op op_map_depth_grow = { "map_depth_grow", thin2_base, g_reader_t,
						op_map_depth_grow_op };

static const struct step depth2_base[] = {
	CREATE(BT, DEPTH2, true, NULL), OPEN(BT), WRITE(BT, 5, 2, 0xb4),
	WRITE(BT, (DEPTH2 - 1) * 16, 4, 0xb5), SYNC(BT), CLOSE(BT), END
};
static const struct step op_map_depth_shrink_op[] = { RESIZE(BT, 2), SYNC(BT), END };
static const struct pw_op op_map_depth_shrink = { "map_depth_shrink", depth2_base, g_reader_t,
						  op_map_depth_shrink_op };

/* ------------------------------------------------------------ cases */

/*
 * A case: the env (thread, RAM device) and the sweep context with its
 * buffers. Data channels get 16 requests (the default 512 costs ~5 MiB per
 * channel, and every state opens two) and the store 16 slots.
 */
static int setup(void **state)
{
	const struct store_param *p = *state;
	struct pw_ctx *c = calloc(1, sizeof(*c));

	c->e = calloc(1, sizeof(*c->e));
	env_setup(c->e, p);
	bs_opts_init(&c->opts, sizeof(c->opts));
	c->opts.cluster_size = p->cluster_size;
	c->opts.max_channel_ops = 16;
	c->opts.max_blobs = 16; /* the cases use 5 slots; smaller windows to read and check */
	c->image = malloc(p->dev_bytes);
	c->image2 = malloc(p->dev_bytes);
	c->buf = env_buf(p->cluster_size);
	c->want = env_buf(p->cluster_size);
	*state = c;
	return 0;
}

/* After a failure the store may still be loaded, blobs open: drop it. */
static int teardown(void **state)
{
	struct pw_ctx *c = *state;

	env_abandon(c->e);
	env_teardown(c->e);
	free(c->e);
	free(c->image);
	free(c->image2);
	free(c->buf);
	free(c->want);
	free(c);
	return 0;
}

/* Run @sweep for @op on a crashed base and, with @both, a cleanly unloaded one. */
static void run_family(void **state, const struct pw_op *op, void (*sweep)(struct pw_ctx *),
		       const char *family, bool both)
{
	struct pw_ctx *c = *state;

	c->op = op;
	for (int clean = 0; clean < (both ? 2 : 1); clean++) {
		build_base(c, clean != 0);
		sweep(c);
	}
	print_message("power: %s %s (%u B, %u KiB): %" PRIu64 " IOs, %" PRIu64
		      " states proven, %" PRIu64 " fell back to a previous root, %" PRIu64
		      " latched\n", family, op->name, c->e->block_len, c->e->cluster_size / 1024,
		      c->nio, c->states, c->fallbacks, c->latched);
}

#define POWER_OP(rule, nm)                                                                \
	static void test_##rule##_power_cut_sweep_##nm(void **state)                      \
	{                                                                                 \
		run_family(state, &op_##nm, cut_sweep_base, "power_cut_sweep", true);     \
	}                                                                                 \
	static void test_D10_eio_sweep_##nm(void **state)                                 \
	{                                                                                 \
		run_family(state, &op_##nm, eio_sweep_base, "eio_sweep", true);           \
	}                                                                                 \
	static void test_I12_double_failure_##nm(void **state)                            \
	{                                                                                 \
		run_family(state, &op_##nm, double_sweep_base, "double_failure", false);  \
	}

POWER_OP(D4, create_thin)
POWER_OP(D8, create_thick)
POWER_OP(D4, create_xattrs_inline)
POWER_OP(D2, create_xattr_pages)
POWER_OP(D2, sync_xattrs_to_pages)
POWER_OP(D5, sync_xattrs_to_inline)
POWER_OP(D3, sync_read_only)
POWER_OP(D8, resize_grow_thick)
POWER_OP(D5, resize_shrink_thick)
POWER_OP(D4, resize_grow_thin)
POWER_OP(D5, resize_shrink_thin)
POWER_OP(D9, thin_write_flush)
POWER_OP(D11, delete_thick)
POWER_OP(D11, delete_thin)
POWER_OP(D11, delete_xattr_pages)
POWER_OP(D6, set_super)
POWER_OP(D7, unload)
POWER_OP(D7, unload_after_delete)
POWER_OP(D2, map_depth_grow)
POWER_OP(D5, map_depth_shrink)

#define PARAM(fn)                                                                           \
	cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown, (void *)&g_params[0]), \
	cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown, (void *)&g_params[1]), \
	cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown, (void *)&g_params[2]), \
	cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown, (void *)&g_params[3])

#define OP_TESTS(rule, nm)                                                              \
	PARAM(test_##rule##_power_cut_sweep_##nm), PARAM(test_D10_eio_sweep_##nm),      \
	PARAM(test_I12_double_failure_##nm)

int main(void)
{
	const struct CMUnitTest tests[] = {
		OP_TESTS(D4, create_thin),
		OP_TESTS(D8, create_thick),
		OP_TESTS(D4, create_xattrs_inline),
		OP_TESTS(D2, create_xattr_pages),
		OP_TESTS(D2, sync_xattrs_to_pages),
		OP_TESTS(D5, sync_xattrs_to_inline),
		OP_TESTS(D3, sync_read_only),
		OP_TESTS(D8, resize_grow_thick),
		OP_TESTS(D5, resize_shrink_thick),
		OP_TESTS(D4, resize_grow_thin),
		OP_TESTS(D5, resize_shrink_thin),
		OP_TESTS(D9, thin_write_flush),
		OP_TESTS(D11, delete_thick),
		OP_TESTS(D11, delete_thin),
		OP_TESTS(D11, delete_xattr_pages),
		OP_TESTS(D6, set_super),
		OP_TESTS(D7, unload),
		OP_TESTS(D7, unload_after_delete),
		OP_TESTS(D2, map_depth_grow),
		OP_TESTS(D5, map_depth_shrink),
	};
	const char *log = getenv("BS_POWER_LOG");
	const char *filter = getenv("BS_POWER_FILTER");

	if (log == NULL || *log == '\0' || *log == '0')
		bs_log_set_hook(pw_log_hook, NULL);
	if (filter != NULL && *filter != '\0')
		cmocka_set_test_filter(filter);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
