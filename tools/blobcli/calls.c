/*
 * Blocking wrappers: each sends one library call to the thread (rt_run)
 * and returns its result. Synchronous calls that must run on the metadata
 * thread (xattr changes, channels) go the same way.
 */
#include <errno.h>

#include <blobstore/dump.h>

#include "cli.h"

/* Arguments of one call; each go function reads the fields it needs. */
struct call {
	struct cli_op op;
	struct cli *c;
	const void *opts;
	void *out;
	struct bs_blob *blob;
	bs_blob_id id;
	uint64_t n;
	const char *name;
	const void *value;
	uint32_t len;
	bs_check_msg_fn msg_fn;
	void *msg_arg;
	FILE *file;
};

#define CALL(c_) { .c = (c_) }

static void go_init(struct cli_op *op)
{
	struct call *k = (struct call *)op;

	bs_init(k->c->dev, k->opts, &k->c->bs, rt_cpl, op);
}

int call_init(struct cli *c, const struct bs_opts *opts)
{
	struct call k = CALL(c);

	k.opts = opts;
	return rt_run(c, &k.op, go_init);
}

static void go_load(struct cli_op *op)
{
	struct call *k = (struct call *)op;

	bs_load(k->c->dev, k->opts, &k->c->bs, rt_cpl, op);
}

int call_load(struct cli *c, const struct bs_opts *opts)
{
	struct call k = CALL(c);

	k.opts = opts;
	return rt_run(c, &k.op, go_load);
}

static void go_unload(struct cli_op *op)
{
	struct call *k = (struct call *)op;

	bs_unload(k->c->bs, rt_cpl, op);
}

/* The store is freed whatever the result: c->bs is cleared. */
int call_unload(struct cli *c)
{
	struct call k = CALL(c);
	int rc = rt_run(c, &k.op, go_unload);

	if (rc != -EBUSY)
		c->bs = NULL;
	return rc;
}

static void go_dev_close(struct cli_op *op)
{
	struct call *k = (struct call *)op;

	bs_dev_close(k->c->dev, rt_cpl, op);
}

int call_dev_close(struct cli *c)
{
	struct call k = CALL(c);
	int rc = rt_run(c, &k.op, go_dev_close);

	c->dev = NULL;
	return rc;
}

static void go_create(struct cli_op *op)
{
	struct call *k = (struct call *)op;

	bs_blob_create(k->c->bs, k->opts, k->out, rt_cpl, op);
}

int call_create(struct cli *c, const struct bs_blob_opts *opts, bs_blob_id *id)
{
	struct call k = CALL(c);

	k.opts = opts;
	k.out = id;
	return rt_run(c, &k.op, go_create);
}

static void go_open(struct cli_op *op)
{
	struct call *k = (struct call *)op;

	bs_blob_open(k->c->bs, k->id, k->out, rt_cpl, op);
}

int call_open(struct cli *c, bs_blob_id id, struct bs_blob **blob)
{
	struct call k = CALL(c);

	k.id = id;
	k.out = blob;
	return rt_run(c, &k.op, go_open);
}

static void go_close(struct cli_op *op)
{
	struct call *k = (struct call *)op;

	bs_blob_close(k->blob, rt_cpl, op);
}

int call_close(struct cli *c, struct bs_blob *blob)
{
	struct call k = CALL(c);

	k.blob = blob;
	return rt_run(c, &k.op, go_close);
}

static void go_delete(struct cli_op *op)
{
	struct call *k = (struct call *)op;

	bs_blob_delete(k->c->bs, k->id, rt_cpl, op);
}

int call_delete(struct cli *c, bs_blob_id id)
{
	struct call k = CALL(c);

	k.id = id;
	return rt_run(c, &k.op, go_delete);
}

static void go_resize(struct cli_op *op)
{
	struct call *k = (struct call *)op;

	bs_blob_resize(k->blob, k->n, rt_cpl, op);
}

int call_resize(struct cli *c, struct bs_blob *blob, uint64_t clusters)
{
	struct call k = CALL(c);

	k.blob = blob;
	k.n = clusters;
	return rt_run(c, &k.op, go_resize);
}

static void go_sync(struct cli_op *op)
{
	struct call *k = (struct call *)op;

	bs_blob_sync(k->blob, rt_cpl, op);
}

int call_sync(struct cli *c, struct bs_blob *blob)
{
	struct call k = CALL(c);

	k.blob = blob;
	return rt_run(c, &k.op, go_sync);
}

static void go_set_super(struct cli_op *op)
{
	struct call *k = (struct call *)op;

	bs_set_super(k->c->bs, k->id, rt_cpl, op);
}

int call_set_super(struct cli *c, bs_blob_id id)
{
	struct call k = CALL(c);

	k.id = id;
	return rt_run(c, &k.op, go_set_super);
}

static void go_set_xattr(struct cli_op *op)
{
	struct call *k = (struct call *)op;

	rt_done(op, bs_blob_set_xattr(k->blob, k->name, k->value, k->len));
}

int call_set_xattr(struct cli *c, struct bs_blob *blob, const char *name, const void *value,
		   uint32_t len)
{
	struct call k = CALL(c);

	k.blob = blob;
	k.name = name;
	k.value = value;
	k.len = len;
	return rt_run(c, &k.op, go_set_xattr);
}

static void go_remove_xattr(struct cli_op *op)
{
	struct call *k = (struct call *)op;

	rt_done(op, bs_blob_remove_xattr(k->blob, k->name));
}

int call_remove_xattr(struct cli *c, struct bs_blob *blob, const char *name)
{
	struct call k = CALL(c);

	k.blob = blob;
	k.name = name;
	return rt_run(c, &k.op, go_remove_xattr);
}

static void go_check(struct cli_op *op)
{
	struct call *k = (struct call *)op;

	bs_check(k->c->bs, k->out, k->msg_fn, k->msg_arg, rt_cpl, op);
}

int call_check(struct cli *c, struct bs_check_report *r, bs_check_msg_fn fn, void *arg)
{
	struct call k = CALL(c);

	k.out = r;
	k.msg_fn = fn;
	k.msg_arg = arg;
	return rt_run(c, &k.op, go_check);
}

static void go_dump(struct cli_op *op)
{
	struct call *k = (struct call *)op;
	int rc = bs_dump(k->c->dev, k->file, k->opts, k->out, rt_cpl, op);

	if (rc != 0)
		rt_done(op, rc);
}

int call_dump(struct cli *c, FILE *out, const struct bs_dump_opts *opts,
	      struct bs_dump_report *r)
{
	struct call k = CALL(c);

	k.file = out;
	k.opts = opts;
	k.out = r;
	return rt_run(c, &k.op, go_dump);
}

static void go_alloc_channel(struct cli_op *op)
{
	struct call *k = (struct call *)op;
	struct bs_io_channel *ch = bs_alloc_channel(k->c->bs);

	*(struct bs_io_channel **)k->out = ch;
	rt_done(op, ch != NULL ? 0 : -errno);
}

int call_alloc_channel(struct cli *c, struct bs_io_channel **ch)
{
	struct call k = CALL(c);

	k.out = ch;
	return rt_run(c, &k.op, go_alloc_channel);
}

static void go_free_channel(struct cli_op *op)
{
	struct call *k = (struct call *)op;

	bs_free_channel(k->out);
	rt_done(op, 0);
}

int call_free_channel(struct cli *c, struct bs_io_channel *ch)
{
	struct call k = CALL(c);

	k.out = ch;
	return rt_run(c, &k.op, go_free_channel);
}

static void go_snapshot(struct cli_op *op)
{
	struct call *k = (struct call *)op;

	bs_blob_snapshot(k->c->bs, k->id, k->opts, k->len, k->out, rt_cpl, op);
}

int call_snapshot(struct cli *c, bs_blob_id id, const struct bs_xattr *xattrs, uint32_t n,
		  bs_blob_id *snap)
{
	struct call k = CALL(c);

	k.id = id;
	k.opts = xattrs;
	k.len = n;
	k.out = snap;
	return rt_run(c, &k.op, go_snapshot);
}

static void go_clone(struct cli_op *op)
{
	struct call *k = (struct call *)op;

	bs_blob_clone(k->c->bs, k->id, k->opts, k->len, k->out, rt_cpl, op);
}

int call_clone(struct cli *c, bs_blob_id parent, const struct bs_xattr *xattrs, uint32_t n,
	       bs_blob_id *clone)
{
	struct call k = CALL(c);

	k.id = parent;
	k.opts = xattrs;
	k.len = n;
	k.out = clone;
	return rt_run(c, &k.op, go_clone);
}

static void go_inflate(struct cli_op *op)
{
	struct call *k = (struct call *)op;

	bs_blob_inflate(k->c->bs, k->id, rt_cpl, op);
}

int call_inflate(struct cli *c, bs_blob_id id)
{
	struct call k = CALL(c);

	k.id = id;
	return rt_run(c, &k.op, go_inflate);
}

static void go_decouple(struct cli_op *op)
{
	struct call *k = (struct call *)op;

	bs_blob_decouple_parent(k->c->bs, k->id, rt_cpl, op);
}

int call_decouple(struct cli *c, bs_blob_id id)
{
	struct call k = CALL(c);

	k.id = id;
	return rt_run(c, &k.op, go_decouple);
}
