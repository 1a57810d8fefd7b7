/*
 * cache.c - verified ciphertext segments in memory and on disk, with
 * read-ahead and single-flight fetches (see cache.h for the contract).
 *
 * Invariants:
 *
 * - Only bytes whose SHA-256 equals the digest they are filed under are
 *   ever handed out, kept in memory as READY, or renamed into the disk
 *   cache.  Network bytes are hashed before they are kept; disk bytes
 *   are hashed each time they are read back.  Everything is ciphertext.
 * - A memory entry is LOADING while exactly one thread (its owner) is
 *   fetching it; others that want it take a reference and sleep on
 *   c->cond until it is READY or FAILED.  A FAILED entry is unhashed at
 *   once (the next reader tries again) and freed by its last reference.
 *   Only READY entries without references are evicted, so the memory
 *   bound can be reached but never passed: when every entry is busy a
 *   fetch goes straight into the caller's buffer, uncached.
 * - Every LOADING entry claimed is completed on every path, and every
 *   reference taken is dropped: no reader can sleep forever.
 * - Disk files are written to a temporary name, renamed only complete;
 *   a write that fails (ENOSPC, EIO) is dropped and reading goes on from
 *   the network.  The disk index is a hint: a file that is not in it is
 *   still tried, one that is in it may have gone.
 * - Read-ahead threads are started on first use, after the daemon has
 *   forked; they hold a reference on the cache_file of each job, so a
 *   file closed under a running job is freed by that job.
 *
 * Locks: c->lock guards the memory entries, the job queue, every
 * cache_file's refs/closed/read-ahead state and the thread start;
 * c->dlock guards the disk index.  c->lock is never held across I/O
 * (only memcpy of one segment), c->dlock only across unlink().
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "c4gh.h"
#include "cache.h"
#include "cipher.h"
#include "http.h"
#include "log.h"
#include "lru.h"
#include "util.h"

#define SEG		C4GH_CIPHER_SEGMENT
#define MBUCKETS	1024		/* memory hash buckets */
#define DBUCKETS	16384		/* disk index hash buckets */
#define MEM_MIN_ENTRIES	8
#define RA_CHUNK	16		/* segments per read-ahead request */
#define RA_WINDOW_MAX	64		/* segments read ahead at most */
#define JOBS_MAX	64		/* queued read-ahead requests */
#define OPEN_AHEAD	2		/* segments fetched at open */
#define WORKERS_MAX	16
#define CAUSE_MAX	200
#define NAME_LEN	(2 + 1 + 64)	/* "ab/" + 64 hex digits */

enum mstate {
	ENT_LOADING,
	ENT_READY,
	ENT_FAILED,
};

/* A segment (or blob) in memory.  All fields under c->lock. */
struct mentry {
	uint8_t key[32];		/* SHA-256 of data */
	struct mentry *hnext;		/* hash chain */
	struct lru_link lru;		/* in c->mlru */
	enum mstate state;
	int err;			/* FAILED: why */
	unsigned int refs;		/* owner and waiters */
	bool hashed;			/* in the table and the LRU list */
	size_t len;
	uint8_t *data;			/* len bytes, verified when READY */
	char cause[CAUSE_MAX];		/* FAILED: the owner's error text */
};

/* A file in the disk cache, as far as we know.  Under c->dlock. */
struct dentry {
	uint8_t key[32];
	struct dentry *hnext;
	struct lru_link lru;		/* in c->dlru */
	uint64_t size;
	int64_t mtime;			/* at start-up, for the first order */
};

struct job {
	struct cache_file *f;		/* holds a reference */
	uint64_t first, last;		/* segments */
};

struct cache {
	struct http *http;
	char *dir;			/* NULL: no disk cache */
	uint64_t disk_max;

	pthread_mutex_t dlock;
	struct dentry *dbuckets[DBUCKETS];
	struct lru dlru;
	uint64_t disk_used;

	pthread_mutex_t lock;
	pthread_cond_t cond;		/* an entry left LOADING */
	pthread_cond_t jobs_cond;	/* a job was queued, or stop */
	struct mentry *mbuckets[MBUCKETS];
	struct lru mlru;
	size_t mcount, mmax;
	struct job jobs[JOBS_MAX];	/* ring */
	size_t jhead, jcount;
	bool stopping;
	bool started;
	unsigned int nworkers;		/* wanted */
	unsigned int nthreads;		/* running */
	pthread_t threads[WORKERS_MAX];
	int local;			/* file:// as remote */
};

struct cache_file {
	struct cache *c;
	char *url;
	uint64_t data_off;
	uint64_t data_len;
	uint64_t nsegs;
	uint8_t *sums;			/* 32 * nsegs, owned */
	struct http_validator *v;
	bool remote;			/* https: disk cache, read-ahead */

	/* Under c->lock: */
	unsigned int refs;		/* the opener and queued/running jobs */
	bool closed;
	uint64_t next_seg;		/* where a sequential reader goes next */
	uint64_t ra_end;		/* first segment not yet read ahead */
	unsigned int seq;		/* sequential fetches in a row */
};

static _Thread_local char cache_error[CAUSE_MAX];

__attribute__((format(printf, 1, 2)))
static void set_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(cache_error, sizeof(cache_error), fmt, ap);
	va_end(ap);
}

const char *cache_last_error(void)
{
	return cache_error[0] ? cache_error : "no error";
}

static bool is_https(const char *url)
{
	return strncasecmp(url, "https://", 8) == 0;
}

/* ---- sizes and places ---------------------------------------------------- */

int cache_parse_size(const char *text, uint64_t *ret_size)
{
	uint64_t v = 0, mult = 1;
	const char *p = text;

	if (!text || *p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	switch (*p) {
	case 'k': case 'K': mult = 1ull << 10; p++; break;
	case 'm': case 'M': mult = 1ull << 20; p++; break;
	case 'g': case 'G': mult = 1ull << 30; p++; break;
	case 't': case 'T': mult = 1ull << 40; p++; break;
	default: break;
	}
	if (mult > 1 && *p == 'i')
		p++;
	if (*p == 'B' || *p == 'b')
		p++;
	if (*p)
		return -EINVAL;
	if (v > UINT64_MAX / mult)
		return -ERANGE;
	*ret_size = v * mult;
	return 0;
}

int cache_default_dir(char **ret_dir)
{
	char *dir;

	if (geteuid() == 0)
		dir = strdup("/var/cache/marketfs");
	else
		dir = util_xdg_path("XDG_CACHE_HOME", ".cache", NULL);
	if (!dir)
		return -ENOENT;
	*ret_dir = dir;
	return 0;
}

/* "ab/abcdef..." for key. */
static void disk_name(const uint8_t key[32], char out[NAME_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	out[0] = hex[key[0] >> 4];
	out[1] = hex[key[0] & 15];
	out[2] = '/';
	for (i = 0; i < 32; i++) {
		out[3 + 2 * i] = hex[key[i] >> 4];
		out[4 + 2 * i] = hex[key[i] & 15];
	}
	out[NAME_LEN] = '\0';
}

static int unhex(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/* Parse 64 lower-case hex digits; 0 or -EINVAL. */
static int parse_key(const char *name, uint8_t key[32])
{
	size_t i;
	int hi, lo;

	if (strlen(name) != 64)
		return -EINVAL;
	for (i = 0; i < 32; i++) {
		hi = unhex(name[2 * i]);
		lo = unhex(name[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		key[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static int path_of(const struct cache *c, const char *name, char *out,
		   size_t outlen)
{
	int n = snprintf(out, outlen, "%s/%s", c->dir, name);

	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

/* ---- the disk index (under dlock) ---------------------------------------- */

static size_t dbucket(const uint8_t key[32])
{
	return ((size_t)key[1] << 8 | key[2]) % DBUCKETS;
}

static struct dentry *dfind(struct cache *c, const uint8_t key[32])
{
	struct dentry *d;

	for (d = c->dbuckets[dbucket(key)]; d; d = d->hnext)
		if (memcmp(d->key, key, 32) == 0)
			return d;
	return NULL;
}

static void dremove(struct cache *c, struct dentry *d)
{
	struct dentry **pp;

	for (pp = &c->dbuckets[dbucket(d->key)]; *pp; pp = &(*pp)->hnext) {
		if (*pp == d) {
			*pp = d->hnext;
			break;
		}
	}
	lru_unlink(&c->dlru, &d->lru);
	c->disk_used -= d->size;
	free(d);
}

/* Record key as just used (adding it when new).  Under dlock. */
static void dtouch(struct cache *c, const uint8_t key[32], uint64_t size)
{
	struct dentry *d = dfind(c, key);

	if (d) {
		lru_unlink(&c->dlru, &d->lru);
		c->disk_used -= d->size;
	} else {
		d = calloc(1, sizeof(*d));
		if (!d)
			return;		/* only a hint: it stays on disk */
		memcpy(d->key, key, 32);
		d->hnext = c->dbuckets[dbucket(key)];
		c->dbuckets[dbucket(key)] = d;
	}
	d->size = size;
	c->disk_used += size;
	lru_push(&c->dlru, &d->lru);
}

/* Delete least recently used files until the bound holds.  Under dlock. */
static void devict(struct cache *c)
{
	char name[NAME_LEN + 1], path[PATH_MAX];

	while (c->disk_used > c->disk_max && c->dlru.tail) {
		struct dentry *d = LRU_OWNER(c->dlru.tail, struct dentry);

		disk_name(d->key, name);
		if (path_of(c, name, path, sizeof(path)) == 0)
			(void)unlink(path);
		dremove(c, d);
	}
}

/*
 * A segment served from memory is in use on disk too: keep its file
 * from being the next evicted.  Takes dlock (under c->lock: dlock is
 * never held while c->lock is taken).
 */
static void dbump(struct cache *c, const uint8_t key[32])
{
	struct dentry *d;

	if (!c->dir)
		return;
	pthread_mutex_lock(&c->dlock);
	d = dfind(c, key);
	if (d) {
		lru_touch(&c->dlru, &d->lru);
	}
	pthread_mutex_unlock(&c->dlock);
}

static void dforget(struct cache *c, const uint8_t key[32])
{
	struct dentry *d;

	pthread_mutex_lock(&c->dlock);
	d = dfind(c, key);
	if (d)
		dremove(c, d);
	pthread_mutex_unlock(&c->dlock);
}

/* ---- disk files ----------------------------------------------------------- */

static int read_full(int fd, uint8_t *buf, size_t len)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = pread(fd, buf + done, len - done, (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EBADMSG;	/* shrank under us */
		done += (size_t)n;
	}
	return 0;
}

/*
 * Load the file filed under key: exactly exact bytes into buf when exact
 * is not 0, else a malloc'd copy of at most max bytes.  The bytes must
 * hash to key; a file that does not is deleted.  0, -ENOENT for a miss
 * of any kind.
 */
static int disk_load(struct cache *c, const uint8_t key[32], uint8_t *buf,
		     size_t exact, size_t max, uint8_t **ret_alloc,
		     size_t *ret_len)
{
	char name[NAME_LEN + 1], path[PATH_MAX];
	uint8_t digest[32], *data = buf;
	struct stat st;
	size_t len;
	int fd, r;

	if (!c->dir)
		return -ENOENT;
	disk_name(key, name);
	if (path_of(c, name, path, sizeof(path)) < 0)
		return -ENOENT;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0)
		return -ENOENT;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		r = -ENOENT;
		goto out_close;
	}
	len = (size_t)st.st_size;
	if (st.st_size < 0 || (exact && (uint64_t)st.st_size != exact) ||
	    (!exact && (uint64_t)st.st_size > max)) {
		r = -EBADMSG;
		goto out_bad;
	}
	if (!exact) {
		data = malloc(len + 1);
		if (!data) {
			r = -ENOMEM;
			goto out_close;
		}
	}
	r = read_full(fd, data, len);
	if (r == 0)
		r = cipher_sha256(data, len, digest);
	if (r == 0 && !cipher_memeq(digest, key, 32))
		r = -EBADMSG;
	if (r < 0) {
		if (!exact)
			free(data);
		if (r == -EBADMSG)
			goto out_bad;
		r = -ENOENT;		/* an I/O error: a miss */
		goto out_close;
	}

	/* Recency survives restarts in the file's mtime. */
	(void)futimens(fd, NULL);
	pthread_mutex_lock(&c->dlock);
	dtouch(c, key, len);
	pthread_mutex_unlock(&c->dlock);
	if (!exact) {
		data[len] = '\0';
		*ret_alloc = data;
	}
	if (ret_len)
		*ret_len = len;
	r = 0;
	goto out_close;

out_bad:
	/* Damaged or swapped: never used again, fetched afresh. */
	log_debug("cache: '%s' does not match its name, deleting", name);
	(void)unlink(path);
	dforget(c, key);
	r = -ENOENT;
out_close:
	close(fd);
	return r;
}

static bool disk_has(struct cache *c, const uint8_t key[32])
{
	char name[NAME_LEN + 1], path[PATH_MAX];

	if (!c->dir)
		return false;
	disk_name(key, name);
	return path_of(c, name, path, sizeof(path)) == 0 &&
	       access(path, F_OK) == 0;
}

static int write_full(int fd, const uint8_t *data, size_t len)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = write(fd, data + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		done += (size_t)n;
	}
	return 0;
}

/*
 * File verified bytes under key: a temporary file, renamed into place
 * once complete.  Failures (a full disk) are dropped: the cache is only
 * ever a shortcut.
 */
static void disk_put(struct cache *c, const uint8_t key[32],
		     const uint8_t *data, size_t len)
{
	char name[NAME_LEN + 1], path[PATH_MAX], tmp[PATH_MAX];
	int fd, r;

	if (!c->dir || len > c->disk_max)
		return;
	disk_name(key, name);
	if (path_of(c, name, path, sizeof(path)) < 0)
		return;
	if (snprintf(tmp, sizeof(tmp), "%s/%.2s", c->dir, name) >=
	    (int)sizeof(tmp))
		return;
	if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
		return;
	if (snprintf(tmp, sizeof(tmp), "%s/%.2s/.tmp.XXXXXX", c->dir, name)
	    >= (int)sizeof(tmp))
		return;
	fd = mkostemp(tmp, O_CLOEXEC);	/* mode 0600 */
	if (fd < 0) {
		log_debug("cache: cannot create a file in '%s': %s", c->dir,
			  strerror(errno));
		return;
	}
	r = write_full(fd, data, len);
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		log_debug("cache: cannot store '%s': %s, ignoring", name,
			  strerror(-r));
		(void)unlink(tmp);
		return;
	}
	pthread_mutex_lock(&c->dlock);
	dtouch(c, key, len);
	devict(c);
	pthread_mutex_unlock(&c->dlock);
}

static int cmp_mtime(const void *a, const void *b)
{
	const struct dentry *x = *(struct dentry *const *)a;
	const struct dentry *y = *(struct dentry *const *)b;

	return x->mtime < y->mtime ? -1 : x->mtime > y->mtime;
}

/*
 * Index what a previous run left: files named by their digest, oldest
 * use last; temporary files of an interrupted write are deleted.
 * Contents are not read here: they are checked when used.
 */
static int disk_scan(struct cache *c)
{
	struct dentry **all = NULL, **na, *d;
	size_t n = 0, cap = 0, i;
	char sub[PATH_MAX], path[PATH_MAX];
	struct dirent *de, *fe;
	DIR *top, *dir;
	struct stat st;
	uint8_t key[32];

	top = opendir(c->dir);
	if (!top)
		return -errno;
	while ((de = readdir(top))) {
		if (strlen(de->d_name) != 2 || unhex(de->d_name[0]) < 0 ||
		    unhex(de->d_name[1]) < 0)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", c->dir, de->d_name);
		dir = opendir(sub);
		if (!dir)
			continue;
		while ((fe = readdir(dir))) {
			if (snprintf(path, sizeof(path), "%s/%s", sub,
				     fe->d_name) >= (int)sizeof(path))
				continue;
			if (strncmp(fe->d_name, ".tmp.", 5) == 0) {
				(void)unlink(path);
				continue;
			}
			if (parse_key(fe->d_name, key) < 0 ||
			    strncmp(fe->d_name, de->d_name, 2) != 0)
				continue;
			if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 256;
				na = realloc(all, cap * sizeof(*all));
				if (!na)
					break;
				all = na;
			}
			d = calloc(1, sizeof(*d));
			if (!d)
				break;
			memcpy(d->key, key, 32);
			d->size = (uint64_t)st.st_size;
			d->mtime = (int64_t)st.st_mtime;
			all[n++] = d;
		}
		closedir(dir);
	}
	closedir(top);

	if (n > 0)	/* qsort() of a NULL array is undefined */
		qsort(all, n, sizeof(*all), cmp_mtime);
	pthread_mutex_lock(&c->dlock);
	for (i = 0; i < n; i++) {
		d = all[i];
		d->hnext = c->dbuckets[dbucket(d->key)];
		c->dbuckets[dbucket(d->key)] = d;
		c->disk_used += d->size;
		lru_push(&c->dlru, &d->lru);	/* newest ends first */
	}
	devict(c);
	pthread_mutex_unlock(&c->dlock);
	free(all);
	return 0;
}

/* The directory: made 0700, or an existing one of ours tightened. */
static int disk_prepare(const char *dir)
{
	struct stat st;
	int r;

	r = util_mkdir_p(dir, 0700);
	if (r < 0 && r != -EEXIST)
		return r;
	if (lstat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (st.st_uid != geteuid())
		return -EPERM;
	if ((st.st_mode & 07777) != 0700 && chmod(dir, 0700) < 0)
		return -errno;
	return 0;
}

uint64_t cache_disk_usage(struct cache *c)
{
	uint64_t used;

	pthread_mutex_lock(&c->dlock);
	used = c->disk_used;
	pthread_mutex_unlock(&c->dlock);
	return used;
}

/* ---- memory entries (under lock) ----------------------------------------- */

static size_t mbucket(const uint8_t key[32])
{
	return ((size_t)key[3] << 8 | key[4]) % MBUCKETS;
}

static struct mentry *mfind(struct cache *c, const uint8_t key[32])
{
	struct mentry *e;

	for (e = c->mbuckets[mbucket(key)]; e; e = e->hnext)
		if (memcmp(e->key, key, 32) == 0)
			return e;
	return NULL;
}

static void mfree(struct mentry *e)
{
	free(e->data);
	free(e);
}

static void munhash(struct cache *c, struct mentry *e)
{
	struct mentry **pp;

	if (!e->hashed)
		return;
	for (pp = &c->mbuckets[mbucket(e->key)]; *pp; pp = &(*pp)->hnext) {
		if (*pp == e) {
			*pp = e->hnext;
			break;
		}
	}
	lru_unlink(&c->mlru, &e->lru);
	e->hashed = false;
	c->mcount--;
}

static void mput(struct mentry *e)
{
	if (--e->refs == 0 && !e->hashed)
		mfree(e);
}

/*
 * Claim key for a fetch by this thread: a new LOADING entry with one
 * reference (ours).  NULL when memory is full of busy entries or an
 * allocation fails: then fetch without caching.
 */
static struct mentry *mclaim(struct cache *c, const uint8_t key[32],
			     size_t len)
{
	struct mentry *e, *victim = NULL;
	struct lru_link *l;

	while (c->mcount >= c->mmax) {
		for (l = c->mlru.tail; l; l = l->prev) {
			victim = LRU_OWNER(l, struct mentry);
			if (victim->refs == 0 && victim->state == ENT_READY)
				break;
		}
		if (!l)
			return NULL;
		munhash(c, victim);
		mfree(victim);
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->data = malloc(len ? len : 1);
	if (!e->data) {
		free(e);
		return NULL;
	}
	memcpy(e->key, key, 32);
	e->len = len;
	e->state = ENT_LOADING;
	e->refs = 1;
	e->hashed = true;
	e->hnext = c->mbuckets[mbucket(key)];
	c->mbuckets[mbucket(key)] = e;
	lru_push(&c->mlru, &e->lru);
	c->mcount++;
	return e;
}

/* The owner's end of a LOADING entry: READY with data, or FAILED. */
static void mcomplete(struct cache *c, struct mentry *e, const uint8_t *data,
		      int err)
{
	if (!e)
		return;
	if (err == 0)
		memcpy(e->data, data, e->len);	/* LOADING: ours alone */
	pthread_mutex_lock(&c->lock);
	if (err == 0) {
		e->state = ENT_READY;
	} else {
		e->state = ENT_FAILED;
		e->err = err;
		snprintf(e->cause, sizeof(e->cause), "%s", cache_error);
		munhash(c, e);
	}
	pthread_cond_broadcast(&c->cond);
	mput(e);
	pthread_mutex_unlock(&c->lock);
}

/* ---- fetching --------------------------------------------------------------- */

static size_t seg_len(const struct cache_file *f, uint64_t idx)
{
	uint64_t left = f->data_len - idx * SEG;

	return left < SEG ? (size_t)left : SEG;
}

static const uint8_t *seg_key(const struct cache_file *f, uint64_t idx)
{
	return f->sums + idx * 32;
}

/* Does segment idx hash to the digest the manifest binds? */
static int seg_check(const struct cache_file *f, uint64_t idx,
		     const uint8_t *seg, size_t len)
{
	uint8_t digest[32];
	int r;

	if (idx >= f->nsegs || len != seg_len(f, idx))
		return -EBADMSG;
	r = cipher_sha256(seg, len, digest);
	if (r < 0)
		return r;
	return cipher_memeq(digest, seg_key(f, idx), 32) ? 0 : -EBADMSG;
}

/*
 * Download segments first..first+n-1 into buf (n * SEG bytes at most)
 * and check each against its digest.  A mismatch is fetched once more
 * (a proxy or mirror may have served a stale copy), then -EBADMSG.
 */
static int fetch_segments(struct cache_file *f, uint64_t first, uint64_t n,
			  uint8_t *buf)
{
	uint64_t idx, off = 0;
	size_t len = 0;
	int attempt, r = 0;

	for (idx = first; idx < first + n; idx++)
		len += seg_len(f, idx);
	for (attempt = 0; attempt < 2; attempt++) {
		r = http_get_range_validated(f->c->http, f->url,
					     f->v, f->data_off + first * SEG,
					     len, buf);
		if (r < 0) {
			set_error("%s", http_last_error());
			return r == -ENOMEM ? r : -EIO;
		}
		for (idx = first, off = 0; idx < first + n; idx++) {
			if (seg_check(f, idx, buf + off, seg_len(f, idx)) < 0)
				break;
			off += seg_len(f, idx);
		}
		if (idx == first + n)
			return 0;
		set_error("segment %llu of '%s' does not match the manifest",
			  (unsigned long long)idx, f->url);
		r = -EBADMSG;
	}
	return r;
}

enum want {
	W_DONE,		/* bytes are in the caller's buffer */
	W_MISS,		/* not in memory; try the disk */
	W_WAIT,		/* another thread fetches it: e referenced */
	W_OWN,		/* ours to fetch; e is ours (or NULL: uncached) */
	W_SKIP,		/* read-ahead: nothing to do */
};

struct slot {
	enum want want;
	struct mentry *e;
};

/*
 * Fetch every run of W_OWN slots of [first, first + n) into buf (the
 * segments laid out from first), complete their entries and file them
 * on disk.  Returns the first error.
 */
static int fetch_owned(struct cache_file *f, uint64_t first, uint64_t n,
		       struct slot *sl, uint8_t *buf)
{
	struct cache *c = f->c;
	uint64_t i, j, k, pos = 0, end;
	int r, err = 0;

	for (i = 0; i < n; i = j) {
		if (sl[i].want != W_OWN) {
			pos += seg_len(f, first + i);
			j = i + 1;
			continue;
		}
		for (j = i; j < n && sl[j].want == W_OWN; j++)
			;
		r = fetch_segments(f, first + i, j - i, buf + pos);
		if (r < 0 && !err)
			err = r;
		/* Wake whoever waits for any of them before the disk writes. */
		for (k = i, end = pos; k < j; k++) {
			mcomplete(c, sl[k].e, buf + end, r);
			sl[k].want = r == 0 ? W_DONE : W_SKIP;
			sl[k].e = NULL;
			end += seg_len(f, first + k);
		}
		for (k = i; r == 0 && f->remote && k < j; k++) {
			disk_put(c, seg_key(f, first + k), buf + pos,
				 seg_len(f, first + k));
			pos += seg_len(f, first + k);
		}
		pos = end;
	}
	return err;
}

/* ---- read-ahead ------------------------------------------------------------ */

static void file_release(struct cache_file *f)
{
	http_validator_free(f->v);
	free(f->sums);
	free(f->url);
	free(f);
}

/* Drop a reference under c->lock; true when f must now be released. */
static bool file_unref(struct cache_file *f)
{
	return --f->refs == 0;
}

/*
 * A read-ahead job: fetch what nobody has or fetches yet into memory and
 * disk.  Runs on a worker thread with buf of RA_CHUNK segments.
 */
static void prefetch(struct cache_file *f, uint64_t first, uint64_t last,
		     uint8_t *buf)
{
	struct cache *c = f->c;
	struct slot sl[RA_CHUNK];
	uint64_t i, n = last - first + 1;
	struct mentry *e;

	if (n > RA_CHUNK)
		return;
	pthread_mutex_lock(&c->lock);
	for (i = 0; i < n; i++)
		sl[i].want = mfind(c, seg_key(f, first + i)) ? W_SKIP : W_MISS;
	pthread_mutex_unlock(&c->lock);

	for (i = 0; i < n; i++)
		if (sl[i].want == W_MISS && f->remote &&
		    disk_has(c, seg_key(f, first + i)))
			sl[i].want = W_SKIP;

	pthread_mutex_lock(&c->lock);
	for (i = 0; i < n; i++) {
		sl[i].e = NULL;
		if (sl[i].want != W_MISS)
			continue;
		e = mfind(c, seg_key(f, first + i));
		if (!e)
			e = mclaim(c, seg_key(f, first + i),
				   seg_len(f, first + i));
		else
			e = NULL;
		/* Memory full of busy entries: read-ahead would not keep it. */
		sl[i].want = e ? W_OWN : W_SKIP;
		sl[i].e = e;
	}
	pthread_mutex_unlock(&c->lock);

	if (fetch_owned(f, first, n, sl, buf) < 0)
		log_debug("cache: read-ahead of '%s' failed: %s", f->url,
			  cache_error);
}

static void *worker_main(void *arg)
{
	struct cache *c = arg;
	struct cache_file *f;
	struct job job;
	uint8_t *buf;
	bool gone;

	buf = malloc((size_t)RA_CHUNK * SEG);
	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (!c->stopping && c->jcount == 0)
			pthread_cond_wait(&c->jobs_cond, &c->lock);
		if (c->stopping)
			break;
		job = c->jobs[c->jhead];
		c->jhead = (c->jhead + 1) % JOBS_MAX;
		c->jcount--;
		f = job.f;
		if (!f->closed && buf) {
			pthread_mutex_unlock(&c->lock);
			prefetch(f, job.first, job.last, buf);
			pthread_mutex_lock(&c->lock);
		}
		gone = file_unref(f);
		if (gone) {
			pthread_mutex_unlock(&c->lock);
			file_release(f);
			pthread_mutex_lock(&c->lock);
		}
	}
	pthread_mutex_unlock(&c->lock);
	free(buf);
	return NULL;
}

/*
 * Start the workers on first use (not in cache_new(): the daemon forks
 * after that, and threads do not survive a fork).  Signals stay with the
 * FUSE threads.  Under c->lock.
 */
static void start_workers(struct cache *c)
{
	sigset_t all, old;

	c->started = true;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	while (c->nthreads < c->nworkers &&
	       pthread_create(&c->threads[c->nthreads], NULL, worker_main,
			      c) == 0)
		c->nthreads++;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void cache_start(struct cache *c)
{
	pthread_mutex_lock(&c->lock);
	if (!c->started && c->nworkers > 0)
		start_workers(c);
	pthread_mutex_unlock(&c->lock);
}

/*
 * Queue a read-ahead of f's segments first..last for the workers,
 * starting them on first use.  False when there are no workers or the
 * queue is full.  Under c->lock.
 */
static bool queue_job(struct cache_file *f, uint64_t first, uint64_t last)
{
	struct cache *c = f->c;
	struct job *job;

	if (!c->started)
		start_workers(c);
	if (c->nthreads == 0 || c->jcount >= JOBS_MAX)
		return false;
	job = &c->jobs[(c->jhead + c->jcount) % JOBS_MAX];
	job->f = f;
	job->first = first;
	job->last = last;
	c->jcount++;
	f->refs++;
	f->ra_end = last + 1;
	pthread_cond_broadcast(&c->jobs_cond);
	return true;
}

/*
 * Note a fetch of first..last and, for a sequential reader, queue the
 * next segments: the window doubles with each sequential fetch up to
 * RA_WINDOW_MAX.  A random reader queues nothing.  Under c->lock.
 */
static void readahead_note(struct cache_file *f, uint64_t first,
			   uint64_t last)
{
	struct cache *c = f->c;
	uint64_t window, start, end, s, e;

	if (!f->remote || c->nworkers == 0)
		return;
	if (first == f->next_seg) {
		if (f->seq < 8)
			f->seq++;
	} else {
		f->seq = 0;
		f->ra_end = 0;
	}
	f->next_seg = last + 1;
	if (f->seq == 0)
		return;

	window = (uint64_t)RA_CHUNK << f->seq;
	if (window > RA_WINDOW_MAX)
		window = RA_WINDOW_MAX;
	start = f->ra_end > last + 1 ? f->ra_end : last + 1;
	end = last + window < f->nsegs - 1 ? last + window : f->nsegs - 1;
	if (start > end || last + 1 >= f->nsegs)
		return;
	for (s = start; s <= end; s = e + 1) {
		e = s + RA_CHUNK - 1 < end ? s + RA_CHUNK - 1 : end;
		if (!queue_job(f, s, e))
			break;
	}
}

/*
 * Most readers start at the beginning: fetch the first segments while
 * the open is answered and logged, so the first read finds them in
 * memory or on their way.  Under c->lock.
 */
static void readahead_open(struct cache_file *f)
{
	if (f->remote && f->c->nworkers > 0 && f->nsegs > 0)
		(void)queue_job(f, 0, (f->nsegs < OPEN_AHEAD ? f->nsegs :
				       OPEN_AHEAD) - 1);
}

/* ---- the fetch callback ---------------------------------------------------- */

int cache_file_fetch(void *ctx, uint64_t off, uint8_t *buf, size_t len)
{
	struct cache_file *f = ctx;
	struct cache *c = f->c;
	struct slot *sl;
	uint64_t first, n, i, pos, sum = 0;
	struct mentry *e;
	int err = 0;

	cache_error[0] = '\0';
	if (len == 0)
		return 0;
	if (off >= f->data_len || len > f->data_len - off) {
		set_error("range outside the object");
		return -EINVAL;
	}
	first = off / SEG;
	for (n = 0; sum < len && first + n < f->nsegs; n++)
		sum += seg_len(f, first + n);
	if (off % SEG || sum != len) {
		/* Only whole segments can be checked against the manifest. */
		set_error("range not made of whole segments");
		return -EINVAL;
	}
	sl = calloc((size_t)n, sizeof(*sl));
	if (!sl) {
		set_error("out of memory");
		return -ENOMEM;
	}

	/* Memory first; join downloads already running. */
	pthread_mutex_lock(&c->lock);
	readahead_note(f, first, first + n - 1);
	for (i = 0, pos = 0; i < n; pos += seg_len(f, first + i), i++) {
		e = mfind(c, seg_key(f, first + i));
		if (e && e->state == ENT_READY) {
			memcpy(buf + pos, e->data, e->len);
			lru_touch(&c->mlru, &e->lru);
			if (f->remote)
				dbump(c, e->key);
			sl[i].want = W_DONE;
		} else if (e) {
			e->refs++;
			sl[i].e = e;
			sl[i].want = W_WAIT;
		} else {
			sl[i].want = W_MISS;
		}
	}
	pthread_mutex_unlock(&c->lock);

	/* Then the disk, outside the lock. */
	for (i = 0, pos = 0; i < n; pos += seg_len(f, first + i), i++)
		if (sl[i].want == W_MISS && f->remote &&
		    disk_load(c, seg_key(f, first + i), buf + pos,
			      seg_len(f, first + i), 0, NULL, NULL) == 0)
			sl[i].want = W_DONE;

	/* Claim what nobody fetches yet. */
	pthread_mutex_lock(&c->lock);
	for (i = 0, pos = 0; i < n; pos += seg_len(f, first + i), i++) {
		if (sl[i].want != W_MISS)
			continue;
		e = mfind(c, seg_key(f, first + i));
		if (e && e->state == ENT_READY) {
			memcpy(buf + pos, e->data, e->len);
			lru_touch(&c->mlru, &e->lru);
			sl[i].want = W_DONE;
		} else if (e) {
			e->refs++;
			sl[i].e = e;
			sl[i].want = W_WAIT;
		} else {
			sl[i].e = mclaim(c, seg_key(f, first + i),
					 seg_len(f, first + i));
			sl[i].want = W_OWN;
		}
	}
	pthread_mutex_unlock(&c->lock);

	/* Download ours: every claimed entry is completed in there. */
	err = fetch_owned(f, first, n, sl, buf);

	/* Wait for the others' downloads; drop every reference taken. */
	pthread_mutex_lock(&c->lock);
	for (i = 0, pos = 0; i < n; pos += seg_len(f, first + i), i++) {
		if (sl[i].want != W_WAIT)
			continue;
		e = sl[i].e;
		while (e->state == ENT_LOADING)
			pthread_cond_wait(&c->cond, &c->lock);
		if (e->state == ENT_READY) {
			memcpy(buf + pos, e->data, e->len);
		} else if (!err) {
			err = e->err;
			snprintf(cache_error, sizeof(cache_error), "%s",
				 e->cause);
		}
		mput(e);
	}
	pthread_mutex_unlock(&c->lock);

	free(sl);
	return err;
}

/* ---- whole verified resources ------------------------------------------- */

int cache_get_verified(struct cache *c, const char *url,
		       const uint8_t digest[32], size_t max,
		       uint8_t **ret_buf, size_t *ret_len)
{
	uint8_t got[32], *buf = NULL;
	bool remote = cache_keeps(c, url);
	size_t len = 0;
	int r;

	cache_error[0] = '\0';
	if (remote && disk_load(c, digest, NULL, 0, max, &buf, &len) == 0) {
		*ret_buf = buf;
		*ret_len = len;
		return 0;
	}
	r = http_get(c->http, url, max, &buf, &len);
	if (r < 0) {
		set_error("%s", http_last_error());
		return r;
	}
	r = cipher_sha256(buf, len, got);
	if (r == 0 && !cipher_memeq(got, digest, 32)) {
		set_error("'%s' does not match its digest", url);
		r = -EBADMSG;
	}
	if (r < 0) {
		free(buf);
		return r;
	}
	if (remote)
		disk_put(c, digest, buf, len);
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}

/* ---- files and the cache ---------------------------------------------------- */

bool cache_keeps(const struct cache *c, const char *url)
{
	return c && url && (is_https(url) || c->local);
}

int cache_file_new(struct cache *c, const char *url, uint64_t data_off,
		   uint64_t data_len, uint8_t *sums, uint64_t nsums,
		   struct cache_file **ret_file)
{
	struct cache_file *f;
	int r;

	if (!c || !url || !sums)
		return -EINVAL;
	if ((data_len + SEG - 1) / SEG != nsums)
		return -EBADMSG;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->url = strdup(url);
	if (!f->url) {
		free(f);
		return -ENOMEM;
	}
	r = http_validator_new(&f->v);
	if (r < 0) {
		free(f->url);
		free(f);
		return r;
	}
	f->c = c;
	f->data_off = data_off;
	f->data_len = data_len;
	f->nsegs = nsums;
	f->sums = sums;
	f->remote = cache_keeps(c, url);
	f->refs = 1;
	pthread_mutex_lock(&c->lock);
	readahead_open(f);
	pthread_mutex_unlock(&c->lock);
	*ret_file = f;
	return 0;
}

struct cache_file *cache_file_free(struct cache_file *f)
{
	struct cache *c;
	size_t i, kept = 0;
	struct job *job;
	bool gone;

	if (!f)
		return NULL;
	c = f->c;
	pthread_mutex_lock(&c->lock);
	f->closed = true;
	/* Drop queued jobs of f, keeping the others in order. */
	for (i = 0; i < c->jcount; i++) {
		job = &c->jobs[(c->jhead + i) % JOBS_MAX];
		if (job->f == f) {
			f->refs--;
			continue;
		}
		c->jobs[(c->jhead + kept) % JOBS_MAX] = *job;
		kept++;
	}
	c->jcount = kept;
	gone = file_unref(f);
	pthread_mutex_unlock(&c->lock);
	if (gone)
		file_release(f);
	return NULL;
}

int cache_new(const struct cache_options *opt, struct http *http,
	      struct cache **ret_cache)
{
	struct cache *c;
	size_t mem;
	int r;

	if (!http)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->http = http;
	mem = opt && opt->mem_size ? opt->mem_size : CACHE_DEFAULT_MEM;
	c->mmax = mem / SEG > MEM_MIN_ENTRIES ? mem / SEG : MEM_MIN_ENTRIES;
	c->nworkers = opt ? opt->workers : 0;
	if (c->nworkers > WORKERS_MAX)
		c->nworkers = WORKERS_MAX;
	c->local = opt ? opt->local : 0;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->dlock, NULL);
	pthread_cond_init(&c->cond, NULL);
	pthread_cond_init(&c->jobs_cond, NULL);

	if (opt && opt->dir && opt->size > 0) {
		r = disk_prepare(opt->dir);
		if (r < 0)
			goto out_free;
		c->dir = strdup(opt->dir);
		if (!c->dir) {
			r = -ENOMEM;
			goto out_free;
		}
		c->disk_max = opt->size;
		r = disk_scan(c);
		if (r < 0)
			goto out_free;
	}
	*ret_cache = c;
	return 0;

out_free:
	cache_free(c);
	return r;
}

struct cache *cache_free(struct cache *c)
{
	struct mentry *e;
	struct dentry *d;
	unsigned int i;

	if (!c)
		return NULL;
	pthread_mutex_lock(&c->lock);
	c->stopping = true;
	pthread_cond_broadcast(&c->jobs_cond);
	pthread_mutex_unlock(&c->lock);
	for (i = 0; i < c->nthreads; i++)
		pthread_join(c->threads[i], NULL);

	/* Jobs left in the queue belong to files already freed by now. */
	while (c->mlru.head) {
		e = LRU_OWNER(c->mlru.head, struct mentry);
		lru_unlink(&c->mlru, &e->lru);
		mfree(e);
	}
	while (c->dlru.head) {
		d = LRU_OWNER(c->dlru.head, struct dentry);
		lru_unlink(&c->dlru, &d->lru);
		free(d);
	}
	pthread_cond_destroy(&c->jobs_cond);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->dlock);
	pthread_mutex_destroy(&c->lock);
	free(c->dir);
	free(c);
	return NULL;
}
