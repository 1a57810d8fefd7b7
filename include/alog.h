/*
 * alog.h - the access log: one JSON object per line, chained by hash.
 *
 * Every record carries every key, always in this order, with JSON null
 * for what is not set:
 *
 *   seq       1, 2, ... (continued across reopenings)
 *   time      RFC 3339 UTC with milliseconds, "2026-12-03T17:05:37.123Z"
 *   event, decision, reason          strings from struct alog_event
 *   errno     name of err ("EKEYEXPIRED"); null when err is 0
 *   uid, gid, user, pid, exe         null unless has_caller; user is the
 *             passwd name (null if none), exe the target of
 *             /proc/PID/exe (null if unreadable, "unknown" for pid 0)
 *   dataset, version, file, licence  strings
 *   bytes, duration_ms               integers; null when negative
 *   detail    free text
 *   prev      hex SHA-256 of the previous line's bytes, without its
 *             newline (64 zeros for the first line of a log file)
 *
 * Strings are cut to 4096 bytes (ending "[...]") and bytes that are not
 * UTF-8 appear as the text "\xHH".  A record is written with one
 * write() and made durable with fdatasync() before alog_write() returns,
 * so an open is never answered before its record is on disk.  Writers
 * from several threads are serialised.
 *
 * Failure: when a record cannot be written or synced, the file is cut
 * back to where it was (no half record stays), seq and prev are not
 * advanced, and the negative errno is returned; the next call starts
 * from that clean state.
 */
#ifndef MARKETFS_ALOG_H
#define MARKETFS_ALOG_H

#include <stdint.h>
#include <sys/types.h>

struct alog;

/*
 * Open (creating, mode 0600) the log at path for appending, and read its
 * last record to continue the sequence and the chain.  A last line that
 * is not a complete record (a write torn by a crash) is never silently
 * kept: it is terminated and a "recovered" record naming its line is
 * appended before anything else; its "prev" is the hash of the damaged
 * line and its "detail" gives that line's number.  -EINVAL when path is
 * not a regular file.
 */
int alog_open(const char *path, struct alog **ret_log);
/* Closes the file.  NULL-safe. */
void alog_close(struct alog *log);

struct alog_event {
	const char *event;	/* "open", "release", "mount", "unmount",
				 * "integrity", ... (required) */
	const char *decision;	/* "allow" / "deny" or NULL */
	const char *reason;	/* why, in a few words, or NULL */
	int err;		/* errno answered (positive), 0 if none */
	int has_caller;		/* uid/gid/pid below are set */
	uid_t uid;
	gid_t gid;
	pid_t pid;		/* user name and executable are looked up */
	const char *dataset;
	const char *version;
	const char *file;
	const char *licence;
	int64_t bytes;		/* -1: not set */
	int64_t duration_ms;	/* -1: not set */
	const char *detail;	/* free text, or NULL */
};

/* Initialise ev with nothing set (bytes and duration -1). */
void alog_event_init(struct alog_event *ev);

/*
 * Append one record and sync it.  0, or a negative errno (-EIO, -ENOSPC,
 * -EROFS...) when it could not be made durable; the caller must then
 * refuse what the record was to describe.
 */
int alog_write(struct alog *log, const struct alog_event *ev);

/* errno number to its name ("EKEYEXPIRED"); "E?" when unknown. */
const char *alog_errno_name(int err);

#endif
