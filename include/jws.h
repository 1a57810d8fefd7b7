/*
 * jws.h - JSON Web Signatures (RFC 7515, compact form) with Ed25519
 * (RFC 8037, "alg":"EdDSA") for the market's signed documents.
 *
 * A document is BASE64URL(header) "." BASE64URL(payload) "."
 * BASE64URL(signature).  The protected header is exactly
 * {"alg":"EdDSA","typ":TYPE,"kid":KID}; the payload is a JSON object
 * whose "type" member repeats TYPE, so a document of one kind cannot
 * pass for another.  The signature is verified over the received bytes
 * before the payload is parsed; the payload is parsed rejecting
 * duplicate keys.  Nothing here logs.
 */
#ifndef MARKETFS_JWS_H
#define MARKETFS_JWS_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define JWS_MAX_LEN	(64u << 20)	/* largest document accepted */

/*
 * Sign payload (a JSON object; its "type" is set to type, and its
 * "format" to 1 unless already present) with the Ed25519 secret key sk.
 * kid names the key: its fingerprint (hex SHA-256 of the public key),
 * which jws_verify() requires.  Returns a malloc'd NUL-terminated
 * compact JWS, without a trailing newline.
 */
int jws_sign(json_t *payload, const char *type, const uint8_t sk[32],
	     const char *kid, char **ret_jws);

/*
 * Verify text[0..len) against public key pk and expected type, then parse
 * its payload.  Returns 0 with *ret_payload (a new reference), -EBADMSG
 * when malformed (bad base64url, extra parts or bytes, duplicate keys,
 * "format" not 1), -EKEYREJECTED when the signature does not verify or
 * the header's kid is not pk's fingerprint, -EPROTO when the type or alg
 * is not the expected one.
 */
int jws_verify(const char *text, size_t len, const uint8_t pk[32],
	       const char *type, json_t **ret_payload);

/*
 * Decode the payload without verifying (only for reading the public key
 * of a self-signed market description, which is then verified with it).
 */
int jws_peek_payload(const char *text, size_t len, const char *type,
		     json_t **ret_payload);

/* A short message for one of the errors above. */
const char *jws_strerror(int err);

#endif
