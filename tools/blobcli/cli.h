/*
 * blobcli: the operator's tool for a Blobstore (docs/blobcli.md).
 *
 * Shared declarations. One concern per file:
 *   main.c       global options, mode selection, exit code
 *   rt.c         the bs_thread this process drives, and running async calls
 *   calls.c      one blocking wrapper per asynchronous library call
 *   session.c    device and store lifecycle, library log routing, errors
 *   args.c       parsing sizes, ids and bytes; formatting sizes
 *   tokenize.c   splitting a shell or script line into words ($Bn, quotes)
 *   commands.c   the command table, dispatch and help
 *   cmd_store.c  init, info, check, recover, dump, super
 *   cmd_blob.c   list, create, resize, delete, xattr
 *   cmd_snap.c   snapshot, clone, inflate, decouple
 *   cmd_xfer.c   import, export, fill
 *   xfer.c       the pipelined data mover behind them
 *   progress.c   the progress bar on a terminal
 *   json.c       the JSON writer
 *   shell.c      the interactive shell (libedit), complete.c its completion
 *   script.c     script mode
 *
 * Threading model: the process's only pthread drives one bs_thread by
 * polling it. Library calls that must run on the metadata thread are sent
 * to that thread as messages (rt_run) and the main loop polls until their
 * completion fires; between commands nothing polls, so the shell can block
 * in el_gets() with the store loaded.
 */
#ifndef BLOBCLI_CLI_H
#define BLOBCLI_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <blobstore/blobstore.h>
#include <blobstore/dump.h>

/* Exit codes (docs/blobcli.md). */
enum cli_exit {
	CLI_OK = 0,		/* success; check: the store is consistent */
	CLI_FAIL = 1,		/* the operation failed; check: problems found */
	CLI_NOLOAD = 2,		/* the device could not be opened or the store not loaded */
	CLI_USAGE = 3,		/* unknown command, missing or malformed argument */
};

/* The xattr where import records a blob's exact byte length (decimal text). */
#define CLI_SIZE_XATTR "blobcli.size"

/* ---- rt.c ---- */

struct cli_op;
typedef void (*cli_go_fn)(struct cli_op *op);

/* One library call in flight: go() runs on the thread, then rt_done() ends it. */
struct cli_op {
	cli_go_fn go;
	bool done;
	int err;
};

struct cli;
int rt_start(struct cli *c);
void rt_stop(struct cli *c);
/** Run @p go(@p op) on the thread and poll until rt_done(); returns op->err. */
int rt_run(struct cli *c, struct cli_op *op, cli_go_fn go);
/** End @p op with @p err (call on the thread). */
void rt_done(struct cli_op *op, int err);
/** A bs_cpl_fn whose cb_arg is a struct cli_op. */
void rt_cpl(void *cb_arg, int err);

/* Set by SIGINT: long transfers stop at the next chunk. */
extern volatile sig_atomic_t cli_interrupted;

/* ---- calls.c: each runs one library call to completion ---- */

int call_init(struct cli *c, const struct bs_opts *opts);
int call_load(struct cli *c, const struct bs_opts *opts);
int call_unload(struct cli *c);
int call_dev_close(struct cli *c);
int call_create(struct cli *c, const struct bs_blob_opts *opts, bs_blob_id *id);
int call_open(struct cli *c, bs_blob_id id, struct bs_blob **blob);
int call_close(struct cli *c, struct bs_blob *blob);
int call_delete(struct cli *c, bs_blob_id id);
int call_resize(struct cli *c, struct bs_blob *blob, uint64_t clusters);
int call_sync(struct cli *c, struct bs_blob *blob);
int call_set_super(struct cli *c, bs_blob_id id);
int call_set_xattr(struct cli *c, struct bs_blob *blob, const char *name, const void *value,
		   uint32_t len);
int call_remove_xattr(struct cli *c, struct bs_blob *blob, const char *name);
int call_check(struct cli *c, struct bs_check_report *r, bs_check_msg_fn fn, void *arg);
int call_dump(struct cli *c, FILE *out, const struct bs_dump_opts *opts,
	      struct bs_dump_report *r);
int call_snapshot(struct cli *c, bs_blob_id id, const struct bs_xattr *xattrs, uint32_t n,
		  bs_blob_id *snap);
int call_clone(struct cli *c, bs_blob_id parent, const struct bs_xattr *xattrs, uint32_t n,
	       bs_blob_id *clone);
int call_inflate(struct cli *c, bs_blob_id id);
int call_decouple(struct cli *c, bs_blob_id id);
int call_alloc_channel(struct cli *c, struct bs_io_channel **ch);
int call_free_channel(struct cli *c, struct bs_io_channel *ch);

/* ---- session.c ---- */

struct cli {
	/* Global options. */
	const char *path;		/* -f: file or block device */
	uint64_t create_size;		/* --create */
	uint64_t ram_size;		/* --ram */
	uint32_t block_size;		/* --block-size (files) */
	bool json;			/* --json */
	bool keep_going;		/* --keep-going (script) */
	int verbose;			/* -v */
	/* Runtime. */
	struct bs_thread *thread;
	struct bs_dev *dev;
	struct bs_store *bs;
	int lock_fd;			/* flock held on the device path */
	uint32_t dev_block_len;		/* block size the file device was opened with */
	bool ram_fresh;			/* RAM device not initialized yet */
	bool initialized;		/* the loaded store was made by this session */
	/* Session. */
	const char *where;		/* error prefix ("script:LINE"), or NULL */
	bool quiet;			/* drop error lines (tab completion parses lines) */
	bs_blob_id *created;		/* blobs created this session: $B1 ... */
	size_t ncreated;
	size_t created_cap;
};

void cli_setup(struct cli *c);
/** One error line on stderr: "blobcli: [where: ]msg". */
void cli_err(struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Text for a negative errno, worded for operators. */
const char *cli_strerror(int err);
/** Open the device if needed. 0, or an exit code after one error line. */
int cli_dev(struct cli *c);
/** bs_load on the open device (tries the other io unit of a file: 512/4096). */
int cli_load(struct cli *c, const struct bs_opts *opts);
/** Load (or, for a fresh RAM device, init) the store if needed. 0 or an exit code. */
int cli_store(struct cli *c);
/** Unload the store if loaded. 0 or CLI_FAIL after one error line. */
int cli_unload(struct cli *c);
/** Unload, close the device, release the lock. 0 or CLI_FAIL. */
int cli_close(struct cli *c);
/** Remember a blob created this session ($Bn). */
void cli_note_created(struct cli *c, bs_blob_id id);

/* ---- args.c ---- */

/** "4096", "64K", "1.5M", "2G", "1T" (binary units; B, KB, KiB accepted). */
int parse_size(const char *s, uint64_t *out);
/** Decimal or 0x hex. */
int parse_u64(const char *s, uint64_t *out);
/** A blob id (hex or decimal); one error line and CLI_USAGE if malformed. */
int parse_id(struct cli *c, const char *s, bs_blob_id *id);
/** "64.0 MiB" into @p buf (at least 16 bytes). */
const char *fmt_size(uint64_t bytes, char *buf, size_t len);
/** Byte length of @p blob as recorded by import, or its whole size. */
uint64_t blob_byte_size(struct cli *c, struct bs_blob *blob, bool *recorded);
/** Clusters needed for @p bytes. */
uint64_t bytes_to_clusters(struct cli *c, uint64_t bytes);

/* ---- tokenize.c ---- */

#define CLI_MAX_ARGS 64

struct cli_words {
	int argc;
	char *argv[CLI_MAX_ARGS + 1];
	char *buf;			/* owns the words */
};

/** Split @p line; expands $Bn from c->created. 0, or -1 after one error line. */
int tokenize(struct cli *c, const char *line, struct cli_words *w);
void words_free(struct cli_words *w);

/* ---- commands.c ---- */

/* What a command's positional arguments are, for completion. */
#define ARG_ID 'I'
#define ARG_FILE 'F'
#define ARG_SUB 's'
#define ARG_CMD 'c'

struct cli_cmd {
	const char *name;
	int (*fn)(struct cli *c, int argc, char **argv);
	const char *usage;		/* after the name */
	const char *summary;
	const char *args;		/* ARG_* per positional; '*' repeats the last */
	const char *options;		/* long options, space separated, for completion */
	const char *subs;		/* subcommands, space separated */
};

const struct cli_cmd *cli_find_cmd(const char *name);
const struct cli_cmd *cli_cmd_at(size_t i);
/** Run one command line; returns its exit code. */
int cli_dispatch(struct cli *c, int argc, char **argv);
void cli_usage(FILE *out);
/** Parse a command's options: getopt_long with errors as one line. */
int cli_getopt(struct cli *c, int argc, char **argv, const char *shortopts,
	       const void *longopts, int *opt);
/** One usage error line for @p cmd, returns CLI_USAGE. */
int cli_bad_usage(struct cli *c, const char *cmd, const char *why);
/** Options of info/list/check: only --json; then the store is loaded. 0 or exit code. */
int cli_json_only(struct cli *c, const char *cmd, int argc, char **argv, bool *json);

/* ---- commands, by file ---- */

int cmd_init(struct cli *c, int argc, char **argv);
int cmd_info(struct cli *c, int argc, char **argv);
int cmd_check(struct cli *c, int argc, char **argv);
int cmd_recover(struct cli *c, int argc, char **argv);
int cmd_dump(struct cli *c, int argc, char **argv);
int cmd_super(struct cli *c, int argc, char **argv);
int cmd_list(struct cli *c, int argc, char **argv);
int cmd_create(struct cli *c, int argc, char **argv);
int cmd_resize(struct cli *c, int argc, char **argv);
int cmd_delete(struct cli *c, int argc, char **argv);
int cmd_xattr(struct cli *c, int argc, char **argv);
int cmd_snapshot(struct cli *c, int argc, char **argv);
int cmd_clone(struct cli *c, int argc, char **argv);
int cmd_inflate(struct cli *c, int argc, char **argv);
int cmd_decouple(struct cli *c, int argc, char **argv);
int cmd_import(struct cli *c, int argc, char **argv);
int cmd_export(struct cli *c, int argc, char **argv);
int cmd_fill(struct cli *c, int argc, char **argv);

/** Parse one --xattr NAME=VALUE into @p x (points into @p arg). 0 or CLI_USAGE. */
int parse_xattr_arg(struct cli *c, const char *cmd, char *arg, struct bs_xattr *x);
/** Open blob @p s (an id argument); one error line and an exit code on failure. */
int open_blob_arg(struct cli *c, const char *s, struct bs_blob **blob);

/* ---- xfer.c ---- */

enum xfer_kind { XFER_IMPORT, XFER_EXPORT, XFER_FILL };

struct xfer_req {
	enum xfer_kind kind;
	struct bs_blob *blob;
	int fd;				/* import: source; export: destination */
	uint64_t offset;		/* first byte in the blob (io-unit aligned) */
	uint64_t length;		/* bytes to move */
	uint8_t pattern;		/* fill */
	bool skip_zero;			/* import into a fresh thin blob: skip zero chunks */
	const char *label;		/* progress bar label */
};

/** Move the data; 0 or a negative errno (-ECANCELED on SIGINT). */
int xfer_run(struct cli *c, const struct xfer_req *req);

/* ---- progress.c ---- */

struct progress {
	bool on;
	const char *label;
	uint64_t total;
	double t0;
	double last;
};

void progress_start(struct progress *p, const char *label, uint64_t total);
void progress_update(struct progress *p, uint64_t done);
void progress_end(struct progress *p, uint64_t done, bool ok);

/* ---- json.c ---- */

struct json {
	FILE *out;
	int depth;
	bool first[16];
};

void json_init(struct json *j, FILE *out);
void json_obj_begin(struct json *j, const char *key);
void json_obj_end(struct json *j);
void json_arr_begin(struct json *j, const char *key);
void json_arr_end(struct json *j);
void json_str(struct json *j, const char *key, const char *s);
void json_strn(struct json *j, const char *key, const void *s, size_t len);
void json_u64(struct json *j, const char *key, uint64_t v);
void json_bool(struct json *j, const char *key, bool v);
void json_null(struct json *j, const char *key);
void json_id(struct json *j, const char *key, uint64_t id);
/** Close the top level with a newline. */
void json_end(struct json *j);

/* ---- shell.c, complete.c, script.c ---- */

int cli_shell(struct cli *c);
int cli_script(struct cli *c, const char *path);
/** Fill @p out with completion candidates for @p prefix at word @p wordno of @p line. */
struct cli_cands {
	char **v;
	size_t n;
	size_t cap;
};
void complete_candidates(struct cli *c, int argc, char **argv, int wordno, const char *prefix,
			 struct cli_cands *out);
void cands_free(struct cli_cands *cs);

#endif /* BLOBCLI_CLI_H */
