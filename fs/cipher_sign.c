/*
 * cipher_sign.c - Ed25519 (RFC 8032, pure, no prehash) over OpenSSL 3.
 *
 * Keys travel as 32 raw bytes.  Ed25519 takes no separate digest, so the
 * one-shot EVP_DigestSign/EVP_DigestVerify are used with a NULL md.
 * Every OpenSSL failure is mapped to a negative errno and the thread's
 * error queue is cleared.
 */
#include <errno.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "cipher.h"
#include "cipher_i.h"

int cipher_ed25519_public(const uint8_t sk[32], uint8_t ret_pk[32])
{
	return cipher_raw_public(EVP_PKEY_ED25519, sk, ret_pk);
}

int cipher_ed25519_keypair(uint8_t ret_sk[32], uint8_t ret_pk[32])
{
	return cipher_raw_keypair(cipher_ed25519_public, ret_sk, ret_pk);
}

int cipher_ed25519_sign(const uint8_t sk[32], const void *msg, size_t len,
			uint8_t ret_sig[64])
{
	EVP_PKEY *key;
	EVP_MD_CTX *ctx = NULL;
	size_t siglen = CIPHER_SIG_LEN;
	int ret = -ENOMEM;

	memset(ret_sig, 0, CIPHER_SIG_LEN);
	key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, sk, 32);
	if (!key)
		goto out;

	ctx = EVP_MD_CTX_new();
	if (!ctx)
		goto out_free_key;

	ret = -EIO;
	if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) != 1)
		goto out_free_ctx;

	if (EVP_DigestSign(ctx, ret_sig, &siglen, msg, len) != 1 ||
	    siglen != CIPHER_SIG_LEN) {
		memset(ret_sig, 0, CIPHER_SIG_LEN);
		goto out_free_ctx;
	}
	ret = 0;

out_free_ctx:
	EVP_MD_CTX_free(ctx);
out_free_key:
	EVP_PKEY_free(key);
out:
	if (ret < 0)
		ERR_clear_error();
	return ret;
}

int cipher_ed25519_verify(const uint8_t pk[32], const void *msg, size_t len,
			  const uint8_t sig[64])
{
	EVP_PKEY *key;
	EVP_MD_CTX *ctx = NULL;
	int ret = -EINVAL;
	int ok;

	key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pk, 32);
	if (!key)
		goto out;

	ret = -ENOMEM;
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		goto out_free_key;

	ret = -EIO;
	if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) != 1)
		goto out_free_ctx;

	/* 1: good; 0: bad signature; < 0: malformed input, also bad. */
	ok = EVP_DigestVerify(ctx, sig, CIPHER_SIG_LEN, msg, len);
	ret = ok == 1 ? 0 : -EBADMSG;

out_free_ctx:
	EVP_MD_CTX_free(ctx);
out_free_key:
	EVP_PKEY_free(key);
out:
	ERR_clear_error();
	return ret;
}
