/*
 * http.c - fetching market files through libcurl (file:// and https://).
 *
 * Ranges of file:// objects, the hot path of a local market, are read
 * with pread() instead (file_range()); everything else goes through
 * libcurl.
 *
 * The only file that includes <curl/curl.h>.  Invariants:
 *
 * - Each thread that calls in gets its own easy handle, found through a
 *   pthread key and reset before every request, so connections are
 *   reused but no option leaks from one request to the next.  Handles
 *   are also kept on one global list (under http_lock) so that
 *   http_free() can clean up the handles of threads that are still
 *   alive; a thread that exits cleans up its own.
 * - Only "https" and "file" are spoken; redirects only to "https" (a
 *   remote market can never send us to a local file), at most
 *   HTTP_MAX_REDIRS of them.  TLS peer and host are always verified.
 *   Proxy variables in the environment are ignored (CURLOPT_PROXY "").
 * - Every transfer has a connect deadline, a low-speed abort and a total
 *   deadline; every body is bounded by the caller's max or by the exact
 *   length of the range asked for, and the transfer is aborted the
 *   moment one byte too many arrives.
 * - The bearer token is read once, kept in memory, sent only over https
 *   (curl's own bearer auth, which is not replayed to another host on a
 *   redirect), never logged, and wiped on http_free().
 * - A ranged read with a validator (http_get_range_validated) sends
 *   If-Range with the object's first strong ETag or Last-Modified and
 *   refuses an answer whose ETag or Last-Modified differs, so the bytes
 *   of one open object never come from two versions.
 * - Retries with exponential backoff and jitter live in one place,
 *   http_perform_retry(); only transient failures are retried.
 * - The cause of the last failure on a thread is kept in a thread-local
 *   buffer for http_last_error(); it never contains the token.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cipher.h"
#include "http.h"
#include "log.h"

#define HTTP_TOKEN_MAX		8192
#define HTTP_DEFAULT_CONNECT	10	/* seconds */
#define HTTP_DEFAULT_TIMEOUT	60	/* seconds */
#define HTTP_DEFAULT_RETRIES	3
#define HTTP_RETRIES_MAX	10
#define HTTP_BACKOFF_BASE_MS	100
/* Abort a transfer slower than 1 KiB/s for 30 s (a trickling server). */
#define HTTP_LOW_SPEED_LIMIT	1024
#define HTTP_LOW_SPEED_TIME	30
#define HTTP_URL_MAX		8192
#define HTTP_ERROR_MAX		256
/* A POST answer's body larger than this is cut off. */
#define HTTP_POST_ANSWER_MAX	65536
/* Longest ETag or Last-Modified value remembered; longer ones are ignored. */
#define HTTP_VALIDATOR_MAX	128

struct http_slot;

/*
 * What one object's first ranged answer said about its version.  lock
 * guards both strings; an empty string means "not known".
 */
struct http_validator {
	pthread_mutex_t lock;
	char etag[HTTP_VALIDATOR_MAX];	/* as sent, quotes and W/ kept */
	char last_modified[HTTP_VALIDATOR_MAX];
};

struct http {
	char *cafile;
	char *pinned_key;
	char *token;			/* secret; NULL when none */
	size_t token_len;
	long connect_timeout;
	long timeout;
	int retries;
	pthread_key_t key;
	/*
	 * Connections, TLS sessions and DNS answers shared by the threads'
	 * handles: a worker's first request reuses the connection the
	 * mount opened instead of a handshake of its own.
	 */
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
};

/* One thread's easy handle for one struct http. */
struct http_slot {
	CURL *easy;
	struct http *owner;
	struct http_slot *next;
	char errbuf[CURL_ERROR_SIZE];
};

static pthread_mutex_t http_lock = PTHREAD_MUTEX_INITIALIZER;
static struct http_slot *http_slots;	/* all live slots, under http_lock */

static _Thread_local char http_error[HTTP_ERROR_MAX];
static _Thread_local uint64_t http_rng;

__attribute__((format(printf, 1, 2)))
static void set_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(http_error, sizeof(http_error), fmt, ap);
	va_end(ap);
}

const char *http_last_error(void)
{
	return http_error[0] ? http_error : "no error";
}

int http_global_init(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -EIO;
	return 0;
}

void http_global_cleanup(void)
{
	curl_global_cleanup();
}

/* ---- per-thread handles ------------------------------------------------ */

/* Unlink slot from the global list; 1 if it was there.  Under http_lock. */
static int slot_unlink(struct http_slot *slot)
{
	struct http_slot **pp;

	for (pp = &http_slots; *pp; pp = &(*pp)->next) {
		if (*pp == slot) {
			*pp = slot->next;
			return 1;
		}
	}
	return 0;
}

/*
 * Thread-exit destructor.  The slot may already have been cleaned up by
 * http_free(); it is freed here only if it is still on the list.
 */
static void slot_destroy(void *arg)
{
	struct http_slot *slot = arg;
	int found;

	pthread_mutex_lock(&http_lock);
	found = slot_unlink(slot);
	pthread_mutex_unlock(&http_lock);
	if (found) {
		curl_easy_cleanup(slot->easy);
		free(slot);
	}
}

static int slot_get(struct http *h, struct http_slot **ret_slot)
{
	struct http_slot *slot;

	slot = pthread_getspecific(h->key);
	if (slot) {
		*ret_slot = slot;
		return 0;
	}

	slot = calloc(1, sizeof(*slot));
	if (!slot)
		return -ENOMEM;
	slot->easy = curl_easy_init();
	if (!slot->easy) {
		free(slot);
		return -ENOMEM;
	}
	slot->owner = h;
	/* Kept by curl_easy_reset(): set once. */
	if (curl_easy_setopt(slot->easy, CURLOPT_SHARE, h->share) !=
	    CURLE_OK || pthread_setspecific(h->key, slot) != 0) {
		curl_easy_cleanup(slot->easy);
		free(slot);
		return -ENOMEM;
	}
	pthread_mutex_lock(&http_lock);
	slot->next = http_slots;
	http_slots = slot;
	pthread_mutex_unlock(&http_lock);
	*ret_slot = slot;
	return 0;
}

/* ---- construction ------------------------------------------------------ */

static void share_lock(CURL *e, curl_lock_data data, curl_lock_access acc,
		       void *arg)
{
	struct http *h = arg;

	(void)e;
	(void)acc;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&h->share_locks[data]);
}

static void share_unlock(CURL *e, curl_lock_data data, void *arg)
{
	struct http *h = arg;

	(void)e;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_unlock(&h->share_locks[data]);
}

static int share_new(struct http *h)
{
	CURLSHcode c = CURLSHE_OK;
	int i;

	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&h->share_locks[i], NULL);
	h->share = curl_share_init();
	if (!h->share)
		return -ENOMEM;
#define SHARE(opt, val)						\
	do {							\
		if (c == CURLSHE_OK)				\
			c = curl_share_setopt(h->share, opt, val); \
	} while (0)
	SHARE(CURLSHOPT_LOCKFUNC, share_lock);
	SHARE(CURLSHOPT_UNLOCKFUNC, share_unlock);
	SHARE(CURLSHOPT_USERDATA, h);
	SHARE(CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	SHARE(CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	SHARE(CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
#undef SHARE
	if (c != CURLSHE_OK)
		return c == CURLSHE_NOMEM ? -ENOMEM : -EIO;
	return 0;
}

static void share_free(struct http *h)
{
	int i;

	if (h->share)
		(void)curl_share_cleanup(h->share);
	h->share = NULL;
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&h->share_locks[i]);
}

/*
 * Read the bearer token: a regular file not readable by group or others,
 * one line of visible ASCII (it goes into a header, so no spaces or
 * control characters).
 */
static int read_token(const char *path, char **ret_tok, size_t *ret_len)
{
	char buf[HTTP_TOKEN_MAX + 1];
	struct stat st;
	size_t len = 0, i;
	ssize_t n;
	char *tok;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		goto out_close;
	}
	if (st.st_mode & 077) {
		r = -EACCES;
		goto out_close;
	}
	while (len < sizeof(buf)) {
		n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out_wipe;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > HTTP_TOKEN_MAX) {
		r = -EFBIG;
		goto out_wipe;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' ||
			   buf[len - 1] == ' ' || buf[len - 1] == '\t'))
		len--;
	if (len == 0) {
		r = -EINVAL;
		goto out_wipe;
	}
	for (i = 0; i < len; i++) {
		if (buf[i] <= 0x20 || buf[i] >= 0x7f) {
			r = -EINVAL;
			goto out_wipe;
		}
	}
	tok = malloc(len + 1);
	if (!tok) {
		r = -ENOMEM;
		goto out_wipe;
	}
	memcpy(tok, buf, len);
	tok[len] = '\0';
	*ret_tok = tok;
	*ret_len = len;
	r = 0;
out_wipe:
	cipher_wipe(buf, sizeof(buf));
out_close:
	close(fd);
	return r;
}

int http_new(const struct http_options *opt, struct http **ret_http)
{
	struct http *h;
	int r;

	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->connect_timeout = HTTP_DEFAULT_CONNECT;
	h->timeout = HTTP_DEFAULT_TIMEOUT;
	h->retries = HTTP_DEFAULT_RETRIES;

	if (opt) {
		if (opt->connect_timeout > 0)
			h->connect_timeout = opt->connect_timeout;
		if (opt->timeout > 0)
			h->timeout = opt->timeout;
		if (opt->retries >= 0)
			h->retries = opt->retries > HTTP_RETRIES_MAX ?
				     HTTP_RETRIES_MAX : opt->retries;
		if (opt->cafile) {
			if (access(opt->cafile, R_OK) < 0) {
				r = -errno;
				goto out_free;
			}
			h->cafile = strdup(opt->cafile);
			if (!h->cafile) {
				r = -ENOMEM;
				goto out_free;
			}
		}
		if (opt->pinned_key) {
			/* Either "sha256//..." hashes or a public key file. */
			if (strncmp(opt->pinned_key, "sha256//", 8) != 0 &&
			    access(opt->pinned_key, R_OK) < 0) {
				r = -errno;
				goto out_free;
			}
			h->pinned_key = strdup(opt->pinned_key);
			if (!h->pinned_key) {
				r = -ENOMEM;
				goto out_free;
			}
		}
		if (opt->token_file) {
			r = read_token(opt->token_file, &h->token,
				       &h->token_len);
			if (r < 0)
				goto out_free;
		}
	}

	r = share_new(h);
	if (r < 0)
		goto out_free_share;
	if (pthread_key_create(&h->key, slot_destroy) != 0) {
		r = -EAGAIN;
		goto out_free_share;
	}
	*ret_http = h;
	return 0;

out_free_share:
	share_free(h);
out_free:
	if (h->token) {
		cipher_wipe(h->token, h->token_len);
		free(h->token);
	}
	free(h->pinned_key);
	free(h->cafile);
	free(h);
	return r;
}

/*
 * The caller guarantees that no thread is inside a call on h, nor
 * exiting, while h is freed.
 */
struct http *http_free(struct http *h)
{
	struct http_slot **pp, *slot;

	if (!h)
		return NULL;

	pthread_mutex_lock(&http_lock);
	pp = &http_slots;
	while ((slot = *pp)) {
		if (slot->owner == h) {
			*pp = slot->next;
			curl_easy_cleanup(slot->easy);
			free(slot);
		} else {
			pp = &slot->next;
		}
	}
	pthread_mutex_unlock(&http_lock);
	/* Threads still alive keep a dangling value, but a deleted key's
	 * destructor is never called. */
	(void)pthread_key_delete(h->key);
	share_free(h);		/* after every handle that used it */

	if (h->token) {
		cipher_wipe(h->token, h->token_len);
		free(h->token);
	}
	free(h->pinned_key);
	free(h->cafile);
	free(h);
	return NULL;
}

/* ---- URLs ---------------------------------------------------------------- */

static bool has_prefix_ci(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

static bool is_https(const char *url)
{
	return has_prefix_ci(url, "https://");
}

static bool is_file(const char *url)
{
	return has_prefix_ci(url, "file://");
}

/* Length of a leading RFC 3986 scheme including its ':', or 0. */
static size_t scheme_len(const char *s)
{
	size_t i;

	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
		return 0;
	for (i = 1; s[i]; i++) {
		char c = s[i];

		if (c == ':')
			return i + 1;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '+' || c == '-' ||
		      c == '.'))
			return 0;
	}
	return 0;
}

static bool has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
			return true;
	return false;
}

static bool is_unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	       c == '~';
}

/* Percent-encode path (keeping '/') onto out at *pos; out is big enough. */
static void encode_path(const char *path, char *out, size_t *pos)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p;

	for (p = (const unsigned char *)path; *p; p++) {
		if (is_unreserved(*p) || *p == '/') {
			out[(*pos)++] = (char)*p;
		} else {
			out[(*pos)++] = '%';
			out[(*pos)++] = hex[*p >> 4];
			out[(*pos)++] = hex[*p & 15];
		}
	}
	out[*pos] = '\0';
}

/* Copy url with a trailing '/' added when missing and the scheme
 * lower-cased (it was matched case-insensitively). */
static int dup_with_slash(const char *url, size_t schemelen, char **ret)
{
	size_t len = strlen(url), i;
	char *s;

	if (len > HTTP_URL_MAX)
		return -ENAMETOOLONG;
	s = malloc(len + 2);
	if (!s)
		return -ENOMEM;
	memcpy(s, url, len + 1);
	for (i = 0; i < schemelen; i++)
		if (s[i] >= 'A' && s[i] <= 'Z')
			s[i] = (char)(s[i] - 'A' + 'a');
	if (len == 0 || s[len - 1] != '/') {
		s[len] = '/';
		s[len + 1] = '\0';
	}
	*ret = s;
	return 0;
}

int http_source_to_base(const char *source, char **ret_base)
{
	char *real, *base;
	struct stat st;
	size_t pos = 0, len;
	int r;

	if (!source || !*source)
		return -EINVAL;
	if (has_ctl(source))
		return -EINVAL;

	if (strstr(source, "://") && scheme_len(source) ==
	    (size_t)(strstr(source, "://") - source) + 1) {
		if (is_https(source)) {
			if (source[8] == '\0' || source[8] == '/')
				return -EINVAL;		/* no host */
			return dup_with_slash(source, 5, ret_base);
		}
		if (is_file(source))
			return dup_with_slash(source, 4, ret_base);
		return -EPROTONOSUPPORT;
	}

	/* A directory path, relative or absolute. */
	real = realpath(source, NULL);
	if (!real)
		return -errno;
	if (stat(real, &st) < 0) {
		r = -errno;
		goto out_free_real;
	}
	if (!S_ISDIR(st.st_mode)) {
		r = -ENOTDIR;
		goto out_free_real;
	}
	len = strlen(real);
	if (len > HTTP_URL_MAX / 3) {
		r = -ENAMETOOLONG;
		goto out_free_real;
	}
	base = malloc(strlen("file://") + 3 * len + 2);
	if (!base) {
		r = -ENOMEM;
		goto out_free_real;
	}
	memcpy(base, "file://", 7);
	pos = 7;
	encode_path(real, base, &pos);
	if (base[pos - 1] != '/') {
		base[pos++] = '/';
		base[pos] = '\0';
	}
	*ret_base = base;
	r = 0;
out_free_real:
	free(real);
	return r;
}

/*
 * A relative reference we accept: non-empty, no leading '/', no
 * backslash, no control character, no empty, "." or ".." component.
 */
static bool ref_is_safe(const char *ref)
{
	const char *p = ref, *end;
	size_t n;

	if (!*ref || *ref == '/' || strchr(ref, '\\') || has_ctl(ref))
		return false;
	while (*p) {
		end = strchr(p, '/');
		n = end ? (size_t)(end - p) : strlen(p);
		if (n == 0 || (n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		if (!end)
			break;
		p = end + 1;
		if (!*p)
			return false;	/* trailing '/' */
	}
	return true;
}

int http_url_join(const char *base, const char *ref, char **ret_url)
{
	size_t blen, rlen, pos;
	char *url;

	if (!base || !ref)
		return -EINVAL;
	if (!is_https(base) && !is_file(base))
		return -EPROTONOSUPPORT;

	if (scheme_len(ref) > 0) {
		/* Absolute: only https, and only from an https market, so a
		 * remote manifest can never name a local file. */
		if (!is_https(ref) || !is_https(base))
			return -EPERM;
		if (has_ctl(ref) || strchr(ref, ' ') || strchr(ref, '\\') ||
		    ref[8] == '\0' || ref[8] == '/')
			return -EINVAL;
		if (strlen(ref) > HTTP_URL_MAX)
			return -ENAMETOOLONG;
		url = strdup(ref);
		if (!url)
			return -ENOMEM;
		*ret_url = url;
		return 0;
	}
	if (!ref_is_safe(ref))
		return -EINVAL;

	blen = strlen(base);
	rlen = strlen(ref);
	if (blen > HTTP_URL_MAX || rlen > HTTP_URL_MAX)
		return -ENAMETOOLONG;
	url = malloc(blen + 1 + 3 * rlen + 1);
	if (!url)
		return -ENOMEM;
	memcpy(url, base, blen);
	pos = blen;
	/* base names a directory; be lenient about its final '/'. */
	if (url[pos - 1] != '/')
		url[pos++] = '/';
	encode_path(ref, url, &pos);
	*ret_url = url;
	return 0;
}

/* ---- transfers --------------------------------------------------------- */

enum sink_mode {
	SINK_GROW,		/* http_get: growing buffer up to max */
	SINK_FIXED,		/* http_get_range: exactly len into buf */
	SINK_NONE,		/* http_size: no body expected */
};

struct sink {
	enum sink_mode mode;
	CURL *easy;
	bool https;
	uint8_t *buf;
	size_t len;
	size_t cap;
	size_t max;		/* GROW: largest body; FIXED: exact length */
	bool overflow;		/* more bytes than allowed arrived */
	bool bad_status;	/* FIXED over https: status was not 206 */
	char want_range[64];	/* FIXED over https: "bytes S-E/" */
	bool range_seen;
	bool range_ok;
	struct http_validator *v;	/* FIXED over https, or NULL */
	char etag[HTTP_VALIDATOR_MAX];	/* this answer's, "" if none */
	char last_modified[HTTP_VALIDATOR_MAX];
};

static size_t sink_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;
	size_t n = size * nmemb, cap;
	long status = 0;
	uint8_t *nb;

	if (n == 0)
		return 0;
	if (s->mode == SINK_NONE) {
		s->overflow = true;
		return 0;
	}
	/*
	 * A wrong status (a full 200 answer to a ranged request, an error
	 * page): stop before its body.
	 */
	if (s->https) {
		curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
		if (status != (s->mode == SINK_FIXED ? 206 : 200)) {
			s->bad_status = true;
			return 0;
		}
	}
	if (n > s->max - s->len) {
		s->overflow = true;
		return 0;	/* aborts the transfer: CURLE_WRITE_ERROR */
	}
	if (s->mode == SINK_GROW && s->len + n + 1 > s->cap) {
		cap = s->cap ? s->cap : 16384;
		while (cap < s->len + n + 1)
			cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
		if (cap > s->max + 1)
			cap = s->max + 1;
		nb = realloc(s->buf, cap);
		if (!nb)
			return 0;
		s->buf = nb;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, data, n);
	s->len += n;
	return n;
}

/*
 * Copy a header's value without surrounding blanks or the line end into
 * out (HTTP_VALIDATOR_MAX bytes); a value too long or holding a control
 * character is dropped ("" in out), so it is never used nor compared.
 */
static void header_value(const char *v, size_t n, char *out)
{
	size_t i;

	while (n > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		n--;
	}
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t' ||
			 v[n - 1] == '\r' || v[n - 1] == '\n'))
		n--;
	out[0] = '\0';
	if (n == 0 || n >= HTTP_VALIDATOR_MAX)
		return;
	for (i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] == 0x7f)
			return;
	memcpy(out, v, n);
	out[n] = '\0';
}

/* Watch Content-Range (and the validators) on ranged https requests. */
static size_t sink_header(char *data, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;
	size_t n = size * nmemb, wl, i;
	const char *v;

	/* A new status line (after a redirect): forget earlier headers. */
	if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		s->range_seen = false;
		s->range_ok = false;
		s->etag[0] = '\0';
		s->last_modified[0] = '\0';
		return n;
	}
	if (n >= 5 && strncasecmp(data, "etag:", 5) == 0) {
		header_value(data + 5, n - 5, s->etag);
		return n;
	}
	if (n >= 14 && strncasecmp(data, "last-modified:", 14) == 0) {
		header_value(data + 14, n - 14, s->last_modified);
		return n;
	}
	if (n < 14 || strncasecmp(data, "content-range:", 14) != 0)
		return n;
	s->range_seen = true;
	s->range_ok = false;
	i = 14;
	while (i < n && (data[i] == ' ' || data[i] == '\t'))
		i++;
	v = data + i;
	wl = strlen(s->want_range);
	if (n - i < wl || memcmp(v, s->want_range, wl) != 0)
		return n;
	/* Then the complete length: digits or '*', then end of line. */
	i += wl;
	if (i < n && data[i] == '*') {
		i++;
	} else {
		if (i >= n || data[i] < '0' || data[i] > '9')
			return n;
		while (i < n && data[i] >= '0' && data[i] <= '9')
			i++;
	}
	while (i < n && (data[i] == ' ' || data[i] == '\t' ||
			 data[i] == '\r' || data[i] == '\n'))
		i++;
	if (i == n)
		s->range_ok = true;
	return n;
}

/*
 * Compare a ranged answer's validators with what v remembers, or record
 * them in v when it is still empty.  Both are compared when both are
 * known: a server that ignores If-Range must still not mix versions.
 */
static int validator_check(const struct sink *s)
{
	struct http_validator *v = s->v;
	int r = 0;

	pthread_mutex_lock(&v->lock);
	if (!v->etag[0] && !v->last_modified[0]) {
		memcpy(v->etag, s->etag, sizeof(v->etag));
		memcpy(v->last_modified, s->last_modified,
		       sizeof(v->last_modified));
	} else if (v->etag[0] && strcmp(v->etag, s->etag) != 0) {
		set_error("object changed (ETag %s, was %s)",
			  s->etag[0] ? s->etag : "none", v->etag);
		r = -ESTALE;
	} else if (v->last_modified[0] &&
		   strcmp(v->last_modified, s->last_modified) != 0) {
		set_error("object changed (Last-Modified %s, was %s)",
			  s->last_modified[0] ? s->last_modified : "none",
			  v->last_modified);
		r = -ESTALE;
	}
	pthread_mutex_unlock(&v->lock);
	return r;
}

/*
 * The If-Range header for v: its strong ETag, else its Last-Modified
 * (RFC 9110 13.1.5 allows no weak ETag there).  "" when v knows nothing.
 */
static void validator_if_range(struct http_validator *v, char *out,
			       size_t outlen)
{
	out[0] = '\0';
	pthread_mutex_lock(&v->lock);
	if (v->etag[0] && strncmp(v->etag, "W/", 2) != 0)
		snprintf(out, outlen, "If-Range: %s", v->etag);
	else if (v->last_modified[0])
		snprintf(out, outlen, "If-Range: %s", v->last_modified);
	pthread_mutex_unlock(&v->lock);
}

int http_validator_new(struct http_validator **ret_v)
{
	struct http_validator *v;
	int err;

	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	err = pthread_mutex_init(&v->lock, NULL);
	if (err) {
		free(v);
		return -err;
	}
	*ret_v = v;
	return 0;
}

struct http_validator *http_validator_free(struct http_validator *v)
{
	if (!v)
		return NULL;
	pthread_mutex_destroy(&v->lock);
	free(v);
	return NULL;
}

/* Outcome of one attempt. */
enum attempt {
	ATTEMPT_OK,
	ATTEMPT_RETRY,		/* transient: try again after backoff */
	ATTEMPT_FAIL,		/* final: r holds the errno */
};

/* Options common to every request; the handle has just been reset. */
static int setup_easy(struct http *h, struct http_slot *slot,
		      const char *url)
{
	CURL *e = slot->easy;
	CURLcode c = CURLE_OK;

#define SET(opt, val)						\
	do {							\
		if (c == CURLE_OK)				\
			c = curl_easy_setopt(e, opt, val);	\
	} while (0)
	SET(CURLOPT_URL, url);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_PROTOCOLS_STR, "https,file");
	SET(CURLOPT_REDIR_PROTOCOLS_STR, "https");
	SET(CURLOPT_FOLLOWLOCATION, 1L);
	SET(CURLOPT_MAXREDIRS, (long)HTTP_MAX_REDIRS);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	SET(CURLOPT_PROXY, "");
	SET(CURLOPT_CONNECTTIMEOUT, h->connect_timeout);
	SET(CURLOPT_TIMEOUT, h->timeout);
	SET(CURLOPT_LOW_SPEED_LIMIT, (long)HTTP_LOW_SPEED_LIMIT);
	SET(CURLOPT_LOW_SPEED_TIME, (long)HTTP_LOW_SPEED_TIME);
	SET(CURLOPT_USERAGENT, "marketfs/" MARKETFS_VERSION);
	SET(CURLOPT_ERRORBUFFER, slot->errbuf);
	if (h->cafile)
		SET(CURLOPT_CAINFO, h->cafile);
	if (h->pinned_key)
		SET(CURLOPT_PINNEDPUBLICKEY, h->pinned_key);
	if (h->token && is_https(url)) {
		SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
		SET(CURLOPT_XOAUTH2_BEARER, h->token);
	}
#undef SET
	if (c == CURLE_OUT_OF_MEMORY)
		return -ENOMEM;
	if (c != CURLE_OK) {
		set_error("curl: %s", curl_easy_strerror(c));
		return -EIO;
	}
	return 0;
}

static bool curl_is_transient(CURLcode c)
{
	switch (c) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR:
		return true;
	default:
		return false;
	}
}

static bool status_is_transient(long status)
{
	return status >= 500 || status == 408 || status == 429;
}

/*
 * Map a finished transfer to an outcome.  The only place where curl
 * results and HTTP statuses become errnos.
 */
static enum attempt classify(struct http_slot *slot, const struct sink *s,
			     const char *url, CURLcode c, uint64_t off,
			     int *ret_err)
{
	bool https = is_https(url);
	long status = 0;

	curl_easy_getinfo(slot->easy, CURLINFO_RESPONSE_CODE, &status);

	if (c == CURLE_WRITE_ERROR && s->bad_status) {
		if (status == 404 || status == 410) {
			set_error("HTTP %ld", status);
			*ret_err = -ENOENT;
			return ATTEMPT_FAIL;
		}
		if (s->mode == SINK_FIXED) {
			set_error("expected 206, got %ld", status);
			*ret_err = -EIO;
			return status == 200 || status_is_transient(status) ?
			       ATTEMPT_RETRY : ATTEMPT_FAIL;
		}
		set_error("HTTP %ld", status);
		*ret_err = -EIO;
		return status_is_transient(status) ? ATTEMPT_RETRY :
		       ATTEMPT_FAIL;
	}
	if ((c == CURLE_WRITE_ERROR && s->overflow) ||
	    c == CURLE_FILESIZE_EXCEEDED) {
		if (s->mode == SINK_GROW) {
			set_error("body larger than %zu bytes", s->max);
			*ret_err = -EFBIG;
			return ATTEMPT_FAIL;
		}
		set_error("body longer than asked");
		*ret_err = -EIO;
		return https ? ATTEMPT_RETRY : ATTEMPT_FAIL;
	}
	if (c == CURLE_FILE_COULDNT_READ_FILE) {
		set_error("no such file");
		*ret_err = -ENOENT;
		return ATTEMPT_FAIL;
	}
	if (c == CURLE_BAD_DOWNLOAD_RESUME || c == CURLE_RANGE_ERROR) {
		/* file://: the range starts past the end of the file. */
		set_error("short body");
		*ret_err = -EIO;
		return https ? ATTEMPT_RETRY : ATTEMPT_FAIL;
	}
	if (c == CURLE_OUT_OF_MEMORY) {
		set_error("out of memory");
		*ret_err = -ENOMEM;
		return ATTEMPT_FAIL;
	}
	if (c != CURLE_OK) {
		set_error("%s", slot->errbuf[0] ? slot->errbuf :
			  curl_easy_strerror(c));
		*ret_err = c == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO;
		/* The server is not who it should be: not "offline". */
		if (c == CURLE_PEER_FAILED_VERIFICATION ||
		    c == CURLE_SSL_PINNEDPUBKEYNOTMATCH ||
		    c == CURLE_SSL_CACERT_BADFILE ||
		    c == CURLE_SSL_ISSUER_ERROR)
			*ret_err = -EKEYREJECTED;
		return curl_is_transient(c) ? ATTEMPT_RETRY : ATTEMPT_FAIL;
	}

	if (https) {
		if (status == 404 || status == 410) {
			set_error("HTTP %ld", status);
			*ret_err = -ENOENT;
			return ATTEMPT_FAIL;
		}
		if (s->mode == SINK_FIXED) {
			if (status != 206) {
				set_error("expected 206, got %ld", status);
				*ret_err = -EIO;
				return ATTEMPT_RETRY;
			}
			if (!s->range_seen || !s->range_ok) {
				set_error("Content-Range mismatch at %llu",
					  (unsigned long long)off);
				*ret_err = -EIO;
				return ATTEMPT_RETRY;
			}
			if (s->v && validator_check(s) < 0) {
				*ret_err = -EIO;
				return ATTEMPT_RETRY;
			}
		} else if (status != 200) {
			set_error("HTTP %ld", status);
			*ret_err = -EIO;
			return status_is_transient(status) ? ATTEMPT_RETRY :
			       ATTEMPT_FAIL;
		}
	}
	if (s->mode == SINK_FIXED && s->len != s->max) {
		set_error("short body (%zu of %zu bytes)", s->len, s->max);
		*ret_err = -EIO;
		return https ? ATTEMPT_RETRY : ATTEMPT_FAIL;
	}
	*ret_err = 0;
	return ATTEMPT_OK;
}

/* Sleep 100 ms, 200 ms, 400 ms, ... for attempt 0, 1, 2, ..., +-50%. */
static void backoff(int attempt)
{
	struct timespec ts;
	uint64_t ms, x;

	if (!http_rng) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		http_rng = (((uint64_t)ts.tv_nsec << 20) ^
			    (uint64_t)ts.tv_sec ^
			    (uint64_t)(uintptr_t)&ts) | 1;
	}
	/* xorshift64: jitter needs no cryptographic quality. */
	x = http_rng;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	http_rng = x;

	ms = (uint64_t)HTTP_BACKOFF_BASE_MS << (attempt < 10 ? attempt : 10);
	ms = ms / 2 + x % (ms + 1);
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * URLs that recently timed out (a server too slow or stalled).  Their
 * requests fail at once for SLOW_MEMORY seconds, so that the kernel
 * asking again for the same pages, or read-ahead asking for the next
 * ones, does not keep a reader waiting a full deadline each time.
 */
#define SLOW_SLOTS	32
#define SLOW_MEMORY	15

static pthread_mutex_t slow_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char url[HTTP_URL_MAX + 1];
	time_t when;
} slow[SLOW_SLOTS];

static int slow_recent(const char *url)
{
	time_t now = time(NULL);
	int i, hit = 0;

	pthread_mutex_lock(&slow_lock);
	for (i = 0; i < SLOW_SLOTS && !hit; i++)
		hit = slow[i].url[0] && now - slow[i].when < SLOW_MEMORY &&
		      strcmp(slow[i].url, url) == 0;
	pthread_mutex_unlock(&slow_lock);
	return hit;
}

static void slow_note(const char *url)
{
	int i, oldest = 0;

	pthread_mutex_lock(&slow_lock);
	for (i = 0; i < SLOW_SLOTS; i++) {
		if (strcmp(slow[i].url, url) == 0) {
			oldest = i;
			break;
		}
		if (slow[i].when < slow[oldest].when)
			oldest = i;
	}
	snprintf(slow[oldest].url, sizeof(slow[oldest].url), "%s", url);
	slow[oldest].when = time(NULL);
	pthread_mutex_unlock(&slow_lock);
}

/*
 * Run one request described by s, with retries and backoff for
 * transient failures.  The only retry loop in marketfs.  A timeout is
 * not retried (a server too slow for the deadline will not be faster
 * 100 ms later), and is remembered for a while (slow_recent()).
 */
static int http_perform_retry(struct http *h, const char *url,
			      struct sink *s, uint64_t off)
{
	struct http_slot *slot;
	struct curl_slist *hdrs;
	char if_range[HTTP_VALIDATOR_MAX + 16];
	enum attempt a;
	CURLcode c;
	int attempt, r;

	http_error[0] = '\0';
	if (!url || (!is_https(url) && !is_file(url))) {
		set_error("scheme not allowed");
		return -EPERM;
	}
	if (strlen(url) > HTTP_URL_MAX || has_ctl(url)) {
		set_error("bad URL");
		return -EINVAL;
	}
	if (slow_recent(url)) {
		set_error("server too slow: it timed out less than %d s ago",
			  SLOW_MEMORY);
		return -EIO;
	}
	r = slot_get(h, &slot);
	if (r < 0) {
		set_error("cannot make a curl handle");
		return r;
	}
	s->easy = slot->easy;
	s->https = is_https(url);

	for (attempt = 0;; attempt++) {
		curl_easy_reset(slot->easy);
		slot->errbuf[0] = '\0';
		r = setup_easy(h, slot, url);
		if (r < 0)
			return r;

		s->len = 0;
		s->overflow = false;
		s->bad_status = false;
		s->range_seen = false;
		s->range_ok = false;
		s->etag[0] = '\0';
		s->last_modified[0] = '\0';
		hdrs = NULL;
		c = curl_easy_setopt(slot->easy, CURLOPT_WRITEFUNCTION,
				     sink_write);
		if (c == CURLE_OK)
			c = curl_easy_setopt(slot->easy, CURLOPT_WRITEDATA, s);
		if (c == CURLE_OK && s->mode == SINK_GROW)
			c = curl_easy_setopt(slot->easy,
					     CURLOPT_MAXFILESIZE_LARGE,
					     (curl_off_t)(s->max > INT64_MAX ?
							  INT64_MAX : s->max));
		if (c == CURLE_OK && s->mode == SINK_FIXED) {
			char range[64];

			snprintf(range, sizeof(range), "%llu-%llu",
				 (unsigned long long)off,
				 (unsigned long long)(off + s->max - 1));
			c = curl_easy_setopt(slot->easy, CURLOPT_RANGE, range);
			if (c == CURLE_OK)
				c = curl_easy_setopt(slot->easy,
						     CURLOPT_HEADERFUNCTION,
						     sink_header);
			if (c == CURLE_OK)
				c = curl_easy_setopt(slot->easy,
						     CURLOPT_HEADERDATA, s);
		}
		if (c == CURLE_OK && s->mode == SINK_NONE)
			c = curl_easy_setopt(slot->easy, CURLOPT_NOBODY, 1L);
		/* A changed object answers 200 to If-Range: refused below. */
		if (c == CURLE_OK && s->v && s->https) {
			validator_if_range(s->v, if_range, sizeof(if_range));
			if (if_range[0]) {
				hdrs = curl_slist_append(NULL, if_range);
				c = hdrs ? curl_easy_setopt(slot->easy,
							    CURLOPT_HTTPHEADER,
							    hdrs) :
				    CURLE_OUT_OF_MEMORY;
			}
		}
		if (c != CURLE_OK) {
			curl_slist_free_all(hdrs);
			set_error("curl: %s", curl_easy_strerror(c));
			return c == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EIO;
		}

		c = curl_easy_perform(slot->easy);
		if (hdrs) {
			(void)curl_easy_setopt(slot->easy, CURLOPT_HTTPHEADER,
					       NULL);
			curl_slist_free_all(hdrs);
		}
		a = classify(slot, s, url, c, off, &r);
		if (a == ATTEMPT_OK) {
			http_error[0] = '\0';	/* earlier tries failed */
			return 0;
		}
		if (a == ATTEMPT_FAIL || attempt >= h->retries)
			break;
		log_debug("http: attempt %d failed: %s, retrying", attempt + 1,
			  http_error);
		backoff(attempt);
	}
	if (r == -ETIMEDOUT)
		slow_note(url);
	/* Past the retries, only the errnos the header names remain. */
	if (r != -ENOENT && r != -EFBIG && r != -ENOMEM && r != -EPERM &&
	    r != -EKEYREJECTED &&
	    !(r == -ETIMEDOUT && s->mode != SINK_FIXED))
		r = -EIO;
	return r;
}

int http_get(struct http *h, const char *url, size_t max,
	     uint8_t **ret_buf, size_t *ret_len)
{
	struct sink s = { .mode = SINK_GROW, .max = max };
	int r;

	if (!h || max >= SIZE_MAX - 1)
		return -EINVAL;
	r = http_perform_retry(h, url, &s, 0);
	if (r < 0) {
		free(s.buf);
		return r;
	}
	if (!s.buf) {
		s.buf = malloc(1);
		if (!s.buf)
			return -ENOMEM;
	}
	s.buf[s.len] = '\0';
	*ret_buf = s.buf;
	*ret_len = s.len;
	return 0;
}

static int unhex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * The local path of a file:// URL ("file:///p" or "file://localhost/p"),
 * percent-decoded.  -EINVAL for another host, a query or fragment, or an
 * escaped NUL: such URLs are left to libcurl, which refuses them.
 */
static int file_url_path(const char *url, char *path, size_t size)
{
	const char *p = url + strlen("file://");
	size_t n = 0;
	int hi, lo;

	if (has_prefix_ci(p, "localhost/"))
		p += strlen("localhost");
	if (*p != '/' || strpbrk(p, "?#"))
		return -EINVAL;
	for (; *p; p++) {
		char c = *p;

		if (c == '%') {
			hi = unhex_digit(p[1]);
			lo = hi < 0 ? -1 : unhex_digit(p[2]);
			if (lo < 0 || (hi == 0 && lo == 0))
				return -EINVAL;
			c = (char)(hi << 4 | lo);
			p += 2;
		}
		if (n + 1 >= size)
			return -ENAMETOOLONG;
		path[n++] = c;
	}
	path[n] = '\0';
	return 0;
}

/*
 * A range of a local file with pread(), not a libcurl transfer: a local
 * market is read this way at every FUSE read, where the set-up of a
 * transfer and the copy through libcurl's buffer cost as much as the
 * read itself.  The outcomes are the libcurl path's: -ENOENT when the
 * file cannot be opened, -EIO when it is shorter than the range or
 * cannot be read.  1 when the URL is not one this handles.
 */
static int file_range(const char *url, uint64_t off, size_t len,
		      uint8_t *buf)
{
	char path[PATH_MAX];
	size_t done = 0;
	ssize_t n = 0;
	int fd, r;

	if (strlen(url) > HTTP_URL_MAX || has_ctl(url) ||
	    file_url_path(url, path, sizeof(path)) < 0)
		return 1;

	http_error[0] = '\0';
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		set_error("%s", errno == ENOENT ? "no such file" :
			  strerror(errno));
		return -ENOENT;
	}
	while (done < len) {
		n = pread(fd, buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	if (n < 0) {
		set_error("%s", strerror(errno));
		r = -EIO;
	} else if (done < len) {
		set_error("short body (%zu of %zu bytes)", done, len);
		r = -EIO;
	} else {
		r = 0;
	}
	close(fd);
	return r;
}

int http_get_range(struct http *h, const char *url, uint64_t off,
		   size_t len, uint8_t *buf)
{
	return http_get_range_validated(h, url, NULL, off, len, buf);
}

int http_get_range_validated(struct http *h, const char *url,
			     struct http_validator *v, uint64_t off,
			     size_t len, uint8_t *buf)
{
	struct sink s = { .mode = SINK_FIXED, .buf = buf, .max = len,
			  .cap = len, .v = v };
	int r;

	if (!h || !buf)
		return -EINVAL;
	if (len == 0)
		return 0;
	if (off > UINT64_MAX - len || off + len - 1 > (uint64_t)INT64_MAX)
		return -EINVAL;
	if (url && is_file(url)) {
		r = file_range(url, off, len, buf);
		if (r <= 0)
			return r;
	}
	snprintf(s.want_range, sizeof(s.want_range), "bytes %llu-%llu/",
		 (unsigned long long)off,
		 (unsigned long long)(off + len - 1));
	return http_perform_retry(h, url, &s, off);
}

int http_size(struct http *h, const char *url, uint64_t *ret_size)
{
	struct sink s = { .mode = SINK_NONE };
	struct http_slot *slot;
	curl_off_t cl = -1;
	int r;

	if (!h)
		return -EINVAL;
	r = http_perform_retry(h, url, &s, 0);
	if (r < 0)
		return r;
	r = slot_get(h, &slot);
	if (r < 0)
		return r;
	if (curl_easy_getinfo(slot->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
			      &cl) != CURLE_OK || cl < 0) {
		set_error("no Content-Length");
		return -EIO;
	}
	*ret_size = (uint64_t)cl;
	return 0;
}

/* Count and drop an answer's body (a witness has nothing to tell us). */
static size_t sink_discard(char *data, size_t size, size_t nmemb, void *arg)
{
	size_t *seen = arg, n = size * nmemb;

	(void)data;
	*seen += n;
	return *seen > HTTP_POST_ANSWER_MAX ? 0 : n;
}

int http_post(struct http *h, const char *url, const char *content_type,
	      const void *body, size_t len)
{
	struct curl_slist *hdrs = NULL;
	struct http_slot *slot;
	char ctype[128];
	size_t seen = 0;
	long status = 0;
	CURLcode c;
	int r;

	http_error[0] = '\0';
	if (!h || !url || !content_type || (!body && len))
		return -EINVAL;
	if (!is_https(url)) {
		set_error("scheme not allowed");
		return -EPERM;
	}
	if (strlen(url) > HTTP_URL_MAX || has_ctl(url) ||
	    has_ctl(content_type) || len > (size_t)LONG_MAX)
		return -EINVAL;
	r = slot_get(h, &slot);
	if (r < 0) {
		set_error("cannot make a curl handle");
		return r;
	}
	curl_easy_reset(slot->easy);
	slot->errbuf[0] = '\0';
	r = setup_easy(h, slot, url);
	if (r < 0)
		return r;
	snprintf(ctype, sizeof(ctype), "Content-Type: %s", content_type);
	hdrs = curl_slist_append(NULL, ctype);
	if (!hdrs)
		return -ENOMEM;
	c = curl_easy_setopt(slot->easy, CURLOPT_POSTFIELDS, body ? body : "");
	if (c == CURLE_OK)
		c = curl_easy_setopt(slot->easy, CURLOPT_POSTFIELDSIZE,
				     (long)len);
	if (c == CURLE_OK)
		c = curl_easy_setopt(slot->easy, CURLOPT_HTTPHEADER, hdrs);
	/* A redirect would turn the POST into a GET: refuse it. */
	if (c == CURLE_OK)
		c = curl_easy_setopt(slot->easy, CURLOPT_FOLLOWLOCATION, 0L);
	if (c == CURLE_OK)
		c = curl_easy_setopt(slot->easy, CURLOPT_WRITEFUNCTION,
				     sink_discard);
	if (c == CURLE_OK)
		c = curl_easy_setopt(slot->easy, CURLOPT_WRITEDATA, &seen);
	if (c == CURLE_OK)
		c = curl_easy_perform(slot->easy);
	curl_easy_getinfo(slot->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_setopt(slot->easy, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);

	if (c == CURLE_OUT_OF_MEMORY)
		return -ENOMEM;
	if (c != CURLE_OK && !(c == CURLE_WRITE_ERROR && status)) {
		set_error("%s", slot->errbuf[0] ? slot->errbuf :
			  curl_easy_strerror(c));
		return -EAGAIN;
	}
	if (status >= 200 && status < 300)
		return 0;
	set_error("HTTP %ld", status);
	return status_is_transient(status) || status < 200 ? -EAGAIN :
	       -EREMOTEIO;
}
