/*
 * Data commands: import a file into a blob, export a blob to a file, fill
 * a blob with a byte. The mover is xfer.c.
 *
 * import records the file's exact length in the xattr CLI_SIZE_XATTR
 * (decimal text) so that export gives back the same bytes; a blob without
 * it exports whole (all its clusters).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* ------------------------------------------------------------ import */

/* Open the source and find its length. 0 or CLI_FAIL after one line. */
static int import_source(struct cli *c, const char *path, int *fd, uint64_t *len)
{
	struct stat st;
	off_t end;

	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0) {
		cli_err(c, "import: %s: %s", path, strerror(errno));
		return CLI_FAIL;
	}
	if (fstat(*fd, &st) == 0 && S_ISREG(st.st_mode)) {
		*len = (uint64_t)st.st_size;
		return 0;
	}
	end = S_ISBLK(st.st_mode) ? lseek(*fd, 0, SEEK_END) : -1;
	if (end < 0 || lseek(*fd, 0, SEEK_SET) != 0) {
		cli_err(c, "import: %s: not a regular file or block device", path);
		close(*fd);
		return CLI_FAIL;
	}
	*len = (uint64_t)end;
	return 0;
}

/* The target: a new blob, or @p id_arg resized to fit. */
static int import_target(struct cli *c, const char *id_arg, uint64_t len, bool thin,
			 struct bs_blob **b)
{
	struct bs_blob_opts o;
	bs_blob_id id;
	int rc;

	if (id_arg != NULL) {
		if ((rc = open_blob_arg(c, id_arg, b)) != 0)
			return rc;
		rc = call_resize(c, *b, bytes_to_clusters(c, len));
		if (rc == 0)
			return 0;
		cli_err(c, "import: blob 0x%" PRIx64 ": cannot resize: %s", bs_blob_get_id(*b),
			cli_strerror(rc));
		call_close(c, *b);
		return CLI_FAIL;
	}
	bs_blob_opts_init(&o, sizeof(o));
	o.num_clusters = bytes_to_clusters(c, len);
	o.thin_provision = thin;
	rc = call_create(c, &o, &id);
	if (rc == 0 && (rc = call_open(c, id, b)) != 0)
		call_delete(c, id);
	if (rc != 0) {
		cli_err(c, "import: cannot create the blob: %s", cli_strerror(rc));
		return CLI_FAIL;
	}
	cli_note_created(c, id);
	return 0;
}

/* Move the bytes, record the length, make it durable. 0 or -errno. */
static int import_data(struct cli *c, struct bs_blob *b, int fd, uint64_t len, bool fresh_thin)
{
	struct xfer_req r = {
		.kind = XFER_IMPORT, .blob = b, .fd = fd, .length = len,
		.skip_zero = fresh_thin, .label = "import",
	};
	char text[24];
	int rc = xfer_run(c, &r);

	snprintf(text, sizeof(text), "%" PRIu64, len);
	if (rc == 0)
		rc = call_set_xattr(c, b, CLI_SIZE_XATTR, text, (uint32_t)strlen(text));
	if (rc == 0)
		rc = call_sync(c, b);
	return rc;
}

static int import_parse(struct cli *c, int argc, char **argv, bool *thin)
{
	static const struct option opts[] = {
		{ "thin", no_argument, NULL, 't' }, { NULL, 0, NULL, 0 },
	};
	int opt, rc;

	*thin = false;
	while ((rc = cli_getopt(c, argc, argv, ":", opts, &opt)) == 0 && opt != -1)
		*thin = true;
	if (rc != 0)
		return rc;
	if (argc - optind < 1 || argc - optind > 2)
		return cli_bad_usage(c, "import", argc - optind < 1 ? "missing FILE" :
				     "unexpected argument");
	if (*thin && argc - optind == 2)
		return cli_bad_usage(c, "import", "--thin applies to a new blob only");
	return 0;
}

int cmd_import(struct cli *c, int argc, char **argv)
{
	const char *path, *id_arg;
	struct bs_blob *b;
	uint64_t len;
	bs_blob_id id;
	bool thin;
	int fd, rc;

	if ((rc = import_parse(c, argc, argv, &thin)) != 0)
		return rc;
	path = argv[optind];
	id_arg = argc - optind == 2 ? argv[optind + 1] : NULL;
	if ((rc = import_source(c, path, &fd, &len)) != 0)
		return rc;
	if ((rc = cli_store(c)) != 0 || (rc = import_target(c, id_arg, len, thin, &b)) != 0) {
		close(fd);
		return rc;
	}
	id = bs_blob_get_id(b);
	rc = import_data(c, b, fd, len, thin && id_arg == NULL);
	close(fd);
	if (rc != 0) {
		cli_err(c, "import: %s: %s%s", path, rc == -ENODATA ? "the file shrank while read" :
			cli_strerror(rc), id_arg == NULL ? " (new blob removed)" : "");
		call_close(c, b);
		if (id_arg == NULL && call_delete(c, id) == 0)
			c->ncreated--;
		return CLI_FAIL;
	}
	if ((rc = call_close(c, b)) != 0) {
		cli_err(c, "import: blob 0x%" PRIx64 ": close failed: %s", id, cli_strerror(rc));
		return CLI_FAIL;
	}
	printf("imported %s (%" PRIu64 " bytes) into blob 0x%" PRIx64 "\n", path, len, id);
	return CLI_OK;
}

/* ------------------------------------------------------------ export */

static int export_parse(struct cli *c, int argc, char **argv, bool *whole)
{
	static const struct option opts[] = {
		{ "whole", no_argument, NULL, 'w' }, { NULL, 0, NULL, 0 },
	};
	int opt, rc;

	*whole = false;
	while ((rc = cli_getopt(c, argc, argv, ":", opts, &opt)) == 0 && opt != -1)
		*whole = true;
	if (rc != 0)
		return rc;
	if (argc - optind != 2)
		return cli_bad_usage(c, "export", argc - optind < 2 ? "missing argument" :
				     "unexpected argument");
	return 0;
}

static int export_open(struct cli *c, const char *path, int *fd)
{
	if (strcmp(path, "-") == 0) {
		fflush(stdout);
		*fd = STDOUT_FILENO;
		return 0;
	}
	*fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (*fd >= 0)
		return 0;
	cli_err(c, "export: %s: %s", path, strerror(errno));
	return CLI_FAIL;
}

int cmd_export(struct cli *c, int argc, char **argv)
{
	struct xfer_req r = { .kind = XFER_EXPORT, .label = "export" };
	const char *path;
	bool whole, rec;
	bs_blob_id id;
	int rc;

	if ((rc = export_parse(c, argc, argv, &whole)) != 0 ||
	    (rc = open_blob_arg(c, argv[optind], &r.blob)) != 0)
		return rc;
	path = argv[optind + 1];
	id = bs_blob_get_id(r.blob);
	r.length = blob_byte_size(c, r.blob, &rec);
	if (whole)
		r.length = bs_blob_get_num_clusters(r.blob) * bs_get_cluster_size(c->bs);
	if ((rc = export_open(c, path, &r.fd)) != 0) {
		call_close(c, r.blob);
		return rc;
	}
	rc = xfer_run(c, &r);
	if (r.fd != STDOUT_FILENO && close(r.fd) != 0 && rc == 0)
		rc = -errno;
	call_close(c, r.blob);
	if (rc != 0) {
		cli_err(c, "export: %s: %s", path, cli_strerror(rc));
		if (r.fd != STDOUT_FILENO)
			unlink(path);
		return CLI_FAIL;
	}
	if (r.fd != STDOUT_FILENO)
		printf("exported %" PRIu64 " bytes of blob 0x%" PRIx64 " to %s\n", r.length, id,
		       path);
	return CLI_OK;
}

/* ------------------------------------------------------------ fill */

static int fill_parse(struct cli *c, int argc, char **argv, uint64_t *off, uint64_t *len,
		      bool *has_len, uint8_t *byte)
{
	static const struct option opts[] = {
		{ "offset", required_argument, NULL, 'o' },
		{ "length", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int opt, rc;

	*off = 0;
	*has_len = false;
	while ((rc = cli_getopt(c, argc, argv, ":", opts, &opt)) == 0 && opt != -1) {
		if (parse_size(optarg, opt == 'o' ? off : len) != 0)
			return cli_bad_usage(c, "fill", opt == 'o' ? "bad --offset" : "bad --length");
		*has_len |= opt == 'l';
	}
	if (rc != 0)
		return rc;
	if (argc - optind != 2)
		return cli_bad_usage(c, "fill", argc - optind < 2 ? "missing argument" :
				     "unexpected argument");
	if (parse_u64(argv[optind + 1], &v) != 0 || v > 255)
		return cli_bad_usage(c, "fill", "BYTE must be 0..255 (like 0x5a)");
	*byte = (uint8_t)v;
	return 0;
}

/* Range checks against the open blob. 0 or an exit code after one line. */
static int fill_range(struct cli *c, struct bs_blob *b, uint64_t off, uint64_t *len,
		      bool has_len)
{
	uint64_t whole = bs_blob_get_num_clusters(b) * bs_get_cluster_size(c->bs);
	uint64_t unit = bs_get_io_unit_size(c->bs);
	char sz[16];

	if (!has_len)
		*len = off < whole ? whole - off : 0;
	if (off % unit != 0 || *len % unit != 0) {
		cli_err(c, "fill: --offset and --length must be multiples of the io unit (%" PRIu64
			" bytes)", unit);
		return CLI_USAGE;
	}
	if (off > whole || *len > whole - off) {
		cli_err(c, "fill: range past the end of blob 0x%" PRIx64 " (%s)", bs_blob_get_id(b),
			fmt_size(whole, sz, sizeof(sz)));
		return CLI_FAIL;
	}
	return 0;
}

int cmd_fill(struct cli *c, int argc, char **argv)
{
	struct xfer_req r = { .kind = XFER_FILL, .label = "fill" };
	bool has_len;
	int rc;

	if ((rc = fill_parse(c, argc, argv, &r.offset, &r.length, &has_len, &r.pattern)) != 0 ||
	    (rc = open_blob_arg(c, argv[optind], &r.blob)) != 0)
		return rc;
	if ((rc = fill_range(c, r.blob, r.offset, &r.length, has_len)) != 0) {
		call_close(c, r.blob);
		return rc;
	}
	rc = xfer_run(c, &r);
	if (rc == 0)
		rc = call_sync(c, r.blob);
	if (rc != 0) {
		cli_err(c, "fill: blob 0x%" PRIx64 ": %s", bs_blob_get_id(r.blob), cli_strerror(rc));
		call_close(c, r.blob);
		return CLI_FAIL;
	}
	printf("filled %" PRIu64 " bytes of blob 0x%" PRIx64 " at offset %" PRIu64 " with 0x%02x\n",
	       r.length, bs_blob_get_id(r.blob), r.offset, r.pattern);
	return call_close(c, r.blob) == 0 ? CLI_OK : CLI_FAIL;
}
