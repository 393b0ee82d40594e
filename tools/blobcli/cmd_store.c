/*
 * Store-wide commands: init, info, check, recover, dump, super.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <blobstore/dump.h>
#include <blobstore/file_dev.h>

#include "cli.h"

/* ------------------------------------------------------------ init */

static const struct option g_init_opts[] = {
	{ "cluster-size", required_argument, NULL, 'c' },
	{ "max-blobs", required_argument, NULL, 'm' },
	{ "md-pages", required_argument, NULL, 'p' },
	{ "clear", required_argument, NULL, 'C' },
	{ "bstype", required_argument, NULL, 't' },
	{ "force", no_argument, NULL, 'F' },
	{ NULL, 0, NULL, 0 },
};

static int init_clear_method(const char *s, enum bs_clear_method *m)
{
	if (strcmp(s, "unmap") == 0)
		*m = BS_CLEAR_UNMAP;
	else if (strcmp(s, "zeroes") == 0 || strcmp(s, "zeros") == 0)
		*m = BS_CLEAR_WRITE_ZEROES;
	else if (strcmp(s, "none") == 0)
		*m = BS_CLEAR_NONE;
	else
		return -EINVAL;
	return 0;
}

/* One option of init into @p o. 0 or CLI_USAGE after one line. */
static int init_opt(struct cli *c, int opt, struct bs_opts *o, bool *force, bool *clear_set)
{
	uint64_t v = 0;
	int rc = 0;

	switch (opt) {
	case 'c':
		rc = parse_size(optarg, &v);
		if (rc == 0 && v > UINT32_MAX)
			rc = -EINVAL;
		o->cluster_size = (uint32_t)v;
		break;
	case 'm': rc = parse_u64(optarg, &o->max_blobs); break;
	case 'p': rc = parse_u64(optarg, &o->md_pool_pages); break;
	case 'C': rc = init_clear_method(optarg, &o->clear_method); *clear_set = true; break;
	case 't':
		if (strlen(optarg) > sizeof(o->bstype))
			rc = -EINVAL;
		else
			strncpy((char *)o->bstype, optarg, sizeof(o->bstype));
		break;
	case 'F': *force = true; break;
	default: rc = -EINVAL; break;
	}
	if (rc != 0) {
		char why[128];

		snprintf(why, sizeof(why), "bad value '%s' for --%s", optarg ? optarg : "",
			 opt == 'c' ? "cluster-size" : opt == 'm' ? "max-blobs" :
			 opt == 'p' ? "md-pages" : opt == 'C' ? "clear" : "bstype (16 bytes max)");
		return cli_bad_usage(c, "init", why);
	}
	return 0;
}

/* Refuse to overwrite a store unless --force. 0 or an exit code. */
static int init_probe(struct cli *c)
{
	struct bs_opts o;
	int rc;

	bs_opts_init(&o, sizeof(o));
	rc = call_load(c, &o);
	if (rc == 0) {
		cli_unload(c);
		cli_err(c, "init: %s already holds a store: add --force to erase it", c->path);
		return CLI_FAIL;
	}
	if (rc != -EILSEQ) {
		cli_err(c, "init: %s holds something store-like (%s): add --force to erase it",
			c->path, cli_strerror(rc));
		return CLI_FAIL;
	}
	return 0;
}

static int init_run(struct cli *c, const struct bs_opts *o)
{
	char a[16], b[16];
	int rc = call_init(c, o);

	if (rc == -EINVAL) {
		cli_err(c, "init: options refused (cluster size must be a power of two from 4K to"
			" 1G; the device block must divide 4096)");
		return CLI_USAGE;
	}
	if (rc != 0) {
		cli_err(c, "init: %s", rc == -ENOSPC ? "device too small for the metadata" :
			cli_strerror(rc));
		return CLI_FAIL;
	}
	c->ram_fresh = false;
	c->initialized = true;
	printf("initialized %s: %" PRIu64 " data clusters of %s (%s), %" PRIu64 " blob slots\n",
	       c->path ? c->path : "RAM device", bs_get_total_data_cluster_count(c->bs),
	       fmt_size(bs_get_cluster_size(c->bs), a, sizeof(a)),
	       fmt_size(bs_get_total_data_cluster_count(c->bs) * bs_get_cluster_size(c->bs), b,
			sizeof(b)), bs_get_max_blobs(c->bs));
	return CLI_OK;
}

int cmd_init(struct cli *c, int argc, char **argv)
{
	struct bs_opts o;
	bool force = false, clear_set = false;
	int opt, rc;

	bs_opts_init(&o, sizeof(o));
	while ((rc = cli_getopt(c, argc, argv, ":", g_init_opts, &opt)) == 0 && opt != -1)
		if ((rc = init_opt(c, opt, &o, &force, &clear_set)) != 0)
			return rc;
	if (rc != 0)
		return rc;
	if (c->ram_size != 0 && !clear_set)
		o.clear_method = BS_CLEAR_NONE; /* a new RAM device reads zeros already */
	if (optind < argc)
		return cli_bad_usage(c, "init", "unexpected argument");
	if (c->bs != NULL && !force && c->ram_size == 0) {
		cli_err(c, "init: a store is loaded: add --force to erase it");
		return CLI_FAIL;
	}
	if ((rc = cli_unload(c)) != 0 || (rc = cli_dev(c)) != 0)
		return rc;
	if (!force && c->ram_size == 0 && (rc = init_probe(c)) != 0)
		return rc;
	return init_run(c, &o);
}

/* ------------------------------------------------------------ info */

struct info {
	uint64_t blobs;
	uint64_t corrupt;
	bs_blob_id super;
	bool has_super;
	struct bs_load_report lr;
	uint64_t cs;
	uint64_t total;
	uint64_t free;
};

static void info_gather(struct cli *c, struct info *in)
{
	memset(in, 0, sizeof(*in));
	for (bs_blob_id id = bs_iter_first(c->bs); id != BS_BLOB_ID_INVALID;
	     id = bs_iter_next(c->bs, id))
		in->blobs++;
	for (bs_blob_id id = bs_iter_corrupt(c->bs, BS_BLOB_ID_INVALID); id != BS_BLOB_ID_INVALID;
	     id = bs_iter_corrupt(c->bs, id))
		in->corrupt++;
	in->has_super = bs_get_super(c->bs, &in->super) == 0;
	bs_get_load_report(c->bs, &in->lr);
	in->cs = bs_get_cluster_size(c->bs);
	in->total = bs_get_total_data_cluster_count(c->bs);
	in->free = bs_get_free_cluster_count(c->bs);
}

static const char *dev_kind(struct cli *c)
{
	const char *backend = bs_file_dev_backend(c->dev);
	bool blk = (c->dev->flags & BS_DEV_F_BLOCKDEV) != 0;

	if (c->ram_size != 0 || backend == NULL)
		return "RAM";
	if (strcmp(backend, "psync") == 0)
		return blk ? "block device, pread/pwrite" : "file, pread/pwrite";
	return blk ? "block device, io_uring" : "file, io_uring";
}

static void info_bstype(const uint8_t *t, char *buf, size_t len)
{
	size_t n = strnlen((const char *)t, 16);
	bool text = true;

	for (size_t i = n; i < 16; i++)
		text = text && t[i] == 0;
	for (size_t i = 0; i < n; i++)
		text = text && t[i] >= 0x20 && t[i] < 0x7f;
	if (text) {
		snprintf(buf, len, "%.*s", (int)n, (const char *)t);
		return;
	}
	for (size_t i = 0; i < 16 && 2 * i + 2 < len; i++)
		snprintf(buf + 2 * i, len - 2 * i, "%02x", t[i]);
}

static void info_json(struct cli *c, const struct info *in)
{
	struct json j;
	char bstype[40];

	info_bstype(bs_get_bstype(c->bs), bstype, sizeof(bstype));
	json_init(&j, stdout);
	json_obj_begin(&j, NULL);
	json_str(&j, "device", c->path ? c->path : "ram");
	json_str(&j, "device_kind", dev_kind(c));
	json_u64(&j, "device_bytes", c->dev->block_count * c->dev->block_len);
	json_u64(&j, "cluster_size", in->cs);
	json_u64(&j, "page_size", bs_get_page_size(c->bs));
	json_u64(&j, "io_unit", bs_get_io_unit_size(c->bs));
	json_u64(&j, "data_clusters", in->total);
	json_u64(&j, "free_clusters", in->free);
	json_u64(&j, "used_clusters", in->total - in->free);
	json_u64(&j, "max_blobs", bs_get_max_blobs(c->bs));
	json_u64(&j, "blobs", in->blobs);
	json_u64(&j, "corrupt_blobs", in->corrupt);
	if (in->has_super)
		json_id(&j, "super_blob", in->super);
	else
		json_null(&j, "super_blob");
	json_str(&j, "bstype", bstype);
	json_bool(&j, "clean", in->lr.was_clean);
	json_bool(&j, "recovered", in->lr.recovered);
	json_u64(&j, "load_usec", in->lr.usec);
	json_bool(&j, "read_only", bs_is_read_only(c->bs));
	json_u64(&j, "error", (uint64_t)-bs_get_error(c->bs));
	json_obj_end(&j);
	json_end(&j);
}

static void info_human(struct cli *c, const struct info *in)
{
	char a[16], b[16], d[16], bstype[40];
	uint64_t used = in->total - in->free;

	info_bstype(bs_get_bstype(c->bs), bstype, sizeof(bstype));
	printf("device      %s (%s), %s, io unit %" PRIu64 " B\n", c->path ? c->path : "ram",
	       dev_kind(c), fmt_size(c->dev->block_count * c->dev->block_len, a, sizeof(a)),
	       bs_get_io_unit_size(c->bs));
	printf("state       %s in %.1f ms%s%s\n", c->initialized ? "initialized" :
	       in->lr.was_clean ? "clean: loaded from masks" : "recovered: was not cleanly "
	       "unloaded,", (double)in->lr.usec / 1000.0, bs_is_read_only(c->bs) ?
	       ", READ-ONLY" : "", bs_get_error(c->bs) ? ", ERROR latched" : "");
	printf("clusters    %s each, %" PRIu64 " data clusters (%s)\n",
	       fmt_size(in->cs, a, sizeof(a)), in->total, fmt_size(in->total * in->cs, b, sizeof(b)));
	printf("used        %" PRIu64 " clusters (%s, %.1f%%)\n", used,
	       fmt_size(used * in->cs, d, sizeof(d)),
	       in->total ? 100.0 * (double)used / (double)in->total : 0.0);
	printf("free        %" PRIu64 " clusters (%s)\n", in->free,
	       fmt_size(in->free * in->cs, a, sizeof(a)));
	printf("blobs       %" PRIu64 " of %" PRIu64 " slots", in->blobs, bs_get_max_blobs(c->bs));
	if (in->corrupt)
		printf(", %" PRIu64 " CORRUPT", in->corrupt);
	printf("\nsuper blob  ");
	if (in->has_super)
		printf("0x%" PRIx64 "\n", in->super);
	else
		printf("none\n");
	printf("page size   %" PRIu64 " B\nbstype      %s\n", bs_get_page_size(c->bs),
	       bstype[0] ? bstype : "(none)");
}

int cmd_info(struct cli *c, int argc, char **argv)
{
	struct info in;
	bool json;
	int rc = cli_json_only(c, "info", argc, argv, &json);

	if (rc != 0)
		return rc;
	info_gather(c, &in);
	if (json)
		info_json(c, &in);
	else
		info_human(c, &in);
	return CLI_OK;
}

/* ------------------------------------------------------------ check */

struct check_msgs {
	bool json;
	size_t n;
	size_t cap;
	bs_blob_id *ids;
	char **text;
};

static void check_msg(void *arg, bs_blob_id id, const char *msg)
{
	struct check_msgs *m = arg;

	if (!m->json) {
		char tag[24];

		snprintf(tag, sizeof(tag), "0x%" PRIx64, id);
		if (id != BS_BLOB_ID_INVALID && strstr(msg, tag) == NULL)
			printf("problem: blob %s: %s\n", tag, msg);
		else
			printf("problem: %s\n", msg);
		return;
	}
	if (m->n == m->cap) {
		size_t cap = m->cap ? 2 * m->cap : 16;
		bs_blob_id *ids = realloc(m->ids, cap * sizeof(*ids));
		char **text = ids ? realloc(m->text, cap * sizeof(*text)) : NULL;

		if (ids != NULL)
			m->ids = ids;
		if (text == NULL)
			return;
		m->text = text;
		m->cap = cap;
	}
	m->ids[m->n] = id;
	m->text[m->n] = strdup(msg);
	if (m->text[m->n] != NULL)
		m->n++;
}

static void check_json(struct cli *c, const struct bs_check_report *r, struct check_msgs *m)
{
	struct bs_load_report lr;
	struct json j;

	bs_get_load_report(c->bs, &lr);
	json_init(&j, stdout);
	json_obj_begin(&j, NULL);
	json_bool(&j, "consistent", r->problems == 0);
	json_u64(&j, "blobs_checked", r->blobs_checked);
	json_u64(&j, "problems", r->problems);
	json_u64(&j, "corrupt_blobs", r->corrupt_blobs);
	json_u64(&j, "leaked_clusters", r->leaked_clusters);
	json_u64(&j, "double_owned_clusters", r->double_owned_clusters);
	json_u64(&j, "lost_clusters", r->lost_clusters);
	json_u64(&j, "pool_mismatches", r->pool_mismatches);
	json_u64(&j, "counter_mismatches", r->counter_mismatches);
	json_bool(&j, "loaded_clean", lr.was_clean);
	json_arr_begin(&j, "messages");
	for (size_t i = 0; i < m->n; i++) {
		json_obj_begin(&j, NULL);
		if (m->ids[i] != BS_BLOB_ID_INVALID)
			json_id(&j, "blob", m->ids[i]);
		else
			json_null(&j, "blob");
		json_str(&j, "message", m->text[i]);
		json_obj_end(&j);
	}
	json_arr_end(&j);
	json_obj_end(&j);
	json_end(&j);
}

static void check_human(const struct bs_check_report *r)
{
	printf("checked %" PRIu64 " blobs: %" PRIu64 " problems", r->blobs_checked, r->problems);
	if (r->problems != 0)
		printf(" (%" PRIu64 " corrupt blobs, %" PRIu64 " leaked, %" PRIu64
		       " double-owned, %" PRIu64 " lost clusters, %" PRIu64 " pool and %" PRIu64
		       " counter mismatches)", r->corrupt_blobs, r->leaked_clusters,
		       r->double_owned_clusters, r->lost_clusters, r->pool_mismatches,
		       r->counter_mismatches);
	printf("\n%s\n", r->problems == 0 ? "store is consistent" : "store has problems");
}

static void check_msgs_free(struct check_msgs *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->text[i]);
	free(m->text);
	free(m->ids);
}

int cmd_check(struct cli *c, int argc, char **argv)
{
	struct check_msgs m = { 0 };
	struct bs_check_report r;
	int rc = cli_json_only(c, "check", argc, argv, &m.json);

	if (rc != 0)
		return rc;
	rc = call_check(c, &r, check_msg, &m);
	if (rc != 0) {
		check_msgs_free(&m);
		cli_err(c, "check: could not run: %s", cli_strerror(rc));
		return CLI_NOLOAD;
	}
	if (m.json)
		check_json(c, &r, &m);
	else
		check_human(&r);
	check_msgs_free(&m);
	return r.problems == 0 ? CLI_OK : CLI_FAIL;
}

/* ------------------------------------------------------------ recover */

static void recover_print(struct cli *c, const struct bs_load_report *lr, uint64_t *corrupt)
{
	char a[16];

	printf("recovered %" PRIu64 " blobs in %.1f ms (%s of metadata read)\n", lr->blobs,
	       (double)lr->usec / 1000.0, fmt_size(lr->md_bytes_read, a, sizeof(a)));
	if (lr->fallback_roots)
		printf("%" PRIu64 " blobs loaded from their previous root (a commit was torn)\n",
		       lr->fallback_roots);
	*corrupt = 0;
	for (bs_blob_id id = bs_iter_corrupt(c->bs, BS_BLOB_ID_INVALID); id != BS_BLOB_ID_INVALID;
	     id = bs_iter_corrupt(c->bs, id)) {
		printf("corrupt: blob 0x%" PRIx64 ": metadata invalid, skipped\n", id);
		(*corrupt)++;
	}
}

int cmd_recover(struct cli *c, int argc, char **argv)
{
	struct bs_load_report lr;
	struct bs_opts o;
	uint64_t corrupt;
	int rc;

	if (argc > 1)
		return cli_bad_usage(c, "recover", "unexpected argument");
	if ((rc = cli_unload(c)) != 0 || (rc = cli_dev(c)) != 0)
		return rc;
	if (c->ram_fresh)
		return cli_store(c); /* nothing to recover: a fresh store */
	bs_opts_init(&o, sizeof(o));
	o.force_recover = true;
	rc = cli_load(c, &o);
	if (rc != 0) {
		cli_err(c, "recover: cannot load the store: %s", cli_strerror(rc));
		return CLI_NOLOAD;
	}
	bs_get_load_report(c->bs, &lr);
	recover_print(c, &lr, &corrupt);
	if ((rc = cli_unload(c)) != 0)
		return rc;
	printf("unloaded cleanly\n");
	return corrupt ? CLI_FAIL : CLI_OK;
}

/* ------------------------------------------------------------ dump */

int cmd_dump(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "full", no_argument, NULL, 'f' }, { NULL, 0, NULL, 0 },
	};
	struct bs_dump_opts o;
	struct bs_dump_report r;
	int opt, rc;

	bs_dump_opts_init(&o, sizeof(o));
	while ((rc = cli_getopt(c, argc, argv, ":", opts, &opt)) == 0 && opt != -1)
		o.max_items = o.max_value_bytes = 0;
	if (rc != 0)
		return rc;
	if (optind < argc)
		return cli_bad_usage(c, "dump", "unexpected argument");
	if ((rc = cli_dev(c)) != 0)
		return rc;
	if (c->bs != NULL)
		printf("note: the store is loaded; this is what the device holds now "
		       "(masks are written at unload)\n");
	rc = call_dump(c, stdout, &o, &r);
	fflush(stdout);
	if (rc == -EILSEQ) {
		cli_err(c, "dump: no valid super block on the device");
		return CLI_FAIL;
	}
	if (rc != 0) {
		cli_err(c, "dump: %s", rc == -ERANGE ? "the store's geometry exceeds the device" :
			cli_strerror(rc));
		return CLI_FAIL;
	}
	return CLI_OK;
}

/* ------------------------------------------------------------ super */

int cmd_super(struct cli *c, int argc, char **argv)
{
	bs_blob_id id = BS_BLOB_ID_INVALID;
	int rc;

	if (argc < 2)
		return cli_bad_usage(c, "super", "missing subcommand");
	if (strcmp(argv[1], "get") == 0 && argc == 2) {
		if ((rc = cli_store(c)) != 0)
			return rc;
		if (bs_get_super(c->bs, &id) == 0)
			printf("0x%" PRIx64 "\n", id);
		else
			printf("none\n");
		return CLI_OK;
	}
	if (strcmp(argv[1], "set") == 0 && argc == 3) {
		if ((rc = parse_id(c, argv[2], &id)) != 0)
			return rc;
	} else if (strcmp(argv[1], "clear") != 0 || argc != 2) {
		return cli_bad_usage(c, "super", "bad subcommand or arguments");
	}
	if ((rc = cli_store(c)) != 0)
		return rc;
	rc = call_set_super(c, id);
	if (rc != 0) {
		cli_err(c, "super: 0x%" PRIx64 ": %s", id, cli_strerror(rc));
		return CLI_FAIL;
	}
	return CLI_OK;
}
