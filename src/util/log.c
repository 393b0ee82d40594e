/*
 * Leveled logger: one line per event, to stderr or an application hook.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/log_int.h"

int log_level_cur = BS_LOG_NOTICE;

static bs_log_hook_fn g_hook;
static void *g_hook_arg;
static pthread_once_t g_env_once = PTHREAD_ONCE_INIT;

static const char *const g_level_names[] = {
	"error", "warn", "notice", "info", "debug",
};

static void log_read_env(void)
{
	const char *env = getenv("BLOBSTORE_LOG");

	if (env == NULL)
		return;
	for (int i = 0; i <= BS_LOG_DEBUG; i++) {
		if (strcasecmp(env, g_level_names[i]) == 0)
			__atomic_store_n(&log_level_cur, i, __ATOMIC_RELAXED);
	}
}

__attribute__((constructor)) static void log_init(void)
{
	pthread_once(&g_env_once, log_read_env);
}

void bs_log_set_level(enum bs_log_level level)
{
	if ((int)level < BS_LOG_ERROR)
		level = BS_LOG_ERROR;
	if (level > BS_LOG_DEBUG)
		level = BS_LOG_DEBUG;
	__atomic_store_n(&log_level_cur, (int)level, __ATOMIC_RELAXED);
}

enum bs_log_level bs_log_get_level(void)
{
	return (enum bs_log_level)__atomic_load_n(&log_level_cur, __ATOMIC_RELAXED);
}

void bs_log_set_hook(bs_log_hook_fn fn, void *arg)
{
	g_hook_arg = arg;
	g_hook = fn;
}

void bs_log(enum bs_log_level level, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if ((int)level > __atomic_load_n(&log_level_cur, __ATOMIC_RELAXED))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (g_hook != NULL) {
		g_hook(g_hook_arg, level, line);
		return;
	}
	fprintf(stderr, "blobstore: %s: %s\n", g_level_names[level], line);
}
