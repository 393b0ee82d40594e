/* The W1 operation alphabet (ops.c). */
#ifndef CRASH_OPS_H
#define CRASH_OPS_H

#include "crash.h"

enum op_code {
	OP_CREATE_THIN, OP_CREATE_THICK, OP_RESIZE_UP, OP_RESIZE_DOWN, OP_XATTR_SMALL,
	OP_XATTR_BIG, OP_XATTR_RM, OP_WRITE_ALLOC, OP_WRITE_THIN, OP_WRITE_CROSS,
	OP_WRITE_COW, OP_FLUSH, OP_SYNC, OP_SNAPSHOT, OP_CLONE, OP_INFLATE, OP_DECOUPLE,
	OP_DELETE, OP_DELETE_SNAP, OP_RELOAD, OP_BURST, OP_COUNT
};
extern const char *const op_name[OP_COUNT];

/* Model blob roles in the "min" and "pop" start images. */
enum { ROLE_T = 0, ROLE_N = 1, ROLE_C = 2, ROLE_S = 3, ROLE_F = 4 };

int ops_create(struct run *x, bool thin, uint64_t clusters);
int ops_write(struct run *x, int b, uint64_t sect);
int ops_sync(struct run *x, int b);
int ops_flush(struct run *x);
int ops_snapshot(struct run *x, int b);
int ops_clone(struct run *x, int s);
int ops_close_all(struct run *x);
int ops_open_all(struct run *x);
int ops_reload(struct run *x);
int ops_resize_to(struct run *x, int b, uint64_t n);
int ops_xattr(struct run *x, int b, const char *name, uint32_t len, bool rm);
int ops_delete_ex(struct run *x, int b, int fail_skip);
int ops_alloc_release(struct run *x, int b, uint64_t alloc, uint64_t rel);
bool ops_applicable(struct run *x, int code);
int ops_apply(struct run *x, int code, int *target);

#endif /* CRASH_OPS_H */
