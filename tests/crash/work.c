/* Workloads: start images, W1 seq-1 / seq-2 lists, names, recording. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blob/store_int.h"
#include "crash.h"
#include "ops.h"

static const char *const img_name[IMG_COUNT] = { "empty", "min", "pop", "full", "full0" };

/* The 10-op subset for seq-2. */
static const int seq2_ops[10] = {
	OP_CREATE_THIN, OP_RESIZE_UP, OP_XATTR_BIG, OP_WRITE_ALLOC, OP_WRITE_THIN,
	OP_WRITE_COW, OP_FLUSH, OP_SYNC, OP_SNAPSHOT, OP_DELETE_SNAP,
};

static bool applicable(int img, int op)
{
	if (img == IMG_EMPTY)
		return op == OP_CREATE_THIN || op == OP_CREATE_THICK || op == OP_FLUSH ||
		       op == OP_RELOAD;
	if (img >= IMG_POP)
		return true;
	if (img == IMG_MIN)
		return op != OP_WRITE_COW && op != OP_CLONE && op != OP_INFLATE &&
		       op != OP_DECOUPLE && op != OP_DELETE_SNAP;
	return true;
}

static void name_workload(struct workload *w)
{
	int n = w->w3 ? snprintf(w->name, sizeof(w->name), "w3:%s", w3_name(w->w3 - 1)) :
			snprintf(w->name, sizeof(w->name), "%s", img_name[w->start]);

	for (int i = 0; i < w->nsteps && !w->w3; i++)
		n += snprintf(w->name + n, sizeof(w->name) - (size_t)n, "%c%s/%d",
			      i ? '+' : ':', op_name[w->step[i]], w->suffix[i]);
	if (w->order != 0)
		snprintf(w->name + n, sizeof(w->name) - (size_t)n, "@%d.%" PRIu64, w->order,
			 w->seed);
}

void work_reorder(struct workload *w, int order, uint64_t seed)
{
	w->order = order;
	w->seed = seed;
	name_workload(w);
}

static void add(struct workload **v, int *n, int *cap, const struct workload *w)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 256;
		*v = realloc(*v, (size_t)*cap * sizeof(**v));
		if (*v == NULL)
			abort();
	}
	(*v)[(*n)++] = *w;
	name_workload(&(*v)[*n - 1]);
}

int work_list(struct workload **out, bool nightly)
{
	struct workload w;
	int n = 0, cap = 0;

	*out = NULL;
	for (int img = 0; img < IMG_COUNT; img++)
		for (int op = 0; op < OP_COUNT; op++)
			for (int sfx = 0; sfx < 4 && applicable(img, op); sfx++) {
				memset(&w, 0, sizeof(w));
				w = (struct workload){ .start = img, .nsteps = 1 };
				w.step[0] = op;
				w.suffix[0] = sfx;
				add(out, &n, &cap, &w);
			}
	for (int a = 0; a < 10; a++)
		for (int b = 0; b < 10; b++) {
			memset(&w, 0, sizeof(w));
			w = (struct workload){ .start = IMG_POP, .nsteps = 2 };
			w.step[0] = seq2_ops[a];
			w.step[1] = seq2_ops[b];
			w.suffix[1] = nightly ? 3 : 0;
			add(out, &n, &cap, &w);
		}
	for (int t = 0; nightly && t < 1000; t++) {
		/* Nightly seq-3 (B3): every triple of the subset, the last step synced and flushed. */
		w = (struct workload){ .start = IMG_POP, .nsteps = 3 };
		w.step[0] = seq2_ops[t / 100];
		w.step[1] = seq2_ops[t / 10 % 10];
		w.step[2] = seq2_ops[t % 10];
		w.suffix[1] = t % 2;
		w.suffix[2] = 3;
		add(out, &n, &cap, &w);
	}
	for (int i = 0; i < w3_count() * 2; i++) {
		w = (struct workload){ .w3 = i / 2 + 1, .start = w3_start(i / 2) };
		w.order = i % 2 ? RO_RANDOM : RO_FIFO;
		w.seed = (uint64_t)(i % 2);
		add(out, &n, &cap, &w);
	}
	for (int seed = 1; seed <= (nightly ? W2_NIGHTLY_SEEDS : W2_CI_SEEDS); seed++) {
		uint64_t r = (uint64_t)seed * 0x9e3779b97f4a7c15ull;

		memset(&w, 0, sizeof(w));
		w = (struct workload){ .start = IMG_POP, .nsteps = W2_STEPS };
		w.order = RO_RANDOM;
		w.seed = (uint64_t)seed;
		for (int i = 0; i < W2_STEPS; i++) {
			r = r * 6364136223846793005ull + 1442695040888963407ull;
			w.step[i] = (int)((r >> 33) % OP_COUNT);
			w.suffix[i] = (int)((r >> 20) % 4);
		}
		add(out, &n, &cap, &w);
	}
	return n;
}

static int find_name(const char *const *names, int n, const char *s, size_t len)
{
	for (int i = 0; i < n; i++)
		if (strlen(names[i]) == len && strncmp(names[i], s, len) == 0)
			return i;
	return -1;
}

/* "w3:<scenario>": returns the end of the scenario name, or NULL. */
static const char *parse_w3(const char *name, struct workload *w)
{
	size_t len = strcspn(name + 3, "@");

	for (int i = 0; i < w3_count(); i++)
		if (strlen(w3_name(i)) == len && strncmp(w3_name(i), name + 3, len) == 0) {
			w->w3 = i + 1;
			w->start = w3_start(i);
			return name + 3 + len;
		}
	return NULL;
}

int work_parse(const char *name, struct workload *w)
{
	const char *p = strchr(name, ':');

	memset(w, 0, sizeof(*w));
	if (strncmp(name, "w3:", 3) == 0) {
		if ((p = parse_w3(name, w)) == NULL)
			return -EINVAL;
	} else if (p == NULL || (w->start = find_name(img_name, IMG_COUNT, name,
						     (size_t)(p - name))) < 0) {
		return -EINVAL;
	}
	while (*p == ':' || *p == '+') {
		const char *q = strchr(++p, '/');

		if (q == NULL || w->nsteps >= MAXSTEPS)
			return -EINVAL;
		w->step[w->nsteps] = find_name(op_name, OP_COUNT, p, (size_t)(q - p));
		w->suffix[w->nsteps] = atoi(q + 1);
		if (w->step[w->nsteps++] < 0)
			return -EINVAL;
		p = q + 1;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == '@') {
		char *end;

		w->order = (int)strtol(p + 1, &end, 10);
		if (*end != '.')
			return -EINVAL;
		w->seed = strtoull(end + 1, &end, 10);
		p = end;
	}
	name_workload(w);
	return *p == '\0' ? 0 : -EINVAL;
}

static int init_store(struct run *x)
{
	struct bs_opts o;
	struct cpl c = { 0 };

	bs_opts_init(&o, sizeof(o));
	o.cluster_size = CT_CLUSTER;
	o.max_blobs = CT_MAX_BLOBS;
	o.md_pool_pages = CT_POOL_PAGES;
	bs_init(rdev_bs(x->r), &o, &x->bs, cpl_fn, &c);
	return run_wait(x, &c);
}

/* The start image's blobs, through the model so they are known to the oracle. */
static int populate(struct run *x, int img)
{
	if (img == IMG_EMPTY)
		return 0;
	if (ops_create(x, false, 2) != ROLE_T || ops_create(x, true, 2) != ROLE_N)
		return -EIO;
	if (bs_blob_set_xattr(x->m->h[ROLE_T], "x0", "abc", 3) != 0 || ops_sync(x, ROLE_T))
		return -EIO;
	if (img == IMG_MIN)
		return 0;
	if (ops_create(x, false, 2) != ROLE_C || ops_write(x, ROLE_T, 0) ||
	    ops_write(x, ROLE_N, 0) || ops_write(x, ROLE_C, 0) ||
	    ops_write(x, ROLE_C, CT_UPC) || ops_snapshot(x, ROLE_C) != ROLE_S ||
	    ops_write(x, ROLE_C, 16))
		return -EIO;
	/* Nearly full: a thick filler leaves 1 (full) or 0 (full0) free clusters. */
	if (img >= IMG_FULL && ops_create(x, false, bs_get_free_cluster_count(x->bs) -
					  (img == IMG_FULL ? 1 : 0)) != ROLE_F)
		return -EIO;
	return ops_flush(x);
}

static int build_base(const struct workload *w, struct run *x, uint8_t **base)
{
	int rc;

	x->r = rdev_create(CT_DEV_BYTES / CT_BLOCK, CT_BLOCK, NULL, false);
	if (x->r == NULL)
		return -ENOMEM;
	rc = init_store(x);
	if (rc == 0)
		rc = populate(x, w->start);
	if (rc == 0)
		rc = ops_close_all(x);
	if (rc == 0)
		rc = run_unload(x);
	*base = malloc(CT_DEV_BYTES);
	memcpy(*base, rdev_view(x->r), CT_DEV_BYTES);
	if (x->bs != NULL)
		run_abandon(x);
	run_close_dev(x);
	rdev_free(x->r);
	x->r = NULL;
	return rc;
}

/* -ENOSPC is a valid result on a full image, but must not leak a cluster. */
static int enospc_ok(struct run *x, int rc, uint64_t free_before)
{
	if (rc != -ENOSPC || !x->allow_enospc)
		return rc;
	if (x->bs != NULL && bs_get_free_cluster_count(x->bs) != free_before) {
		snprintf(x->why, sizeof(x->why), "-ENOSPC leaked %" PRIu64 " clusters",
			 free_before - bs_get_free_cluster_count(x->bs));
		x->failed = true;
	}
	return 0;
}

static int run_steps(const struct workload *w, struct run *x)
{
	int target, rc = 0;

	if (w->w3)
		return w3_run(w->w3 - 1, x);
	x->allow_enospc = w->start >= IMG_FULL;
	for (int i = 0; i < w->nsteps && rc == 0 && !x->failed; i++) {
		uint64_t free_before = bs_get_free_cluster_count(x->bs);

		if (!ops_applicable(x, w->step[i]))
			continue;
		rc = ops_apply(x, w->step[i], &target);
		/* a burst may fill the last cluster with one write, fail another */
		rc = enospc_ok(x, rc, w->step[i] == OP_BURST ? bs_get_free_cluster_count(x->bs) :
				    free_before);
		if (rc == 0 && (w->suffix[i] & 1) && target >= 0 && x->m->alive[target])
			rc = ops_sync(x, target);
		if (rc == 0 && (w->suffix[i] & 2))
			rc = ops_flush(x);
	}
	return rc;
}

int work_record(const struct workload *w, struct run *x, uint8_t **base)
{
	int rc = build_base(w, x, base);

	if (rc != 0)
		return rc;
	x->r = rdev_create(CT_DEV_BYTES / CT_BLOCK, CT_BLOCK, *base, true);
	if (x->r == NULL)
		return -ENOMEM;
	rdev_set_order(x->r, (enum rdev_order)w->order, w->seed);
	rc = run_load(x);
	if (rc == 0) {
		x->m->pool_lo = x->bs->pool_start;
		x->m->pool_hi = x->bs->pool_start + x->bs->pool_pages;
		rc = ops_open_all(x);
	}
	if (rc == 0)
		rc = run_steps(w, x);
	for (int b = 0; b < x->m->nb; b++)
		x->m->h[b] = NULL; /* the abandon frees the handles */
	run_abandon(x);
	run_close_dev(x);
	return rc ? rc : (x->failed ? -EIO : 0);
}
