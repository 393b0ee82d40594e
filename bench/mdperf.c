/*
 * mdperf: metadata operation rates, clean-load and dirty-recovery times of a
 * file-backed store, with recovery set beside fio reading the same metadata.
 *
 * Everything runs on one bs_thread polled from main() in a tight loop (the
 * store's metadata thread). The store file is sized with ftruncate to
 * --size (default 64 GiB), so a new file is sparse; the device is the
 * io_uring file backend (O_DIRECT: the page cache plays no part, nothing to
 * drop).
 *
 * 1. Rates, one operation at a time (each completion starts the next), on a
 *    fresh store (1 MiB clusters, BS_CLEAR_NONE, 16384 blob slots):
 *      create_open_close  bs_blob_create (durable on completion: it is
 *                         create+sync) of an empty blob, then open and close
 *      open_close         open and close of those blobs, round robin
 *      set_xattr_sync     bs_blob_set_xattr + bs_blob_sync on one open blob
 *      delete             bs_blob_delete of each blob
 *    Reported as operations per second and mean latency.
 * 2. Clean load: the same store filled to 1000 empty blobs (creates kept 32
 *    deep), unloaded cleanly, then bs_load timed --repeat times (best kept;
 *    each load is followed by an untimed clean unload); then filled to 10000
 *    and timed the same way. Same geometry for both, so only the blob count
 *    differs.
 *    Every timed load runs in a fresh process (this program re-executed with
 *    --load-child), timed around bs_load alone: a load normally happens once
 *    per process, and in one long-lived process the allocator would hand
 *    later loads memory that earlier ones had already faulted in.
 * 3. Dirty recovery: a fresh store with the default geometry (1 MiB
 *    clusters, BS_CLEAR_NONE) gets --blobs blobs, alternately thick (1 or 2
 *    clusters) and thin (256 clusters, 1 to 4 of them written with 4 KiB
 *    writes), each with one xattr. The store is then dropped without unload
 *    (store_abandon: nothing is written, as after a crash), and bs_load,
 *    which must recover, is timed --repeat times as above (the child
 *    abandons the store again, so every load recovers). Its load report must
 *    say recovered with every blob found. For comparison the same load is
 *    then repeated in this process (RESULT ..._warm_s, first one dropped),
 *    where the allocator hands out memory already faulted in.
 *    Beside it, fio reads the metadata region sequentially: offset 0,
 *    --size = md_clusters * cluster_size (the first clusters of the device
 *    hold every metadata page: super, masks, root slots, page pool; computed
 *    as device clusters minus bs_get_total_data_cluster_count()), bs=1m,
 *    iodepth=32, io_uring, direct=1, on the same file. That region is a
 *    superset of what recovery reads (recovery skips unused pool pages), so
 *    fio's time is the cost of one sequential pass over all metadata. fio
 *    makes several passes (--loops) so its millisecond clock is precise; the
 *    time per pass is region bytes / fio's bandwidth. Best of --repeat runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <blobstore/blobstore.h>
#include <blobstore/dev.h>
#include <blobstore/file_dev.h>
#include <blobstore/log.h>

#include "bench_util.h"
/* Internal: store_abandon() drops a store without writing (a crash). */
#include "blob/store_int.h"

#define IO_UNIT 4096u
#define CLUSTER BU_MIB
#define RATE_SLOTS 16384u		/* blob slots of the rates/clean-load store */
#define FILL_QD 32u			/* creates in flight while filling */
#define LOAD_SMALL 1000u
#define LOAD_LARGE 10000u
#define THIN_CLUSTERS 256u
#define FIO_PASS_BYTES BU_GIB		/* fio reads about this much in all */
#define RECOVERY_GOAL 2.0
#define CLEAN_GOAL 2.0

struct opts {
	const char *file;
	uint64_t size;
	uint64_t ops;			/* per rate */
	uint64_t blobs;			/* in the recovery store */
	uint64_t repeat;
	bool quick;
	const char *child;		/* --load-child clean|dirty (internal) */
};

enum rate_kind { RATE_CREATE, RATE_OPEN_CLOSE, RATE_XATTR_SYNC, RATE_DELETE, NRATES };

static const char *const rate_names[NRATES] = {
	"create_open_close", "open_close", "set_xattr_sync", "delete",
};

struct bench {
	struct bu_loop loop;		/* first: steps get the bench as ctx */
	struct opts o;
	char fio[PATH_MAX];
	struct bs_dev *dev;
	struct bs_store *bs;
	struct bs_io_channel *ch;
	uint32_t max_blobs;		/* 0 = default geometry */
	bs_blob_id *ids;		/* blobs that exist, in creation order */
	uint64_t nids;
	uint64_t cap;
	/* the running operation */
	enum rate_kind kind;
	uint64_t i, n;			/* progress */
	uint64_t issued, inflight;	/* filling */
	uint32_t writes;		/* recovery fill: writes in flight */
	int err;
	struct bs_blob *blob;
	struct bs_xattr xattr;
	char xattr_val[32];
	uint8_t *buf;			/* 4 KiB write buffer */
	uint64_t t0, t1;
};

/* ------------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fputs("usage: mdperf [options]\n"
	      "Metadata rates, clean load and dirty recovery of a file-backed store.\n"
	      "  --file PATH    store file (default build/mdperf.img), sized sparse\n"
	      "  --size BYTES   file size, K/M/G/T suffixes (default 64G)\n"
	      "  --ops N        operations per rate (default 2000)\n"
	      "  --blobs N      blobs in the recovery store (default 1000)\n"
	      "  --repeat N     timed loads of each kind, best kept (default 5)\n"
	      "  --quick        CI smoke run: 100 ops per rate, 2 timed loads each\n"
	      "  --help         this text\n", f);
}

enum { OPT_FILE = 256, OPT_SIZE, OPT_OPS, OPT_BLOBS, OPT_REPEAT, OPT_QUICK, OPT_HELP,
       OPT_CHILD };

static const struct option long_opts[] = {
	{ "file", required_argument, NULL, OPT_FILE },
	{ "size", required_argument, NULL, OPT_SIZE },
	{ "ops", required_argument, NULL, OPT_OPS },
	{ "blobs", required_argument, NULL, OPT_BLOBS },
	{ "repeat", required_argument, NULL, OPT_REPEAT },
	{ "quick", no_argument, NULL, OPT_QUICK },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "load-child", required_argument, NULL, OPT_CHILD },
	{ NULL, 0, NULL, 0 },
};

enum { SET_OPS = 1, SET_REPEAT = 2 };

static unsigned parse_one(struct opts *o, int c, const char *arg)
{
	switch (c) {
	case OPT_FILE: o->file = arg; return 0;
	case OPT_SIZE:
		if (bu_parse_size(arg, &o->size) || o->size % CLUSTER || o->size < BU_GIB)
			bu_die("bad --size '%s': need a multiple of 1M, at least 1G", arg);
		return 0;
	case OPT_OPS:
		if (bu_parse_u64(arg, 1, 1000000, &o->ops))
			bu_die("bad --ops '%s': need 1 to 1000000", arg);
		return SET_OPS;
	case OPT_BLOBS:
		if (bu_parse_u64(arg, 10, 1000000, &o->blobs))
			bu_die("bad --blobs '%s': need 10 to 1000000", arg);
		return 0;
	case OPT_REPEAT:
		if (bu_parse_u64(arg, 1, 100, &o->repeat))
			bu_die("bad --repeat '%s': need 1 to 100", arg);
		return SET_REPEAT;
	case OPT_QUICK: o->quick = true; return 0;
	case OPT_HELP: usage(stdout); exit(0);
	case OPT_CHILD:
		if (strcmp(arg, "clean") != 0 && strcmp(arg, "dirty") != 0)
			bu_die("bad --load-child '%s'", arg);
		o->child = arg;
		return 0;
	default: bu_die("unknown option or missing value: '%s' (see --help)", arg);
	}
}

static void parse_opts(struct opts *o, int argc, char **argv)
{
	unsigned set = 0;
	int c;

	*o = (struct opts){ .file = "build/mdperf.img", .size = 64 * BU_GIB, .ops = 2000,
			    .blobs = 1000, .repeat = 5 };
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1)
		set |= parse_one(o, c, c == '?' ? argv[optind - 1] : optarg);
	if (optind < argc)
		bu_die("unexpected argument '%s' (see --help)", argv[optind]);
	if (o->quick && !(set & SET_OPS))
		o->ops = 100;
	if (o->quick && !(set & SET_REPEAT))
		o->repeat = 2;
}

/* ------------------------------------------------------------------------
 * Steps on the bench thread: each ends in bu_loop_cpl()
 * ------------------------------------------------------------------------ */

static void step(struct bench *b, bs_msg_fn fn, const char *what)
{
	int rc = bu_loop_run(&b->loop, fn, b);

	if (rc != 0)
		bu_die("%s on %s: %s", what, b->o.file, strerror(-rc));
}

static void open_dev_msg(void *ctx)
{
	struct bench *b = ctx;
	struct bs_file_dev_opts fo;

	bs_file_dev_opts_init(&fo);
	fo.block_len = IO_UNIT;
	fo.backend = BS_FILE_BACKEND_URING;
	bu_loop_cpl(&b->loop, bs_file_dev_open(b->o.file, &fo, &b->dev));
}

static void close_dev_msg(void *ctx)
{
	struct bench *b = ctx;

	bs_dev_close(b->dev, bu_loop_cpl, &b->loop);
}

static void store_opts(const struct bench *b, struct bs_opts *opts)
{
	bs_opts_init(opts, sizeof(*opts));
	opts->cluster_size = CLUSTER;
	opts->clear_method = BS_CLEAR_NONE;
	opts->max_blobs = b->max_blobs;
}

static void init_msg(void *ctx)
{
	struct bench *b = ctx;
	struct bs_opts opts;

	store_opts(b, &opts);
	bs_init(b->dev, &opts, &b->bs, bu_loop_cpl, &b->loop);
}

static void load_cpl(void *arg, int err)
{
	struct bench *b = arg;

	b->t1 = bu_now_ns();
	bu_loop_cpl(&b->loop, err);
}

/* bs_load, timed from the call to its completion. */
static void load_msg(void *ctx)
{
	struct bench *b = ctx;
	struct bs_opts opts;

	store_opts(b, &opts);
	b->t0 = bu_now_ns();
	bs_load(b->dev, &opts, &b->bs, load_cpl, b);
}

static void unload_msg(void *ctx)
{
	struct bench *b = ctx;

	bs_unload(b->bs, bu_loop_cpl, &b->loop);
	b->bs = NULL;
}

/* Drop the store without writing anything: the on-disk state of a crash. */
static void abandon_msg(void *ctx)
{
	struct bench *b = ctx;

	store_abandon(b->bs, bu_loop_cpl, &b->loop);
	b->bs = NULL;
}

static void alloc_channel_msg(void *ctx)
{
	struct bench *b = ctx;

	b->ch = bs_alloc_channel(b->bs);
	bu_loop_cpl(&b->loop, b->ch ? 0 : -errno);
}

static void free_channel_msg(void *ctx)
{
	struct bench *b = ctx;

	bs_free_channel(b->ch);
	b->ch = NULL;
	bu_loop_cpl(&b->loop, 0);
}

/* Room for @n more blob ids. */
static void ids_reserve(struct bench *b, uint64_t n)
{
	if (b->nids + n <= b->cap)
		return;
	b->cap = b->nids + n;
	b->ids = realloc(b->ids, b->cap * sizeof(*b->ids));
	if (b->ids == NULL)
		bu_die("out of memory for %" PRIu64 " blob ids", b->cap);
}

/* ------------------------------------------------------------------------
 * Rates: one operation at a time, each completion starts the next
 * ------------------------------------------------------------------------ */

static void rate_next(struct bench *b);

/* The operation finished: the next, or the end of the run. */
static void rate_op_cpl(void *arg, int err)
{
	struct bench *b = arg;

	if (err != 0) {
		bu_loop_cpl(&b->loop, err);
		return;
	}
	if (++b->i < b->n) {
		rate_next(b);
		return;
	}
	b->t1 = bu_now_ns();
	bu_loop_cpl(&b->loop, 0);
}

static void rate_opened_cpl(void *arg, int err)
{
	struct bench *b = arg;

	if (err != 0)
		rate_op_cpl(b, err);
	else
		bs_blob_close(b->blob, rate_op_cpl, b);
}

static void rate_created_cpl(void *arg, int err)
{
	struct bench *b = arg;

	if (err != 0) {
		rate_op_cpl(b, err);
		return;
	}
	b->nids++;
	bs_blob_open(b->bs, b->ids[b->nids - 1], &b->blob, rate_opened_cpl, b);
}

/* Start operation b->i of the current kind. */
static void rate_next(struct bench *b)
{
	int rc;

	switch (b->kind) {
	case RATE_CREATE:
		bs_blob_create(b->bs, NULL, &b->ids[b->nids], rate_created_cpl, b);
		return;
	case RATE_OPEN_CLOSE:
		bs_blob_open(b->bs, b->ids[b->i % b->nids], &b->blob, rate_opened_cpl, b);
		return;
	case RATE_XATTR_SYNC:
		rc = bs_blob_set_xattr(b->blob, "mdperf", &b->i, sizeof(b->i));
		if (rc != 0)
			rate_op_cpl(b, rc);
		else
			bs_blob_sync(b->blob, rate_op_cpl, b);
		return;
	case RATE_DELETE:
		bs_blob_delete(b->bs, b->ids[b->i], rate_op_cpl, b);
		return;
	case NRATES:
		break;
	}
}

static void rate_start_msg(void *ctx)
{
	struct bench *b = ctx;

	b->t0 = bu_now_ns();
	rate_next(b);
}

static void open_first_msg(void *ctx)
{
	struct bench *b = ctx;

	bs_blob_open(b->bs, b->ids[0], &b->blob, bu_loop_cpl, &b->loop);
}

static void close_blob_msg(void *ctx)
{
	struct bench *b = ctx;

	bs_blob_close(b->blob, bu_loop_cpl, &b->loop);
	b->blob = NULL;
}

/* Time @n operations of @kind; print and return ops/s. */
static double rate_run(struct bench *b, enum rate_kind kind, uint64_t n)
{
	double secs, ops;

	b->kind = kind;
	b->i = 0;
	b->n = n;
	if (kind == RATE_CREATE)
		ids_reserve(b, n);
	if (kind == RATE_XATTR_SYNC)
		step(b, open_first_msg, "bs_blob_open");
	step(b, rate_start_msg, rate_names[kind]);
	if (kind == RATE_XATTR_SYNC)
		step(b, close_blob_msg, "bs_blob_close");
	if (kind == RATE_DELETE)
		b->nids = 0;
	secs = (double)(b->t1 - b->t0) / 1e9;
	ops = (double)n / secs;
	printf("  %-18s %7" PRIu64 " ops in %7.3f s: %9.0f ops/s, %8.1f us each\n",
	       rate_names[kind], n, secs, ops, secs * 1e6 / (double)n);
	printf("RESULT mdperf_%s_ops=%.0f\n", rate_names[kind], ops);
	return ops;
}

/* ------------------------------------------------------------------------
 * Filling a store with empty blobs, FILL_QD creates in flight
 * ------------------------------------------------------------------------ */

static void fill_issue(struct bench *b);

static void fill_cpl(void *arg, int err)
{
	struct bench *b = arg;

	b->inflight--;
	if (err != 0 && b->err == 0)
		b->err = err;
	if (b->err == 0)
		fill_issue(b);
	if (b->inflight == 0)
		bu_loop_cpl(&b->loop, b->err);
}

static void fill_issue(struct bench *b)
{
	while (b->inflight < FILL_QD && b->issued < b->n) {
		b->inflight++;
		bs_blob_create(b->bs, NULL, &b->ids[b->nids + b->issued++], fill_cpl, b);
	}
}

static void fill_msg(void *ctx)
{
	struct bench *b = ctx;

	fill_issue(b);
	if (b->inflight == 0)
		bu_loop_cpl(&b->loop, 0);
}

/* Create blobs until the store holds @total. */
static void fill_to(struct bench *b, uint64_t total)
{
	if (total <= b->nids)
		return;
	ids_reserve(b, total - b->nids);
	b->n = total - b->nids;
	b->issued = 0;
	b->inflight = 0;
	b->err = 0;
	step(b, fill_msg, "bs_blob_create");
	b->nids = total;
}

/* ------------------------------------------------------------------------
 * Loads
 * ------------------------------------------------------------------------ */

/*
 * The child side of a timed load (mdperf --load-child clean|dirty): open
 * the device, time bs_load, print the result on one line, then unload
 * (clean) or abandon (dirty: the store stays as a crash left it).
 */
static int load_child(struct bench *b)
{
	bool dirty = strcmp(b->o.child, "dirty") == 0;
	struct bs_load_report r;

	bs_log_set_level(BS_LOG_WARN);
	bu_loop_init(&b->loop, "mdperf-load");
	step(b, open_dev_msg, "opening with the io_uring backend");
	step(b, load_msg, "bs_load");
	bs_get_load_report(b->bs, &r);
	printf("LOAD ns=%" PRIu64 " recovered=%d blobs=%" PRIu64 " corrupt=%" PRIu64
	       " md=%" PRIu64 " usec=%" PRIu64 "\n", b->t1 - b->t0, r.recovered ? 1 : 0,
	       r.blobs, r.corrupt_blobs, r.md_bytes_read, r.usec);
	step(b, dirty ? abandon_msg : unload_msg, dirty ? "abandon" : "bs_unload");
	step(b, close_dev_msg, "closing the device");
	bu_loop_fini(&b->loop);
	return 0;
}

/* Run one load in a fresh process; returns seconds, fills @rep. */
static double spawn_load(struct bench *b, bool dirty, struct bs_load_report *rep)
{
	char self[PATH_MAX], line[200];
	char *argv[] = { self, "--load-child", dirty ? "dirty" : "clean", "--file",
			 (char *)b->o.file, NULL };
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	unsigned long long ns, blobs, corrupt, md, usec;
	int recovered, status;
	const char *at;
	char *out;

	if (n <= 0 || (size_t)n >= sizeof(self) - 1)
		bu_die("cannot find this program's path: %s", strerror(errno));
	self[n] = '\0';
	out = bu_spawn(argv, &status);
	at = strstr(out, "LOAD ns=");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || at == NULL ||
	    sscanf(at, "LOAD ns=%llu recovered=%d blobs=%llu corrupt=%llu md=%llu usec=%llu",
		   &ns, &recovered, &blobs, &corrupt, &md, &usec) != 6)
		bu_die("timed load failed: %s", bu_first_line(out, line, sizeof(line)));
	free(out);
	*rep = (struct bs_load_report){ .recovered = recovered != 0, .blobs = blobs,
					.corrupt_blobs = corrupt, .md_bytes_read = md,
					.usec = usec };
	return (double)ns / 1e9;
}

/*
 * Time bs_load --repeat times, best kept. Each load runs in a fresh process,
 * as after a crash or a restart: in this one the allocator would hand the
 * second load memory the first had already faulted in. The store must be
 * unloaded (clean) or abandoned (dirty) here; it is again afterwards.
 */
static double timed_loads(struct bench *b, bool dirty, struct bs_load_report *rep)
{
	double best = 0;

	for (uint64_t r = 0; r < b->o.repeat; r++) {
		double s = spawn_load(b, dirty, rep);

		if (dirty != rep->recovered || rep->blobs != b->nids || rep->corrupt_blobs != 0)
			bu_die("load %" PRIu64 ": %s, %" PRIu64 " blobs (%" PRIu64 " corrupt), "
			       "expected %s with %" PRIu64, r + 1,
			       rep->recovered ? "recovered" : "clean", rep->blobs,
			       rep->corrupt_blobs, dirty ? "recovered" : "clean", b->nids);
		printf("  load %" PRIu64 ": %8.2f ms (report: %.2f ms, %.2f MiB metadata read)\n",
		       r + 1, s * 1e3, (double)rep->usec / 1e3,
		       (double)rep->md_bytes_read / (double)BU_MIB);
		best = r == 0 || s < best ? s : best;
	}
	return best;
}

/*
 * Recovery loads in this process, abandoning the store after each: the
 * second and later ones find the allocator's memory already faulted in.
 * Shown beside the fresh-process figure to expose that cost.
 */
static double warm_loads(struct bench *b)
{
	struct bs_load_report rep;
	double best = 0;

	for (uint64_t r = 0; r < b->o.repeat + 1; r++) {
		double s;

		step(b, load_msg, "bs_load");
		s = (double)(b->t1 - b->t0) / 1e9;
		bs_get_load_report(b->bs, &rep);
		if (!rep.recovered || rep.blobs != b->nids)
			bu_die("warm load %" PRIu64 " did not recover all %" PRIu64 " blobs",
			       r + 1, b->nids);
		step(b, abandon_msg, "abandon");
		printf("  in-process load %" PRIu64 ": %8.2f ms%s\n", r + 1, s * 1e3,
		       r == 0 ? " (first: fresh memory, not counted)" : "");
		if (r > 0)
			best = r == 1 || s < best ? s : best;
	}
	return best;
}

static double clean_load(struct bench *b, uint64_t nblobs)
{
	struct bs_load_report rep;
	double s;

	fill_to(b, nblobs);
	step(b, unload_msg, "bs_unload");
	printf("clean load, %" PRIu64 " blobs:\n", nblobs);
	s = timed_loads(b, false, &rep);
	step(b, load_msg, "bs_load");		/* leave it loaded for more blobs */
	return s;
}

/* ------------------------------------------------------------------------
 * Filling the recovery store: blob i even = thick (1 or 2 clusters), odd =
 * thin (THIN_CLUSTERS clusters, 1 to 4 of them written); one xattr each.
 * One blob at a time; a thin blob's writes go out together.
 * ------------------------------------------------------------------------ */

static void rfill_next(struct bench *b);

/* Blob b->i is complete. */
static void rfill_done_cpl(void *arg, int err)
{
	struct bench *b = arg;

	if (err != 0) {
		bu_loop_cpl(&b->loop, err);
		return;
	}
	b->nids++;
	if (++b->i == b->n)
		bu_loop_cpl(&b->loop, 0);
	else
		rfill_next(b);
}

static void rfill_write_cpl(void *arg, int err)
{
	struct bench *b = arg;

	if (err != 0 && b->err == 0)
		b->err = err;
	if (--b->writes > 0)
		return;
	if (b->err != 0)
		bu_loop_cpl(&b->loop, b->err);
	else
		bs_blob_close(b->blob, rfill_done_cpl, b); /* commits the new clusters */
}

/* Write 4 KiB into 1 to 4 distinct clusters: each allocates its cluster. */
static void rfill_opened_cpl(void *arg, int err)
{
	struct bench *b = arg;
	uint32_t n = 1 + (uint32_t)(b->i / 2 % 4);

	if (err != 0) {
		bu_loop_cpl(&b->loop, err);
		return;
	}
	b->writes = n;
	b->err = 0;
	for (uint32_t k = 0; k < n; k++) {
		uint64_t cl = (k * 67 + b->i) % THIN_CLUSTERS;

		bs_blob_write(b->blob, b->ch, b->buf, cl * (CLUSTER / IO_UNIT), 1,
			      rfill_write_cpl, b);
	}
}

static void rfill_created_cpl(void *arg, int err)
{
	struct bench *b = arg;

	if (err != 0 || b->i % 2 == 0)
		rfill_done_cpl(b, err);
	else
		bs_blob_open(b->bs, b->ids[b->nids], &b->blob, rfill_opened_cpl, b);
}

static void rfill_next(struct bench *b)
{
	struct bs_blob_opts bo;

	bs_blob_opts_init(&bo, sizeof(bo));
	bo.thin_provision = b->i % 2 != 0;
	bo.num_clusters = bo.thin_provision ? THIN_CLUSTERS : 1 + b->i / 2 % 2;
	snprintf(b->xattr_val, sizeof(b->xattr_val), "blob-%" PRIu64, b->i);
	b->xattr = (struct bs_xattr){ .name = "name", .value = b->xattr_val,
				      .value_len = (uint32_t)strlen(b->xattr_val) };
	bo.xattrs = &b->xattr;
	bo.xattr_count = 1;
	bs_blob_create(b->bs, &bo, &b->ids[b->nids], rfill_created_cpl, b);
}

static void rfill_msg(void *ctx)
{
	rfill_next(ctx);
}

/* ------------------------------------------------------------------------
 * Dirty recovery against fio
 * ------------------------------------------------------------------------ */

/* Bytes of the metadata region: the clusters before the first data cluster. */
static uint64_t md_region_bytes(const struct bench *b)
{
	uint64_t cs = bs_get_cluster_size(b->bs);
	uint64_t total = b->dev->block_count * b->dev->block_len / cs;

	if (total > UINT32_MAX)
		total = UINT32_MAX;	/* as the store caps cluster numbers */
	return (total - bs_get_total_data_cluster_count(b->bs)) * cs;
}

/* fio: sequential 1 MiB reads of [0, @bytes) at depth 32; best seconds per pass. */
static double fio_md_read(struct bench *b, uint64_t bytes)
{
	uint64_t loops = FIO_PASS_BYTES / bytes;
	struct bu_fio_job fj = { .name = "md_seqread", .file = b->o.file, .rw = "read",
				 .bs = (uint32_t)BU_MIB, .iodepth = 32, .offset = 0,
				 .size = bytes };
	double best = 0;

	fj.loops = (uint32_t)(loops < 1 ? 1 : loops > 100 ? 100 : loops);
	printf("fio sequential read of the metadata region, %u passes per run:\n", fj.loops);
	for (uint64_t r = 0; r < b->o.repeat; r++) {
		struct bu_fio_res res;
		double s;

		bu_fio_run(b->fio, &fj, &res);
		s = (double)bytes / res.bw_bytes;
		printf("  fio %" PRIu64 ": %8.2f ms per pass (%.0f MB/s, %.0f ms for %u passes)\n",
		       r + 1, s * 1e3, res.bw_bytes / 1e6, res.runtime_ms, fj.loops);
		best = r == 0 || s < best ? s : best;
	}
	return best;
}

/* Build the recovery store and leave it as a crash would; returns region bytes. */
static uint64_t recovery_setup(struct bench *b)
{
	uint64_t t0 = bu_now_ns(), region;

	b->max_blobs = 0;	/* default geometry */
	step(b, init_msg, "bs_init");
	step(b, alloc_channel_msg, "bs_alloc_channel");
	ids_reserve(b, b->o.blobs);
	b->i = 0;
	b->n = b->o.blobs;
	step(b, rfill_msg, "filling the recovery store");
	step(b, free_channel_msg, "bs_free_channel");
	region = md_region_bytes(b);
	printf("recovery store: %" PRIu64 " blobs (half thick 1-2 clusters, half thin with "
	       "1-4 written clusters), %" PRIu64 " blob slots, built in %.2f s\n", b->nids,
	       bs_get_max_blobs(b->bs), (double)(bu_now_ns() - t0) / 1e9);
	printf("metadata region: %" PRIu64 " clusters of %" PRIu64 " KiB = %.1f MiB "
	       "(device clusters - bs_get_total_data_cluster_count)\n",
	       region / bs_get_cluster_size(b->bs), bs_get_cluster_size(b->bs) / 1024,
	       (double)region / (double)BU_MIB);
	step(b, abandon_msg, "abandoning the store");
	return region;
}

static void recovery(struct bench *b, double *t_rec, double *t_fio, double *t_warm)
{
	struct bs_load_report rep;
	uint64_t region = recovery_setup(b);

	printf("dirty recovery (store dropped without unload), %" PRIu64 " timed loads, "
	       "each in a fresh process:\n", b->o.repeat);
	*t_rec = timed_loads(b, true, &rep);
	printf("dirty recovery, repeated in this process (allocator memory reused):\n");
	*t_warm = warm_loads(b);
	printf("fio --size = the metadata region, %.1f MiB (md_clusters x cluster_size), not "
	       "md_bytes_read, %.1f MiB:\n  the region holds every metadata page, so reading "
	       "it is the cost of reading all metadata once;\n  recovery reads most of it "
	       "(all root slots, the pool pages in use); the same-bytes ratio is shown too\n",
	       (double)region / (double)BU_MIB, (double)rep.md_bytes_read / (double)BU_MIB);
	*t_fio = fio_md_read(b, region);
	printf("  recovery / fio scaled to the %.1f MiB recovery read: %.3f\n",
	       (double)rep.md_bytes_read / (double)BU_MIB,
	       *t_rec / (*t_fio * (double)rep.md_bytes_read / (double)region));
	printf("RESULT mdperf_recovery_md_bytes_read=%" PRIu64 "\n", rep.md_bytes_read);
	printf("RESULT mdperf_md_region_bytes=%" PRIu64 "\n", region);
	printf("RESULT mdperf_recovery_vs_fio_same_bytes=%.3f\n",
	       *t_rec / (*t_fio * (double)rep.md_bytes_read / (double)region));
	printf("RESULT mdperf_recovery_warm_s=%.6f\n", *t_warm);
	printf("RESULT mdperf_recovery_warm_vs_fio=%.3f\n", *t_warm / *t_fio);
}

/* ------------------------------------------------------------------------
 * Setup of the file and of the phases
 * ------------------------------------------------------------------------ */

/*
 * Make the file --size bytes with ftruncate: a new file is sparse. An
 * existing one keeps the blocks earlier runs allocated (the stores are
 * re-initialized, so their contents do not matter): freeing them costs a
 * discard per extent on a file system mounted with -o discard, which took
 * many seconds here. Prints how much is allocated.
 */
static void make_sparse_file(const struct bench *b)
{
	struct stat st;
	int fd;

	if (stat(b->o.file, &st) == 0 && !S_ISREG(st.st_mode))
		bu_die("%s is not a regular file", b->o.file);
	fd = open(b->o.file, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		bu_die("cannot create %s: %s", b->o.file, strerror(errno));
	if (ftruncate(fd, (off_t)b->o.size) != 0 || fstat(fd, &st) != 0)
		bu_die("cannot size %s to %" PRIu64 " bytes: %s", b->o.file, b->o.size,
		       strerror(errno));
	close(fd);
	printf("file: %" PRIu64 " GiB, %.1f MiB of it allocated\n", b->o.size / BU_GIB,
	       (double)st.st_blocks * 512 / (double)BU_MIB);
}

static void rates_and_clean_loads(struct bench *b, double *t_small, double *t_large)
{
	b->max_blobs = RATE_SLOTS;
	step(b, init_msg, "bs_init");
	printf("rates: one operation at a time, store of %" PRIu64 " GiB, %u blob slots\n",
	       b->o.size / BU_GIB, RATE_SLOTS);
	rate_run(b, RATE_CREATE, b->o.ops);
	rate_run(b, RATE_OPEN_CLOSE, b->o.ops);
	rate_run(b, RATE_XATTR_SYNC, b->o.ops);
	rate_run(b, RATE_DELETE, b->nids);
	*t_small = clean_load(b, LOAD_SMALL);
	*t_large = clean_load(b, LOAD_LARGE);
	step(b, unload_msg, "bs_unload");
	b->nids = 0;
}

static void print_summary(double t_small, double t_large, double t_rec, double t_fio,
			  double t_warm)
{
	printf("\nsummary:\n");
	printf("  clean load: %.2f ms with %u blobs, %.2f ms with %u: x%.2f (goal <= %.1f)%s\n",
	       t_small * 1e3, LOAD_SMALL, t_large * 1e3, LOAD_LARGE, t_large / t_small,
	       CLEAN_GOAL, t_large / t_small > CLEAN_GOAL ? "  above goal" : "");
	printf("  recovery: %.2f ms, fio sequential read of the metadata: %.2f ms: x%.2f "
	       "(goal <= %.1f)%s\n", t_rec * 1e3, t_fio * 1e3, t_rec / t_fio, RECOVERY_GOAL,
	       t_rec / t_fio > RECOVERY_GOAL ? "  above goal" : "");
	printf("  recovery repeated in one process: %.2f ms: x%.2f of fio\n", t_warm * 1e3,
	       t_warm / t_fio);
}

int main(int argc, char **argv)
{
	static struct bench b;
	double t_small, t_large, t_rec, t_fio, t_warm;

	bu_set_prog("mdperf");
	setvbuf(stdout, NULL, _IOLBF, 0);
	parse_opts(&b.o, argc, argv);
	if (b.o.child != NULL)
		return load_child(&b);
	bu_fio_find(b.fio, sizeof(b.fio));
	bs_log_set_level(BS_LOG_WARN);
	make_sparse_file(&b);
	bu_loop_init(&b.loop, "mdperf");
	step(&b, open_dev_msg, "opening with the io_uring backend");
	printf("mdperf: %s, %" PRIu64 " GiB sparse, backend %s\n", b.o.file,
	       b.o.size / BU_GIB, bs_file_dev_backend(b.dev));
	rates_and_clean_loads(&b, &t_small, &t_large);
	printf("RESULT mdperf_clean_load_1k_s=%.6f\n", t_small);
	printf("RESULT mdperf_clean_load_10k_s=%.6f\n", t_large);
	printf("RESULT mdperf_clean_load_10k_vs_1k=%.3f\n", t_large / t_small);
	if (posix_memalign((void **)&b.buf, 4096, IO_UNIT) != 0)
		bu_die("out of memory");
	bu_fill_pattern(b.buf, IO_UNIT, 0x3d3d);
	recovery(&b, &t_rec, &t_fio, &t_warm);
	printf("RESULT mdperf_recovery_s=%.6f\n", t_rec);
	printf("RESULT mdperf_fio_md_seqread_s=%.6f\n", t_fio);
	printf("RESULT mdperf_recovery_vs_fio=%.3f\n", t_rec / t_fio);
	print_summary(t_small, t_large, t_rec, t_fio, t_warm);
	step(&b, close_dev_msg, "closing the device");
	bu_loop_fini(&b.loop);
	free(b.ids);
	free(b.buf);
	return 0;
}
