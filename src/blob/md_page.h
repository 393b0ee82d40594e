/*
 * Metadata page helpers: sealing (header + CRC) and validation (D1).
 */
#ifndef BS_BLOB_MD_PAGE_H
#define BS_BLOB_MD_PAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "blob/format.h"

/** What a referrer expects of a page; a field of ~0 (or 0 for gen) is not checked. */
struct md_expect {
	uint16_t type;
	uint64_t page_no;
	uint64_t blob_id;	/* checked unless MD_ANY_ID */
	uint64_t gen;		/* checked unless 0 */
	uint32_t crc;		/* checked when check_crc */
	bool check_crc;
	uint64_t store_id;
	uint32_t index;		/* checked unless MD_ANY_INDEX */
	uint16_t level;		/* checked unless MD_ANY_LEVEL */
};
#define MD_ANY_ID UINT64_MAX
#define MD_ANY_INDEX UINT32_MAX
#define MD_ANY_LEVEL UINT16_MAX

/** Fill the header fields of @p page (everything but crc). */
void md_page_init(void *page, uint16_t type, uint64_t page_no, uint64_t blob_id,
		  uint64_t gen, uint64_t store_id, uint32_t index, uint16_t level);

/** Compute and store the page CRC; returns it. */
uint32_t md_page_seal(void *page);

/** CRC of the page as stored (header crc field). */
static inline uint32_t md_page_crc(const void *page)
{
	return ((const struct md_header *)page)->crc;
}

/**
 * Validate @p page against @p e (D1).
 * @return 0, or -EILSEQ with *why set to a short static reason.
 */
int md_page_check(const void *page, const struct md_expect *e, const char **why);

#endif /* BS_BLOB_MD_PAGE_H */
