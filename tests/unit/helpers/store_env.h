/*
 * Test environment for store suites: one bs_thread driven by the test's own
 * pthread (which acts as the metadata thread), a RAM device with a volatile
 * write cache, and synchronous wrappers around the async API that poll until
 * the callback has run (and assert it did not run inline).
 */
#ifndef BS_TEST_STORE_ENV_H
#define BS_TEST_STORE_ENV_H

#include <stdatomic.h>

#include <blobstore/blobstore.h>
#include <blobstore/ram_dev.h>

#include "test_helpers.h"

struct store_env {
	struct bs_thread *t;
	struct bs_dev *dev;
	struct bs_store *bs;
	struct bs_io_channel *ch;
	uint32_t block_len;
	uint32_t cluster_size;
	uint64_t dev_bytes;
};

/** A geometry to run a suite under. */
struct store_param {
	uint32_t block_len;
	uint32_t cluster_size;
	uint64_t dev_bytes;
	bool no_copy;		/* RAM device without copy offload */
};

/** Thread + RAM device; no store yet. */
void env_setup(struct store_env *e, const struct store_param *p);
/** Unload (if loaded), close the device, finish the thread. */
void env_teardown(struct store_env *e);
/** cmocka fixtures: *state is a struct store_param on entry, the env after. */
int env_fixture_setup(void **state);
int env_fixture_teardown(void **state);

/** bs_init with the env's cluster size (opts may override; NULL = defaults). */
int env_init_store(struct store_env *e, struct bs_opts *opts);
int env_load(struct store_env *e, struct bs_opts *opts);
int env_unload(struct store_env *e);
/** Forget the store without unloading (after a simulated crash). */
void env_abandon(struct store_env *e);
/** Power cut with @p mode/@p seed, abandon the store, power on again. */
void env_crash(struct store_env *e, enum bs_power_cut_mode mode, uint64_t seed);

int env_create(struct store_env *e, uint64_t clusters, bool thin, bs_blob_id *id);
int env_open(struct store_env *e, bs_blob_id id, struct bs_blob **b);
int env_close(struct store_env *e, struct bs_blob *b);
int env_delete(struct store_env *e, bs_blob_id id);
int env_resize(struct store_env *e, struct bs_blob *b, uint64_t clusters);
int env_sync(struct store_env *e, struct bs_blob *b);
int env_flush(struct store_env *e);
/* Snapshot / clone of @p id (no xattrs), waited for. */
int env_snapshot(struct store_env *e, bs_blob_id id, bs_blob_id *out);
int env_clone(struct store_env *e, bs_blob_id id, bs_blob_id *out);
int env_write(struct store_env *e, struct bs_blob *b, const void *buf, uint64_t off, uint64_t len);
int env_read(struct store_env *e, struct bs_blob *b, void *buf, uint64_t off, uint64_t len);
/** The env's channel on the metadata thread (allocated on first use). */
struct bs_io_channel *env_channel(struct store_env *e);
int env_check(struct store_env *e, struct bs_check_report *r);

/** Wait for a completion started by the test (asserting it was deferred). */
int env_wait(struct store_env *e, struct th_cpl *c);

/** Allocate an aligned IO buffer of @p bytes. */
void *env_buf(size_t bytes);

/* ---- Raw device access (crafting on-disk states) ---- */

/** Write @p nblocks device blocks at @p lba, bypassing the store, then flush. */
int env_dev_write(struct store_env *e, const void *buf, uint64_t lba, uint64_t nblocks);
/** Copy 4 KiB metadata page @p page_no out of what the device reads now. */
void env_dev_read_page(struct store_env *e, uint64_t page_no, void *page);
/** Write 4 KiB metadata page @p page_no straight to the device (env_dev_write). */
int env_dev_write_page(struct store_env *e, uint64_t page_no, const void *page);

/* ---- Reactor threads for multi-threaded IO ---- */

/** A started reactor thread holding its own channel of the env's store. */
struct env_worker {
	struct bs_thread *t;
	struct bs_store *bs;
	struct bs_io_channel *ch;
	int ch_err;		/* errno of bs_alloc_channel, 0 on success */
};

/** Poll the metadata thread until *@p flag is set or @p timeout_ms passed. */
bool env_wait_flag(struct store_env *e, atomic_bool *flag, uint64_t timeout_ms);
/** Create and start a reactor; allocate its channel from a message run on it. */
void env_worker_start(struct store_env *e, struct env_worker *w, const char *name);
/** Run @p fn(@p arg) on the worker as a message and wait (bounded) until it returned. */
void env_worker_run(struct store_env *e, struct env_worker *w, bs_msg_fn fn, void *arg);
/** Free the worker's channel on its thread, stop and destroy the reactor. */
void env_worker_stop(struct store_env *e, struct env_worker *w);

#endif /* BS_TEST_STORE_ENV_H */
