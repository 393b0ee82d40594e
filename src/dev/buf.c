/*
 * IO buffers (bs_buf_alloc): aligned memory, huge-page backed when large.
 *
 * O_DIRECT pins the buffer's pages and hands the block layer one segment
 * per physically contiguous run. With 4 KiB pages scattered in memory a
 * 1 MiB read is 256 segments, more than a virtio-blk queue takes (254), so
 * the kernel splits it in two requests; a transparent huge page makes it
 * one segment. Whether the pages of an ordinary allocation happen to be
 * contiguous depends on the allocator's history, so without this the same
 * program runs at half or full speed from one start to the next.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include <blobstore/dev.h>

#define BUF_HUGE (2u * 1024 * 1024)

void *bs_buf_alloc(size_t len, size_t align)
{
	void *buf;
	int rc;

	if (align == 0)
		align = 4096;
	if (len == 0 || (align & (align - 1)) != 0) {
		errno = EINVAL;
		return NULL;
	}
	if (len >= BUF_HUGE && align < BUF_HUGE)
		align = BUF_HUGE;
	if (align < sizeof(void *))
		align = sizeof(void *);
	rc = posix_memalign(&buf, align, len);
	if (rc != 0) {
		errno = rc;
		return NULL;
	}
	if (len >= BUF_HUGE)
		(void)madvise(buf, len, MADV_HUGEPAGE);	/* advice only */
	return buf;
}

void bs_buf_free(void *buf)
{
	free(buf);
}
