/*
 * c4gh_reader.h - random access to the plaintext of one Crypt4GH file.
 *
 * The reader maps a plaintext range to segments, fetches their
 * ciphertext through a callback, lets a second callback check each
 * segment (a market's manifest digests), authenticates and decrypts it,
 * and only then copies bytes out.  It applies the header's edit list.
 * It never returns a short count before the end of the file, never
 * zeros for data it could not get: a failure is a negative errno for
 * the whole request.
 *
 * One reader is safe to use from several threads at once: it keeps a
 * small cache of decrypted segments behind its own lock (or uses a
 * c4gh_pool shared with other readers), and runs fetches outside any
 * lock.
 *
 * It also remembers the nonces of recent segments and reports a
 * producer that reused one (best effort: a bounded table, so two
 * segments far apart in a large file may go unnoticed).
 */
#ifndef MARKETFS_C4GH_READER_H
#define MARKETFS_C4GH_READER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "c4gh.h"

/*
 * Fetch exactly len bytes of the data section (offset 0 is the first
 * byte after the header) into buf.  Returns 0 or a negative errno.
 */
typedef int (*c4gh_fetch_fn)(void *ctx, uint64_t off, uint8_t *buf,
			     size_t len);

/*
 * Check segment idx's ciphertext before it is decrypted (may be NULL).
 * Returns 0, or a negative errno (-EBADMSG for a digest mismatch) that
 * fails the read.
 */
typedef int (*c4gh_check_fn)(void *ctx, uint64_t idx, const uint8_t *seg,
			     size_t len);

/*
 * Segment again carries the same nonce as segment first, read before
 * it, although both authenticated: the producer reused a nonce (may be
 * NULL).  Called at most once per reader, outside its lock.  The read itself goes on: the tags held,
 * and a market's manifest digests were checked before.
 */
typedef void (*c4gh_nonce_reuse_fn)(void *ctx, uint64_t first,
				    uint64_t again);

struct c4gh_pool;

struct c4gh_reader_ops {
	c4gh_fetch_fn fetch;
	c4gh_check_fn check;
	void *ctx;
	c4gh_nonce_reuse_fn nonce_reuse;
	/*
	 * Where segments read in part are kept (may be NULL: then a few
	 * of them in the reader itself).  Must outlive the reader.
	 */
	struct c4gh_pool *pool;
};

/*
 * Detailed cause of the last failure of a reader, for the access log:
 * which segment, and what went wrong.
 */
struct c4gh_reader_error {
	int err;		/* negative errno, 0 if none; for "fetch"
				 * the callback's own errno */
	uint64_t segment;	/* segment index that failed */
	const char *what;	/* "fetch", "digest", "tag", "size" */
};

struct c4gh_reader;

/*
 * Make a reader over a data section of data_len bytes with the (already
 * decrypted) header hdr, which is copied; the caller may release its own
 * copy.  -EBADMSG when data_len cannot be a Crypt4GH data section.
 */
int c4gh_reader_new(const struct c4gh_header *hdr, uint64_t data_len,
		    const struct c4gh_reader_ops *ops,
		    struct c4gh_reader **ret_reader);

/* Wipes every cached plaintext and key.  NULL-safe; returns NULL. */
struct c4gh_reader *c4gh_reader_free(struct c4gh_reader *r);

/* Visible plaintext size (after the edit list). */
uint64_t c4gh_reader_size(const struct c4gh_reader *r);

/*
 * Read up to len bytes at visible offset off into buf.  Returns the
 * number of bytes read: len, or fewer only at the end of the file (0 at
 * or past it).  On failure a negative errno (-EIO for a fetch failure,
 * -EBADMSG for a digest or tag failure) and no byte of buf is valid;
 * *ret_error (if not NULL) says which segment and why.
 */
ssize_t c4gh_reader_pread(struct c4gh_reader *r, void *buf, size_t len,
			  uint64_t off, struct c4gh_reader_error *ret_error);

#endif
