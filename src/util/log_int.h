/*
 * Internal logging macros. The level is checked before the arguments are
 * formatted, so disabled debug lines cost one load and one compare.
 */
#ifndef BS_UTIL_LOG_INT_H
#define BS_UTIL_LOG_INT_H

#include <blobstore/log.h>

extern int log_level_cur; /* enum bs_log_level, read without a lock */

#define BS_LOG_AT(lvl, ...)                                      \
	do {                                                     \
		if ((int)(lvl) <= log_level_cur)                 \
			bs_log((lvl), __VA_ARGS__);              \
	} while (0)

#define LOG_ERR(...) BS_LOG_AT(BS_LOG_ERROR, __VA_ARGS__)
#define LOG_WARN(...) BS_LOG_AT(BS_LOG_WARN, __VA_ARGS__)
#define LOG_NOTICE(...) BS_LOG_AT(BS_LOG_NOTICE, __VA_ARGS__)
#define LOG_INFO(...) BS_LOG_AT(BS_LOG_INFO, __VA_ARGS__)
#define LOG_DEBUG(...) BS_LOG_AT(BS_LOG_DEBUG, __VA_ARGS__)

#endif /* BS_UTIL_LOG_INT_H */
