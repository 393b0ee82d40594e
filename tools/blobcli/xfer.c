/*
 * The data mover behind import, export and fill: XFER_QD requests of
 * XFER_CHUNK bytes in flight on the thread's channel.
 *
 *   import   read(fd) a chunk -> bs_blob_write      (any order)
 *   fill     pattern buffer   -> bs_blob_write      (any order)
 *   export   bs_blob_read     -> write(fd) a chunk  (in order: a chunk is
 *            written out only when every chunk before it was, so the
 *            destination may be a pipe)
 *
 * The blob side works in whole io units: a last partial chunk is padded
 * with zeros on import and read whole on export, of which only the wanted
 * bytes are written. The file side is plain blocking read/write: this is a
 * tool, and the device keeps working meanwhile.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define XFER_QD 4
#define XFER_CHUNK (1u << 20)

struct xfer;

struct xslot {
	struct xfer *x;
	uint8_t *buf;
	uint64_t off;			/* byte offset within the transfer */
	uint64_t seq;			/* chunk number */
	uint32_t len;			/* payload bytes */
	bool busy;			/* submitted or waiting to be written out */
	bool ready;			/* export: read done */
};

struct xfer {
	struct cli_op op;		/* first: rt_run's handle */
	const struct xfer_req *req;
	struct bs_io_channel *ch;
	uint64_t io_unit;
	uint64_t next;			/* next byte to submit */
	uint64_t next_seq;
	uint64_t head_seq;		/* export: next chunk to write out */
	uint64_t done;			/* bytes finished */
	uint32_t inflight;
	int err;
	bool finished;
	struct progress prog;
	struct xslot slots[XFER_QD];
};

static void xfer_pump(struct xfer *x);

/* Read exactly @p len bytes: 0, -errno, or -ENODATA if the file ended early. */
static int read_full(int fd, uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = read(fd, buf, len);

		if (n < 0 && errno == EINTR && !cli_interrupted)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_full(int fd, const uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR && !cli_interrupted)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static void xfer_fail(struct xfer *x, int err)
{
	if (x->err == 0)
		x->err = err;
}

/* Everything submitted has completed and nothing more will be: end. */
static void xfer_maybe_done(struct xfer *x)
{
	if (x->finished || x->inflight > 0)
		return;
	if (x->err == 0 && x->next < x->req->length)
		return;
	if (x->err == 0 && x->req->kind == XFER_EXPORT && x->head_seq != x->next_seq)
		return;
	x->finished = true;
	rt_done(&x->op, x->err);
}

/* Export: write out the chunks that are read, in order; free their slots. */
static void xfer_drain(struct xfer *x)
{
	for (bool again = true; again;) {
		again = false;
		for (int i = 0; i < XFER_QD; i++) {
			struct xslot *s = &x->slots[i];
			int rc;

			if (!s->busy || !s->ready || s->seq != x->head_seq)
				continue;
			rc = x->err ? 0 : write_full(x->req->fd, s->buf, s->len);
			if (rc != 0)
				xfer_fail(x, rc);
			x->done += s->len;
			s->busy = s->ready = false;
			x->head_seq++;
			again = true;
		}
	}
}

static void xfer_io_cpl(void *cb_arg, int err)
{
	struct xslot *s = cb_arg;
	struct xfer *x = s->x;

	x->inflight--;
	if (err != 0)
		xfer_fail(x, err);
	if (x->req->kind == XFER_EXPORT) {
		s->ready = true;
		xfer_drain(x);
	} else {
		s->busy = false;
		x->done += s->len;
	}
	progress_update(&x->prog, x->done);
	xfer_pump(x);
	xfer_maybe_done(x);
}

/* Fill @p s for import; false if the chunk needs no write (thin, all zero). */
static bool xfer_import_chunk(struct xfer *x, struct xslot *s, uint64_t padded)
{
	int rc = read_full(x->req->fd, s->buf, s->len);

	if (rc != 0) {
		xfer_fail(x, rc);
		return false;
	}
	memset(s->buf + s->len, 0, padded - s->len);
	if (x->req->skip_zero && all_zero(s->buf, padded)) {
		x->done += s->len;
		return false;
	}
	return true;
}

/* Submit the next chunk into @p s; false if nothing was submitted. */
static bool xfer_submit(struct xfer *x, struct xslot *s)
{
	const struct xfer_req *r = x->req;
	uint64_t padded, lba;

	s->off = x->next;
	s->len = (uint32_t)(r->length - x->next < XFER_CHUNK ? r->length - x->next : XFER_CHUNK);
	s->seq = x->next_seq++;
	x->next += s->len;
	padded = (s->len + x->io_unit - 1) / x->io_unit * x->io_unit;
	lba = (r->offset + s->off) / x->io_unit;
	if (r->kind == XFER_IMPORT && !xfer_import_chunk(x, s, padded))
		return false;
	s->busy = true;
	s->ready = false;
	x->inflight++;
	if (r->kind == XFER_EXPORT)
		bs_blob_read(r->blob, x->ch, s->buf, lba, padded / x->io_unit, xfer_io_cpl, s);
	else
		bs_blob_write(r->blob, x->ch, s->buf, lba, padded / x->io_unit, xfer_io_cpl, s);
	return true;
}

static void xfer_pump(struct xfer *x)
{
	for (int i = 0; i < XFER_QD; i++) {
		struct xslot *s = &x->slots[i];

		if (cli_interrupted)
			xfer_fail(x, -ECANCELED);
		if (x->err != 0 || x->next >= x->req->length)
			return;
		if (s->busy)
			continue;
		if (!xfer_submit(x, s))
			i--; /* skipped or failed: the slot is still free */
	}
}

static void xfer_go(struct cli_op *op)
{
	struct xfer *x = (struct xfer *)op;

	xfer_pump(x);
	xfer_maybe_done(x);
}

static int xfer_alloc(struct xfer *x, const struct xfer_req *req)
{
	for (int i = 0; i < XFER_QD; i++) {
		x->slots[i].x = x;
		if (posix_memalign((void **)&x->slots[i].buf, 4096, XFER_CHUNK) != 0)
			return -ENOMEM;
		if (req->kind == XFER_FILL)
			memset(x->slots[i].buf, req->pattern, XFER_CHUNK);
	}
	return 0;
}

int xfer_run(struct cli *c, const struct xfer_req *req)
{
	struct xfer *x = calloc(1, sizeof(*x));
	int rc;

	if (x == NULL)
		return -ENOMEM;
	x->req = req;
	x->io_unit = bs_get_io_unit_size(c->bs);
	rc = xfer_alloc(x, req);
	if (rc == 0)
		rc = call_alloc_channel(c, &x->ch);
	if (rc == 0) {
		progress_start(&x->prog, req->label, req->length);
		rc = rt_run(c, &x->op, xfer_go);
		progress_end(&x->prog, x->done, rc == 0);
		call_free_channel(c, x->ch);
	}
	for (int i = 0; i < XFER_QD; i++)
		free(x->slots[i].buf);
	free(x);
	return rc;
}
