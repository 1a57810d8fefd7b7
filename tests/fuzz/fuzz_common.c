/*
 * fuzz_common.c - fixed keys, signing and sealing for the fuzz targets.
 *
 * Nothing here is secret: recipient1 is a published test key, and the
 * other keys are constants.  Nonces are derived from the input so that a
 * run is reproducible.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "cipher.h"
#include "jws.h"
#include "market.h"

#include "fuzz_common.h"

/* tests/data/crypt4gh/keys/recipient1.sec, decoded. */
const uint8_t fuzz_c4gh_sk[32] = {
	0x8a, 0x5d, 0x01, 0x18, 0xe8, 0xf3, 0x93, 0xbb,
	0xee, 0x06, 0x96, 0xa8, 0x5c, 0x44, 0x6e, 0xbb,
	0x08, 0x26, 0x35, 0xed, 0xba, 0x08, 0xf0, 0x9e,
	0x4e, 0x1a, 0x81, 0x3c, 0x08, 0xc2, 0x8a, 0xd2,
};

const uint8_t fuzz_writer_sk[32] = {
	0x57, 0x52, 0x49, 0x54, 0x45, 0x52, 0x2d, 0x66,
	0x75, 0x7a, 0x7a, 0x2d, 0x6b, 0x65, 0x79, 0x2d,
	0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
	0x38, 0x39, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66,
};

static const uint8_t market_sk[32] = {
	0x4d, 0x41, 0x52, 0x4b, 0x45, 0x54, 0x2d, 0x66,
	0x75, 0x7a, 0x7a, 0x2d, 0x73, 0x69, 0x67, 0x6e,
	0x69, 0x6e, 0x67, 0x2d, 0x6b, 0x65, 0x79, 0x2d,
	0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
};

void fuzz_c4gh_pk(uint8_t ret_pk[32])
{
	FUZZ_CHECK(cipher_x25519_public(fuzz_c4gh_sk, ret_pk) == 0);
}

void fuzz_market_keys(uint8_t ret_sk[32], uint8_t ret_pk[32])
{
	if (ret_sk)
		memcpy(ret_sk, market_sk, 32);
	FUZZ_CHECK(cipher_ed25519_public(market_sk, ret_pk) == 0);
}

void fuzz_market_kid(char ret_kid[65])
{
	uint8_t pk[32];

	fuzz_market_keys(NULL, pk);
	market_fingerprint(pk, ret_kid);
}

int fuzz_sign_raw(const char *type, const uint8_t *payload, size_t len,
		  char **ret_jws, size_t *ret_len)
{
	char kid[65], *proto = NULL, *pl_b64 = NULL, *sig_b64 = NULL;
	char *out = NULL, *dot;
	json_t *empty;
	uint8_t sig[64];
	size_t hl, pl, sl;
	int r;

	/* Take the protected header exactly as jws_sign() writes it. */
	fuzz_market_kid(kid);
	empty = json_object();
	if (!empty)
		return -ENOMEM;
	r = jws_sign(empty, type, market_sk, kid, &proto);
	json_decref(empty);
	if (r < 0)
		return r;
	dot = strchr(proto, '.');
	FUZZ_CHECK(dot != NULL);
	hl = (size_t)(dot - proto);

	r = b64_encode(payload, len, B64_URL, &pl_b64);
	if (r < 0)
		goto out;
	pl = strlen(pl_b64);
	out = malloc(hl + 1 + pl + 1 + 128);
	if (!out) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(out, proto, hl);
	out[hl] = '.';
	memcpy(out + hl + 1, pl_b64, pl);
	r = cipher_ed25519_sign(market_sk, out, hl + 1 + pl, sig);
	if (r < 0)
		goto out;
	r = b64_encode(sig, sizeof(sig), B64_URL, &sig_b64);
	if (r < 0)
		goto out;
	sl = strlen(sig_b64);
	FUZZ_CHECK(sl < 128);
	out[hl + 1 + pl] = '.';
	memcpy(out + hl + 1 + pl + 1, sig_b64, sl + 1);

	*ret_jws = out;
	*ret_len = hl + 1 + pl + 1 + sl;
	out = NULL;
	r = 0;
out:
	free(out);
	free(sig_b64);
	free(pl_b64);
	free(proto);
	return r;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

int fuzz_c4gh_seal(const uint8_t *pt, size_t len, uint8_t nonce_seed,
		   uint8_t *ret_pkt)
{
	uint8_t wpk[32], rpk[32], kin[96], digest[64];
	uint8_t *nonce = ret_pkt + 8 + 32;
	int r;

	if (len > UINT32_MAX - FUZZ_PACKET_OVERHEAD)
		return -EINVAL;
	r = cipher_x25519_public(fuzz_writer_sk, wpk);
	if (r < 0)
		return r;
	fuzz_c4gh_pk(rpk);

	/* K = BLAKE2b-512(dh || reader_pk || writer_pk)[0..32) */
	r = cipher_x25519_shared(fuzz_writer_sk, rpk, kin);
	if (r < 0)
		return r;
	memcpy(kin + 32, rpk, 32);
	memcpy(kin + 64, wpk, 32);
	r = cipher_blake2b512(kin, sizeof(kin), digest);
	if (r < 0)
		return r;

	put_le32(ret_pkt, (uint32_t)(len + FUZZ_PACKET_OVERHEAD));
	put_le32(ret_pkt + 4, 0);
	memcpy(ret_pkt + 8, wpk, 32);
	memset(nonce, nonce_seed, CIPHER_NONCE_LEN);
	return cipher_aead_encrypt(digest, nonce, pt, len,
				   nonce + CIPHER_NONCE_LEN);
}

uint32_t fuzz_le32(const uint8_t *p, size_t avail)
{
	uint32_t v = 0;
	size_t i;

	for (i = 0; i < 4 && i < avail; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

uint16_t fuzz_le16(const uint8_t *p, size_t avail)
{
	return (uint16_t)(fuzz_le32(p, avail < 2 ? avail : 2));
}

size_t fuzz_edit_apply(const uint64_t *edits, unsigned int nedits,
		       int active, size_t plain_len, uint64_t *ret_map)
{
	size_t pos = 0, vis = 0, j, n;
	unsigned int i;

	if (!active || nedits == 0) {
		for (j = 0; ret_map && j < plain_len; j++)
			ret_map[j] = j;
		return plain_len;
	}
	for (i = 0; i < nedits && pos < plain_len; i++) {
		n = edits[i] < plain_len - pos ? (size_t)edits[i]
					       : plain_len - pos;
		if (i % 2 == 1)
			for (j = 0; j < n; j++, vis++)
				if (ret_map)
					ret_map[vis] = pos + j;
		pos += n;
	}
	if (nedits % 2 == 1)
		for (; pos < plain_len; pos++, vis++)
			if (ret_map)
				ret_map[vis] = pos;
	return vis;
}
