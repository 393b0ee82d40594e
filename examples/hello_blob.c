/*
 * hello_blob: the smallest complete Blobstore program.
 *
 * It walks the classic sequence, one callback at a time:
 *   init a store -> create a blob -> open it -> resize it -> sync it ->
 *   get an IO channel -> write a pattern -> read it back and compare ->
 *   close -> delete -> unload.
 *
 * Every Blobstore call is asynchronous: it returns at once and later calls
 * the function you passed, with (cb_arg, err), on the same thread. So the
 * program is a chain of small *_cpl ("completion") functions, each starting
 * the next step. A context struct carries the state between them.
 *
 * Usage: hello_blob [--file PATH]   (default: a 64 MiB RAM device)
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <blobstore/blobstore.h>
#include <blobstore/file_dev.h>
#include <blobstore/ram_dev.h>

struct hello {
	struct bs_dev *dev;		/* where the store lives */
	struct bs_store *bs;		/* the loaded store */
	bs_blob_id id;			/* our blob's name */
	struct bs_blob *blob;		/* our blob, while open */
	struct bs_io_channel *ch;	/* this thread's IO channel */
	uint8_t *wbuf, *rbuf;		/* one io unit each */
	uint64_t io_unit;
	bool done;
	int rc;
};

/* Stop the chain: remember the first error and end the main loop. */
static void hello_stop(struct hello *h, int err, const char *step)
{
	if (err != 0)
		fprintf(stderr, "hello_blob: %s failed: %s\n", step, strerror(-err));
	h->rc = err;
	h->done = true;
}

/* The last step: the store is unloaded and everything is on disk. */
static void unload_cpl(void *cb_arg, int err)
{
	struct hello *h = cb_arg;

	if (err == 0)
		printf("hello_blob: store unloaded cleanly\n");
	hello_stop(h, err, "unload");
}

static void delete_cpl(void *cb_arg, int err)
{
	struct hello *h = cb_arg;

	if (err != 0) {
		hello_stop(h, err, "delete");
		return;
	}
	printf("hello_blob: deleted the blob\n");
	bs_unload(h->bs, unload_cpl, h);
}

static void close_cpl(void *cb_arg, int err)
{
	struct hello *h = cb_arg;

	if (err != 0) {
		hello_stop(h, err, "close");
		return;
	}
	printf("hello_blob: closed the blob\n");
	bs_blob_delete(h->bs, h->id, delete_cpl, h);
}

/* The read finished: compare with what we wrote. */
static void read_cpl(void *cb_arg, int err)
{
	struct hello *h = cb_arg;

	if (err != 0) {
		hello_stop(h, err, "read");
		return;
	}
	if (memcmp(h->wbuf, h->rbuf, h->io_unit) != 0) {
		hello_stop(h, -EIO, "compare");
		return;
	}
	printf("hello_blob: read back %lu bytes: data matches\n", (unsigned long)h->io_unit);
	/* Channels belong to a thread; give ours back before closing. */
	bs_free_channel(h->ch);
	bs_blob_close(h->blob, close_cpl, h);
}

static void write_cpl(void *cb_arg, int err)
{
	struct hello *h = cb_arg;

	if (err != 0) {
		hello_stop(h, err, "write");
		return;
	}
	printf("hello_blob: wrote one io unit of 0x5a\n");
	bs_blob_read(h->blob, h->ch, h->rbuf, 0, 1, read_cpl, h);
}

/* Metadata is durable: get a channel for data IO and write a pattern. */
static void sync_cpl(void *cb_arg, int err)
{
	struct hello *h = cb_arg;

	if (err != 0) {
		hello_stop(h, err, "sync");
		return;
	}
	printf("hello_blob: synced: the new size is durable\n");
	h->ch = bs_alloc_channel(h->bs);
	if (h->ch == NULL) {
		hello_stop(h, -errno, "alloc channel");
		return;
	}
	memset(h->wbuf, 0x5a, h->io_unit);
	/* Offsets and lengths count io units (the device's block). */
	bs_blob_write(h->blob, h->ch, h->wbuf, 0, 1, write_cpl, h);
}

/* Resize only changes RAM; sync makes it durable. */
static void resize_cpl(void *cb_arg, int err)
{
	struct hello *h = cb_arg;

	if (err != 0) {
		hello_stop(h, err, "resize");
		return;
	}
	printf("hello_blob: resized to %lu clusters\n",
	       (unsigned long)bs_blob_get_num_clusters(h->blob));
	bs_blob_sync(h->blob, sync_cpl, h);
}

static void open_cpl(void *cb_arg, int err)
{
	struct hello *h = cb_arg;

	if (err != 0) {
		hello_stop(h, err, "open");
		return;
	}
	printf("hello_blob: opened blob 0x%llx\n", (unsigned long long)h->id);
	/* Give it every free cluster. */
	bs_blob_resize(h->blob, bs_get_free_cluster_count(h->bs), resize_cpl, h);
}

static void create_cpl(void *cb_arg, int err)
{
	struct hello *h = cb_arg;

	if (err != 0) {
		hello_stop(h, err, "create");
		return;
	}
	printf("hello_blob: created blob 0x%llx\n", (unsigned long long)h->id);
	bs_blob_open(h->bs, h->id, &h->blob, open_cpl, h);
}

static void init_cpl(void *cb_arg, int err)
{
	struct hello *h = cb_arg;

	if (err != 0) {
		hello_stop(h, err, "init");
		return;
	}
	h->io_unit = bs_get_io_unit_size(h->bs);
	printf("hello_blob: store ready: %lu free clusters of %lu bytes, io unit %lu\n",
	       (unsigned long)bs_get_free_cluster_count(h->bs),
	       (unsigned long)bs_get_cluster_size(h->bs), (unsigned long)h->io_unit);
	/* NULL options: an empty, thick blob. */
	bs_blob_create(h->bs, NULL, &h->id, create_cpl, h);
}

/* Open the device: a file if asked, else memory. */
static int hello_open_dev(struct hello *h, const char *path)
{
	if (path != NULL) {
		struct bs_file_dev_opts fo;

		bs_file_dev_opts_init(&fo);
		fo.create_size = 64ull << 20;
		return bs_file_dev_open(path, &fo, &h->dev);
	}
	struct bs_ram_dev_opts ro;
	bs_ram_dev_opts_init(&ro);
	ro.block_len = 512;
	ro.block_count = (64ull << 20) / 512;
	return bs_ram_dev_create(&ro, &h->dev);
}

/* Runs on the thread: the first call of the chain. */
static void hello_start(void *ctx)
{
	struct hello *h = ctx;
	struct bs_opts opts;

	bs_opts_init(&opts, sizeof(opts));
	opts.cluster_size = 1u << 20;
	bs_init(h->dev, &opts, &h->bs, init_cpl, h);
}

static void dev_closed_cpl(void *cb_arg, int err)
{
	*(bool *)cb_arg = true;
}

static void hello_close_dev(void *ctx)
{
	bs_dev_close(((struct hello *)ctx)->dev, dev_closed_cpl, &((struct hello *)ctx)->done);
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	struct hello h = { 0 };
	struct bs_thread *t;

	if (argc == 3 && strcmp(argv[1], "--file") == 0) {
		path = argv[2];
	} else if (argc != 1) {
		fprintf(stderr, "usage: hello_blob [--file PATH]\n");
		return 2;
	}
	if ((h.rc = hello_open_dev(&h, path)) != 0) {
		fprintf(stderr, "hello_blob: cannot open the device: %s\n", strerror(-h.rc));
		return 1;
	}
	printf("hello_blob: device %s, %lu blocks of %u bytes\n", h.dev->name,
	       (unsigned long)h.dev->block_count, h.dev->block_len);
	/* IO buffers must suit the device: 4 KiB alignment always does. */
	if (posix_memalign((void **)&h.wbuf, 4096, 4096) != 0 ||
	    posix_memalign((void **)&h.rbuf, 4096, 4096) != 0)
		return 1;
	/*
	 * A bs_thread is an event loop. main() drives this one with
	 * bs_thread_poll() (bs_thread_start() would give it its own pthread).
	 * The thread that calls bs_init() becomes the store's metadata thread.
	 */
	t = bs_thread_create("hello");
	if (t == NULL || bs_thread_send_msg(t, hello_start, &h) != 0) {
		fprintf(stderr, "hello_blob: cannot start a thread\n");
		return 1;
	}
	while (!h.done)
		bs_thread_poll(t, 0);
	h.done = false;
	bs_thread_send_msg(t, hello_close_dev, &h);
	while (!h.done)
		bs_thread_poll(t, 0);
	bs_thread_exit(t);
	while (!bs_thread_is_exited(t))
		bs_thread_poll(t, 0);
	bs_thread_destroy(t);
	free(h.wbuf);
	free(h.rbuf);
	printf("hello_blob: %s\n", h.rc == 0 ? "SUCCESS" : "FAILED");
	return h.rc == 0 ? 0 : 1;
}
