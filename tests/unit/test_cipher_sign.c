/*
 * test_cipher_sign.c - Ed25519 in fs/cipher_sign.c against RFC 8032
 * section 7.1 tests 1 and 2, plus the refusal of altered messages,
 * signatures and keys.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cipher.h"

static void unhex(const char *hex, uint8_t *out, size_t len)
{
	size_t i;

	assert_int_equal(strlen(hex), 2 * len);
	for (i = 0; i < len; i++) {
		unsigned int v;

		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

/* RFC 8032 section 7.1, TEST 1 (empty message). */
static const char t1_sk[] =
	"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
static const char t1_pk[] =
	"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
static const char t1_sig[] =
	"e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
	"5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

/* RFC 8032 section 7.1, TEST 2 (message 0x72). */
static const char t2_sk[] =
	"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
static const char t2_pk[] =
	"3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";
static const char t2_sig[] =
	"92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
	"085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00";

static void test_cipher_sign_rfc8032_test1(void **state)
{
	uint8_t sk[32], pk[32], want_pk[32], sig[64], want_sig[64];

	(void)state;
	unhex(t1_sk, sk, 32);
	unhex(t1_pk, want_pk, 32);
	unhex(t1_sig, want_sig, 64);

	assert_int_equal(cipher_ed25519_public(sk, pk), 0);
	assert_memory_equal(pk, want_pk, 32);
	assert_int_equal(cipher_ed25519_sign(sk, "", 0, sig), 0);
	assert_memory_equal(sig, want_sig, 64);
	assert_int_equal(cipher_ed25519_verify(pk, "", 0, sig), 0);
}

static void test_cipher_sign_rfc8032_test2(void **state)
{
	uint8_t sk[32], pk[32], sig[64], want_sig[64];
	const uint8_t msg[1] = { 0x72 };

	(void)state;
	unhex(t2_sk, sk, 32);
	unhex(t2_pk, pk, 32);
	unhex(t2_sig, want_sig, 64);

	assert_int_equal(cipher_ed25519_sign(sk, msg, 1, sig), 0);
	assert_memory_equal(sig, want_sig, 64);
	assert_int_equal(cipher_ed25519_verify(pk, msg, 1, want_sig), 0);
}

static void test_cipher_sign_verify_rejects_changes(void **state)
{
	uint8_t pk[32], other_pk[32], sig[64];
	const uint8_t msg[1] = { 0x72 };
	const uint8_t msg2[1] = { 0x73 };

	(void)state;
	unhex(t2_pk, pk, 32);
	unhex(t1_pk, other_pk, 32);
	unhex(t2_sig, sig, 64);

	assert_int_equal(cipher_ed25519_verify(pk, msg2, 1, sig), -EBADMSG);
	assert_int_equal(cipher_ed25519_verify(pk, msg, 0, sig), -EBADMSG);
	assert_int_equal(cipher_ed25519_verify(other_pk, msg, 1, sig),
			 -EBADMSG);
	sig[0] ^= 0x01;
	assert_int_equal(cipher_ed25519_verify(pk, msg, 1, sig), -EBADMSG);
	sig[0] ^= 0x01;
	/* S >= L (non-canonical) must be refused. */
	sig[63] |= 0xe0;
	assert_int_equal(cipher_ed25519_verify(pk, msg, 1, sig), -EBADMSG);
}

static void test_cipher_sign_keypair_roundtrip(void **state)
{
	uint8_t sk[32], pk[32], pk2[32], sig[64];
	static const char msg[] = "a licence payload";

	(void)state;
	assert_int_equal(cipher_ed25519_keypair(sk, pk), 0);
	assert_int_equal(cipher_ed25519_public(sk, pk2), 0);
	assert_memory_equal(pk, pk2, 32);
	assert_int_equal(cipher_ed25519_sign(sk, msg, strlen(msg), sig), 0);
	assert_int_equal(cipher_ed25519_verify(pk, msg, strlen(msg), sig), 0);
	assert_int_equal(cipher_ed25519_verify(pk, msg, strlen(msg) - 1, sig),
			 -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cipher_sign_rfc8032_test1),
		cmocka_unit_test(test_cipher_sign_rfc8032_test2),
		cmocka_unit_test(test_cipher_sign_verify_rejects_changes),
		cmocka_unit_test(test_cipher_sign_keypair_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
