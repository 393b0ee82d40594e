/*
 * CRC-32C through ISA-L (SSE4.2 / PCLMUL on x86, dispatched at run time).
 * ISA-L's crc32_iscsi takes and returns the raw register (no inversion), so
 * the standard value is crc32_iscsi(buf, len, ~0) ^ ~0. Lengths above
 * INT_MAX are fed in pieces because ISA-L takes an int.
 */
#include <isa-l/crc.h>
#include <limits.h>

#include "util/crc.h"

uint32_t crc32c_update(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	while (len > 0) {
		int chunk = len > (size_t)INT_MAX ? INT_MAX - 4095 : (int)len;

		crc = crc32_iscsi((unsigned char *)p, chunk, crc);
		p += chunk;
		len -= (size_t)chunk;
	}
	return crc;
}

uint32_t bs_crc32c(const void *buf, size_t len)
{
	return crc32c_update(BS_CRC32C_SEED, buf, len) ^ BS_CRC32C_SEED;
}
