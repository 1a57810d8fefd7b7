/*
 * alog.c - the access log: one JSON object per line, chained by hash,
 * sealed by signed checkpoints, rotated by size, mirrored to syslog and
 * a witness.
 *
 * Record layout (keys always present, in this order; null when unset):
 *
 *   seq, time, event, decision, reason, errno, uid, gid, user, pid, exe,
 *   dataset, version, file, licence, bytes, duration_ms, detail,
 *   host_key, count, sig, prev, hash
 *
 * "prev" is the hex SHA-256 of the previous line's bytes without its
 * newline (64 zeros for the first line of a log), whatever that line
 * was: a torn line is hashed like any other, so the chain always links
 * physical lines.  "hash" is the SHA-256 of the line up to ,"hash":, so
 * that even the last line, which no later line protects, checks itself.
 *
 * Invariants:
 * - A record is built completely in memory and appended with one
 *   write() of the whole line and its '\n' under log->lock, which
 *   guards seq, prev, the positions and the key.  Group commit: the
 *   writer then waits until a sync covering its end is done; whichever
 *   waiter finds no sync running does one fdatasync() (outside the
 *   lock) for everybody appended so far.
 * - Positions are logical byte counts that never go back at rotation
 *   ("pos"); the current file starts at "base".  "synced_*" is the
 *   state after the last successful sync.
 * - When a write fails, the file is cut back to where that write
 *   started.  When a sync fails, the file is cut back to the last synced
 *   record, seq/prev/lines go back with it, and every writer still
 *   waiting fails (they are in an older "epoch").  A failed cut is
 *   retried before the next write (need_cut).
 * - Checkpoints and rotation hold "exclusive": new writers wait, so the
 *   checkpoint is the old file's last line and nobody writes to a file
 *   descriptor that is being replaced.
 * - At open, the last line is read back to continue seq and the chain.
 *   A last line that is not a complete record (no newline at the end,
 *   or not a JSON object with a positive integer "seq") was torn by a
 *   crash or damaged: it is terminated and a "recovered" record naming
 *   its line number is appended before anything else.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "alog.h"
#include "cipher.h"
#include "http.h"
#include "log.h"
#include "util.h"

/* Each string field is cut to this many bytes. */
#define ALOG_FIELD_MAX		4096
#define ALOG_SCAN_CHUNK		65536
/* A witness spool larger than this is not read back whole. */
#define ALOG_SPOOL_MAX		(16u << 20)
#define ALOG_WITNESS_BACKOFF_MAX	60
#define ALOG_SPACE_WARN_S	60

struct alog {
	char *path;
	int fd;
	int lock_fd;		/* holds <path>.lock: one writer per log */
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* a sync ended, exclusive ended */
	uint64_t seq;			/* of the last record appended */
	char prev[ALOG_HASH_HEX];	/* hash of the last line */
	uint64_t lines;			/* lines in the current file */
	off_t pos;			/* logical end of what was appended */
	off_t base;			/* logical position of file offset 0 */
	bool need_cut;			/* a failed write left bytes past pos */

	/* group commit */
	bool syncing;
	uint64_t epoch;			/* bumped when a sync fails */
	int epoch_err;
	off_t synced_pos;
	uint64_t synced_seq, synced_lines;
	char synced_prev[ALOG_HASH_HEX];
	bool exclusive;			/* checkpoint or rotation running */

	/* sealing and rotation */
	bool has_key;
	uint8_t sk[32];
	char pk_hex[ALOG_KEY_HEX];
	uint64_t sealed_seq;		/* seq of the last checkpoint */
	uint64_t max_size;
	uint64_t rotate_retry_at;	/* after a failed rotation */
	bool mirror_syslog;

	/* checkpoint timer */
	unsigned interval;
	pthread_t timer;
	bool timer_running;
	bool stop;			/* under lock; ends the timer */
	pthread_cond_t timer_cond;

	/* witness */
	char *witness;
	char *witness_cafile;
	char *spool;
	struct http *http;
	pthread_t wthread;
	bool wrunning;
	pthread_mutex_t wlock;		/* spool file and wstop */
	pthread_cond_t wcond;
	bool wstop, wkick;

	/* free space */
	uint64_t warn_free;
	struct timespec space_warned;
	bool space_low;
};

static const char zero_hash[ALOG_HASH_HEX] =
	"0000000000000000000000000000000000000000000000000000000000000000";

const char *alog_errno_name(int err)
{
	switch (err < 0 ? -err : err) {
	case EPERM:		return "EPERM";
	case ENOENT:		return "ENOENT";
	case EIO:		return "EIO";
	case EBADF:		return "EBADF";
	case EAGAIN:		return "EAGAIN";
	case ENOMEM:		return "ENOMEM";
	case EACCES:		return "EACCES";
	case EBUSY:		return "EBUSY";
	case EEXIST:		return "EEXIST";
	case ENOTDIR:		return "ENOTDIR";
	case EISDIR:		return "EISDIR";
	case EINVAL:		return "EINVAL";
	case EMFILE:		return "EMFILE";
	case EFBIG:		return "EFBIG";
	case ENOSPC:		return "ENOSPC";
	case EROFS:		return "EROFS";
	case ERANGE:		return "ERANGE";
	case ENAMETOOLONG:	return "ENAMETOOLONG";
	case ENOSYS:		return "ENOSYS";
	case ENODATA:		return "ENODATA";
	case ETIMEDOUT:		return "ETIMEDOUT";
	case ENOTCONN:		return "ENOTCONN";
	case ECONNREFUSED:	return "ECONNREFUSED";
	case EPROTONOSUPPORT:	return "EPROTONOSUPPORT";
	case EBADMSG:		return "EBADMSG";
	case ENOKEY:		return "ENOKEY";
	case EKEYEXPIRED:	return "EKEYEXPIRED";
	case EKEYREVOKED:	return "EKEYREVOKED";
	case EKEYREJECTED:	return "EKEYREJECTED";
	case EDQUOT:		return "EDQUOT";
	case ESTALE:		return "ESTALE";
	case ENOTSUP:		return "ENOTSUP";
	default:		return "E?";
	}
}

void alog_event_init(struct alog_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->bytes = -1;
	ev->duration_ms = -1;
}

void alog_hash_hex(const void *data, size_t len, char ret[ALOG_HASH_HEX])
{
	uint8_t d[CIPHER_SHA256_LEN];

	if (cipher_sha256(data, len, d) < 0) {
		/* Cannot happen short of a broken libcrypto; make it loud in
		 * the chain rather than plausible. */
		memset(ret, 'x', ALOG_HASH_HEX - 1);
		ret[ALOG_HASH_HEX - 1] = '\0';
		return;
	}
	cipher_hex(d, sizeof(d), ret);
}

/* ---- building a record ------------------------------------------------- */

/* Is s[0..len) valid UTF-8 (no overlongs, surrogates or > U+10FFFF)? */
static size_t utf8_char_len(const unsigned char *s, size_t len)
{
	unsigned char c = s[0];
	size_t n, i;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	if (len < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

/*
 * A JSON string for a C string from outside (a path, a server's reason):
 * cut to ALOG_FIELD_MAX bytes (marked "[...]"), and bytes that are not
 * UTF-8 written as the text "\xHH", so the record stays valid JSON.
 * NULL gives JSON null.
 */
static json_t *jstr(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len, i = 0, o = 0, n;
	bool cut = false;
	json_t *j;
	char *buf;

	if (!s)
		return json_null();
	len = strlen(s);
	if (len > ALOG_FIELD_MAX) {
		len = ALOG_FIELD_MAX;
		cut = true;
	}
	buf = malloc(4 * len + 6);
	if (!buf)
		return NULL;
	while (i < len) {
		n = utf8_char_len(p + i, len - i);
		if (n == 0) {
			o += (size_t)sprintf(buf + o, "\\x%02X", p[i]);
			i++;
			continue;
		}
		memcpy(buf + o, p + i, n);
		o += n;
		i += n;
	}
	if (cut) {
		memcpy(buf + o, "[...]", 5);
		o += 5;
	}
	j = json_stringn_nocheck(buf, o);
	free(buf);
	return j;
}

static json_t *jint_or_null(int64_t v)
{
	return v < 0 ? json_null() : json_integer(v);
}

/* RFC 3339 UTC with milliseconds: "2026-12-03T17:05:37.123Z". */
static void format_now(char ret[40])
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(ret, 40, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ret + n, 40 - n, ".%03uZ",
		 (unsigned)(ts.tv_nsec / 1000000L) % 1000u);
}

/* The caller's user name and executable, looked up outside the lock. */
struct caller_info {
	char user[256];
	bool has_user;
	char exe[PATH_MAX];
	bool has_exe;
};

static void lookup_caller(const struct alog_event *ev, struct caller_info *ci)
{
	struct passwd pw, *res = NULL;
	char buf[16384], link[64];
	ssize_t n;

	ci->has_user = false;
	ci->has_exe = false;
	if (!ev->has_caller)
		return;

	if (getpwuid_r(ev->uid, &pw, buf, sizeof(buf), &res) == 0 && res &&
	    strlen(res->pw_name) < sizeof(ci->user)) {
		strcpy(ci->user, res->pw_name);
		ci->has_user = true;
	}

	if (ev->exe && strlen(ev->exe) < sizeof(ci->exe)) {
		strcpy(ci->exe, ev->exe);
		ci->has_exe = true;
		return;
	}
	if (ev->pid <= 0) {
		strcpy(ci->exe, "unknown");
		ci->has_exe = true;
		return;
	}
	snprintf(link, sizeof(link), "/proc/%ld/exe", (long)ev->pid);
	n = readlink(link, ci->exe, sizeof(ci->exe));
	if (n > 0 && (size_t)n < sizeof(ci->exe)) {
		ci->exe[n] = '\0';
		ci->has_exe = true;
	}
}

/* Add key = val, taking val's reference; false on allocation failure. */
static bool put(json_t *obj, const char *key, json_t *val)
{
	return val && json_object_set_new(obj, key, val) == 0;
}

/* What only "log-start" and "checkpoint" records carry. */
struct seal {
	const char *host_key;
	int64_t count;			/* -1: null */
	const char *sig;
};

static json_t *jopt(const char *s)
{
	return s ? json_string(s) : json_null();
}

/*
 * The record as one line with its '\n', malloc'd.  seq, time and prev
 * are the ones this record will carry; seal may be NULL.
 */
static int build_line(const struct alog_event *ev,
		      const struct caller_info *ci, uint64_t seq,
		      const char *now, const char *prev,
		      const struct seal *seal, char **ret_line,
		      size_t *ret_len)
{
	static const struct seal none = { NULL, -1, NULL };
	char hash[ALOG_HASH_HEX];
	json_t *o;
	char *text, *line;
	size_t len;
	bool ok;

	if (!seal)
		seal = &none;
	o = json_object();
	if (!o)
		return -ENOMEM;
	ok = put(o, "seq", json_integer((json_int_t)seq)) &&
	     put(o, "time", json_string(now)) &&
	     put(o, "event", jstr(ev->event)) &&
	     put(o, "decision", jstr(ev->decision)) &&
	     put(o, "reason", jstr(ev->reason)) &&
	     put(o, "errno", ev->err ? json_string(alog_errno_name(ev->err))
				     : json_null()) &&
	     put(o, "uid", ev->has_caller ? json_integer(ev->uid)
					  : json_null()) &&
	     put(o, "gid", ev->has_caller ? json_integer(ev->gid)
					  : json_null()) &&
	     put(o, "user", ci->has_user ? jstr(ci->user) : json_null()) &&
	     put(o, "pid", ev->has_caller ? json_integer(ev->pid)
					  : json_null()) &&
	     put(o, "exe", ci->has_exe ? jstr(ci->exe) : json_null()) &&
	     put(o, "dataset", jstr(ev->dataset)) &&
	     put(o, "version", jstr(ev->version)) &&
	     put(o, "file", jstr(ev->file)) &&
	     put(o, "licence", jstr(ev->licence)) &&
	     put(o, "bytes", jint_or_null(ev->bytes)) &&
	     put(o, "duration_ms", jint_or_null(ev->duration_ms)) &&
	     put(o, "detail", jstr(ev->detail)) &&
	     put(o, "host_key", jopt(seal->host_key)) &&
	     put(o, "count", jint_or_null(seal->count)) &&
	     put(o, "sig", jopt(seal->sig)) &&
	     put(o, "prev", json_string(prev));
	if (!ok) {
		json_decref(o);
		return -ENOMEM;
	}
	text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!text)
		return -ENOMEM;
	/* Replace the closing brace by ,"hash":"<hash of what is before>"}. */
	len = strlen(text);
	if (len < 2 || text[len - 1] != '}') {
		free(text);
		return -EIO;
	}
	alog_hash_hex(text, len - 1, hash);
	line = realloc(text, len - 1 + ALOG_HASH_SUFFIX_LEN + 2);
	if (!line) {
		free(text);
		return -ENOMEM;
	}
	snprintf(line + len - 1, ALOG_HASH_SUFFIX_LEN + 2,
		 ",\"hash\":\"%s\"}\n", hash);
	*ret_line = line;
	*ret_len = len - 1 + ALOG_HASH_SUFFIX_LEN + 1;
	return 0;
}

int alog_checkpoint_text(const char *host_key, uint64_t seq,
			 const char *time, const char *head, uint64_t count,
			 char *ret, size_t len)
{
	int n;

	n = snprintf(ret, len, "marketfs-log-checkpoint-v1\n"
		     "host_key %s\nseq %llu\ntime %s\nhead %s\ncount %llu\n",
		     host_key, (unsigned long long)seq, time, head,
		     (unsigned long long)count);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return n;
}

/* ---- appending ----------------------------------------------------------- */

static off_t file_size(const struct alog *log)
{
	return log->pos - log->base;
}

/*
 * Append buf (one or more whole lines) to the file.  Under log->lock.
 * On failure the file is cut back to where this write started.
 */
static int append_locked(struct alog *log, const char *buf, size_t len)
{
	size_t done = 0;
	ssize_t n;
	int r = 0;

	if (log->need_cut) {
		if (ftruncate(log->fd, file_size(log)) < 0)
			return -errno;
		log->need_cut = false;
	}
	while (done < len) {
		n = write(log->fd, buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0) {
			r = -EIO;
			break;
		}
		done += (size_t)n;
	}
	if (r < 0) {
		/* No half record. */
		if (done > 0 && ftruncate(log->fd, file_size(log)) < 0)
			log->need_cut = true;
		return r;
	}
	log->pos += (off_t)len;
	return 0;
}

/* A sync failed: forget everything since the last good one. */
static void fail_epoch(struct alog *log, int err)
{
	log->pos = log->synced_pos;
	log->seq = log->synced_seq;
	log->lines = log->synced_lines;
	memcpy(log->prev, log->synced_prev, sizeof(log->prev));
	if (log->sealed_seq > log->seq)
		log->sealed_seq = 0;
	if (ftruncate(log->fd, file_size(log)) < 0)
		log->need_cut = true;
	log->epoch++;
	log->epoch_err = err;
}

/* Sync now, under the lock; nobody else is syncing. */
static int sync_locked(struct alog *log)
{
	off_t target = log->pos;
	uint64_t tseq = log->seq, tlines = log->lines;
	char tprev[ALOG_HASH_HEX];
	int r = 0;

	memcpy(tprev, log->prev, sizeof(tprev));
	if (fdatasync(log->fd) < 0)
		r = -errno;
	if (r < 0) {
		fail_epoch(log, r);
		return r;
	}
	log->synced_pos = target;
	log->synced_seq = tseq;
	log->synced_lines = tlines;
	memcpy(log->synced_prev, tprev, sizeof(tprev));
	return 0;
}

/*
 * Group commit: wait until what ends at end (appended in epoch) is
 * durable.  Under log->lock, which is dropped while syncing.
 */
static int wait_durable(struct alog *log, off_t end, uint64_t epoch)
{
	char tprev[ALOG_HASH_HEX];
	uint64_t tseq, tlines;
	off_t target;
	int fd, r;

	for (;;) {
		if (log->epoch != epoch)
			return log->epoch_err;
		if (log->synced_pos >= end)
			return 0;
		if (log->syncing) {
			pthread_cond_wait(&log->cond, &log->lock);
			continue;
		}
		log->syncing = true;
		target = log->pos;
		tseq = log->seq;
		tlines = log->lines;
		memcpy(tprev, log->prev, sizeof(tprev));
		fd = log->fd;
		pthread_mutex_unlock(&log->lock);
		r = fdatasync(fd) < 0 ? -errno : 0;
		pthread_mutex_lock(&log->lock);
		log->syncing = false;
		if (r == 0) {
			if (target > log->synced_pos) {
				log->synced_pos = target;
				log->synced_seq = tseq;
				log->synced_lines = tlines;
				memcpy(log->synced_prev, tprev, sizeof(tprev));
			}
		} else {
			fail_epoch(log, r);
		}
		pthread_cond_broadcast(&log->cond);
	}
}

/* Wait until no sync runs and no other exclusive section either. */
static void enter_exclusive(struct alog *log)
{
	while (log->exclusive || log->syncing)
		pthread_cond_wait(&log->cond, &log->lock);
	log->exclusive = true;
}

static void leave_exclusive(struct alog *log)
{
	log->exclusive = false;
	pthread_cond_broadcast(&log->cond);
}

/*
 * Build and append one record (with optional text before it, such as
 * the "\n" that ends a torn line).  Under log->lock.  On success the
 * line (without anything before it) is returned for the syslog mirror
 * and the witness, with the end position and epoch to wait for.
 */
static int emit_locked(struct alog *log, const struct alog_event *ev,
		       const struct caller_info *ci, const char *before,
		       const struct seal *seal, const char *now,
		       char **ret_line, off_t *ret_end, uint64_t *ret_epoch)
{
	size_t len, blen = before ? strlen(before) : 0;
	char *line, *all;
	int r;

	/* Sequence numbers are JSON integers: never wrap past int64. */
	if (log->seq >= (uint64_t)INT64_MAX)
		return -EOVERFLOW;
	r = build_line(ev, ci, log->seq + 1, now, log->prev, seal, &line,
		       &len);
	if (r < 0)
		return r;
	all = line;
	if (blen) {
		all = malloc(blen + len);
		if (!all) {
			free(line);
			return -ENOMEM;
		}
		memcpy(all, before, blen);
		memcpy(all + blen, line, len);
	}
	r = append_locked(log, all, blen + len);
	if (all != line)
		free(all);
	if (r < 0) {
		free(line);
		return r;
	}
	alog_hash_hex(line, len - 1, log->prev);
	log->seq++;
	log->lines++;	/* a torn line before was counted */
	*ret_line = line;
	*ret_end = log->pos;
	*ret_epoch = log->epoch;
	return 0;
}

/* Mirror a durable line to syslog (without its newline). */
static void mirror(const struct alog *log, const char *line)
{
	if (log->mirror_syslog)
		syslog(LOG_AUTHPRIV | LOG_INFO, "access: %.*s",
		       (int)strcspn(line, "\n"), line);
}

static double since_s(const struct timespec *then, const struct timespec *now)
{
	return (double)(now->tv_sec - then->tv_sec) +
	       (double)(now->tv_nsec - then->tv_nsec) / 1e9;
}

/*
 * Warn well before the log's filesystem is full: below warn_free bytes,
 * or below a tenth of the filesystem.  Checked after every write (one
 * fstatvfs, cheap next to the sync) and said at most once a minute.
 * Under log->lock.
 */
static void check_space(struct alog *log)
{
	struct timespec now;
	struct statvfs sv;
	uint64_t avail, total, limit;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (fstatvfs(log->fd, &sv) < 0)
		return;
	avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	total = (uint64_t)sv.f_blocks * sv.f_frsize;
	limit = log->warn_free ? log->warn_free : total / 10;
	if (avail >= limit) {
		if (log->space_low)
			log_notice("access log '%s': free space is back "
				   "(%llu bytes)", log->path,
				   (unsigned long long)avail);
		log->space_low = false;
		return;
	}
	if (log->space_low && since_s(&log->space_warned, &now) <
			      ALOG_SPACE_WARN_S)
		return;
	log->space_low = true;
	log->space_warned = now;
	log_warn("access log '%s': only %llu bytes free of %llu; when it "
		 "is full, every open is refused (EIO) -- archive rotated "
		 "files (see docs/access-log.md)", log->path,
		 (unsigned long long)avail, (unsigned long long)total);
}

static int rotate_locked(struct alog *log);
static int checkpoint_locked(struct alog *log);

/* Write ev with optional text before it (a "\n" ending a torn line). */
static int write_record(struct alog *log, const struct alog_event *ev,
			const char *before, const struct seal *seal)
{
	struct caller_info ci;
	char now[40], *line = NULL;
	uint64_t epoch;
	off_t end;
	int r;

	lookup_caller(ev, &ci);

	pthread_mutex_lock(&log->lock);
	while (log->exclusive)
		pthread_cond_wait(&log->cond, &log->lock);
	format_now(now);
	r = emit_locked(log, ev, &ci, before, seal, now, &line, &end, &epoch);
	if (r == 0)
		r = wait_durable(log, end, epoch);
	if (r == 0 && log->max_size &&
	    (uint64_t)file_size(log) >= log->max_size &&
	    (uint64_t)log->pos >= log->rotate_retry_at)
		(void)rotate_locked(log);
	if (log->fd >= 0)
		check_space(log);
	pthread_mutex_unlock(&log->lock);
	if (r == 0)
		mirror(log, line);
	free(line);
	return r;
}

int alog_write(struct alog *log, const struct alog_event *ev)
{
	if (!log || !ev || !ev->event || !*ev->event)
		return -EINVAL;
	return write_record(log, ev, NULL, NULL);
}

/* ---- opening ------------------------------------------------------------- */

/* The seq of a line that is a complete record, or 0. */
static uint64_t line_seq(const char *line, size_t len, bool *ret_ckpt)
{
	json_error_t jerr;
	json_t *o, *s;
	uint64_t seq = 0;

	if (ret_ckpt)
		*ret_ckpt = false;
	if (len == 0 || len > ALOG_LINE_MAX)
		return 0;
	o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o)
		return 0;
	s = json_object_get(o, "seq");
	if (json_is_object(o) && json_is_integer(s) &&
	    json_integer_value(s) > 0)
		seq = (uint64_t)json_integer_value(s);
	if (seq && ret_ckpt)
		*ret_ckpt = json_is_string(json_object_get(o, "event")) &&
			    strcmp(json_string_value(json_object_get(o,
					"event")), "checkpoint") == 0;
	json_decref(o);
	return seq;
}

static int pread_all(int fd, void *buf, size_t len, off_t off)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = pread(fd, (char *)buf + done, len - done,
			  off + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;	/* the file shrank under us */
		done += (size_t)n;
	}
	return 0;
}

/*
 * The common case: the file ends with a complete record.  Reads at most
 * ALOG_LINE_MAX + 1 bytes from the end.  1 when the last line is a
 * record (seq and prev set), 0 when it is not, or a negative errno.
 */
static int read_last_record(struct alog *log, int fd, off_t size)
{
	size_t want, start, i;
	char *tail;
	uint64_t seq;
	bool ckpt;
	int r;

	want = size > ALOG_LINE_MAX + 1 ? ALOG_LINE_MAX + 1 : (size_t)size;
	tail = malloc(want);
	if (!tail)
		return -ENOMEM;
	r = pread_all(fd, tail, want, size - (off_t)want);
	if (r < 0)
		goto out_free;
	r = 0;
	if (tail[want - 1] != '\n')
		goto out_free;
	for (i = want - 1; i > 0 && tail[i - 1] != '\n'; i--)
		;
	if (i == 0 && (off_t)want < size)
		goto out_free;		/* longer than any record */
	start = i;
	seq = line_seq(tail + start, want - 1 - start, &ckpt);
	if (seq == 0)
		goto out_free;
	log->seq = seq;
	if (ckpt)
		log->sealed_seq = seq;
	alog_hash_hex(tail + start, want - 1 - start, log->prev);
	r = 1;
out_free:
	free(tail);
	return r;
}

/* What a full scan of a damaged log finds. */
struct scan {
	uint64_t last_seq;	/* of the last complete record, or 0 */
	uint64_t lines;		/* line number of the last line */
	bool ends_in_newline;
	uint64_t last_len;	/* bytes in the last line */
	char last_hash[ALOG_HASH_HEX];
};

/*
 * Read the whole file once: count lines, remember the seq of the last
 * line that is a record, and hash the last line.  Only run when the end
 * of the log is damaged, so its cost is paid once per crash.
 */
static int scan_log(int fd, off_t size, struct scan *sc)
{
	struct cipher_sha256 *ctx = NULL;
	uint8_t digest[CIPHER_SHA256_LEN];
	char *chunk, *line;
	size_t line_len = 0, i, n, seg;
	off_t off = 0;
	bool line_long = false;
	uint64_t seq;
	int r;

	memset(sc, 0, sizeof(*sc));
	chunk = malloc(ALOG_SCAN_CHUNK);
	line = malloc(ALOG_LINE_MAX);
	if (!chunk || !line) {
		r = -ENOMEM;
		goto out_free;
	}
	r = cipher_sha256_new(&ctx);
	if (r < 0)
		goto out_free;

	while (off < size) {
		n = size - off > ALOG_SCAN_CHUNK ? ALOG_SCAN_CHUNK :
		    (size_t)(size - off);
		r = pread_all(fd, chunk, n, off);
		if (r < 0)
			goto out_free;
		off += (off_t)n;
		for (i = 0; i < n; i += seg) {
			char *nl = memchr(chunk + i, '\n', n - i);

			seg = nl ? (size_t)(nl - (chunk + i)) : n - i;
			r = cipher_sha256_update(ctx, chunk + i, seg);
			if (r < 0)
				goto out_free;
			if (line_len + seg <= ALOG_LINE_MAX)
				memcpy(line + line_len, chunk + i, seg);
			else
				line_long = true;
			line_len += seg;
			sc->last_len = line_len;
			if (!nl)
				break;
			seg++;		/* the newline */
			sc->lines++;
			seq = line_long ? 0 : line_seq(line, line_len, NULL);
			if (seq)
				sc->last_seq = seq;
			/* Hash of this line, in case it is the last. */
			r = cipher_sha256_final(ctx, digest);
			ctx = NULL;
			if (r < 0)
				goto out_free;
			cipher_hex(digest, sizeof(digest), sc->last_hash);
			r = cipher_sha256_new(&ctx);
			if (r < 0)
				goto out_free;
			line_len = 0;
			line_long = false;
		}
	}
	sc->ends_in_newline = line_len == 0;
	if (line_len > 0) {
		/*
		 * An unterminated last line.  Should it parse as a record
		 * (only its newline lost), count its seq so that seq never
		 * repeats.
		 */
		sc->lines++;
		seq = line_long ? 0 : line_seq(line, line_len, NULL);
		if (seq > sc->last_seq)
			sc->last_seq = seq;
		r = cipher_sha256_final(ctx, digest);
		ctx = NULL;
		if (r < 0)
			goto out_free;
		cipher_hex(digest, sizeof(digest), sc->last_hash);
	}
	r = 0;
out_free:
	cipher_sha256_free(ctx);
	free(line);
	free(chunk);
	return r;
}

/* ---- the witness ---------------------------------------------------------- */

/*
 * Queue a checkpoint line (with its newline) for the witness: append it
 * to the spool, synced, and wake the sender.  Called under log->lock;
 * takes wlock (never the other way round).
 */
static void witness_queue(struct alog *log, const char *line)
{
	size_t len = strlen(line), done = 0;
	ssize_t n;
	int fd;

	if (!log->spool)
		return;
	pthread_mutex_lock(&log->wlock);
	fd = open(log->spool, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
		  O_NOCTTY, 0600);
	if (fd < 0) {
		log_error("witness spool '%s': %s", log->spool,
			  strerror(errno));
		goto out_unlock;
	}
	while (done < len) {
		n = write(fd, line + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_error("witness spool '%s': %s", log->spool,
				  n < 0 ? strerror(errno) : "short write");
			break;
		}
		done += (size_t)n;
	}
	(void)fdatasync(fd);
	close(fd);
	log->wkick = true;
	pthread_cond_signal(&log->wcond);
out_unlock:
	pthread_mutex_unlock(&log->wlock);
}

/* Drop the first n bytes of the spool (they were sent).  Under wlock. */
static void spool_drop(struct alog *log, size_t n)
{
	char *buf = NULL;
	size_t len = 0;
	int r;

	r = util_read_file(log->spool, ALOG_SPOOL_MAX, &buf, &len);
	if (r < 0 || len < n) {
		free(buf);
		return;
	}
	r = util_write_file_atomic(log->spool, buf + n, len - n, 0600);
	if (r < 0)
		log_error("witness spool '%s': cannot rewrite: %s", log->spool,
			  strerror(-r));
	free(buf);
}

/* Send what is spooled, oldest first; the bytes sent or accepted. */
static size_t witness_send(struct alog *log, const char *buf, size_t len,
			   bool *ret_failed)
{
	size_t off = 0, n;
	const char *nl;
	int r;

	*ret_failed = false;
	while (off < len) {
		nl = memchr(buf + off, '\n', len - off);
		if (!nl)
			break;
		n = (size_t)(nl - (buf + off));
		r = http_post(log->http, log->witness, "application/json",
			      buf + off, n);
		if (r == -EREMOTEIO) {
			/* It answered and refused: say so loudly. */
			log_error("WITNESS REFUSED A CHECKPOINT of access log "
				  "'%s' (%s): the witness holds a different "
				  "history", log->path, http_last_error());
		} else if (r < 0) {
			*ret_failed = true;
			log_warn("witness %s unreachable (%s); checkpoints "
				 "stay in '%s'", log->witness,
				 http_last_error(), log->spool);
			break;
		}
		off += n + 1;
	}
	return off;
}

static void *witness_main(void *arg)
{
	struct alog *log = arg;
	struct timespec ts;
	unsigned delay = 1;
	char *buf;
	size_t len, sent;
	bool failed;

	pthread_mutex_lock(&log->wlock);
	while (!log->wstop) {
		buf = NULL;
		len = 0;
		(void)util_read_file(log->spool, ALOG_SPOOL_MAX, &buf, &len);
		log->wkick = false;
		pthread_mutex_unlock(&log->wlock);

		failed = false;
		sent = len ? witness_send(log, buf, len, &failed) : 0;
		free(buf);

		pthread_mutex_lock(&log->wlock);
		if (sent > 0)
			spool_drop(log, sent);
		delay = failed ? (delay * 2 > ALOG_WITNESS_BACKOFF_MAX ?
				  ALOG_WITNESS_BACKOFF_MAX : delay * 2) : 1;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += failed ? delay : ALOG_WITNESS_BACKOFF_MAX;
		while (!log->wstop && !log->wkick &&
		       pthread_cond_timedwait(&log->wcond, &log->wlock,
					      &ts) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&log->wlock);
	return NULL;
}

/* ---- checkpoints and rotation ------------------------------------------- */

/* A signed checkpoint, durable before this returns.  In exclusive. */
static int checkpoint_locked(struct alog *log)
{
	struct caller_info ci = { .has_user = false, .has_exe = false };
	char now[40], text[512], sig_hex[ALOG_SIG_HEX], *line = NULL;
	struct alog_event ev;
	struct seal seal;
	uint8_t sig[CIPHER_SIG_LEN];
	uint64_t epoch;
	off_t end;
	int r;

	if (!log->has_key)
		return -ENOKEY;
	if (log->sealed_seq == log->seq)
		return 0;
	format_now(now);
	r = alog_checkpoint_text(log->pk_hex, log->seq + 1, now, log->prev,
				 log->lines, text, sizeof(text));
	if (r < 0)
		return r;
	r = cipher_ed25519_sign(log->sk, text, strlen(text), sig);
	if (r < 0)
		return r;
	cipher_hex(sig, sizeof(sig), sig_hex);

	alog_event_init(&ev);
	ev.event = "checkpoint";
	seal.host_key = log->pk_hex;
	seal.count = (int64_t)log->lines;
	seal.sig = sig_hex;
	r = emit_locked(log, &ev, &ci, NULL, &seal, now, &line, &end, &epoch);
	if (r < 0)
		return r;
	r = sync_locked(log);
	if (r == 0) {
		log->sealed_seq = log->seq;
		mirror(log, line);
		witness_queue(log, line);
	}
	free(line);
	return r;
}

/* The first record of a file: names the host key (when there is one). */
static int start_locked(struct alog *log, const char *reason,
			const char *detail)
{
	struct caller_info ci = { .has_user = false, .has_exe = false };
	struct alog_event ev;
	struct seal seal = { NULL, -1, NULL };
	char now[40], *line = NULL;
	uint64_t epoch;
	off_t end;
	int r;

	alog_event_init(&ev);
	ev.event = "log-start";
	ev.reason = reason;
	ev.detail = detail;
	if (log->has_key)
		seal.host_key = log->pk_hex;
	format_now(now);
	r = emit_locked(log, &ev, &ci, NULL, &seal, now, &line, &end, &epoch);
	if (r < 0)
		return r;
	r = sync_locked(log);
	if (r == 0)
		mirror(log, line);
	free(line);
	return r;
}

static void sync_dir_of(const char *path)
{
	char *dir = strdup(path), *slash;
	int fd;

	if (!dir)
		return;
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
	free(dir);
}

/* rename() that never replaces an existing file. */
static int rename_new(const char *from, const char *to)
{
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	if (access(to, F_OK) == 0)
		return -EEXIST;
	return rename(from, to) < 0 ? -errno : 0;
}

/* Seal, rename to PATH.<seq>, start a new file.  In exclusive. */
static int do_rotate(struct alog *log)
{
	char *name = NULL, detail[PATH_MAX + 128];
	const char *leaf;
	off_t obase = log->base;
	uint64_t olines = log->lines, cseq;
	int nfd, ofd = log->fd, r;

	if (log->has_key)
		r = checkpoint_locked(log);
	else
		r = log->synced_pos < log->pos ? sync_locked(log) : 0;
	if (r < 0)
		return r;
	cseq = log->seq;
	if (asprintf(&name, "%s.%012llu", log->path,
		     (unsigned long long)cseq) < 0)
		return -ENOMEM;
	r = rename_new(log->path, name);
	if (r < 0)
		goto out_free;
	nfd = open(log->path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL |
		   O_CLOEXEC | O_NOCTTY, 0600);
	if (nfd < 0) {
		r = -errno;
		goto out_rename_back;
	}

	log->fd = nfd;
	log->base = log->pos;
	log->lines = 0;
	log->synced_lines = 0;
	leaf = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
	snprintf(detail, sizeof(detail), "continues %s after %s seq %llu",
		 leaf, log->has_key ? "checkpoint" : "record",
		 (unsigned long long)cseq);
	r = start_locked(log, "rotated", detail);
	if (r < 0) {
		/* Back to the old file as if nothing happened. */
		log->fd = ofd;
		log->base = obase;
		log->lines = olines;
		log->synced_lines = olines;
		log->need_cut = false;
		close(nfd);
		(void)unlink(log->path);
		goto out_rename_back;
	}
	sync_dir_of(log->path);
	close(ofd);
	log_notice("access log rotated: %s (sealed at seq %llu)", name,
		   (unsigned long long)cseq);
	free(name);
	return 0;

out_rename_back:
	if (rename(name, log->path) < 0)
		log_error("access log: cannot rename '%s' back to '%s': %s",
			  name, log->path, strerror(errno));
out_free:
	free(name);
	return r;
}

static int rotate_locked(struct alog *log)
{
	int r;

	enter_exclusive(log);
	r = do_rotate(log);
	if (r < 0) {
		/* Try again after another quarter of the limit. */
		log->rotate_retry_at = (uint64_t)log->pos +
				       (log->max_size / 4 ? log->max_size / 4
							  : 1);
		log_error("access log '%s': rotation failed: %s; still "
			  "appending to it", log->path, strerror(-r));
	}
	leave_exclusive(log);
	return r;
}

int alog_checkpoint(struct alog *log)
{
	int r;

	if (!log)
		return -EINVAL;
	pthread_mutex_lock(&log->lock);
	enter_exclusive(log);
	r = checkpoint_locked(log);
	leave_exclusive(log);
	pthread_mutex_unlock(&log->lock);
	return r;
}

int alog_rotate(struct alog *log)
{
	int r;

	if (!log)
		return -EINVAL;
	pthread_mutex_lock(&log->lock);
	r = rotate_locked(log);
	pthread_mutex_unlock(&log->lock);
	return r;
}

static void *timer_main(void *arg)
{
	struct alog *log = arg;
	struct timespec ts;

	pthread_mutex_lock(&log->lock);
	while (!log->stop) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (time_t)log->interval;
		while (!log->stop &&
		       pthread_cond_timedwait(&log->timer_cond, &log->lock,
					      &ts) != ETIMEDOUT)
			;
		if (log->stop)
			break;
		if (log->sealed_seq != log->seq) {
			int r;

			enter_exclusive(log);
			r = checkpoint_locked(log);
			leave_exclusive(log);
			if (r < 0)
				log_error("access log: checkpoint failed: %s",
					  strerror(-r));
		}
	}
	pthread_mutex_unlock(&log->lock);
	return NULL;
}

/* ---- the host key ---------------------------------------------------------- */

static int hex_decode(const char *hex, uint8_t *ret, size_t len)
{
	size_t i;
	int hi, lo;

	for (i = 0; i < len; i++) {
		hi = hex[2 * i];
		lo = hex[2 * i + 1];
		if (!isxdigit(hi) || !isxdigit(lo))
			return -EINVAL;
		hi = isdigit(hi) ? hi - '0' : (tolower(hi) - 'a' + 10);
		lo = isdigit(lo) ? lo - '0' : (tolower(lo) - 'a' + 10);
		ret[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static int host_key_create(const char *path, uint8_t sk[32], uint8_t pk[32])
{
	char text[66], *dir, *slash;
	int r;

	dir = strdup(path);
	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		(void)util_mkdir_p(dir, 0700);
	}
	free(dir);

	r = cipher_ed25519_keypair(sk, pk);
	if (r < 0)
		return r;
	cipher_hex(sk, 32, text);
	text[64] = '\n';
	text[65] = '\0';
	r = util_write_file_atomic(path, text, 65, 0600);
	cipher_wipe(text, sizeof(text));
	return r;
}

int alog_host_key_load(const char *path, int create, uint8_t ret_sk[32],
		       uint8_t ret_pk[32])
{
	struct stat st;
	char *text = NULL;
	size_t len = 0;
	int r;

	memset(ret_sk, 0, 32);
	memset(ret_pk, 0, 32);
	if (!path)
		return -EINVAL;
	if (stat(path, &st) < 0) {
		if (errno != ENOENT || !create)
			return -errno;
		return host_key_create(path, ret_sk, ret_pk);
	}
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if (st.st_mode & 077)
		return -EACCES;
	r = util_read_file(path, 256, &text, &len);
	if (r < 0)
		return r;
	r = -EINVAL;
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		len--;
	if (len == 64 && hex_decode(text, ret_sk, 32) == 0)
		r = cipher_ed25519_public(ret_sk, ret_pk);
	cipher_wipe(text, len);
	free(text);
	if (r < 0)
		cipher_wipe(ret_sk, 32);
	return r;
}

/* The last line is torn or damaged: terminate it, then say so. */
static int recover(struct alog *log, int rfd, off_t size)
{
	struct alog_event ev;
	struct scan sc;
	char detail[160];
	int r;

	r = scan_log(rfd, size, &sc);
	if (r < 0)
		return r;
	/* The previous line for the chain is the damaged one. */
	log->seq = sc.last_seq;
	log->lines = sc.lines;
	memcpy(log->prev, sc.last_hash, sizeof(log->prev));
	log->synced_seq = log->seq;
	log->synced_lines = log->lines;
	memcpy(log->synced_prev, log->prev, sizeof(log->prev));

	snprintf(detail, sizeof(detail),
		 "line %llu was torn or damaged (%llu bytes%s); "
		 "prev is its hash",
		 (unsigned long long)sc.lines,
		 (unsigned long long)sc.last_len,
		 sc.ends_in_newline ? "" : ", no newline");
	alog_event_init(&ev);
	ev.event = "recovered";
	ev.reason = "torn last line";
	ev.detail = detail;
	return write_record(log, &ev, sc.ends_in_newline ? NULL : "\n", NULL);
}

/* Lines in the file (an unterminated last one counts). */
static int count_lines(int fd, off_t size, uint64_t *ret)
{
	char *chunk;
	uint64_t n = 0;
	off_t off = 0;
	size_t len, i;
	char last = '\n';
	int r = 0;

	chunk = malloc(ALOG_SCAN_CHUNK);
	if (!chunk)
		return -ENOMEM;
	while (off < size) {
		len = size - off > ALOG_SCAN_CHUNK ? ALOG_SCAN_CHUNK :
		      (size_t)(size - off);
		r = pread_all(fd, chunk, len, off);
		if (r < 0)
			break;
		for (i = 0; i < len; i++)
			n += chunk[i] == '\n';
		last = chunk[len - 1];
		off += (off_t)len;
	}
	free(chunk);
	if (r < 0)
		return r;
	*ret = n + (last != '\n');
	return 0;
}

int alog_start(struct alog *log)
{
	struct http_options hopt = { 0 };
	int r;

	if (!log)
		return -EINVAL;
	if (log->timer_running || log->wrunning)
		return 0;
	if (log->interval && log->has_key) {
		if (pthread_create(&log->timer, NULL, timer_main, log) != 0)
			return -EAGAIN;
		log->timer_running = true;
	}
	if (!log->witness || !log->has_key)
		return 0;
	if (strncmp(log->witness, "https://", 8) != 0)
		return -EPROTONOSUPPORT;
	hopt.cafile = log->witness_cafile;
	hopt.connect_timeout = 5;
	hopt.timeout = 10;
	hopt.retries = 0;
	if (!log->http) {
		r = http_new(&hopt, &log->http);
		if (r < 0)
			return r;
	}
	if (pthread_create(&log->wthread, NULL, witness_main, log) != 0)
		return -EAGAIN;
	log->wrunning = true;
	return 0;
}

static void stop_threads(struct alog *log)
{
	if (log->timer_running) {
		pthread_mutex_lock(&log->lock);
		log->stop = true;
		pthread_cond_broadcast(&log->timer_cond);
		pthread_mutex_unlock(&log->lock);
		pthread_join(log->timer, NULL);
		log->timer_running = false;
	}
	if (log->wrunning) {
		pthread_mutex_lock(&log->wlock);
		log->wstop = true;
		pthread_cond_broadcast(&log->wcond);
		pthread_mutex_unlock(&log->wlock);
		pthread_join(log->wthread, NULL);
		log->wrunning = false;
	}
}

static void log_free(struct alog *log)
{
	if (log->fd >= 0)
		close(log->fd);
	log->http = http_free(log->http);
	cipher_wipe(log->sk, sizeof(log->sk));
	pthread_cond_destroy(&log->timer_cond);
	pthread_cond_destroy(&log->wcond);
	pthread_cond_destroy(&log->cond);
	pthread_mutex_destroy(&log->wlock);
	pthread_mutex_destroy(&log->lock);
	free(log->witness);
	free(log->witness_cafile);
	free(log->spool);
	free(log->path);
	if (log->lock_fd >= 0)
		close(log->lock_fd);
	free(log);
}

/*
 * Two daemons appending to one log would fork its chain: the second is
 * refused (-EBUSY) while the first holds the lock file, DIR/.NAME.lock.  flock() locks
 * stay with the daemon across its detaching fork.
 */
static int take_lock(struct alog *log)
{
	struct timespec pause = { 0, 100 * 1000 * 1000 };
	char *lpath = NULL;
	int i;

	const char *slash = strrchr(log->path, '/');

	/* ".NAME.lock" beside the log, out of the way of NAME.* globs. */
	if (asprintf(&lpath, "%.*s.%s.lock",
		     slash ? (int)(slash - log->path + 1) : 0, log->path,
		     slash ? slash + 1 : log->path) < 0)
		return -ENOMEM;
	log->lock_fd = open(lpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY,
			    0600);
	free(lpath);
	if (log->lock_fd < 0)
		return -errno;
	/* A daemon just unmounted may still be writing its last records. */
	for (i = 0; flock(log->lock_fd, LOCK_EX | LOCK_NB) < 0; i++) {
		if (errno != EWOULDBLOCK)
			return -errno;
		if (i == 50)
			return -EBUSY;
		nanosleep(&pause, NULL);
	}
	return 0;
}

static struct alog *log_new(const char *path)
{
	struct alog *log = calloc(1, sizeof(*log));

	if (!log)
		return NULL;
	log->fd = -1;
	log->lock_fd = -1;
	log->path = strdup(path);
	pthread_mutex_init(&log->lock, NULL);
	pthread_mutex_init(&log->wlock, NULL);
	pthread_cond_init(&log->cond, NULL);
	pthread_cond_init(&log->timer_cond, NULL);
	pthread_cond_init(&log->wcond, NULL);
	memcpy(log->prev, zero_hash, sizeof(log->prev));
	memcpy(log->synced_prev, zero_hash, sizeof(log->prev));
	if (!log->path) {
		log_free(log);
		return NULL;
	}
	return log;
}

/* Read what the file holds: seq, chain, lines; recover a torn end. */
static int resume(struct alog *log, off_t size)
{
	int rfd, r;

	rfd = open(log->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (rfd < 0)
		return -errno;
	r = read_last_record(log, rfd, size);
	if (r == 1) {
		r = count_lines(rfd, size, &log->lines);
		log->synced_seq = log->seq;
		log->synced_lines = log->lines;
		memcpy(log->synced_prev, log->prev, sizeof(log->prev));
	} else if (r == 0) {
		r = recover(log, rfd, size);
	}
	close(rfd);
	return r < 0 ? r : 0;
}

int alog_open_opts(const char *path, const struct alog_options *opt,
		   struct alog **ret_log)
{
	struct alog *log;
	uint8_t pk[32];
	struct stat st;
	int r;

	if (!path || !ret_log)
		return -EINVAL;
	log = log_new(path);
	if (!log)
		return -ENOMEM;
	if (opt) {
		log->max_size = opt->max_size;
		log->interval = opt->checkpoint_interval;
		log->mirror_syslog = opt->syslog != 0;
		log->warn_free = opt->warn_free;
	}
	if (opt && opt->host_key) {
		r = alog_host_key_load(opt->host_key, 1, log->sk, pk);
		if (r < 0)
			goto out_free;
		cipher_hex(pk, sizeof(pk), log->pk_hex);
		log->has_key = true;
	}

	r = take_lock(log);
	if (r < 0)
		goto out_free;

	log->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
		       O_NOCTTY, 0600);
	if (log->fd < 0) {
		r = -errno;
		goto out_free;
	}
	if (fstat(log->fd, &st) < 0) {
		r = -errno;
		goto out_free;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		goto out_free;
	}
	log->pos = st.st_size;
	log->synced_pos = st.st_size;

	if (st.st_size > 0) {
		r = resume(log, st.st_size);
	} else if (log->has_key) {
		pthread_mutex_lock(&log->lock);
		r = start_locked(log, "new log", NULL);
		pthread_mutex_unlock(&log->lock);
	} else {
		r = 0;
	}
	if (r < 0)
		goto out_free;
	pthread_mutex_lock(&log->lock);
	check_space(log);
	pthread_mutex_unlock(&log->lock);

	if (opt && (opt->witness || opt->witness_cafile)) {
		log->witness = opt->witness ? strdup(opt->witness) : NULL;
		log->witness_cafile = opt->witness_cafile ?
				      strdup(opt->witness_cafile) : NULL;
		if (opt->spool)
			log->spool = strdup(opt->spool);
		else if (asprintf(&log->spool, "%s.witness", path) < 0)
			log->spool = NULL;
		if ((opt->witness && !log->witness) || !log->spool ||
		    (opt->witness_cafile && !log->witness_cafile)) {
			r = -ENOMEM;
			goto out_free;
		}
	}
	if (!opt || !opt->defer_threads) {
		r = alog_start(log);
		if (r < 0)
			goto out_stop;
	}
	*ret_log = log;
	return 0;

out_stop:
	stop_threads(log);
out_free:
	log_free(log);
	return r;
}

int alog_open(const char *path, struct alog **ret_log)
{
	return alog_open_opts(path, NULL, ret_log);
}

void alog_close(struct alog *log)
{
	int r;

	if (!log)
		return;
	stop_threads(log);
	if (log->has_key) {
		r = alog_checkpoint(log);
		if (r < 0)
			log_error("access log '%s': last checkpoint not "
				  "written: %s", log->path, strerror(-r));
	}
	log_free(log);
}

/* ---- options ------------------------------------------------------------- */

/* "64M", "4096", "1k": bytes. */
static int parse_size(const char *text, uint64_t *ret)
{
	char num[32];
	size_t n = strlen(text);
	uint64_t v, mul = 1;
	int r;

	if (n == 0 || n >= sizeof(num))
		return -EINVAL;
	memcpy(num, text, n + 1);
	switch (num[n - 1]) {
	case 'k': case 'K': mul = 1024; break;
	case 'm': case 'M': mul = 1024 * 1024; break;
	case 'g': case 'G': mul = 1024 * 1024 * 1024; break;
	default: break;
	}
	if (mul > 1)
		num[n - 1] = '\0';
	r = util_parse_u64(num, &v);
	if (r < 0)
		return r;
	if (v > UINT64_MAX / mul)
		return -ERANGE;
	*ret = v * mul;
	return 0;
}

static int set_str(char **dst, const char *val)
{
	char *s = strdup(val);

	if (!s)
		return -ENOMEM;
	free(*dst);
	*dst = s;
	return 0;
}

/* 1 when item was one of ours, 0 when not, or a negative errno. */
static int take_one(struct alog_options *opt, const char *item, char *msg,
		    size_t msglen)
{
	const char *eq = strchr(item, '=');
	size_t klen = eq ? (size_t)(eq - item) : strlen(item);
	const char *val = eq ? eq + 1 : NULL;
	uint64_t v;
	int r;

#define IS(k) (klen == strlen(k) && strncmp(item, k, klen) == 0)
	if (IS("syslog") && !val) {
		opt->syslog = 1;
		return 1;
	}
	if (!val)
		return 0;
	if (IS("log_max_size") || IS("log_warn_free")) {
		r = parse_size(val, &v);
		if (r < 0) {
			snprintf(msg, msglen, "%.*s: not a size: '%s'",
				 (int)klen, item, val);
			return -EINVAL;
		}
		if (IS("log_max_size"))
			opt->max_size = v;
		else
			opt->warn_free = v;
		return 1;
	}
	if (IS("log_checkpoint_interval")) {
		r = util_parse_u64(val, &v);
		if (r < 0 || v > 86400 * 366) {
			snprintf(msg, msglen, "log_checkpoint_interval: not a "
				 "number of seconds: '%s'", val);
			return -EINVAL;
		}
		opt->checkpoint_interval = (unsigned)v;
		return 1;
	}
	if (IS("witness")) {
		if (strncmp(val, "https://", 8) != 0) {
			snprintf(msg, msglen, "witness: must be an https:// "
				 "URL: '%s'", val);
			return -EINVAL;
		}
		return set_str(&opt->witness, val) < 0 ? -ENOMEM : 1;
	}
	if (IS("witness_cafile"))
		return set_str(&opt->witness_cafile, val) < 0 ? -ENOMEM : 1;
	if (IS("witness_spool"))
		return set_str(&opt->spool, val) < 0 ? -ENOMEM : 1;
	if (IS("host_key"))
		return set_str(&opt->host_key, val) < 0 ? -ENOMEM : 1;
#undef IS
	return 0;
}

/*
 * Filter one comma-separated list in place; ret_empty when nothing is
 * left of it.
 */
static int take_list(struct alog_options *opt, char *list, bool *ret_empty,
		     char *msg, size_t msglen)
{
	char *rd = list, *wr = list, *comma, *item;
	size_t n;
	int r;

	while (*rd) {
		comma = strchr(rd, ',');
		n = comma ? (size_t)(comma - rd) : strlen(rd);
		item = strndup(rd, n);
		if (!item)
			return -ENOMEM;
		r = take_one(opt, item, msg, msglen);
		if (r == 0) {
			if (wr != list)
				*wr++ = ',';
			memmove(wr, item, n);
			wr += n;
		}
		free(item);
		if (r < 0)
			return r;
		rd += n + (comma ? 1 : 0);
	}
	*wr = '\0';
	*ret_empty = wr == list;
	return 0;
}

int alog_options_take(int *argc, char **argv, void (*drop_fn)(void *),
		      struct alog_options *opt, char *msg, size_t msglen)
{
	int i = 1, j, drop, r;
	bool empty;
	char *list;

	msg[0] = '\0';
	while (i < *argc) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "-o") == 0 && i + 1 < *argc) {
			list = argv[i + 1];
			drop = 2;
		} else if (strncmp(argv[i], "-o", 2) == 0 && argv[i][2]) {
			list = argv[i] + 2;
			drop = 1;
		} else {
			i++;
			continue;
		}
		r = take_list(opt, list, &empty, msg, msglen);
		if (r < 0)
			return r;
		if (!empty) {
			i += drop;
			continue;
		}
		if (drop_fn) {
			drop_fn(argv[i]);
			if (drop == 2)
				drop_fn(argv[i + 1]);
		}
		for (j = i; j + drop <= *argc; j++)
			argv[j] = argv[j + drop];
		*argc -= drop;
	}
	return 0;
}

void alog_options_release(struct alog_options *opt)
{
	if (!opt)
		return;
	free(opt->host_key);
	free(opt->witness);
	free(opt->witness_cafile);
	free(opt->spool);
	memset(opt, 0, sizeof(*opt));
}
