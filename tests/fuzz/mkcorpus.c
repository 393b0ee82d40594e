/*
 * Seed corpus generator for the loader fuzzer: writes small inputs
 * (format: fuzz_input.h) into the directory given as argv[1]:
 * every base image under each load path, and the regression inputs of the
 * bugs the fuzzer found (named regress-*). Run: mkcorpus tests/fuzz/corpus
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "blob/format.h"
#include "fuzz_input.h"

#define MK_MAX 512u
#define MK_ROOT_START 9u	/* 2 super + 7 mask pages in the fuzz geometry */

struct mk {
	uint8_t buf[MK_MAX];
	size_t n;
};

static void mk_start(struct mk *m, uint8_t ctrl)
{
	m->buf[0] = ctrl;
	m->n = 1;
}

static void mk_patch(struct mk *m, uint8_t page, size_t off, const void *bytes, uint8_t len)
{
	uint8_t *p = m->buf + m->n;

	p[0] = page;
	p[1] = (uint8_t)off;
	p[2] = (uint8_t)(off >> 8);
	p[3] = len;
	memcpy(p + FZ_PATCH_HDR, bytes, len);
	m->n += FZ_PATCH_HDR + len;
}

/* The same u64 in both super copies. */
static void mk_super_u64(struct mk *m, size_t off, uint64_t v)
{
	mk_patch(m, 0, off, &v, sizeof(v));
	mk_patch(m, 1, off, &v, sizeof(v));
}

/* The same u64 in both root pages of slot @p slot. */
static void mk_root_u64(struct mk *m, uint8_t slot, size_t off, uint64_t v)
{
	mk_patch(m, (uint8_t)(MK_ROOT_START + 2 * slot), off, &v, sizeof(v));
	mk_patch(m, (uint8_t)(MK_ROOT_START + 2 * slot + 1), off, &v, sizeof(v));
}

static void mk_root_byte(struct mk *m, uint8_t slot, size_t off, uint8_t v)
{
	mk_patch(m, (uint8_t)(MK_ROOT_START + 2 * slot), off, &v, 1);
	mk_patch(m, (uint8_t)(MK_ROOT_START + 2 * slot + 1), off, &v, 1);
}

static int mk_write(const char *dir, const char *name, const struct mk *m)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(m->buf, 1, m->n, f) != m->n) {
		fprintf(stderr, "mkcorpus: cannot write %s\n", path);
		if (f != NULL)
			fclose(f);
		return 1;
	}
	return fclose(f) != 0;
}

static int mk_bases(const char *dir)
{
	static const char *const base[FZ_NBASE] = { "empty", "full", "dirty", "dirty-view" };
	static const struct { const char *name; uint8_t ctrl; } path[] = {
		{ "clean", 0 }, { "force", FZ_C_FORCE_RECOVER },
		{ "toggled", FZ_C_TOGGLE_CLEAN | FZ_C_RESEAL }, { "lifo", FZ_C_LIFO },
	};
	char name[64];
	struct mk m;
	int rc = 0;

	for (unsigned b = 0; b < FZ_NBASE; b++) {
		for (unsigned p = 0; p < sizeof(path) / sizeof(path[0]); p++) {
			snprintf(name, sizeof(name), "seed-%s-%s", base[b], path[p].name);
			mk_start(&m, (uint8_t)(b << FZ_C_BASE_SHIFT | path[p].ctrl));
			rc |= mk_write(dir, name, &m);
		}
	}
	return rc;
}

static int mk_regressions(const char *dir)
{
	uint8_t full = FZ_BASE_FULL << FZ_C_BASE_SHIFT;
	struct mk m;
	int rc = 0;

	/* super_check_device: root_start + 2 * max_blobs wraps to a small value. */
	mk_start(&m, full | FZ_C_RESEAL);
	mk_super_u64(&m, offsetof(struct md_super, max_blobs), 1ull << 63);
	rc |= mk_write(dir, "regress-super-max-blobs-wrap", &m);
	/* pool_start + pool_pages wraps. */
	mk_start(&m, full | FZ_C_RESEAL);
	mk_super_u64(&m, offsetof(struct md_super, pool_pages), ~0ull - 20);
	rc |= mk_write(dir, "regress-super-pool-pages-wrap", &m);
	/* md_clusters * pages per cluster wraps. */
	mk_start(&m, full | FZ_C_RESEAL);
	mk_super_u64(&m, offsetof(struct md_super, md_clusters), 1ull << 62);
	rc |= mk_write(dir, "regress-super-md-clusters-wrap", &m);
	/* mask_pages that disagrees with the geometry. */
	mk_start(&m, full | FZ_C_RESEAL);
	mk_super_u64(&m, offsetof(struct md_super, mask_pages), 1);
	rc |= mk_write(dir, "regress-super-mask-pages", &m);
	/* A root claiming a huge thin blob, both load paths. */
	mk_start(&m, full | FZ_C_RESEAL | FZ_C_FORCE_RECOVER);
	mk_root_u64(&m, 1, offsetof(struct md_root, num_clusters), 1ull << 40);
	mk_root_byte(&m, 1, offsetof(struct md_root, map_depth), 4);
	rc |= mk_write(dir, "regress-root-num-clusters", &m);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: mkcorpus DIR\n");
		return 2;
	}
	return mk_bases(argv[1]) | mk_regressions(argv[1]);
}
