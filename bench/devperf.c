/*
 * devperf: our io_uring file device against fio, on the same file, in one run.
 *
 * Cases (all 4 KiB-aligned, O_DIRECT, one job, no fsync):
 *   randread_4k_qd1, randread_4k_qd32, randread_4k_qd64,
 *   randwrite_4k_qd32, seqwrite_1m_qd32, seqread_1m_qd32.
 *
 * Method
 *  - The file is created at --size if missing or short and every block is
 *    written once (sequential 1 MiB writes through our device, then a flush),
 *    so no case reads holes or converts unwritten extents. A side file
 *    PATH.prewritten records the size and inode so later runs skip this.
 *  - fio runs as a child (posix_spawn, never a shell) with the io_uring
 *    engine, direct=1, the same file, size, block size and queue depth,
 *    norandommap and time_based; we read iops and bw_bytes from its JSON.
 *  - Ours: the same file through bs_file_dev_open() (io_uring backend, ring
 *    depth >= the case's), one bs_thread bound to main() and driven the way
 *    a reactor runs (bu_thread_step: poll, short idle spin, bs_thread_wait;
 *    bound, so the ring and busy polling are a reactor's: see
 *    uring_dev.c). Exactly qd IOs are kept in flight:
 *    each completion resubmits its slot. Random offsets come from splitmix64,
 *    uniform over the file in IO-size units; sequential cases walk the file
 *    and wrap. Buffers and bs_dev_io structs are allocated before timing.
 *  - Timing is CLOCK_MONOTONIC from the first submission; at the deadline no
 *    more IO is submitted, the queue drains, and IOPS is every completed IO
 *    divided by the time to the last completion (drain included).
 *
 * Fairness
 *  - Same file, size, alignment, block size, queue depth, IO direction and
 *    run time for both; fio keeps its default engine options (no fixed
 *    buffers, registered files, polling or SQPOLL): it is not handicapped.
 *  - Writes carry a non-zero pattern and no side flushes during timing.
 *  - Buffers: ours come from bs_buf_alloc(), the library's IO buffer
 *    allocator (huge-page backed, so a 1 MiB IO is one segment); fio's from
 *    its default malloc, whose physical contiguity is luck (src/dev/buf.c).
 *    This is the one difference, and it is a library feature: an application
 *    gets it by allocating with bs_buf_alloc(). fio has no option for
 *    transparent huge pages (mem=mmaphuge needs a hugetlbfs mount).
 *  - Ours and fio alternate --repeat times per case and each side keeps its
 *    best run, which damps noise from the (usually virtual) machine.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <blobstore/dev.h>
#include <blobstore/file_dev.h>
#include <blobstore/log.h>
#include <blobstore/thread.h>

#include "bench_util.h"

extern char **environ;

#define BLOCK_LEN 4096u			/* device logical block */
#define MIB (1024u * 1024u)
#define PREWRITE_QD 32u
#define RATIO_GOAL 0.95

/* One benchmark case: the same parameters go to fio and to our device. */
struct perf_case {
	const char *name;
	const char *fio_rw;		/* fio --rw= */
	const char *fio_bs;		/* fio --bs= */
	uint32_t io_len;		/* bytes per IO */
	uint32_t qd;
	bool write;
	bool random;
};

static const struct perf_case cases[] = {
	{ "randread_4k_qd1", "randread", "4k", 4096, 1, false, true },
	{ "randread_4k_qd32", "randread", "4k", 4096, 32, false, true },
	{ "randread_4k_qd64", "randread", "4k", 4096, 64, false, true },
	{ "randwrite_4k_qd32", "randwrite", "4k", 4096, 32, true, true },
	{ "seqwrite_1m_qd32", "write", "1m", MIB, 32, true, false },
	{ "seqread_1m_qd32", "read", "1m", MIB, 32, false, false },
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

struct opts {
	const char *file;
	uint64_t size;
	unsigned int time_s;
	unsigned int repeat;
	bool selected[NCASES];
};

/* One measured run: IOPS and bytes per second. */
struct sample {
	double iops;
	double bps;
};

/* Best run of each side for one case. */
struct result {
	struct sample ours;
	struct sample fio;
};

struct slot;

/* A stream of IO on our device: either timed or a fixed number of IOs. */
struct job {
	struct bs_io_channel *ch;
	struct slot *slots;
	uint32_t qd;
	uint32_t inflight;
	uint64_t blocks_per_io;
	uint64_t nunits;		/* file size in IO-size units */
	uint64_t cursor;		/* next unit of a sequential job */
	uint64_t rng;
	uint64_t limit;			/* IOs to submit at most */
	uint64_t submitted;
	uint64_t completed;
	uint64_t duration_ns;		/* 0: no time limit */
	uint64_t deadline_ns;
	uint64_t start_ns;
	bool write;
	bool random;
	bool stop;
	int err;
	uint64_t err_lba;
};

/* One IO slot: its descriptor and buffer, both allocated before timing. */
struct slot {
	struct bs_dev_io io;
	void *buf;
	struct job *job;
	uint64_t lba;
};

/* Everything the run owns. */
struct bench {
	struct opts o;
	char fio_path[PATH_MAX];
	struct bs_thread *thread;
	uint64_t idle_since;		/* see bu_thread_step() */
	struct bs_dev *dev;
	struct bs_io_channel *ch;
	struct bs_dev_io flush_io;
	struct slot *slots;		/* max_qd of them */
	uint8_t *pool;			/* pool_len bytes of IO buffers */
	size_t pool_len;
	uint32_t max_qd;
	struct job job;
	bool step_done;
	int step_err;
};

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [0, n) without division (multiply-high). */
static uint64_t rand_below(uint64_t *state, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)splitmix64(state) * n) >> 64);
}

/* ------------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: devperf [options]\n"
		"Compare the io_uring file device with fio on the same file.\n"
		"  --file PATH      test file (default build/devperf.img)\n"
		"  --size BYTES     file size, K/M/G/T suffixes, multiple of 1M (default 1G)\n"
		"  --time SECONDS   length of each run (default 5)\n"
		"  --cases a,b,...  run only these cases (default all)\n"
		"  --quick          1 s runs, one of each side (CI smoke)\n"
		"  --repeat N       runs per side, best kept (default 2)\n"
		"  --help           this text\n"
		"cases:");
	for (size_t i = 0; i < NCASES; i++)
		fprintf(f, " %s", cases[i].name);
	fputc('\n', f);
}

/* Parse "1G", "512M", "4096": binary multiples. */
static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned int shift = 0;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: break;
	}
	if (*end != '\0' || v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_uint(const char *s, unsigned int min, unsigned int max,
		      unsigned int *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end != '\0' || *s == '-' || v < min || v > max)
		return -EINVAL;
	*out = (unsigned int)v;
	return 0;
}

/* Mark the cases named in the comma-separated @list. */
static void parse_cases(struct opts *o, const char *list)
{
	const char *p = list;

	while (*p) {
		size_t len = strcspn(p, ",");
		size_t i;

		for (i = 0; i < NCASES; i++)
			if (strlen(cases[i].name) == len && !strncmp(cases[i].name, p, len))
				break;
		if (i == NCASES)
			bu_die("unknown case '%.*s' (see --help)", (int)len, p);
		o->selected[i] = true;
		p += len;
		if (*p == ',')
			p++;
	}
}

enum { OPT_FILE = 1, OPT_SIZE, OPT_TIME, OPT_CASES, OPT_QUICK, OPT_REPEAT, OPT_HELP };

static const struct option long_opts[] = {
	{ "file", required_argument, NULL, OPT_FILE },
	{ "size", required_argument, NULL, OPT_SIZE },
	{ "time", required_argument, NULL, OPT_TIME },
	{ "cases", required_argument, NULL, OPT_CASES },
	{ "quick", no_argument, NULL, OPT_QUICK },
	{ "repeat", required_argument, NULL, OPT_REPEAT },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

/* Handle one option; explicit --time/--repeat win over --quick. */
static void parse_one(struct opts *o, int c, const char *arg, bool *quick,
		      bool *any_case, bool *time_set, bool *repeat_set)
{
	switch (c) {
	case OPT_FILE: o->file = arg; break;
	case OPT_SIZE:
		if (parse_size(arg, &o->size) || o->size == 0 || o->size % MIB)
			bu_die("bad --size '%s': need a non-zero multiple of 1M", arg);
		break;
	case OPT_TIME:
		if (parse_uint(arg, 1, 3600, &o->time_s))
			bu_die("bad --time '%s': need whole seconds, 1 to 3600", arg);
		*time_set = true;
		break;
	case OPT_CASES: parse_cases(o, arg); *any_case = true; break;
	case OPT_QUICK: *quick = true; break;
	case OPT_REPEAT:
		if (parse_uint(arg, 1, 100, &o->repeat))
			bu_die("bad --repeat '%s': need 1 to 100", arg);
		*repeat_set = true;
		break;
	case OPT_HELP: usage(stdout); exit(0);
	default: bu_die("unknown or incomplete option '%s' (see --help)", arg);
	}
}

static void parse_opts(struct opts *o, int argc, char **argv)
{
	bool quick = false, any_case = false, time_set = false, repeat_set = false;
	int c;

	*o = (struct opts){ .file = "build/devperf.img", .size = 1ull << 30,
			    .time_s = 5, .repeat = 2 };
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1)
		parse_one(o, c, c == '?' || c == ':' ? argv[optind - 1] : optarg,
			  &quick, &any_case, &time_set, &repeat_set);
	if (optind < argc)
		bu_die("unexpected argument '%s' (see --help)", argv[optind]);
	if (quick && !time_set)
		o->time_s = 1;
	if (quick && !repeat_set)
		o->repeat = 1;
	for (size_t i = 0; i < NCASES && !any_case; i++)
		o->selected[i] = true;
}

/* ------------------------------------------------------------------------
 * Driving our device from main()
 * ------------------------------------------------------------------------ */

static void poll_once(struct bench *b)
{
	bu_thread_step(b->thread, &b->idle_since);
}

/* Run @fn(b) on our thread and poll until it (or its callback) sets step_done. */
static void run_step(struct bench *b, bs_msg_fn fn)
{
	int rc;

	b->step_done = false;
	b->step_err = 0;
	rc = bs_thread_send_msg(b->thread, fn, b);
	if (rc)
		bu_die("bs_thread_send_msg: %s", strerror(-rc));
	while (!b->step_done)
		poll_once(b);
}

static void step_cpl(void *arg, int err)
{
	struct bench *b = arg;

	b->step_err = err;
	b->step_done = true;
}

static void open_msg(void *ctx)
{
	struct bench *b = ctx;
	struct bs_file_dev_opts fo;

	bs_file_dev_opts_init(&fo);
	fo.block_len = BLOCK_LEN;
	fo.queue_depth = b->max_qd;
	fo.create_size = b->o.size;
	fo.backend = BS_FILE_BACKEND_URING;
	b->step_err = bs_file_dev_open(b->o.file, &fo, &b->dev);
	if (!b->step_err) {
		b->ch = bs_dev_get_channel(b->dev);
		if (!b->ch)
			b->step_err = -errno;
	}
	b->step_done = true;
}

static void flush_msg(void *ctx)
{
	struct bench *b = ctx;

	bs_dev_flush(b->ch, &b->flush_io, step_cpl, b);
}

static void close_msg(void *ctx)
{
	struct bench *b = ctx;

	bs_dev_put_channel(b->ch);
	b->ch = NULL;
	bs_dev_close(b->dev, step_cpl, b);
}

static void io_done(void *arg, int err);

/* Hand @s its next IO: a random or the next sequential unit. */
static void job_submit(struct job *j, struct slot *s)
{
	uint64_t unit;

	if (j->random) {
		unit = rand_below(&j->rng, j->nunits);
	} else {
		unit = j->cursor;
		if (++j->cursor == j->nunits)
			j->cursor = 0;
	}
	s->lba = unit * j->blocks_per_io;
	j->inflight++;
	j->submitted++;
	if (j->write)
		bs_dev_write(j->ch, &s->io, s->buf, s->lba, j->blocks_per_io, io_done, s);
	else
		bs_dev_read(j->ch, &s->io, s->buf, s->lba, j->blocks_per_io, io_done, s);
}

/* Completion: count it and keep the slot busy until the deadline or limit. */
static void io_done(void *arg, int err)
{
	struct slot *s = arg;
	struct job *j = s->job;

	j->inflight--;
	if (err) {
		if (!j->err) {
			j->err = err;
			j->err_lba = s->lba;
		}
		j->stop = true;
		return;
	}
	j->completed++;
	if (j->stop)
		return;
	if (j->submitted == j->limit || bu_now_ns() >= j->deadline_ns) {
		j->stop = true;
		return;
	}
	job_submit(j, s);
}

static void job_start_msg(void *ctx)
{
	struct bench *b = ctx;
	struct job *j = &b->job;
	uint32_t n = j->limit < j->qd ? (uint32_t)j->limit : j->qd;

	j->start_ns = bu_now_ns();
	j->deadline_ns = j->duration_ns ? j->start_ns + j->duration_ns : UINT64_MAX;
	for (uint32_t i = 0; i < n; i++)
		job_submit(j, &j->slots[i]);
	b->step_done = true;
}

/*
 * Run a job on our device: @io_len-byte IOs, @qd in flight, for @time_s
 * seconds (0: until @limit IOs are done). Returns the elapsed nanoseconds;
 * any IO error is fatal.
 */
static uint64_t job_run(struct bench *b, bool write, bool random, uint32_t io_len,
			uint32_t qd, unsigned int time_s, uint64_t limit)
{
	struct job *j = &b->job;

	*j = (struct job){ .ch = b->ch, .slots = b->slots, .qd = qd,
			   .blocks_per_io = io_len / BLOCK_LEN,
			   .nunits = b->o.size / io_len, .limit = limit,
			   .duration_ns = (uint64_t)time_s * 1000000000ull,
			   .rng = bu_now_ns() ^ ((uint64_t)getpid() << 32),
			   .write = write, .random = random };
	for (uint32_t i = 0; i < qd; i++) {
		b->slots[i].buf = b->pool + (size_t)i * io_len;
		b->slots[i].job = j;
	}
	run_step(b, job_start_msg);
	while (j->inflight)
		poll_once(b);
	if (j->err)
		bu_die("%s error at byte offset %" PRIu64 " of %s: %s", write ? "write" : "read",
		    j->err_lba * BLOCK_LEN, b->o.file, strerror(-j->err));
	return bu_now_ns() - j->start_ns;
}

/* Fill the buffer pool with a non-zero pattern (outside any timed run). */
static void fill_pattern(struct bench *b)
{
	uint64_t seed = 0x5eed;

	for (size_t i = 0; i + 8 <= b->pool_len; i += 8) {
		uint64_t v = splitmix64(&seed) | 1;

		memcpy(b->pool + i, &v, 8);
	}
}

/* ------------------------------------------------------------------------
 * Setup: the file, its pre-write marker, the device and the thread
 * ------------------------------------------------------------------------ */

static void marker_path(const struct bench *b, char *out, size_t len)
{
	if ((size_t)snprintf(out, len, "%s.prewritten", b->o.file) >= len)
		bu_die("path too long: %s", b->o.file);
}

/* True if the marker says this very file was pre-written up to --size. */
static bool prewritten(const struct bench *b)
{
	char mpath[PATH_MAX + 16];
	unsigned long long size = 0, ino = 0;
	struct stat st;
	FILE *f;
	int n;

	if (stat(b->o.file, &st) || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size < b->o.size)
		return false;
	marker_path(b, mpath, sizeof(mpath));
	f = fopen(mpath, "r");
	if (!f)
		return false;
	n = fscanf(f, "size=%llu ino=%llu", &size, &ino);
	fclose(f);
	return n == 2 && size >= b->o.size && ino == (unsigned long long)st.st_ino;
}

static void write_marker(const struct bench *b)
{
	char mpath[PATH_MAX + 16];
	struct stat st;
	FILE *f;

	if (stat(b->o.file, &st))
		bu_die("stat %s: %s", b->o.file, strerror(errno));
	marker_path(b, mpath, sizeof(mpath));
	f = fopen(mpath, "w");
	if (!f)
		bu_die("cannot write %s: %s", mpath, strerror(errno));
	fprintf(f, "size=%" PRIu64 " ino=%llu\n", b->o.size, (unsigned long long)st.st_ino);
	if (fclose(f))
		bu_die("cannot write %s: %s", mpath, strerror(errno));
}

/* Write every block of the first --size bytes once, then flush. */
static void prewrite(struct bench *b)
{
	uint64_t ns;

	printf("pre-writing %s: %" PRIu64 " MiB in 1 MiB writes...\n",
	       b->o.file, b->o.size / MIB);
	fill_pattern(b);
	ns = job_run(b, true, false, MIB, PREWRITE_QD, 0, b->o.size / MIB);
	run_step(b, flush_msg);
	if (b->step_err)
		bu_die("flush of %s: %s", b->o.file, strerror(-b->step_err));
	write_marker(b);
	printf("pre-written in %.1f s (%.0f MB/s)\n", ns / 1e9, b->o.size / (ns / 1e3));
}

/* Reject anything but a regular file (or a missing one, which we create). */
static void check_file(const struct bench *b)
{
	struct stat st;

	if (stat(b->o.file, &st)) {
		if (errno != ENOENT)
			bu_die("stat %s: %s", b->o.file, strerror(errno));
		return;
	}
	if (!S_ISREG(st.st_mode))
		bu_die("%s is not a regular file", b->o.file);
}

/* Size the slot array and buffer pool for the largest selected case. */
static void plan_buffers(struct bench *b)
{
	b->max_qd = PREWRITE_QD;
	b->pool_len = (size_t)PREWRITE_QD * MIB;
	for (size_t i = 0; i < NCASES; i++) {
		size_t len = (size_t)cases[i].qd * cases[i].io_len;

		if (!b->o.selected[i])
			continue;
		if (cases[i].qd > b->max_qd)
			b->max_qd = cases[i].qd;
		if (len > b->pool_len)
			b->pool_len = len;
	}
}

/* Allocate the slots and buffers, aligned as the open device requires. */
static void alloc_buffers(struct bench *b)
{
	size_t align = b->dev->buf_align > 4096 ? b->dev->buf_align : 4096;

	b->slots = calloc(b->max_qd, sizeof(*b->slots));
	b->pool = bs_buf_alloc(b->pool_len, align);
	if (!b->slots || !b->pool)
		bu_die("out of memory for %zu bytes of IO buffers", b->pool_len);
}

static void bench_open(struct bench *b)
{
	check_file(b);
	bs_log_set_level(BS_LOG_WARN);
	b->thread = bu_thread_new("devperf");
	run_step(b, open_msg);
	if (b->step_err)
		bu_die("cannot open %s with the io_uring backend: %s", b->o.file,
		    strerror(-b->step_err));
	if (b->dev->block_len != BLOCK_LEN || b->dev->block_count * BLOCK_LEN < b->o.size)
		bu_die("%s: unexpected geometry (%" PRIu64 " blocks of %u bytes)", b->o.file,
		    b->dev->block_count, b->dev->block_len);
	alloc_buffers(b);
	if (!prewritten(b))
		prewrite(b);
}

static void bench_close(struct bench *b)
{
	run_step(b, close_msg);
	if (b->step_err)
		bu_die("closing %s: %s", b->o.file, strerror(-b->step_err));
	bs_thread_exit(b->thread);
	while (!bs_thread_is_exited(b->thread))
		poll_once(b);
	if (bs_thread_destroy(b->thread))
		bu_die("bs_thread_destroy failed");
	free(b->slots);
	bs_buf_free(b->pool);
}

/* ------------------------------------------------------------------------
 * fio: find it, run it, read its JSON
 * ------------------------------------------------------------------------ */

/* Find an executable "fio" on $PATH. */
static void find_fio(struct bench *b)
{
	const char *path = getenv("PATH");
	const char *p;

	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path; *p; ) {
		size_t len = strcspn(p, ":");
		int n = snprintf(b->fio_path, sizeof(b->fio_path), "%.*s/fio",
				 (int)len, len ? p : ".");

		if (n > 0 && (size_t)n < sizeof(b->fio_path) && !access(b->fio_path, X_OK))
			return;
		p += len;
		if (*p == ':')
			p++;
	}
	bu_die("fio not found: run scripts/deps.sh");
}

/* Read @fd to EOF into a NUL-terminated malloc'd string. */
static char *read_all(int fd)
{
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap);
	ssize_t n;

	while (buf) {
		if (len + 1 == cap) {
			char *nb = realloc(buf, cap * 2);

			if (!nb)
				break;
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - 1 - len);
		if (n > 0) {
			len += (size_t)n;
		} else if (n == 0) {
			buf[len] = '\0';
			return buf;
		} else if (errno != EINTR) {
			break;
		}
	}
	bu_die("reading fio output: %s", buf ? strerror(errno) : "out of memory");
}

/* Run @argv with its stdout captured; returns the output, dies on failure. */
static char *spawn_capture(char *const argv[], const char *what)
{
	posix_spawn_file_actions_t fa;
	int pfd[2], rc, status;
	char *out;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC))
		bu_die("pipe: %s", strerror(errno));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
	rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (rc)
		bu_die("cannot run %s: %s", argv[0], strerror(rc));
	out = read_all(pfd[0]);
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			bu_die("waitpid: %s", strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		bu_die("fio failed for %s (%s %d)", what,
		    WIFEXITED(status) ? "exit status" : "signal",
		    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	return out;
}

/* fio splits --filename on ':'; escape colons in @in. */
static void fio_escape(const char *in, char *out, size_t len)
{
	size_t o = 0;

	for (; *in; in++) {
		if (o + 3 > len)
			bu_die("path too long: %s", in);
		if (*in == ':')
			out[o++] = '\\';
		out[o++] = *in;
	}
	out[o] = '\0';
}

/* Minimal JSON walking: enough to find members of objects in fio's output. */
static const char *js_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/* @p at '"': the character after the closing quote, or NULL. */
static const char *js_skip_string(const char *p)
{
	for (p++; *p; p++) {
		if (*p == '\\' && !*++p)
			return NULL;
		if (*p == '"')
			return p + 1;
	}
	return NULL;
}

/* Skip one value (object, array, string or scalar); NULL if malformed. */
static const char *js_skip_value(const char *p)
{
	int depth = 0;

	p = js_ws(p);
	if (*p == '"')
		return js_skip_string(p);
	if (*p != '{' && *p != '[') {
		while (*p && !strchr(",}] \t\r\n", *p))
			p++;
		return p;
	}
	while (*p) {
		if (*p == '"') {
			p = js_skip_string(p);
			if (!p)
				return NULL;
			continue;
		}
		if (*p == '{' || *p == '[')
			depth++;
		else if ((*p == '}' || *p == ']') && --depth == 0)
			return p + 1;
		p++;
	}
	return NULL;
}

/* The value of member @key of the object at @obj (top level only), or NULL. */
static const char *js_member(const char *obj, const char *key)
{
	size_t klen = strlen(key);
	const char *p = js_ws(obj);

	if (*p != '{')
		return NULL;
	p = js_ws(p + 1);
	while (*p == '"') {
		const char *k = p + 1, *end = js_skip_string(p);

		if (!end)
			return NULL;
		p = js_ws(end);
		if (*p != ':')
			return NULL;
		p = js_ws(p + 1);
		if ((size_t)(end - 1 - k) == klen && !memcmp(k, key, klen))
			return p;
		p = js_skip_value(p);
		if (!p)
			return NULL;
		p = js_ws(p);
		if (*p == ',')
			p = js_ws(p + 1);
	}
	return NULL;
}

static bool js_number(const char *p, double *out)
{
	char *end;

	if (!p)
		return false;
	*out = strtod(p, &end);
	return end != p;
}

/* Pull jobs[0].<read|write>.{iops,bw_bytes} out of fio's JSON output. */
static bool parse_fio_json(const char *out, bool write, struct sample *s)
{
	const char *root = out, *job, *rw;
	double err = 0;

	while (root && *root != '{') {		/* skip any text before the JSON */
		root = strchr(root, '\n');
		root = root ? root + 1 : NULL;
	}
	if (!root)
		return false;
	job = js_member(root, "jobs");
	if (!job || *job != '[')
		return false;
	job = js_ws(job + 1);
	if (js_number(js_member(job, "error"), &err) && err != 0)
		return false;
	rw = js_member(job, write ? "write" : "read");
	return rw && js_number(js_member(rw, "iops"), &s->iops) &&
	       js_number(js_member(rw, "bw_bytes"), &s->bps);
}

/* One fio run of @pc on the same file, size, depth and run time. */
static void run_fio(struct bench *b, const struct perf_case *pc, struct sample *s)
{
	char fname[2 * PATH_MAX + 16], esc[2 * PATH_MAX], rw[32], bs[16], qd[32];
	char rt[32], size[48];
	char *argv[] = { b->fio_path, "--name=devperf", fname, "--ioengine=io_uring",
			 "--direct=1", rw, bs, qd, rt, "--time_based=1", size,
			 "--norandommap=1", "--randrepeat=0", "--output-format=json",
			 NULL };
	char *out;

	fio_escape(b->o.file, esc, sizeof(esc));
	snprintf(fname, sizeof(fname), "--filename=%s", esc);
	snprintf(rw, sizeof(rw), "--rw=%s", pc->fio_rw);
	snprintf(bs, sizeof(bs), "--bs=%s", pc->fio_bs);
	snprintf(qd, sizeof(qd), "--iodepth=%u", pc->qd);
	snprintf(rt, sizeof(rt), "--runtime=%u", b->o.time_s);
	snprintf(size, sizeof(size), "--size=%" PRIu64, b->o.size);
	out = spawn_capture(argv, pc->name);
	if (!parse_fio_json(out, pc->write, s))
		bu_die("cannot parse fio's JSON output for %s (or fio reported an error)",
		    pc->name);
	free(out);
}

/* One run of @pc on our device. */
static void run_ours(struct bench *b, const struct perf_case *pc, struct sample *s)
{
	uint64_t ns;

	if (pc->write)
		fill_pattern(b);
	ns = job_run(b, pc->write, pc->random, pc->io_len, pc->qd, b->o.time_s,
		     UINT64_MAX);
	s->iops = b->job.completed / (ns / 1e9);
	s->bps = s->iops * pc->io_len;
}

/* ------------------------------------------------------------------------
 * Reporting
 * ------------------------------------------------------------------------ */

static void print_sample(const char *name, unsigned int run, const char *side,
			 const struct sample *s)
{
	printf("  %-18s run %u: %-4s %10.0f IOPS %9.1f MB/s\n", name, run, side,
	       s->iops, s->bps / 1e6);
}

static double ratio_of(const struct result *r)
{
	return r->fio.iops > 0 ? r->ours.iops / r->fio.iops : 0;
}

/* Alternate ours and fio --repeat times, keep each side's best, report. */
static void run_case(struct bench *b, const struct perf_case *pc, struct result *r)
{
	struct sample s;

	printf("%s: %s %s, qd %u, %u s x %u per side\n", pc->name, pc->fio_rw,
	       pc->fio_bs, pc->qd, b->o.time_s, b->o.repeat);
	*r = (struct result){ { 0, 0 }, { 0, 0 } };
	for (unsigned int i = 1; i <= b->o.repeat; i++) {
		run_ours(b, pc, &s);
		print_sample(pc->name, i, "ours", &s);
		if (s.iops > r->ours.iops)
			r->ours = s;
		run_fio(b, pc, &s);
		print_sample(pc->name, i, "fio", &s);
		if (s.iops > r->fio.iops)
			r->fio = s;
	}
	printf("  %-18s best:  ours %.0f IOPS %.1f MB/s, fio %.0f IOPS %.1f MB/s\n",
	       pc->name, r->ours.iops, r->ours.bps / 1e6, r->fio.iops, r->fio.bps / 1e6);
	printf("RESULT devperf_%s_ours_iops=%.0f\n", pc->name, r->ours.iops);
	printf("RESULT devperf_%s_fio_iops=%.0f\n", pc->name, r->fio.iops);
	printf("RESULT devperf_%s_ratio=%.3f\n", pc->name, ratio_of(r));
}

static void print_summary(const struct bench *b, const struct result *res)
{
	printf("\nsummary: best of %u x %u s per side, ratio = ours/fio IOPS "
	       "(goal >= %.2f)\n", b->o.repeat, b->o.time_s, RATIO_GOAL);
	printf("%-18s %11s %11s %10s %10s %7s\n", "case", "ours IOPS", "fio IOPS",
	       "ours MB/s", "fio MB/s", "ratio");
	for (size_t i = 0; i < NCASES; i++) {
		const struct result *r = &res[i];

		if (!b->o.selected[i])
			continue;
		printf("%-18s %11.0f %11.0f %10.1f %10.1f %7.3f%s\n", cases[i].name,
		       r->ours.iops, r->fio.iops, r->ours.bps / 1e6, r->fio.bps / 1e6,
		       ratio_of(r), ratio_of(r) < RATIO_GOAL ? "  below goal" : "");
	}
}

int main(int argc, char **argv)
{
	static struct bench b;
	struct result res[NCASES];

	setvbuf(stdout, NULL, _IOLBF, 0);
	bu_set_prog("devperf");
	parse_opts(&b.o, argc, argv);
	find_fio(&b);
	plan_buffers(&b);
	bench_open(&b);
	printf("devperf: %s, %" PRIu64 " MiB, backend %s, %u s runs, %u per side\n",
	       b.o.file, b.o.size / MIB, bs_file_dev_backend(b.dev), b.o.time_s,
	       b.o.repeat);
	memset(res, 0, sizeof(res));
	for (size_t i = 0; i < NCASES; i++)
		if (b.o.selected[i])
			run_case(&b, &cases[i], &res[i]);
	print_summary(&b, res);
	bench_close(&b);
	return 0;
}
