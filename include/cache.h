/*
 * cache.h - verified ciphertext segments in memory and on disk, with
 * read-ahead and single-flight fetches.
 *
 * Everything kept here is CIPHERTEXT (Crypt4GH segments, and the
 * public per-segment digest lists of a market), never plaintext: the
 * cache directory can be read by anyone who can read the market itself
 * without learning a byte of data.  Plaintext stays in c4gh_reader.
 *
 * Content-addressed: an entry is named by the SHA-256 of its bytes, as
 * the signed manifest binds it, and its bytes are hashed again whenever
 * they are read back from disk.  A segment of one version can therefore
 * never stand in for a segment of another, and a flipped, truncated or
 * swapped cache file is a miss (deleted and fetched again), never wrong
 * bytes.  Files are written under a temporary name and renamed into
 * place only complete and verified; a full or failing cache disk only
 * means reading from the network.
 *
 * Layout: DIR/ab/abcdef...(64 hex digits), directories 0700, files 0600.
 * The disk part is bounded (cache_size, least recently used out first,
 * recency kept in the files' mtimes so it survives restarts); the memory
 * part is bounded too, and holds both finished segments and the ones
 * being fetched, so that concurrent readers of a segment share one
 * download.  A sequential reader gets read-ahead: the next segments are
 * fetched by a small pool of threads, several ranged requests at once;
 * a file's first two segments are asked for as soon as it is opened.
 *
 * Nothing here logs above debug: failures come back as errnos, with a
 * cause in cache_last_error().  Thread-safe throughout.
 */
#ifndef MARKETFS_CACHE_H
#define MARKETFS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http;

#define CACHE_DEFAULT_SIZE	(1ull << 30)	/* disk bytes */
#define CACHE_DEFAULT_MEM	(16u << 20)	/* memory bytes */
#define CACHE_DEFAULT_WORKERS	4		/* read-ahead threads */

struct cache_options {
	const char *dir;	/* disk cache directory; NULL: memory only */
	uint64_t size;		/* disk bound in bytes; 0: no disk cache */
	size_t mem_size;	/* memory bound; 0: CACHE_DEFAULT_MEM */
	unsigned int workers;	/* read-ahead threads; 0: no read-ahead */
	int local;		/* treat file:// objects as remote ones
				 * (disk cache, read-ahead): for tests, and
				 * markets on network file systems */
};

struct cache;
struct cache_file;

/*
 * Make a cache fetching through http (which must outlive it).  The
 * directory is created 0700 when missing; an existing one must be a
 * directory owned by us (its mode is then set to 0700).  Leftover
 * temporary files are removed and the others indexed.  -ENOTDIR,
 * -EPERM (another owner), or the errno of mkdir/opendir: the caller may
 * then try again with dir NULL.
 */
int cache_new(const struct cache_options *opt, struct http *http,
	      struct cache **ret_cache);
/*
 * Start the read-ahead threads now rather than at the first read-ahead,
 * so that no open waits for them.  Only after the process has forked
 * for the last time: threads do not survive a fork.
 */
void cache_start(struct cache *c);
/*
 * Stop the read-ahead threads (waiting for their current request) and
 * free everything.  Every cache_file must have been freed.  NULL-safe.
 */
struct cache *cache_free(struct cache *c);

/* Bytes currently on disk, for tests and statistics. */
uint64_t cache_disk_usage(struct cache *c);

/*
 * Parse a size: decimal digits with an optional K, M, G or T suffix
 * (powers of 1024; a trailing "B" or "iB" is allowed).  -EINVAL, -ERANGE.
 */
int cache_parse_size(const char *text, uint64_t *ret_size);

/*
 * The default cache directory: $XDG_CACHE_HOME/marketfs, else
 * ~/.cache/marketfs, and /var/cache/marketfs for root.  malloc'd.
 */
int cache_default_dir(char **ret_dir);

/*
 * Get a whole resource whose SHA-256 must be digest (at most max
 * bytes): from the disk cache if there and intact, else with http_get()
 * and, once verified, stored.  -EBADMSG when the fetched bytes do not
 * match digest; otherwise as http_get().  The buffer is malloc'd and
 * NUL-terminated (not counted).
 */
int cache_get_verified(struct cache *c, const char *url,
		       const uint8_t digest[32], size_t max,
		       uint8_t **ret_buf, size_t *ret_len);

/*
 * One open object: the data section of the Crypt4GH object at url
 * starts at data_off and holds data_len ciphertext bytes, whose segment
 * i must hash to sums[32 * i .. 32 * i + 31] (nsums == the number of
 * segments).  The cache_file takes ownership of sums (freed by
 * cache_file_free()) and keeps one HTTP validator for the object, so an
 * object replaced while open fails rather than mixing versions.
 */
int cache_file_new(struct cache *c, const char *url, uint64_t data_off,
		   uint64_t data_len, uint8_t *sums, uint64_t nsums,
		   struct cache_file **ret_file);
/*
 * Drop queued read-ahead for f and release it; a read-ahead request
 * still running finishes on its own and frees what remains.  NULL-safe.
 */
struct cache_file *cache_file_free(struct cache_file *f);

/*
 * Is url an object the cache keeps segments of: https://, or file://
 * when the cache was made with the local option?  A plain local object
 * is better read straight from its file, hashing each segment just
 * before it is decrypted: the kernel's page cache already holds it, and
 * a second copy in memory only costs a copy per segment.
 */
bool cache_keeps(const struct cache *c, const char *url);

/*
 * A c4gh_fetch_fn (ctx is the cache_file): exactly len bytes of the
 * data section at off, which must be whole segments (off on a segment
 * boundary, len ending on one or at the end of the data).  Every
 * segment returned has matched its digest, whether it came from the
 * network, memory or disk, so the caller need not hash it again.  0,
 * or -EIO (transport failure after retries, or a failed download
 * shared with another reader), -EBADMSG (the object's bytes do not
 * match the manifest), -ENOMEM, -EINVAL (a range outside the data or
 * not made of whole segments).  Blocks for at most the transfer
 * deadlines.  Feeds the read-ahead.
 */
int cache_file_fetch(void *ctx, uint64_t off, uint8_t *buf, size_t len);

/* Why the last failed call on this thread failed; never NULL. */
const char *cache_last_error(void);

#endif
