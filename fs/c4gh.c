/*
 * c4gh.c - GA4GH Crypt4GH version 1: headers, data segments, edit lists
 * and whole-stream encryption/decryption.  (Key files live in
 * c4gh_key.c.)
 *
 * Invariants:
 * - Every length read from a header is checked against C4GH_HEADER_MAX
 *   and against the bytes actually present before anything is allocated
 *   or decrypted.
 * - Header packets are sealed with X25519 + BLAKE2b-512 (truncated to 32
 *   bytes, libsodium crypto_kx style) + ChaCha20-Poly1305; packets that
 *   do not open with our key, or of a method we do not know, belong to
 *   other readers and are skipped.
 * - Decrypted bytes are only released after their tag verified
 *   (cipher_aead_decrypt guarantees it for one buffer); data keys, shared
 *   secrets and plaintext staging buffers are wiped on every path.
 * - Nothing here logs.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "c4gh.h"
#include "cipher.h"

#define MAGIC			"crypt4gh"
#define MAGIC_LEN		8
#define VERSION			1
#define PKT_METHOD_X25519	0	/* X25519_chacha20_ietf_poly1305 */
#define DATA_METHOD_CHACHA	0	/* chacha20_ietf_poly1305 */
#define PKT_TYPE_KEY		0
#define PKT_TYPE_EDITS		1
/* length, method, writer public key, nonce, tag */
#define PKT_OVERHEAD	(4 + 4 + 32 + CIPHER_NONCE_LEN + CIPHER_TAG_LEN)
#define PKT_MIN			8	/* length + method */
/* the most packets a header of C4GH_HEADER_MAX bytes can hold */
#define PKT_COUNT_MAX	((C4GH_HEADER_MAX - C4GH_PREAMBLE_LEN) / PKT_MIN)
#define KEY_PAYLOAD_LEN		(4 + 4 + 32)

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = v & 0xff;
	p[1] = (v >> 8) & 0xff;
	p[2] = (v >> 16) & 0xff;
	p[3] = (v >> 24) & 0xff;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* ---- header parsing ---- */

int c4gh_header_length(const uint8_t *buf, size_t len, uint64_t *ret_need)
{
	uint64_t off;
	uint32_t count, i, plen;

	if (len > 0 && memcmp(buf, MAGIC, len < MAGIC_LEN ? len : MAGIC_LEN))
		return -EBADMSG;
	if (len < C4GH_PREAMBLE_LEN) {
		if (ret_need)
			*ret_need = C4GH_PREAMBLE_LEN;
		return -EAGAIN;
	}
	if (get_le32(buf + 8) != VERSION)
		return -EPROTONOSUPPORT;

	/* A count no header of our size limit could hold fails at once. */
	count = get_le32(buf + 12);
	if (count > PKT_COUNT_MAX)
		return -EBADMSG;

	off = C4GH_PREAMBLE_LEN;
	for (i = 0; i < count; i++) {
		if (off + 4 > C4GH_HEADER_MAX)
			return -EBADMSG;
		if (off + 4 > len) {
			if (ret_need)
				*ret_need = off + 4;
			return -EAGAIN;
		}
		plen = get_le32(buf + off);
		if (plen < PKT_MIN || plen > C4GH_HEADER_MAX - off)
			return -EBADMSG;
		off += plen;
	}
	return (int)off;
}

/*
 * The packet key, the same on both sides (libsodium's crypto_kx):
 * K_shared = BLAKE2b-512(X25519(sk, peer) || reader_pk || writer_pk),
 * of which the first 32 bytes are used.  -EINVAL for a low-order peer.
 */
static int packet_key(const uint8_t sk[32], const uint8_t peer[32],
		      const uint8_t reader_pk[32], const uint8_t writer_pk[32],
		      uint8_t ret_key[64])
{
	uint8_t kin[96];
	int r;

	r = cipher_x25519_shared(sk, peer, kin);
	if (r < 0)
		return r;
	memcpy(kin + 32, reader_pk, 32);
	memcpy(kin + 64, writer_pk, 32);
	r = cipher_blake2b512(kin, sizeof(kin), ret_key);
	cipher_wipe(kin, sizeof(kin));
	return r;
}

/*
 * Open one method-0 packet (pkt[0..plen), length and method already
 * read) with sk.  Returns 1 and a malloc'd payload when it opens, 0 when
 * it is not for us, or a negative errno.
 */
static int packet_open(const uint8_t *pkt, uint32_t plen, const uint8_t sk[32],
		       const uint8_t pk[32], uint8_t **ret_pt,
		       size_t *ret_ptlen)
{
	const uint8_t *wpk = pkt + 8;
	const uint8_t *nonce = pkt + 8 + 32;
	const uint8_t *ct = nonce + CIPHER_NONCE_LEN;
	size_t ctlen = plen - 8 - 32 - CIPHER_NONCE_LEN;
	uint8_t digest[64];
	uint8_t *pt;
	int r;

	pt = malloc(ctlen - CIPHER_TAG_LEN + 1);
	if (!pt)
		return -ENOMEM;

	/* A low-order writer key cannot be for us: not an error. */
	r = packet_key(sk, wpk, pk, wpk, digest);
	if (r < 0) {
		if (r == -EINVAL)
			r = 0;
		goto out_wipe;
	}

	r = cipher_aead_decrypt(digest, nonce, ct, ctlen, pt);
	if (r == -EBADMSG) {
		r = 0;		/* for another reader */
		goto out_wipe;
	}
	if (r < 0)
		goto out_wipe;

	*ret_pt = pt;
	*ret_ptlen = ctlen - CIPHER_TAG_LEN;
	pt = NULL;
	r = 1;

out_wipe:
	cipher_wipe(digest, sizeof(digest));
	if (pt) {
		cipher_wipe(pt, ctlen - CIPHER_TAG_LEN);
		free(pt);
	}
	return r;
}

typedef int (*payload_fn)(void *ctx, const uint8_t *pt, size_t len);

/*
 * Walk every packet of the header at buf[0..len) and hand each payload
 * that sk opens to fn.  Returns the header length, or a negative errno
 * (-EBADMSG for anything malformed or truncated, fn's errors as is).
 */
static int header_walk(const uint8_t *buf, size_t len, const uint8_t sk[32],
		       payload_fn fn, void *ctx)
{
	uint8_t pk[32];
	uint64_t need, off;
	uint32_t count, i, plen;
	int hlen, r;

	hlen = c4gh_header_length(buf, len, &need);
	if (hlen == -EAGAIN)
		return -EBADMSG;	/* truncated */
	if (hlen < 0)
		return hlen;
	if ((size_t)hlen > len)
		return -EBADMSG;

	r = cipher_x25519_public(sk, pk);
	if (r < 0)
		return r;

	count = get_le32(buf + 12);
	off = C4GH_PREAMBLE_LEN;
	for (i = 0; i < count; i++, off += plen) {
		uint8_t *pt = NULL;
		size_t ptlen = 0;

		plen = get_le32(buf + off);
		if (get_le32(buf + off + 4) != PKT_METHOD_X25519)
			continue;	/* a method we do not know */
		if (plen < PKT_OVERHEAD)
			return -EBADMSG;

		r = packet_open(buf + off, plen, sk, pk, &pt, &ptlen);
		if (r < 0)
			return r;
		if (r == 0)
			continue;

		r = fn(ctx, pt, ptlen);
		cipher_wipe(pt, ptlen);
		free(pt);
		if (r < 0)
			return r;
	}
	return hlen;
}

/* Parse one decrypted payload into a header (spec 3.2). */
static int payload_parse(void *ctx, const uint8_t *pt, size_t len)
{
	struct c4gh_header *hdr = ctx;
	uint32_t n, i;

	if (len < 4)
		return -EBADMSG;

	switch (get_le32(pt)) {
	case PKT_TYPE_KEY:
		if (len < KEY_PAYLOAD_LEN)
			return -EBADMSG;
		/*
		 * Only method 0 exists, so a mix of methods always involves
		 * an unknown one: rejecting unknown ones rejects mixes.
		 */
		if (get_le32(pt + 4) != DATA_METHOD_CHACHA)
			return -EPROTONOSUPPORT;
		for (i = 0; i < hdr->nkeys; i++)
			if (cipher_memeq(hdr->keys[i], pt + 8, 32))
				return 0;	/* same key, other packet */
		if (hdr->nkeys >= C4GH_MAX_KEYS)
			return -EBADMSG;
		memcpy(hdr->keys[hdr->nkeys++], pt + 8, 32);
		return 0;
	case PKT_TYPE_EDITS:
		if (len < 8 || hdr->has_edits)
			return -EBADMSG;
		n = get_le32(pt + 4);
		if (n > C4GH_MAX_EDITS || (len - 8) / 8 < n)
			return -EBADMSG;
		for (i = 0; i < n; i++)
			hdr->edits[i] = get_le64(pt + 8 + 8 * (size_t)i);
		hdr->nedits = n;
		hdr->has_edits = 1;	/* kept even when n == 0 */
		return 0;
	default:
		return -EBADMSG;
	}
}

int c4gh_header_decrypt(const uint8_t *buf, size_t len, const uint8_t sk[32],
			struct c4gh_header *ret)
{
	int r;

	memset(ret, 0, sizeof(*ret));

	r = header_walk(buf, len, sk, payload_parse, ret);
	if (r >= 0 && ret->nkeys == 0)
		r = -ENOKEY;
	if (r < 0) {
		c4gh_header_release(ret);
		return r;
	}

	ret->header_len = (uint64_t)r;
	return 0;
}

void c4gh_header_release(struct c4gh_header *hdr)
{
	if (!hdr)
		return;
	cipher_wipe(hdr, sizeof(*hdr));
}

/* ---- header writing ---- */

/*
 * Seal payload pt[0..len) for recipient rpk into out (len + PKT_OVERHEAD
 * bytes): length, method 0, writer public key, fresh nonce, ct, tag.
 */
static int packet_seal(const uint8_t wsk[32], const uint8_t wpk[32],
		       const uint8_t rpk[32], const uint8_t *pt, size_t len,
		       uint8_t *out)
{
	uint8_t digest[64];
	int r;

	put_le32(out, (uint32_t)(len + PKT_OVERHEAD));
	put_le32(out + 4, PKT_METHOD_X25519);
	memcpy(out + 8, wpk, 32);
	r = cipher_random(out + 40, CIPHER_NONCE_LEN);
	if (r < 0)
		return r;

	/* The writer is the "server" of crypto_kx: same first 32 bytes. */
	r = packet_key(wsk, rpk, rpk, wpk, digest);
	if (r < 0)
		goto out_wipe;

	r = cipher_aead_encrypt(digest, out + 40, pt, len,
				out + 40 + CIPHER_NONCE_LEN);

out_wipe:
	cipher_wipe(digest, sizeof(digest));
	return r;
}

struct payload {
	uint8_t *data;
	size_t len;
};

/*
 * Seal every payload for every recipient into one malloc'd header:
 * recipient by recipient, payloads in the given order.
 */
static int header_seal(const uint8_t writer_sk[32],
		       const uint8_t (*recipients)[32],
		       unsigned int nrecipients,
		       const struct payload *pl, unsigned int npl,
		       uint8_t **ret_buf, size_t *ret_len)
{
	uint8_t wpk[32];
	uint64_t total, per;
	uint8_t *buf, *p;
	unsigned int i, j;
	int r;

	if (nrecipients == 0 || npl == 0)
		return -EINVAL;

	per = 0;
	for (j = 0; j < npl; j++)
		per += pl[j].len + PKT_OVERHEAD;
	if (per > C4GH_HEADER_MAX ||
	    (uint64_t)nrecipients > (C4GH_HEADER_MAX - C4GH_PREAMBLE_LEN) / per)
		return -E2BIG;
	total = C4GH_PREAMBLE_LEN + per * nrecipients;

	r = cipher_x25519_public(writer_sk, wpk);
	if (r < 0)
		return r;

	buf = malloc(total);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, MAGIC, MAGIC_LEN);
	put_le32(buf + 8, VERSION);
	put_le32(buf + 12, nrecipients * npl);

	p = buf + C4GH_PREAMBLE_LEN;
	for (i = 0; i < nrecipients; i++) {
		for (j = 0; j < npl; j++) {
			r = packet_seal(writer_sk, wpk, recipients[i],
					pl[j].data, pl[j].len, p);
			if (r < 0) {
				free(buf);
				return r;
			}
			p += pl[j].len + PKT_OVERHEAD;
		}
	}

	*ret_buf = buf;
	*ret_len = total;
	return 0;
}

int c4gh_header_build(const uint8_t writer_sk[32],
		      const uint8_t (*recipients)[32], unsigned int nrecipients,
		      const uint8_t data_key[32], const uint64_t *edits,
		      unsigned int nedits, uint8_t **ret_buf, size_t *ret_len)
{
	uint8_t keypl[KEY_PAYLOAD_LEN];
	struct payload pl[2];
	uint8_t *editpl = NULL;
	size_t editlen = 0;
	unsigned int i;
	int r;

	*ret_buf = NULL;
	*ret_len = 0;
	if (nedits > C4GH_MAX_EDITS || (nedits && !edits))
		return -EINVAL;

	put_le32(keypl, PKT_TYPE_KEY);
	put_le32(keypl + 4, DATA_METHOD_CHACHA);
	memcpy(keypl + 8, data_key, 32);
	pl[0].data = keypl;
	pl[0].len = sizeof(keypl);

	if (nedits > 0) {
		editlen = 8 + 8 * (size_t)nedits;
		editpl = malloc(editlen);
		if (!editpl) {
			r = -ENOMEM;
			goto out_wipe_key;
		}
		put_le32(editpl, PKT_TYPE_EDITS);
		put_le32(editpl + 4, nedits);
		for (i = 0; i < nedits; i++)
			put_le64(editpl + 8 + 8 * (size_t)i, edits[i]);
		pl[1].data = editpl;
		pl[1].len = editlen;
	}

	r = header_seal(writer_sk, recipients, nrecipients, pl,
			nedits > 0 ? 2 : 1, ret_buf, ret_len);

	free(editpl);
out_wipe_key:
	cipher_wipe(keypl, sizeof(keypl));
	return r;
}

/* Collects the opened payloads of a header for c4gh_header_reencrypt. */
struct reenc_ctx {
	struct c4gh_header *check;	/* the payloads must parse */
	struct payload pl[C4GH_MAX_KEYS + 1];
	unsigned int npl;
};

static int payload_collect(void *ctx, const uint8_t *pt, size_t len)
{
	struct reenc_ctx *rc = ctx;
	unsigned int before = rc->check->nkeys;
	int had_edits = rc->check->has_edits;
	int r;

	r = payload_parse(rc->check, pt, len);
	if (r < 0)
		return r;
	/* A duplicate key packet adds nothing: do not seal it twice. */
	if (rc->check->nkeys == before && rc->check->has_edits == had_edits)
		return 0;
	if (rc->npl >= C4GH_MAX_KEYS + 1)
		return -EBADMSG;

	rc->pl[rc->npl].data = malloc(len);
	if (!rc->pl[rc->npl].data)
		return -ENOMEM;
	memcpy(rc->pl[rc->npl].data, pt, len);
	rc->pl[rc->npl].len = len;
	rc->npl++;
	return 0;
}

int c4gh_header_reencrypt(const uint8_t *buf, size_t len,
			  const uint8_t reader_sk[32],
			  const uint8_t writer_sk[32],
			  const uint8_t (*recipients)[32],
			  unsigned int nrecipients,
			  uint8_t **ret_buf, size_t *ret_len)
{
	struct reenc_ctx rc = { 0 };
	unsigned int i;
	int r;

	*ret_buf = NULL;
	*ret_len = 0;

	rc.check = malloc(sizeof(*rc.check));
	if (!rc.check)
		return -ENOMEM;
	memset(rc.check, 0, sizeof(*rc.check));

	r = header_walk(buf, len, reader_sk, payload_collect, &rc);
	if (r < 0)
		goto out_free;
	if (rc.check->nkeys == 0) {
		r = -ENOKEY;
		goto out_free;
	}

	r = header_seal(writer_sk, recipients, nrecipients, rc.pl, rc.npl,
			ret_buf, ret_len);

out_free:
	for (i = 0; i < rc.npl; i++) {
		cipher_wipe(rc.pl[i].data, rc.pl[i].len);
		free(rc.pl[i].data);
	}
	c4gh_header_release(rc.check);
	free(rc.check);
	return r;
}

/* ---- data section ---- */

int c4gh_plain_size(uint64_t data_len, uint64_t *ret_size)
{
	uint64_t q = data_len / C4GH_CIPHER_SEGMENT;
	uint64_t r = data_len % C4GH_CIPHER_SEGMENT;

	if (r > 0 && r <= C4GH_SEGMENT_OVERHEAD)
		return -EBADMSG;
	*ret_size = q * C4GH_SEGMENT_SIZE + (r ? r - C4GH_SEGMENT_OVERHEAD : 0);
	return 0;
}

uint64_t c4gh_cipher_size(uint64_t size)
{
	uint64_t q = size / C4GH_SEGMENT_SIZE;
	uint64_t r = size % C4GH_SEGMENT_SIZE;

	return q * C4GH_CIPHER_SEGMENT + (r ? r + C4GH_SEGMENT_OVERHEAD : 0);
}

ssize_t c4gh_segment_decrypt(const struct c4gh_header *hdr,
			     const uint8_t *seg, size_t seg_len,
			     uint8_t *ret_pt)
{
	size_t ptlen;
	unsigned int i;
	int r;

	if (seg_len <= C4GH_SEGMENT_OVERHEAD || seg_len > C4GH_CIPHER_SEGMENT)
		return -EBADMSG;
	ptlen = seg_len - C4GH_SEGMENT_OVERHEAD;

	/*
	 * Keys in header order (as the reference does).  cipher_aead_decrypt
	 * leaves ret_pt wiped unless the tag verified.
	 */
	for (i = 0; i < hdr->nkeys; i++) {
		r = cipher_aead_decrypt(hdr->keys[i], seg,
					seg + CIPHER_NONCE_LEN,
					seg_len - CIPHER_NONCE_LEN, ret_pt);
		if (r == 0)
			return (ssize_t)ptlen;
		if (r != -EBADMSG) {
			cipher_wipe(ret_pt, ptlen);
			return r;
		}
	}
	cipher_wipe(ret_pt, ptlen);
	return -EBADMSG;
}

int c4gh_segment_encrypt(const uint8_t key[32], const uint8_t *pt,
			 size_t len, uint8_t *ret_seg)
{
	int r;

	if (len == 0 || len > C4GH_SEGMENT_SIZE)
		return -EINVAL;

	r = cipher_random(ret_seg, CIPHER_NONCE_LEN);
	if (r < 0)
		return r;
	return cipher_aead_encrypt(key, ret_seg, pt, len,
				   ret_seg + CIPHER_NONCE_LEN);
}

/* ---- edit lists ---- */

/*
 * Entries alternate skip, keep, ... starting with a skip.  After an even
 * list nothing more is kept; after an odd one (it ends with a skip) the
 * rest is kept.  Keeps are clipped at the end of the plaintext.  No list,
 * or an empty one, keeps everything.
 */
static int edits_active(const struct c4gh_header *hdr)
{
	return hdr->has_edits && hdr->nedits > 0;
}

uint64_t c4gh_edit_visible_size(const struct c4gh_header *hdr,
				uint64_t plain_size)
{
	uint64_t pos = 0, vis = 0;
	unsigned int i;

	if (!edits_active(hdr))
		return plain_size;

	for (i = 0; i < hdr->nedits && pos < plain_size; i++) {
		uint64_t e = hdr->edits[i];

		if (i % 2 == 1)
			vis += e < plain_size - pos ? e : plain_size - pos;
		pos = add_sat(pos, e);
	}
	if (hdr->nedits % 2 == 1 && pos < plain_size)
		vis += plain_size - pos;
	return vis;
}

int c4gh_edit_map(const struct c4gh_header *hdr, uint64_t plain_size,
		  uint64_t visible_off, uint64_t *ret_plain_off,
		  uint64_t *ret_run)
{
	uint64_t pos = 0, vis = 0, keep;
	unsigned int i;

	if (!edits_active(hdr)) {
		if (visible_off >= plain_size)
			return -ERANGE;
		*ret_plain_off = visible_off;
		*ret_run = plain_size - visible_off;
		return 0;
	}

	for (i = 0; i <= hdr->nedits && pos < plain_size; i++) {
		if (i == hdr->nedits) {
			if (hdr->nedits % 2 == 0)
				break;
			keep = plain_size - pos;	/* odd: the rest */
		} else if (i % 2 == 0) {
			pos = add_sat(pos, hdr->edits[i]);
			continue;
		} else {
			keep = hdr->edits[i];
			if (keep > plain_size - pos)
				keep = plain_size - pos;
		}
		if (visible_off - vis < keep) {
			*ret_plain_off = pos + (visible_off - vis);
			*ret_run = keep - (visible_off - vis);
			return 0;
		}
		vis += keep;
		pos = add_sat(pos, keep);
	}
	return -ERANGE;
}

/* ---- whole streams ---- */

/* Read up to len bytes, short only at end of input. */
static ssize_t read_full(int fd, uint8_t *buf, size_t len)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = read(fd, buf + done, len - done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static int write_full(int fd, const uint8_t *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int c4gh_encrypt_fd(int in_fd, int out_fd, const uint8_t writer_sk[32],
		    const uint8_t (*recipients)[32], unsigned int nrecipients,
		    uint8_t *ret_data_key, uint64_t *ret_header_len)
{
	uint8_t key[32];
	uint8_t *hbuf = NULL, *pt = NULL, *seg = NULL;
	size_t hlen = 0;
	ssize_t n;
	int r;

	r = cipher_random(key, sizeof(key));
	if (r < 0)
		return r;

	r = c4gh_header_build(writer_sk, recipients, nrecipients, key, NULL, 0,
			      &hbuf, &hlen);
	if (r < 0)
		goto out_wipe_key;
	r = write_full(out_fd, hbuf, hlen);
	free(hbuf);
	if (r < 0)
		goto out_wipe_key;

	pt = malloc(C4GH_SEGMENT_SIZE);
	seg = malloc(C4GH_CIPHER_SEGMENT);
	if (!pt || !seg) {
		r = -ENOMEM;
		goto out_free;
	}

	/*
	 * Full segments until a short read: an empty input gives no
	 * segment, and a multiple of 64 KiB ends with a full one.
	 */
	for (;;) {
		n = read_full(in_fd, pt, C4GH_SEGMENT_SIZE);
		if (n < 0) {
			r = (int)n;
			goto out_free;
		}
		if (n == 0)
			break;
		r = c4gh_segment_encrypt(key, pt, (size_t)n, seg);
		if (r < 0)
			goto out_free;
		r = write_full(out_fd, seg, (size_t)n + C4GH_SEGMENT_OVERHEAD);
		if (r < 0)
			goto out_free;
		if (n < C4GH_SEGMENT_SIZE)
			break;
	}

	if (ret_data_key)
		memcpy(ret_data_key, key, sizeof(key));
	if (ret_header_len)
		*ret_header_len = hlen;
	r = 0;

out_free:
	if (pt)
		cipher_wipe(pt, C4GH_SEGMENT_SIZE);
	free(pt);
	free(seg);
out_wipe_key:
	cipher_wipe(key, sizeof(key));
	return r;
}

/* Read the whole header from fd into a malloc'd buffer, bounded. */
static int header_read(int fd, uint8_t **ret_buf, size_t *ret_len)
{
	uint8_t *buf = NULL, *nbuf;
	size_t have = 0;
	uint64_t need = C4GH_PREAMBLE_LEN;
	ssize_t n;
	int r;

	for (;;) {
		/* need never exceeds C4GH_HEADER_MAX + 4 */
		nbuf = realloc(buf, need);
		if (!nbuf) {
			r = -ENOMEM;
			goto out_free;
		}
		buf = nbuf;
		n = read_full(fd, buf + have, need - have);
		if (n < 0) {
			r = (int)n;
			goto out_free;
		}
		have += (size_t)n;
		if (have < need) {
			/* EOF: say "not Crypt4GH" even for a short magic */
			r = -EBADMSG;
			goto out_free;
		}

		r = c4gh_header_length(buf, have, &need);
		if (r == -EAGAIN)
			continue;
		if (r < 0)
			goto out_free;
		if ((size_t)r == have)
			break;
		need = (uint64_t)r;
	}

	*ret_buf = buf;
	*ret_len = have;
	return 0;

out_free:
	free(buf);
	return r;
}

/* Streaming edit-list state for c4gh_decrypt_fd. */
struct edit_cursor {
	const struct c4gh_header *hdr;
	unsigned int i;		/* current entry */
	uint64_t left;		/* bytes left in it */
	int done;		/* nothing more will be kept */
};

static void edit_cursor_init(struct edit_cursor *c,
			     const struct c4gh_header *hdr)
{
	c->hdr = hdr;
	c->i = 0;
	c->left = edits_active(hdr) ? hdr->edits[0] : 0;
	c->done = 0;
}

/* Write the kept part of pt[0..len) to fd. */
static int edit_cursor_emit(struct edit_cursor *c, int fd, const uint8_t *pt,
			    size_t len)
{
	const struct c4gh_header *hdr = c->hdr;
	uint64_t m;
	int r;

	if (!edits_active(hdr))
		return write_full(fd, pt, len);

	while (len > 0 && !c->done) {
		if (c->i >= hdr->nedits) {
			if (hdr->nedits % 2 == 0) {
				c->done = 1;
				break;
			}
			return write_full(fd, pt, len);
		}
		m = c->left < len ? c->left : len;
		if (c->i % 2 == 1) {
			r = write_full(fd, pt, (size_t)m);
			if (r < 0)
				return r;
		}
		pt += m;
		len -= (size_t)m;
		c->left -= m;
		if (c->left == 0) {
			c->i++;
			if (c->i < hdr->nedits)
				c->left = hdr->edits[c->i];
		}
	}
	if (c->i >= hdr->nedits && hdr->nedits % 2 == 0)
		c->done = 1;
	return 0;
}

int c4gh_decrypt_fd(int in_fd, int out_fd, const uint8_t sk[32])
{
	struct c4gh_header *hdr;
	struct edit_cursor cur;
	uint8_t *hbuf = NULL, *seg = NULL, *pt = NULL;
	size_t hlen = 0;
	ssize_t n, ptlen;
	int r;

	hdr = malloc(sizeof(*hdr));
	if (!hdr)
		return -ENOMEM;

	r = header_read(in_fd, &hbuf, &hlen);
	if (r < 0)
		goto out_free_hdr;
	r = c4gh_header_decrypt(hbuf, hlen, sk, hdr);
	free(hbuf);
	if (r < 0)
		goto out_free_hdr;

	seg = malloc(C4GH_CIPHER_SEGMENT);
	pt = malloc(C4GH_SEGMENT_SIZE);
	if (!seg || !pt) {
		r = -ENOMEM;
		goto out_free;
	}

	/*
	 * Once an even edit list is used up nothing more is written, so the
	 * rest is neither read nor authenticated (the reader does the same).
	 */
	edit_cursor_init(&cur, hdr);
	while (!cur.done) {
		n = read_full(in_fd, seg, C4GH_CIPHER_SEGMENT);
		if (n < 0) {
			r = (int)n;
			goto out_free;
		}
		if (n == 0)
			break;

		/* Authenticated in full before one byte is written. */
		ptlen = c4gh_segment_decrypt(hdr, seg, (size_t)n, pt);
		if (ptlen < 0) {
			r = (int)ptlen;
			goto out_free;
		}
		r = edit_cursor_emit(&cur, out_fd, pt, (size_t)ptlen);
		cipher_wipe(pt, (size_t)ptlen);
		if (r < 0)
			goto out_free;
		if (n < C4GH_CIPHER_SEGMENT)
			break;
	}
	r = 0;

out_free:
	if (pt)
		cipher_wipe(pt, C4GH_SEGMENT_SIZE);
	free(pt);
	free(seg);
	c4gh_header_release(hdr);
out_free_hdr:
	free(hdr);
	return r;
}
