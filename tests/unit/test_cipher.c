/*
 * test_cipher.c - known-answer tests for fs/cipher.c: the Crypt4GH
 * worked example from tests/data/crypt4gh/README.txt (X25519, BLAKE2b-512,
 * header packet and data segment), RFC 8439 ChaCha20-Poly1305, the KDF
 * known answers of crypt4gh-notes section 4, SHA-256, and the failure
 * paths (tag failure wipes, low-order peer key refused).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cipher.h"

/* Decode a hex string of exactly 2 * len digits into out. */
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

static void assert_hex(const uint8_t *data, size_t len, const char *hex)
{
	char *buf = malloc(2 * len + 1);

	assert_non_null(buf);
	cipher_hex(data, len, buf);
	assert_string_equal(buf, hex);
	free(buf);
}

/* enc/size-1.bin.c4gh, as printed in the README's worked example. */
static const char size1_file_hex[] =
	"637279707434676801000000010000006c00000000000000f854ebe0c38ab2b6"
	"001124101eaeadb75a76302c373444736a4cd210ea921600e39e0c3871a79116"
	"b94e725a50c6b3fa9533b5dabc625263476257b15f509d6d65ca1bb1965dd50a"
	"53ee8961988be240680fab70256c8a1eaacd518c33c2fef6b465efd29598adef"
	"cb64d5ae29a7f70228af36389976e714fe7f6610a637c48c6c";

static const char r1_sk_hex[] =
	"8a5d0118e8f393bbee0696a85c446ebb082635edba08f09e4e1a813c08c28ad2";
static const char r1_pk_hex[] =
	"f164d31345129f2bf627921de444e42ec3b6b4645fdbc66c4f25fd734afb9d10";
static const char seller_pk_hex[] =
	"f854ebe0c38ab2b6001124101eaeadb75a76302c373444736a4cd210ea921600";
static const char dh_hex[] =
	"a0cf6f47b3544612b1c3dcf780d0e9091c98c2495163d773517fd1162706a968";
static const char blake_hex[] =
	"8d532901b90b0138ecebb457372e448d5388add0a9f1124d2895bf5ef2cb6055"
	"a87612516c369662fcc0a9b5d4a833224f303941bf85902bccd053ba1c106a00";
static const char packet_pt_hex[] =
	"0000000000000000730c25a76b1edc6799cecef5cf7088367fc11669c68969ee"
	"d4099409780d67a2";

static void test_cipher_x25519_public_worked_example(void **state)
{
	uint8_t sk[32], pk[32];

	(void)state;
	unhex(r1_sk_hex, sk, 32);
	assert_int_equal(cipher_x25519_public(sk, pk), 0);
	assert_hex(pk, 32, r1_pk_hex);
}

static void test_cipher_x25519_shared_worked_example(void **state)
{
	uint8_t sk[32], peer[32], shared[32];

	(void)state;
	unhex(r1_sk_hex, sk, 32);
	unhex(seller_pk_hex, peer, 32);
	assert_int_equal(cipher_x25519_shared(sk, peer, shared), 0);
	assert_hex(shared, 32, dh_hex);
}

static void test_cipher_blake2b512_worked_example(void **state)
{
	uint8_t in[96], out[64];

	(void)state;
	unhex(dh_hex, in, 32);
	unhex(r1_pk_hex, in + 32, 32);
	unhex(seller_pk_hex, in + 64, 32);
	assert_int_equal(cipher_blake2b512(in, sizeof(in), out), 0);
	assert_hex(out, 64, blake_hex);
}

/* The whole chain: header packet, then the data segment, of size-1. */
static void test_cipher_aead_decrypt_worked_example(void **state)
{
	uint8_t file[153], sk[32], pk[32], dh[32], kin[96], k64[64];
	uint8_t pt[40], seg_pt[1];

	(void)state;
	unhex(size1_file_hex, file, sizeof(file));
	unhex(r1_sk_hex, sk, 32);

	/* packet: len(4) method(4) writer_pk(32) nonce(12) ct(40) tag(16) */
	assert_int_equal(file[16], 108);
	assert_int_equal(cipher_x25519_shared(sk, file + 24, dh), 0);
	assert_int_equal(cipher_x25519_public(sk, pk), 0);
	memcpy(kin, dh, 32);
	memcpy(kin + 32, pk, 32);
	memcpy(kin + 64, file + 24, 32);
	assert_int_equal(cipher_blake2b512(kin, sizeof(kin), k64), 0);

	assert_int_equal(cipher_aead_decrypt(k64, file + 56, file + 68,
					     56, pt), 0);
	assert_hex(pt, 40, packet_pt_hex);

	/* segment at 124: nonce(12) ct(1) tag(16), data key = pt[8..40) */
	assert_int_equal(cipher_aead_decrypt(pt + 8, file + 124, file + 136,
					     17, seg_pt), 0);
	assert_int_equal(seg_pt[0], 0x7c);
}

/* RFC 8439 section 2.8.2 key, nonce and plaintext. */
static const char rfc_pt[] =
	"Ladies and Gentlemen of the class of '99: If I could offer you "
	"only one tip for the future, sunscreen would be it.";
static const char rfc_nonce_hex[] = "070000004041424344454647";
/*
 * The ciphertext is the RFC's (it does not depend on the AAD).  Our API
 * has no AAD, so the tag is the one for an empty AAD, computed with an
 * independent Poly1305 written from the RFC (the RFC's own tag,
 * 1ae10b594f09e26a7e902ecbd0600691, covers its 12-byte AAD).
 */
static const char rfc_ct_hex[] =
	"d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
	"3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
	"92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
	"3ff4def08e4b7a9de576d26586cec64b6116"
	"6a23a4681fd59456aea1d29f82477216";

static void rfc_key(uint8_t key[32])
{
	int i;

	for (i = 0; i < 32; i++)
		key[i] = (uint8_t)(0x80 + i);
}

static void test_cipher_aead_encrypt_rfc8439(void **state)
{
	size_t len = strlen(rfc_pt);
	uint8_t key[32], nonce[12], ct[114 + 16];

	(void)state;
	assert_int_equal(len, 114);
	rfc_key(key);
	unhex(rfc_nonce_hex, nonce, 12);
	assert_int_equal(cipher_aead_encrypt(key, nonce, rfc_pt, len, ct), 0);
	assert_hex(ct, sizeof(ct), rfc_ct_hex);
}

static void test_cipher_aead_decrypt_rfc8439(void **state)
{
	uint8_t key[32], nonce[12], ct[130], pt[114];

	(void)state;
	rfc_key(key);
	unhex(rfc_nonce_hex, nonce, 12);
	unhex(rfc_ct_hex, ct, sizeof(ct));
	assert_int_equal(cipher_aead_decrypt(key, nonce, ct, sizeof(ct), pt),
			 0);
	assert_memory_equal(pt, rfc_pt, 114);
}

static void test_cipher_aead_decrypt_bad_tag_wipes(void **state)
{
	uint8_t key[32], nonce[12], ct[130], pt[114], zero[114];
	size_t i;

	(void)state;
	rfc_key(key);
	unhex(rfc_nonce_hex, nonce, 12);
	unhex(rfc_ct_hex, ct, sizeof(ct));
	memset(zero, 0, sizeof(zero));

	/* A flipped tag bit, then a flipped ciphertext bit. */
	for (i = 0; i < 2; i++) {
		size_t pos = i == 0 ? 129 : 5;

		ct[pos] ^= 0x01;
		memset(pt, 0xaa, sizeof(pt));
		assert_int_equal(cipher_aead_decrypt(key, nonce, ct,
						     sizeof(ct), pt),
				 -EBADMSG);
		assert_memory_equal(pt, zero, sizeof(pt));
		ct[pos] ^= 0x01;
	}

	/* Shorter than a tag. */
	assert_int_equal(cipher_aead_decrypt(key, nonce, ct, 15, pt),
			 -EBADMSG);
}

static void test_cipher_aead_roundtrip_empty(void **state)
{
	uint8_t key[32], nonce[12], ct[16], pt[1];

	(void)state;
	memset(key, 7, sizeof(key));
	memset(nonce, 9, sizeof(nonce));
	assert_int_equal(cipher_aead_encrypt(key, nonce, "", 0, ct), 0);
	assert_int_equal(cipher_aead_decrypt(key, nonce, ct, 16, pt), 0);
	nonce[0] ^= 1;
	assert_int_equal(cipher_aead_decrypt(key, nonce, ct, 16, pt),
			 -EBADMSG);
}

static void test_cipher_x25519_low_order_peer(void **state)
{
	uint8_t sk[32], peer[32], shared[32];

	(void)state;
	unhex(r1_sk_hex, sk, 32);

	memset(peer, 0, sizeof(peer));
	memset(shared, 0xaa, sizeof(shared));
	assert_int_equal(cipher_x25519_shared(sk, peer, shared), -EINVAL);

	/* u = 1 is of order 1 too. */
	peer[0] = 1;
	assert_int_equal(cipher_x25519_shared(sk, peer, shared), -EINVAL);
}

static void test_cipher_x25519_keypair_agrees(void **state)
{
	uint8_t a_sk[32], a_pk[32], b_sk[32], b_pk[32], pk[32];
	uint8_t s1[32], s2[32];

	(void)state;
	assert_int_equal(cipher_x25519_keypair(a_sk, a_pk), 0);
	assert_int_equal(cipher_x25519_keypair(b_sk, b_pk), 0);
	assert_int_equal(cipher_x25519_public(a_sk, pk), 0);
	assert_memory_equal(pk, a_pk, 32);
	assert_memory_not_equal(a_sk, b_sk, 32);
	assert_int_equal(cipher_x25519_shared(a_sk, b_pk, s1), 0);
	assert_int_equal(cipher_x25519_shared(b_sk, a_pk, s2), 0);
	assert_memory_equal(s1, s2, 32);
}

static void test_cipher_scrypt_kat(void **state)
{
	uint8_t salt[16], key[32];
	int i;

	(void)state;
	for (i = 0; i < 16; i++)
		salt[i] = (uint8_t)i;
	assert_int_equal(cipher_scrypt("crypt4gh-kat", 12, salt, 16, 16384,
				       8, 1, key, 32), 0);
	assert_hex(key, 32, "aba54c7d9b8ec85d8b0d5dcf1b88b63a"
			    "53138e3fe54b292d98157c792b9f0bd6");
}

static void test_cipher_scrypt_readme_recipient2(void **state)
{
	uint8_t salt[16], key[32];
	const char *pass = "recipient2-test-passphrase";

	(void)state;
	unhex("387980f6bf720a4a37750efa812d7064", salt, 16);
	assert_int_equal(cipher_scrypt(pass, strlen(pass), salt, 16, 16384,
				       8, 1, key, 32), 0);
	assert_hex(key, 32, "778a2ad079bc432e8c76093676a19685"
			    "a4a13fc618af3fa72b3ef07111cb1f52");
}

static void test_cipher_scrypt_bad_params(void **state)
{
	uint8_t key[32];

	(void)state;
	/* N must be a power of two; huge N is past the memory ceiling. */
	assert_int_equal(cipher_scrypt("x", 1, "s", 1, 1000, 8, 1, key, 32),
			 -EINVAL);
	assert_int_equal(cipher_scrypt("x", 1, "s", 1, 1u << 24, 8, 1,
				       key, 32), -EINVAL);
}

static void test_cipher_pbkdf2_kat(void **state)
{
	uint8_t salt[16], key[32];
	int i;

	(void)state;
	for (i = 0; i < 16; i++)
		salt[i] = (uint8_t)i;
	assert_int_equal(cipher_pbkdf2_sha256("crypt4gh-kat", 12, salt, 16,
					      100000, key, 32), 0);
	assert_hex(key, 32, "283fdaa42089844a3be857ab03d5e161"
			    "a65dff0dd3a05bd7b6d4734caeb8f7a4");
	assert_int_equal(cipher_pbkdf2_sha256("x", 1, salt, 16, 0, key, 32),
			 -EINVAL);
}

static void test_cipher_sha256_oneshot_and_incremental(void **state)
{
	static const char abc_hex[] =
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	struct cipher_sha256 *ctx;
	uint8_t d[32];

	(void)state;
	assert_int_equal(cipher_sha256("abc", 3, d), 0);
	assert_hex(d, 32, abc_hex);

	assert_int_equal(cipher_sha256_new(&ctx), 0);
	assert_int_equal(cipher_sha256_update(ctx, "a", 1), 0);
	assert_int_equal(cipher_sha256_update(ctx, "", 0), 0);
	assert_int_equal(cipher_sha256_update(ctx, "bc", 2), 0);
	assert_int_equal(cipher_sha256_final(ctx, d), 0);
	assert_hex(d, 32, abc_hex);

	assert_int_equal(cipher_sha256("", 0, d), 0);
	assert_hex(d, 32, "e3b0c44298fc1c149afbf4c8996fb924"
			  "27ae41e4649b934ca495991b7852b855");

	/* Freeing an unfinished context (and NULL) is fine. */
	assert_int_equal(cipher_sha256_new(&ctx), 0);
	cipher_sha256_free(ctx);
	cipher_sha256_free(NULL);
}

static void test_cipher_memeq_and_hex(void **state)
{
	char hex[9];

	(void)state;
	assert_int_equal(cipher_memeq("abcd", "abcd", 4), 1);
	assert_int_equal(cipher_memeq("abcd", "abce", 4), 0);
	cipher_hex("\x00\x9f\xa0\xff", 4, hex);
	assert_string_equal(hex, "009fa0ff");
	cipher_hex("", 0, hex);
	assert_string_equal(hex, "");
}

static void test_cipher_random_and_wipe(void **state)
{
	uint8_t a[32], b[32], zero[32];

	(void)state;
	memset(zero, 0, sizeof(zero));
	assert_int_equal(cipher_random(a, sizeof(a)), 0);
	assert_int_equal(cipher_random(b, sizeof(b)), 0);
	assert_memory_not_equal(a, b, sizeof(a));
	cipher_wipe(a, sizeof(a));
	assert_memory_equal(a, zero, sizeof(a));
	cipher_wipe(NULL, 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cipher_x25519_public_worked_example),
		cmocka_unit_test(test_cipher_x25519_shared_worked_example),
		cmocka_unit_test(test_cipher_blake2b512_worked_example),
		cmocka_unit_test(test_cipher_aead_decrypt_worked_example),
		cmocka_unit_test(test_cipher_aead_encrypt_rfc8439),
		cmocka_unit_test(test_cipher_aead_decrypt_rfc8439),
		cmocka_unit_test(test_cipher_aead_decrypt_bad_tag_wipes),
		cmocka_unit_test(test_cipher_aead_roundtrip_empty),
		cmocka_unit_test(test_cipher_x25519_low_order_peer),
		cmocka_unit_test(test_cipher_x25519_keypair_agrees),
		cmocka_unit_test(test_cipher_scrypt_kat),
		cmocka_unit_test(test_cipher_scrypt_readme_recipient2),
		cmocka_unit_test(test_cipher_scrypt_bad_params),
		cmocka_unit_test(test_cipher_pbkdf2_kat),
		cmocka_unit_test(test_cipher_sha256_oneshot_and_incremental),
		cmocka_unit_test(test_cipher_memeq_and_hex),
		cmocka_unit_test(test_cipher_random_and_wipe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
