/*
 * c4gh_reader.c - random access to the plaintext of one Crypt4GH file.
 *
 * A read maps visible offsets through the edit list to plaintext runs,
 * each run to segments, and serves each segment from a cache of
 * decrypted segments (a few of its own, or the c4gh_pool it was given)
 * or fetches it.  Missing segments that follow each
 * other are fetched in one callback call (up to FETCH_BATCH segments).
 *
 * Invariants:
 * - A segment's bytes reach the caller's buffer or the cache only after
 *   the check callback accepted its ciphertext and its tag verified.
 *   A segment the request wants whole is decrypted straight into the
 *   caller's buffer (which is wiped if the request fails); only
 *   segments the request wants part of go through a scratch buffer and
 *   into the cache, where the rest of them is likely to be asked for
 *   next.
 * - Fetches, checks and decryption run outside the lock, into buffers
 *   private to the calling thread (kept between calls: a request-sized
 *   allocation per call costs more than the copy it holds); the lock
 *   guards the cache and the nonce table.
 * - A failure fails the whole call (no short count before EOF), and the
 *   cause goes to *ret_error.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "c4gh_pool.h"
#include "c4gh_reader.h"
#include "cipher.h"

#define CACHE_SLOTS	4	/* decrypted segments kept */
#define FETCH_BATCH	4	/* segments per fetch call at most */
#define NONCE_SLOTS	1024	/* nonces remembered, at most */
#define NONCE_PROBES	8	/* slots looked at per nonce */
#define NONCE_LEN	12

struct cache_slot {
	uint64_t idx;		/* segment index */
	uint64_t stamp;		/* last use, for LRU; 0 = empty */
	size_t len;		/* plaintext bytes */
	uint8_t *pt;		/* C4GH_SEGMENT_SIZE bytes */
};

/* A direct-mapped table of the nonces of segments read so far. */
struct nonce_slot {
	uint64_t idx1;		/* segment index + 1; 0 = empty */
	uint8_t nonce[NONCE_LEN];
};

struct c4gh_reader {
	struct c4gh_header *hdr;	/* own copy, wiped on free */
	struct c4gh_reader_ops ops;
	uint64_t data_len;		/* ciphertext bytes */
	uint64_t plain_size;		/* claimed by data_len */
	uint64_t visible;		/* after the edit list */

	uint64_t owner;			/* our key in ops.pool */
	pthread_mutex_t lock;		/* guards slots, clock, nonces */
	struct cache_slot slots[CACHE_SLOTS];	/* without a pool */
	uint64_t clock;
	struct nonce_slot *nonces;	/* nnonces entries, made lazily */
	size_t nnonces;			/* a power of two */
	bool reuse_told;
};

/* Per-thread scratch space, kept between calls and freed at exit. */
struct scratch {
	uint8_t *cbuf;			/* FETCH_BATCH cipher segments */
	uint8_t *pt;			/* one plaintext segment, wiped */
};

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_err;

static void scratch_free(void *p)
{
	struct scratch *s = p;

	if (!s)
		return;
	if (s->pt)
		cipher_wipe(s->pt, C4GH_SEGMENT_SIZE);
	free(s->pt);
	free(s->cbuf);
	free(s);
}

static void scratch_key_make(void)
{
	scratch_key_err = pthread_key_create(&scratch_key, scratch_free);
}

/* This thread's scratch space, or NULL when out of memory. */
static struct scratch *scratch_get(void)
{
	struct scratch *s;

	if (pthread_once(&scratch_once, scratch_key_make) != 0 ||
	    scratch_key_err != 0)
		return NULL;
	s = pthread_getspecific(scratch_key);
	if (s)
		return s;

	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->cbuf = malloc((size_t)FETCH_BATCH * C4GH_CIPHER_SEGMENT);
	s->pt = malloc(C4GH_SEGMENT_SIZE);
	if (!s->cbuf || !s->pt || pthread_setspecific(scratch_key, s) != 0) {
		scratch_free(s);
		return NULL;
	}
	return s;
}

int c4gh_reader_new(const struct c4gh_header *hdr, uint64_t data_len,
		    const struct c4gh_reader_ops *ops,
		    struct c4gh_reader **ret_reader)
{
	struct c4gh_reader *r;
	uint64_t psize;
	unsigned int i;
	int err;

	*ret_reader = NULL;
	if (!hdr || !ops || !ops->fetch || hdr->nkeys == 0)
		return -EINVAL;

	err = c4gh_plain_size(data_len, &psize);
	if (err < 0)
		return err;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	err = pthread_mutex_init(&r->lock, NULL);
	if (err) {
		free(r);
		return -err;
	}
	r->ops = *ops;
	r->hdr = malloc(sizeof(*r->hdr));
	if (!r->hdr) {
		c4gh_reader_free(r);
		return -ENOMEM;
	}
	memcpy(r->hdr, hdr, sizeof(*hdr));

	/* With a pool, partial segments go there; else to our own slots. */
	if (ops->pool) {
		r->owner = c4gh_pool_owner_new(ops->pool);
	} else {
		for (i = 0; i < CACHE_SLOTS; i++) {
			r->slots[i].pt = malloc(C4GH_SEGMENT_SIZE);
			if (!r->slots[i].pt) {
				c4gh_reader_free(r);
				return -ENOMEM;
			}
		}
	}

	r->data_len = data_len;
	r->plain_size = psize;
	r->visible = c4gh_edit_visible_size(hdr, psize);
	*ret_reader = r;
	return 0;
}

struct c4gh_reader *c4gh_reader_free(struct c4gh_reader *r)
{
	unsigned int i;

	if (!r)
		return NULL;

	if (r->ops.pool)
		c4gh_pool_drop(r->ops.pool, r->owner);
	for (i = 0; i < CACHE_SLOTS; i++) {
		if (r->slots[i].pt)
			cipher_wipe(r->slots[i].pt, C4GH_SEGMENT_SIZE);
		free(r->slots[i].pt);
	}
	free(r->nonces);
	pthread_mutex_destroy(&r->lock);
	c4gh_header_release(r->hdr);
	free(r->hdr);
	free(r);
	return NULL;
}

uint64_t c4gh_reader_size(const struct c4gh_reader *r)
{
	return r->visible;
}

/* Ciphertext bytes of segment idx. */
static size_t seg_cipher_len(const struct c4gh_reader *r, uint64_t idx)
{
	uint64_t left = r->data_len - idx * C4GH_CIPHER_SEGMENT;

	return left < C4GH_CIPHER_SEGMENT ? (size_t)left : C4GH_CIPHER_SEGMENT;
}

/*
 * Copy bytes [from, from + n) of cached segment idx to dst.  Returns 1 on
 * a hit, 0 on a miss.
 */
static int cache_copy(struct c4gh_reader *r, uint64_t idx, size_t from,
		      size_t n, uint8_t *dst)
{
	unsigned int i;
	int hit = 0;

	if (r->ops.pool)
		return c4gh_pool_copy(r->ops.pool, r->owner, idx, from, n,
				      dst);
	pthread_mutex_lock(&r->lock);
	for (i = 0; i < CACHE_SLOTS; i++) {
		struct cache_slot *s = &r->slots[i];

		if (s->stamp && s->idx == idx && from + n <= s->len) {
			if (dst)
				memcpy(dst, s->pt + from, n);
			s->stamp = ++r->clock;
			hit = 1;
			break;
		}
	}
	pthread_mutex_unlock(&r->lock);
	return hit;
}

/* Put an authenticated segment into the least recently used slot. */
static void cache_put(struct c4gh_reader *r, uint64_t idx, const uint8_t *pt,
		      size_t len)
{
	struct cache_slot *victim;
	unsigned int i;

	if (r->ops.pool) {
		c4gh_pool_put(r->ops.pool, r->owner, idx, pt, len);
		return;
	}
	pthread_mutex_lock(&r->lock);
	victim = &r->slots[0];
	for (i = 0; i < CACHE_SLOTS; i++) {
		struct cache_slot *s = &r->slots[i];

		if (s->stamp && s->idx == idx) {
			victim = s;	/* another thread was first */
			break;
		}
		if (s->stamp < victim->stamp)
			victim = s;
	}
	memcpy(victim->pt, pt, len);
	if (victim->len > len)
		cipher_wipe(victim->pt + len, victim->len - len);
	victim->idx = idx;
	victim->len = len;
	victim->stamp = ++r->clock;
	pthread_mutex_unlock(&r->lock);
}

static void set_error(struct c4gh_reader_error *e, int err, uint64_t seg,
		      const char *what)
{
	if (!e)
		return;
	e->err = err;
	e->segment = seg;
	e->what = what;
}

/*
 * Note the nonce of authenticated segment idx.  Returns the index of an
 * earlier segment with the same nonce the first time one is seen in
 * this reader, else UINT64_MAX.
 *
 * The table has room for twice the file's segments up to NONCE_SLOTS,
 * and a nonce is looked for in NONCE_PROBES slots from its home: exact
 * for files of up to NONCE_SLOTS / 2 segments; in larger ones, a full
 * window overwrites the home slot, so a reuse far apart may be missed.
 */
static uint64_t nonce_note(struct c4gh_reader *r, uint64_t idx,
			   const uint8_t *seg)
{
	struct nonce_slot *ns, *empty = NULL;
	uint64_t h, nsegs, earlier = UINT64_MAX;
	size_t i, mask;

	pthread_mutex_lock(&r->lock);
	if (r->reuse_told)
		goto out_unlock;
	if (!r->nonces) {
		nsegs = (r->data_len + C4GH_CIPHER_SEGMENT - 1) /
			C4GH_CIPHER_SEGMENT;
		for (r->nnonces = NONCE_PROBES; r->nnonces < 2 * nsegs &&
		     r->nnonces < NONCE_SLOTS; r->nnonces <<= 1)
			;
		r->nonces = calloc(r->nnonces, sizeof(*r->nonces));
		if (!r->nonces)
			goto out_unlock;	/* only a diagnostic lost */
	}
	mask = r->nnonces - 1;

	/* Nonces are random: their first bytes spread well enough. */
	memcpy(&h, seg, sizeof(h));
	for (i = 0; i < NONCE_PROBES; i++) {
		ns = &r->nonces[(h + i) & mask];
		if (!ns->idx1) {
			empty = ns;
			break;
		}
		if (memcmp(ns->nonce, seg, NONCE_LEN) != 0)
			continue;
		if (ns->idx1 != idx + 1) {
			earlier = ns->idx1 - 1;
			r->reuse_told = true;
		}
		goto out_unlock;	/* or this segment, read again */
	}
	ns = empty ? empty : &r->nonces[h & mask];
	ns->idx1 = idx + 1;
	memcpy(ns->nonce, seg, NONCE_LEN);
out_unlock:
	pthread_mutex_unlock(&r->lock);
	return earlier;
}

/*
 * Fetch segments first..last (all missing from the cache) in one call,
 * check, authenticate and decrypt each, put its part of the plaintext
 * range [poff, pend) into dst (which holds byte poff), and cache the
 * segments the range wants only part of.
 */
static int fetch_run(struct c4gh_reader *r, uint64_t first, uint64_t last,
		     uint64_t poff, uint64_t pend, uint8_t *dst,
		     struct scratch *sc, struct c4gh_reader_error *ret_error)
{
	uint64_t coff = first * C4GH_CIPHER_SEGMENT;
	c4gh_check_fn check = r->ops.check;
	uint8_t *cbuf = sc->cbuf, *out;
	size_t clen = 0, off = 0, slen, plen;
	uint64_t idx, sstart, a, b, earlier;
	bool whole;
	ssize_t n;
	int err;

	for (idx = first; idx <= last; idx++)
		clen += seg_cipher_len(r, idx);

	/* The callback's own errno goes to the log; the caller sees EIO. */
	err = r->ops.fetch(r->ops.ctx, coff, cbuf, clen);
	if (err < 0 && first < last) {
		/*
		 * Name the first segment that is bad (a truncated or
		 * shortened object fails the whole run, though its first
		 * wrong segment may still be there to fetch): fetch and
		 * check them one at a time.
		 */
		for (idx = first; idx <= last; idx++, off += slen) {
			slen = seg_cipher_len(r, idx);
			err = r->ops.fetch(r->ops.ctx,
					   idx * C4GH_CIPHER_SEGMENT,
					   cbuf + off, slen);
			if (err < 0) {
				set_error(ret_error, err, idx, "fetch");
				return -EIO;
			}
			err = check ? check(r->ops.ctx, idx, cbuf + off, slen)
				    : 0;
			if (err < 0) {
				set_error(ret_error, err, idx, "digest");
				return err;
			}
		}
		off = 0;
		check = NULL;	/* done */
	}
	if (err < 0) {
		set_error(ret_error, err, first, "fetch");
		return -EIO;
	}

	for (idx = first; idx <= last; idx++, off += slen) {
		slen = seg_cipher_len(r, idx);
		plen = slen - C4GH_SEGMENT_OVERHEAD;
		sstart = idx * C4GH_SEGMENT_SIZE;
		whole = sstart >= poff && sstart + plen <= pend;

		if (check) {
			err = check(r->ops.ctx, idx, cbuf + off, slen);
			if (err < 0) {
				set_error(ret_error, err, idx, "digest");
				return err;
			}
		}

		/* The single point where plaintext is authenticated. */
		out = whole ? dst + (sstart - poff) : sc->pt;
		n = c4gh_segment_decrypt(r->hdr, cbuf + off, slen, out);
		if (n < 0) {
			set_error(ret_error, (int)n, idx, "tag");
			return (int)n;
		}
		if ((size_t)n != plen) {
			set_error(ret_error, -EBADMSG, idx, "size");
			return -EBADMSG;
		}

		if (r->ops.nonce_reuse) {
			earlier = nonce_note(r, idx, cbuf + off);
			if (earlier != UINT64_MAX)
				r->ops.nonce_reuse(r->ops.ctx, earlier, idx);
		}
		if (whole)
			continue;

		/* This segment's share of [poff, pend). */
		a = poff > sstart ? poff : sstart;
		b = pend < sstart + plen ? pend : sstart + plen;
		if (a < b)
			memcpy(dst + (a - poff), sc->pt + (a - sstart), b - a);
		cache_put(r, idx, sc->pt, plen);
		cipher_wipe(sc->pt, plen);
	}
	return 0;
}

/* Copy plaintext [poff, poff + len) into dst. */
static int read_plain(struct c4gh_reader *r, uint64_t poff, size_t len,
		      uint8_t *dst, struct c4gh_reader_error *ret_error)
{
	uint64_t pend = poff + len;
	uint64_t first = poff / C4GH_SEGMENT_SIZE;
	uint64_t last = (pend - 1) / C4GH_SEGMENT_SIZE;
	uint64_t idx, end, sstart, a, b;
	struct scratch *sc;
	int err;

	for (idx = first; idx <= last; idx = end + 1) {
		sstart = idx * C4GH_SEGMENT_SIZE;
		a = poff > sstart ? poff : sstart;
		b = pend < sstart + C4GH_SEGMENT_SIZE ?
		    pend : sstart + C4GH_SEGMENT_SIZE;
		end = idx;
		if (cache_copy(r, idx, a - sstart, b - a, dst + (a - poff)))
			continue;

		/* Extend the run over following segments not cached. */
		while (end < last && end - idx + 1 < FETCH_BATCH &&
		       !cache_copy(r, end + 1, 0, 0, NULL))
			end++;

		sc = scratch_get();
		if (!sc) {
			set_error(ret_error, -ENOMEM, idx, "fetch");
			return -ENOMEM;
		}
		err = fetch_run(r, idx, end, poff, pend, dst, sc, ret_error);
		if (err < 0) {
			cipher_wipe(sc->pt, C4GH_SEGMENT_SIZE);
			return err;
		}
	}
	return 0;
}

ssize_t c4gh_reader_pread(struct c4gh_reader *r, void *buf, size_t len,
			  uint64_t off, struct c4gh_reader_error *ret_error)
{
	uint64_t poff, run;
	size_t done = 0, n;
	int err = 0;

	set_error(ret_error, 0, 0, NULL);
	if (off >= r->visible || len == 0)
		return 0;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	if (len > r->visible - off)
		len = (size_t)(r->visible - off);

	while (done < len) {
		err = c4gh_edit_map(r->hdr, r->plain_size, off + done, &poff,
				    &run);
		if (err < 0) {
			/* cannot happen below r->visible */
			set_error(ret_error, -EBADMSG, 0, "size");
			err = -EBADMSG;
			break;
		}
		n = run < len - done ? (size_t)run : len - done;
		err = read_plain(r, poff, n, (uint8_t *)buf + done, ret_error);
		if (err < 0)
			break;
		done += n;
	}

	if (err < 0) {
		/* No byte of buf is valid: do not leave plaintext there. */
		cipher_wipe(buf, len);
		return err;
	}
	return (ssize_t)done;
}
