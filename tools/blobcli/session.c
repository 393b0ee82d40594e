/*
 * Session: the device, the loaded store and how errors reach the operator.
 *
 * The device opens on first use and the store loads on first use, so
 * `help` needs neither and `dump` needs no store. A RAM device (--ram) is
 * initialized with defaults on first use unless the first command is init.
 *
 * The library logs to stderr by default; blobcli routes its lines away
 * (only -v shows them, or BLOBSTORE_LOG set by the user) so that every
 * failure is exactly one line of blobcli's own on stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <blobstore/file_dev.h>
#include <blobstore/log.h>
#include <blobstore/ram_dev.h>

#include "cli.h"

/* Library log lines, when quiet: dropped. */
static void cli_log_drop(void *arg, enum bs_log_level level, const char *line)
{
}

void cli_setup(struct cli *c)
{
	c->lock_fd = -1;
	if (getenv("BLOBSTORE_LOG") != NULL)
		return; /* the user asked for the library's lines */
	if (c->verbose == 0) {
		bs_log_set_hook(cli_log_drop, NULL);
		return;
	}
	bs_log_set_level(c->verbose == 1 ? BS_LOG_NOTICE :
			 c->verbose == 2 ? BS_LOG_INFO : BS_LOG_DEBUG);
}

void cli_err(struct cli *c, const char *fmt, ...)
{
	va_list ap;

	if (c->quiet)
		return;
	fflush(stdout); /* keep the order of a shell or script transcript */
	fputs("blobcli: ", stderr);
	if (c->where != NULL)
		fprintf(stderr, "%s: ", c->where);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

const char *cli_strerror(int err)
{
	switch (err) {
	case -ENOENT: return "no such blob";
	case -EILSEQ: return "metadata is corrupt";
	case -ENOSPC: return "not enough space in the store";
	case -EROFS: return "the store is read-only";
	case -EBUSY: return "busy (blob is open)";
	case -ECANCELED: return "interrupted";
	case -EPERM: return "not permitted (read-only blob or metadata)";
	default: return strerror(-err);
	}
}

/* Advisory lock on the device path: two blobcli on one store is an error. */
static int cli_lock(struct cli *c)
{
	c->lock_fd = open(c->path, O_RDONLY | O_CLOEXEC);
	if (c->lock_fd < 0)
		return 0; /* the device open reports what is wrong */
	if (flock(c->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		cli_err(c, "%s: in use by another process (locked)", c->path);
		close(c->lock_fd);
		c->lock_fd = -1;
		return CLI_NOLOAD;
	}
	return 0;
}

static int cli_open_ram(struct cli *c)
{
	struct bs_ram_dev_opts ro;
	int rc;

	bs_ram_dev_opts_init(&ro);
	ro.block_len = c->block_size ? c->block_size : 4096;
	ro.block_count = c->ram_size / ro.block_len;
	ro.volatile_cache = false;
	rc = bs_ram_dev_create(&ro, &c->dev);
	if (rc != 0) {
		cli_err(c, "cannot make a RAM device of %llu bytes: %s",
			(unsigned long long)c->ram_size, strerror(-rc));
		return CLI_NOLOAD;
	}
	c->ram_fresh = true;
	return 0;
}

static int cli_open_file(struct cli *c)
{
	struct bs_file_dev_opts fo;
	int rc;

	if (c->create_size == 0 && access(c->path, F_OK) != 0) {
		cli_err(c, "%s: %s (use --create SIZE to make one)", c->path, strerror(errno));
		return CLI_NOLOAD;
	}
	if (c->create_size != 0 && access(c->path, F_OK) != 0) {
		int fd = open(c->path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

		if (fd < 0) {
			cli_err(c, "%s: cannot create: %s", c->path, strerror(errno));
			return CLI_NOLOAD;
		}
		close(fd);
	}
	if (c->lock_fd < 0 && (rc = cli_lock(c)) != 0)
		return rc;
	bs_file_dev_opts_init(&fo);
	fo.block_len = c->block_size;
	fo.create_size = c->create_size;
	rc = bs_file_dev_open(c->path, &fo, &c->dev);
	if (rc != 0) {
		cli_err(c, "%s: cannot open the device: %s", c->path, strerror(-rc));
		return CLI_NOLOAD;
	}
	c->dev_block_len = c->dev->block_len;
	return 0;
}

int cli_dev(struct cli *c)
{
	if (c->dev != NULL)
		return 0;
	if (c->ram_size != 0)
		return cli_open_ram(c);
	if (c->path == NULL) {
		cli_err(c, "no store given: use -f FILE (or --ram SIZE)");
		return CLI_USAGE;
	}
	return cli_open_file(c);
}

/* One line for a failed load, worded for what the operator can do. */
static void cli_load_err(struct cli *c, int rc)
{
	const char *name = c->path ? c->path : "RAM device";

	if (rc == -EILSEQ)
		cli_err(c, "%s: no valid store (not initialized, or both super blocks corrupt:"
			" see 'dump'); 'init' makes one", name);
	else if (rc == -EOPNOTSUPP)
		cli_err(c, "%s: the store uses a newer format or unknown features", name);
	else if (rc == -ERANGE)
		cli_err(c, "%s: the store is larger than the device (truncated file?)", name);
	else if (rc == -EINVAL)
		cli_err(c, "%s: the device's block size differs from the store's", name);
	else
		cli_err(c, "%s: cannot load the store: %s", name, strerror(-rc));
}

/*
 * Load the store. A file store made with another io unit than the one the
 * device was opened with (512 vs 4096) is found by reopening the device
 * with the other one, unless --block-size was given.
 */
int cli_load(struct cli *c, const struct bs_opts *opts)
{
	int rc = call_load(c, opts), rc2;

	if (rc != -EINVAL || c->block_size != 0 || c->ram_size != 0)
		return rc;
	call_dev_close(c);
	c->block_size = c->dev_block_len == 512 ? 4096 : 512;
	rc2 = cli_open_file(c);
	if (rc2 == 0 && (rc2 = call_load(c, opts)) == 0)
		return 0;
	if (c->dev != NULL)
		call_dev_close(c);
	c->block_size = 0;
	cli_open_file(c);
	return rc;
}

int cli_store(struct cli *c)
{
	struct bs_opts opts;
	int rc;

	if (c->bs != NULL)
		return 0;
	rc = cli_dev(c);
	if (rc != 0)
		return rc;
	bs_opts_init(&opts, sizeof(opts));
	/* A new RAM device reads zeros already: clearing it would only fault
	 * in every page. Clusters are zeroed as they are allocated instead. */
	opts.clear_method = BS_CLEAR_NONE;
	rc = c->ram_fresh ? call_init(c, &opts) : cli_load(c, &opts);
	if (rc != 0) {
		cli_load_err(c, rc);
		return CLI_NOLOAD;
	}
	c->initialized = c->ram_fresh;
	c->ram_fresh = false;
	return 0;
}

int cli_unload(struct cli *c)
{
	int rc;

	if (c->bs == NULL)
		return 0;
	rc = call_unload(c);
	if (rc != 0) {
		cli_err(c, "unload failed: %s (the next load recovers)", cli_strerror(rc));
		return CLI_FAIL;
	}
	return 0;
}

int cli_close(struct cli *c)
{
	int rc = cli_unload(c);

	if (c->dev != NULL)
		call_dev_close(c);
	if (c->lock_fd >= 0) {
		close(c->lock_fd);
		c->lock_fd = -1;
	}
	return rc;
}

void cli_note_created(struct cli *c, bs_blob_id id)
{
	if (c->ncreated == c->created_cap) {
		size_t cap = c->created_cap ? 2 * c->created_cap : 16;
		bs_blob_id *v = realloc(c->created, cap * sizeof(*v));

		if (v == NULL)
			return;
		c->created = v;
		c->created_cap = cap;
	}
	c->created[c->ncreated++] = id;
}
