/*
 * Data path: blob reads, writes, unmaps and write-zeroes through a
 * per-thread channel.
 *
 * A channel owns a fixed pool of requests (max_channel_ops), allocated when
 * the channel is created: the IO path never allocates. A request is cut at
 * cluster boundaries into pieces; up to REQ_PIECES pieces are in flight at
 * once, each a device IO on this thread's device channel.
 *
 * Thin allocation needs no trip to the metadata thread: the writer claims a
 * free cluster (atomic bitmap), zeroes it unless it is known-zero, and only
 * then publishes it in the blob's map with a compare-and-swap (D8). If
 * another writer published first, the loser gives its cluster back and
 * writes into the winner's. The map change is committed by the next sync or
 * store flush (D9).
 *
 * External snapshots (esnap.c): a hole that no blob of the chain owns, in a
 * chain whose bottom is an esnap clone, reads from that clone's external
 * device through this channel's channel of it (made on first use), and its
 * first write copies from it through the bounce buffer (allocated on the
 * first such copy if the store device copies by itself). A degraded clone
 * (no device) fails those pieces with -ENXIO.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "blob/store_int.h"
#include "util/assert_int.h"
#include "util/log_int.h"

#define REQ_PIECES 4
#define PIECE_IOV_MAX 32

enum req_op { REQ_READ, REQ_WRITE, REQ_UNMAP, REQ_WRITE_ZEROES };

struct blob_req;

struct req_piece {
	struct bs_dev_io dio;
	struct blob_req *req;
	uint64_t cl_idx;
	uint64_t off;			/* io units into the cluster */
	uint64_t len;
	uint64_t byte_off;		/* into the request's buffer */
	uint32_t cluster;		/* claimed, waiting to be published */
	uint32_t cow_src;		/* copy-on-write: the ancestor's cluster */
	const struct bs_blob *cow_esnap;	/* or: the esnap clone whose device has the data */
	struct bs_io_channel *cow_ech;	/* that device's channel */
	uint64_t cow_done;		/* blocks copied so far (bounce copy) */
	struct req_piece *cow_next;	/* waiting for the channel's bounce buffer */
	bool busy;
	struct bs_defer retry;		/* allocation retry while other claims are in flight */
	struct iovec iov[PIECE_IOV_MAX];
	int iovcnt;
};

struct blob_req {
	struct blob_req *next_free;	/* also links the channel's frozen queue */
	struct blob_channel *ch;
	struct bs_blob *blob;
	bs_cpl_fn cb_fn;
	void *cb_arg;
	enum req_op op;
	struct iovec *iov;
	int iovcnt;
	struct iovec one;
	uint64_t offset;
	uint64_t end;
	uint64_t pos;
	uint32_t inflight;
	int err;
	bool finishing;
	struct bs_defer defer;
	struct req_piece pieces[REQ_PIECES];
};

struct blob_channel {
	struct bs_store *bs;
	struct bs_io_channel *dev_ch;
	struct blob_req *reqs;
	struct blob_req *free;
	struct blob_req *frozen_head;	/* waiting for a resize to finish */
	struct blob_req **frozen_tail;
	uint8_t *bounce;		/* copy-on-write buffer (no device copy, or esnap: lazy) */
	uint64_t bounce_blocks;
	bool use_copy;			/* the store device copies clusters itself */
	struct esnap_chans esnap;	/* external devices' channels, made on first use */
	struct req_piece *cow_owner;	/* the piece using the bounce buffer */
	struct req_piece *cow_wait_head;
	struct req_piece **cow_wait_tail;
};

#define COW_BOUNCE_BYTES (1u << 20)

/* ---------------------------------------------------------- channels */

static int blob_channel_create(void *io_device, void *ctx)
{
	struct bs_store *bs = io_device;
	struct blob_channel *ch = ctx;

	ch->bs = bs;
	ch->dev_ch = bs_dev_get_channel(bs->dev);
	if (ch->dev_ch == NULL)
		return -errno;
	ch->reqs = calloc(bs->max_channel_ops, sizeof(*ch->reqs));
	if (ch->reqs == NULL) {
		bs_dev_put_channel(ch->dev_ch);
		return -ENOMEM;
	}
	ch->frozen_tail = &ch->frozen_head;
	ch->cow_wait_tail = &ch->cow_wait_head;
	ch->bounce_blocks = BS_MIN((uint64_t)COW_BOUNCE_BYTES, (uint64_t)bs->cluster_size) / bs->block_len;
	ch->use_copy = bs_dev_has_copy(bs->dev);
	if (!ch->use_copy &&
	    posix_memalign((void **)&ch->bounce, 4096, ch->bounce_blocks * bs->block_len) != 0) {
		free(ch->reqs);
		bs_dev_put_channel(ch->dev_ch);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < bs->max_channel_ops; i++) {
		ch->reqs[i].ch = ch;
		ch->reqs[i].next_free = ch->free;
		ch->free = &ch->reqs[i];
	}
	return 0;
}

static void blob_channel_destroy(void *io_device, void *ctx)
{
	struct blob_channel *ch = ctx;

	free(ch->reqs);
	free(ch->bounce);
	esnap_chans_free(&ch->esnap);
	bs_dev_put_channel(ch->dev_ch);
}

/* Context of io_esnap_forget. */
struct esnap_forget {
	struct bs_dev *dev;
	bs_cpl_fn cpl;
	void *ctx;
};

static void esnap_forget_channel(struct bs_channel_iter *it, struct bs_io_channel *io_ch,
				 void *ctx)
{
	struct esnap_forget *f = ctx;
	struct blob_channel *ch = bs_io_channel_get_ctx(io_ch);

	esnap_chans_drop(&ch->esnap, f->dev);
	bs_for_each_channel_continue(it, 0);
}

static void esnap_forget_cpl(void *cb_arg, int err)
{
	struct esnap_forget *f = cb_arg;

	f->cpl(f->ctx, err);
	free(f);
}

int io_esnap_forget(struct bs_store *bs, struct bs_dev *dev, bs_cpl_fn cpl, void *ctx)
{
	struct esnap_forget *f = malloc(sizeof(*f));

	if (f == NULL)
		return -ENOMEM;
	*f = (struct esnap_forget){ dev, cpl, ctx };
	if (bs_for_each_channel(bs, esnap_forget_channel, f, esnap_forget_cpl) != 0) {
		free(f);
		return -ENOMEM;
	}
	return 0;
}

int store_register_io(struct bs_store *bs)
{
	return bs_io_device_register(bs, blob_channel_create, blob_channel_destroy,
				     sizeof(struct blob_channel), "blobstore");
}

struct bs_io_channel *bs_alloc_channel(struct bs_store *bs)
{
	if (bs == NULL) {
		errno = EINVAL;
		return NULL;
	}
	return bs_get_io_channel(bs);
}

void bs_free_channel(struct bs_io_channel *ch)
{
	if (ch != NULL)
		bs_put_io_channel(ch);
}

/* ---------------------------------------------------------- completion */

static void req_deliver(void *ctx)
{
	struct blob_req *req = ctx;
	struct blob_channel *ch = req->ch;
	bs_cpl_fn cb_fn = req->cb_fn;
	void *cb_arg = req->cb_arg;
	int err = req->err;

	atomic_fetch_sub(&req->blob->inflight, 1);
	req->next_free = ch->free;
	ch->free = req;
	cb_fn(cb_arg, err);
}

/* Finish the request on a later poll: never inline with the submission. */
static void req_finish(struct blob_req *req)
{
	if (req->finishing)
		return;
	req->finishing = true;
	bs_thread_defer(&req->defer, req_deliver, req);
}

static void req_pump(struct blob_req *req);

static void req_piece_done(struct req_piece *p, int err)
{
	struct blob_req *req = p->req;

	p->busy = false;
	req->inflight--;
	if (err != 0 && req->err == 0)
		req->err = err; /* first error wins */
	req_pump(req);
}

static void piece_io_cpl(void *cb_arg, int err)
{
	req_piece_done(cb_arg, err);
}

/* ---------------------------------------------------------- pieces */

/* Point p->iov at bytes [byte_off, byte_off + n) of the request buffer. */
static int piece_slice_iov(struct req_piece *p, uint64_t n)
{
	struct blob_req *req = p->req;
	uint64_t skip = p->byte_off;
	int out = 0;

	for (int i = 0; i < req->iovcnt && n > 0; i++) {
		uint64_t len = req->iov[i].iov_len;

		if (skip >= len) {
			skip -= len;
			continue;
		}
		if (out == PIECE_IOV_MAX)
			return -EINVAL;
		p->iov[out].iov_base = (uint8_t *)req->iov[i].iov_base + skip;
		p->iov[out].iov_len = BS_MIN(len - skip, n);
		n -= p->iov[out].iov_len;
		skip = 0;
		out++;
	}
	p->iovcnt = out;
	return n == 0 ? 0 : -EINVAL;
}

static void piece_zero_fill(struct req_piece *p)
{
	for (int i = 0; i < p->iovcnt; i++)
		memset(p->iov[i].iov_base, 0, p->iov[i].iov_len);
}

static uint64_t piece_lba(const struct req_piece *p, uint32_t cluster)
{
	return (uint64_t)cluster * p->req->ch->bs->blocks_per_cluster + p->off;
}

/* Apply a write (or zeroes) to the blob's own cluster @cluster. */
static void piece_write_to(struct req_piece *p, uint32_t cluster)
{
	struct blob_req *req = p->req;

	if (req->op != REQ_WRITE) {
		bs_dev_write_zeroes(req->ch->dev_ch, &p->dio, piece_lba(p, cluster), p->len,
				    piece_io_cpl, p);
		return;
	}
	bs_dev_writev(req->ch->dev_ch, &p->dio, p->iov, p->iovcnt, piece_lba(p, cluster), p->len,
		      piece_io_cpl, p);
}

/*
 * The cluster of blob cluster @i seen through @blob's ancestors: the first
 * ancestor that owns it, or 0 (reads as zeros). An ancestor smaller than
 * the blob ends the walk past its end.
 */
uint32_t blob_chain_lookup(const struct bs_blob *blob, uint64_t i)
{
	for (const struct bs_blob *a = blob->parent; a != NULL; a = a->parent) {
		uint32_t c;

		if (i >= a->map.num_clusters)
			return 0;
		c = blob_map_get(&a->map, i);
		if (c != 0)
			return c;
	}
	return 0;
}

/*
 * Publish a freshly claimed (and now zero) cluster in the map. The loser of
 * a race releases its cluster and writes into the winner's.
 */
static void piece_publish(struct req_piece *p, bool still_zero)
{
	struct bs_blob *blob = p->req->blob;
	struct bs_store *bs = p->req->ch->bs;
	uint32_t c = p->cluster;

	p->cluster = 0;
	atomic_fetch_sub(&bs->claims_inflight, 1);
	if (blob_map_claim(&blob->map, p->cl_idx, c)) {
		blob_note_alloc(blob, p->cl_idx);
		atomic_fetch_add(&blob->allocs, 1);
	} else {
		cluster_release(bs, c, still_zero);
		c = blob_map_get(&blob->map, p->cl_idx);
	}
	piece_write_to(p, c);
}

static void piece_zeroed_cpl(void *cb_arg, int err)
{
	struct req_piece *p = cb_arg;

	if (err != 0) {
		cluster_release(p->req->ch->bs, p->cluster, false);
		atomic_fetch_sub(&p->req->ch->bs->claims_inflight, 1);
		p->cluster = 0;
		req_piece_done(p, err);
		return;
	}
	piece_publish(p, false);
}

static void piece_issue(struct req_piece *p);

static void piece_retry(void *ctx)
{
	piece_issue(ctx);
}

/*
 * No cluster was free. Clusters claimed by other writers are still in
 * flight (each is either published or given back), so unless this one was
 * published meanwhile, retry on a later poll while any is; -ENOSPC only
 * when none is.
 */
static void piece_claim_failed(struct req_piece *p)
{
	struct bs_store *bs = p->req->ch->bs;
	uint32_t c = blob_map_get(&p->req->blob->map, p->cl_idx);
	uint64_t others = atomic_fetch_sub(&bs->claims_inflight, 1) - 1;

	if (c != 0)
		piece_write_to(p, c);
	else if (others > 0)
		bs_thread_defer(&p->retry, piece_retry, p);
	else
		req_piece_done(p, -ENOSPC);
}

/* ---------------------------------------------------------- copy-on-write */

static void cow_copied(struct req_piece *p, int err);
static void cow_bounce_step(struct req_piece *p);

static void cow_bounce_write_cpl(void *cb_arg, int err)
{
	struct req_piece *p = cb_arg;

	if (err != 0) {
		cow_copied(p, err);
		return;
	}
	p->cow_done += BS_MIN(p->req->ch->bounce_blocks,
			      p->req->ch->bs->blocks_per_cluster - p->cow_done);
	cow_bounce_step(p);
}

static void cow_bounce_read_cpl(void *cb_arg, int err)
{
	struct req_piece *p = cb_arg;
	struct blob_channel *ch = p->req->ch;
	uint64_t n = BS_MIN(ch->bounce_blocks, ch->bs->blocks_per_cluster - p->cow_done);

	if (err != 0) {
		cow_copied(p, err);
		return;
	}
	bs_dev_write(ch->dev_ch, &p->dio, ch->bounce,
		     (uint64_t)p->cluster * ch->bs->blocks_per_cluster + p->cow_done, n,
		     cow_bounce_write_cpl, p);
}

/*
 * Read a bounce-sized chunk of the external device into the bounce buffer;
 * what lies past the device's end is zeros.
 */
static void cow_esnap_read(struct req_piece *p, uint64_t n)
{
	struct blob_channel *ch = p->req->ch;
	const struct bs_blob *eb = p->cow_esnap;
	uint64_t end = eb->esnap_dev->block_count;
	uint64_t lba = (p->cl_idx * ch->bs->blocks_per_cluster + p->cow_done) * eb->esnap_ratio;
	uint64_t cnt = n * eb->esnap_ratio;

	if (lba + cnt > end)
		memset(ch->bounce, 0, n * ch->bs->block_len);
	if (lba >= end) {
		cow_bounce_read_cpl(p, 0);
		return;
	}
	bs_dev_read(p->cow_ech, &p->dio, ch->bounce, lba, BS_MIN(cnt, end - lba),
		    cow_bounce_read_cpl, p);
}

/* Copy the next bounce-sized chunk, or finish. */
static void cow_bounce_step(struct req_piece *p)
{
	struct blob_channel *ch = p->req->ch;
	uint64_t bpc = ch->bs->blocks_per_cluster;

	if (p->cow_done >= bpc) {
		cow_copied(p, 0);
		return;
	}
	if (p->cow_esnap != NULL) {
		cow_esnap_read(p, BS_MIN(ch->bounce_blocks, bpc - p->cow_done));
		return;
	}
	bs_dev_read(ch->dev_ch, &p->dio, ch->bounce, (uint64_t)p->cow_src * bpc + p->cow_done,
		    BS_MIN(ch->bounce_blocks, bpc - p->cow_done), cow_bounce_read_cpl, p);
}

static void cow_copy_cpl(void *cb_arg, int err)
{
	cow_copied(cb_arg, err);
}

/* Start copying the ancestor's cluster into the claimed one. */
static void cow_start(struct req_piece *p)
{
	struct blob_channel *ch = p->req->ch;
	uint64_t bpc = ch->bs->blocks_per_cluster;

	p->cow_done = 0;
	if (ch->use_copy && p->cow_esnap == NULL) {
		bs_dev_copy(ch->dev_ch, &p->dio, (uint64_t)p->cluster * bpc,
			    (uint64_t)p->cow_src * bpc, bpc, cow_copy_cpl, p);
		return;
	}
	if (ch->cow_owner != NULL) {
		/* One bounce buffer per channel: wait for it. */
		p->cow_next = NULL;
		*ch->cow_wait_tail = p;
		ch->cow_wait_tail = &p->cow_next;
		return;
	}
	ch->cow_owner = p;
	cow_bounce_step(p);
}

/* Hand the bounce buffer to the next waiting piece. */
static void cow_release_bounce(struct blob_channel *ch, struct req_piece *p)
{
	struct req_piece *next = ch->cow_wait_head;

	if (ch->cow_owner != p)
		return;
	ch->cow_owner = NULL;
	if (next == NULL)
		return;
	ch->cow_wait_head = next->cow_next;
	if (ch->cow_wait_head == NULL)
		ch->cow_wait_tail = &ch->cow_wait_head;
	ch->cow_owner = next;
	cow_bounce_step(next);
}

/*
 * The copy is complete: publish the cluster (D8/D9: the data it shows is
 * whole before anyone can see it), then apply the write to it.
 */
static void cow_copied(struct req_piece *p, int err)
{
	struct bs_store *bs = p->req->ch->bs;

	cow_release_bounce(p->req->ch, p);
	if (err != 0) {
		cluster_release(bs, p->cluster, false);
		atomic_fetch_sub(&bs->claims_inflight, 1);
		p->cluster = 0;
		req_piece_done(p, err);
		return;
	}
	piece_publish(p, false);
}

/* Claim the COW target cluster, then copy from @src (or @eb's device), then write. */
static void piece_cow_claim(struct req_piece *p, uint32_t src, const struct bs_blob *eb)
{
	struct bs_store *bs = p->req->ch->bs;
	bool zeroed = false;
	uint32_t c;

	atomic_fetch_add(&bs->claims_inflight, 1);
	c = cluster_claim(bs, &zeroed);
	if (c == 0) {
		piece_claim_failed(p);
		return;
	}
	p->cluster = c;
	p->cow_src = src;
	p->cow_esnap = eb;
	cow_start(p); /* D8/D9: copied whole before it is published */
}

/* First write to a cluster an ancestor owns: copy it, then write. */
static void piece_cow(struct req_piece *p, uint32_t src)
{
	if (p->req->blob->md_ro) {
		req_piece_done(p, -EPERM);
		return;
	}
	piece_cow_claim(p, src, NULL);
}

/*
 * Take the esnap device's channel (and, first time on this channel, the
 * bounce buffer): the only allocations, once per channel. 0 or -errno.
 */
static int esnap_prepare(struct req_piece *p, const struct bs_blob *eb, bool bounce)
{
	struct blob_channel *ch = p->req->ch;

	if (eb->esnap_dev == NULL)
		return -ENXIO; /* degraded: logged once at open */
	if (bounce && ch->bounce == NULL &&
	    posix_memalign((void **)&ch->bounce, 4096, ch->bounce_blocks * ch->bs->block_len) != 0) {
		ch->bounce = NULL;
		return -ENOMEM;
	}
	p->cow_ech = esnap_chans_get(&ch->esnap, eb->esnap_dev);
	return p->cow_ech != NULL ? 0 : -errno;
}

/* First write to a cluster the external device backs: copy it, then write. */
static void piece_cow_esnap(struct req_piece *p, const struct bs_blob *eb)
{
	int rc = p->req->blob->md_ro ? -EPERM : esnap_prepare(p, eb, true);

	if (rc != 0) {
		req_piece_done(p, rc);
		return;
	}
	piece_cow_claim(p, 0, eb);
}

/* Cut the piece's iovec to its first @bytes. */
static void piece_trim_iov(struct req_piece *p, uint64_t bytes)
{
	int i;

	for (i = 0; i < p->iovcnt && bytes > 0; i++) {
		p->iov[i].iov_len = BS_MIN(p->iov[i].iov_len, bytes);
		bytes -= p->iov[i].iov_len;
	}
	p->iovcnt = i;
}

/* Read through to the external device; past its end the data is zeros. */
static void piece_read_esnap(struct req_piece *p, const struct bs_blob *eb)
{
	uint64_t bpc = p->req->ch->bs->blocks_per_cluster;
	uint64_t lba = (p->cl_idx * bpc + p->off) * eb->esnap_ratio;
	uint64_t cnt = p->len * eb->esnap_ratio;
	uint64_t end;
	int rc = esnap_prepare(p, eb, false);

	if (rc != 0) {
		req_piece_done(p, rc);
		return;
	}
	end = eb->esnap_dev->block_count;
	if (lba + cnt > end)
		piece_zero_fill(p);
	if (lba >= end) {
		req_piece_done(p, 0);
		return;
	}
	if (lba + cnt > end) {
		cnt = end - lba;
		piece_trim_iov(p, cnt * eb->esnap_dev->block_len);
	}
	bs_dev_readv(p->cow_ech, &p->dio, p->iov, p->iovcnt, lba, cnt, piece_io_cpl, p);
}

/* First write to an unallocated cluster of a thin blob. */
static void piece_allocate(struct req_piece *p)
{
	struct bs_store *bs = p->req->ch->bs;
	bool zeroed = false;
	uint32_t c;

	if (p->req->blob->md_ro) {
		req_piece_done(p, -EPERM); /* a new cluster would change read-only metadata */
		return;
	}
	atomic_fetch_add(&bs->claims_inflight, 1);
	c = cluster_claim(bs, &zeroed);
	if (c == 0) {
		piece_claim_failed(p);
		return;
	}
	p->cluster = c;
	if (zeroed) {
		piece_publish(p, true);
		return;
	}
	bs_dev_write_zeroes(p->req->ch->dev_ch, &p->dio, (uint64_t)c * bs->blocks_per_cluster,
			    bs->blocks_per_cluster, piece_zeroed_cpl, p); /* D8 */
}

/* A whole-cluster unmap of a thin blob gives the cluster back. */
struct unmap_msg {
	struct req_piece *p;
	uint32_t cluster;
	struct bs_thread *origin;
	int err;
};

static void unmap_back(void *ctx)
{
	struct unmap_msg *m = ctx;
	struct req_piece *p = m->p;
	int err = m->err;

	free(m);
	req_piece_done(p, err);
}

/*
 * On the metadata thread: drop the entry (the leaf becomes dirty) and queue
 * the cluster for release once that change is durable (D5). The piece
 * completes only after this, so no later write can land in the old cluster.
 */
static void unmap_on_md(void *ctx)
{
	struct unmap_msg *m = ctx;
	struct bs_blob *blob = m->p->req->blob;

	if (blob_map_get(&blob->map, m->p->cl_idx) == m->cluster) {
		m->err = blob_defer_free(blob, m->cluster);
		if (m->err == 0)
			blob_map_set(&blob->map, m->p->cl_idx, 0);
	}
	if (bs_thread_send_msg(m->origin, unmap_back, m) != 0) {
		/* The channel's thread exited with IO in flight: nobody to tell. */
		LOG_ERR("unmap: issuing thread is gone; completion dropped");
		free(m);
	}
}

static void piece_unmap_cluster(struct req_piece *p, uint32_t c)
{
	struct unmap_msg *m = malloc(sizeof(*m));

	if (m == NULL) {
		req_piece_done(p, -ENOMEM);
		return;
	}
	*m = (struct unmap_msg){ p, c, bs_thread_get_current(), 0 };
	if (bs_thread_send_msg(p->req->ch->bs->md_thread, unmap_on_md, m) != 0) {
		free(m);
		req_piece_done(p, -ESHUTDOWN);
	}
}

/* Unallocated, and nothing below it owns it: zeros, or the external device. */
static void piece_issue_hole(struct req_piece *p, const struct bs_blob *eb)
{
	struct blob_req *req = p->req;

	switch (req->op) {
	case REQ_READ:
		if (eb != NULL) {
			piece_read_esnap(p, eb);
			return;
		}
		piece_zero_fill(p);
		req_piece_done(p, 0);
		return;
	case REQ_WRITE:
		if (eb != NULL)
			piece_cow_esnap(p, eb);
		else
			piece_allocate(p);
		return;
	case REQ_UNMAP:
	case REQ_WRITE_ZEROES:
		if (eb == NULL)
			req_piece_done(p, 0); /* unallocated: already reads as zeros */
		else if (p->len == req->ch->bs->blocks_per_cluster)
			piece_allocate(p); /* the external data must stop showing through */
		else
			piece_cow_esnap(p, eb);
		return;
	}
}

static void piece_issue(struct req_piece *p)
{
	struct blob_req *req = p->req;
	struct bs_io_channel *dch = req->ch->dev_ch;
	uint32_t c = blob_map_get(&req->blob->map, p->cl_idx);

	uint32_t src = c == 0 && req->blob->parent != NULL ? blob_chain_lookup(req->blob, p->cl_idx) : 0;

	if (c == 0 && src == 0) {
		piece_issue_hole(p, blob_chain_esnap(req->blob, p->cl_idx));
		return;
	}
	switch (req->op) {
	case REQ_READ:
		if (c == 0)
			c = src; /* read through to the ancestor that owns it */
		bs_dev_readv(dch, &p->dio, p->iov, p->iovcnt, piece_lba(p, c), p->len,
			     piece_io_cpl, p);
		return;
	case REQ_WRITE:
		if (c != 0)
			piece_write_to(p, c);
		else
			piece_cow(p, src);
		return;
	case REQ_UNMAP:
		/* Freeing is right only if nothing shows through from below. */
		if (c != 0 && req->blob->thin && p->off == 0 &&
		    p->len == req->ch->bs->blocks_per_cluster &&
		    (req->blob->parent == NULL || blob_chain_lookup(req->blob, p->cl_idx) == 0) &&
		    blob_chain_esnap(req->blob, p->cl_idx) == NULL) {
			piece_unmap_cluster(p, c);
			return;
		}
		/* Partial ranges: zeroed, so they read as zeros afterwards. */
		__attribute__((fallthrough));
	case REQ_WRITE_ZEROES:
		if (c == 0) {
			/* The ancestor's data must stop showing through. */
			if (p->len == req->ch->bs->blocks_per_cluster)
				piece_allocate(p); /* whole cluster: a zeroed one will do */
			else
				piece_cow(p, src);
			return;
		}
		bs_dev_write_zeroes(dch, &p->dio, piece_lba(p, c), p->len, piece_io_cpl, p);
		return;
	}
}

/* Start the next piece in @p. False when nothing is left to issue. */
static bool req_next_piece(struct blob_req *req, struct req_piece *p)
{
	struct bs_store *bs = req->ch->bs;
	uint64_t bpc = bs->blocks_per_cluster;

	if (req->pos >= req->end || req->err != 0)
		return false;
	p->req = req;
	p->cl_idx = req->pos / bpc;
	p->off = req->pos % bpc;
	p->len = BS_MIN(bpc - p->off, req->end - req->pos);
	p->byte_off = (req->pos - req->offset) * bs->block_len;
	p->cluster = 0;
	req->pos += p->len;
	p->busy = true;
	req->inflight++;
	if ((req->op == REQ_READ || req->op == REQ_WRITE) &&
	    piece_slice_iov(p, p->len * bs->block_len) != 0) {
		LOG_ERR("blob io: more than %d iovec segments in one cluster", PIECE_IOV_MAX);
		req_piece_done(p, -EINVAL);
		return false;
	}
	piece_issue(p);
	return true;
}

/*
 * Keep up to REQ_PIECES pieces in flight; finish when all are done. Pieces
 * that complete synchronously (holes) re-enter here, so loop, do not recurse
 * deeply: a piece done inline only decrements and returns to this loop.
 */
static void req_pump(struct blob_req *req)
{
	static __thread int depth;

	if (depth > 0)
		return; /* the outer pump loop picks up */
	depth++;
	for (bool progress = true; progress;) {
		progress = false;
		for (int i = 0; i < REQ_PIECES; i++) {
			if (!req->pieces[i].busy && req_next_piece(req, &req->pieces[i]))
				progress = true;
		}
	}
	depth--;
	if (req->inflight == 0 && (req->pos >= req->end || req->err != 0))
		req_finish(req);
}

/* ---------------------------------------------------------- freeze */

/*
 * Start a request unless its blob is frozen. The in-flight count goes up
 * BEFORE the frozen flag is read, and the freezer raises the flag before it
 * reads the count (both sequentially consistent): either the freezer waits
 * for this request, or this request sees the flag and queues.
 */
static void req_start(struct blob_req *req)
{
	struct blob_channel *ch = req->ch;

	atomic_fetch_add(&req->blob->inflight, 1);
	if (atomic_load(&req->blob->frozen)) {
		atomic_fetch_sub(&req->blob->inflight, 1);
		req->next_free = NULL;
		*ch->frozen_tail = req;
		ch->frozen_tail = &req->next_free;
		return;
	}
	req_pump(req);
}

/* Restart this channel's queued requests whose blob is no longer frozen. */
static void thaw_channel(struct bs_channel_iter *it, struct bs_io_channel *io_ch, void *ctx)
{
	struct blob_channel *ch = bs_io_channel_get_ctx(io_ch);
	struct blob_req *req = ch->frozen_head, *next;

	ch->frozen_head = NULL;
	ch->frozen_tail = &ch->frozen_head;
	for (; req != NULL; req = next) {
		next = req->next_free;
		req_start(req);
	}
	bs_for_each_channel_continue(it, 0);
}

static void thaw_done(void *cb_arg, int err)
{
}

void blob_thaw(struct bs_blob *blob)
{
	atomic_store(&blob->frozen, 0);
	if (bs_for_each_channel(blob->bs, thaw_channel, blob, thaw_done) != 0)
		abort(); /* requests would be stranded; out of memory for one small iterator */
}

struct freeze_wait {
	struct bs_blob *blob;
	struct bs_poller *poller;
	bs_msg_fn fn;
	void *ctx;
};

static int freeze_poll(void *arg)
{
	struct freeze_wait *fw = arg;

	if (atomic_load(&fw->blob->inflight) != 0)
		return 0;
	bs_poller_unregister(&fw->poller);
	fw->fn(fw->ctx);
	free(fw);
	return 1;
}

/*
 * Raise the flag, wait on the metadata thread for in-flight IO to drain,
 * then run @fn (never inline). 0 or -ENOMEM (then nothing is frozen).
 */
int blob_freeze_run(struct bs_blob *blob, bs_msg_fn fn, void *ctx)
{
	struct freeze_wait *fw = malloc(sizeof(*fw));

	if (fw == NULL)
		return -ENOMEM;
	fw->blob = blob;
	fw->fn = fn;
	fw->ctx = ctx;
	atomic_store(&blob->frozen, 1);
	fw->poller = bs_poller_register(freeze_poll, fw, 20);
	if (fw->poller == NULL) {
		atomic_store(&blob->frozen, 0);
		free(fw);
		return -ENOMEM;
	}
	return 0;
}

/* ---------------------------------------------------------- submission */

static int io_check(struct bs_blob *blob, struct blob_channel *ch, enum req_op op,
		    uint64_t offset, uint64_t length)
{
	if (blob == NULL || ch == NULL)
		return -EINVAL;
	if (blob->state != BLOB_OPEN)
		return -EBADF;
	if (ch->bs != blob->bs)
		return -EINVAL;
	if (length == 0)
		return -EINVAL;
	if (offset > bs_blob_get_num_io_units(blob) ||
	    length > bs_blob_get_num_io_units(blob) - offset)
		return -ERANGE;
	if (op != REQ_READ && blob->data_ro)
		return -EPERM;
	if (op != REQ_READ && blob->bs->read_only)
		return -EROFS;
	return 0;
}

/* A data buffer: at least one segment, none of them NULL. */
static bool iov_valid(const struct iovec *iov, int iovcnt)
{
	if (iov == NULL || iovcnt < 1)
		return false;
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_base == NULL)
			return false;
	}
	return true;
}

static void io_submit(struct bs_blob *blob, struct bs_io_channel *io_ch, enum req_op op,
		      struct iovec *iov, int iovcnt, uint64_t offset, uint64_t length,
		      bs_cpl_fn cb_fn, void *cb_arg)
{
	struct blob_channel *ch = io_ch ? bs_io_channel_get_ctx(io_ch) : NULL;
	int rc = io_check(blob, ch, op, offset, length);
	struct blob_req *req;

	if (rc == 0 && (op == REQ_READ || op == REQ_WRITE) && !iov_valid(iov, iovcnt))
		rc = -EINVAL;
	if (rc == 0 && ch->free == NULL)
		rc = -EAGAIN;
	if (rc != 0) {
		store_defer_cpl(cb_fn, cb_arg, rc);
		return;
	}
	req = ch->free;
	ch->free = req->next_free;
	req->blob = blob;
	req->cb_fn = cb_fn;
	req->cb_arg = cb_arg;
	req->op = op;
	req->iov = iov;
	req->iovcnt = iovcnt;
	req->offset = offset;
	req->pos = offset;
	req->end = offset + length;
	req->inflight = 0;
	req->err = 0;
	req->finishing = false;
	req_start(req);
}

/*
 * Single-buffer IO: the buffer becomes the request's own one-element iovec,
 * so nothing points at the caller's stack. With no free request, io_submit
 * refuses with -EAGAIN before looking at the iovec.
 */
static void io_submit_buf(struct bs_blob *blob, struct bs_io_channel *ch, enum req_op op,
			  void *buf, uint64_t offset, uint64_t length, bs_cpl_fn cb_fn, void *cb_arg)
{
	struct blob_channel *bch = ch ? bs_io_channel_get_ctx(ch) : NULL;
	struct iovec one = { buf, length * (blob ? blob->bs->block_len : 0) };
	struct blob_req *req = bch ? bch->free : NULL;

	if (req != NULL) {
		req->one = one;
		io_submit(blob, ch, op, &req->one, 1, offset, length, cb_fn, cb_arg);
		return;
	}
	io_submit(blob, ch, op, &one, 1, offset, length, cb_fn, cb_arg);
}

void bs_blob_read(struct bs_blob *blob, struct bs_io_channel *ch, void *buf,
		  uint64_t offset, uint64_t length, bs_cpl_fn cb_fn, void *cb_arg)
{
	io_submit_buf(blob, ch, REQ_READ, buf, offset, length, cb_fn, cb_arg);
}

void bs_blob_write(struct bs_blob *blob, struct bs_io_channel *ch, const void *buf,
		   uint64_t offset, uint64_t length, bs_cpl_fn cb_fn, void *cb_arg)
{
	io_submit_buf(blob, ch, REQ_WRITE, (void *)buf, offset, length, cb_fn, cb_arg);
}

void bs_blob_readv(struct bs_blob *blob, struct bs_io_channel *ch, struct iovec *iov,
		   int iovcnt, uint64_t offset, uint64_t length, bs_cpl_fn cb_fn, void *cb_arg)
{
	io_submit(blob, ch, REQ_READ, iov, iovcnt, offset, length, cb_fn, cb_arg);
}

void bs_blob_writev(struct bs_blob *blob, struct bs_io_channel *ch, struct iovec *iov,
		    int iovcnt, uint64_t offset, uint64_t length, bs_cpl_fn cb_fn, void *cb_arg)
{
	io_submit(blob, ch, REQ_WRITE, iov, iovcnt, offset, length, cb_fn, cb_arg);
}

void bs_blob_unmap(struct bs_blob *blob, struct bs_io_channel *ch, uint64_t offset,
		   uint64_t length, bs_cpl_fn cb_fn, void *cb_arg)
{
	io_submit(blob, ch, REQ_UNMAP, NULL, 0, offset, length, cb_fn, cb_arg);
}

void bs_blob_write_zeroes(struct bs_blob *blob, struct bs_io_channel *ch, uint64_t offset,
			  uint64_t length, bs_cpl_fn cb_fn, void *cb_arg)
{
	io_submit(blob, ch, REQ_WRITE_ZEROES, NULL, 0, offset, length, cb_fn, cb_arg);
}
