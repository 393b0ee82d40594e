/*
 * Assertion vocabulary.
 *  assert(x)      internal invariant; never has side effects.
 *  ALWAYS(x)      believed always true, but release builds keep a recovery
 *                 path: `if (!ALWAYS(p != NULL)) return -EINVAL;`.
 *  NEVER(x)       the mirror image of ALWAYS.
 *  STATIC_ASSERT  compile-time check (on-disk sizes, enum ranges).
 */
#ifndef BS_UTIL_ASSERT_INT_H
#define BS_UTIL_ASSERT_INT_H

#include <assert.h>
#include <stdbool.h>

#ifdef NDEBUG
#define ALWAYS(x) (x)
#define NEVER(x) (x)
#else
#define ALWAYS(x) ((x) ? true : (assert(0 && #x), false))
#define NEVER(x) ((x) ? (assert(0 && #x), true) : false)
#endif

#define STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)

#define BS_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define BS_MIN(a, b) ((a) < (b) ? (a) : (b))
#define BS_MAX(a, b) ((a) > (b) ? (a) : (b))
#define BS_IS_POW2(x) ((x) != 0 && (((x) & ((x) - 1)) == 0))
#define BS_CONTAINER_OF(ptr, type, member) \
	((type *)((char *)(ptr) - __builtin_offsetof(type, member)))

#endif /* BS_UTIL_ASSERT_INT_H */
