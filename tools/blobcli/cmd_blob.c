/*
 * Blob commands: list, create, resize, delete, xattr.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int open_blob_arg(struct cli *c, const char *s, struct bs_blob **blob)
{
	bs_blob_id id;
	int rc = parse_id(c, s, &id);

	if (rc != 0)
		return rc;
	if ((rc = cli_store(c)) != 0)
		return rc;
	rc = call_open(c, id, blob);
	if (rc != 0) {
		cli_err(c, "blob 0x%" PRIx64 ": %s", id, cli_strerror(rc));
		return CLI_FAIL;
	}
	return 0;
}

/* Close after a command; a failed close (its sync) is the command's failure. */
static int close_blob(struct cli *c, struct bs_blob *blob, int rc)
{
	bs_blob_id id = bs_blob_get_id(blob);
	int err = call_close(c, blob);

	if (err != 0 && rc == 0) {
		cli_err(c, "blob 0x%" PRIx64 ": close failed: %s", id, cli_strerror(err));
		return CLI_FAIL;
	}
	return rc;
}

/* True if the value is printable ASCII (shown as text). */
static bool is_text(const void *v, uint32_t len)
{
	const unsigned char *p = v;

	for (uint32_t i = 0; i < len; i++)
		if (p[i] < 0x20 || p[i] >= 0x7f)
			return false;
	return true;
}

/* ------------------------------------------------------------ list */

static void list_xattrs_json(struct json *j, struct bs_blob *b)
{
	json_obj_begin(j, "xattrs");
	for (uint32_t i = 0; i < bs_blob_get_xattr_count(b); i++) {
		const char *name = bs_blob_get_xattr_name(b, i);
		const void *v;
		uint32_t len;
		char *hex;

		if (name == NULL || bs_blob_get_xattr(b, name, &v, &len) != 0)
			continue;
		if (is_text(v, len)) {
			json_strn(j, name, v, len);
			continue;
		}
		hex = malloc(2 * (size_t)len + 5);
		if (hex == NULL)
			continue;
		strcpy(hex, "hex:");
		for (uint32_t k = 0; k < len; k++)
			sprintf(hex + 4 + 2 * k, "%02x", ((const unsigned char *)v)[k]);
		json_str(j, name, hex);
		free(hex);
	}
	json_obj_end(j);
}

/* Parent (or null) and the ids of the clones. */
static void list_family_json(struct cli *c, struct json *j, bs_blob_id id)
{
	bs_blob_id parent = 0, clones[64];
	size_t n = sizeof(clones) / sizeof(clones[0]);

	if (bs_blob_get_parent(c->bs, id, &parent) == 0 && parent != 0)
		json_id(j, "parent", parent);
	else
		json_null(j, "parent");
	if (bs_blob_get_clones(c->bs, id, clones, &n) != 0 && n <= 64)
		n = 0;
	json_arr_begin(j, "clones");
	for (size_t i = 0; i < n && i < 64; i++)
		json_id(j, NULL, clones[i]);
	json_arr_end(j);
}

static void list_one_json(struct cli *c, struct json *j, bs_blob_id id, struct bs_blob *b,
			  int err)
{
	bool rec;

	json_obj_begin(j, NULL);
	json_id(j, "id", id);
	if (b == NULL) {
		json_str(j, "error", cli_strerror(err));
		json_bool(j, "corrupt", err == -EILSEQ || err == 0);
		json_obj_end(j);
		return;
	}
	json_u64(j, "size", blob_byte_size(c, b, &rec));
	json_bool(j, "size_recorded", rec);
	json_u64(j, "clusters", bs_blob_get_num_clusters(b));
	json_u64(j, "allocated_clusters", bs_blob_get_num_allocated_clusters(b));
	json_bool(j, "thin", bs_blob_is_thin(b));
	json_bool(j, "read_only", bs_blob_is_read_only(b));
	list_family_json(c, j, id);
	list_xattrs_json(j, b);
	json_obj_end(j);
}

static void list_xattrs_human(struct bs_blob *b)
{
	uint32_t n = bs_blob_get_xattr_count(b);

	for (uint32_t i = 0; i < n; i++) {
		const char *name = bs_blob_get_xattr_name(b, i);
		const void *v;
		uint32_t len;

		if (name == NULL || bs_blob_get_xattr(b, name, &v, &len) != 0)
			continue;
		if (is_text(v, len) && len <= 32)
			printf("%s%s=%.*s", i ? " " : "", name, (int)len, (const char *)v);
		else
			printf("%s%s=(%u bytes)", i ? " " : "", name, len);
	}
	if (n == 0)
		printf("-");
}

static void list_one_human(struct cli *c, bs_blob_id id, struct bs_blob *b, int err)
{
	char sz[16], flags[24], parent[24] = "-";
	bs_blob_id p = 0;
	bool rec;

	if (b == NULL) {
		printf("0x%-16" PRIx64 " %10s %9s %9s  %-12s %-18s %s\n", id, "?", "?", "?",
		       err == -EILSEQ || err == 0 ? "CORRUPT" : "ERROR", "-", cli_strerror(err));
		return;
	}
	snprintf(flags, sizeof(flags), "%s%s", bs_blob_is_thin(b) ? "thin" : "thick",
		 bs_blob_is_read_only(b) ? ",ro" : "");
	if (bs_blob_get_parent(c->bs, id, &p) == 0 && p != 0)
		snprintf(parent, sizeof(parent), "0x%" PRIx64, p);
	printf("0x%-16" PRIx64 " %10s %9" PRIu64 " %9" PRIu64 "  %-12s %-18s ", id,
	       fmt_size(blob_byte_size(c, b, &rec), sz, sizeof(sz)), bs_blob_get_num_clusters(b),
	       bs_blob_get_num_allocated_clusters(b), flags, parent);
	list_xattrs_human(b);
	printf("\n");
}

/* Print one blob, opening it; a blob that fails to open is listed as such. */
static void list_one(struct cli *c, struct json *j, bs_blob_id id, int known_err)
{
	struct bs_blob *b = NULL;
	int err = known_err;

	if (err == 0 && (err = call_open(c, id, &b)) != 0)
		b = NULL;
	if (j != NULL)
		list_one_json(c, j, id, b, err);
	else
		list_one_human(c, id, b, err);
	if (b != NULL)
		call_close(c, b);
}

int cmd_list(struct cli *c, int argc, char **argv)
{
	struct json j;
	bool json;
	int rc = cli_json_only(c, "list", argc, argv, &json);

	if (rc != 0)
		return rc;
	if (json) {
		json_init(&j, stdout);
		json_obj_begin(&j, NULL);
		json_arr_begin(&j, "blobs");
	} else {
		printf("%-18s %10s %9s %9s  %-12s %-18s %s\n", "ID", "SIZE", "CLUSTERS", "ALLOCATED",
		       "FLAGS", "PARENT", "XATTRS");
	}
	for (bs_blob_id id = bs_iter_first(c->bs); id != BS_BLOB_ID_INVALID;
	     id = bs_iter_next(c->bs, id))
		list_one(c, json ? &j : NULL, id, 0);
	for (bs_blob_id id = bs_iter_corrupt(c->bs, BS_BLOB_ID_INVALID); id != BS_BLOB_ID_INVALID;
	     id = bs_iter_corrupt(c->bs, id))
		list_one(c, json ? &j : NULL, id, -EILSEQ);
	if (json) {
		json_arr_end(&j);
		json_obj_end(&j);
		json_end(&j);
	}
	return CLI_OK;
}

/* ------------------------------------------------------------ create */

struct create_args {
	struct bs_blob_opts o;
	struct bs_xattr xattrs[16];
	uint64_t bytes;
	bool have_size;
};

int parse_xattr_arg(struct cli *c, const char *cmd, char *arg, struct bs_xattr *x)
{
	char *eq = strchr(arg, '=');

	if (eq == NULL || eq == arg)
		return cli_bad_usage(c, cmd, "--xattr wants NAME=VALUE");
	*eq = '\0';
	x->name = arg;
	x->value = eq + 1;
	x->value_len = (uint32_t)strlen(eq + 1);
	return 0;
}

static int create_xattr(struct cli *c, struct create_args *a, char *arg)
{
	if (a->o.xattr_count == sizeof(a->xattrs) / sizeof(a->xattrs[0]))
		return cli_bad_usage(c, "create", "too many --xattr (16 at most)");
	if (parse_xattr_arg(c, "create", arg, &a->xattrs[a->o.xattr_count]) != 0)
		return CLI_USAGE;
	a->o.xattr_count++;
	return 0;
}

static int create_parse(struct cli *c, int argc, char **argv, struct create_args *a)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "clusters", required_argument, NULL, 'n' },
		{ "thin", no_argument, NULL, 't' },
		{ "xattr", required_argument, NULL, 'x' },
		{ NULL, 0, NULL, 0 },
	};
	int opt, rc;

	while ((rc = cli_getopt(c, argc, argv, ":", opts, &opt)) == 0 && opt != -1) {
		if (opt == 's' && parse_size(optarg, &a->bytes) != 0)
			return cli_bad_usage(c, "create", "bad --size (like 64M, 1G, 4096)");
		if (opt == 'n' && parse_u64(optarg, &a->o.num_clusters) != 0)
			return cli_bad_usage(c, "create", "bad --clusters");
		if (opt == 'x' && (rc = create_xattr(c, a, optarg)) != 0)
			return rc;
		a->o.thin_provision |= opt == 't';
		a->have_size |= opt == 's';
	}
	if (rc != 0)
		return rc;
	if (optind < argc)
		return cli_bad_usage(c, "create", "unexpected argument");
	if (a->have_size && a->o.num_clusters != 0)
		return cli_bad_usage(c, "create", "give --size or --clusters, not both");
	return 0;
}

int cmd_create(struct cli *c, int argc, char **argv)
{
	struct create_args a;
	bs_blob_id id;
	char sz[16];
	int rc;

	memset(&a, 0, sizeof(a));
	bs_blob_opts_init(&a.o, sizeof(a.o));
	a.o.xattrs = a.xattrs;
	if ((rc = create_parse(c, argc, argv, &a)) != 0 || (rc = cli_store(c)) != 0)
		return rc;
	if (a.have_size)
		a.o.num_clusters = bytes_to_clusters(c, a.bytes);
	rc = call_create(c, &a.o, &id);
	if (rc != 0) {
		cli_err(c, "create: %s", rc == -EINVAL ? "bad xattr name or value" : cli_strerror(rc));
		return CLI_FAIL;
	}
	cli_note_created(c, id);
	printf("created blob 0x%" PRIx64 ": %" PRIu64 " clusters (%s), %s\n", id,
	       a.o.num_clusters, fmt_size(a.o.num_clusters * bs_get_cluster_size(c->bs), sz,
					  sizeof(sz)), a.o.thin_provision ? "thin" : "thick");
	return CLI_OK;
}

/* ------------------------------------------------------------ resize */

/* A recorded byte length past the new end is cut to it (export stays exact). */
static int resize_fix_size(struct cli *c, struct bs_blob *b)
{
	bool rec;
	uint64_t whole = bs_blob_get_num_clusters(b) * bs_get_cluster_size(c->bs);
	const void *v;
	uint32_t len;
	char text[24];

	if (bs_blob_get_xattr(b, CLI_SIZE_XATTR, &v, &len) != 0)
		return 0;
	if (blob_byte_size(c, b, &rec) <= whole && rec)
		return 0;
	snprintf(text, sizeof(text), "%" PRIu64, whole);
	return call_set_xattr(c, b, CLI_SIZE_XATTR, text, (uint32_t)strlen(text));
}

static int resize_parse(struct cli *c, int argc, char **argv, uint64_t *bytes, uint64_t *n,
			bool *by_clusters)
{
	static const struct option opts[] = {
		{ "clusters", required_argument, NULL, 'n' }, { NULL, 0, NULL, 0 },
	};
	int opt, rc;

	*by_clusters = false;
	while ((rc = cli_getopt(c, argc, argv, ":", opts, &opt)) == 0 && opt != -1) {
		if (parse_u64(optarg, n) != 0)
			return cli_bad_usage(c, "resize", "bad --clusters");
		*by_clusters = true;
	}
	if (rc != 0)
		return rc;
	if (argc - optind != (*by_clusters ? 1 : 2))
		return cli_bad_usage(c, "resize", "wrong number of arguments");
	if (!*by_clusters && parse_size(argv[optind + 1], bytes) != 0)
		return cli_bad_usage(c, "resize", "bad SIZE (like 64M, 1G, 4096)");
	return 0;
}

int cmd_resize(struct cli *c, int argc, char **argv)
{
	uint64_t bytes = 0, n = 0;
	bool by_clusters;
	struct bs_blob *b;
	int rc;

	if ((rc = resize_parse(c, argc, argv, &bytes, &n, &by_clusters)) != 0 ||
	    (rc = open_blob_arg(c, argv[optind], &b)) != 0)
		return rc;
	if (!by_clusters)
		n = bytes_to_clusters(c, bytes);
	rc = call_resize(c, b, n);
	if (rc == 0)
		rc = resize_fix_size(c, b);
	if (rc == 0)
		rc = call_sync(c, b);
	if (rc != 0) {
		cli_err(c, "resize: blob 0x%" PRIx64 ": %s", bs_blob_get_id(b),
			rc == -EINVAL ? "size too large" : cli_strerror(rc));
		return close_blob(c, b, CLI_FAIL);
	}
	printf("resized blob 0x%" PRIx64 " to %" PRIu64 " clusters\n", bs_blob_get_id(b), n);
	return close_blob(c, b, CLI_OK);
}

/* ------------------------------------------------------------ delete */

int cmd_delete(struct cli *c, int argc, char **argv)
{
	bs_blob_id id;
	int rc;

	if (argc < 2)
		return cli_bad_usage(c, "delete", "missing blob id");
	for (int i = 1; i < argc; i++)
		if ((rc = parse_id(c, argv[i], &id)) != 0)
			return rc;
	if ((rc = cli_store(c)) != 0)
		return rc;
	for (int i = 1; i < argc; i++) {
		parse_id(c, argv[i], &id);
		rc = call_delete(c, id);
		if (rc != 0) {
			cli_err(c, "delete: blob 0x%" PRIx64 ": %s", id, cli_strerror(rc));
			return CLI_FAIL;
		}
		printf("deleted blob 0x%" PRIx64 "\n", id);
	}
	return CLI_OK;
}

/* ------------------------------------------------------------ xattr */

static int xattr_print(struct cli *c, struct bs_blob *b, const char *name, bool hex)
{
	const void *v;
	uint32_t len;

	if (bs_blob_get_xattr(b, name, &v, &len) != 0) {
		cli_err(c, "xattr: blob 0x%" PRIx64 ": no xattr '%s'", bs_blob_get_id(b), name);
		return CLI_FAIL;
	}
	if (!hex && is_text(v, len)) {
		printf("%.*s\n", (int)len, (const char *)v);
		return CLI_OK;
	}
	for (uint32_t i = 0; i < len; i++)
		printf("%02x", ((const unsigned char *)v)[i]);
	printf("\n");
	return CLI_OK;
}

static int xattr_list(struct bs_blob *b)
{
	for (uint32_t i = 0; i < bs_blob_get_xattr_count(b); i++) {
		const char *name = bs_blob_get_xattr_name(b, i);
		const void *v;
		uint32_t len;

		if (name == NULL || bs_blob_get_xattr(b, name, &v, &len) != 0)
			continue;
		if (is_text(v, len))
			printf("%s=%.*s\n", name, (int)len, (const char *)v);
		else
			printf("%s=(%u bytes of binary)\n", name, len);
	}
	return CLI_OK;
}

/* set/rm: change, sync, report. */
static int xattr_change(struct cli *c, struct bs_blob *b, char **argv, bool set)
{
	int rc = set ? call_set_xattr(c, b, argv[3], argv[4], (uint32_t)strlen(argv[4])) :
		       call_remove_xattr(c, b, argv[3]);

	if (rc == 0)
		rc = call_sync(c, b);
	if (rc == 0)
		return CLI_OK;
	if (rc == -ENOENT)
		cli_err(c, "xattr: blob 0x%" PRIx64 ": no xattr '%s'", bs_blob_get_id(b), argv[3]);
	else if (rc == -EINVAL)
		cli_err(c, "xattr: bad name or value (names 1-255 bytes, values up to 64 KiB)");
	else
		cli_err(c, "xattr: blob 0x%" PRIx64 ": %s", bs_blob_get_id(b), cli_strerror(rc));
	return CLI_FAIL;
}

int cmd_xattr(struct cli *c, int argc, char **argv)
{
	static const struct { const char *sub; int nargs; } subs[] = {
		{ "set", 5 }, { "get", 4 }, { "rm", 4 }, { "list", 3 },
	};
	bool hex = argc > 1 && strcmp(argv[argc - 1], "--hex") == 0;
	struct bs_blob *b;
	size_t i;
	int rc;

	argc -= hex;
	for (i = 0; i < 4; i++)
		if (argc > 1 && strcmp(argv[1], subs[i].sub) == 0)
			break;
	if (i == 4)
		return cli_bad_usage(c, "xattr", argc > 1 ? "unknown subcommand" :
				     "missing subcommand");
	if (argc != subs[i].nargs)
		return cli_bad_usage(c, "xattr", "wrong number of arguments");
	if ((rc = open_blob_arg(c, argv[2], &b)) != 0)
		return rc;
	if (i == 0 || i == 2)
		rc = xattr_change(c, b, argv, i == 0);
	else if (i == 1)
		rc = xattr_print(c, b, argv[3], hex);
	else
		rc = xattr_list(b);
	return close_blob(c, b, rc);
}
