/*
 * Snapshot commands: snapshot, clone, inflate, decouple (docs/snapshots.md).
 *
 *   snapshot ID     a new read-only blob takes over ID's clusters; ID becomes
 *                   its thin clone (nothing is copied)
 *   clone SNAP      a new thin blob whose parent is the read-only SNAP
 *   inflate ID      ID gets a cluster of its own for every cluster; no parent
 *   decouple ID     ID copies what its parent owns; parent := grandparent
 *
 * snapshot and clone print the new id and count as created blobs ($Bn).
 * The new blob inherits the source's recorded byte length (blobcli.size),
 * so exports of a snapshot or clone of an imported file stay byte-exact.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <string.h>

#include "cli.h"

#define SNAP_MAX_XATTRS 16

/* ID [--xattr NAME=VALUE]...: the id and the xattrs. 0 or an exit code. */
static int snap_args(struct cli *c, int argc, char **argv, bool xattrs_ok, bs_blob_id *id,
		     struct bs_xattr *x, uint32_t *nx)
{
	static const struct option opts[] = {
		{ "xattr", required_argument, NULL, 'x' }, { NULL, 0, NULL, 0 },
	};
	int opt, rc;

	*nx = 0;
	while ((rc = cli_getopt(c, argc, argv, ":", xattrs_ok ? (const void *)opts :
				(const void *)&opts[1], &opt)) == 0 && opt != -1) {
		if (*nx == SNAP_MAX_XATTRS)
			return cli_bad_usage(c, argv[0], "too many --xattr (16 at most)");
		if (parse_xattr_arg(c, argv[0], optarg, &x[*nx]) != 0)
			return CLI_USAGE;
		(*nx)++;
	}
	if (rc != 0)
		return rc;
	if (argc - optind != 1)
		return cli_bad_usage(c, argv[0], argc - optind < 1 ? "missing blob id" :
				     "unexpected argument");
	if ((rc = parse_id(c, argv[optind], id)) != 0)
		return rc;
	return cli_store(c);
}

/*
 * Add the source's CLI_SIZE_XATTR to @p x unless given: copied into @p buf.
 * A source that does not open is left for the operation itself to report.
 */
static void snap_inherit_size(struct cli *c, bs_blob_id src, struct bs_xattr *x, uint32_t *nx,
			      char *buf, size_t len)
{
	struct bs_blob *b;
	const void *v;
	uint32_t vlen;

	for (uint32_t i = 0; i < *nx; i++)
		if (strcmp(x[i].name, CLI_SIZE_XATTR) == 0)
			return;
	if (*nx == SNAP_MAX_XATTRS || call_open(c, src, &b) != 0)
		return;
	if (bs_blob_get_xattr(b, CLI_SIZE_XATTR, &v, &vlen) == 0 && vlen < len) {
		memcpy(buf, v, vlen);
		x[*nx] = (struct bs_xattr){ CLI_SIZE_XATTR, buf, vlen };
		(*nx)++;
	}
	call_close(c, b);
}

/* One error line for a failed snapshot operation. */
static int snap_fail(struct cli *c, const char *cmd, bs_blob_id id, int err)
{
	const char *why = cli_strerror(err);

	if (err == -EINVAL && cmd[0] == 's')
		why = "the blob is read-only: clone it instead";
	else if (err == -EINVAL && cmd[0] == 'c')
		why = "the parent must be read-only (a snapshot)";
	else if (err == -EINVAL && cmd[0] == 'd')
		why = "the blob has no parent";
	else if (err == -EBUSY)
		why = "busy: a sync or resize of the blob is running";
	cli_err(c, "%s: blob 0x%" PRIx64 ": %s", cmd, id, why);
	return CLI_FAIL;
}

int cmd_snapshot(struct cli *c, int argc, char **argv)
{
	struct bs_xattr x[SNAP_MAX_XATTRS];
	char size[24];
	bs_blob_id id, snap;
	uint32_t nx;
	int rc;

	if ((rc = snap_args(c, argc, argv, true, &id, x, &nx)) != 0)
		return rc;
	snap_inherit_size(c, id, x, &nx, size, sizeof(size));
	rc = call_snapshot(c, id, nx ? x : NULL, nx, &snap);
	if (rc != 0)
		return snap_fail(c, "snapshot", id, rc);
	cli_note_created(c, snap);
	printf("created snapshot blob 0x%" PRIx64 " of 0x%" PRIx64 " (now its thin clone)\n",
	       snap, id);
	return CLI_OK;
}

int cmd_clone(struct cli *c, int argc, char **argv)
{
	struct bs_xattr x[SNAP_MAX_XATTRS];
	char size[24];
	bs_blob_id parent, clone;
	uint32_t nx;
	int rc;

	if ((rc = snap_args(c, argc, argv, true, &parent, x, &nx)) != 0)
		return rc;
	snap_inherit_size(c, parent, x, &nx, size, sizeof(size));
	rc = call_clone(c, parent, nx ? x : NULL, nx, &clone);
	if (rc != 0)
		return snap_fail(c, "clone", parent, rc);
	cli_note_created(c, clone);
	printf("created clone blob 0x%" PRIx64 " of snapshot 0x%" PRIx64 "\n", clone, parent);
	return CLI_OK;
}

int cmd_inflate(struct cli *c, int argc, char **argv)
{
	struct bs_xattr x[1];
	bs_blob_id id;
	uint32_t nx;
	int rc;

	if ((rc = snap_args(c, argc, argv, false, &id, x, &nx)) != 0)
		return rc;
	if ((rc = call_inflate(c, id)) != 0)
		return snap_fail(c, "inflate", id, rc);
	printf("inflated blob 0x%" PRIx64 ": it owns every cluster and has no parent\n", id);
	return CLI_OK;
}

int cmd_decouple(struct cli *c, int argc, char **argv)
{
	struct bs_xattr x[1];
	bs_blob_id id, parent = 0;
	uint32_t nx;
	int rc;

	if ((rc = snap_args(c, argc, argv, false, &id, x, &nx)) != 0)
		return rc;
	if ((rc = call_decouple(c, id)) != 0)
		return snap_fail(c, "decouple", id, rc);
	bs_blob_get_parent(c->bs, id, &parent);
	if (parent != 0)
		printf("decoupled blob 0x%" PRIx64 ": its parent is now 0x%" PRIx64 "\n", id, parent);
	else
		printf("decoupled blob 0x%" PRIx64 ": it has no parent now\n", id);
	return CLI_OK;
}
