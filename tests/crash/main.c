/*
 * crashtest: the record-and-crash harness (crash-testing.md section 3,
 * docs/reliability.md "Crash-state harness").
 *
 *   crashtest --ci [--scale F] [--jobs N]   W1 seq-1 + seq-2, FIFO
 *   crashtest --nightly [--jobs N]          + LIFO and 16 RANDOM orders
 *   crashtest --repro 'workload|cut|strategy|index'
 *   crashtest --only SUB[,SUB...] ...       workloads whose name contains one
 *
 * Exit status: 0 if no state failed, no lint fired and every workload ran.
 */
#include <inttypes.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <blobstore/log.h>

#include "crash.h"
#include "runtime/runtime_int.h"

struct args {
	bool nightly;
	double scale;
	int jobs;
	const char *only;
	struct repro rp;
	struct workload rw;
};

static void quiet_log(void *arg, enum bs_log_level level, const char *line)
{
	(void)arg;
	(void)level;
	(void)line;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t sum_of(const uint64_t *v)
{
	uint64_t t = 0;

	for (int i = 0; i < ST_COUNT; i++)
		t += v[i];
	return t;
}

static void one_workload(struct bs_thread *t, const struct workload *w, int idx,
			 struct figures *f, const struct repro *rp)
{
	struct model *m = calloc(1, sizeof(*m));
	struct run rec = { .t = t, .m = m };
	uint8_t *base = NULL;
	const struct rdev_lints *l;
	int rc = work_record(w, &rec, &base);

	f->workloads++;
	if (rc != 0) {
		f->workload_errors++;
		printf("WORKLOAD-ERROR %s: %s (%d)\n", w->name, rec.why, rc);
	} else {
		l = rdev_get_lints(rec.r);
		f->lints += l->overlap_writes + l->read_overlap + l->range + l->misaligned;
		if (l->overlap_writes + l->read_overlap + l->range + l->misaligned)
			printf("LINT %s: overlap %" PRIu64 " read-overlap %" PRIu64 " range %"
			       PRIu64 " misaligned %" PRIu64 "\n", w->name, l->overlap_writes,
			       l->read_overlap, l->range, l->misaligned);
		uint64_t d0 = sum_of(f->distinct), x0 = sum_of(f->failing);

		gen_run(w, idx, &rec, base, f, rp);
		if (w->w3) {
			f->w3_distinct[w->w3 - 1] += sum_of(f->distinct) - d0;
			f->w3_failing[w->w3 - 1] += sum_of(f->failing) - x0;
		}
	}
	fflush(stdout);
	rdev_free(rec.r);
	free(base);
	free(m);
}

/* Does @name contain one of the comma-separated substrings of @only? */
static bool only_match(const char *only, const char *name)
{
	while (only != NULL && *only != '\0') {
		const char *end = strchr(only, ',');
		size_t len = end ? (size_t)(end - only) : strlen(only);
		char part[128];

		if (len > 0 && len < sizeof(part)) {
			memcpy(part, only, len);
			part[len] = '\0';
			if (strstr(name, part) != NULL)
				return true;
		}
		only = end ? end + 1 : NULL;
	}
	return false;
}

static void worker(const struct args *a, const struct workload *ws, int n, int k,
		   struct figures *f)
{
	struct bs_thread *t = bs_thread_create("crash");
	int step = a->scale > 0 && a->scale < 1 ? (int)(1.0 / a->scale + 0.5) : 1;

	rt_set_current(t);
	for (int i = k; i < n; i += a->jobs) {
		if ((i % step != 0 && !ws[i].w3) || (a->only && !only_match(a->only, ws[i].name)))
			continue;
		one_workload(t, &ws[i], i, f, &a->rp);
	}
	rt_set_current(NULL);
	bs_thread_exit(t);
	while (!bs_thread_is_exited(t))
		bs_thread_poll(t, 0);
	bs_thread_destroy(t);
}

static void add_figs(struct figures *s, const struct figures *f)
{
	for (int i = 0; i < ST_COUNT; i++) {
		s->gen[i] += f->gen[i];
		s->distinct[i] += f->distinct[i];
		s->failing[i] += f->failing[i];
	}
	s->avail_loss += f->avail_loss;
	s->cuts += f->cuts;
	s->workloads += f->workloads;
	s->max_v = f->max_v > s->max_v ? f->max_v : s->max_v;
	s->lints += f->lints;
	s->workload_errors += f->workload_errors;
	s->states_sampled += f->states_sampled;
	s->i12.sampled += f->i12.sampled;
	s->i12.states += f->i12.states;
	s->i12.eio += f->i12.eio;
	s->i12.failing += f->i12.failing;
	for (int i = 0; i < W3_MAX; i++) {
		s->w3_distinct[i] += f->w3_distinct[i];
		s->w3_failing[i] += f->w3_failing[i];
	}
}

static int run_sharded(const struct args *a, const struct workload *ws, int n,
		       struct figures *sum)
{
	int fds[64][2], bad = 0;
	pid_t pids[64];

	for (int k = 0; k < a->jobs; k++) {
		if (pipe(fds[k]) != 0 || (pids[k] = fork()) < 0)
			return -1;
		if (pids[k] == 0) {
			struct figures f = { 0 };

			close(fds[k][0]);
			worker(a, ws, n, k, &f);
			if (write(fds[k][1], &f, sizeof(f)) != (ssize_t)sizeof(f))
				_exit(2);
			_exit(0);
		}
		close(fds[k][1]);
	}
	for (int k = 0; k < a->jobs; k++) {
		struct figures f;
		int st = 0;

		if (read(fds[k][0], &f, sizeof(f)) == (ssize_t)sizeof(f))
			add_figs(sum, &f);
		else
			bad++;
		close(fds[k][0]);
		waitpid(pids[k], &st, 0);
		bad += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	}
	return bad;
}

static void print_figures(const struct figures *f, double wall, int jobs)
{
	uint64_t g = 0, d = 0, x = 0;

	printf("\n| strategy | states generated | states distinct | states failing |\n");
	printf("|---|---:|---:|---:|\n");
	for (int i = 0; i < ST_COUNT; i++) {
		printf("| %s | %" PRIu64 " | %" PRIu64 " | %" PRIu64 " |\n", strat_name[i],
		       f->gen[i], f->distinct[i], f->failing[i]);
		g += f->gen[i];
		d += f->distinct[i];
		x += f->failing[i];
	}
	printf("| **total** | %" PRIu64 " | %" PRIu64 " | %" PRIu64 " |\n\n", g, d, x);
	printf("workloads %" PRIu64 " (errors %" PRIu64 "), cuts %" PRIu64 ", max |V| %" PRIu64
	       ", lints %" PRIu64 ", I13/I14 samples %" PRIu64 ", beyond-contract availability losses %"
	       PRIu64 "\n", f->workloads, f->workload_errors, f->cuts, f->max_v, f->lints,
	       f->states_sampled, f->avail_loss);
	printf("I12: %" PRIu64 " states' recoveries recorded, %" PRIu64 " double-failure images "
	       "checked (%" PRIu64 " with -EIO from a load read, write or flush), %" PRIu64 " failing\n",
	       f->i12.sampled, f->i12.states, f->i12.eio, f->i12.failing);
	printf("wall %.1f s, %d workers, %.0f distinct states/s\n", wall, jobs,
	       wall > 0 ? (double)d / wall : 0.0);
	printf("\n| W3 workload | states distinct | states failing |\n|---|---:|---:|\n");
	for (int i = 0; i < w3_count(); i++)
		printf("| %s | %" PRIu64 " | %" PRIu64 " |\n", w3_name(i), f->w3_distinct[i],
		       f->w3_failing[i]);
}

static int parse_repro(const char *s, struct args *a)
{
	char buf[600], *p[4];
	int n = 0;

	snprintf(buf, sizeof(buf), "%s", s);
	p[n++] = buf;
	for (char *c = buf; *c && n < 4; c++)
		if (*c == '|') {
			*c = '\0';
			p[n++] = c + 1;
		}
	if (n != 4 || work_parse(p[0], &a->rw) != 0)
		return -1;
	a->rp.on = true;
	a->rp.cut = strtoull(p[1], NULL, 10);
	a->rp.index = strtoull(p[3], NULL, 10);
	for (a->rp.strat = 0; a->rp.strat < ST_COUNT; a->rp.strat++)
		if (strcmp(strat_name[a->rp.strat], p[2]) == 0)
			return 0;
	return -1;
}

static int parse_args(int argc, char **argv, struct args *a)
{
	a->jobs = 2;
	a->scale = 1.0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--ci") == 0)
			a->nightly = false;
		else if (strcmp(argv[i], "--nightly") == 0)
			a->nightly = true, a->jobs = (int)sysconf(_SC_NPROCESSORS_ONLN);
		else if (strcmp(argv[i], "--scale") == 0 && i + 1 < argc)
			a->scale = atof(argv[++i]);
		else if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc)
			a->jobs = atoi(argv[++i]);
		else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
			a->only = argv[++i];
		else if (strcmp(argv[i], "--repro") == 0 && i + 1 < argc) {
			if (parse_repro(argv[++i], a) != 0)
				return -1;
		} else
			return -1;
	}
	a->jobs = a->jobs < 1 ? 1 : (a->jobs > 64 ? 64 : a->jobs);
	return 0;
}

/* Nightly: every FIFO workload again under LIFO and 16 seeded RANDOM orders. */
static int nightly_list(struct workload **ws, int n)
{
	int total = n;

	*ws = realloc(*ws, (size_t)n * 18 * sizeof(**ws));
	for (int v = 1; v < 18; v++)
		for (int i = 0; i < n; i++) {
			if ((*ws)[i].order != RO_FIFO)
				continue;
			(*ws)[total] = (*ws)[i];
			work_reorder(&(*ws)[total++], v == 1 ? RO_LIFO : RO_RANDOM,
				     (uint64_t)(v == 1 ? 0 : v));
		}
	return total;
}

int main(int argc, char **argv)
{
	struct args a = { 0 };
	struct workload *ws = NULL;
	struct figures sum = { 0 };
	int n, bad;
	double t0 = now_s();

	setvbuf(stdout, NULL, _IOLBF, 0);
#ifdef __GLIBC__
	/* Per-state 1 MiB buffers: keep them on the heap, not mmap/munmap. */
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
	if (parse_args(argc, argv, &a) != 0) {
		fprintf(stderr, "usage: crashtest --ci|--nightly [--scale F] [--jobs N] "
			"[--only S] | --repro 'workload|cut|strategy|index'\n");
		return 2;
	}
	if (getenv("CRASHTEST_LOG") == NULL)
		bs_log_set_hook(quiet_log, NULL);
	if (a.rp.on) {
		ws = malloc(sizeof(*ws));
		ws[0] = a.rw;
		n = 1;
		a.jobs = 1;
	} else {
		n = work_list(&ws, a.nightly);
		if (a.nightly)
			n = nightly_list(&ws, n);
	}
	bad = run_sharded(&a, ws, n, &sum);
	print_figures(&sum, now_s() - t0, a.jobs);
	free(ws);
	for (int i = 0; i < ST_COUNT; i++)
		bad += sum.failing[i] != 0;
	return bad || sum.lints || sum.workload_errors ? 1 : 0;
}
