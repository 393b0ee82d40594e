/*
 * bs_dump(): print a store's on-disk metadata, decoded (include/blobstore/dump.h).
 *
 * A read-only walk of the device, one step per completion:
 *
 *   dump_super      read pages 0-1, print both copies, pick the winner (D6)
 *   dump_masks      read the mask region a window at a time, print each page
 *   dump_roots      read the root region a window of slots at a time; for
 *                   each written slot print both pages and pick the live one
 *   dump_walk       for a live blob: its xattr pages, then its map tree
 *                   depth first (index pages, extent pages), each page read
 *                   on its own and checked against the reference naming it
 *   dump_finish     summary line, give the channel back, call back
 *
 * Nothing here trusts what it reads: every count and index taken from a page
 * is bounded before it is used, and a page that fails validation is printed
 * but its children are not followed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <blobstore/dump.h>

#include "blob/format.h"
#include "blob/md_page.h"
#include "blob/store_int.h"
#include "util/assert_int.h"

#define DUMP_WINDOW_PAGES 512u		/* pages per region read: 2 MiB */
#define DUMP_WINDOW_SLOTS (DUMP_WINDOW_PAGES / 2)
#define DUMP_STACK_MAX (MD_ROOT_MAP_REFS + MD_MAX_MAP_DEPTH * MD_REFS_PER_INDEX)

/* A page of a blob's tree still to visit. */
struct dump_node {
	struct md_ref ref;
	uint64_t node;			/* expected index (node number or xattr slice) */
	uint16_t level;			/* map level; 0 for xattr pages */
	uint16_t type;			/* MD_TYPE_INDEX, MD_TYPE_EXTENT or MD_TYPE_XATTR */
};

struct dump {
	struct bs_dev *dev;
	FILE *out;
	struct bs_dump_opts opts;
	struct bs_dump_report *r;
	struct bs_dump_report local_report;
	bs_cpl_fn cb_fn;
	void *cb_arg;
	struct bs_io_channel *ch;
	struct bs_dev_io io;
	uint8_t *buf;			/* DUMP_WINDOW_PAGES pages */
	uint8_t *page;			/* one page, for tree walks */
	struct md_super sb;		/* the winning super copy */
	uint64_t dev_pages;		/* whole pages on the device */
	uint64_t kind_start[MD_MASK_NKINDS];
	uint64_t kind_pages[MD_MASK_NKINDS];
	uint64_t next;			/* masks: next page to read */
	uint64_t max_slots;		/* slots that fit on the device */
	uint64_t slot;			/* roots: slot being printed */
	uint64_t win_first;		/* first slot in buf */
	uint64_t win_n;			/* slots in buf */
	/* The blob being walked. */
	uint64_t blob_id;
	uint64_t num_clusters;
	uint8_t *xstream;		/* MD_XATTR_MAX_STREAM bytes */
	uint32_t xattr_len;
	bool xattr_bad;
	struct dump_node *stack;
	uint32_t nstack;
	struct dump_node cur;
	int err;			/* sticky: -ERANGE */
};

static void dump_masks_next(struct dump *d);
static void dump_roots_next(struct dump *d);
static void dump_slots(struct dump *d);
static bool dump_walk_next(struct dump *d);

void bs_dump_opts_init(struct bs_dump_opts *opts, size_t opts_size)
{
	memset(opts, 0, opts_size);
	opts->opts_size = opts_size;
	opts->max_items = 32;
	opts->max_value_bytes = 64;
}

/* ------------------------------------------------------------ printing */

static const char *const g_type_names[] = {
	"?", "super", "mask", "root", "extent", "index", "xattr",
};

/* Mask kinds by name; a kind this file does not know is "unknown-kind". */
static const char *mask_name(int kind)
{
	switch (kind) {
	case MD_MASK_CLUSTERS: return "used-clusters";
	case MD_MASK_ZEROED: return "zeroed-clusters";
	case MD_MASK_POOL: return "used-pool-pages";
	case MD_MASK_SLOTS: return "used-slots";
	case MD_MASK_INCARNATIONS: return "incarnations";
	case MD_MASK_PARENTS: return "parents";
	case MD_MASK_HIDDEN: return "hidden-snapshots";
	default: return "unknown-kind";
	}
}

static const char *type_name(uint16_t type)
{
	return type < BS_ARRAY_SIZE(g_type_names) ? g_type_names[type] : "?";
}

static bool bytes_are_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

/* True if the page holds nothing but zero bytes (never written). */
static bool page_is_empty(const void *page)
{
	return bytes_are_zero(page, MD_PAGE_SIZE);
}

/* Every field of the common header, on one indented line. */
static void dump_header(struct dump *d, const struct md_header *h)
{
	fprintf(d->out, "  header: magic 0x%08x version %u type %u (%s) crc 0x%08x flags 0x%x"
		" page_no %" PRIu64 " blob_id 0x%" PRIx64 " gen %" PRIu64 " store_id 0x%016" PRIx64
		" index %u level %u reserved0 %u reserved1 %" PRIu64 "\n",
		h->magic, h->version, h->type, type_name(h->type), h->crc, h->flags, h->page_no,
		h->blob_id, h->gen, h->store_id, h->index, h->level, h->reserved0, h->reserved1);
}

/* Count a page and finish its title line with the verdict. */
static void dump_verdict(struct dump *d, const char *why)
{
	d->r->pages++;
	if (why == NULL) {
		fprintf(d->out, ": ok\n");
		return;
	}
	d->r->bad_pages++;
	fprintf(d->out, ": BAD (%s)\n", why);
}

/* Validate @p page against @p e: NULL if good, else the reason. */
static const char *dump_check(const void *page, const struct md_expect *e)
{
	const char *why = NULL;

	if (page_is_empty(page))
		return "empty page: never written";
	md_page_check(page, e, &why);
	return why;
}

static void hex_bytes(FILE *out, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(out, "%02x", p[i]);
}

/* An xattr value: quoted if printable ASCII, else hex; cut at max_value_bytes. */
static void dump_value(struct dump *d, const uint8_t *v, uint32_t len)
{
	uint32_t n = d->opts.max_value_bytes ? BS_MIN(len, d->opts.max_value_bytes) : len;
	bool text = true;

	for (uint32_t i = 0; i < len && text; i++)
		text = v[i] >= 0x20 && v[i] < 0x7f;
	if (text) {
		fputc('"', d->out);
		for (uint32_t i = 0; i < n; i++) {
			if (v[i] == '"' || v[i] == '\\')
				fputc('\\', d->out);
			fputc(v[i], d->out);
		}
		fputc('"', d->out);
	} else {
		fputs("0x", d->out);
		hex_bytes(d->out, v, n);
	}
	if (n < len)
		fprintf(d->out, "... (%u bytes)", len);
}

/* Decode an xattr stream; malformed entries end it with a note. */
static void dump_xattr_stream(struct dump *d, const uint8_t *s, uint32_t len)
{
	uint32_t off = 0, count = 0;

	while (off < len) {
		struct md_xattr_entry e;

		if (len - off < sizeof(e)) {
			fprintf(d->out, "    MALFORMED stream: %u stray bytes at %u\n", len - off, off);
			return;
		}
		memcpy(&e, s + off, sizeof(e));
		if (e.name_len == 0 || e.name_len > MD_XATTR_MAX_NAME ||
		    e.value_len > MD_XATTR_MAX_VALUE ||
		    (uint64_t)e.name_len + e.value_len > len - off - sizeof(e)) {
			fprintf(d->out, "    MALFORMED stream: bad entry at byte %u\n", off);
			return;
		}
		if (d->opts.max_items == 0 || count < d->opts.max_items) {
			fprintf(d->out, "    xattr \"%.*s\"%s = ", (int)e.name_len,
				(const char *)s + off + sizeof(e),
				(e.flags & MD_XATTR_F_INTERNAL) ? " (internal)" : "");
			dump_value(d, s + off + sizeof(e) + e.name_len, e.value_len);
			fprintf(d->out, " [flags 0x%x, %u bytes]\n", e.flags, e.value_len);
		}
		count++;
		off += (uint32_t)sizeof(e) + e.name_len + e.value_len;
	}
	if (d->opts.max_items != 0 && count > d->opts.max_items)
		fprintf(d->out, "    ... %u more xattrs\n", count - d->opts.max_items);
}

/* Print a list of ranges lo-hi; called per range, closes with dump_ranges_end. */
struct ranges {
	uint32_t shown;
	uint64_t more;
};

static void range_put(struct dump *d, struct ranges *rg, uint64_t lo, uint64_t hi,
		      const char *suffix)
{
	if (d->opts.max_items != 0 && rg->shown >= d->opts.max_items) {
		rg->more++;
		return;
	}
	fprintf(d->out, "%s%" PRIu64, rg->shown ? ", " : " ", lo);
	if (hi != lo)
		fprintf(d->out, "-%" PRIu64, hi);
	fputs(suffix, d->out);
	rg->shown++;
}

static void ranges_end(struct dump *d, const struct ranges *rg)
{
	if (rg->more)
		fprintf(d->out, ", ... %" PRIu64 " more", rg->more);
	fputc('\n', d->out);
}

/* ------------------------------------------------------------ device IO */

static void dump_read(struct dump *d, void *buf, uint64_t page, uint64_t npages, bs_cpl_fn cb)
{
	uint64_t bpp = MD_PAGE_SIZE / d->dev->block_len;

	bs_dev_read(d->ch, &d->io, buf, page * bpp, npages * bpp, cb, d);
}

static void dump_free(struct dump *d)
{
	free(d->buf);
	free(d->page);
	free(d->xstream);
	free(d->stack);
	free(d);
}

static void dump_finish(struct dump *d, int err)
{
	bs_cpl_fn cb_fn = d->cb_fn;
	void *cb_arg = d->cb_arg;

	if (err == 0)
		err = d->err;
	fprintf(d->out, "summary: %" PRIu64 " metadata pages examined, %" PRIu64 " bad; %" PRIu64
		" blobs, %" PRIu64 " tombstones, %" PRIu64 " corrupt slots%s\n", d->r->pages,
		d->r->bad_pages, d->r->blobs, d->r->tombstones, d->r->corrupt_slots,
		err == 0 ? "" : " (dump incomplete)");
	bs_dev_put_channel(d->ch);
	dump_free(d);
	cb_fn(cb_arg, err);
}

/* ------------------------------------------------------------ super */

static const char *super_check(const struct md_super *sb, int copy)
{
	struct md_expect e = {
		.type = MD_TYPE_SUPER, .page_no = (uint64_t)copy, .blob_id = 0,
		.store_id = sb->hdr.store_id, .index = (uint32_t)copy, .level = 0,
	};

	if (page_is_empty(sb))
		return "empty page: never written";
	if (memcmp(sb->signature, MD_SIGNATURE, sizeof(sb->signature)) != 0)
		return "no blobstore signature";
	return dump_check(sb, &e);
}

static void dump_super_fields(struct dump *d, const struct md_super *sb)
{
	FILE *o = d->out;

	fprintf(o, "  signature \"%.8s\" format_version %u page_size %u block_len %u"
		" cluster_size %u dev_size %" PRIu64 "\n", sb->signature, sb->format_version,
		sb->page_size, sb->block_len, sb->cluster_size, sb->dev_size);
	fprintf(o, "  total_clusters %" PRIu64 " md_clusters %" PRIu64 " mask_start %" PRIu64
		" mask_pages %" PRIu64 " root_start %" PRIu64 " max_blobs %" PRIu64
		" pool_start %" PRIu64 " pool_pages %" PRIu64 "\n", sb->total_clusters,
		sb->md_clusters, sb->mask_start, sb->mask_pages, sb->root_start, sb->max_blobs,
		sb->pool_start, sb->pool_pages);
	fprintf(o, "  clean %u reserved0 %u txn_next %" PRIu64 " id_next %" PRIu64 " mask_gen %"
		PRIu64 " super_blob 0x%" PRIx64 "\n", sb->clean, sb->reserved0, sb->txn_next,
		sb->id_next, sb->mask_gen, sb->super_blob);
	fputs("  bstype ", o);
	hex_bytes(o, sb->bstype, sizeof(sb->bstype));
	fputs(" uuid ", o);
	hex_bytes(o, sb->uuid, sizeof(sb->uuid));
	fprintf(o, "\n  features_incompat 0x%" PRIx64 " features_ro_compat 0x%" PRIx64
		" features_compat 0x%" PRIx64 " reserved %s\n", sb->features_incompat,
		sb->features_ro_compat, sb->features_compat,
		bytes_are_zero(sb->reserved, sizeof(sb->reserved)) ? "zero" : "NOT zero");
}

/*
 * Place the masks with the library's own rule (mask_kind_pages); false if
 * the super's mask_pages disagrees.
 */
static bool dump_layout_masks(struct dump *d)
{
	const struct md_super *sb = &d->sb;
	struct bs_store *geo = calloc(1, sizeof(*geo));
	uint64_t at = sb->mask_start;

	if (geo == NULL)
		return false;
	geo->total_clusters = sb->total_clusters;
	geo->pool_pages = sb->pool_pages;
	geo->max_blobs = sb->max_blobs;
	for (int k = 0; k < MD_MASK_NKINDS; k++) {
		d->kind_start[k] = at;
		d->kind_pages[k] = mask_kind_pages(geo, k);
		at += d->kind_pages[k];
	}
	free(geo);
	return at - sb->mask_start == sb->mask_pages;
}

/* Sanity of the geometry before anything is read from it. */
static const char *dump_geometry_check(struct dump *d)
{
	const struct md_super *sb = &d->sb;

	if (sb->block_len != d->dev->block_len)
		return "block_len differs from the device's block size";
	if (!BS_IS_POW2(sb->cluster_size) || sb->cluster_size < MD_PAGE_SIZE)
		return "cluster_size is not a power of two of at least a page";
	if (sb->page_size != MD_PAGE_SIZE || sb->mask_start < 2 ||
	    sb->mask_start + sb->mask_pages > sb->root_start ||
	    sb->root_start + 2 * sb->max_blobs > sb->pool_start ||
	    sb->max_blobs > (1ull << 31) || sb->pool_pages > UINT32_MAX)
		return "regions overlap or are out of order";
	if (!dump_layout_masks(d))
		return "mask_pages does not match the mask layout";
	return NULL;
}

/* Print one super copy; returns true if it is valid. */
static bool dump_super_copy(struct dump *d, const struct md_super *sb, int copy)
{
	const char *why = super_check(sb, copy);

	fprintf(d->out, "page %d: super copy %d seq %" PRIu64, copy, copy, sb->hdr.gen);
	dump_verdict(d, why);
	if (!page_is_empty(sb)) {
		dump_header(d, &sb->hdr);
		dump_super_fields(d, sb);
	}
	return why == NULL;
}

static void dump_super_cpl(void *cb_arg, int err)
{
	struct dump *d = cb_arg;
	const struct md_super *c[2] = {
		(const void *)d->buf, (const void *)(d->buf + MD_PAGE_SIZE),
	};
	bool ok[2];
	const char *why;
	int pick;

	if (err != 0) {
		dump_finish(d, err);
		return;
	}
	ok[0] = dump_super_copy(d, c[0], 0);
	ok[1] = dump_super_copy(d, c[1], 1);
	if (!ok[0] && !ok[1]) {
		fprintf(d->out, "no valid super block: not a blobstore, or both copies corrupt\n");
		dump_finish(d, -EILSEQ);
		return;
	}
	pick = !ok[0] ? 1 : !ok[1] ? 0 : c[1]->hdr.gen > c[0]->hdr.gen ? 1 : 0;
	d->sb = *c[pick];
	d->r->super_copy = pick;
	d->r->clean = d->sb.clean != 0;
	fprintf(d->out, "super: using copy %d (seq %" PRIu64 "), store is %s\n", pick,
		d->sb.hdr.gen, d->sb.clean ? "clean" : "NOT clean (masks are stale)");
	why = dump_geometry_check(d);
	if (why != NULL) {
		fprintf(d->out, "super: geometry unusable: %s\n", why);
		dump_finish(d, -EILSEQ);
		return;
	}
	if (d->sb.total_clusters > d->dev->block_count * d->dev->block_len / d->sb.cluster_size) {
		fprintf(d->out, "super: the store (%" PRIu64 " clusters) is larger than the device"
			" (truncated?)\n", d->sb.total_clusters);
		d->err = -ERANGE;
	}
	d->next = d->sb.mask_start;
	dump_masks_next(d);
}

/* ------------------------------------------------------------ masks */

/* Entries of a mask kind: bits of a bitmap, or elements of @p elem bytes. */
static uint64_t mask_count(struct dump *d, int kind, uint32_t *elem)
{
	*elem = 0;
	switch (kind) {
	case MD_MASK_CLUSTERS:
	case MD_MASK_ZEROED: return d->sb.total_clusters;
	case MD_MASK_POOL: return d->sb.pool_pages;
	case MD_MASK_SLOTS:
	case MD_MASK_HIDDEN: return d->sb.max_blobs;
	case MD_MASK_INCARNATIONS: *elem = 4; return d->sb.max_blobs;
	case MD_MASK_PARENTS: *elem = 8; return d->sb.max_blobs;
	default: return 0;
	}
}

static void dump_mask_bits(struct dump *d, const struct md_mask_page *p, uint64_t nbits,
			   uint64_t slice)
{
	uint64_t first = slice * MD_MASK_BITS_PER_PAGE;
	uint64_t n = nbits > first ? BS_MIN(nbits - first, (uint64_t)MD_MASK_BITS_PER_PAGE) : 0;
	struct ranges rg = { 0, 0 };
	uint64_t set = 0, run = UINT64_MAX;

	fputs("  set:", d->out);
	for (uint64_t b = 0; b <= n; b++) {
		bool on = b < n && (p->bits[b >> 3] & (1u << (b & 7)));

		if (on && run == UINT64_MAX)
			run = b;
		if (!on && run != UINT64_MAX) {
			range_put(d, &rg, first + run, first + b - 1, "");
			set += b - run;
			run = UINT64_MAX;
		}
	}
	if (rg.shown == 0)
		fputs(" none", d->out);
	ranges_end(d, &rg);
	fprintf(d->out, "  %" PRIu64 " of %" PRIu64 " bits set in this slice\n", set, n);
}

/* A per-slot array (incarnations, parents): the non-zero entries. */
static void dump_mask_array(struct dump *d, const struct md_mask_page *p, uint64_t count,
			    uint32_t elem, uint64_t slice)
{
	uint64_t per = MD_PAYLOAD / elem, first = slice * per;
	uint64_t n = count > first ? BS_MIN(count - first, per) : 0;
	struct ranges rg = { 0, 0 };
	char suffix[32];

	fputs("  non-zero (slot=value):", d->out);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t v = 0;

		memcpy(&v, p->bits + elem * i, elem);
		if (v == 0)
			continue;
		snprintf(suffix, sizeof(suffix), elem == 4 ? "=%" PRIu64 : "=0x%" PRIx64, v);
		range_put(d, &rg, first + i, first + i, suffix);
	}
	if (rg.shown == 0)
		fputs(" none", d->out);
	ranges_end(d, &rg);
}

static void dump_mask_page(struct dump *d, const struct md_mask_page *p, uint64_t page_no)
{
	int k = 0;
	uint64_t slice, count;
	uint32_t elem;
	struct md_expect e;

	while (k < MD_MASK_NKINDS - 1 && page_no >= d->kind_start[k] + d->kind_pages[k])
		k++;
	slice = page_no - d->kind_start[k];
	e = (struct md_expect){
		.type = MD_TYPE_MASK, .page_no = page_no, .blob_id = 0,
		.gen = d->sb.clean ? d->sb.mask_gen : 0, .store_id = d->sb.hdr.store_id,
		.index = (uint32_t)slice, .level = (uint16_t)k,
	};
	fprintf(d->out, "page %" PRIu64 ": mask %s slice %" PRIu64 "%s", page_no, mask_name(k),
		slice, d->sb.clean ? "" : " (stale: store not clean)");
	dump_verdict(d, dump_check(p, &e));
	if (page_is_empty(p))
		return;
	dump_header(d, &p->hdr);
	count = mask_count(d, k, &elem);
	if (count == 0)
		fputs("  (content of this kind not decoded)\n", d->out);
	else if (elem != 0)
		dump_mask_array(d, p, count, elem, slice);
	else
		dump_mask_bits(d, p, count, slice);
}

static void dump_masks_cpl(void *cb_arg, int err)
{
	struct dump *d = cb_arg;
	uint64_t end = BS_MIN(d->sb.mask_start + d->sb.mask_pages, d->dev_pages);
	uint64_t n = BS_MIN(end - d->next, (uint64_t)DUMP_WINDOW_PAGES);

	if (err != 0) {
		dump_finish(d, err);
		return;
	}
	for (uint64_t i = 0; i < n; i++)
		dump_mask_page(d, (const void *)(d->buf + i * MD_PAGE_SIZE), d->next + i);
	d->next += n;
	dump_masks_next(d);
}

static void dump_masks_next(struct dump *d)
{
	uint64_t end = d->sb.mask_start + d->sb.mask_pages;

	if (end > d->dev_pages) {
		d->err = -ERANGE;
		end = d->dev_pages;
	}
	if (d->next >= end) {
		d->max_slots = d->sb.root_start >= d->dev_pages ? 0 :
			       BS_MIN(d->sb.max_blobs, (d->dev_pages - d->sb.root_start) / 2);
		if (d->max_slots < d->sb.max_blobs) {
			fprintf(d->out, "roots: only %" PRIu64 " of %" PRIu64
				" slots fit on the device\n", d->max_slots, d->sb.max_blobs);
			d->err = -ERANGE;
		}
		d->slot = 0;
		d->win_first = d->win_n = 0;
		dump_roots_next(d);
		return;
	}
	dump_read(d, d->buf, d->next, BS_MIN(end - d->next, (uint64_t)DUMP_WINDOW_PAGES),
		  dump_masks_cpl);
}

/* ------------------------------------------------------------ roots */

static const char *root_check(struct dump *d, const struct md_root *p, uint64_t slot, int page)
{
	struct md_expect e = {
		.type = MD_TYPE_ROOT, .page_no = d->sb.root_start + 2 * slot + (uint64_t)page,
		.blob_id = MD_ANY_ID, .store_id = d->sb.hdr.store_id, .index = (uint32_t)slot,
		.level = (uint16_t)page,
	};

	return dump_check(p, &e);
}

static void dump_refs(struct dump *d, const char *what, const struct md_ref *refs, uint32_t n)
{
	uint32_t used = 0;

	for (uint32_t i = 0; i < n; i++) {
		if (refs[i].gen == 0)
			continue;
		used++;
		if (d->opts.max_items == 0 || used <= d->opts.max_items)
			fprintf(d->out, "  %s[%u]: pool %u (page %" PRIu64 ") gen %" PRIu64
				" crc 0x%08x\n", what, i, refs[i].pool_idx,
				d->sb.pool_start + refs[i].pool_idx, refs[i].gen, refs[i].crc);
	}
	if (d->opts.max_items != 0 && used > d->opts.max_items)
		fprintf(d->out, "  ... %u more %s\n", used - d->opts.max_items, what);
	fprintf(d->out, "  %s: %u of %u in use\n", what, used, n);
}

/* Names of the known flag bits of a root, e.g. " (thin,esnap)". */
static void root_flag_names(const struct md_root *p, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s%s%s", (p->invalid_flags & BLOB_INVALID_THIN) ? ",thin" : "",
		 (p->invalid_flags & BLOB_INVALID_ESNAP) ? ",esnap" : "",
		 (p->data_ro_flags & BLOB_DATA_RO_READ_ONLY) ? ",read-only" : "",
		 (p->md_ro_flags & BLOB_MD_RO_HIDDEN) ? ",hidden" : "",
		 ((p->invalid_flags & ~BLOB_INVALID_KNOWN) || (p->data_ro_flags & ~BLOB_DATA_RO_KNOWN) ||
		  (p->md_ro_flags & ~BLOB_MD_RO_KNOWN)) ? ",UNKNOWN-BITS" : "");
	if (buf[0] == ',')
		buf[0] = ' ';
}

/* The group commit tag (D13): valid only with its members, see docs/snapshots.md. */
static void dump_group(struct dump *d, const struct md_group *g)
{
	uint32_t n = BS_MIN(g->n, MD_GROUP_MAX_OTHERS);

	if (g->gen == 0 && g->n == 0) {
		fputs("  group: none\n", d->out);
		return;
	}
	if (g->n == 0) {
		fprintf(d->out, "  group: rolls back group gen %" PRIu64 " (recovery repair, D17)\n",
			g->gen);
		return;
	}
	fprintf(d->out, "  group: gen %" PRIu64 ", %u other members, slots", g->gen, g->n);
	for (uint32_t i = 0; i < n; i++)
		fprintf(d->out, " %u", g->slots[i]);
	fputs(g->n > MD_GROUP_MAX_OTHERS ? " (n out of range)\n" : "\n", d->out);
}

static void dump_root_fields(struct dump *d, const struct md_root *p)
{
	char flags[64];

	root_flag_names(p, flags, sizeof(flags));
	fprintf(d->out, "  num_clusters %" PRIu64 " invalid_flags 0x%" PRIx64 " data_ro_flags 0x%"
		PRIx64 " md_ro_flags 0x%" PRIx64 " parent_id 0x%" PRIx64 " reserved_id 0x%" PRIx64
		" flags [%s]\n", p->num_clusters, p->invalid_flags, p->data_ro_flags,
		p->md_ro_flags, p->parent_id, p->reserved_id, flags[0] ? flags + 1 : "");
	fprintf(d->out, "  xattr_len %u xattr_npages %u map_depth %u reserved0 %u reserved1 %"
		PRIu64 "\n", p->xattr_len, p->xattr_npages, p->map_depth, p->reserved0,
		p->reserved1);
	dump_refs(d, "map_refs", p->map_refs, MD_ROOT_MAP_REFS);
	dump_refs(d, "xattr_refs", p->xattr_refs, MD_ROOT_XATTR_REFS);
	dump_group(d, &p->group);
	if (p->xattr_npages == 0 && p->xattr_len > 0) {
		if (p->xattr_len > MD_ROOT_INLINE_XATTR) {
			fprintf(d->out, "  xattrs inline: MALFORMED (xattr_len %u)\n", p->xattr_len);
			return;
		}
		fprintf(d->out, "  xattrs inline (%u bytes):\n", p->xattr_len);
		dump_xattr_stream(d, p->xattr_inline, p->xattr_len);
	}
}

static void dump_root_page(struct dump *d, const struct md_root *p, uint64_t slot, int page,
			   const char *why, bool live)
{
	if (page_is_empty(p)) {
		/* Normal: a blob committed once has used one page of its slot. */
		d->r->pages++;
		fprintf(d->out, "page %" PRIu64 ": root slot %" PRIu64 " page %d: empty (never "
			"written)\n", d->sb.root_start + 2 * slot + (uint64_t)page, slot, page);
		return;
	}
	fprintf(d->out, "page %" PRIu64 ": root slot %" PRIu64 " page %d blob 0x%" PRIx64
		" gen %" PRIu64 "%s%s", d->sb.root_start + 2 * slot + (uint64_t)page, slot, page,
		p->hdr.blob_id, p->hdr.gen, (p->hdr.flags & MD_ROOT_F_DELETED) ? " tombstone" : "",
		live ? " live" : "");
	dump_verdict(d, why);
	dump_header(d, &p->hdr);
	dump_root_fields(d, p);
}

/* Pick the live page as blob_md.c does (D3): -1 none valid. */
static int root_pick(const struct md_root pages[2], const char *why[2])
{
	int best = -1;

	for (int p = 0; p < 2; p++)
		if (why[p] == NULL && (best < 0 || pages[p].hdr.gen > pages[best].hdr.gen))
			best = p;
	return best;
}

static bool dump_walk_start(struct dump *d, const struct md_root *root);

/* Print one slot; true if a tree walk was started (it continues the loop). */
static bool dump_slot(struct dump *d, const struct md_root pages[2], uint64_t slot)
{
	const char *why[2] = { root_check(d, &pages[0], slot, 0), root_check(d, &pages[1], slot, 1) };
	int live;

	if (page_is_empty(&pages[0]) && page_is_empty(&pages[1]))
		return false;
	live = root_pick(pages, why);
	if (live < 0) {
		d->r->corrupt_slots++;
		fprintf(d->out, "slot %" PRIu64 ": CORRUPT: no valid root page\n", slot);
	} else if (pages[live].hdr.flags & MD_ROOT_F_DELETED) {
		d->r->tombstones++;
		fprintf(d->out, "slot %" PRIu64 ": free (tombstone of blob 0x%" PRIx64 ")\n", slot,
			pages[live].hdr.blob_id);
	} else {
		d->r->blobs++;
		fprintf(d->out, "slot %" PRIu64 ": blob 0x%" PRIx64 " (live root: page %d, gen %"
			PRIu64 ")\n", slot, pages[live].hdr.blob_id, live, pages[live].hdr.gen);
	}
	for (int p = 0; p < 2; p++)
		dump_root_page(d, &pages[p], slot, p, why[p], p == live);
	if (live < 0 || (pages[live].hdr.flags & MD_ROOT_F_DELETED))
		return false;
	return dump_walk_start(d, &pages[live]);
}

/* Print the slots of the current window from d->slot on. */
static void dump_slots(struct dump *d)
{
	while (d->slot < d->win_first + d->win_n) {
		const struct md_root *pages =
			(const void *)(d->buf + 2 * (d->slot - d->win_first) * MD_PAGE_SIZE);

		if (dump_slot(d, pages, d->slot))
			return; /* the walk comes back here */
		d->slot++;
	}
	dump_roots_next(d);
}

static void dump_roots_cpl(void *cb_arg, int err)
{
	struct dump *d = cb_arg;

	if (err != 0) {
		dump_finish(d, err);
		return;
	}
	dump_slots(d);
}

static void dump_roots_next(struct dump *d)
{
	if (d->slot >= d->max_slots) {
		dump_finish(d, 0);
		return;
	}
	d->win_first = d->slot;
	d->win_n = BS_MIN(d->max_slots - d->slot, (uint64_t)DUMP_WINDOW_SLOTS);
	dump_read(d, d->buf, d->sb.root_start + 2 * d->slot, 2 * d->win_n, dump_roots_cpl);
}

/* ------------------------------------------------------------ tree walk */

static void walk_push(struct dump *d, const struct md_ref *ref, uint64_t node, uint16_t level,
		      uint16_t type)
{
	if (!ALWAYS(d->nstack < DUMP_STACK_MAX))
		return;
	d->stack[d->nstack++] = (struct dump_node){ *ref, node, level, type };
}

/* Queue the live root's pages: xattr slices first, then the map from the top. */
static bool dump_walk_start(struct dump *d, const struct md_root *root)
{
	uint32_t nx = BS_MIN((uint32_t)root->xattr_npages, MD_ROOT_XATTR_REFS);
	uint8_t depth = root->map_depth;

	d->blob_id = root->hdr.blob_id;
	d->num_clusters = root->num_clusters;
	d->xattr_len = root->xattr_npages ? BS_MIN(root->xattr_len, MD_XATTR_MAX_STREAM) : 0;
	d->xattr_bad = false;
	memset(d->xstream, 0, MD_XATTR_MAX_STREAM);
	d->nstack = 0;
	if (depth > MD_MAX_MAP_DEPTH) {
		fprintf(d->out, "  map_depth %u is beyond %u: map not followed\n", depth,
			MD_MAX_MAP_DEPTH);
		depth = 0;
	}
	for (uint32_t i = MD_ROOT_MAP_REFS; depth > 0 && i-- > 0;)
		if (root->map_refs[i].gen != 0)
			walk_push(d, &root->map_refs[i], i, (uint16_t)(depth - 1),
				  depth == 1 ? MD_TYPE_EXTENT : MD_TYPE_INDEX);
	for (uint32_t i = nx; i-- > 0;)
		walk_push(d, &root->xattr_refs[i], i, 0, MD_TYPE_XATTR);
	return dump_walk_next(d);
}

static void dump_extent(struct dump *d, const struct md_extent_page *p, uint64_t node)
{
	uint64_t first = node * MD_EXTENTS_PER_PAGE;
	uint64_t n = d->num_clusters > first ?
		     BS_MIN(d->num_clusters - first, (uint64_t)MD_EXTENTS_PER_PAGE) : 0;
	struct ranges rg = { 0, 0 };
	char suffix[48];

	fprintf(d->out, "  blob clusters %" PRIu64 "-%" PRIu64 " (blob cluster=device cluster):",
		first, first + MD_EXTENTS_PER_PAGE - 1);
	for (uint64_t i = 0; i < n;) {
		uint64_t j = i + 1;
		uint32_t c = p->clusters[i];

		while (j < n && (c == 0 ? p->clusters[j] == 0 : p->clusters[j] == c + (j - i)))
			j++;
		if (c == 0)
			snprintf(suffix, sizeof(suffix), "=unallocated");
		else if (j - i == 1)
			snprintf(suffix, sizeof(suffix), "=%u", c);
		else
			snprintf(suffix, sizeof(suffix), "=%u-%" PRIu64, c, c + (j - i) - 1);
		range_put(d, &rg, first + i, first + j - 1, suffix);
		i = j;
	}
	if (rg.shown == 0)
		fputs(" none (past the blob's end)", d->out);
	ranges_end(d, &rg);
}

/* Show a validated page's content and queue its children. */
static void dump_walk_content(struct dump *d, const struct dump_node *n, const void *page)
{
	if (n->type == MD_TYPE_XATTR) {
		uint64_t off = n->node * MD_PAYLOAD;

		fprintf(d->out, "  stream bytes %" PRIu64 "-%" PRIu64 "\n", off, off + MD_PAYLOAD - 1);
		if (off < MD_XATTR_MAX_STREAM)
			memcpy(d->xstream + off, ((const struct md_xattr_page *)page)->data, MD_PAYLOAD);
		return;
	}
	if (n->type == MD_TYPE_EXTENT) {
		dump_extent(d, page, n->node);
		return;
	}
	const struct md_index_page *ip = page;

	dump_refs(d, "refs", ip->refs, MD_REFS_PER_INDEX);
	for (uint32_t j = MD_REFS_PER_INDEX; j-- > 0;)
		if (ip->refs[j].gen != 0)
			walk_push(d, &ip->refs[j], n->node * MD_REFS_PER_INDEX + j,
				  (uint16_t)(n->level - 1),
				  n->level == 1 ? MD_TYPE_EXTENT : MD_TYPE_INDEX);
}

static void dump_walk_cpl(void *cb_arg, int err)
{
	struct dump *d = cb_arg;
	const struct dump_node *n = &d->cur;
	struct md_expect e = {
		.type = n->type, .page_no = d->sb.pool_start + n->ref.pool_idx,
		.blob_id = d->blob_id, .gen = n->ref.gen, .crc = n->ref.crc, .check_crc = true,
		.store_id = d->sb.hdr.store_id, .index = (uint32_t)n->node, .level = n->level,
	};
	const char *why;

	if (err != 0) {
		dump_finish(d, err);
		return;
	}
	why = dump_check(d->page, &e);
	dump_verdict(d, why);
	if (!page_is_empty(d->page))
		dump_header(d, (const void *)d->page);
	if (why == NULL)
		dump_walk_content(d, n, d->page);
	else if (n->type == MD_TYPE_XATTR)
		d->xattr_bad = true;
	else if (n->type == MD_TYPE_INDEX)
		fprintf(d->out, "  children not followed\n");
	if (!dump_walk_next(d)) {
		d->slot++;
		dump_slots(d);
	}
}

/* All xattr slices visited (they are first on the stack): decode the stream. */
static void dump_walk_xattrs_done(struct dump *d)
{
	if (d->xattr_len == 0)
		return;
	fprintf(d->out, "blob 0x%" PRIx64 ": xattrs (%u bytes in pages)%s\n", d->blob_id,
		d->xattr_len, d->xattr_bad ? ": not decoded, a page is bad" : ":");
	if (!d->xattr_bad)
		dump_xattr_stream(d, d->xstream, d->xattr_len);
	d->xattr_len = 0;
}

/*
 * Visit the next page of the walk: true if a read is in flight (its
 * completion continues), false once the stack is empty.
 */
static bool dump_walk_next(struct dump *d)
{
	const struct dump_node *n;

	for (;;) {
		if (d->nstack == 0 || d->stack[d->nstack - 1].type != MD_TYPE_XATTR)
			dump_walk_xattrs_done(d);
		if (d->nstack == 0)
			return false;
		d->cur = d->stack[--d->nstack];
		n = &d->cur;
		fprintf(d->out, "page %" PRIu64 ": %s blob 0x%" PRIx64 " %s %" PRIu64 " level %u",
			d->sb.pool_start + n->ref.pool_idx, type_name(n->type), d->blob_id,
			n->type == MD_TYPE_XATTR ? "slice" : "node", n->node, n->level);
		if (n->ref.pool_idx < d->sb.pool_pages &&
		    d->sb.pool_start + n->ref.pool_idx < d->dev_pages)
			break;
		dump_verdict(d, "pool index out of range");
		if (n->type == MD_TYPE_XATTR)
			d->xattr_bad = true;
	}
	dump_read(d, d->page, d->sb.pool_start + n->ref.pool_idx, 1, dump_walk_cpl);
	return true;
}

/* ------------------------------------------------------------ entry */

static struct dump *dump_new(struct bs_dev *dev, FILE *out, const struct bs_dump_opts *opts)
{
	struct dump *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return NULL;
	d->dev = dev;
	d->out = out;
	bs_dump_opts_init(&d->opts, sizeof(d->opts));
	if (opts != NULL)
		memcpy(&d->opts, opts, opts->opts_size);
	d->opts.opts_size = sizeof(d->opts);
	d->dev_pages = dev->block_count / (MD_PAGE_SIZE / dev->block_len);
	if (posix_memalign((void **)&d->buf, MD_PAGE_SIZE, DUMP_WINDOW_PAGES * MD_PAGE_SIZE) != 0 ||
	    posix_memalign((void **)&d->page, MD_PAGE_SIZE, MD_PAGE_SIZE) != 0 ||
	    (d->xstream = malloc(MD_XATTR_MAX_STREAM)) == NULL ||
	    (d->stack = calloc(DUMP_STACK_MAX, sizeof(*d->stack))) == NULL) {
		dump_free(d);
		return NULL;
	}
	return d;
}

int bs_dump(struct bs_dev *dev, FILE *out, const struct bs_dump_opts *opts,
	    struct bs_dump_report *report, bs_cpl_fn cb_fn, void *cb_arg)
{
	struct dump *d;

	if (dev == NULL || out == NULL || cb_fn == NULL || dev->block_len > MD_PAGE_SIZE ||
	    (opts != NULL && (opts->opts_size == 0 || opts->opts_size > sizeof(*opts))))
		return -EINVAL;
	if (bs_thread_get_current() == NULL)
		return -EPERM;
	d = dump_new(dev, out, opts);
	if (d == NULL)
		return -ENOMEM;
	d->ch = bs_dev_get_channel(dev);
	if (d->ch == NULL) {
		int rc = -errno;

		dump_free(d);
		return rc;
	}
	d->r = report != NULL ? report : &d->local_report;
	memset(d->r, 0, sizeof(*d->r));
	d->r->super_copy = -1;
	d->cb_fn = cb_fn;
	d->cb_arg = cb_arg;
	fprintf(out, "dump of %s: %" PRIu64 " blocks of %u bytes (%" PRIu64 " pages of %u)\n",
		dev->name, dev->block_count, dev->block_len, d->dev_pages, MD_PAGE_SIZE);
	if (d->dev_pages < 2) {
		fprintf(out, "device smaller than two pages: no super block\n");
		d->dev_pages = 0;
	}
	dump_read(d, d->buf, 0, 2, dump_super_cpl);
	return 0;
}
