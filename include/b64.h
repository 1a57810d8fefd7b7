/*
 * b64.h - base64 (RFC 4648 section 4) and base64url (section 5).
 *
 * Decoding is strict: the standard alphabet requires correct '='
 * padding, base64url takes none; any other character, including
 * whitespace, is -EINVAL.  Callers that read PEM-style armour join the
 * lines first.  Returned buffers are malloc'd and NUL-terminated (the
 * NUL is not counted in the length); the caller frees them.
 */
#ifndef MARKETFS_B64_H
#define MARKETFS_B64_H

#include <stddef.h>
#include <stdint.h>

enum b64_alphabet {
	B64_STD,		/* '+', '/', with '=' padding */
	B64_URL,		/* '-', '_', no padding */
};

int b64_encode(const void *data, size_t len, enum b64_alphabet alpha,
	       char **ret_text);
int b64_decode(const char *text, size_t len, enum b64_alphabet alpha,
	       uint8_t **ret_data, size_t *ret_len);

/* Decode into a fixed-size buffer: -EINVAL unless exactly outlen bytes. */
int b64_decode_exact(const char *text, size_t len, enum b64_alphabet alpha,
		     uint8_t *out, size_t outlen);

#endif
