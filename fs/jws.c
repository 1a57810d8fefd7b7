/*
 * jws.c - compact JWS (RFC 7515) with Ed25519 (RFC 8037) for the market's
 * signed documents.
 *
 * Invariants enforced here:
 * - The signature is checked over the exact received bytes
 *   "BASE64URL(header).BASE64URL(payload)" before either JSON part is
 *   parsed, so nothing an attacker wrote reaches the JSON parser unless
 *   the market's key signed it.
 * - The protected header must be an object with exactly the members
 *   "alg" ("EdDSA"), "typ" (the expected document type) and "kid" (the
 *   hex SHA-256 fingerprint of the verifying key).  "none" and every
 *   other alg are refused.
 * - The payload is a JSON object without duplicate keys whose "type"
 *   repeats the expected type and whose "format" is the integer 1.
 * - Exactly three base64url parts, no padding, no whitespace, nothing
 *   after the signature.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "cipher.h"
#include "jws.h"

#define JWS_FORMAT		1
#define JWS_HEADER_MAX		1024	/* bytes of decoded header */
#define JWS_TYPE_MAX		64
#define JWS_JSON_FLAGS		(JSON_REJECT_DUPLICATES)

static void key_fingerprint(const uint8_t pk[32], char ret[65])
{
	uint8_t d[CIPHER_SHA256_LEN];

	if (cipher_sha256(pk, 32, d) != 0)
		memset(d, 0, sizeof(d));
	cipher_hex(d, sizeof(d), ret);
}

static int type_is_valid(const char *type)
{
	size_t n;

	if (!type)
		return 0;
	n = strlen(type);
	if (n == 0 || n > JWS_TYPE_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = type[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

int jws_sign(json_t *payload, const char *type, const uint8_t sk[32],
	     const char *kid, char **ret_jws)
{
	json_t *hdr = NULL;
	char *hdr_json = NULL, *pl_json = NULL;
	char *hdr_b64 = NULL, *pl_b64 = NULL, *sig_b64 = NULL, *out = NULL;
	uint8_t sig[CIPHER_SIG_LEN];
	size_t hl, pl, sl;
	int r;

	*ret_jws = NULL;
	if (!json_is_object(payload) || !type_is_valid(type) || !kid)
		return -EINVAL;

	r = json_object_set_new(payload, "type", json_string(type));
	if (r != 0)
		return -ENOMEM;
	/* Callers may set another format (tests do); default to ours. */
	if (!json_object_get(payload, "format") &&
	    json_object_set_new(payload, "format",
				json_integer(JWS_FORMAT)) != 0)
		return -ENOMEM;

	/* Key order is fixed so that the header is exactly as documented. */
	hdr = json_pack("{s:s, s:s, s:s}", "alg", "EdDSA", "typ", type,
			"kid", kid);
	if (!hdr)
		return -ENOMEM;
	hdr_json = json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER);
	pl_json = json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS);
	if (!hdr_json || !pl_json) {
		r = -ENOMEM;
		goto out;
	}

	r = b64_encode(hdr_json, strlen(hdr_json), B64_URL, &hdr_b64);
	if (r < 0)
		goto out;
	r = b64_encode(pl_json, strlen(pl_json), B64_URL, &pl_b64);
	if (r < 0)
		goto out;

	hl = strlen(hdr_b64);
	pl = strlen(pl_b64);
	if (hl + pl + 200 > JWS_MAX_LEN) {
		r = -EFBIG;
		goto out;
	}
	out = malloc(hl + 1 + pl + 1 + 128);
	if (!out) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(out, hdr_b64, hl);
	out[hl] = '.';
	memcpy(out + hl + 1, pl_b64, pl);

	r = cipher_ed25519_sign(sk, out, hl + 1 + pl, sig);
	if (r < 0)
		goto out;
	r = b64_encode(sig, sizeof(sig), B64_URL, &sig_b64);
	if (r < 0)
		goto out;
	sl = strlen(sig_b64);
	if (sl > 127) {
		r = -EINVAL;
		goto out;
	}
	out[hl + 1 + pl] = '.';
	memcpy(out + hl + 1 + pl + 1, sig_b64, sl + 1);

	*ret_jws = out;
	out = NULL;
	r = 0;
out:
	free(out);
	free(sig_b64);
	free(pl_b64);
	free(hdr_b64);
	free(pl_json);
	free(hdr_json);
	json_decref(hdr);
	return r;
}

/* Split text into its three parts; -EBADMSG unless exactly three. */
static int split(const char *text, size_t len, size_t *ret_dot1,
		 size_t *ret_dot2)
{
	size_t dots[2], n = 0;

	if (len == 0 || len > JWS_MAX_LEN)
		return -EBADMSG;
	for (size_t i = 0; i < len; i++) {
		char c = text[i];

		if (c == '.') {
			if (n == 2)
				return -EBADMSG;
			dots[n++] = i;
			continue;
		}
		/* Only the base64url alphabet: this also refuses NULs,
		 * whitespace and a trailing newline. */
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return -EBADMSG;
	}
	if (n != 2 || dots[0] == 0 || dots[1] == dots[0] + 1 ||
	    dots[1] + 1 == len)
		return -EBADMSG;
	*ret_dot1 = dots[0];
	*ret_dot2 = dots[1];
	return 0;
}

/* Decode one base64url part and parse it as a JSON object. */
static int parse_part(const char *text, size_t len, json_t **ret)
{
	uint8_t *raw = NULL;
	size_t rawlen = 0;
	json_error_t jerr;
	json_t *j;
	int r;

	*ret = NULL;
	r = b64_decode(text, len, B64_URL, &raw, &rawlen);
	if (r < 0)
		return -EBADMSG;
	/* No JSON_ALLOW_NUL and no JSON_DISABLE_EOF_CHECK: an embedded NUL
	 * or anything after the object is an error. */
	j = json_loadb((const char *)raw, rawlen, JWS_JSON_FLAGS, &jerr);
	free(raw);
	if (!j)
		return -EBADMSG;
	if (!json_is_object(j)) {
		json_decref(j);
		return -EBADMSG;
	}
	*ret = j;
	return 0;
}

/* Check the protected header: exactly alg, typ and kid. */
static int check_header(json_t *hdr, const char *type, const char *kid)
{
	json_t *alg, *typ, *k;

	alg = json_object_get(hdr, "alg");
	typ = json_object_get(hdr, "typ");
	k = json_object_get(hdr, "kid");
	if (!json_is_string(alg) || !json_is_string(typ) ||
	    (k && !json_is_string(k)))
		return -EBADMSG;
	if (strcmp(json_string_value(alg), "EdDSA") != 0)
		return -EPROTO;
	if (strcmp(json_string_value(typ), type) != 0)
		return -EPROTO;
	if (!k || json_object_size(hdr) != 3)
		return -EBADMSG;
	if (kid && strcmp(json_string_value(k), kid) != 0)
		return -EKEYREJECTED;
	return 0;
}

/* Check "type" and "format" of a payload. */
static int check_payload(json_t *pl, const char *type)
{
	json_t *t, *f;

	t = json_object_get(pl, "type");
	f = json_object_get(pl, "format");
	if (!json_is_string(t))
		return -EBADMSG;
	if (strcmp(json_string_value(t), type) != 0)
		return -EPROTO;
	if (!json_is_integer(f) || json_integer_value(f) != JWS_FORMAT)
		return -EBADMSG;
	return 0;
}

/*
 * Parse and check the protected header (kid must be kid, unless NULL)
 * and the payload of a document split at d1 and d2.
 */
static int parse_parts(const char *text, size_t d1, size_t d2,
		       const char *type, const char *kid,
		       json_t **ret_payload)
{
	json_t *hdr = NULL, *pl = NULL;
	int r;

	if (d1 > 4 * JWS_HEADER_MAX / 3 + 4)
		return -EBADMSG;
	r = parse_part(text, d1, &hdr);
	if (r < 0)
		return r;
	r = check_header(hdr, type, kid);
	json_decref(hdr);
	if (r < 0)
		return r;

	r = parse_part(text + d1 + 1, d2 - d1 - 1, &pl);
	if (r < 0)
		return r;
	r = check_payload(pl, type);
	if (r < 0) {
		json_decref(pl);
		return r;
	}
	*ret_payload = pl;
	return 0;
}

int jws_verify(const char *text, size_t len, const uint8_t pk[32],
	       const char *type, json_t **ret_payload)
{
	size_t d1, d2;
	uint8_t sig[CIPHER_SIG_LEN];
	char kid[65];
	int r;

	*ret_payload = NULL;
	if (!text || !pk || !type_is_valid(type))
		return -EINVAL;
	r = split(text, len, &d1, &d2);
	if (r < 0)
		return r;

	/* The signature first, over the bytes as received. */
	r = b64_decode_exact(text + d2 + 1, len - d2 - 1, B64_URL, sig,
			     sizeof(sig));
	if (r < 0)
		return -EBADMSG;
	r = cipher_ed25519_verify(pk, text, d2, sig);
	if (r == -EBADMSG)
		return -EKEYREJECTED;
	if (r < 0)
		return r;

	key_fingerprint(pk, kid);
	return parse_parts(text, d1, d2, type, kid, ret_payload);
}

int jws_peek_payload(const char *text, size_t len, const char *type,
		     json_t **ret_payload)
{
	size_t d1, d2;
	int r;

	*ret_payload = NULL;
	if (!text || !type_is_valid(type))
		return -EINVAL;
	r = split(text, len, &d1, &d2);
	if (r < 0)
		return r;
	return parse_parts(text, d1, d2, type, NULL, ret_payload);
}

const char *jws_strerror(int err)
{
	switch (err) {
	case 0:			return "valid signed document";
	case -EBADMSG:		return "malformed signed document";
	case -EKEYREJECTED:	return "signature does not verify with the market key";
	case -EPROTO:		return "signed document of the wrong type or algorithm";
	case -EINVAL:		return "invalid argument";
	case -ENOMEM:		return "out of memory";
	case -EFBIG:		return "signed document too large";
	default:		return "cannot verify signed document";
	}
}
