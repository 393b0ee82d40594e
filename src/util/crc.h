/*
 * CRC-32C (Castagnoli), through ISA-L's hardware-accelerated crc32_iscsi.
 * bs_crc32c() is the standard CRC-32C: initial value ~0, final XOR ~0, so
 * bs_crc32c("123456789", 9) == 0xE3069283.
 */
#ifndef BS_UTIL_CRC_H
#define BS_UTIL_CRC_H

#include <stddef.h>
#include <stdint.h>

/** Standard CRC-32C of @p len bytes. */
uint32_t bs_crc32c(const void *buf, size_t len);

/**
 * Continue a CRC-32C: crc_update(crc_update(~0, a), b) over two buffers,
 * finished with ~. Start with BS_CRC32C_SEED.
 */
#define BS_CRC32C_SEED 0xFFFFFFFFu
uint32_t crc32c_update(uint32_t crc, const void *buf, size_t len);

#endif /* BS_UTIL_CRC_H */
