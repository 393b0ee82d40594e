/* Structure-aware resealing (see fuzz_reseal.h). Harness code: it trusts
 * nothing in the image and bounds every walk by the page count. */
#include <stdlib.h>
#include <string.h>

#include "blob/format.h"
#include "blob/md_page.h"
#include "fuzz_reseal.h"

#define RS_MAX_PAGES 2048u

struct rs {
	uint8_t *img;
	uint64_t npages;
	uint64_t pool_start;
	const struct fz_reseal_opts *o;
	uint8_t done[RS_MAX_PAGES / 8];	/* pages already resealed */
	uint32_t old_crc[RS_MAX_PAGES];	/* their CRC before */
	bool valid[RS_MAX_PAGES];	/* their CRC was right before */
};

struct rs_crc {
	uint32_t old_crc;
	uint32_t new_crc;
};

static struct md_header *rs_page(struct rs *s, uint64_t page_no)
{
	if (page_no >= s->npages || page_no >= RS_MAX_PAGES)
		return NULL;
	return (struct md_header *)(s->img + page_no * MD_PAGE_SIZE);
}

static bool rs_done(const struct rs *s, uint64_t page_no)
{
	return s->done[page_no / 8] & (1u << (page_no % 8));
}

/* Record a page's CRC and validity before any of its refs change. */
static struct md_header *rs_begin(struct rs *s, uint64_t page_no)
{
	struct md_header *h = rs_page(s, page_no);

	if (h == NULL || h->magic != MD_MAGIC || rs_done(s, page_no))
		return h;
	s->old_crc[page_no] = h->crc;
	s->valid[page_no] = md_page_seal(h) == s->old_crc[page_no];
	h->crc = s->old_crc[page_no];
	return h;
}

/* Seal one page (once, after rs_begin); returns its old and new CRC. */
static bool rs_seal(struct rs *s, uint64_t page_no, struct rs_crc *c)
{
	struct md_header *h = rs_page(s, page_no);

	if (h == NULL || h->magic != MD_MAGIC)
		return false;
	if (!rs_done(s, page_no)) {
		s->done[page_no / 8] |= (uint8_t)(1u << (page_no % 8));
		if (s->o->restamp)
			h->store_id = s->o->store_id;
		if (s->valid[page_no] || !s->o->faithful)
			md_page_seal(h);
	}
	c->old_crc = s->old_crc[page_no];
	c->new_crc = h->crc;
	return true;
}

/* Point @p ref at the resealed child (faithful: only if it matched before). */
static void rs_fix_ref(struct rs *s, struct md_ref *ref, const struct rs_crc *c)
{
	if (!s->o->faithful || ref->crc == c->old_crc)
		ref->crc = c->new_crc;
}

static void rs_tree(struct rs *s, struct md_ref *refs, uint32_t nrefs, int level);

/* Reseal the subtree under one pool page, children first. */
static void rs_node(struct rs *s, struct md_ref *ref, int level)
{
	uint64_t page_no = s->pool_start + ref->pool_idx;
	struct md_header *h = rs_begin(s, page_no);
	struct rs_crc c;

	if (h == NULL || h->magic != MD_MAGIC)
		return;
	if (level > 0 && h->type == MD_TYPE_INDEX && !rs_done(s, page_no))
		rs_tree(s, ((struct md_index_page *)h)->refs, MD_REFS_PER_INDEX, level - 1);
	if (rs_seal(s, page_no, &c))
		rs_fix_ref(s, ref, &c);
}

static void rs_tree(struct rs *s, struct md_ref *refs, uint32_t nrefs, int level)
{
	for (uint32_t i = 0; i < nrefs; i++)
		if (refs[i].gen != 0)
			rs_node(s, &refs[i], level);
}

static void rs_root(struct rs *s, uint64_t page_no)
{
	struct md_root *r = (struct md_root *)rs_begin(s, page_no);
	struct rs_crc c;
	int depth;

	if (r == NULL || r->hdr.magic != MD_MAGIC || r->hdr.type != MD_TYPE_ROOT)
		return;
	depth = r->map_depth > MD_MAX_MAP_DEPTH ? (int)MD_MAX_MAP_DEPTH : r->map_depth;
	if (depth > 0)
		rs_tree(s, r->map_refs, MD_ROOT_MAP_REFS, depth - 1);
	rs_tree(s, r->xattr_refs, r->xattr_npages < MD_ROOT_XATTR_REFS ? r->xattr_npages :
		MD_ROOT_XATTR_REFS, 0);
	rs_seal(s, page_no, &c);
}

static const struct md_super *rs_super(const uint8_t *img)
{
	for (int copy = 0; copy < 2; copy++) {
		const struct md_super *sb = (const void *)(img + copy * MD_PAGE_SIZE);

		if (memcmp(sb->signature, MD_SIGNATURE, sizeof(sb->signature)) == 0)
			return sb;
	}
	return NULL;
}

void fz_reseal(uint8_t *img, uint64_t npages, const struct fz_reseal_opts *o)
{
	const struct md_super *sb = rs_super(img);
	struct rs *s = calloc(1, sizeof(*s));
	struct rs_crc c;

	if (s == NULL || sb == NULL) {
		free(s);
		return;
	}
	s->img = img;
	s->npages = npages;
	s->pool_start = sb->pool_start;
	s->o = o;
	for (uint64_t i = 0; i < sb->max_blobs && i < npages && sb->root_start < npages &&
	     sb->root_start + 2 * i + 1 < npages; i++) {
		rs_root(s, sb->root_start + 2 * i);
		rs_root(s, sb->root_start + 2 * i + 1);
	}
	for (uint64_t p = 0; p < npages; p++) {
		rs_begin(s, p);	/* supers, masks, orphaned pool pages */
		rs_seal(s, p, &c);
	}
	free(s);
}

void fz_reseal_supers(uint8_t *img)
{
	for (int copy = 0; copy < 2; copy++) {
		struct md_header *h = (struct md_header *)(img + copy * MD_PAGE_SIZE);

		if (h->magic == MD_MAGIC)
			md_page_seal(h);
	}
}
