/*
 * alog.c - the access log: one JSON object per line, chained by hash.
 *
 * Record layout (keys always present, in this order; null when unset):
 *
 *   seq, time, event, decision, reason, errno, uid, gid, user, pid, exe,
 *   dataset, version, file, licence, bytes, duration_ms, detail, prev
 *
 * "prev" is the hex SHA-256 of the previous line's bytes without its
 * newline (64 zeros for the first line of a file), whatever that line
 * was: a torn line is hashed like any other, so the chain always links
 * physical lines.
 *
 * Invariants:
 * - A record is built completely in memory, appended with one write()
 *   of the whole line and its '\n', and fdatasync()'d before
 *   alog_write() returns.  All of this happens under log->lock, which
 *   also guards seq, prev and the file size.
 * - On a failed or short write, or a failed sync, the file is cut back
 *   to its size before the attempt, and seq/prev are not advanced; if
 *   that cut fails, the next call retries it before writing anything.
 *   So the file never keeps half a record after an error we saw.
 * - At open, the last line is read back to continue seq and the chain.
 *   A last line that is not a complete record (no newline at the end,
 *   or not a JSON object with a positive integer "seq") was torn by a
 *   crash or damaged: it is terminated and a "recovered" record naming
 *   its line number is appended before anything else.
 */
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alog.h"
#include "cipher.h"

/* A record line longer than this is not one we wrote. */
#define ALOG_LINE_MAX		(256 * 1024)
/* Each string field is cut to this many bytes. */
#define ALOG_FIELD_MAX		4096
#define ALOG_HASH_HEX		(2 * CIPHER_SHA256_LEN + 1)
#define ALOG_SCAN_CHUNK		65536

struct alog {
	int fd;
	pthread_mutex_t lock;
	uint64_t seq;			/* of the last record written */
	char prev[ALOG_HASH_HEX];	/* hash of the last line */
	off_t size;			/* file size after the last record */
	bool need_cut;			/* a failed write left bytes past size */
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

static void hash_hex(const void *data, size_t len, char ret[ALOG_HASH_HEX])
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

/*
 * The record as one line with its '\n', malloc'd.  seq and prev are
 * the ones this record will carry.
 */
static int build_line(const struct alog_event *ev,
		      const struct caller_info *ci, uint64_t seq,
		      const char *prev, char **ret_line, size_t *ret_len)
{
	char now[40];
	json_t *o;
	char *text, *line;
	size_t len;
	bool ok;

	o = json_object();
	if (!o)
		return -ENOMEM;
	format_now(now);
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
	     put(o, "prev", json_string(prev));
	if (!ok) {
		json_decref(o);
		return -ENOMEM;
	}
	text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!text)
		return -ENOMEM;
	len = strlen(text);
	line = realloc(text, len + 2);
	if (!line) {
		free(text);
		return -ENOMEM;
	}
	line[len] = '\n';
	line[len + 1] = '\0';
	*ret_line = line;
	*ret_len = len + 1;
	return 0;
}

/* ---- appending ----------------------------------------------------------- */

/*
 * Append buf (one or more whole lines) and sync.  Under log->lock.  On
 * any failure the file is cut back to log->size.
 */
static int append_sync(struct alog *log, const char *buf, size_t len)
{
	size_t done = 0;
	ssize_t n;
	int r = 0;

	if (log->need_cut) {
		if (ftruncate(log->fd, log->size) < 0)
			return -EIO;
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
	if (r == 0 && fdatasync(log->fd) < 0)
		r = -errno;
	if (r < 0) {
		/* No half record, and nothing unsynced we would chain to. */
		if (done > 0 && ftruncate(log->fd, log->size) < 0)
			log->need_cut = true;
		return r;
	}
	log->size += (off_t)len;
	return 0;
}

/* Write ev with optional text before it (a "\n" ending a torn line). */
static int write_record(struct alog *log, const struct alog_event *ev,
			const char *before)
{
	struct caller_info ci;
	char *line, *all;
	size_t len, blen = before ? strlen(before) : 0;
	char hash[ALOG_HASH_HEX];
	int r;

	lookup_caller(ev, &ci);

	pthread_mutex_lock(&log->lock);
	r = build_line(ev, &ci, log->seq + 1, log->prev, &line, &len);
	if (r < 0)
		goto out_unlock;
	all = line;
	if (blen) {
		all = malloc(blen + len);
		if (!all) {
			r = -ENOMEM;
			goto out_free_line;
		}
		memcpy(all, before, blen);
		memcpy(all + blen, line, len);
	}
	r = append_sync(log, all, blen + len);
	if (r == 0) {
		hash_hex(line, len - 1, hash);
		memcpy(log->prev, hash, sizeof(hash));
		log->seq++;
	}
	if (all != line)
		free(all);
out_free_line:
	free(line);
out_unlock:
	pthread_mutex_unlock(&log->lock);
	return r;
}

int alog_write(struct alog *log, const struct alog_event *ev)
{
	if (!log || !ev || !ev->event || !*ev->event)
		return -EINVAL;
	return write_record(log, ev, NULL);
}

/* ---- opening ------------------------------------------------------------- */

/* The seq of a line that is a complete record, or 0. */
static uint64_t line_seq(const char *line, size_t len)
{
	json_error_t jerr;
	json_t *o, *s;
	uint64_t seq = 0;

	if (len == 0 || len > ALOG_LINE_MAX)
		return 0;
	o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o)
		return 0;
	s = json_object_get(o, "seq");
	if (json_is_object(o) && json_is_integer(s) &&
	    json_integer_value(s) > 0)
		seq = (uint64_t)json_integer_value(s);
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
	seq = line_seq(tail + start, want - 1 - start);
	if (seq == 0)
		goto out_free;
	log->seq = seq;
	hash_hex(tail + start, want - 1 - start, log->prev);
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
			seq = line_long ? 0 : line_seq(line, line_len);
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
		seq = line_long ? 0 : line_seq(line, line_len);
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
	memcpy(log->prev, sc.last_hash, sizeof(log->prev));

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
	return write_record(log, &ev, sc.ends_in_newline ? NULL : "\n");
}

int alog_open(const char *path, struct alog **ret_log)
{
	struct alog *log;
	struct stat st;
	int rfd, r;

	if (!path || !ret_log)
		return -EINVAL;
	log = calloc(1, sizeof(*log));
	if (!log)
		return -ENOMEM;
	memcpy(log->prev, zero_hash, sizeof(log->prev));
	if (pthread_mutex_init(&log->lock, NULL) != 0) {
		free(log);
		return -ENOMEM;
	}

	log->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
		       O_NOCTTY, 0600);
	if (log->fd < 0) {
		r = -errno;
		goto out_free;
	}
	rfd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (rfd < 0) {
		r = -errno;
		goto out_close;
	}
	if (fstat(log->fd, &st) < 0) {
		r = -errno;
		goto out_close_rfd;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		goto out_close_rfd;
	}
	log->size = st.st_size;

	r = 0;
	if (st.st_size > 0) {
		r = read_last_record(log, rfd, st.st_size);
		if (r == 0)
			r = recover(log, rfd, st.st_size);
		if (r < 0)
			goto out_close_rfd;
	}
	close(rfd);
	*ret_log = log;
	return 0;

out_close_rfd:
	close(rfd);
out_close:
	close(log->fd);
out_free:
	pthread_mutex_destroy(&log->lock);
	free(log);
	return r;
}

void alog_close(struct alog *log)
{
	if (!log)
		return;
	close(log->fd);
	pthread_mutex_destroy(&log->lock);
	free(log);
}
