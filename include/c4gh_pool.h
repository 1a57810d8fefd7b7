/*
 * c4gh_pool.h - decrypted segments shared by every reader of a mount.
 *
 * A reader keeps the segments it was asked for only in part, since the
 * rest of them is likely to be asked for next (random reads of 4 KiB
 * each cost a whole 64 KiB segment).  With a pool, those segments of
 * all open files share one bound, least recently used out first, so a
 * working set of many segments (a reader going back and forth in a
 * window of its file) is served without decrypting again.
 *
 * Plaintext in the pool is in memory locked against swapping and kept
 * out of core dumps; the pool only grows while it can lock more, so it
 * may hold less than asked for (RLIMIT_MEMLOCK).  Entries are wiped
 * when evicted, when their reader drops them and when the pool is
 * freed.  All calls are thread-safe.
 */
#ifndef MARKETFS_C4GH_POOL_H
#define MARKETFS_C4GH_POOL_H

#include <stddef.h>
#include <stdint.h>

struct c4gh_pool;

/*
 * A pool of at most bytes of plaintext (rounded down to whole segments;
 * memory is reserved now and locked as it is used).  -EINVAL for less
 * than one segment, -ENOMEM.
 */
int c4gh_pool_new(size_t bytes, struct c4gh_pool **ret_pool);

/* Wipes everything.  No reader may use the pool any more.  NULL-safe. */
struct c4gh_pool *c4gh_pool_free(struct c4gh_pool *pool);

/* A key for one reader's segments, never given out twice. */
uint64_t c4gh_pool_owner_new(struct c4gh_pool *pool);

/*
 * Copy bytes [from, from + n) of owner's segment idx to dst (dst may be
 * NULL to ask only whether it is there).  1 on a hit, 0 on a miss
 * (also when the segment holds fewer than from + n bytes).
 */
int c4gh_pool_copy(struct c4gh_pool *pool, uint64_t owner, uint64_t idx,
		   size_t from, size_t n, uint8_t *dst);

/*
 * Keep len bytes (at most one segment) of owner's segment idx, evicting
 * the least recently used segment when full.  Not kept when no memory
 * could be locked for it.
 */
void c4gh_pool_put(struct c4gh_pool *pool, uint64_t owner, uint64_t idx,
		   const uint8_t *pt, size_t len);

/* Wipe and forget every segment of owner. */
void c4gh_pool_drop(struct c4gh_pool *pool, uint64_t owner);

/* Segments held now, and segments the pool can hold (locked so far). */
size_t c4gh_pool_count(struct c4gh_pool *pool);
size_t c4gh_pool_capacity(struct c4gh_pool *pool);

#endif
