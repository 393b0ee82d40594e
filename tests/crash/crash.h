/*
 * Crash-state harness: shared types (crash-testing.md section 3).
 *
 * A workload runs once on a recording device (rdev.c) with a reference
 * model (model.c) that logs each API op with its call and done sequence
 * numbers in the device's event clock. The generator (gen.c) walks the
 * event log offline, builds crash images per cut and strategy, and hands
 * each distinct one to the oracle (oracle.c), which loads it and checks
 * the invariants against the model.
 */
#ifndef CRASH_CRASH_H
#define CRASH_CRASH_H

#include <stdbool.h>
#include <stdint.h>

#include <blobstore/blobstore.h>

#include "rdev.h"

/* Geometry: tiny on purpose, so a state costs well under a millisecond. */
#define CT_BLOCK 512u
#define CT_CLUSTER (16u * 1024u)
#define CT_DEV_BYTES (1024u * 1024u)
#define CT_MAX_BLOBS 16u
#define CT_POOL_PAGES 48u
#define CT_UPC (CT_CLUSTER / CT_BLOCK)	/* io units per cluster */

#define MAXB 16		/* model blobs */
#define MAXOPS 256
#define MAXW 256	/* data writes */
#define HWORDS (MAXW / 64)

/** A blob's metadata tuple (I6). */
struct mst {
	bool exists;
	bool thin, ro;
	uint64_t size;
	bs_blob_id parent;	/* 0 = none */
	uint32_t nx;
	uint64_t xh;		/* order-independent hash of the xattrs */
};

enum { OPF_PERSIST = 1, OPF_DATA = 2 };

struct mop {
	const char *name;
	uint64_t call, done;	/* event clock; done UINT64_MAX: outcome open */
	int rc;
	uint32_t flags;
	uint32_t affects;	/* model blob bitmask */
	uint32_t group;		/* blobs that change together or not at all (I8/I9) */
	struct mst post[MAXB];
};

struct mwrite {
	int blob;		/* model blob written (the tag's owner) */
	uint64_t sect, nsect;	/* io units */
	uint64_t gen;
	uint64_t call, done;
	uint64_t trunc;		/* call of a shrinking resize, UINT64_MAX if none */
};

struct model {
	int nb;
	bs_blob_id id[MAXB];
	bool alive[MAXB];
	struct bs_blob *h[MAXB];
	struct mst cur[MAXB];		/* last observed tuple */
	uint64_t hist[MAXB][HWORDS];	/* writes in the blob's logical content */
	struct mop ops[MAXOPS];
	int nops;
	struct mwrite w[MAXW];
	int nw;
	uint64_t gen;
	uint64_t pool_lo, pool_hi;	/* md page pool, 4 KiB pages (strategy S) */
};

/** The store and the thread a workload or a check runs on. */
struct run {
	struct bs_thread *t;
	struct rdev *r;
	struct bs_store *bs;
	struct bs_io_channel *ch;
	struct model *m;
	bool failed;		/* an op of the workload itself failed */
	bool allow_enospc;	/* nearly-full image: -ENOSPC is a valid result */
	bool allow_eio;		/* injected errors: -EIO leaves the op's outcome open */
	int last_err;		/* result of the last create/derive */
	char why[160];
};

/* run.c: synchronous driving of the async API */
struct cpl {
	bool done;
	int err;
};
void cpl_fn(void *arg, int err);
int run_wait(struct run *x, struct cpl *c);
int run_load(struct run *x);
int run_unload(struct run *x);
void run_abandon(struct run *x);
void run_close_dev(struct run *x);
struct bs_io_channel *run_channel(struct run *x);
void *ct_buf(uint64_t bytes);

/* model.c */
uint64_t m_now(const struct run *x);
int m_add(struct model *m, bs_blob_id id);
void m_observe(struct run *x, struct bs_blob *h, struct mst *out);
int m_begin(struct run *x, const char *name);
void m_end(struct run *x, int op, int rc, uint32_t flags, uint32_t affects);
void m_set_group(struct run *x, int op, uint32_t group);
uint32_t m_alive_mask(const struct model *m);
void m_hist_copy(struct model *m, int dst, int src);

/* tags.c: self-identifying data sectors */
void tag_fill(uint8_t *buf, uint64_t nsect, bs_blob_id id, uint64_t sect, uint64_t gen);
/** 0 = zeros, 1 = valid tag (fields out), -1 = garbage. */
int tag_parse(const uint8_t *sector, bs_blob_id *id, uint64_t *sect, uint64_t *gen);

/* work.c: workloads */
enum { IMG_EMPTY, IMG_MIN, IMG_POP, IMG_FULL, IMG_FULL0, IMG_COUNT };
#define W2_CI_SEEDS 600
#define W2_NIGHTLY_SEEDS 14000
#define W2_STEPS 8
#define MAXSTEPS 16
struct workload {
	char name[512];
	int start;			/* start image */
	int nsteps;
	int step[MAXSTEPS];		/* op codes */
	int suffix[MAXSTEPS];		/* bit0 sync, bit1 flush */
	bool random;			/* W2 */
	uint64_t seed;
	int order;			/* enum rdev_order during recording */
	int w3;				/* W3 scenario + 1, 0 if none */
};
int work_list(struct workload **out, bool nightly);
int work_parse(const char *name, struct workload *w);
/** Record @p w again under another completion order (renames it). */
void work_reorder(struct workload *w, int order, uint64_t seed);
/** Build the start image, record the workload; x->r holds the log after. */
int work_record(const struct workload *w, struct run *x, uint8_t **base);

/* w3.c: named regression scenarios */
#define W3_MAX 16
int w3_count(void);
const char *w3_name(int i);
int w3_start(int i);
int w3_run(int i, struct run *x);

/* logw.c: the writes of a recorded log, with their durability */
#define NONE UINT64_MAX
struct logw {
	uint64_t issue, cpl, dur;	/* event indexes; dur: the covering flush's completion */
	uint64_t lba, n;
	uint32_t io_id;
	const uint8_t *data;		/* NULL: zeros (unmap, write_zeroes) */
};
/** Every write, unmap and write_zeroes of @p r's log in issue order (malloc'd). */
struct logw *log_writes(const struct rdev *r, int *nws);

/* oracle.c */
struct ocheck {
	uint64_t cut;
	bool beyond;			/* A=512: safety subset only */
	bool sample;			/* run I13/I14 too */
	bool stale;			/* strategy S: a stale md page placed */
	char fail[200];			/* first violated invariant */
	bool avail_loss;
};
/** Load the crash image on x->r (replay device) and check it. 0 = ok. */
int oracle_check(struct run *x, const struct model *m, struct ocheck *o);
/** The same for a store already loaded on x->bs (abandoned afterwards). */
int oracle_check_loaded(struct run *x, const struct model *m, struct ocheck *o);

struct i12_figs {
	uint64_t sampled;		/* crash states whose recovery was recorded */
	uint64_t states;		/* double-failure and -EIO images checked */
	uint64_t eio;			/* of which -EIO from a read, write or flush of the load */
	uint64_t failing;
};
/* dfail.c: I12 for one crash state @p img (checked against @p m at o->cut) */
void dfail_run(struct bs_thread *t, const struct model *m, const struct ocheck *o,
	       const uint8_t *img, struct i12_figs *f);

/* gen.c */
enum strat { ST_P, ST_N, ST_D1, ST_K1, ST_X, ST_T4K, ST_T512, ST_R, ST_S, ST_COUNT };
extern const char *const strat_name[ST_COUNT];
struct figures {
	uint64_t gen[ST_COUNT], distinct[ST_COUNT], failing[ST_COUNT];
	struct i12_figs i12;
	uint64_t avail_loss;
	uint64_t cuts, workloads, max_v, lints, workload_errors;
	uint64_t states_sampled;
	uint64_t w3_distinct[16], w3_failing[16];	/* per W3 scenario */
};
struct repro {
	bool on;
	uint64_t cut;
	int strat;
	uint64_t index;			/* n-th generated state of (cut, strat) */
};
/** Generate, dedupe and check every state of a recorded workload. */
void gen_run(const struct workload *w, int widx, struct run *rec, const uint8_t *base,
	     struct figures *f, const struct repro *rp);

#endif /* CRASH_CRASH_H */
