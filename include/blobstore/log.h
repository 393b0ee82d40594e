/*
 * Logging. The library writes one line per event to stderr (or to a hook
 * the application installs). The level is read once from the environment
 * variable BLOBSTORE_LOG (error, warn, notice, info, debug); default notice.
 */
#ifndef BLOBSTORE_LOG_H
#define BLOBSTORE_LOG_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

enum bs_log_level {
	BS_LOG_ERROR = 0,
	BS_LOG_WARN = 1,
	BS_LOG_NOTICE = 2,
	BS_LOG_INFO = 3,
	BS_LOG_DEBUG = 4,
};

typedef void (*bs_log_hook_fn)(void *arg, enum bs_log_level level, const char *line);

/** Set the most verbose level printed. Thread-safe. */
void bs_log_set_level(enum bs_log_level level);
enum bs_log_level bs_log_get_level(void);

/** Route lines to @p fn instead of stderr (NULL restores stderr). */
void bs_log_set_hook(bs_log_hook_fn fn, void *arg);

/** Print one line if @p level is enabled. The line gets a "blobstore: " prefix. */
void bs_log(enum bs_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif
#endif /* BLOBSTORE_LOG_H */
