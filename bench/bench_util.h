/*
 * bench_util.h: helpers shared by the benchmark programs in bench/.
 *
 * CMake turns every .c file in bench/ into a program of its own and links
 * nothing else into it, so code shared between benchmarks lives here,
 * header-only: every function is static inline (a program pays only for
 * what it calls, and unused helpers draw no warning).
 *
 *  - bu_die(): one "<program>: message" line on stderr, exit status 1.
 *  - Option values: byte sizes with binary suffixes, bounded integers,
 *    seconds with an optional fraction.
 *  - bu_loop: one bs_thread bound to and driven from the calling pthread
 *    (bu_thread_new: bs_thread_create + bs_thread_bind). Work is handed
 *    to it as a message and the loop polls until the work reports completion
 *    through bu_loop_cpl(). Polling is what a reactor does (bu_thread_step):
 *    bs_thread_poll while there is work, a short idle spin, then
 *    bs_thread_wait, which sleeps until a completion or message arrives.
 *  - A small, fast random generator (xorshift64*) and multiply-high scaling.
 *  - fio: found on $PATH, run as a child with posix_spawn (never a shell),
 *    its stdout and stderr captured through a pipe; the numbers come from its
 *    JSON output (jobs[0].read or .write: iops, bw_bytes, io_bytes, runtime).
 */
#ifndef BENCH_BENCH_UTIL_H
#define BENCH_BENCH_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <blobstore/thread.h>

extern char **environ;

#define BU_KIB ((uint64_t)1024)
#define BU_MIB ((uint64_t)1024 * 1024)
#define BU_GIB ((uint64_t)1024 * 1024 * 1024)

/* ------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------ */

/* The program name used as the prefix of error lines (set by main). */
static inline const char **bu_prog_slot(void)
{
	static const char *name = "bench";

	return &name;
}

static inline void bu_set_prog(const char *name)
{
	*bu_prog_slot() = name;
}

static inline void bu_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Print "<prog>: <message>" as one line on stderr and exit with status 1. */
static inline void bu_die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "%s: ", *bu_prog_slot());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* ------------------------------------------------------------------------
 * Time and random numbers
 * ------------------------------------------------------------------------ */

static inline uint64_t bu_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Seed a generator: any value works, zero is avoided (xorshift fixpoint). */
static inline uint64_t bu_rng_seed(uint64_t salt)
{
	uint64_t s = bu_now_ns() ^ (salt * 0x2545f4914f6cdd1dull) ^ ((uint64_t)getpid() << 40);

	return s ? s : 0x853c49e6748fea9bull;
}

/* xorshift64* step. */
static inline uint64_t bu_rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* A value in [0, n): the high half of a 64x64 product, no division. */
static inline uint64_t bu_rng_below(uint64_t *s, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)bu_rng_next(s) * n) >> 64);
}

/* Fill @len bytes (a multiple of 8) with a non-zero pseudo-random pattern. */
static inline void bu_fill_pattern(void *buf, size_t len, uint64_t seed)
{
	uint64_t *w = buf;
	uint64_t s = seed | 1;

	for (size_t i = 0; i < len / sizeof(*w); i++)
		w[i] = bu_rng_next(&s) | 0x0101010101010101ull;
}

/* ------------------------------------------------------------------------
 * Option values
 * ------------------------------------------------------------------------ */

/* "4096", "64K", "2G", "1T": binary multiples. 0 or -EINVAL. */
static inline int bu_parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "kmgt";
	unsigned long long v;
	unsigned shift = 0;
	const char *u;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -EINVAL;
	if (*end != '\0' && (u = strchr(units, *end | 0x20)) != NULL) {
		shift = 10 * (unsigned)(u - units + 1);
		end++;
		if ((*end | 0x20) == 'i')	/* accept "GiB"-style too */
			end++;
		if ((*end | 0x20) == 'b')
			end++;
	}
	if (*end != '\0' || v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

/* An integer in [min, max]. 0 or -EINVAL. */
static inline int bu_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* Seconds ("5", "0.5") into milliseconds in [min_ms, max_ms]. 0 or -EINVAL. */
static inline int bu_parse_secs(const char *s, uint64_t min_ms, uint64_t max_ms, uint64_t *ms)
{
	double v;
	char *end;

	if ((*s < '0' || *s > '9') && *s != '.')
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || v * 1000.0 < (double)min_ms ||
	    v * 1000.0 > (double)max_ms)
		return -EINVAL;
	*ms = (uint64_t)(v * 1000.0 + 0.5);
	return 0;
}

/*
 * Mark in @chosen the names of the comma-separated @list found in @names
 * (@n of them). Dies naming the first unknown one.
 */
static inline void bu_parse_list(const char *list, const char *const *names, size_t n,
				 bool *chosen)
{
	for (const char *p = list; *p != '\0';) {
		size_t len = strcspn(p, ","), i;

		for (i = 0; i < n; i++)
			if (strncmp(names[i], p, len) == 0 && names[i][len] == '\0')
				break;
		if (i == n)
			bu_die("unknown case '%.*s' (see --help)", (int)len, p);
		chosen[i] = true;
		p += len + (p[len] == ',');
	}
}

/* ------------------------------------------------------------------------
 * Driving one bs_thread from the calling pthread
 * ------------------------------------------------------------------------ */

struct bu_loop {
	struct bs_thread *thread;
	uint64_t idle_since;		/* see bu_thread_step() */
	bool done;			/* set by the work's completion */
	int err;
};

/*
 * A bs_thread that only the calling pthread will ever drive, bound to it
 * (bs_thread_bind), as a reactor's is to its own: its io_uring channels get
 * the same rings a reactor's would.
 */
static inline struct bs_thread *bu_thread_new(const char *name)
{
	struct bs_thread *t = bs_thread_create(name);
	int rc;

	if (t == NULL)
		bu_die("bs_thread_create: %s", strerror(errno));
	rc = bs_thread_bind(t);
	if (rc != 0)
		bu_die("bs_thread_bind: %s", strerror(-rc));
	return t;
}

static inline void bu_loop_init(struct bu_loop *l, const char *name)
{
	l->thread = bu_thread_new(name);
}

/* Idle spin before sleeping: BLOBSTORE_IDLE_SPIN_US, as for a reactor. */
static inline uint64_t bu_idle_spin_ns(void)
{
	static int64_t spin_ns = -1;
	const char *env;

	if (spin_ns < 0) {
		env = getenv("BLOBSTORE_IDLE_SPIN_US");
		spin_ns = env != NULL && *env != '\0' ? (int64_t)strtoull(env, NULL, 10) * 1000
						      : 0;
	}
	return (uint64_t)spin_ns;
}

/*
 * One step of a thread driven from this pthread: poll; once it has been
 * idle for the spin time (*idle_since tracks when it went idle, 0 = busy),
 * sleep in bs_thread_wait() until there may be work.
 */
static inline void bu_thread_step(struct bs_thread *t, uint64_t *idle_since)
{
	int rc = bs_thread_poll(t, 0);

	if (rc == 0 && *idle_since == 0)
		*idle_since = bu_now_ns();
	if (rc == 0 && bu_now_ns() - *idle_since >= bu_idle_spin_ns())
		rc = bs_thread_wait(t, UINT64_MAX);
	if (rc < 0)
		bu_die("bs_thread_poll/wait: %s", strerror(-rc));
	if (rc > 0)
		*idle_since = 0;
}

/* One step of the loop's thread on this pthread. */
static inline void bu_loop_poll(struct bu_loop *l)
{
	bu_thread_step(l->thread, &l->idle_since);
}

/* The completion every step reports through: bs_cpl_fn with the loop as arg. */
static inline void bu_loop_cpl(void *arg, int err)
{
	struct bu_loop *l = arg;

	l->err = err;
	l->done = true;
}

/*
 * Run @fn(@ctx) on the thread, then poll until something calls
 * bu_loop_cpl(l, err). Returns err.
 */
static inline int bu_loop_run(struct bu_loop *l, bs_msg_fn fn, void *ctx)
{
	int rc;

	l->done = false;
	l->err = 0;
	rc = bs_thread_send_msg(l->thread, fn, ctx);
	if (rc != 0)
		bu_die("bs_thread_send_msg: %s", strerror(-rc));
	while (!l->done)
		bu_loop_poll(l);
	return l->err;
}

/* Ask the thread to exit, poll until it has, free it. */
static inline void bu_loop_fini(struct bu_loop *l)
{
	bs_thread_exit(l->thread);
	while (!bs_thread_is_exited(l->thread))
		bu_loop_poll(l);
	if (bs_thread_destroy(l->thread) != 0)
		bu_die("bs_thread_destroy: the thread did not exit");
	l->thread = NULL;
}

/* ------------------------------------------------------------------------
 * Minimal JSON lookup (enough for fio's output)
 * ------------------------------------------------------------------------ */

static inline const char *bu_js_space(const char *p)
{
	while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
		p++;
	return p;
}

/*
 * Skip the JSON value at @p (after white space): the first character past
 * it, or NULL if the text ends first. Scalars end at a delimiter; strings,
 * objects and arrays are walked with one in-string flag and one depth
 * counter (brackets inside strings do not count).
 */
static inline const char *bu_js_skip(const char *p)
{
	bool in_str = false;
	int depth = 0;

	p = bu_js_space(p);
	if (*p != '"' && *p != '{' && *p != '[')
		return p + strcspn(p, ",}] \t\r\n");	/* number, true, false, null */
	for (; *p != '\0'; p++) {
		if (in_str) {
			if (*p == '\\' && p[1] != '\0') {
				p++;
			} else if (*p == '"') {
				in_str = false;
				if (depth == 0)
					return p + 1;
			}
		} else if (*p == '"') {
			in_str = true;
		} else if (*p == '{' || *p == '[') {
			depth++;
		} else if ((*p == '}' || *p == ']') && --depth == 0) {
			return p + 1;
		}
	}
	return NULL;
}

/*
 * The value of @key in the object at @p, or element @key (a decimal index)
 * of the array at @p. NULL if absent or malformed.
 */
static inline const char *bu_js_get(const char *p, const char *key)
{
	size_t klen = strlen(key);
	long idx = strtol(key, NULL, 10);
	char open;

	if (p == NULL)
		return NULL;
	p = bu_js_space(p);
	open = *p;
	if (open != '{' && open != '[')
		return NULL;
	for (p = bu_js_space(p + 1); *p != '\0' && *p != '}' && *p != ']';) {
		bool hit = false;

		if (open == '{') {
			const char *name = p + 1, *end = bu_js_skip(p);

			if (*p != '"' || end == NULL)
				return NULL;
			hit = (size_t)(end - 1 - name) == klen && memcmp(name, key, klen) == 0;
			p = bu_js_space(end);
			if (*p++ != ':')
				return NULL;
		} else {
			hit = idx-- == 0;
		}
		p = bu_js_space(p);
		if (hit)
			return p;
		p = bu_js_skip(p);
		if (p == NULL)
			return NULL;
		p = bu_js_space(p);
		p = bu_js_space(p + (*p == ','));
	}
	return NULL;
}

/* The number at @p into *@out. False if @p is NULL or not a number. */
static inline bool bu_js_num(const char *p, double *out)
{
	char *end;

	if (p == NULL)
		return false;
	*out = strtod(p, &end);
	return end != p;
}

/* ------------------------------------------------------------------------
 * fio
 * ------------------------------------------------------------------------ */

/* One fio job: a single job with the io_uring engine and O_DIRECT. */
struct bu_fio_job {
	const char *name;
	const char *file;
	const char *rw;			/* read, write, randread, randwrite */
	uint32_t bs;			/* bytes per IO */
	uint32_t iodepth;
	uint64_t offset;		/* bytes: the region fio works in */
	uint64_t size;
	uint64_t runtime_ms;		/* > 0: time based; 0: one pass (times loops) */
	uint32_t loops;			/* passes over the region when not time based */
};

/* What fio reported for the job's direction. */
struct bu_fio_res {
	double iops;
	double bw_bytes;		/* bytes per second */
	double io_bytes;
	double runtime_ms;
};

/* Find an executable "fio" in $PATH; dies if there is none. */
static inline void bu_fio_find(char *out, size_t len)
{
	const char *path = getenv("PATH");

	if (path == NULL || *path == '\0')
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path != '\0') {
		size_t dlen = strcspn(path, ":");
		int n = snprintf(out, len, "%.*s/fio", (int)dlen, dlen ? path : ".");

		if (n > 0 && (size_t)n < len && access(out, X_OK) == 0)
			return;
		path += dlen + (path[dlen] == ':');
	}
	bu_die("fio not found in $PATH (install fio: it is the reference)");
}

/* All of @fd up to end of file, NUL-terminated, in a malloc'd buffer. */
static inline char *bu_slurp(int fd)
{
	size_t len = 0, cap = 1 << 16;
	char *buf = malloc(cap);

	for (;;) {
		ssize_t n;

		if (buf == NULL)
			bu_die("out of memory reading a child's output");
		n = read(fd, buf + len, cap - len - 1);
		if (n == 0)
			break;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			bu_die("reading a child's output: %s", strerror(errno));
		len += (size_t)n;
		if (cap - len < 2) {
			cap *= 2;
			buf = realloc(buf, cap);
		}
	}
	buf[len] = '\0';
	return buf;
}

/*
 * Run @argv (argv[0] is an absolute path) with stdout and stderr into a
 * pipe. Returns the output; *status gets the wait status.
 */
static inline char *bu_spawn(char *const argv[], int *status)
{
	posix_spawn_file_actions_t acts;
	int fds[2], rc;
	char *text;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) != 0)
		bu_die("pipe2: %s", strerror(errno));
	posix_spawn_file_actions_init(&acts);
	posix_spawn_file_actions_adddup2(&acts, fds[1], STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&acts, fds[1], STDERR_FILENO);
	rc = posix_spawn(&pid, argv[0], &acts, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&acts);
	close(fds[1]);
	if (rc != 0)
		bu_die("cannot start %s: %s", argv[0], strerror(rc));
	text = bu_slurp(fds[0]);
	close(fds[0]);
	while (waitpid(pid, status, 0) < 0) {
		if (errno != EINTR)
			bu_die("waitpid: %s", strerror(errno));
	}
	return text;
}

/* First line of @text that is not JSON (fio's complaint), for error lines. */
static inline const char *bu_first_line(const char *text, char *buf, size_t len)
{
	const char *p = text;

	while (*p == '{' || *p == '}' || *p == ' ' || *p == '\n')
		p += strcspn(p, "\n") + (p[strcspn(p, "\n")] != '\0');
	snprintf(buf, len, "%.*s", (int)strcspn(p, "\n"), p);
	return buf[0] ? buf : "no output";
}

/* Copy @in to @out with ':' escaped (fio splits --filename on colons). */
static inline void bu_fio_escape(const char *in, char *out, size_t len)
{
	size_t o = 0;

	for (; *in != '\0'; in++) {
		if (o + 3 > len)
			bu_die("file name too long for fio: %s", in);
		if (*in == ':')
			out[o++] = '\\';
		out[o++] = *in;
	}
	out[o] = '\0';
}

/* Pull jobs[0].<dir>.{iops,bw_bytes,io_bytes,runtime} out of @text. */
static inline bool bu_fio_parse(const char *text, bool write, struct bu_fio_res *r)
{
	const char *js = text, *job, *d;
	double err = 0;

	while (*js != '\0' && *js != '{')	/* skip any warning lines before the JSON */
		js += strcspn(js, "\n") + (js[strcspn(js, "\n")] != '\0');
	job = bu_js_get(bu_js_get(js, "jobs"), "0");
	if (job == NULL || (bu_js_num(bu_js_get(job, "error"), &err) && err != 0))
		return false;
	d = bu_js_get(job, write ? "write" : "read");
	return bu_js_num(bu_js_get(d, "iops"), &r->iops) &&
	       bu_js_num(bu_js_get(d, "bw_bytes"), &r->bw_bytes) &&
	       bu_js_num(bu_js_get(d, "io_bytes"), &r->io_bytes) &&
	       bu_js_num(bu_js_get(d, "runtime"), &r->runtime_ms) && r->io_bytes > 0;
}

/* The argument strings of one fio run. */
struct bu_fio_args {
	char file[2 * PATH_MAX + 16], name[80], rw[32], bs[32], qd[32];
	char off[48], size[48], time[48], loops[32];
	char *argv[24];
};

static inline void bu_fio_build(struct bu_fio_args *a, const char *fio,
				const struct bu_fio_job *j)
{
	char esc[2 * PATH_MAX];
	int n = 0;

	bu_fio_escape(j->file, esc, sizeof(esc));
	snprintf(a->file, sizeof(a->file), "--filename=%s", esc);
	snprintf(a->name, sizeof(a->name), "--name=%s", j->name);
	snprintf(a->rw, sizeof(a->rw), "--rw=%s", j->rw);
	snprintf(a->bs, sizeof(a->bs), "--bs=%" PRIu32, j->bs);
	snprintf(a->qd, sizeof(a->qd), "--iodepth=%" PRIu32, j->iodepth);
	snprintf(a->off, sizeof(a->off), "--offset=%" PRIu64, j->offset);
	snprintf(a->size, sizeof(a->size), "--size=%" PRIu64, j->size);
	snprintf(a->time, sizeof(a->time), "--runtime=%" PRIu64 "ms", j->runtime_ms);
	snprintf(a->loops, sizeof(a->loops), "--loops=%" PRIu32, j->loops ? j->loops : 1);
	a->argv[n++] = (char *)fio;
	a->argv[n++] = a->name;
	a->argv[n++] = a->file;
	a->argv[n++] = "--ioengine=io_uring";
	a->argv[n++] = "--direct=1";
	a->argv[n++] = a->rw;
	a->argv[n++] = a->bs;
	a->argv[n++] = a->qd;
	a->argv[n++] = a->off;
	a->argv[n++] = a->size;
	a->argv[n++] = "--norandommap=1";
	a->argv[n++] = "--randrepeat=0";
	a->argv[n++] = "--fallocate=none";	/* never touch the file's allocation */
	a->argv[n++] = "--output-format=json";
	if (j->runtime_ms > 0) {
		a->argv[n++] = "--time_based=1";
		a->argv[n++] = a->time;
	} else {
		a->argv[n++] = a->loops;
	}
	a->argv[n] = NULL;
}

/* Run one fio job; dies with fio's first complaint if it fails. */
static inline void bu_fio_run(const char *fio, const struct bu_fio_job *j, struct bu_fio_res *r)
{
	struct bu_fio_args a;
	char line[200];
	bool write = strstr(j->rw, "write") != NULL;
	int status;
	char *out;

	bu_fio_build(&a, fio, j);
	out = bu_spawn(a.argv, &status);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		bu_die("fio failed for %s (%s %d): %s", j->name,
		       WIFEXITED(status) ? "exit status" : "signal",
		       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
		       bu_first_line(out, line, sizeof(line)));
	if (!bu_fio_parse(out, write, r))
		bu_die("fio %s: cannot read its JSON output (or it reported an error): %s",
		       j->name, bu_first_line(out, line, sizeof(line)));
	free(out);
}

#endif /* BENCH_BENCH_UTIL_H */
