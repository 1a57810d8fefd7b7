/*
 * timeutil.h - strict RFC 3339 UTC times ("2026-12-03T17:05:37Z").
 *
 * Only the form YYYY-MM-DDTHH:MM:SSZ is accepted (upper-case T and Z, no
 * fraction, no offset), with real calendar ranges.  Times are seconds
 * since the epoch as int64_t.
 */
#ifndef MARKETFS_TIMEUTIL_H
#define MARKETFS_TIMEUTIL_H

#include <stdint.h>

#define TIMEUTIL_RFC3339_LEN	21	/* including the NUL */

/* 0, or -EINVAL when text is not exactly such a time. */
int timeutil_parse(const char *text, int64_t *ret_time);

/* Format t into buf (TIMEUTIL_RFC3339_LEN bytes). */
void timeutil_format(int64_t t, char buf[TIMEUTIL_RFC3339_LEN]);

/* The system clock, in seconds. */
int64_t timeutil_now(void);

#endif
