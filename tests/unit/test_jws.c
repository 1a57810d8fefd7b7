/*
 * test_jws.c - compact JWS with Ed25519: round trip and every rejection.
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

#include "b64.h"
#include "cipher.h"
#include "jws.h"

#define TYPE	"marketfs.test"

struct keys {
	uint8_t sk[32], pk[32];
	uint8_t sk2[32], pk2[32];
	char kid[65];
};

static int setup(void **state)
{
	struct keys *k = calloc(1, sizeof(*k));
	uint8_t d[32];

	if (!k || cipher_ed25519_keypair(k->sk, k->pk) != 0 ||
	    cipher_ed25519_keypair(k->sk2, k->pk2) != 0)
		return -1;
	cipher_sha256(k->pk, 32, d);
	cipher_hex(d, 32, k->kid);
	*state = k;
	return 0;
}

static int teardown(void **state)
{
	free(*state);
	return 0;
}

/* Sign raw header and payload texts, as a forger with the key would. */
static char *sign_raw(const struct keys *k, const char *hdr, const char *pl)
{
	char *h64, *p64, *s64, *out;
	uint8_t sig[64];
	size_t n;

	assert_int_equal(b64_encode(hdr, strlen(hdr), B64_URL, &h64), 0);
	assert_int_equal(b64_encode(pl, strlen(pl), B64_URL, &p64), 0);
	n = strlen(h64) + strlen(p64) + 200;
	out = malloc(n);
	assert_non_null(out);
	snprintf(out, n, "%s.%s", h64, p64);
	assert_int_equal(cipher_ed25519_sign(k->sk, out, strlen(out), sig), 0);
	assert_int_equal(b64_encode(sig, 64, B64_URL, &s64), 0);
	strcat(out, ".");
	strcat(out, s64);
	free(h64);
	free(p64);
	free(s64);
	return out;
}

static char *std_header(const struct keys *k, const char *alg,
			const char *typ)
{
	char *h;

	assert_true(asprintf(&h, "{\"alg\":\"%s\",\"typ\":\"%s\","
			     "\"kid\":\"%s\"}", alg, typ, k->kid) > 0);
	return h;
}

static char *sample(const struct keys *k)
{
	json_t *pl = json_pack("{s:s, s:I}", "name", "x", "n", (json_int_t)7);
	char *jws = NULL;

	assert_int_equal(jws_sign(pl, TYPE, k->sk, k->kid, &jws), 0);
	json_decref(pl);
	return jws;
}

static void test_jws_round_trips(void **state)
{
	struct keys *k = *state;
	char *jws = sample(k), *hdr = NULL;
	json_t *pl = NULL;
	size_t hlen;

	assert_int_equal(jws_verify(jws, strlen(jws), k->pk, TYPE, &pl), 0);
	assert_string_equal(json_string_value(json_object_get(pl, "name")),
			    "x");
	assert_int_equal(json_integer_value(json_object_get(pl, "n")), 7);
	assert_string_equal(json_string_value(json_object_get(pl, "type")),
			    TYPE);
	assert_int_equal(json_integer_value(json_object_get(pl, "format")),
			 1);
	json_decref(pl);

	/* The protected header is exactly the documented one. */
	assert_int_equal(b64_decode(jws, strchr(jws, '.') - jws, B64_URL,
				    (uint8_t **)&hdr, &hlen), 0);
	{
		char *want = std_header(k, "EdDSA", TYPE);

		assert_string_equal(hdr, want);
		free(want);
	}
	free(hdr);

	assert_int_equal(jws_peek_payload(jws, strlen(jws), TYPE, &pl), 0);
	json_decref(pl);
	free(jws);
}

static void test_jws_rejects_any_changed_byte(void **state)
{
	static const char alphabet[] = "AQgw_-9z";
	struct keys *k = *state;
	char *jws = sample(k);
	size_t len = strlen(jws);
	json_t *pl;

	for (size_t i = 0; i < len; i++) {
		char orig = jws[i];

		for (size_t a = 0; a < sizeof(alphabet) - 1; a++) {
			int r;

			if (alphabet[a] == orig)
				continue;
			jws[i] = alphabet[a];
			pl = (json_t *)1;
			r = jws_verify(jws, len, k->pk, TYPE, &pl);
			if (r != -EKEYREJECTED && r != -EBADMSG)
				fail_msg("byte %zu -> '%c': %d", i,
					 alphabet[a], r);
			assert_null(pl);
		}
		jws[i] = orig;
	}
	assert_int_equal(jws_verify(jws, len, k->pk, TYPE, &pl), 0);
	json_decref(pl);
	free(jws);
}

static void test_jws_rejects_wrong_key(void **state)
{
	struct keys *k = *state;
	char *jws = sample(k);
	json_t *pl;

	assert_int_equal(jws_verify(jws, strlen(jws), k->pk2, TYPE, &pl),
			 -EKEYREJECTED);
	assert_null(pl);
	free(jws);
}

static void test_jws_rejects_alg_none_and_others(void **state)
{
	struct keys *k = *state;
	const char *algs[] = { "none", "HS256", "ES256", "eddsa" };
	json_t *pl;

	for (size_t i = 0; i < 4; i++) {
		char *h = std_header(k, algs[i], TYPE);
		char *jws = sign_raw(k, h,
			"{\"type\":\"" TYPE "\",\"format\":1}");

		assert_int_equal(jws_verify(jws, strlen(jws), k->pk, TYPE,
					    &pl), -EPROTO);
		assert_int_equal(jws_peek_payload(jws, strlen(jws), TYPE, &pl),
				 -EPROTO);
		free(jws);
		free(h);
	}

	/* An unsigned "none" token with an empty signature part. */
	{
		char *h = std_header(k, "none", TYPE);
		char *jws = sign_raw(k, h, "{\"type\":\"" TYPE "\"}");

		*(strrchr(jws, '.') + 1) = '\0';
		assert_int_equal(jws_verify(jws, strlen(jws), k->pk, TYPE,
					    &pl), -EBADMSG);
		free(jws);
		free(h);
	}
}

static void test_jws_rejects_type_mismatch(void **state)
{
	struct keys *k = *state;
	char *jws = sample(k), *h, *forged;
	json_t *pl;

	/* The header's typ is not what the caller expects. */
	assert_int_equal(jws_verify(jws, strlen(jws), k->pk,
				    "marketfs.other", &pl), -EPROTO);
	free(jws);

	/* The header says one type, the payload another. */
	h = std_header(k, "EdDSA", TYPE);
	forged = sign_raw(k, h, "{\"type\":\"marketfs.other\",\"format\":1}");
	assert_int_equal(jws_verify(forged, strlen(forged), k->pk, TYPE, &pl),
			 -EPROTO);
	free(forged);

	/* A format other than 1, or not an integer. */
	forged = sign_raw(k, h, "{\"type\":\"" TYPE "\",\"format\":2}");
	assert_int_equal(jws_verify(forged, strlen(forged), k->pk, TYPE, &pl),
			 -EBADMSG);
	free(forged);
	forged = sign_raw(k, h, "{\"type\":\"" TYPE "\",\"format\":1.0}");
	assert_int_equal(jws_verify(forged, strlen(forged), k->pk, TYPE, &pl),
			 -EBADMSG);
	free(forged);
	free(h);
}

static void test_jws_rejects_duplicate_keys(void **state)
{
	struct keys *k = *state;
	char *h = std_header(k, "EdDSA", TYPE), *jws;
	json_t *pl;

	jws = sign_raw(k, h, "{\"type\":\"" TYPE "\",\"format\":1,"
		       "\"n\":1,\"n\":2}");
	assert_int_equal(jws_verify(jws, strlen(jws), k->pk, TYPE, &pl),
			 -EBADMSG);
	free(jws);
	free(h);

	/* In the header too. */
	assert_true(asprintf(&h, "{\"alg\":\"EdDSA\",\"alg\":\"EdDSA\","
			     "\"typ\":\"" TYPE "\",\"kid\":\"%s\"}",
			     k->kid) > 0);
	jws = sign_raw(k, h, "{\"type\":\"" TYPE "\",\"format\":1}");
	assert_int_equal(jws_verify(jws, strlen(jws), k->pk, TYPE, &pl),
			 -EBADMSG);
	free(jws);
	free(h);
}

static void test_jws_rejects_trailing_garbage(void **state)
{
	struct keys *k = *state;
	char *jws = sample(k), *longer, *h;
	size_t len = strlen(jws);
	json_t *pl;

	longer = malloc(len + 8);
	assert_non_null(longer);
	memcpy(longer, jws, len);
	memcpy(longer + len, "\n", 2);
	assert_int_equal(jws_verify(longer, len + 1, k->pk, TYPE, &pl),
			 -EBADMSG);
	memcpy(longer + len, ".AAAA", 6);
	assert_int_equal(jws_verify(longer, len + 5, k->pk, TYPE, &pl),
			 -EBADMSG);
	memcpy(longer + len, "AA", 3);	/* signature too long */
	assert_int_equal(jws_verify(longer, len + 2, k->pk, TYPE, &pl),
			 -EBADMSG);
	/* Signature one character short: wrong length. */
	assert_int_equal(jws_verify(jws, len - 1, k->pk, TYPE, &pl),
			 -EBADMSG);
	free(longer);
	free(jws);

	/* Garbage after the JSON object inside a signed payload. */
	h = std_header(k, "EdDSA", TYPE);
	jws = sign_raw(k, h, "{\"type\":\"" TYPE "\",\"format\":1} x");
	assert_int_equal(jws_verify(jws, strlen(jws), k->pk, TYPE, &pl),
			 -EBADMSG);
	free(jws);
	/* A payload that is not an object. */
	jws = sign_raw(k, h, "[1]");
	assert_int_equal(jws_verify(jws, strlen(jws), k->pk, TYPE, &pl),
			 -EBADMSG);
	free(jws);
	free(h);
}

static void test_jws_rejects_bad_base64url(void **state)
{
	struct keys *k = *state;
	char *jws = sample(k);
	size_t len = strlen(jws);
	json_t *pl;
	char *dot = strchr(jws, '.');

	/* '+' and '=' belong to the other alphabet or to padding. */
	dot[1] = '+';
	assert_int_equal(jws_verify(jws, len, k->pk, TYPE, &pl), -EBADMSG);
	dot[1] = '=';
	assert_int_equal(jws_verify(jws, len, k->pk, TYPE, &pl), -EBADMSG);
	free(jws);

	assert_int_equal(jws_verify("..", 2, k->pk, TYPE, &pl), -EBADMSG);
	assert_int_equal(jws_verify("", 0, k->pk, TYPE, &pl), -EBADMSG);
	assert_int_equal(jws_verify("a.b", 3, k->pk, TYPE, &pl), -EBADMSG);
}

static void test_jws_rejects_foreign_kid(void **state)
{
	struct keys *k = *state;
	char *jws;
	json_t *pl = json_object(), *out;

	assert_int_equal(jws_sign(pl, TYPE, k->sk, "someone-else", &jws), 0);
	json_decref(pl);
	assert_int_equal(jws_verify(jws, strlen(jws), k->pk, TYPE, &out),
			 -EKEYREJECTED);
	free(jws);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jws_round_trips),
		cmocka_unit_test(test_jws_rejects_any_changed_byte),
		cmocka_unit_test(test_jws_rejects_wrong_key),
		cmocka_unit_test(test_jws_rejects_alg_none_and_others),
		cmocka_unit_test(test_jws_rejects_type_mismatch),
		cmocka_unit_test(test_jws_rejects_duplicate_keys),
		cmocka_unit_test(test_jws_rejects_trailing_garbage),
		cmocka_unit_test(test_jws_rejects_bad_base64url),
		cmocka_unit_test(test_jws_rejects_foreign_kid),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
