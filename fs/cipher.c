/*
 * cipher.c - OpenSSL 3 glue for the symmetric and key-agreement
 * primitives: CSPRNG, wiping, constant-time compare, X25519, BLAKE2b-512,
 * ChaCha20-Poly1305 (IETF), scrypt, PBKDF2-HMAC-SHA256, SHA-256 and hex.
 *
 * Ed25519 lives in cipher_sign.c.  These two files are the only ones in
 * the tree that include OpenSSL headers; every OpenSSL failure is turned
 * into a negative errno here, and the thread's OpenSSL error queue is
 * cleared so nothing stale leaks into a later, unrelated check.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "cipher.h"
#include "cipher_i.h"

/* EVP update calls take an int length: feed big inputs in pieces. */
#define CHUNK_MAX	(1 << 30)

/* scrypt memory ceiling: N=16384, r=8 needs 16 MiB; allow some headroom. */
#define SCRYPT_MAXMEM	(64u * 1024 * 1024)

struct cipher_sha256 {
	EVP_MD_CTX *md;
};

int cipher_random(void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len > 0) {
		size_t n = len > CHUNK_MAX ? CHUNK_MAX : len;

		if (RAND_bytes(p, (int)n) != 1) {
			ERR_clear_error();
			return -EIO;
		}
		p += n;
		len -= n;
	}
	return 0;
}

void cipher_wipe(void *p, size_t len)
{
	if (p && len)
		OPENSSL_cleanse(p, len);
}

int cipher_memeq(const void *a, const void *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}

/* ---- X25519 ---- */

static EVP_PKEY *x25519_from_secret(const uint8_t sk[32])
{
	return EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, sk, 32);
}

int cipher_raw_public(int type, const uint8_t sk[32], uint8_t ret_pk[32])
{
	EVP_PKEY *key;
	size_t len = 32;
	int ret = 0;

	memset(ret_pk, 0, 32);
	key = EVP_PKEY_new_raw_private_key(type, NULL, sk, 32);
	if (!key) {
		ERR_clear_error();
		return -ENOMEM;
	}
	if (EVP_PKEY_get_raw_public_key(key, ret_pk, &len) != 1 ||
	    len != 32) {
		ERR_clear_error();
		memset(ret_pk, 0, 32);
		ret = -EIO;
	}
	EVP_PKEY_free(key);
	return ret;
}

int cipher_raw_keypair(int (*public_of)(const uint8_t *, uint8_t *),
		       uint8_t ret_sk[32], uint8_t ret_pk[32])
{
	int ret;

	memset(ret_pk, 0, 32);
	ret = cipher_random(ret_sk, 32);
	if (ret < 0)
		goto out_wipe_sk;

	ret = public_of(ret_sk, ret_pk);
	if (ret < 0)
		goto out_wipe_sk;

	return 0;

out_wipe_sk:
	cipher_wipe(ret_sk, 32);
	return ret;
}

int cipher_x25519_public(const uint8_t sk[32], uint8_t ret_pk[32])
{
	return cipher_raw_public(EVP_PKEY_X25519, sk, ret_pk);
}

int cipher_x25519_keypair(uint8_t ret_sk[32], uint8_t ret_pk[32])
{
	return cipher_raw_keypair(cipher_x25519_public, ret_sk, ret_pk);
}

static int is_all_zero(const uint8_t *p, size_t len)
{
	uint8_t acc = 0;
	size_t i;

	for (i = 0; i < len; i++)
		acc |= p[i];
	return acc == 0;
}

int cipher_x25519_shared(const uint8_t sk[32], const uint8_t peer_pk[32],
			 uint8_t ret_shared[32])
{
	EVP_PKEY *key = NULL, *peer = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	size_t len = 32;
	int ret = -ENOMEM;

	memset(ret_shared, 0, 32);
	key = x25519_from_secret(sk);
	if (!key)
		goto out;

	peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer_pk, 32);
	if (!peer)
		goto out;

	ctx = EVP_PKEY_CTX_new(key, NULL);
	if (!ctx)
		goto out;

	ret = -EINVAL;
	if (EVP_PKEY_derive_init(ctx) != 1 ||
	    EVP_PKEY_derive_set_peer(ctx, peer) != 1)
		goto out;

	/* OpenSSL refuses an all-zero result (low-order peer key). */
	if (EVP_PKEY_derive(ctx, ret_shared, &len) != 1 || len != 32 ||
	    is_all_zero(ret_shared, 32)) {
		cipher_wipe(ret_shared, 32);
		goto out;
	}
	ret = 0;

out:
	if (ret < 0)
		ERR_clear_error();
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(peer);
	EVP_PKEY_free(key);
	return ret;
}

/* ---- digests ---- */

static int digest_once(const EVP_MD *md, const void *data, size_t len,
		       uint8_t *ret, unsigned int outlen)
{
	EVP_MD_CTX *ctx;
	const unsigned char *p = data;
	unsigned int n = 0;
	int ret_val = -EIO;

	memset(ret, 0, outlen);
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -ENOMEM;

	if (EVP_DigestInit_ex(ctx, md, NULL) != 1)
		goto out_free_ctx;

	while (len > 0) {
		size_t chunk = len > CHUNK_MAX ? CHUNK_MAX : len;

		if (EVP_DigestUpdate(ctx, p, chunk) != 1)
			goto out_free_ctx;
		p += chunk;
		len -= chunk;
	}
	if (EVP_DigestFinal_ex(ctx, ret, &n) != 1 || n != outlen) {
		memset(ret, 0, outlen);
		goto out_free_ctx;
	}
	ret_val = 0;

out_free_ctx:
	if (ret_val < 0)
		ERR_clear_error();
	EVP_MD_CTX_free(ctx);
	return ret_val;
}

int cipher_blake2b512(const void *data, size_t len, uint8_t ret[64])
{
	return digest_once(EVP_blake2b512(), data, len, ret, 64);
}

int cipher_sha256(const void *data, size_t len, uint8_t ret[32])
{
	return digest_once(EVP_sha256(), data, len, ret, 32);
}

int cipher_sha256_new(struct cipher_sha256 **ret_ctx)
{
	struct cipher_sha256 *ctx;

	*ret_ctx = NULL;
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;

	ctx->md = EVP_MD_CTX_new();
	if (!ctx->md)
		goto out_free_ctx;

	if (EVP_DigestInit_ex(ctx->md, EVP_sha256(), NULL) != 1) {
		ERR_clear_error();
		EVP_MD_CTX_free(ctx->md);
		goto out_free_ctx;
	}
	*ret_ctx = ctx;
	return 0;

out_free_ctx:
	free(ctx);
	return -ENOMEM;
}

int cipher_sha256_update(struct cipher_sha256 *ctx, const void *data,
			 size_t len)
{
	const unsigned char *p = data;

	while (len > 0) {
		size_t chunk = len > CHUNK_MAX ? CHUNK_MAX : len;

		if (EVP_DigestUpdate(ctx->md, p, chunk) != 1) {
			ERR_clear_error();
			return -EIO;
		}
		p += chunk;
		len -= chunk;
	}
	return 0;
}

int cipher_sha256_final(struct cipher_sha256 *ctx, uint8_t ret[32])
{
	unsigned int n = 0;
	int ret_val = 0;

	memset(ret, 0, 32);
	if (EVP_DigestFinal_ex(ctx->md, ret, &n) != 1 || n != 32) {
		ERR_clear_error();
		memset(ret, 0, 32);
		ret_val = -EIO;
	}
	cipher_sha256_free(ctx);
	return ret_val;
}

void cipher_sha256_free(struct cipher_sha256 *ctx)
{
	if (!ctx)
		return;
	EVP_MD_CTX_free(ctx->md);
	free(ctx);
}

/* ---- ChaCha20-Poly1305 ---- */

/* Run EVP_CipherUpdate over len bytes in int-sized pieces. */
static int cipher_update_all(EVP_CIPHER_CTX *ctx, uint8_t *out,
			     const uint8_t *in, size_t len)
{
	while (len > 0) {
		int chunk = len > CHUNK_MAX ? CHUNK_MAX : (int)len;
		int n = 0;

		if (EVP_CipherUpdate(ctx, out, &n, in, chunk) != 1 ||
		    n != chunk)
			return -EIO;
		out += chunk;
		in += chunk;
		len -= (size_t)chunk;
	}
	return 0;
}

static EVP_CIPHER_CTX *aead_ctx_new(const uint8_t key[32],
				    const uint8_t nonce[12], int enc)
{
	EVP_CIPHER_CTX *ctx;

	ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		return NULL;

	if (EVP_CipherInit_ex(ctx, EVP_chacha20_poly1305(), NULL, NULL, NULL,
			      enc) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN,
				CIPHER_NONCE_LEN, NULL) != 1 ||
	    EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) != 1) {
		EVP_CIPHER_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

int cipher_aead_encrypt(const uint8_t key[32], const uint8_t nonce[12],
			const void *pt, size_t len, uint8_t *ret_ct)
{
	EVP_CIPHER_CTX *ctx;
	int n = 0;
	int ret = -EIO;

	if (len > SIZE_MAX - CIPHER_TAG_LEN)
		return -EINVAL;

	ctx = aead_ctx_new(key, nonce, 1);
	if (!ctx) {
		ERR_clear_error();
		return -ENOMEM;
	}

	if (cipher_update_all(ctx, ret_ct, pt, len) < 0)
		goto out_free_ctx;

	if (EVP_EncryptFinal_ex(ctx, ret_ct + len, &n) != 1 || n != 0)
		goto out_free_ctx;

	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, CIPHER_TAG_LEN,
				ret_ct + len) != 1)
		goto out_free_ctx;

	ret = 0;

out_free_ctx:
	if (ret < 0) {
		ERR_clear_error();
		cipher_wipe(ret_ct, len + CIPHER_TAG_LEN);
	}
	EVP_CIPHER_CTX_free(ctx);
	return ret;
}

int cipher_aead_decrypt(const uint8_t key[32], const uint8_t nonce[12],
			const void *ct, size_t ct_len, uint8_t *ret_pt)
{
	EVP_CIPHER_CTX *ctx;
	const uint8_t *in = ct;
	uint8_t tag[CIPHER_TAG_LEN];
	size_t len;
	int n = 0;
	int ret = -EIO;

	if (ct_len < CIPHER_TAG_LEN)
		return -EBADMSG;
	len = ct_len - CIPHER_TAG_LEN;

	/* Copy the tag first: ret_pt may overlap ct (in-place decrypt). */
	memcpy(tag, in + len, CIPHER_TAG_LEN);

	ctx = aead_ctx_new(key, nonce, 0);
	if (!ctx) {
		ERR_clear_error();
		return -ENOMEM;
	}

	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, CIPHER_TAG_LEN,
				tag) != 1)
		goto out_free_ctx;

	/* Plaintext written here is unauthenticated until Final succeeds. */
	if (cipher_update_all(ctx, ret_pt, in, len) < 0)
		goto out_free_ctx;

	if (EVP_DecryptFinal_ex(ctx, ret_pt + len, &n) != 1 || n != 0) {
		ret = -EBADMSG;
		goto out_free_ctx;
	}
	ret = 0;

out_free_ctx:
	if (ret < 0) {
		ERR_clear_error();
		cipher_wipe(ret_pt, len);
	}
	EVP_CIPHER_CTX_free(ctx);
	return ret;
}

/* ---- password KDFs ---- */

int cipher_scrypt(const void *pass, size_t passlen, const void *salt,
		  size_t saltlen, uint64_t n, uint32_t r, uint32_t p,
		  uint8_t *ret_key, size_t keylen)
{
	/* OpenSSL wants non-NULL pointers even for empty inputs. */
	static const char empty[1];

	memset(ret_key, 0, keylen);
	if (EVP_PBE_scrypt(pass ? pass : empty, passlen,
			   salt ? salt : (const void *)empty, saltlen,
			   n, r, p, SCRYPT_MAXMEM, ret_key, keylen) != 1) {
		ERR_clear_error();
		cipher_wipe(ret_key, keylen);
		return -EINVAL;
	}
	return 0;
}

int cipher_pbkdf2_sha256(const void *pass, size_t passlen, const void *salt,
			 size_t saltlen, uint32_t rounds, uint8_t *ret_key,
			 size_t keylen)
{
	static const char empty[1];

	memset(ret_key, 0, keylen);
	if (rounds == 0 || rounds > INT_MAX || passlen > INT_MAX ||
	    saltlen > INT_MAX || keylen == 0 || keylen > INT_MAX)
		return -EINVAL;

	if (PKCS5_PBKDF2_HMAC(pass ? pass : empty, (int)passlen,
			      salt ? salt : (const void *)empty, (int)saltlen,
			      (int)rounds, EVP_sha256(), (int)keylen,
			      ret_key) != 1) {
		ERR_clear_error();
		cipher_wipe(ret_key, keylen);
		return -EIO;
	}
	return 0;
}

/* ---- hex ---- */

void cipher_hex(const void *data, size_t len, char *ret)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *p = data;
	size_t i;

	for (i = 0; i < len; i++) {
		ret[2 * i] = digits[p[i] >> 4];
		ret[2 * i + 1] = digits[p[i] & 0x0f];
	}
	ret[2 * len] = '\0';
}
