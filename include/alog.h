/*
 * alog.h - the access log: one JSON object per line, chained by hash,
 * sealed by signed checkpoints.  docs/access-log.md is the admin's view.
 *
 * Every record carries every key, always in this order, with JSON null
 * for what is not set:
 *
 *   seq       1, 2, ... (continued across reopenings and rotations)
 *   time      RFC 3339 UTC with milliseconds, "2026-12-03T17:05:37.123Z"
 *   event, decision, reason          strings from struct alog_event
 *   errno     name of err ("EKEYEXPIRED"); null when err is 0
 *   uid, gid, user, pid, exe         null unless has_caller; user is the
 *             passwd name (null if none), exe the target of
 *             /proc/PID/exe (null if unreadable, "unknown" for pid 0)
 *   dataset, version, file, licence  strings
 *   bytes, duration_ms               integers; null when negative
 *   detail    free text
 *   host_key  hex Ed25519 public key of the host: in "log-start" and
 *             "checkpoint" records only
 *   count     "checkpoint" only: lines of this file before it
 *   sig       "checkpoint" only: hex Ed25519 signature of the text
 *             alog_checkpoint_text() makes
 *   prev      hex SHA-256 of the previous line's bytes, without its
 *             newline (64 zeros for the first line of a log; the first
 *             line of a rotated file links to the old file's last line)
 *   hash      hex SHA-256 of this line's bytes up to, not including,
 *             the text ,"hash": -- so every line checks itself
 *
 * Strings are cut to 4096 bytes (ending "[...]") and bytes that are not
 * UTF-8 appear as the text "\xHH".  A record is written with one write()
 * and is durable (fdatasync) before alog_write() returns, so an open is
 * never answered before its record is on disk.  Writers from several
 * threads append under one lock and share the syncs (group commit).
 *
 * Failure: when a record cannot be written or synced, the file is cut
 * back to the last synced record (no half record stays), seq and prev
 * go back with it, and the negative errno is returned; the next call
 * starts from that clean state, so the log recovers by itself when the
 * disk can be written again.
 */
#ifndef MARKETFS_ALOG_H
#define MARKETFS_ALOG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ALOG_HASH_HEX		65	/* 64 hex digits and a NUL */
#define ALOG_KEY_HEX		65
#define ALOG_SIG_HEX		129
/* A line longer than this is not one we wrote. */
#define ALOG_LINE_MAX		(256 * 1024)
/* The fixed end of every line: ,"hash":"<64 hex>"} */
#define ALOG_HASH_SUFFIX_LEN	75

struct alog;

/*
 * What the daemon's -o options say about the log.  The strings are
 * malloc'd by alog_options_take() and freed by alog_options_release();
 * callers that fill the struct themselves own their strings.
 */
struct alog_options {
	char *host_key;		/* Ed25519 key file, created (0600) when
				 * missing; NULL: no key, no checkpoints */
	uint64_t max_size;	/* rotate once the file is this big; 0 no */
	unsigned checkpoint_interval;	/* seconds; 0: only at close */
	int syslog;		/* mirror each record to syslog */
	char *witness;		/* https URL checkpoints are POSTed to */
	char *witness_cafile;	/* CA bundle for the witness, or NULL */
	char *spool;		/* unsent checkpoints; NULL: LOG.witness */
	uint64_t warn_free;	/* warn below this many free bytes on the
				 * log's filesystem; 0: a tenth of it */
	int defer_threads;	/* the checkpoint timer and the witness
				 * sender start at alog_start() (for a
				 * daemon that forks after opening) */
};

/*
 * Take the log's options out of argv (in place; *argc shrinks): in
 * "-o a,b" and "-oa,b" lists, log_max_size=BYTES[k|M|G],
 * log_checkpoint_interval=SECONDS, syslog, witness=URL,
 * witness_cafile=FILE, witness_spool=FILE, host_key=FILE and
 * log_warn_free=BYTES[k|M|G].  Other options stay where they were; an
 * "-o" left empty is removed, and its strings are passed to drop_fn
 * (free when argv's strings are malloc'd; NULL to keep them).  -EINVAL
 * with a one-line reason in msg for a bad value.
 */
int alog_options_take(int *argc, char **argv, void (*drop_fn)(void *),
		      struct alog_options *opt, char *msg, size_t msglen);
void alog_options_release(struct alog_options *opt);

/*
 * Open (creating, mode 0600) the log at path for appending, and read its
 * last record to continue the sequence and the chain.  A last line that
 * is not a complete record (a write torn by a crash) is never silently
 * kept: it is terminated and a "recovered" record naming its line is
 * appended before anything else; its "prev" is the hash of the damaged
 * line and its "detail" gives that line's number.  With a host key, a
 * new (empty) file starts with a "log-start" record naming the key.
 * -EINVAL when path is not a regular file.  opt may be NULL (no key,
 * no rotation, no witness).
 */
int alog_open_opts(const char *path, const struct alog_options *opt,
		   struct alog **ret_log);
/*
 * Start the checkpoint timer and the witness sender when they were
 * deferred (no-op when running or not configured).  Call it in the
 * process that will write: threads do not survive fork().
 */
int alog_start(struct alog *log);

/* alog_open_opts(path, NULL, ret_log). */
int alog_open(const char *path, struct alog **ret_log);
/*
 * Write a last checkpoint when records are unsealed (and a key is
 * set), stop the background threads, close.  NULL-safe.
 */
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
	const char *exe;	/* the executable when already known (the
				 * process may be gone by a release), or
				 * NULL to look it up from pid */
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
 * refuse what the record was to describe.  May rotate the file after
 * the record (a rotation failure is logged, not returned).
 */
int alog_write(struct alog *log, const struct alog_event *ev);

/*
 * Seal the log now: a "checkpoint" record signed with the host key,
 * also queued for the witness.  0 when nothing was unsealed; -ENOKEY
 * without a host key.
 */
int alog_checkpoint(struct alog *log);

/* Rotate now (checkpoint, rename to PATH.<seq>, new file). */
int alog_rotate(struct alog *log);

/* errno number to its name ("EKEYEXPIRED"); "E?" when unknown. */
const char *alog_errno_name(int err);

/* ---- shared with the verifier (fs/audit.c) ---- */

/* Lower-case hex SHA-256 of len bytes. */
void alog_hash_hex(const void *data, size_t len, char ret[ALOG_HASH_HEX]);

/*
 * The text a checkpoint's "sig" signs, NUL-terminated in ret:
 *
 *   marketfs-log-checkpoint-v1\n
 *   host_key <hex>\n seq <n>\n time <time>\n head <prev>\n count <n>\n
 *
 * (each field on its own line, a single space after the name).
 * Returns its length, or -ENAMETOOLONG when it does not fit in len.
 */
int alog_checkpoint_text(const char *host_key, uint64_t seq,
			 const char *time, const char *head, uint64_t count,
			 char *ret, size_t len);

/*
 * Load the Ed25519 host key from path (64 hex digits of the secret
 * seed and a newline), creating it (0600, in a 0700 directory) when
 * missing and create is set.  -EACCES when group or others may read
 * it, -EINVAL when it is not such a file.  ret_sk must be wiped.
 */
int alog_host_key_load(const char *path, int create, uint8_t ret_sk[32],
		       uint8_t ret_pk[32]);

#endif
