/*
 * Reference model: each API op is logged with its call and done sequence
 * numbers (rdev event counts), its result, what it persists, and the
 * metadata tuple of every model blob right after it completed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crash.h"

uint64_t m_now(const struct run *x)
{
	uint64_t n;

	rdev_events(x->r, &n);
	return n;
}

int m_add(struct model *m, bs_blob_id id)
{
	if (m->nb >= MAXB)
		abort();
	m->id[m->nb] = id;
	m->alive[m->nb] = true;
	return m->nb++;
}

static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

void m_observe(struct run *x, struct bs_blob *h, struct mst *out)
{
	memset(out, 0, sizeof(*out));
	if (h == NULL)
		return;
	out->exists = true;
	out->thin = bs_blob_is_thin(h);
	out->ro = bs_blob_is_read_only(h);
	out->size = bs_blob_get_num_clusters(h);
	if (bs_blob_get_parent(x->bs, bs_blob_get_id(h), &out->parent) != 0)
		out->parent = ~0ull;
	out->nx = bs_blob_get_xattr_count(h);
	for (uint32_t i = 0; i < out->nx; i++) {
		const char *name = bs_blob_get_xattr_name(h, i);
		const void *v = NULL;
		uint32_t len = 0;
		uint64_t e = 0xcbf29ce484222325ull;

		bs_blob_get_xattr(h, name, &v, &len);
		e = fnv(name, strlen(name) + 1, e);
		out->xh += fnv(v, len, e);
	}
}

int m_begin(struct run *x, const char *name)
{
	struct model *m = x->m;
	struct mop *op;

	if (m->nops >= MAXOPS)
		abort();
	op = &m->ops[m->nops];
	memset(op, 0, sizeof(*op));
	op->name = name;
	op->call = m_now(x);
	rdev_set_tag(x->r, (uint32_t)m->nops);
	return m->nops++;
}

void m_end(struct run *x, int idx, int rc, uint32_t flags, uint32_t affects)
{
	struct model *m = x->m;
	struct mop *op = &m->ops[idx];

	bool open = rc == -EIO && x->allow_eio;
	bool ok = rc == 0 || open;

	op->done = open ? UINT64_MAX : m_now(x);
	op->rc = rc;
	op->flags = ok ? flags : 0;
	op->affects = ok ? affects : 0;
	for (int b = 0; b < m->nb; b++) {
		if (m->alive[b] && m->h[b] != NULL)
			m_observe(x, m->h[b], &m->cur[b]);
		if (m->alive[b])
			op->post[b] = m->cur[b];
		else
			memset(&op->post[b], 0, sizeof(op->post[b]));
	}
	if (!ok && !(rc == -ENOSPC && x->allow_enospc) && !x->failed) {
		x->failed = true;
		snprintf(x->why, sizeof(x->why), "op %s failed: %d", op->name, rc);
	}
}

void m_set_group(struct run *x, int idx, uint32_t group)
{
	struct mop *op = &x->m->ops[idx];

	op->group = op->affects != 0 ? group : 0;
}

uint32_t m_alive_mask(const struct model *m)
{
	uint32_t mask = 0;

	for (int b = 0; b < m->nb; b++)
		if (m->alive[b])
			mask |= 1u << b;
	return mask;
}

void m_hist_copy(struct model *m, int dst, int src)
{
	memcpy(m->hist[dst], m->hist[src], sizeof(m->hist[dst]));
}
