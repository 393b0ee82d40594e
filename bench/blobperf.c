/*
 * blobperf: data-path throughput of one blob against fio on the same bytes.
 *
 * Cases (one blob, O_DIRECT file through the io_uring device, no fsync):
 *   randread_4k_qd32, randwrite_4k_qd32, seqread_1m_qd32, seqwrite_1m_qd32
 *     on a THICK blob, each against fio;
 *   randwrite_4k_qd32_thin[_zeroes|_unmap]
 *     first writes into a fresh THIN blob, against our thick figure;
 *   randwrite_4k_qd32_clone_cow
 *     first writes into a fresh clone whose every cluster its snapshot
 *     owns (copy-on-write), against our thick figure.
 *
 * Method
 *  - The file is made --size bytes (a longer one is used whole) and written
 *    end to end once (1 MiB raw device writes at queue depth 32, then a
 *    flush) so nothing later reads a hole.
 *  - A store is initialized on it with BS_CLEAR_NONE, so init leaves the
 *    data area alone; one thick blob takes every free cluster and is then
 *    written end to end through bs_blob_write (1 MiB, depth 32) and synced:
 *    its clusters are written extents, like the bytes fio will touch. (Thick
 *    create zeroes clusters that are not known-zero with fallocate
 *    ZERO_RANGE, which leaves unwritten extents; the blob pre-write converts
 *    them back.) The blob's clusters are checked to be one physically
 *    contiguous run; fio gets exactly that run: --offset=<first cluster
 *    byte> --size=<blob bytes>.
 *  - Ours: one bs_thread polled from main() in a tight loop; that thread is
 *    the store's metadata thread and does all IO. Exactly qd requests are in
 *    flight: each completion submits the slot's next IO. Offsets are uniform
 *    random (xorshift64*) or sequential with wrap-around, in IO-size units
 *    of the blob. Buffers (posix_memalign 4096) and request slots are set up
 *    before timing; the loop allocates nothing. Timing is CLOCK_MONOTONIC
 *    from the first submission to the last completion; submission stops at
 *    the deadline and the queue drains (the drain is counted).
 *  - Thin: each run inits a fresh store with the variant's clear method,
 *    creates a thin blob as large as the thick one and runs the random 4 KiB
 *    write case for the same time. BS_CLEAR_NONE: every first write to a
 *    cluster zeroes the whole cluster first (D8). _zeroes (WRITE_ZEROES) and
 *    _unmap (UNMAP on a file: punch hole, reads back as zeros): clusters are
 *    known-zero and the first write only publishes the cluster.
 *  - Clone COW: each run inits a fresh store (BS_CLEAR_NONE), creates a
 *    thick blob over half the free clusters (its bytes are the pre-written
 *    file's), snapshots it, and runs the random 4 KiB write case on the
 *    blob, now a clone of the snapshot: every first write to a cluster
 *    copies that cluster from the snapshot into a new one (a device copy
 *    where the device offers it, else read + write), then writes. The other
 *    half of the store holds the copies.
 *
 * Fairness
 *  - Same file, same byte range, IO size, queue depth, direction, run time,
 *    ioengine io_uring, direct=1; fio keeps its default engine options (no
 *    registered files or buffers, no polling): it is not handicapped.
 *  - Writes carry a non-zero pattern; neither side flushes while timed.
 *  - Ours and fio alternate --repeat times per case; each keeps its best.
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
/* Internal, read-only use: check that the thick blob is one physical run. */
#include "blob/store_int.h"

#define IO_UNIT 4096u			/* device block = blob io unit */
#define MAX_QD 32u
#define PREWRITE_IO BU_MIB
#define DEV_QD 128u			/* device ring: above any case's depth */
#define THICK_GOAL 0.95
#define THIN_GOAL 0.80

/* A thick case: the same parameters go to fio and to our blob. */
struct thick_case {
	const char *name;
	const char *fio_rw;
	uint32_t io_len;
	uint32_t qd;
	bool write;
	bool random;
};

static const struct thick_case thick_cases[] = {
	{ "randread_4k_qd32", "randread", 4096, 32, false, true },
	{ "randwrite_4k_qd32", "randwrite", 4096, 32, true, true },
	{ "seqread_1m_qd32", "read", BU_MIB, 32, false, false },
	{ "seqwrite_1m_qd32", "write", BU_MIB, 32, true, false },
};
#define NTHICK (sizeof(thick_cases) / sizeof(thick_cases[0]))
#define RANDWRITE_CASE 1u		/* the thin variants' baseline */

/*
 * A first-write variant: fresh store cleared this way, and either a fresh
 * thin blob over the whole store or (cow) a fresh clone of a snapshot that
 * owns every cluster of it.
 */
struct thin_case {
	const char *name;
	const char *suffix;		/* of the RESULT names */
	enum bs_clear_method clear;
	bool cow;
};

static const struct thin_case thin_cases[] = {
	{ "randwrite_4k_qd32_thin", "thin", BS_CLEAR_NONE, false },
	{ "randwrite_4k_qd32_thin_zeroes", "thin_zeroes", BS_CLEAR_WRITE_ZEROES, false },
	{ "randwrite_4k_qd32_thin_unmap", "thin_unmap", BS_CLEAR_UNMAP, false },
	{ "randwrite_4k_qd32_clone_cow", "clone_cow", BS_CLEAR_NONE, true },
};
#define NTHIN (sizeof(thin_cases) / sizeof(thin_cases[0]))
#define NCASES (NTHICK + NTHIN)

struct opts {
	const char *file;
	uint64_t size;
	uint64_t time_ms;
	uint64_t repeat;
	bool selected[NCASES];		/* thick cases first, then thin */
};

/* One measured run. */
struct sample {
	double iops;
	double bps;
};

struct job;

/* One IO slot: descriptor (device IO) and buffer, set up before timing. */
struct slot {
	struct bs_dev_io dio;
	struct job *job;
	void *buf;
	uint64_t off;			/* io units */
};

/* A stream of IO on the raw device (blob == NULL) or on the blob. */
struct job {
	struct bu_loop *loop;
	struct bs_io_channel *ch;
	struct bs_blob *blob;
	struct slot *slots;
	uint32_t qd;
	uint32_t inflight;
	uint64_t units_per_io;		/* io units per IO */
	uint64_t nios;			/* IO-size units in the target */
	uint64_t cursor;
	uint64_t rng;
	uint64_t limit;			/* IOs to submit at most */
	uint64_t submitted;
	uint64_t completed;
	uint64_t duration_ns;		/* 0: no time limit */
	uint64_t start_ns;
	uint64_t deadline_ns;
	uint64_t end_ns;		/* last completion */
	bool write;
	bool random;
	bool stop;
	int err;
	uint64_t err_off;
};

struct bench {
	struct bu_loop loop;		/* first: steps get the bench as ctx */
	struct opts o;
	char fio[PATH_MAX];
	struct bs_dev *dev;
	struct bs_io_channel *dev_ch;
	struct bs_dev_io flush_io;
	struct bs_store *bs;
	enum bs_clear_method clear;
	bool thin;
	bool half;			/* blob over half the free clusters */
	bs_blob_id blob_id;
	bs_blob_id snap_id;
	struct bs_blob *blob;
	struct bs_io_channel *ch;
	uint64_t region_off;		/* bytes: the blob's run on the file */
	uint64_t region_len;
	struct slot slots[MAX_QD];
	uint8_t *pool;			/* MAX_QD * 1 MiB of IO buffers */
	struct job job;
};

static const char *case_name(size_t i)
{
	return i < NTHICK ? thick_cases[i].name : thin_cases[i - NTHICK].name;
}

/* ------------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: blobperf [options]\n"
		"Blob data path (one blob, io_uring file device) against fio on the same bytes.\n"
		"  --file PATH     store file (default build/blobperf.img); overwritten\n"
		"  --size BYTES    file size, K/M/G suffixes, multiple of 1M (default 2G);\n"
		"                  a longer existing file is used whole\n"
		"  --time SECONDS  length of each run, fractions allowed (default 5)\n"
		"  --repeat N      runs per side and case, best kept (default 2)\n"
		"  --cases a,b     run only these cases (default all)\n"
		"  --quick         CI smoke run: build/blobperf-quick.img of 256M, 0.25 s runs,\n"
		"                  one per side\n"
		"  --help          this text\n"
		"cases:");
	for (size_t i = 0; i < NCASES; i++)
		fprintf(f, " %s", case_name(i));
	fputs("\n(a thin case also runs randwrite_4k_qd32 on the thick blob: its baseline)\n", f);
}

enum { OPT_FILE = 256, OPT_SIZE, OPT_TIME, OPT_REPEAT, OPT_CASES, OPT_QUICK, OPT_HELP };

static const struct option long_opts[] = {
	{ "file", required_argument, NULL, OPT_FILE },
	{ "size", required_argument, NULL, OPT_SIZE },
	{ "time", required_argument, NULL, OPT_TIME },
	{ "repeat", required_argument, NULL, OPT_REPEAT },
	{ "cases", required_argument, NULL, OPT_CASES },
	{ "quick", no_argument, NULL, OPT_QUICK },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

/* Bit of each option given explicitly, so --quick only fills in defaults. */
enum { SET_SIZE = 1, SET_TIME = 2, SET_REPEAT = 4, SET_CASES = 8, SET_QUICK = 16,
       SET_FILE = 32 };

static unsigned parse_one(struct opts *o, int c, const char *arg)
{
	const char *names[NCASES];

	switch (c) {
	case OPT_FILE: o->file = arg; return SET_FILE;
	case OPT_SIZE:
		if (bu_parse_size(arg, &o->size) || o->size % BU_MIB || o->size < 64 * BU_MIB)
			bu_die("bad --size '%s': need a multiple of 1M, at least 64M", arg);
		return SET_SIZE;
	case OPT_TIME:
		if (bu_parse_secs(arg, 100, 3600000, &o->time_ms))
			bu_die("bad --time '%s': need 0.1 to 3600 seconds", arg);
		return SET_TIME;
	case OPT_REPEAT:
		if (bu_parse_u64(arg, 1, 100, &o->repeat))
			bu_die("bad --repeat '%s': need 1 to 100", arg);
		return SET_REPEAT;
	case OPT_CASES:
		for (size_t i = 0; i < NCASES; i++)
			names[i] = case_name(i);
		bu_parse_list(arg, names, NCASES, o->selected);
		return SET_CASES;
	case OPT_QUICK: return SET_QUICK;
	case OPT_HELP: usage(stdout); exit(0);
	default: bu_die("unknown option or missing value: '%s' (see --help)", arg);
	}
}

static void parse_opts(struct opts *o, int argc, char **argv)
{
	unsigned set = 0;
	int c;

	*o = (struct opts){ .file = "build/blobperf.img", .size = 2 * BU_GIB,
			    .time_ms = 5000, .repeat = 2 };
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1)
		set |= parse_one(o, c, c == '?' ? argv[optind - 1] : optarg);
	if (optind < argc)
		bu_die("unexpected argument '%s' (see --help)", argv[optind]);
	if ((set & SET_QUICK) && !(set & SET_SIZE))
		o->size = 256 * BU_MIB;
	if ((set & SET_QUICK) && !(set & SET_FILE))
		o->file = "build/blobperf-quick.img";
	if ((set & SET_QUICK) && !(set & SET_TIME))
		o->time_ms = 250;
	if ((set & SET_QUICK) && !(set & SET_REPEAT))
		o->repeat = 1;
	for (size_t i = 0; i < NCASES && !(set & SET_CASES); i++)
		o->selected[i] = true;
	for (size_t i = 0; i < NTHIN; i++)
		if (o->selected[NTHICK + i])
			o->selected[RANDWRITE_CASE] = true;
}

/* ------------------------------------------------------------------------
 * The IO loop (runs on the bench thread, inside bs_thread_poll)
 * ------------------------------------------------------------------------ */

static void io_done(void *arg, int err);

/* Give @s its next IO: a random or the next sequential unit. */
static void job_submit(struct job *j, struct slot *s)
{
	uint64_t unit;

	if (j->random) {
		unit = bu_rng_below(&j->rng, j->nios);
	} else {
		unit = j->cursor;
		j->cursor = j->cursor + 1 == j->nios ? 0 : j->cursor + 1;
	}
	s->off = unit * j->units_per_io;
	j->inflight++;
	j->submitted++;
	if (j->blob != NULL && j->write)
		bs_blob_write(j->blob, j->ch, s->buf, s->off, j->units_per_io, io_done, s);
	else if (j->blob != NULL)
		bs_blob_read(j->blob, j->ch, s->buf, s->off, j->units_per_io, io_done, s);
	else if (j->write)
		bs_dev_write(j->ch, &s->dio, s->buf, s->off, j->units_per_io, io_done, s);
	else
		bs_dev_read(j->ch, &s->dio, s->buf, s->off, j->units_per_io, io_done, s);
}

/* A completion: count it; resubmit the slot until the deadline or limit. */
static void io_done(void *arg, int err)
{
	struct slot *s = arg;
	struct job *j = s->job;
	uint64_t now = bu_now_ns();

	j->inflight--;
	if (err != 0 && j->err == 0) {
		j->err = err;
		j->err_off = s->off;
	}
	if (err == 0)
		j->completed++;
	if (err != 0 || j->submitted == j->limit || now >= j->deadline_ns)
		j->stop = true;
	if (!j->stop) {
		job_submit(j, s);
		return;
	}
	if (j->inflight == 0) {
		j->end_ns = now;
		bu_loop_cpl(j->loop, j->err);
	}
}

static void job_start_msg(void *ctx)
{
	struct bench *b = ctx;
	struct job *j = &b->job;
	uint64_t n = j->limit < j->qd ? j->limit : j->qd;

	j->start_ns = bu_now_ns();
	j->deadline_ns = j->duration_ns ? j->start_ns + j->duration_ns : UINT64_MAX;
	for (uint32_t i = 0; i < n; i++)
		job_submit(j, &j->slots[i]);
}

/*
 * Run a job: @io_len-byte IOs, @qd in flight, on the blob (or the raw
 * device if @on_blob is false), for @time_ms (0: until @limit IOs). Any IO
 * error is fatal. Returns the IOPS.
 */
static double job_run(struct bench *b, bool on_blob, bool write, bool random, uint32_t io_len,
		      uint32_t qd, uint64_t time_ms, uint64_t limit)
{
	struct job *j = &b->job;
	uint64_t target = on_blob ? b->region_len : b->o.size;
	double secs;

	*j = (struct job){ .loop = &b->loop, .ch = on_blob ? b->ch : b->dev_ch,
			   .blob = on_blob ? b->blob : NULL, .slots = b->slots, .qd = qd,
			   .units_per_io = io_len / IO_UNIT, .nios = target / io_len,
			   .rng = bu_rng_seed(io_len + qd), .limit = limit,
			   .duration_ns = time_ms * 1000000ull, .write = write, .random = random };
	for (uint32_t i = 0; i < qd; i++) {
		b->slots[i].job = j;
		b->slots[i].buf = b->pool + (size_t)i * BU_MIB;
	}
	if (bu_loop_run(&b->loop, job_start_msg, b) != 0)
		bu_die("%s error at byte %" PRIu64 " of the %s: %s", write ? "write" : "read",
		       j->err_off * IO_UNIT, on_blob ? "blob" : "file", strerror(-j->err));
	secs = (double)(j->end_ns - j->start_ns) / 1e9;
	return (double)j->completed / secs;
}

/* ------------------------------------------------------------------------
 * Steps on the bench thread: each ends in bu_loop_cpl()
 * ------------------------------------------------------------------------ */

static void open_dev_msg(void *ctx)
{
	struct bench *b = ctx;
	struct bs_file_dev_opts fo;
	int rc;

	bs_file_dev_opts_init(&fo);
	fo.block_len = IO_UNIT;
	fo.queue_depth = DEV_QD;
	fo.create_size = b->o.size;
	fo.backend = BS_FILE_BACKEND_URING;
	rc = bs_file_dev_open(b->o.file, &fo, &b->dev);
	if (rc == 0 && (b->dev_ch = bs_dev_get_channel(b->dev)) == NULL)
		rc = -errno;
	bu_loop_cpl(&b->loop, rc);
}

static void flush_dev_msg(void *ctx)
{
	struct bench *b = ctx;

	bs_dev_flush(b->dev_ch, &b->flush_io, bu_loop_cpl, &b->loop);
}

static void close_dev_msg(void *ctx)
{
	struct bench *b = ctx;

	bs_dev_put_channel(b->dev_ch);
	b->dev_ch = NULL;
	bs_dev_close(b->dev, bu_loop_cpl, &b->loop);
}

static void init_store_msg(void *ctx)
{
	struct bench *b = ctx;
	struct bs_opts opts;

	bs_opts_init(&opts, sizeof(opts));
	opts.clear_method = b->clear;
	bs_init(b->dev, &opts, &b->bs, bu_loop_cpl, &b->loop);
}

/* Create the blob (thick or thin) over every (or half of every) free cluster. */
static void create_blob_msg(void *ctx)
{
	struct bench *b = ctx;
	struct bs_blob_opts bo;

	bs_blob_opts_init(&bo, sizeof(bo));
	bo.num_clusters = bs_get_free_cluster_count(b->bs) / (b->half ? 2 : 1);
	bo.thin_provision = b->thin;
	bs_blob_create(b->bs, &bo, &b->blob_id, bu_loop_cpl, &b->loop);
}

static void open_blob_msg(void *ctx)
{
	struct bench *b = ctx;

	bs_blob_open(b->bs, b->blob_id, &b->blob, bu_loop_cpl, &b->loop);
}

static void alloc_channel_msg(void *ctx)
{
	struct bench *b = ctx;

	b->ch = bs_alloc_channel(b->bs);
	bu_loop_cpl(&b->loop, b->ch ? 0 : -errno);
}

/* Snapshot the open blob: it becomes a clone whose clusters the snapshot owns. */
static void snapshot_msg(void *ctx)
{
	struct bench *b = ctx;

	bs_blob_snapshot(b->bs, b->blob_id, NULL, 0, &b->snap_id, bu_loop_cpl, &b->loop);
}

static void sync_blob_msg(void *ctx)
{
	struct bench *b = ctx;

	bs_blob_sync(b->blob, bu_loop_cpl, &b->loop);
}

/* Free our channel and close the blob (the close commits a thin map). */
static void close_blob_msg(void *ctx)
{
	struct bench *b = ctx;

	bs_free_channel(b->ch);
	b->ch = NULL;
	bs_blob_close(b->blob, bu_loop_cpl, &b->loop);
	b->blob = NULL;
}

static void unload_msg(void *ctx)
{
	struct bench *b = ctx;

	bs_unload(b->bs, bu_loop_cpl, &b->loop);
	b->bs = NULL;
}

/* Run one step; a failure is fatal with @what in the message. */
static void step(struct bench *b, bs_msg_fn fn, const char *what)
{
	int rc = bu_loop_run(&b->loop, fn, b);

	if (rc != 0)
		bu_die("%s on %s: %s", what, b->o.file, strerror(-rc));
}

/* ------------------------------------------------------------------------
 * Setup
 * ------------------------------------------------------------------------ */

/*
 * Give the file --size bytes (the store spans the whole file). A longer file
 * is used whole, not shrunk: freeing its blocks costs a discard per extent
 * on a file system mounted with -o discard (minutes for a few GiB here).
 */
static void size_file(struct bench *b)
{
	struct stat st;
	int fd;

	if (stat(b->o.file, &st) == 0 && !S_ISREG(st.st_mode))
		bu_die("%s is not a regular file", b->o.file);
	fd = open(b->o.file, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || fstat(fd, &st) != 0)
		bu_die("cannot create %s: %s", b->o.file, strerror(errno));
	if ((uint64_t)st.st_size > b->o.size) {
		if (st.st_size % BU_MIB != 0)
			bu_die("%s: size %" PRIu64 " is not a multiple of 1M", b->o.file,
			       (uint64_t)st.st_size);
		printf("note: %s is larger than --size; using all %" PRIu64 " MiB of it\n",
		       b->o.file, (uint64_t)st.st_size / BU_MIB);
		b->o.size = (uint64_t)st.st_size;
	} else if (ftruncate(fd, (off_t)b->o.size) != 0) {
		bu_die("cannot size %s to %" PRIu64 " bytes: %s", b->o.file, b->o.size,
		       strerror(errno));
	}
	close(fd);
}

static void bench_open(struct bench *b)
{
	size_file(b);
	bs_log_set_level(BS_LOG_WARN);
	bu_loop_init(&b->loop, "blobperf");
	b->pool = bs_buf_alloc((size_t)MAX_QD * BU_MIB, 4096);
	if (b->pool == NULL)
		bu_die("out of memory for %u MiB of IO buffers", MAX_QD);
	bu_fill_pattern(b->pool, (size_t)MAX_QD * BU_MIB, 0x5eedull);
	step(b, open_dev_msg, "opening with the io_uring backend");
	if (b->dev->block_count * IO_UNIT < b->o.size)
		bu_die("%s: device smaller than --size", b->o.file);
}

/* Write the whole file once, then flush: no case ever reads a hole. */
static void prewrite_file(struct bench *b)
{
	uint64_t t0 = bu_now_ns();

	job_run(b, false, true, false, PREWRITE_IO, MAX_QD, 0, b->o.size / PREWRITE_IO);
	step(b, flush_dev_msg, "flush");
	printf("pre-wrote %s: %" PRIu64 " MiB in %.2f s\n", b->o.file, b->o.size / BU_MIB,
	       (double)(bu_now_ns() - t0) / 1e9);
}

/* Fresh store with clear method @clear, one blob over all (or half) of it, opened. */
static void store_with_blob(struct bench *b, enum bs_clear_method clear, bool thin, bool half)
{
	b->clear = clear;
	b->thin = thin;
	b->half = half;
	step(b, init_store_msg, "bs_init");
	step(b, create_blob_msg, "bs_blob_create");
	step(b, open_blob_msg, "bs_blob_open");
	step(b, alloc_channel_msg, "bs_alloc_channel");
	b->region_len = bs_blob_get_num_clusters(b->blob) * bs_get_cluster_size(b->bs);
}

/* The thick blob must be one physical run for fio's range to be the same bytes. */
static void locate_thick_blob(struct bench *b)
{
	const struct blob_map *m = &b->blob->map;
	uint64_t n = bs_blob_get_num_clusters(b->blob);
	uint32_t first = blob_map_get(m, 0);

	for (uint64_t i = 0; i < n; i++)
		if (blob_map_get(m, i) != first + i)
			bu_die("thick blob is not physically contiguous at cluster %" PRIu64, i);
	b->region_off = (uint64_t)first * bs_get_cluster_size(b->bs);
}

static void close_store(struct bench *b)
{
	step(b, close_blob_msg, "bs_blob_close");
	step(b, unload_msg, "bs_unload");
}

/* Thick store: init (CLEAR_NONE), blob over all clusters, written end to end. */
static void thick_setup(struct bench *b)
{
	uint64_t t0;

	store_with_blob(b, BS_CLEAR_NONE, false, false);
	locate_thick_blob(b);
	t0 = bu_now_ns();
	job_run(b, true, true, false, PREWRITE_IO, MAX_QD, 0, b->region_len / PREWRITE_IO);
	step(b, sync_blob_msg, "bs_blob_sync");
	printf("thick blob: %" PRIu64 " MiB at file offset %" PRIu64 " (%" PRIu64
	       " MiB of metadata before it), pre-written in %.2f s\n", b->region_len / BU_MIB,
	       b->region_off, b->region_off / BU_MIB, (double)(bu_now_ns() - t0) / 1e9);
}

/* ------------------------------------------------------------------------
 * Cases
 * ------------------------------------------------------------------------ */

static void run_fio(struct bench *b, const struct thick_case *tc, struct sample *s)
{
	struct bu_fio_job fj = { .name = tc->name, .file = b->o.file, .rw = tc->fio_rw,
				 .bs = tc->io_len, .iodepth = tc->qd, .offset = b->region_off,
				 .size = b->region_len, .runtime_ms = b->o.time_ms };
	struct bu_fio_res r;

	bu_fio_run(b->fio, &fj, &r);
	s->iops = r.iops;
	s->bps = r.bw_bytes;
}

static void run_ours(struct bench *b, const struct thick_case *tc, struct sample *s)
{
	s->iops = job_run(b, true, tc->write, tc->random, tc->io_len, tc->qd, b->o.time_ms,
			  UINT64_MAX);
	s->bps = s->iops * tc->io_len;
}

static void print_run(const char *name, uint64_t run, const char *side, const struct sample *s)
{
	printf("  %-30s run %" PRIu64 ": %-4s %9.0f IOPS %8.1f MB/s\n", name, run, side,
	       s->iops, s->bps / 1e6);
}

/* Alternate ours and fio --repeat times; keep each side's best; print RESULTs. */
static void run_thick_case(struct bench *b, const struct thick_case *tc, struct sample best[2])
{
	struct sample s;

	printf("%s: %s, %u KiB IOs, qd %u, %.1f s x %" PRIu64 " per side\n", tc->name,
	       tc->fio_rw, tc->io_len / 1024, tc->qd, (double)b->o.time_ms / 1e3, b->o.repeat);
	memset(best, 0, 2 * sizeof(*best));
	for (uint64_t r = 1; r <= b->o.repeat; r++) {
		run_ours(b, tc, &s);
		print_run(tc->name, r, "ours", &s);
		if (s.iops > best[0].iops)
			best[0] = s;
		run_fio(b, tc, &s);
		print_run(tc->name, r, "fio", &s);
		if (s.iops > best[1].iops)
			best[1] = s;
	}
	printf("RESULT blobperf_%s_ours_iops=%.0f\n", tc->name, best[0].iops);
	printf("RESULT blobperf_%s_fio_iops=%.0f\n", tc->name, best[1].iops);
	printf("RESULT blobperf_%s_ours_mbps=%.1f\n", tc->name, best[0].bps / 1e6);
	printf("RESULT blobperf_%s_fio_mbps=%.1f\n", tc->name, best[1].bps / 1e6);
	printf("RESULT blobperf_%s_ratio=%.3f\n", tc->name,
	       best[1].iops > 0 ? best[0].iops / best[1].iops : 0);
}

/*
 * One first-write run: fresh store and thin blob (or clone of a fresh
 * snapshot), random 4 KiB writes for --time.
 */
static double thin_run(struct bench *b, const struct thin_case *tc, uint64_t *allocated)
{
	const struct thick_case *rw = &thick_cases[RANDWRITE_CASE];
	double iops;

	store_with_blob(b, tc->clear, !tc->cow, tc->cow);
	if (tc->cow)
		step(b, snapshot_msg, "bs_blob_snapshot");
	iops = job_run(b, true, true, true, rw->io_len, rw->qd, b->o.time_ms, UINT64_MAX);
	*allocated = bs_blob_get_num_allocated_clusters(b->blob);
	close_store(b);
	return iops;
}

static double run_thin_case(struct bench *b, const struct thin_case *tc, double thick_iops)
{
	double best = 0;

	printf("%s: fresh store (clear method %s), fresh %s, randwrite 4 KiB qd 32, "
	       "%.1f s x %" PRIu64 "\n", tc->name, tc->clear == BS_CLEAR_NONE ? "NONE" :
	       tc->clear == BS_CLEAR_UNMAP ? "UNMAP" : "WRITE_ZEROES",
	       tc->cow ? "clone of a full snapshot" : "thin blob", (double)b->o.time_ms / 1e3,
	       b->o.repeat);
	for (uint64_t r = 1; r <= b->o.repeat; r++) {
		uint64_t alloc, total;
		double iops = thin_run(b, tc, &alloc);

		total = b->region_len / BU_MIB;
		printf("  %-30s run %" PRIu64 ": ours %9.0f IOPS %8.1f MB/s "
		       "(%" PRIu64 " of %" PRIu64 " clusters allocated)\n", tc->name, r, iops,
		       iops * 4096 / 1e6, alloc, total);
		best = iops > best ? iops : best;
	}
	printf("RESULT blobperf_randwrite_4k_qd32_%s_iops=%.0f\n", tc->suffix, best);
	printf("RESULT blobperf_randwrite_4k_qd32_%s_vs_thick=%.3f\n", tc->suffix,
	       thick_iops > 0 ? best / thick_iops : 0);
	return best;
}

/* ------------------------------------------------------------------------
 * Main
 * ------------------------------------------------------------------------ */

static void print_summary(const struct bench *b, struct sample res[NTHICK][2],
			  const double thin[NTHIN])
{
	double thick_rw = res[RANDWRITE_CASE][0].iops;

	printf("\nsummary: best of %" PRIu64 " x %.1f s per side; ratio = ours/fio IOPS "
	       "(goal >= %.2f), thin = thin/thick IOPS (goal >= %.2f; clone_cow: no goal)\n",
	       b->o.repeat,
	       (double)b->o.time_ms / 1e3, THICK_GOAL, THIN_GOAL);
	printf("%-30s %10s %10s %9s %9s %7s\n", "case", "ours IOPS", "fio IOPS", "ours MB/s",
	       "fio MB/s", "ratio");
	for (size_t i = 0; i < NTHICK; i++) {
		const struct sample *s = res[i];
		double ratio = s[1].iops > 0 ? s[0].iops / s[1].iops : 0;

		if (b->o.selected[i])
			printf("%-30s %10.0f %10.0f %9.1f %9.1f %7.3f%s\n", thick_cases[i].name,
			       s[0].iops, s[1].iops, s[0].bps / 1e6, s[1].bps / 1e6, ratio,
			       ratio < THICK_GOAL ? "  below goal" : "");
	}
	for (size_t i = 0; i < NTHIN; i++) {
		double ratio = thick_rw > 0 ? thin[i] / thick_rw : 0;

		if (b->o.selected[NTHICK + i])
			printf("%-30s %10.0f %10s %9.1f %9s %7.3f%s (vs thick)\n",
			       thin_cases[i].name, thin[i], "-", thin[i] * 4096 / 1e6, "-", ratio,
			       !thin_cases[i].cow && ratio < THIN_GOAL ? "  below goal" : "");
	}
}

int main(int argc, char **argv)
{
	static struct bench b;
	struct sample res[NTHICK][2];
	double thin[NTHIN] = { 0 };

	bu_set_prog("blobperf");
	setvbuf(stdout, NULL, _IOLBF, 0);
	parse_opts(&b.o, argc, argv);
	bu_fio_find(b.fio, sizeof(b.fio));
	bench_open(&b);
	printf("blobperf: %s, %" PRIu64 " MiB, backend %s, %.1f s runs, best of %" PRIu64 "\n",
	       b.o.file, b.o.size / BU_MIB, bs_file_dev_backend(b.dev),
	       (double)b.o.time_ms / 1e3, b.o.repeat);
	prewrite_file(&b);
	thick_setup(&b);
	memset(res, 0, sizeof(res));
	for (size_t i = 0; i < NTHICK; i++)
		if (b.o.selected[i])
			run_thick_case(&b, &thick_cases[i], res[i]);
	close_store(&b);
	for (size_t i = 0; i < NTHIN; i++)
		if (b.o.selected[NTHICK + i])
			thin[i] = run_thin_case(&b, &thin_cases[i], res[RANDWRITE_CASE][0].iops);
	print_summary(&b, res, thin);
	step(&b, close_dev_msg, "closing the device");
	bu_loop_fini(&b.loop);
	free(b.pool);
	return 0;
}
