/*
 * devdemo: an end-to-end run of the device layer on a file-backed device.
 *
 * It creates (or reuses) an image file, starts a reactor thread, and from
 * that thread writes a pattern across the device with several IOs in
 * flight, flushes, reads everything back and compares. It prints what it
 * did and exits 0 on success. `make demo` runs it on build/demo.img.
 *
 * Usage: devdemo [PATH] [SIZE_MIB]
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <blobstore/dev.h>
#include <blobstore/file_dev.h>
#include <blobstore/thread.h>

#define DEMO_IO_BYTES (256 * 1024)
#define DEMO_QD 8

struct demo;

/* One IO slot: the callback argument that leads back to the demo. */
struct demo_slot {
	struct demo *d;
	int idx;
	struct bs_dev_io io;
	uint64_t io_index;
};

struct demo {
	struct bs_dev *dev;
	struct bs_io_channel *ch;
	uint8_t *bufs[DEMO_QD];
	struct demo_slot slots[DEMO_QD];
	struct bs_dev_io flush_io;
	uint64_t blocks_per_io;
	uint64_t nios;		/* IOs needed to cover the device */
	uint64_t next;		/* next IO index to submit */
	uint64_t done;
	int inflight;
	bool reading;
	int err;
	uint64_t mismatches;
	atomic_bool finished;
	struct timespec t0;
};

static void demo_fill(uint8_t *buf, uint64_t io_index)
{
	for (size_t i = 0; i < DEMO_IO_BYTES; i += 8) {
		uint64_t v = io_index * 0x9E3779B97F4A7C15ull ^ i;

		memcpy(buf + i, &v, 8);
	}
}

static void demo_phase_cpl(struct demo *d);
static void demo_submit(struct demo *d, int slot);

/* One IO finished: verify a read, then keep the queue full. */
static void demo_io_cpl(void *cb_arg, int err)
{
	struct demo_slot *s = cb_arg;
	struct demo *d = s->d;
	int slot = s->idx;

	d->inflight--;
	if (err != 0 && d->err == 0)
		d->err = err;
	if (err == 0 && d->reading) {
		uint8_t expect[DEMO_IO_BYTES];

		demo_fill(expect, s->io_index);
		if (memcmp(expect, d->bufs[slot], DEMO_IO_BYTES) != 0)
			d->mismatches++;
	}
	d->done++;
	if (d->next < d->nios && d->err == 0)
		demo_submit(d, slot);
	else if (d->inflight == 0)
		demo_phase_cpl(d);
}

static void demo_submit(struct demo *d, int slot)
{
	uint64_t idx = d->next++;
	uint64_t lba = idx * d->blocks_per_io;
	struct demo_slot *s = &d->slots[slot];

	s->d = d;
	s->idx = slot;
	s->io_index = idx;
	d->inflight++;
	if (d->reading) {
		bs_dev_read(d->ch, &s->io, d->bufs[slot], lba, d->blocks_per_io, demo_io_cpl, s);
	} else {
		demo_fill(d->bufs[slot], idx);
		bs_dev_write(d->ch, &s->io, d->bufs[slot], lba, d->blocks_per_io, demo_io_cpl, s);
	}
}

static void demo_start_phase(struct demo *d, bool reading)
{
	d->reading = reading;
	d->next = 0;
	d->done = 0;
	clock_gettime(CLOCK_MONOTONIC, &d->t0);
	for (int i = 0; i < DEMO_QD && d->next < d->nios; i++)
		demo_submit(d, i);
}

static double demo_secs(const struct demo *d)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - d->t0.tv_sec) + (double)(t.tv_nsec - d->t0.tv_nsec) / 1e9;
}

static void demo_closed_cpl(void *cb_arg, int err)
{
	struct demo *d = cb_arg;

	if (err != 0 && d->err == 0)
		d->err = err;
	atomic_store(&d->finished, true);
}

static void demo_finish(struct demo *d)
{
	bs_dev_put_channel(d->ch);
	bs_dev_close(d->dev, demo_closed_cpl, d);
}

static void demo_flush_cpl(void *cb_arg, int err)
{
	struct demo *d = cb_arg;
	double s = demo_secs(d);

	if (err != 0) {
		d->err = err;
		demo_finish(d);
		return;
	}
	printf("devdemo: flushed (write + flush %.2f s, %.0f MB/s)\n", s,
	       (double)d->nios * DEMO_IO_BYTES / s / 1e6);
	demo_start_phase(d, true);
}

static void demo_phase_cpl(struct demo *d)
{
	if (d->err != 0) {
		demo_finish(d);
		return;
	}
	if (!d->reading) {
		printf("devdemo: wrote %" PRIu64 " x 256 KiB with %d IOs in flight\n",
		       d->nios, DEMO_QD);
		bs_dev_flush(d->ch, &d->flush_io, demo_flush_cpl, d);
		return;
	}
	printf("devdemo: read back %" PRIu64 " x 256 KiB in %.2f s (%.0f MB/s), "
	       "%" PRIu64 " mismatches\n", d->nios, demo_secs(d),
	       (double)d->nios * DEMO_IO_BYTES / demo_secs(d) / 1e6, d->mismatches);
	demo_finish(d);
}

/* Runs on the reactor thread: take a channel and start writing. */
static void demo_start(void *ctx)
{
	struct demo *d = ctx;

	d->ch = bs_dev_get_channel(d->dev);
	if (d->ch == NULL) {
		d->err = -errno;
		atomic_store(&d->finished, true);
		return;
	}
	demo_start_phase(d, false);
}

static int demo_open(struct demo *d, const char *path, uint64_t mib)
{
	struct bs_file_dev_opts opts;
	int rc;

	bs_file_dev_opts_init(&opts);
	opts.create_size = mib << 20;
	rc = bs_file_dev_open(path, &opts, &d->dev);
	if (rc != 0)
		return rc;
	printf("devdemo: %s: %" PRIu64 " blocks of %u bytes, backend %s\n", path,
	       d->dev->block_count, d->dev->block_len, bs_file_dev_backend(d->dev));
	d->blocks_per_io = DEMO_IO_BYTES / d->dev->block_len;
	d->nios = (mib << 20) / DEMO_IO_BYTES;
	for (int i = 0; i < DEMO_QD; i++) {
		if (posix_memalign((void **)&d->bufs[i], 4096, DEMO_IO_BYTES) != 0)
			return -ENOMEM;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : "build/demo.img";
	uint64_t mib = argc > 2 ? strtoull(argv[2], NULL, 0) : 64;
	struct demo d = { 0 };
	struct bs_thread *t;
	int rc;

	if (mib == 0 || mib > (1u << 20)) {
		fprintf(stderr, "devdemo: size must be 1..1048576 MiB\n");
		return 2;
	}
	rc = demo_open(&d, path, mib);
	if (rc != 0) {
		fprintf(stderr, "devdemo: cannot open %s: %s\n", path, strerror(-rc));
		return 1;
	}
	t = bs_thread_create("demo");
	if (t == NULL || bs_thread_start(t) != 0 || bs_thread_send_msg(t, demo_start, &d) != 0) {
		fprintf(stderr, "devdemo: cannot start the reactor\n");
		return 1;
	}
	while (!atomic_load(&d.finished))
		usleep(1000);
	bs_thread_exit(t);
	bs_thread_destroy(t);
	for (int i = 0; i < DEMO_QD; i++)
		free(d.bufs[i]);
	if (d.err != 0 || d.mismatches != 0) {
		fprintf(stderr, "devdemo: FAILED: %s, %" PRIu64 " mismatches\n",
			strerror(-d.err), d.mismatches);
		return 1;
	}
	printf("devdemo: OK\n");
	return 0;
}
