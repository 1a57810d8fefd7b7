/*
 * http.h - fetching market files through libcurl (file:// and https://).
 *
 * fs/http.c is the only file that includes <curl/curl.h>.  Only the
 * schemes "https" and "file" are allowed (redirects too, at most
 * HTTP_MAX_REDIRS); TLS peers and hosts are always verified.  Every
 * transfer has a connect deadline, a low-speed limit and a total
 * deadline.  A ranged read returns exactly the bytes asked for or an
 * error: over HTTP the answer must be 206 with exactly the
 * Content-Range asked for.  Thread-safe: each thread gets its own curl
 * handle.  Nothing here logs above debug; the cause of the last failure
 * on this thread is in http_last_error().
 *
 * Proxy variables in the environment (http_proxy, https_proxy, ...) are
 * ignored: a market is always reached directly.  Transient failures
 * (connect/timeout/reset errors, HTTP 5xx/408/429, a wrong range answer
 * over https) are retried opt->retries times with exponential backoff
 * and jitter (about 100 ms, 200 ms, 400 ms, ... +-50%); a 404, a refused
 * certificate or a file:// error is not.  Deadlines: connect
 * connect_timeout, total timeout per try, and abort below 1 KiB/s for
 * 30 s.  The bearer token is sent only to https URLs, never logged,
 * and wiped by http_free().
 */
#ifndef MARKETFS_HTTP_H
#define MARKETFS_HTTP_H

#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_REDIRS	3

struct http_options {
	const char *cafile;		/* extra CA bundle, or NULL */
	const char *pinned_key;		/* "sha256//...", or NULL */
	const char *token_file;		/* bearer token file, or NULL */
	long connect_timeout;		/* seconds; 0 = default 10 */
	long timeout;			/* seconds per request; 0 = 60 */
	int retries;			/* extra tries; < 0 = default 3 */
};

struct http;

/* Global set-up: call once in main before any thread starts. */
int http_global_init(void);
void http_global_cleanup(void);

/*
 * -EACCES when token_file is readable by group or others (-EINVAL when
 * it is empty, not one line of visible ASCII, or not a regular file),
 * -ENOENT when a named file (token, CA file, pinned key file) is missing.
 * opt may be NULL for all defaults.
 */
int http_new(const struct http_options *opt, struct http **ret_http);
/*
 * NULL-safe; returns NULL.  No thread may be inside a call on h, or
 * exiting after one, while it runs.
 */
struct http *http_free(struct http *h);

/*
 * Turn a market SOURCE (a directory path, a file:// URL or an https://
 * URL) into a base URL ending in '/'.  -EPROTONOSUPPORT for other
 * schemes.  A path is made absolute with realpath() and percent-encoded
 * into a file:// URL; -ENOENT when missing, -ENOTDIR when not a
 * directory.  Only "scheme://" is read as a URL; other text is a path.
 */
int http_source_to_base(const char *source, char **ret_base);

/*
 * Resolve ref against base: an absolute https:// URL is taken as is
 * (only when base is https too), anything else is a relative path that
 * must be safe (no "..", no scheme).  -EPERM for a scheme not allowed.
 * A ref starting with "letters:" is a scheme (RFC 3986).  -EINVAL for
 * an unsafe relative ref: empty, a leading '/', a backslash, a control
 * character, an empty, "." or ".." component.  A relative ref is a
 * plain path: it is percent-encoded when joined (keeping '/').  base is
 * taken as a directory ('/' is added when missing).
 */
int http_url_join(const char *base, const char *ref, char **ret_url);

/*
 * GET a whole resource of at most max bytes.  -ENOENT for 404/410 or a
 * missing file, -EFBIG past max, -ETIMEDOUT, -EPERM for a URL that is
 * not https:// or file://, -EIO otherwise.  Over https only 200 is
 * success.  The buffer is malloc'd and NUL-terminated (not counted).
 */
int http_get(struct http *h, const char *url, size_t max,
	     uint8_t **ret_buf, size_t *ret_len);

/*
 * Read exactly len bytes at off into buf, retrying with backoff.
 * -EIO (after retries) for anything but exactly those bytes: over
 * https a status other than 206, a Content-Range other than
 * "bytes OFF-END/total", a body of another length; over file:// a file
 * too short (never a short read).  -ENOENT for a missing resource.  buf
 * may hold garbage after a failure.
 */
int http_get_range(struct http *h, const char *url, uint64_t off,
		   size_t len, uint8_t *buf);

/*
 * What a ranged reader remembers of one object so that its bytes can
 * never come from two versions: the first 206 answer's strong ETag (or
 * its Last-Modified).  Every later ranged request on it sends If-Range
 * with that validator, and an answer whose ETag or Last-Modified differs
 * is refused (-EIO after retries, "object changed").  Thread-safe: one
 * validator is shared by every reader of one open object.
 */
struct http_validator;

int http_validator_new(struct http_validator **ret_v);
/* NULL-safe; returns NULL. */
struct http_validator *http_validator_free(struct http_validator *v);

/*
 * http_get_range() checked against (and recording into) v; v may be
 * NULL, which is http_get_range().  Validators are used over https only.
 */
int http_get_range_validated(struct http *h, const char *url,
			     struct http_validator *v, uint64_t off,
			     size_t len, uint8_t *buf);

/* Size of a resource (HEAD or stat), for tools and checks. */
int http_size(struct http *h, const char *url, uint64_t *ret_size);

/*
 * POST len bytes of body to an https:// URL, once (no retries, no
 * redirects; the caller decides when to try again).  0 for a 2xx
 * answer; -EREMOTEIO when the server answered with another status
 * that retrying will not change (4xx); -EAGAIN for what may pass
 * (no connection, timeout, TLS failure, 5xx, 408, 429); -EPERM for a
 * URL that is not https://.  The answer's body is read and dropped.
 */
int http_post(struct http *h, const char *url, const char *content_type,
	      const void *body, size_t len);

/* Why the last call on this thread failed; never NULL. */
const char *http_last_error(void);

#endif
