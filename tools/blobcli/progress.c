/*
 * Progress bar for long transfers: only when stderr is a terminal, redrawn
 * at most ten times a second, with bytes done, rate and time left:
 *
 *   import [##########..........]  50%  50.0 MiB / 100.0 MiB  812.3 MiB/s  ETA 0:00
 *
 * Elsewhere (a pipe, a log file, a test) it prints nothing.
 */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define PROGRESS_WIDTH 20
#define PROGRESS_PERIOD 0.1	/* seconds between redraws */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void progress_start(struct progress *p, const char *label, uint64_t total)
{
	p->on = isatty(STDERR_FILENO) && total > 0;
	p->label = label;
	p->total = total;
	p->t0 = now_s();
	p->last = 0;
}

static void progress_draw(struct progress *p, uint64_t done, double t)
{
	double el = t - p->t0, rate = el > 0 ? (double)done / el : 0;
	double eta = rate > 0 ? (double)(p->total - done) / rate : 0;
	int fill = (int)((double)PROGRESS_WIDTH * (double)done / (double)p->total);
	char bar[PROGRESS_WIDTH + 1], a[16], b[16], r[16];

	for (int i = 0; i < PROGRESS_WIDTH; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[PROGRESS_WIDTH] = '\0';
	fprintf(stderr, "\r%s [%s] %3d%%  %s / %s  %s/s  ETA %d:%02d\033[K", p->label, bar,
		(int)(100.0 * (double)done / (double)p->total), fmt_size(done, a, sizeof(a)),
		fmt_size(p->total, b, sizeof(b)), fmt_size((uint64_t)rate, r, sizeof(r)),
		(int)eta / 60, (int)eta % 60);
	fflush(stderr);
}

void progress_update(struct progress *p, uint64_t done)
{
	double t;

	if (!p->on)
		return;
	t = now_s();
	if (t - p->last < PROGRESS_PERIOD)
		return;
	p->last = t;
	progress_draw(p, done, t);
}

/* Draw the final state once and end the line (or erase it on failure). */
void progress_end(struct progress *p, uint64_t done, bool ok)
{
	if (!p->on || p->last == 0)
		return;
	if (ok)
		progress_draw(p, done, now_s());
	fputs(ok ? "\n" : "\r\033[K", stderr);
	fflush(stderr);
}
