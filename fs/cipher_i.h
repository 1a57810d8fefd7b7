/*
 * cipher_i.h - what cipher.c and cipher_sign.c share (private to the
 * cipher module).
 */
#ifndef MARKETFS_CIPHER_I_H
#define MARKETFS_CIPHER_I_H

#include <stdint.h>

/*
 * The raw public key of a secret key of OpenSSL type (EVP_PKEY_X25519,
 * EVP_PKEY_ED25519).  ret_pk is cleared on failure.
 */
int cipher_raw_public(int type, const uint8_t sk[32], uint8_t ret_pk[32]);

/* A fresh random secret key and its public key, through public_of. */
int cipher_raw_keypair(int (*public_of)(const uint8_t *, uint8_t *),
		       uint8_t ret_sk[32], uint8_t ret_pk[32]);

#endif
