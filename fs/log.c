/*
 * log.c - diagnostics for operators (the access log is alog.c).
 *
 * Until log_to_syslog() is called, messages go to stderr as
 * "IDENT: message", one line per call; afterwards they go to syslog(3)
 * with the matching priority.  Each message is formatted into a local
 * buffer first and emitted with one call, so lines from several threads
 * never interleave.  The sink and level are switched under a mutex.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "log.h"

#define LOG_LINE_MAX	2048

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_ident[64] = "marketfs";
static enum log_level log_max = LOG_LVL_INFO;
static int log_syslog;

void log_init(const char *ident, enum log_level max_level)
{
	pthread_mutex_lock(&log_lock);
	if (ident && *ident)
		snprintf(log_ident, sizeof(log_ident), "%s", ident);
	__atomic_store_n(&log_max, max_level, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&log_lock);
}

void log_to_syslog(void)
{
	pthread_mutex_lock(&log_lock);
	if (!log_syslog) {
		/* log_ident is static storage: openlog keeps the pointer. */
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
		log_syslog = 1;
	}
	pthread_mutex_unlock(&log_lock);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	va_list ap;
	size_t n;

	/* A racy read of log_max only decides whether to format at all. */
	if (level > __atomic_load_n(&log_max, __ATOMIC_RELAXED))
		return;

	va_start(ap, fmt);
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);

	/* One message is one line: drop a trailing newline if given. */
	n = strlen(line);
	while (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';

	pthread_mutex_lock(&log_lock);
	if (log_syslog)
		syslog((int)level, "%s", line);
	else
		fprintf(stderr, "%s: %s\n", log_ident, line);
	pthread_mutex_unlock(&log_lock);
}
