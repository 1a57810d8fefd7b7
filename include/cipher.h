/*
 * cipher.h - the cryptographic primitives marketfs uses (OpenSSL 3 glue).
 *
 * fs/cipher.c and fs/cipher_sign.c are the only files that include
 * OpenSSL headers.  Nothing here logs; every function returns 0 on
 * success or a negative errno.  Out-parameters are cleared on entry and
 * hold nothing useful on failure.  All functions are thread-safe.
 */
#ifndef MARKETFS_CIPHER_H
#define MARKETFS_CIPHER_H

#include <stddef.h>
#include <stdint.h>

#define CIPHER_KEY_LEN		32
#define CIPHER_NONCE_LEN	12
#define CIPHER_TAG_LEN		16
#define CIPHER_SHA256_LEN	32
#define CIPHER_SIG_LEN		64

/* Fill buf with len bytes from the OS CSPRNG.  -EIO if it fails. */
int cipher_random(void *buf, size_t len);

/* Wipe len bytes at p in a way the compiler cannot drop.  NULL-safe. */
void cipher_wipe(void *p, size_t len);

/* Constant-time comparison: 1 when equal, 0 otherwise. */
int cipher_memeq(const void *a, const void *b, size_t len);

/* X25519: public key of a secret key. */
int cipher_x25519_public(const uint8_t sk[32], uint8_t ret_pk[32]);

/* X25519: a fresh key pair. */
int cipher_x25519_keypair(uint8_t ret_sk[32], uint8_t ret_pk[32]);

/*
 * X25519 Diffie-Hellman.  -EINVAL when the peer key is of low order
 * (the shared secret would be all zeros).
 */
int cipher_x25519_shared(const uint8_t sk[32], const uint8_t peer_pk[32],
			 uint8_t ret_shared[32]);

/* Unkeyed BLAKE2b with its full 64-byte output. */
int cipher_blake2b512(const void *data, size_t len, uint8_t ret[64]);

/*
 * ChaCha20-Poly1305 (RFC 8439, IETF nonce, empty AAD).
 * Encrypt: ret_ct receives len + CIPHER_TAG_LEN bytes (ciphertext || tag).
 * Decrypt: ct_len includes the tag; ret_pt receives ct_len - 16 bytes,
 * and is wiped when the tag does not verify (-EBADMSG).  ret_pt must be
 * a private buffer: nothing in it may be released before 0 is returned.
 */
int cipher_aead_encrypt(const uint8_t key[32], const uint8_t nonce[12],
			const void *pt, size_t len, uint8_t *ret_ct);
int cipher_aead_decrypt(const uint8_t key[32], const uint8_t nonce[12],
			const void *ct, size_t ct_len, uint8_t *ret_pt);

/* scrypt (N, r, p as given) and PBKDF2-HMAC-SHA256. */
int cipher_scrypt(const void *pass, size_t passlen, const void *salt,
		  size_t saltlen, uint64_t n, uint32_t r, uint32_t p,
		  uint8_t *ret_key, size_t keylen);
int cipher_pbkdf2_sha256(const void *pass, size_t passlen, const void *salt,
			 size_t saltlen, uint32_t rounds, uint8_t *ret_key,
			 size_t keylen);

/* SHA-256, one-shot and incremental. */
int cipher_sha256(const void *data, size_t len, uint8_t ret[32]);

struct cipher_sha256;		/* opaque incremental context */
int cipher_sha256_new(struct cipher_sha256 **ret_ctx);
int cipher_sha256_update(struct cipher_sha256 *ctx, const void *data,
			 size_t len);
/* Writes the digest and frees ctx in all cases. */
int cipher_sha256_final(struct cipher_sha256 *ctx, uint8_t ret[32]);
void cipher_sha256_free(struct cipher_sha256 *ctx);	/* NULL-safe */

/* Ed25519 (RFC 8032), keys as 32 raw bytes. */
int cipher_ed25519_keypair(uint8_t ret_sk[32], uint8_t ret_pk[32]);
int cipher_ed25519_public(const uint8_t sk[32], uint8_t ret_pk[32]);
int cipher_ed25519_sign(const uint8_t sk[32], const void *msg, size_t len,
			uint8_t ret_sig[64]);
/* 0 when the signature verifies, -EBADMSG when it does not. */
int cipher_ed25519_verify(const uint8_t pk[32], const void *msg, size_t len,
			  const uint8_t sig[64]);

/*
 * Lower-case hex of len bytes into ret (2 * len + 1 bytes, NUL-ended).
 * Not secret-safe: use only for digests and public keys.
 */
void cipher_hex(const void *data, size_t len, char *ret);

#endif
