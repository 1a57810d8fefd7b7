/*
 * c4gh_pool.c - decrypted segments shared by every reader of a mount.
 *
 * One anonymous mapping is reserved for the whole bound at creation and
 * excluded from core dumps; segment slots in it are locked one by one
 * as the pool grows into them, and the pool stops growing at the first
 * slot it cannot lock, so no plaintext it holds is ever swapped.
 *
 * Entries in use are in a hash table by (owner, index) and on one LRU
 * list, most recent first; entries wiped by c4gh_pool_drop() go to a
 * free list.  One mutex guards everything; copies in and out are of one
 * segment at most and run under it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "c4gh.h"
#include "c4gh_pool.h"
#include "cipher.h"
#include "lru.h"

#define SEG	C4GH_SEGMENT_SIZE

struct pool_entry {
	uint64_t owner;			/* 0: not in use */
	uint64_t idx;
	size_t len;
	uint8_t *pt;			/* its slot in the mapping */
	struct pool_entry *hnext;	/* hash chain */
	struct lru_link lru;		/* LRU list, or the free list */
};

struct c4gh_pool {
	pthread_mutex_t lock;
	uint8_t *map;			/* cap segments, reserved */
	size_t cap;
	size_t made;			/* slots locked so far */
	bool full;			/* no more memory can be locked */
	size_t count;			/* entries in use */
	struct pool_entry *entries;	/* cap */
	struct pool_entry **buckets;
	size_t nbuckets;		/* a power of two */
	struct lru lru;			/* most recent first */
	struct lru_link *free;		/* made and wiped, through .next */
	uint64_t next_owner;
};

int c4gh_pool_new(size_t bytes, struct c4gh_pool **ret_pool)
{
	struct c4gh_pool *p;
	size_t cap = bytes / SEG;
	int r;

	*ret_pool = NULL;
	if (cap == 0 || cap > SIZE_MAX / SEG / 2)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->cap = cap;
	for (p->nbuckets = 1; p->nbuckets < 2 * cap; p->nbuckets <<= 1)
		;
	p->entries = calloc(cap, sizeof(*p->entries));
	p->buckets = calloc(p->nbuckets, sizeof(*p->buckets));
	if (!p->entries || !p->buckets) {
		r = -ENOMEM;
		goto out_free;
	}

	p->map = mmap(NULL, cap * SEG, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p->map == MAP_FAILED) {
		p->map = NULL;
		r = -ENOMEM;
		goto out_free;
	}
	/* Never in a core dump, nor in a child's copy of the daemon. */
	(void)madvise(p->map, cap * SEG, MADV_DONTDUMP);
	(void)madvise(p->map, cap * SEG, MADV_WIPEONFORK);

	r = pthread_mutex_init(&p->lock, NULL);
	if (r) {
		r = -r;
		goto out_unmap;
	}
	p->next_owner = 1;
	*ret_pool = p;
	return 0;

out_unmap:
	munmap(p->map, cap * SEG);
out_free:
	free(p->buckets);
	free(p->entries);
	free(p);
	return r;
}

struct c4gh_pool *c4gh_pool_free(struct c4gh_pool *p)
{
	if (!p)
		return NULL;
	if (p->made)
		cipher_wipe(p->map, p->made * SEG);
	munmap(p->map, p->cap * SEG);	/* unlocks too */
	pthread_mutex_destroy(&p->lock);
	free(p->buckets);
	free(p->entries);
	free(p);
	return NULL;
}

uint64_t c4gh_pool_owner_new(struct c4gh_pool *p)
{
	uint64_t id;

	pthread_mutex_lock(&p->lock);
	id = p->next_owner++;
	pthread_mutex_unlock(&p->lock);
	return id;
}

static size_t bucket(const struct c4gh_pool *p, uint64_t owner,
		     uint64_t idx)
{
	uint64_t h = owner * 0x9e3779b97f4a7c15ull ^
		     idx * 0xc2b2ae3d27d4eb4full;

	return (size_t)(h ^ h >> 29) & (p->nbuckets - 1);
}

static struct pool_entry *find(struct c4gh_pool *p, uint64_t owner,
			       uint64_t idx)
{
	struct pool_entry *e;

	for (e = p->buckets[bucket(p, owner, idx)]; e; e = e->hnext)
		if (e->owner == owner && e->idx == idx)
			return e;
	return NULL;
}

/* Take e out of use: out of its chain and the LRU list, wiped. */
static void retire(struct c4gh_pool *p, struct pool_entry *e)
{
	struct pool_entry **pp = &p->buckets[bucket(p, e->owner, e->idx)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	e->hnext = NULL;
	lru_unlink(&p->lru, &e->lru);
	cipher_wipe(e->pt, e->len);
	e->owner = 0;
	e->len = 0;
	p->count--;
}

/* An entry to fill: a free one, a new locked slot, or the oldest. */
static struct pool_entry *claim(struct c4gh_pool *p)
{
	struct pool_entry *e;

	if (p->free) {
		e = LRU_OWNER(p->free, struct pool_entry);
		p->free = e->lru.next;
		e->lru.next = NULL;
		return e;
	}
	if (!p->full && p->made < p->cap) {
		e = &p->entries[p->made];
		e->pt = p->map + p->made * SEG;
		if (mlock(e->pt, SEG) == 0) {
			p->made++;
			return e;
		}
		p->full = true;	/* RLIMIT_MEMLOCK: stay this size */
	}
	if (!p->lru.tail)
		return NULL;
	e = LRU_OWNER(p->lru.tail, struct pool_entry);
	retire(p, e);
	return e;
}

int c4gh_pool_copy(struct c4gh_pool *p, uint64_t owner, uint64_t idx,
		   size_t from, size_t n, uint8_t *dst)
{
	struct pool_entry *e;
	int hit = 0;

	pthread_mutex_lock(&p->lock);
	e = find(p, owner, idx);
	if (e && from <= e->len && n <= e->len - from) {
		if (dst)
			memcpy(dst, e->pt + from, n);
		lru_touch(&p->lru, &e->lru);
		hit = 1;
	}
	pthread_mutex_unlock(&p->lock);
	return hit;
}

void c4gh_pool_put(struct c4gh_pool *p, uint64_t owner, uint64_t idx,
		   const uint8_t *pt, size_t len)
{
	struct pool_entry *e;
	size_t b;

	if (len == 0 || len > SEG)
		return;
	pthread_mutex_lock(&p->lock);
	e = find(p, owner, idx);
	if (e) {
		retire(p, e);		/* another thread was first */
	} else {
		e = claim(p);
		if (!e)
			goto out_unlock;
	}
	memcpy(e->pt, pt, len);
	e->len = len;
	e->owner = owner;
	e->idx = idx;
	b = bucket(p, owner, idx);
	e->hnext = p->buckets[b];
	p->buckets[b] = e;
	lru_push(&p->lru, &e->lru);
	p->count++;
out_unlock:
	pthread_mutex_unlock(&p->lock);
}

void c4gh_pool_drop(struct c4gh_pool *p, uint64_t owner)
{
	struct pool_entry *e;
	size_t i;

	pthread_mutex_lock(&p->lock);
	for (i = 0; i < p->made && p->count > 0; i++) {
		e = &p->entries[i];
		if (e->owner != owner)
			continue;
		retire(p, e);
		e->lru.next = p->free;
		p->free = &e->lru;
	}
	pthread_mutex_unlock(&p->lock);
}

size_t c4gh_pool_count(struct c4gh_pool *p)
{
	size_t n;

	pthread_mutex_lock(&p->lock);
	n = p->count;
	pthread_mutex_unlock(&p->lock);
	return n;
}

size_t c4gh_pool_capacity(struct c4gh_pool *p)
{
	size_t n;

	pthread_mutex_lock(&p->lock);
	n = p->full ? p->made : p->cap;
	pthread_mutex_unlock(&p->lock);
	return n;
}
