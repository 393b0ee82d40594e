/* Self-identifying data sectors (crash-testing.md 3.3, data tags). */
#include <string.h>

#include "crash.h"
#include "util/crc.h"

#define TAG_MAGIC 0x43525348u	/* "CRSH" */

struct tag {
	uint32_t magic;
	uint32_t crc;		/* CRC-32C of the sector with this field zero */
	uint64_t blob;
	uint64_t sect;
	uint64_t gen;
};

void tag_fill(uint8_t *buf, uint64_t nsect, bs_blob_id id, uint64_t sect, uint64_t gen)
{
	for (uint64_t i = 0; i < nsect; i++) {
		uint8_t *s = buf + i * CT_BLOCK;
		struct tag t = { TAG_MAGIC, 0, id, sect + i, gen };

		for (uint32_t b = sizeof(t); b < CT_BLOCK; b++)
			s[b] = (uint8_t)(gen * 31 + b + i);
		memcpy(s, &t, sizeof(t));
		t.crc = bs_crc32c(s, CT_BLOCK);
		memcpy(s, &t, sizeof(t));
	}
}

int tag_parse(const uint8_t *sector, bs_blob_id *id, uint64_t *sect, uint64_t *gen)
{
	uint8_t tmp[CT_BLOCK];
	struct tag t;
	bool zero = true;

	for (uint32_t i = 0; i < CT_BLOCK && zero; i++)
		zero = sector[i] == 0;
	if (zero)
		return 0;
	memcpy(&t, sector, sizeof(t));
	if (t.magic != TAG_MAGIC)
		return -1;
	memcpy(tmp, sector, CT_BLOCK);
	memset(tmp + offsetof(struct tag, crc), 0, sizeof(t.crc));
	if (bs_crc32c(tmp, CT_BLOCK) != t.crc)
		return -1;
	*id = t.blob;
	*sect = t.sect;
	*gen = t.gen;
	return 1;
}
