/*
 * Metadata page sealing and validation. A page's CRC-32C covers all 4096
 * bytes with the crc field taken as zero, so the header is protected too.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "blob/md_page.h"
#include "util/crc.h"

void md_page_init(void *page, uint16_t type, uint64_t page_no, uint64_t blob_id,
		  uint64_t gen, uint64_t store_id, uint32_t index, uint16_t level)
{
	struct md_header *h = page;

	memset(h, 0, sizeof(*h));
	h->magic = MD_MAGIC;
	h->version = MD_VERSION;
	h->type = type;
	h->page_no = page_no;
	h->blob_id = blob_id;
	h->gen = gen;
	h->store_id = store_id;
	h->index = index;
	h->level = level;
}

/* CRC of the page with the crc field read as zero. */
static uint32_t md_page_compute_crc(const void *page)
{
	static const uint32_t zero;
	const uint8_t *p = page;
	size_t off = offsetof(struct md_header, crc);
	uint32_t crc;

	crc = crc32c_update(BS_CRC32C_SEED, p, off);
	crc = crc32c_update(crc, &zero, sizeof(zero));
	crc = crc32c_update(crc, p + off + 4, MD_PAGE_SIZE - off - 4);
	return crc ^ BS_CRC32C_SEED;
}

uint32_t md_page_seal(void *page)
{
	struct md_header *h = page;

	h->crc = md_page_compute_crc(page);
	return h->crc;
}

/* Identity checks after the CRC passed; NULL if all match. */
static const char *md_page_identity(const struct md_header *h, const struct md_expect *e)
{
	if (h->type != e->type)
		return "wrong page type";
	if (h->page_no != e->page_no)
		return "page number mismatch (misdirected or stale page)";
	if (h->store_id != e->store_id)
		return "page belongs to another store";
	if (e->blob_id != MD_ANY_ID && h->blob_id != e->blob_id)
		return "owner blob mismatch";
	if (e->gen != 0 && h->gen != e->gen)
		return "generation mismatch (stale page)";
	if (h->gen >= MD_GEN_LIMIT)
		return "generation out of range";
	if (e->check_crc && h->crc != e->crc)
		return "crc differs from the reference";
	if (e->index != MD_ANY_INDEX && h->index != e->index)
		return "position mismatch";
	if (e->level != MD_ANY_LEVEL && h->level != e->level)
		return "level mismatch";
	return NULL;
}

int md_page_check(const void *page, const struct md_expect *e, const char **why)
{
	const struct md_header *h = page;
	const char *reason = NULL;

	if (h->magic != MD_MAGIC)
		reason = "bad magic";
	else if (h->version != MD_VERSION)
		reason = "unknown page version";
	else if (md_page_compute_crc(page) != h->crc)
		reason = "crc mismatch";
	else
		reason = md_page_identity(h, e);
	if (why != NULL)
		*why = reason;
	return reason ? -EILSEQ : 0;
}
