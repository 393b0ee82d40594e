/*
 * On-disk format of a Blobstore. docs/format.md is the prose version of
 * this file: keep the two in step. All integers are little-endian; the
 * structures are packed and their sizes pinned below.
 *
 * Device layout, in 4 KiB pages from offset 0:
 *
 *   page 0        super block, copy A    \  two copies, the valid one with
 *   page 1        super block, copy B    /  the higher sequence wins
 *   mask_start    allocation masks, written only at clean unload:
 *                   used clusters | zeroed clusters | used pool pages | used slots
 *   root_start    root slots: 2 pages per blob slot (alternating commits)
 *   pool_start    page pool: extent (leaf), index and xattr pages
 *   ...           padding to a cluster boundary
 *   md_clusters * cluster_size:  data clusters
 *
 * Every metadata page starts with struct md_header: magic, version, type,
 * CRC-32C of the whole page (computed with the crc field zero), the page's
 * own number, owner blob id, generation (the commit that wrote it), the
 * store's random id, and the page's position (index, level). A page is
 * accepted only if every one of those matches what the referrer expects.
 *
 * A blob is a root slot plus a tree of pool pages:
 *
 *   root (slot page A or B, highest valid generation wins)
 *    ├── map_refs[64] ──> index pages (252 refs each) ... ──> extent pages
 *    │                    (depth-1 levels of index)         (1008 clusters)
 *    └── xattr_refs[32] ─> xattr pages (4032-byte slices of the xattr stream)
 *
 * References (struct md_ref) carry the child's page number, generation and
 * CRC, so a stale, torn or misdirected child is always detected.
 */
#ifndef BS_BLOB_FORMAT_H
#define BS_BLOB_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "util/assert_int.h"

#define MD_PAGE_SIZE 4096u
#define MD_MAGIC 0x53424C42u		/* "BLBS" little-endian */
#define MD_VERSION 1u
/* Generations are 1 .. MD_GEN_LIMIT - 1: a page claiming more is damaged (no
 * store makes 2^62 commits), and no commit wraps or nears 2^64 (D3). */
#define MD_GEN_LIMIT (1ull << 62)
#define MD_SIGNATURE "BLOBSTOR"		/* super block signature, 8 bytes */
#define MD_FORMAT_VERSION 1u		/* store format version */

/* Page types (on disk: never renumber). */
enum md_type {
	MD_TYPE_SUPER = 1,
	MD_TYPE_MASK = 2,
	MD_TYPE_ROOT = 3,
	MD_TYPE_EXTENT = 4,
	MD_TYPE_INDEX = 5,
	MD_TYPE_XATTR = 6,
};

/* md_header.flags for root pages. */
#define MD_ROOT_F_DELETED 0x1u		/* tombstone: the slot holds no blob */

/* Common 64-byte header of every metadata page. */
struct md_header {
	uint32_t magic;		/* MD_MAGIC */
	uint16_t version;	/* MD_VERSION */
	uint16_t type;		/* enum md_type */
	uint32_t crc;		/* CRC-32C of the page with this field zero */
	uint32_t flags;		/* type-specific */
	uint64_t page_no;	/* this page's own number on the device */
	uint64_t blob_id;	/* owning blob (0 for super and mask pages) */
	uint64_t gen;		/* generation: the commit that wrote it */
	uint64_t store_id;	/* random per store; rejects pages of old stores */
	uint32_t index;		/* position among its siblings */
	uint16_t level;		/* map level: 0 = extent page */
	uint16_t reserved0;
	uint64_t reserved1;
} __attribute__((packed));
STATIC_ASSERT(sizeof(struct md_header) == 64, "md_header is 64 bytes");

#define MD_PAYLOAD (MD_PAGE_SIZE - sizeof(struct md_header)) /* 4032 */

/* A reference from a parent page to a pool page. gen == 0: no child. */
struct md_ref {
	uint32_t pool_idx;	/* page index within the pool */
	uint32_t crc;		/* the child's header crc */
	uint64_t gen;		/* the child's header gen */
} __attribute__((packed));
STATIC_ASSERT(sizeof(struct md_ref) == 16, "md_ref is 16 bytes");

#define MD_EXTENTS_PER_PAGE (MD_PAYLOAD / 4)			/* 1008 */
#define MD_REFS_PER_INDEX (MD_PAYLOAD / sizeof(struct md_ref))	/* 252 */
#define MD_ROOT_MAP_REFS 64u
#define MD_ROOT_XATTR_REFS 32u
#define MD_ROOT_INLINE_XATTR 2400u
#define MD_GROUP_MAX_OTHERS 5u
#define MD_MAX_MAP_DEPTH 4u

/* Super block: pages 0 and 1. */
struct md_super {
	struct md_header hdr;	/* type SUPER, index = copy (0/1), gen = sequence */
	char signature[8];	/* MD_SIGNATURE */
	uint32_t format_version;
	uint32_t page_size;	/* MD_PAGE_SIZE */
	uint32_t block_len;	/* io unit: the device's logical block */
	uint32_t cluster_size;
	uint64_t dev_size;	/* bytes of the device the store was made on */
	uint64_t total_clusters;
	uint64_t md_clusters;	/* clusters holding metadata; data starts here */
	uint64_t mask_start;	/* page numbers and lengths of each region */
	uint64_t mask_pages;
	uint64_t root_start;
	uint64_t max_blobs;	/* root slots (2 pages each) */
	uint64_t pool_start;
	uint64_t pool_pages;
	uint32_t clean;		/* 1: masks are valid, no recovery needed */
	uint32_t reserved0;
	uint64_t txn_next;	/* next generation (valid when clean) */
	uint64_t id_next;	/* next blob incarnation (valid when clean) */
	uint64_t mask_gen;	/* generation the mask pages were written with */
	uint64_t super_blob;	/* the application's root blob id, 0 = none */
	uint8_t bstype[16];	/* application-defined store type */
	uint64_t features_incompat;	/* unknown bit: refuse to load */
	uint64_t features_ro_compat;	/* unknown bit: load read-only */
	uint64_t features_compat;	/* unknown bit: ignore */
	uint8_t uuid[16];
	uint8_t reserved[3840];
} __attribute__((packed));
STATIC_ASSERT(sizeof(struct md_super) == MD_PAGE_SIZE, "super block is one page");

/* Mask page: a slice of one of the four allocation bitmaps. */
enum md_mask_kind {
	MD_MASK_CLUSTERS = 0,	/* clusters in use */
	MD_MASK_ZEROED = 1,	/* free clusters known to read as zeros */
	MD_MASK_POOL = 2,	/* pool pages in use */
	MD_MASK_SLOTS = 3,	/* root slots in use */
	MD_MASK_INCARNATIONS = 4, /* not a bitmap: u32 incarnation per slot */
	MD_MASK_PARENTS = 5,	/* not a bitmap: u64 parent blob id per slot */
	MD_MASK_HIDDEN = 6,	/* hidden (deleted, still serving clones) snapshots */
	MD_MASK_NKINDS
};

struct md_mask_page {
	struct md_header hdr;	/* type MASK, level = kind, index = slice */
	uint8_t bits[MD_PAYLOAD];
} __attribute__((packed));
STATIC_ASSERT(sizeof(struct md_mask_page) == MD_PAGE_SIZE, "mask page size");
#define MD_MASK_BITS_PER_PAGE (MD_PAYLOAD * 8)
#define MD_INCARNATIONS_PER_PAGE (MD_PAYLOAD / 4)
#define MD_PARENTS_PER_PAGE (MD_PAYLOAD / 8)

/*
 * Blob flags. Three classes, for forward compatibility: an unknown bit in
 * invalid_flags refuses the open; in data_ro_flags opens the blob
 * read-only; in md_ro_flags makes its metadata read-only.
 */
#define BLOB_INVALID_THIN (1ull << 0)
#define BLOB_INVALID_ESNAP (1ull << 1)	/* parent is an external device */
#define BLOB_INVALID_KNOWN (BLOB_INVALID_THIN | BLOB_INVALID_ESNAP)
#define BLOB_DATA_RO_READ_ONLY (1ull << 0)
#define BLOB_DATA_RO_KNOWN (BLOB_DATA_RO_READ_ONLY)
#define BLOB_MD_RO_HIDDEN (1ull << 0)	/* deleted snapshot kept for its clones */
#define BLOB_MD_RO_KNOWN (BLOB_MD_RO_HIDDEN)

/*
 * Group commit tag (D13): roots written by one multi-blob commit carry the
 * commit's generation and the other members' slots. Such a root is valid
 * only if every member slot holds a valid root of that generation, or a
 * newer one that is not a rollback of it. A root whose tag names an older
 * generation than its own (n = 0) is such a rollback: recovery rewrote it
 * when it found that group incomplete (D17).
 */
struct md_group {
	uint64_t gen;		/* 0: not part of a group */
	uint32_t n;		/* other members */
	uint32_t slots[MD_GROUP_MAX_OTHERS];
} __attribute__((packed));
STATIC_ASSERT(sizeof(struct md_group) == 32, "group tag is 32 bytes");

/* Root page: one of the two pages of a blob's slot. */
struct md_root {
	struct md_header hdr;	/* type ROOT, index = slot, level = page (0/1) */
	uint64_t num_clusters;
	uint64_t invalid_flags;
	uint64_t data_ro_flags;
	uint64_t md_ro_flags;
	uint64_t parent_id;	/* snapshot parent, 0 = none */
	uint64_t reserved_id;
	uint32_t xattr_len;	/* bytes in the xattr stream */
	uint16_t xattr_npages;	/* 0: the stream is inline */
	uint8_t map_depth;	/* 0: no map; 1: refs to extent pages; n: n-1 index levels */
	uint8_t reserved0;
	uint64_t reserved1;
	struct md_ref map_refs[MD_ROOT_MAP_REFS];
	struct md_ref xattr_refs[MD_ROOT_XATTR_REFS];
	struct md_group group;
	uint8_t xattr_inline[MD_ROOT_INLINE_XATTR];
} __attribute__((packed));
STATIC_ASSERT(sizeof(struct md_root) == MD_PAGE_SIZE, "root page size");
STATIC_ASSERT(offsetof(struct md_root, map_refs) == 128, "root map_refs at 128");
STATIC_ASSERT(offsetof(struct md_root, group) == 1664, "root group tag at 1664");
STATIC_ASSERT(offsetof(struct md_root, xattr_inline) == 1696, "root inline xattrs at 1696");

/* Extent page: the cluster numbers of MD_EXTENTS_PER_PAGE consecutive clusters. */
struct md_extent_page {
	struct md_header hdr;	/* type EXTENT, level 0, index = first cluster / 1008 */
	uint32_t clusters[MD_EXTENTS_PER_PAGE];	/* 0 = not allocated */
} __attribute__((packed));
STATIC_ASSERT(sizeof(struct md_extent_page) == MD_PAGE_SIZE, "extent page size");

/* Index page: references to the pages one level down. */
struct md_index_page {
	struct md_header hdr;	/* type INDEX, level >= 1, index = ordinal at its level */
	struct md_ref refs[MD_REFS_PER_INDEX];
} __attribute__((packed));
STATIC_ASSERT(sizeof(struct md_index_page) == MD_PAGE_SIZE, "index page size");

/* Xattr page: one slice of the xattr stream. */
struct md_xattr_page {
	struct md_header hdr;	/* type XATTR, index = slice */
	uint8_t data[MD_PAYLOAD];
} __attribute__((packed));
STATIC_ASSERT(sizeof(struct md_xattr_page) == MD_PAGE_SIZE, "xattr page size");

/*
 * Xattr stream: entries back to back, no padding:
 *   u16 name_len | u16 flags | u32 value_len | name | value
 */
struct md_xattr_entry {
	uint16_t name_len;
	uint16_t flags;		/* MD_XATTR_F_INTERNAL: reserved for the store */
	uint32_t value_len;
} __attribute__((packed));
STATIC_ASSERT(sizeof(struct md_xattr_entry) == 8, "xattr entry header");
#define MD_XATTR_F_INTERNAL 0x1u
#define MD_XATTR_MAX_NAME 255u
#define MD_XATTR_MAX_VALUE 65536u
#define MD_XATTR_MAX_STREAM (MD_ROOT_XATTR_REFS * MD_PAYLOAD)	/* 129024 */

/* Blob ids: high 32 bits an incarnation (never 0), low 32 bits the slot. */
#define BLOB_ID(incarnation, slot) (((uint64_t)(incarnation) << 32) | (uint32_t)(slot))
#define BLOB_ID_SLOT(id) ((uint32_t)(id))
#define BLOB_ID_INCARNATION(id) ((uint32_t)((id) >> 32))

#endif /* BS_BLOB_FORMAT_H */
