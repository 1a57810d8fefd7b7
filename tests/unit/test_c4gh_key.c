/*
 * test_c4gh_key.c - Crypt4GH key files (fs/c4gh_key.c): the reference
 * keys in tests/data/crypt4gh/keys, other armour styles, a hand-built
 * pbkdf2 key, bcrypt refusal, malformed keys, and write/read round
 * trips, including byte-for-byte equality with reference-written files.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "b64.h"
#include "c4gh.h"
#include "cipher.h"
#include "util.h"

#define R2_PASS		"recipient2-test-passphrase"

static const char r1_pk_hex[] =
	"f164d31345129f2bf627921de444e42ec3b6b4645fdbc66c4f25fd734afb9d10";
static const char r1_sk_hex[] =
	"8a5d0118e8f393bbee0696a85c446ebb082635edba08f09e4e1a813c08c28ad2";
static const char r2_pk_hex[] =
	"fad175eed978efd30d3a3cbd1ca36a6d7e9264e8a12557661e7e84bd761d3462";
static const char r2_sk_hex[] =
	"4178fc77f48635b63bbe380b8b522a189be74e90dd8074e75d4ff84d22b6c7f9";
static const char seller_pk_hex[] =
	"f854ebe0c38ab2b6001124101eaeadb75a76302c373444736a4cd210ea921600";

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
	char buf[129];

	assert_true(len <= 64);
	cipher_hex(data, len, buf);
	assert_string_equal(buf, hex);
}

/* Path of a key file in the shared test data; static buffer. */
static const char *key_path(const char *name)
{
	static char path[4096];
	const char *dir = getenv("MARKETFS_TESTDATA");

	assert_non_null(dir);
	snprintf(path, sizeof(path), "%s/crypt4gh/keys/%s", dir, name);
	return path;
}

/* A noinline wrapper: GCC 12 otherwise warns of a dangling pointer. */
static __attribute__((noinline)) char *read_text(const char *path,
						  size_t *ret_len)
{
	char *text = NULL;
	int ret;

	ret = util_read_file(path, 1 << 16, &text, ret_len);
	assert_int_equal(ret, 0);
	return text;
}

/* The decoded bytes of a reference key file. */
static uint8_t *key_bytes(const char *name, size_t *ret_len)
{
	size_t len, b;
	char *text = read_text(key_path(name), &len), *line, *end;
	uint8_t *data;

	line = strchr(text, '\n') + 1;
	end = strchr(line, '\n');
	b = (size_t)(end - line);
	assert_int_equal(b64_decode(line, b, B64_STD, &data, ret_len), 0);
	free(text);
	return data;
}

/* Armour bytes as "-----BEGIN label-----", lines of width, END line. */
static char *armour(const uint8_t *data, size_t len, const char *label,
		    size_t width, const char *eol)
{
	char *b64, *text;
	size_t n, i, cap, o = 0;

	assert_int_equal(b64_encode(data, len, B64_STD, &b64), 0);
	n = strlen(b64);
	cap = 2 * strlen(label) + 64 + n + (n / width + 3) * strlen(eol);
	text = malloc(cap);
	assert_non_null(text);
	o += (size_t)sprintf(text + o, "-----BEGIN %s-----%s", label, eol);
	for (i = 0; i < n; i += width) {
		size_t w = n - i < width ? n - i : width;

		memcpy(text + o, b64 + i, w);
		o += w;
		o += (size_t)sprintf(text + o, "%s", eol);
	}
	o += (size_t)sprintf(text + o, "-----END %s-----%s", label, eol);
	assert_true(o < cap);
	free(b64);
	return text;
}

static void test_c4gh_key_reference_unprotected(void **state)
{
	static const struct {
		const char *name, *pk_hex;
	} keys[] = {
		{ "recipient1", r1_pk_hex },
		{ "seller", seller_pk_hex },
	};
	uint8_t sk[32], pk[32], file_pk[32], want_sk[32];
	char name[64];
	size_t i, len;
	char *text;

	(void)state;
	for (i = 0; i < 2; i++) {
		snprintf(name, sizeof(name), "%s.sec", keys[i].name);
		text = read_text(key_path(name), &len);
		assert_int_equal(c4gh_seckey_needs_passphrase(text, len), 0);
		free(text);

		assert_int_equal(c4gh_seckey_read_file(key_path(name), NULL, 0,
						       sk), 0);
		assert_int_equal(cipher_x25519_public(sk, pk), 0);
		assert_hex(pk, 32, keys[i].pk_hex);

		snprintf(name, sizeof(name), "%s.pub", keys[i].name);
		assert_int_equal(c4gh_pubkey_read_file(key_path(name),
						       file_pk), 0);
		assert_memory_equal(pk, file_pk, 32);
	}
	/* recipient1's secret is in the README's worked example. */
	assert_int_equal(c4gh_seckey_read_file(key_path("recipient1.sec"),
					       NULL, 0, sk), 0);
	unhex(r1_sk_hex, want_sk, 32);
	assert_memory_equal(sk, want_sk, 32);
}

static void test_c4gh_key_reference_scrypt(void **state)
{
	uint8_t sk[32], pk[32], file_pk[32], want_sk[32];
	const char *path = key_path("recipient2.sec");
	size_t len;
	char *text;

	(void)state;
	text = read_text(path, &len);
	assert_int_equal(c4gh_seckey_needs_passphrase(text, len), 1);
	free(text);

	assert_int_equal(c4gh_seckey_read_file(path, R2_PASS,
					       strlen(R2_PASS), sk), 0);
	unhex(r2_sk_hex, want_sk, 32);
	assert_memory_equal(sk, want_sk, 32);
	assert_int_equal(cipher_x25519_public(sk, pk), 0);
	assert_hex(pk, 32, r2_pk_hex);
	assert_int_equal(c4gh_pubkey_read_file(key_path("recipient2.pub"),
					       file_pk), 0);
	assert_memory_equal(pk, file_pk, 32);
}

static void test_c4gh_key_wrong_or_no_passphrase(void **state)
{
	const char *path = key_path("recipient2.sec");
	uint8_t sk[32], zero[32];

	(void)state;
	memset(zero, 0, sizeof(zero));
	memset(sk, 0xaa, sizeof(sk));
	assert_int_equal(c4gh_seckey_read_file(path, "wrong", 5, sk),
			 -EKEYREJECTED);
	assert_memory_equal(sk, zero, 32);
	/* The right passphrase plus a newline is a different passphrase. */
	assert_int_equal(c4gh_seckey_read_file(path, R2_PASS "\n",
					       strlen(R2_PASS) + 1, sk),
			 -EKEYREJECTED);
	assert_int_equal(c4gh_seckey_read_file(path, NULL, 0, sk),
			 -EKEYREJECTED);
	assert_string_equal(c4gh_strerror(-EKEYREJECTED),
			    "wrong passphrase or corrupt key");
}

static void test_c4gh_key_other_armour_styles(void **state)
{
	static const char *eols[] = { "\n", "\r\n" };
	uint8_t *data, sk[32], want_sk[32];
	size_t len, i;
	char *text;

	(void)state;
	unhex(r2_sk_hex, want_sk, 32);
	data = key_bytes("recipient2.sec", &len);

	/* Go/Java/htslib style: other label, 64 columns, and CRLF. */
	for (i = 0; i < 2; i++) {
		text = armour(data, len, "CRYPT4GH ENCRYPTED PRIVATE KEY", 64,
			      eols[i]);
		assert_non_null(strchr(text, '\n'));
		memset(sk, 0, sizeof(sk));
		assert_int_equal(c4gh_seckey_parse(text, strlen(text), R2_PASS,
						   strlen(R2_PASS), sk), 0);
		assert_memory_equal(sk, want_sk, 32);
		free(text);
	}

	/* Very short lines, blank lines, indentation, no final newline. */
	text = armour(data, len, "ANYTHING", 7, "\n\n  ");
	text[strlen(text) - 3] = '\0';
	assert_int_equal(c4gh_seckey_parse(text, strlen(text), R2_PASS,
					   strlen(R2_PASS), sk), 0);
	assert_memory_equal(sk, want_sk, 32);
	free(text);
	free(data);
}

static void test_c4gh_key_pubkey_armour_styles(void **state)
{
	static const char wrapped[] =
		"\r\n-----BEGIN SOME KEY-----\r\n"
		"8WTTE0USnyv2J5Id5ETkLsO2tGRf\r\n"
		"   28ZsTyX9c0r7nRA=\r\n\r\n"
		"-----END SOME KEY-----";
	uint8_t pk[32];

	(void)state;
	assert_int_equal(c4gh_pubkey_parse(wrapped, strlen(wrapped), pk), 0);
	assert_hex(pk, 32, r1_pk_hex);
}

static uint8_t *put_string(uint8_t *p, const void *s, size_t len)
{
	*p++ = (uint8_t)(len >> 8);
	*p++ = (uint8_t)len;
	memcpy(p, s, len);
	return p + len;
}

/*
 * A c4gh-v1 key with the given kdf, rounds and salt 00..0f, cipher
 * chacha20_poly1305 and the secret sealed under dk (nonce 0x11...).
 */
static size_t build_protected(uint8_t *buf, const char *kdf,
			      uint32_t rounds, const uint8_t dk[32],
			      const uint8_t sk[32])
{
	uint8_t opts[20], sealed[60], *p = buf;
	int i;

	opts[0] = (uint8_t)(rounds >> 24);
	opts[1] = (uint8_t)(rounds >> 16);
	opts[2] = (uint8_t)(rounds >> 8);
	opts[3] = (uint8_t)rounds;
	for (i = 0; i < 16; i++)
		opts[4 + i] = (uint8_t)i;
	memset(sealed, 0x11, 12);
	assert_int_equal(cipher_aead_encrypt(dk, sealed, sk, 32, sealed + 12),
			 0);

	memcpy(p, "c4gh-v1", 7);
	p += 7;
	p = put_string(p, kdf, strlen(kdf));
	p = put_string(p, opts, sizeof(opts));
	p = put_string(p, "chacha20_poly1305", 17);
	p = put_string(p, sealed, sizeof(sealed));
	return (size_t)(p - buf);
}

static void test_c4gh_key_pbkdf2_handmade(void **state)
{
	uint8_t buf[256], dk[32], sk[32], out[32];
	size_t len;
	char *text;

	(void)state;
	/* The crypt4gh-notes KAT: pbkdf2("crypt4gh-kat", 00..0f, 100000). */
	unhex("283fdaa42089844a3be857ab03d5e161"
	      "a65dff0dd3a05bd7b6d4734caeb8f7a4", dk, 32);
	unhex(r1_sk_hex, sk, 32);
	len = build_protected(buf, "pbkdf2_hmac_sha256", 100000, dk, sk);
	text = armour(buf, len, "CRYPT4GH PRIVATE KEY", 1000, "\n");

	assert_int_equal(c4gh_seckey_needs_passphrase(text, strlen(text)), 1);
	assert_int_equal(c4gh_seckey_parse(text, strlen(text), "crypt4gh-kat",
					   12, out), 0);
	assert_memory_equal(out, sk, 32);
	assert_int_equal(c4gh_seckey_parse(text, strlen(text), "crypt4gh-kaT",
					   12, out), -EKEYREJECTED);
	free(text);

	/* Zero rounds is malformed, not a free pass. */
	len = build_protected(buf, "pbkdf2_hmac_sha256", 0, dk, sk);
	text = armour(buf, len, "CRYPT4GH PRIVATE KEY", 1000, "\n");
	assert_int_equal(c4gh_seckey_parse(text, strlen(text), "crypt4gh-kat",
					   12, out), -EBADMSG);
	free(text);
}

static void test_c4gh_key_bcrypt_unsupported(void **state)
{
	uint8_t buf[256], dk[32], sk[32], out[32];
	size_t len;
	char *text;

	(void)state;
	unhex("58746928d37bfd6624dad44cf8e535a0"
	      "bd90f3558c6eab5202d914fb7051565b", dk, 32);
	unhex(r1_sk_hex, sk, 32);
	len = build_protected(buf, "bcrypt", 100, dk, sk);
	text = armour(buf, len, "CRYPT4GH PRIVATE KEY", 1000, "\n");

	assert_int_equal(c4gh_seckey_needs_passphrase(text, strlen(text)),
			 -EPROTONOSUPPORT);
	assert_int_equal(c4gh_seckey_parse(text, strlen(text), "crypt4gh-kat",
					   12, out), -EPROTONOSUPPORT);
	assert_non_null(strstr(c4gh_strerror(-EPROTONOSUPPORT), "bcrypt"));
	assert_non_null(strstr(c4gh_strerror(-EPROTONOSUPPORT),
			       "none, scrypt, pbkdf2_hmac_sha256"));
	free(text);

	/* A name that is only a prefix of a known one is not that one. */
	len = build_protected(buf, "scryp", 0, dk, sk);
	text = armour(buf, len, "CRYPT4GH PRIVATE KEY", 1000, "\n");
	assert_int_equal(c4gh_seckey_parse(text, strlen(text), "x", 1, out),
			 -EPROTONOSUPPORT);
	free(text);
}

static void test_c4gh_key_truncated_and_garbage(void **state)
{
	static const char *garbage[] = {
		"",
		"hello\n",
		"-----BEGIN CRYPT4GH PRIVATE KEY-----\n",
		"-----BEGIN CRYPT4GH PRIVATE KEY-----\n"
		"YzRnaC12MQ==\n",
		"-----BEGIN CRYPT4GH PRIVATE KEY-----\n"
		"not base64!\n-----END CRYPT4GH PRIVATE KEY-----\n",
		"-----BEGIN CRYPT4GH PRIVATE KEY-----\n"
		"YzRnaC12MQ\n-----END CRYPT4GH PRIVATE KEY-----\n",
		"YzRnaC12MQ==\n-----END CRYPT4GH PRIVATE KEY-----\n",
		"-----BEGIN X-----\n-----END X-----\n",
	};
	uint8_t *data, sk[32], pk[32];
	size_t len, n, i;
	char *text;

	(void)state;
	for (i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
		assert_int_equal(c4gh_seckey_parse(garbage[i],
						   strlen(garbage[i]), "x", 1,
						   sk), -EBADMSG);
		assert_int_equal(c4gh_pubkey_parse(garbage[i],
						   strlen(garbage[i]), pk),
				 -EBADMSG);
	}

	/* Every proper prefix of recipient2's key bytes is malformed. */
	data = key_bytes("recipient2.sec", &len);
	for (n = 0; n < len; n++) {
		text = armour(data, n, "CRYPT4GH PRIVATE KEY", 64, "\n");
		assert_int_equal(c4gh_seckey_parse(text, strlen(text), R2_PASS,
						   strlen(R2_PASS), sk),
				 -EBADMSG);
		free(text);
	}
	free(data);

	/* recipient1: cut inside the comment, or a byte after it. */
	data = key_bytes("recipient1.sec", &len);
	text = armour(data, len - 1, "CRYPT4GH PRIVATE KEY", 64, "\n");
	assert_int_equal(c4gh_seckey_parse(text, strlen(text), NULL, 0, sk),
			 -EBADMSG);
	free(text);
	data = realloc(data, len + 1);
	assert_non_null(data);
	data[len] = 0;
	text = armour(data, len + 1, "CRYPT4GH PRIVATE KEY", 64, "\n");
	assert_int_equal(c4gh_seckey_parse(text, strlen(text), NULL, 0, sk),
			 -EBADMSG);
	free(text);
	free(data);

	/* A public key is not a secret key and the other way round. */
	text = read_text(key_path("recipient1.pub"), &len);
	assert_int_equal(c4gh_seckey_parse(text, len, NULL, 0, sk), -EBADMSG);
	free(text);
	text = read_text(key_path("recipient1.sec"), &len);
	assert_int_equal(c4gh_pubkey_parse(text, len, pk), -EBADMSG);
	free(text);
}

static void test_c4gh_key_kdf_cipher_mismatch(void **state)
{
	uint8_t buf[128], *p = buf, sk[32];
	char *text;

	(void)state;
	/* kdf none, cipher chacha20_poly1305. */
	memcpy(p, "c4gh-v1", 7);
	p += 7;
	p = put_string(p, "none", 4);
	p = put_string(p, "chacha20_poly1305", 17);
	memset(sk, 1, 32);
	p = put_string(p, sk, 32);
	text = armour(buf, (size_t)(p - buf), "CRYPT4GH PRIVATE KEY", 64,
		      "\n");
	assert_int_equal(c4gh_seckey_parse(text, strlen(text), NULL, 0, sk),
			 -EBADMSG);
	free(text);

	/* kdf scrypt, cipher none. */
	p = buf;
	memcpy(p, "c4gh-v1", 7);
	p += 7;
	p = put_string(p, "scrypt", 6);
	p = put_string(p, "\0\0\0\0saltsaltsaltsalt", 20);
	p = put_string(p, "none", 4);
	p = put_string(p, sk, 32);
	text = armour(buf, (size_t)(p - buf), "CRYPT4GH PRIVATE KEY", 64,
		      "\n");
	assert_int_equal(c4gh_seckey_parse(text, strlen(text), "x", 1, sk),
			 -EBADMSG);
	free(text);
}

static char tmpdir[] = "/tmp/test_c4gh_key.XXXXXX";

static int setup_tmpdir(void **state)
{
	(void)state;
	umask(022);
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_tmpdir(void **state)
{
	char cmd[256];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static const char *tmp_path(const char *name)
{
	static char path[512];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	return path;
}

static void assert_same_file(const char *a, const char *b)
{
	size_t alen, blen;
	char *atext = read_text(a, &alen), *btext = read_text(b, &blen);

	assert_int_equal(alen, blen);
	assert_memory_equal(atext, btext, alen);
	free(atext);
	free(btext);
}

static mode_t file_mode(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

static void test_c4gh_key_write_matches_reference(void **state)
{
	uint8_t sk[32], pk[32];

	(void)state;
	unhex(r1_sk_hex, sk, 32);
	unhex(r1_pk_hex, pk, 32);
	assert_int_equal(c4gh_seckey_write_file(tmp_path("r1.sec"), sk, NULL,
						0, "recipient1 test key"), 0);
	assert_same_file(tmp_path("r1.sec"), key_path("recipient1.sec"));
	assert_int_equal(file_mode(tmp_path("r1.sec")), 0600);

	assert_int_equal(c4gh_pubkey_write_file(tmp_path("r1.pub"), pk), 0);
	assert_same_file(tmp_path("r1.pub"), key_path("recipient1.pub"));
	assert_int_equal(file_mode(tmp_path("r1.pub")), 0644);
}

static void test_c4gh_key_write_scrypt_roundtrip(void **state)
{
	static const char pass[] = "a new passphrase";
	const char *path = tmp_path("new.sec");
	uint8_t sk[32], pk[32], out[32], *data;
	size_t len, b;
	char *text, *line;

	(void)state;
	assert_int_equal(cipher_x25519_keypair(sk, pk), 0);
	assert_int_equal(c4gh_seckey_write_file(path, sk, pass, strlen(pass),
						NULL), 0);
	assert_int_equal(file_mode(path), 0600);
	assert_int_equal(c4gh_seckey_read_file(path, pass, strlen(pass), out),
			 0);
	assert_memory_equal(out, sk, 32);
	assert_int_equal(c4gh_seckey_read_file(path, "nope", 4, out),
			 -EKEYREJECTED);

	/* The reference layout: three lines, scrypt, rounds 0, salt 16. */
	text = read_text(path, &len);
	assert_int_equal(c4gh_seckey_needs_passphrase(text, len), 1);
	assert_true(strncmp(text, "-----BEGIN CRYPT4GH PRIVATE KEY-----\n",
			    37) == 0);
	line = text + 37;
	b = (size_t)(strchr(line, '\n') - line);
	assert_string_equal(line + b + 1,
			    "-----END CRYPT4GH PRIVATE KEY-----\n");
	assert_int_equal(b64_decode(line, b, B64_STD, &data, &len), 0);
	assert_int_equal(len, 7 + 8 + 22 + 19 + 62);
	assert_memory_equal(data, "c4gh-v1\x00\x06scrypt\x00\x14\0\0\0\0", 21);
	assert_memory_equal(data + 37, "\x00\x11" "chacha20_poly1305", 19);
	assert_memory_equal(data + 56, "\x00\x3c", 2);
	free(data);
	free(text);

	/* Refuses to overwrite, and leaves the file alone. */
	assert_int_equal(c4gh_seckey_write_file(path, sk, NULL, 0, NULL),
			 -EEXIST);
	assert_int_equal(c4gh_seckey_read_file(path, pass, strlen(pass), out),
			 0);
	assert_int_equal(c4gh_pubkey_write_file(path, pk), -EEXIST);
}

static void test_c4gh_key_write_none_roundtrip(void **state)
{
	uint8_t sk[32], pk[32], out[32];
	char path[512], pub[512];

	(void)state;
	snprintf(path, sizeof(path), "%s", tmp_path("plain.sec"));
	snprintf(pub, sizeof(pub), "%s", tmp_path("plain.pub"));
	assert_int_equal(cipher_x25519_keypair(sk, pk), 0);
	assert_int_equal(c4gh_seckey_write_file(path, sk, NULL, 0, "c"), 0);
	assert_int_equal(c4gh_seckey_read_file(path, NULL, 0, out), 0);
	assert_memory_equal(out, sk, 32);
	/* A passphrase given for an unprotected key is simply not needed. */
	assert_int_equal(c4gh_seckey_read_file(path, "x", 1, out), 0);

	assert_int_equal(c4gh_pubkey_write_file(pub, pk), 0);
	assert_int_equal(c4gh_pubkey_read_file(pub, out), 0);
	assert_memory_equal(out, pk, 32);
	assert_int_equal(c4gh_pubkey_write_file(pub, pk), -EEXIST);
	assert_int_equal(c4gh_seckey_read_file(tmp_path("missing"), NULL, 0,
					       out), -ENOENT);
}

static void test_c4gh_key_strerror_covers_errnos(void **state)
{
	static const int errs[] = {
		EBADMSG, EPROTONOSUPPORT, ENOKEY, EKEYREJECTED, ENOMEM, EIO,
	};
	size_t i, j;

	(void)state;
	for (i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
		const char *m = c4gh_strerror(-errs[i]);

		assert_non_null(m);
		assert_true(strlen(m) > 5);
		assert_string_equal(m, c4gh_strerror(errs[i]));
		for (j = 0; j < i; j++)
			assert_string_not_equal(m, c4gh_strerror(-errs[j]));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_c4gh_key_reference_unprotected),
		cmocka_unit_test(test_c4gh_key_reference_scrypt),
		cmocka_unit_test(test_c4gh_key_wrong_or_no_passphrase),
		cmocka_unit_test(test_c4gh_key_other_armour_styles),
		cmocka_unit_test(test_c4gh_key_pubkey_armour_styles),
		cmocka_unit_test(test_c4gh_key_pbkdf2_handmade),
		cmocka_unit_test(test_c4gh_key_bcrypt_unsupported),
		cmocka_unit_test(test_c4gh_key_truncated_and_garbage),
		cmocka_unit_test(test_c4gh_key_kdf_cipher_mismatch),
		cmocka_unit_test(test_c4gh_key_write_matches_reference),
		cmocka_unit_test(test_c4gh_key_write_scrypt_roundtrip),
		cmocka_unit_test(test_c4gh_key_write_none_roundtrip),
		cmocka_unit_test(test_c4gh_key_strerror_covers_errnos),
	};

	return cmocka_run_group_tests(tests, setup_tmpdir, teardown_tmpdir);
}
