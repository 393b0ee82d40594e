/*
 * Argument parsing and formatting: sizes with binary suffixes, numbers in
 * decimal or hex, blob ids, and the byte length import records.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s == NULL || *s == '\0' || *s == '-' || isspace((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno != 0 || *end != '\0')
		return -EINVAL;
	*out = v;
	return 0;
}

/* The multiplier of a size suffix, 0 if unknown. */
static uint64_t size_unit(const char *u)
{
	static const struct {
		const char *names[4];
		uint64_t mult;
	} units[] = {
		{ { "", "b", NULL, NULL }, 1 },
		{ { "k", "kb", "kib", NULL }, 1ull << 10 },
		{ { "m", "mb", "mib", NULL }, 1ull << 20 },
		{ { "g", "gb", "gib", NULL }, 1ull << 30 },
		{ { "t", "tb", "tib", NULL }, 1ull << 40 },
	};

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		for (size_t j = 0; j < 4 && units[i].names[j] != NULL; j++)
			if (strcasecmp(u, units[i].names[j]) == 0)
				return units[i].mult;
	return 0;
}

int parse_size(const char *s, uint64_t *out)
{
	char *end;
	double v;
	uint64_t mult;

	if (s == NULL || *s == '\0' || *s == '-' || isspace((unsigned char)*s))
		return -EINVAL;
	if (strncasecmp(s, "0x", 2) == 0)
		return parse_u64(s, out);
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || strchr(s, 'e') || strchr(s, 'E') ||
	    strncasecmp(s, "inf", 3) == 0 || strncasecmp(s, "nan", 3) == 0)
		return -EINVAL;
	mult = size_unit(end);
	if (mult == 0 || v * (double)mult >= 18446744073709551616.0)
		return -EINVAL;
	*out = (uint64_t)(v * (double)mult + 0.5);
	if (mult == 1 && v != (double)*out)
		return -EINVAL; /* fractional bytes */
	return 0;
}

int parse_id(struct cli *c, const char *s, bs_blob_id *id)
{
	uint64_t v;

	if (parse_u64(s, &v) != 0 || v == BS_BLOB_ID_INVALID) {
		cli_err(c, "'%s' is not a blob id (hex like 0x100000000, or decimal)", s);
		return CLI_USAGE;
	}
	*id = v;
	return 0;
}

const char *fmt_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)bytes;
	size_t u = 0;

	while (v >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 " B", bytes);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

uint64_t bytes_to_clusters(struct cli *c, uint64_t bytes)
{
	uint64_t cs = bs_get_cluster_size(c->bs);

	return bytes / cs + (bytes % cs != 0);
}

uint64_t blob_byte_size(struct cli *c, struct bs_blob *blob, bool *recorded)
{
	uint64_t whole = bs_blob_get_num_clusters(blob) * bs_get_cluster_size(c->bs);
	const void *v;
	uint32_t len;
	char text[24];
	uint64_t n;

	*recorded = false;
	if (bs_blob_get_xattr(blob, CLI_SIZE_XATTR, &v, &len) != 0 || len == 0 ||
	    len >= sizeof(text))
		return whole;
	memcpy(text, v, len);
	text[len] = '\0';
	if (parse_u64(text, &n) != 0 || n > whole)
		return whole;
	*recorded = true;
	return n;
}
