/*
 * log.h - diagnostics for operators (not the access log: see alog.h).
 *
 * Messages go to stderr in the foreground and to syslog once the daemon
 * has detached.  Levels follow syslog.  Never pass secrets.
 */
#ifndef MARKETFS_LOG_H
#define MARKETFS_LOG_H

enum log_level {
	LOG_LVL_ERR = 3,
	LOG_LVL_WARNING = 4,
	LOG_LVL_NOTICE = 5,
	LOG_LVL_INFO = 6,
	LOG_LVL_DEBUG = 7,
};

/* ident: program name.  Messages above max_level are dropped. */
void log_init(const char *ident, enum log_level max_level);
/* Send messages to syslog from now on (after daemonising). */
void log_to_syslog(void);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...)	log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...)	log_msg(LOG_LVL_WARNING, __VA_ARGS__)
#define log_notice(...)	log_msg(LOG_LVL_NOTICE, __VA_ARGS__)
#define log_info(...)	log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)	log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
