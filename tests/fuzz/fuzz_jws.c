/*
 * fuzz_jws.c - compact JWS verification with Ed25519.
 *
 * Input: one mode byte, then bytes whose use depends on mode % 3:
 *   0  a whole document, verified with the fixed market key
 *      (and peeked without verification);
 *   1  payload bytes, signed as is by the target, so that the header
 *      and payload parsers behind the signature are reached;
 *   2  JSON text parsed by jansson and, when an object, signed with
 *      jws_sign(): the round trip must verify and give the same object.
 * (mode / 3) % 3 chooses the expected type among three.
 */
#include <errno.h>
#include <string.h>

#include <jansson.h>

#include "jws.h"
#include "market.h"

#include "fuzz_common.h"

static const char *const types[] = {
	MARKET_TYPE_MANIFEST, MARKET_TYPE_LICENCE, "t",
};

static void check_payload(json_t *payload, const char *type)
{
	json_t *t = json_object_get(payload, "type");
	json_t *f = json_object_get(payload, "format");

	FUZZ_CHECK(json_is_object(payload));
	FUZZ_CHECK(json_is_string(t) && !strcmp(json_string_value(t), type));
	FUZZ_CHECK(json_is_integer(f) && json_integer_value(f) == 1);
}

static void verify_text(const char *text, size_t len, const char *type)
{
	json_t *payload = NULL;
	uint8_t pk[32];
	int r;

	fuzz_market_keys(NULL, pk);
	r = jws_verify(text, len, pk, type, &payload);
	if (r == 0) {
		check_payload(payload, type);
		json_decref(payload);
	} else {
		FUZZ_CHECK(r == -EBADMSG || r == -EKEYREJECTED ||
			   r == -EPROTO || r == -ENOMEM || r == -EFBIG);
		FUZZ_CHECK(payload == NULL);
	}
	(void)jws_strerror(r);

	payload = NULL;
	r = jws_peek_payload(text, len, type, &payload);
	if (r == 0)
		json_decref(payload);
}

static void run_signed_raw(const uint8_t *data, size_t size,
			   const char *type)
{
	char *jws = NULL;
	size_t len;

	if (fuzz_sign_raw(type, data, size, &jws, &len) < 0)
		return;
	verify_text(jws, len, type);
	free(jws);
}

static void run_round_trip(const uint8_t *data, size_t size,
			   const char *type)
{
	json_t *in, *out = NULL, *f;
	char kid[65], *jws = NULL;
	uint8_t sk[32], pk[32];
	int r;

	in = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES,
			NULL);
	if (!json_is_object(in))
		goto out;
	fuzz_market_keys(sk, pk);
	fuzz_market_kid(kid);
	r = jws_sign(in, type, sk, kid, &jws);
	if (r < 0)
		goto out;

	r = jws_verify(jws, strlen(jws), pk, type, &out);
	f = json_object_get(in, "format");
	if (json_is_integer(f) && json_integer_value(f) == 1) {
		FUZZ_CHECK(r == 0);
		FUZZ_CHECK(json_equal(in, out));
	} else {
		FUZZ_CHECK(r == -EBADMSG);
	}
out:
	json_decref(out);
	json_decref(in);
	free(jws);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *type;
	char *text;

	if (size < 1)
		return 0;
	type = types[(data[0] / 3) % 3];
	switch (data[0] % 3) {
	case 0:
		/* A private copy, so that reading past size is caught. */
		text = malloc(size - 1 ? size - 1 : 1);
		if (!text)
			return 0;
		memcpy(text, data + 1, size - 1);
		verify_text(text, size - 1, type);
		free(text);
		break;
	case 1:
		run_signed_raw(data + 1, size - 1, type);
		break;
	default:
		run_round_trip(data + 1, size - 1, type);
		break;
	}
	return 0;
}
