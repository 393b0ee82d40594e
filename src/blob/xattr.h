/*
 * A blob's extended attributes in memory, and their on-disk stream
 * (format.h: u16 name_len | u16 flags | u32 value_len | name | value).
 * User and internal (store-reserved) xattrs share one set and one stream;
 * the flags tell them apart, so a user can never read or clobber an
 * internal one.
 */
#ifndef BS_BLOB_XATTR_H
#define BS_BLOB_XATTR_H

#include <stdint.h>

struct xattr_entry {
	char *name;		/* NUL-terminated copy */
	uint16_t name_len;
	uint16_t flags;		/* MD_XATTR_F_INTERNAL */
	uint32_t value_len;
	uint8_t *value;		/* value_len bytes (NULL when 0) */
};

struct xattr_set {
	struct xattr_entry *v;
	uint32_t n;
	uint32_t cap;
	uint32_t stream_len;	/* bytes the set encodes to */
};

void xattr_set_init(struct xattr_set *s);
void xattr_set_free(struct xattr_set *s);

/** Add or replace. 0, -EINVAL (name 1..255 bytes, value <= 64 KiB), -ENOSPC (stream too big), -ENOMEM. */
int xattr_set_put(struct xattr_set *s, const char *name, const void *value, uint32_t len,
		  uint16_t flags);
/** 0 or -ENOENT. */
int xattr_set_get(const struct xattr_set *s, const char *name, uint16_t flags,
		  const void **value, uint32_t *len);
/** 0 or -ENOENT. */
int xattr_set_remove(struct xattr_set *s, const char *name, uint16_t flags);
/** Number of entries with @p flags, and the i-th one's name (NULL past the end). */
uint32_t xattr_set_count(const struct xattr_set *s, uint16_t flags);
const char *xattr_set_name(const struct xattr_set *s, uint16_t flags, uint32_t i);

/** Write the stream (s->stream_len bytes) into @p out. */
void xattr_set_encode(const struct xattr_set *s, uint8_t *out);
/** Replace @p s by the stream in @p in. 0, -EILSEQ (malformed), -ENOMEM. */
int xattr_set_decode(struct xattr_set *s, const uint8_t *in, uint32_t len);

#endif /* BS_BLOB_XATTR_H */
