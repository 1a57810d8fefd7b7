/*
 * test_b64.c - fs/b64.c against the RFC 4648 section 10 vectors, the
 * base64url alphabet, and the strictness rules of include/b64.h.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "b64.h"

struct vec {
	const char *plain;
	const char *std;
	const char *url;
};

/* RFC 4648 section 10, and the same without padding for base64url. */
static const struct vec rfc_vecs[] = {
	{ "", "", "" },
	{ "f", "Zg==", "Zg" },
	{ "fo", "Zm8=", "Zm8" },
	{ "foo", "Zm9v", "Zm9v" },
	{ "foob", "Zm9vYg==", "Zm9vYg" },
	{ "fooba", "Zm9vYmE=", "Zm9vYmE" },
	{ "foobar", "Zm9vYmFy", "Zm9vYmFy" },
};

static void test_b64_encode_rfc4648(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rfc_vecs) / sizeof(rfc_vecs[0]); i++) {
		const struct vec *v = &rfc_vecs[i];
		char *text;

		assert_int_equal(b64_encode(v->plain, strlen(v->plain),
					    B64_STD, &text), 0);
		assert_string_equal(text, v->std);
		free(text);
		assert_int_equal(b64_encode(v->plain, strlen(v->plain),
					    B64_URL, &text), 0);
		assert_string_equal(text, v->url);
		free(text);
	}
}

static void test_b64_decode_rfc4648(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rfc_vecs) / sizeof(rfc_vecs[0]); i++) {
		const struct vec *v = &rfc_vecs[i];
		uint8_t *data;
		size_t len;

		assert_int_equal(b64_decode(v->std, strlen(v->std), B64_STD,
					    &data, &len), 0);
		assert_int_equal(len, strlen(v->plain));
		assert_memory_equal(data, v->plain, len);
		assert_int_equal(data[len], 0);
		free(data);
		assert_int_equal(b64_decode(v->url, strlen(v->url), B64_URL,
					    &data, &len), 0);
		assert_int_equal(len, strlen(v->plain));
		assert_memory_equal(data, v->plain, len);
		free(data);
	}
}

static void test_b64_alphabets_differ(void **state)
{
	static const uint8_t bytes[] = { 0xfb, 0xff, 0xbf };
	uint8_t *data;
	size_t len;
	char *text;

	(void)state;
	assert_int_equal(b64_encode(bytes, 3, B64_STD, &text), 0);
	assert_string_equal(text, "+/+/");
	free(text);
	assert_int_equal(b64_encode(bytes, 3, B64_URL, &text), 0);
	assert_string_equal(text, "-_-_");
	free(text);

	assert_int_equal(b64_decode("-_-_", 4, B64_URL, &data, &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(data, bytes, 3);
	free(data);
	assert_int_equal(b64_decode("-_-_", 4, B64_STD, &data, &len),
			 -EINVAL);
	assert_null(data);
	assert_int_equal(b64_decode("+/+/", 4, B64_URL, &data, &len),
			 -EINVAL);
}

static void test_b64_decode_strict(void **state)
{
	static const char *bad_std[] = {
		"Zg=",		/* short padding */
		"Zg",		/* no padding */
		"Zg===",	/* too much */
		"Z===",		/* one char then padding */
		"====",
		"Zm8=Zm8=",	/* padding in the middle */
		"Zm9v\n",	/* whitespace */
		"Zm 9v",
		"Zh==",		/* non-zero unused bits */
		"Zm9=",
		"Zm9v*A==",
	};
	static const char *bad_url[] = {
		"Zg==",		/* padding is not base64url */
		"Zm8=",
		"Z",		/* impossible length */
		"Zh",		/* non-zero unused bits */
		"Zm+v",
	};
	uint8_t *data;
	size_t len, i;

	(void)state;
	for (i = 0; i < sizeof(bad_std) / sizeof(bad_std[0]); i++)
		assert_int_equal(b64_decode(bad_std[i], strlen(bad_std[i]),
					    B64_STD, &data, &len), -EINVAL);
	for (i = 0; i < sizeof(bad_url) / sizeof(bad_url[0]); i++)
		assert_int_equal(b64_decode(bad_url[i], strlen(bad_url[i]),
					    B64_URL, &data, &len), -EINVAL);
	/* An embedded NUL within len is just another bad character. */
	assert_int_equal(b64_decode("Zm\0v", 4, B64_STD, &data, &len),
			 -EINVAL);
	assert_null(data);
	assert_int_equal(len, 0);
}

static void test_b64_decode_exact_length(void **state)
{
	static const char key[] =
		"8WTTE0USnyv2J5Id5ETkLsO2tGRf28ZsTyX9c0r7nRA=";
	uint8_t out[32], small[31];

	(void)state;
	assert_int_equal(b64_decode_exact(key, strlen(key), B64_STD, out, 32),
			 0);
	assert_int_equal(out[0], 0xf1);
	assert_int_equal(out[31], 0x10);
	assert_int_equal(b64_decode_exact(key, strlen(key), B64_STD, small,
					  31), -EINVAL);
	assert_int_equal(b64_decode_exact("Zm9v", 4, B64_STD, out, 3), 0);
	assert_memory_equal(out, "foo", 3);
	assert_int_equal(b64_decode_exact("Zm8", 3, B64_URL, out, 2), 0);
	assert_memory_equal(out, "fo", 2);
	assert_int_equal(b64_decode_exact("Zm9v", 4, B64_URL, out, 2),
			 -EINVAL);
}

static void test_b64_roundtrip_all_bytes(void **state)
{
	uint8_t bytes[256], *data;
	size_t n, len;
	int a;

	(void)state;
	for (n = 0; n < 256; n++)
		bytes[n] = (uint8_t)(255 - n);
	for (a = 0; a < 2; a++) {
		enum b64_alphabet alpha = a ? B64_URL : B64_STD;

		for (n = 0; n <= 256; n += 37) {
			char *text;

			assert_int_equal(b64_encode(bytes, n, alpha, &text),
					 0);
			assert_int_equal(b64_decode(text, strlen(text), alpha,
						    &data, &len), 0);
			assert_int_equal(len, n);
			assert_memory_equal(data, bytes, n);
			free(data);
			free(text);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64_encode_rfc4648),
		cmocka_unit_test(test_b64_decode_rfc4648),
		cmocka_unit_test(test_b64_alphabets_differ),
		cmocka_unit_test(test_b64_decode_strict),
		cmocka_unit_test(test_b64_decode_exact_length),
		cmocka_unit_test(test_b64_roundtrip_all_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
