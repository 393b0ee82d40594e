/*
 * Extended attributes: a small array kept in insertion order (blobs have
 * few xattrs; a linear search beats a hash table at this size), and its
 * encoding as the on-disk stream.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blob/format.h"
#include "blob/xattr.h"

static uint32_t entry_stream_len(uint32_t name_len, uint32_t value_len)
{
	return (uint32_t)sizeof(struct md_xattr_entry) + name_len + value_len;
}

void xattr_set_init(struct xattr_set *s)
{
	memset(s, 0, sizeof(*s));
}

static void entry_free(struct xattr_entry *e)
{
	free(e->name);
	free(e->value);
}

void xattr_set_free(struct xattr_set *s)
{
	for (uint32_t i = 0; i < s->n; i++)
		entry_free(&s->v[i]);
	free(s->v);
	xattr_set_init(s);
}

static struct xattr_entry *find(const struct xattr_set *s, const char *name, size_t len,
				uint16_t flags)
{
	for (uint32_t i = 0; i < s->n; i++) {
		struct xattr_entry *e = &s->v[i];

		if (e->flags == flags && e->name_len == len && memcmp(e->name, name, len) == 0)
			return e;
	}
	return NULL;
}

/* Make a new entry slot at the end. */
static struct xattr_entry *append(struct xattr_set *s)
{
	if (s->n == s->cap) {
		uint32_t cap = s->cap ? s->cap * 2 : 8;
		struct xattr_entry *v = realloc(s->v, cap * sizeof(*v));

		if (v == NULL)
			return NULL;
		s->v = v;
		s->cap = cap;
	}
	memset(&s->v[s->n], 0, sizeof(s->v[0]));
	return &s->v[s->n++];
}

/* Fill @e with copies of name and value. 0 or -ENOMEM. */
static int entry_fill(struct xattr_entry *e, const char *name, size_t name_len,
		      const void *value, uint32_t len, uint16_t flags)
{
	uint8_t *v = NULL;
	char *n = malloc(name_len + 1);

	if (n == NULL)
		return -ENOMEM;
	if (len > 0) {
		v = malloc(len);
		if (v == NULL) {
			free(n);
			return -ENOMEM;
		}
		memcpy(v, value, len);
	}
	memcpy(n, name, name_len);
	n[name_len] = '\0';
	e->name = n;
	e->name_len = (uint16_t)name_len;
	e->flags = flags;
	e->value = v;
	e->value_len = len;
	return 0;
}

int xattr_set_put(struct xattr_set *s, const char *name, const void *value, uint32_t len,
		  uint16_t flags)
{
	size_t name_len = name ? strnlen(name, MD_XATTR_MAX_NAME + 1) : 0;
	struct xattr_entry *old, fresh;
	uint64_t new_stream;

	if (name_len == 0 || name_len > MD_XATTR_MAX_NAME || len > MD_XATTR_MAX_VALUE ||
	    (len > 0 && value == NULL))
		return -EINVAL;
	old = find(s, name, name_len, flags);
	new_stream = (uint64_t)s->stream_len + entry_stream_len((uint32_t)name_len, len);
	if (old != NULL)
		new_stream -= entry_stream_len(old->name_len, old->value_len);
	if (new_stream > MD_XATTR_MAX_STREAM)
		return -ENOSPC;
	if (entry_fill(&fresh, name, name_len, value, len, flags) != 0)
		return -ENOMEM;
	if (old == NULL) {
		old = append(s);
		if (old == NULL) {
			entry_free(&fresh);
			return -ENOMEM;
		}
	} else {
		entry_free(old);
	}
	*old = fresh;
	s->stream_len = (uint32_t)new_stream;
	return 0;
}

int xattr_set_get(const struct xattr_set *s, const char *name, uint16_t flags,
		  const void **value, uint32_t *len)
{
	const struct xattr_entry *e = name ? find(s, name, strlen(name), flags) : NULL;

	if (e == NULL)
		return -ENOENT;
	*value = e->value;
	*len = e->value_len;
	return 0;
}

int xattr_set_remove(struct xattr_set *s, const char *name, uint16_t flags)
{
	struct xattr_entry *e = name ? find(s, name, strlen(name), flags) : NULL;
	uint32_t i;

	if (e == NULL)
		return -ENOENT;
	i = (uint32_t)(e - s->v);
	s->stream_len -= entry_stream_len(e->name_len, e->value_len);
	entry_free(e);
	memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof(s->v[0]));
	s->n--;
	return 0;
}

uint32_t xattr_set_count(const struct xattr_set *s, uint16_t flags)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < s->n; i++)
		n += s->v[i].flags == flags;
	return n;
}

const char *xattr_set_name(const struct xattr_set *s, uint16_t flags, uint32_t i)
{
	for (uint32_t k = 0; k < s->n; k++) {
		if (s->v[k].flags != flags)
			continue;
		if (i-- == 0)
			return s->v[k].name;
	}
	return NULL;
}

void xattr_set_encode(const struct xattr_set *s, uint8_t *out)
{
	for (uint32_t i = 0; i < s->n; i++) {
		const struct xattr_entry *e = &s->v[i];
		struct md_xattr_entry h = { e->name_len, e->flags, e->value_len };

		memcpy(out, &h, sizeof(h));
		out += sizeof(h);
		memcpy(out, e->name, e->name_len);
		out += e->name_len;
		if (e->value_len)
			memcpy(out, e->value, e->value_len);
		out += e->value_len;
	}
}

/* Decode one entry at @in (@left bytes remain). Bytes used, or -EILSEQ. */
static int64_t decode_one(struct xattr_set *s, const uint8_t *in, uint32_t left)
{
	struct md_xattr_entry h;
	uint32_t need;
	char name[MD_XATTR_MAX_NAME + 1];

	if (left < sizeof(h))
		return -EILSEQ;
	memcpy(&h, in, sizeof(h));
	need = entry_stream_len(h.name_len, 0);
	if (h.name_len == 0 || h.name_len > MD_XATTR_MAX_NAME ||
	    h.value_len > MD_XATTR_MAX_VALUE || (h.flags & ~MD_XATTR_F_INTERNAL) ||
	    need > left || h.value_len > left - need)
		return -EILSEQ;
	memcpy(name, in + sizeof(h), h.name_len);
	name[h.name_len] = '\0';
	if (memchr(name, '\0', h.name_len) != NULL || find(s, name, h.name_len, h.flags))
		return -EILSEQ; /* embedded NUL or duplicate */
	if (xattr_set_put(s, name, in + need, h.value_len, h.flags) != 0)
		return -ENOMEM;
	return need + h.value_len;
}

int xattr_set_decode(struct xattr_set *s, const uint8_t *in, uint32_t len)
{
	uint32_t off = 0;

	xattr_set_free(s);
	if (len > MD_XATTR_MAX_STREAM)
		return -EILSEQ;
	while (off < len) {
		int64_t used = decode_one(s, in + off, len - off);

		if (used < 0) {
			xattr_set_free(s);
			return (int)used;
		}
		off += (uint32_t)used;
	}
	return 0;
}
