/*
 * b64.c - base64 (RFC 4648 section 4) and base64url (section 5).
 *
 * A small self-contained codec.  Decoding is strict, so that one text
 * has exactly one meaning: the standard alphabet needs the full '='
 * padding, base64url takes none, any other character (whitespace
 * included) is refused, and so are non-zero unused bits in the last
 * character (RFC 4648 section 3.5).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"

static const char std_chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Value of c in the alphabet, or -1. */
static int b64_value(unsigned char c, enum b64_alphabet alpha)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (alpha == B64_STD) {
		if (c == '+')
			return 62;
		if (c == '/')
			return 63;
	} else {
		if (c == '-')
			return 62;
		if (c == '_')
			return 63;
	}
	return -1;
}

int b64_encode(const void *data, size_t len, enum b64_alphabet alpha,
	       char **ret_text)
{
	const char *chars = alpha == B64_URL ? url_chars : std_chars;
	const uint8_t *in = data;
	size_t groups, outlen, i, o = 0;
	char *out;

	*ret_text = NULL;
	if (alpha != B64_STD && alpha != B64_URL)
		return -EINVAL;

	groups = len / 3 + (len % 3 != 0);
	if (groups > (SIZE_MAX - 1) / 4)
		return -ENOMEM;

	outlen = groups * 4;
	out = malloc(outlen + 1);
	if (!out)
		return -ENOMEM;

	for (i = 0; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
			     in[i + 2];

		out[o++] = chars[v >> 18 & 0x3f];
		out[o++] = chars[v >> 12 & 0x3f];
		out[o++] = chars[v >> 6 & 0x3f];
		out[o++] = chars[v & 0x3f];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;

		out[o++] = chars[v >> 18 & 0x3f];
		out[o++] = chars[v >> 12 & 0x3f];
		if (alpha == B64_STD) {
			out[o++] = '=';
			out[o++] = '=';
		}
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;

		out[o++] = chars[v >> 18 & 0x3f];
		out[o++] = chars[v >> 12 & 0x3f];
		out[o++] = chars[v >> 6 & 0x3f];
		if (alpha == B64_STD)
			out[o++] = '=';
	}
	out[o] = '\0';
	*ret_text = out;
	return 0;
}

/*
 * Check text and work out the decoded length.  *ret_chars is the number
 * of alphabet characters (padding excluded).
 */
static int b64_measure(const char *text, size_t len, enum b64_alphabet alpha,
		       size_t *ret_chars, size_t *ret_outlen)
{
	size_t chars = len, rem;

	if (alpha == B64_STD) {
		if (len % 4 != 0)
			return -EINVAL;
		if (len >= 1 && text[len - 1] == '=')
			chars--;
		if (len >= 2 && text[len - 2] == '=')
			chars--;
	}
	rem = chars % 4;
	if (rem == 1)
		return -EINVAL;

	*ret_chars = chars;
	*ret_outlen = chars / 4 * 3 + (rem ? rem - 1 : 0);
	return 0;
}

/* Decode chars alphabet characters of text into out (already sized). */
static int b64_decode_into(const char *text, size_t chars,
			   enum b64_alphabet alpha, uint8_t *out)
{
	uint32_t acc = 0;
	size_t i, o = 0;
	int bits = 0;

	for (i = 0; i < chars; i++) {
		int v = b64_value((unsigned char)text[i], alpha);

		if (v < 0)
			return -EINVAL;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* Leftover bits must be zero for a canonical encoding. */
	if (acc != 0)
		return -EINVAL;
	return 0;
}

int b64_decode(const char *text, size_t len, enum b64_alphabet alpha,
	       uint8_t **ret_data, size_t *ret_len)
{
	size_t chars, outlen;
	uint8_t *out;
	int ret;

	*ret_data = NULL;
	*ret_len = 0;
	if (alpha != B64_STD && alpha != B64_URL)
		return -EINVAL;

	ret = b64_measure(text, len, alpha, &chars, &outlen);
	if (ret < 0)
		return ret;

	out = malloc(outlen + 1);
	if (!out)
		return -ENOMEM;

	ret = b64_decode_into(text, chars, alpha, out);
	if (ret < 0) {
		free(out);
		return ret;
	}
	out[outlen] = '\0';
	*ret_data = out;
	*ret_len = outlen;
	return 0;
}

int b64_decode_exact(const char *text, size_t len, enum b64_alphabet alpha,
		     uint8_t *out, size_t outlen)
{
	size_t chars, n;
	int ret;

	memset(out, 0, outlen);
	if (alpha != B64_STD && alpha != B64_URL)
		return -EINVAL;

	ret = b64_measure(text, len, alpha, &chars, &n);
	if (ret < 0)
		return ret;
	if (n != outlen)
		return -EINVAL;

	ret = b64_decode_into(text, chars, alpha, out);
	if (ret < 0)
		memset(out, 0, outlen);
	return ret;
}
