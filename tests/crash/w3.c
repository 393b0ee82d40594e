/*
 * W3: named regression workloads for known field bugs (crash-testing.md
 * 3.4). Each runs on the "pop" start image (blobs T thick, N thin, C a
 * clone of snapshot S); every cut of its log is then crashed like any
 * other workload, strategy S included.
 */
#include <errno.h>
#include <stddef.h>

#include "crash.h"
#include "ops.h"

typedef int (*w3_fn)(struct run *x);

static int sync_flush(struct run *x, int b)
{
	int rc = ops_sync(x, b);

	return rc ? rc : ops_flush(x);
}

/* spdk#291: thin, thick, snapshot and clone blobs, killed mid-use. */
static int snap_clone_kill(struct run *x)
{
	int s2, c2;

	if (ops_write(x, ROLE_T, 8) || (s2 = ops_snapshot(x, ROLE_T)) < 0 ||
	    (c2 = ops_clone(x, s2)) < 0 || ops_sync(x, ROLE_T))
		return -EIO;
	if (ops_write(x, c2, 8) || ops_write(x, ROLE_T, CT_UPC + 8) || ops_write(x, ROLE_N, 40))
		return -EIO;
	return ops_snapshot(x, ROLE_C) < 0 ? -EIO : ops_write(x, ROLE_C, 48);
}

/* spdk#3431: delete snapshots while a clone still reads through them. */
static int delete_live_clone(struct run *x)
{
	int s2;

	if (ops_write(x, ROLE_C, CT_UPC + 8) || (s2 = ops_snapshot(x, ROLE_C)) < 0 ||
	    ops_write(x, ROLE_C, 24) || ops_flush(x))
		return -EIO;
	if (ops_delete_ex(x, s2, -1) || ops_write(x, ROLE_C, CT_UPC + 24))
		return -EIO;
	return ops_delete_ex(x, ROLE_S, -1) ? -EIO : sync_flush(x, ROLE_C);
}

/*
 * spdk#2866: a COW allocation, then a freed (not zeroed) cluster handed to
 * a later thin allocation: the new blob must never show the old data (I10).
 */
static int cow_alloc(struct run *x)
{
	int b;

	if (ops_write(x, ROLE_C, CT_UPC + 16) || ops_delete_ex(x, ROLE_N, -1) || ops_flush(x))
		return -EIO;
	if ((b = ops_create(x, true, 2)) < 0 || ops_write(x, b, 8) || ops_write(x, b, CT_UPC + 24))
		return -EIO;
	return sync_flush(x, b);
}

/* spdk#2368: -EIO during delete, then the crash: no zombie holds space. */
static int eio_delete(struct run *x, int skip)
{
	if (ops_write(x, ROLE_N, CT_UPC + 8) || sync_flush(x, ROLE_N))
		return -EIO;
	x->allow_eio = true;
	ops_delete_ex(x, ROLE_N, skip);
	return 0;
}

static int eio_delete0(struct run *x) { return eio_delete(x, 0); }
static int eio_delete1(struct run *x) { return eio_delete(x, 1); }
static int eio_delete2(struct run *x) { return eio_delete(x, 2); }

/* spdk#3682: a cluster allocated and one released on one extent page at once. */
static int conc_alloc_release(struct run *x)
{
	if (ops_alloc_release(x, ROLE_N, 1, 0) || ops_sync(x, ROLE_N))
		return -EIO;
	if (ops_alloc_release(x, ROLE_N, 0, 1) || ops_flush(x))
		return -EIO;
	return ops_alloc_release(x, ROLE_N, 1, 0) ? -EIO : sync_flush(x, ROLE_N);
}

/* longhorn#13944: xattr chains rewritten, so stale pool pages exist (strategy S). */
static int stale_cont_page(struct run *x)
{
	if (ops_xattr(x, ROLE_T, "big", 11000, false) || sync_flush(x, ROLE_T))
		return -EIO;
	if (ops_write(x, ROLE_T, 8) || ops_xattr(x, ROLE_T, "big", 9000, false) ||
	    ops_sync(x, ROLE_T))
		return -EIO;
	return ops_xattr(x, ROLE_T, "big", 0, true) ? -EIO : sync_flush(x, ROLE_T);
}

/* The md chain grows 1 -> 3 pages and back; the map crosses extent pages. */
static int chain_grow_shrink(struct run *x)
{
	if (ops_xattr(x, ROLE_N, "chain", 9000, false) || ops_sync(x, ROLE_N))
		return -EIO;
	if (ops_resize_to(x, ROLE_N, 1100) || ops_sync(x, ROLE_N) ||
	    ops_write(x, ROLE_N, 1050 * CT_UPC + 8) || ops_sync(x, ROLE_N))
		return -EIO;
	if (ops_xattr(x, ROLE_N, "chain", 0, true) || ops_resize_to(x, ROLE_N, 2) ||
	    ops_sync(x, ROLE_N))
		return -EIO;
	return ops_write(x, ROLE_N, CT_UPC + 8) ? -EIO : sync_flush(x, ROLE_N);
}

/* SPDK blobstore_clean_power_failure: crash while the clean flag is written. */
static int clean_unload(struct run *x)
{
	if (ops_write(x, ROLE_T, 8) || ops_sync(x, ROLE_T) || ops_reload(x))
		return -EIO;
	return ops_write(x, ROLE_N, 8) || ops_reload(x) ? -EIO : 0;
}

static const struct {
	const char *name;
	w3_fn fn;
} w3_tab[] = {
	{ "snap_clone_kill", snap_clone_kill },
	{ "delete_live_clone", delete_live_clone },
	{ "cow_alloc", cow_alloc },
	{ "eio_delete.0", eio_delete0 },
	{ "eio_delete.1", eio_delete1 },
	{ "eio_delete.2", eio_delete2 },
	{ "conc_alloc_release", conc_alloc_release },
	{ "stale_cont_page", stale_cont_page },
	{ "chain_grow_shrink", chain_grow_shrink },
	{ "clean_unload", clean_unload },
};

int w3_count(void) { return (int)(sizeof(w3_tab) / sizeof(w3_tab[0])); }
const char *w3_name(int i) { return w3_tab[i].name; }
int w3_start(int i) { (void)i; return IMG_POP; }
int w3_run(int i, struct run *x) { return w3_tab[i].fn(x); }
