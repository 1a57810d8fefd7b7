/*
 * c4gh_key.c - Crypt4GH key files in the reference "c4gh-v1" format, and
 * c4gh_strerror() for the whole c4gh module.
 *
 * Reading is tolerant of the armour and strict about the content: any
 * "-----BEGIN ...-----" / "-----END ...-----" label, any line wrapping,
 * blank lines, CR LF endings and stray spaces are accepted (writers
 * disagree on all of these), then the joined base64 must decode
 * strictly, and the decoded bytes decide what the key is ("c4gh-v1"
 * magic, never the label).  Names are compared by exact length and
 * bytes, every length read from the key is checked against what is
 * left, and the blob must end where its last field ends.
 *
 * Protections read: "none", "scrypt" (N=16384, r=8, p=1 whatever the
 * rounds field says, as the reference does) and "pbkdf2_hmac_sha256"
 * (rounds from the file), each with "chacha20_poly1305" over the 32-byte
 * secret.  "bcrypt" is refused with -EPROTONOSUPPORT.  A protected key
 * given no passphrase (pass NULL), or the wrong one, is -EKEYREJECTED.
 *
 * Writing produces exactly what the reference writes: one base64 line
 * between "CRYPT4GH PRIVATE KEY" armour lines, scrypt with rounds 0 and
 * a 16-byte salt, or "none".  Files are created with O_EXCL, so an
 * existing file is never replaced (-EEXIST).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "b64.h"
#include "c4gh.h"
#include "cipher.h"
#include "util.h"

#define KEY_FILE_MAX	(64 * 1024)	/* bytes of key file text read */
#define PBKDF2_ROUNDS_MAX 10000000u	/* refuse absurd work factors */

#define SCRYPT_N	16384
#define SCRYPT_R	8
#define SCRYPT_P	1
#define SALT_LEN	16
#define BLOB_LEN	(CIPHER_NONCE_LEN + 32 + CIPHER_TAG_LEN)

static const char magic[7] = { 'c', '4', 'g', 'h', '-', 'v', '1' };

static const char pub_begin[] = "-----BEGIN CRYPT4GH PUBLIC KEY-----\n";
static const char pub_end[] = "-----END CRYPT4GH PUBLIC KEY-----\n";
static const char sec_begin[] = "-----BEGIN CRYPT4GH PRIVATE KEY-----\n";
static const char sec_end[] = "-----END CRYPT4GH PRIVATE KEY-----\n";

/* ---- armour ---- */

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' ||
	       c == '\v' || c == '\f';
}

static int has_prefix(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len >= n && memcmp(s, prefix, n) == 0;
}

static int is_armour(const char *s, size_t len, const char *prefix)
{
	return has_prefix(s, len, prefix) && len >= strlen(prefix) + 5 &&
	       memcmp(s + len - 5, "-----", 5) == 0;
}

/*
 * Take the base64 between the first non-blank line (a BEGIN line) and
 * the last one (an END line), whitespace removed, and decode it.  The
 * decoded buffer may hold a secret: callers wipe it.
 */
static int pem_decode(const char *text, size_t len, uint8_t **ret_data,
		      size_t *ret_len)
{
	const char *first = NULL, *last = NULL;
	size_t first_len = 0, last_len = 0, pos = 0, nb = 0;
	const char *body_start = NULL, *body_end = NULL;
	char *b64;
	int ret;

	*ret_data = NULL;
	*ret_len = 0;
	if (len > KEY_FILE_MAX)
		return -EBADMSG;

	/* Find the first and last non-blank lines, trimmed. */
	while (pos < len) {
		const char *line = text + pos, *nl;
		size_t llen, s = 0;

		nl = memchr(line, '\n', len - pos);
		llen = nl ? (size_t)(nl - line) : len - pos;
		pos += llen + (nl ? 1 : 0);
		while (s < llen && is_space(line[s]))
			s++;
		while (llen > s && is_space(line[llen - 1]))
			llen--;
		if (llen == s)
			continue;
		if (!first) {
			first = line + s;
			first_len = llen - s;
			body_start = text + pos;
		} else {
			last = line + s;
			last_len = llen - s;
			body_end = line;
		}
	}
	if (!first || !last || !is_armour(first, first_len, "-----BEGIN ") ||
	    !is_armour(last, last_len, "-----END "))
		return -EBADMSG;

	/* Join the body without any whitespace. */
	b64 = malloc((size_t)(body_end - body_start) + 1);
	if (!b64)
		return -ENOMEM;
	for (pos = 0; body_start + pos < body_end; pos++) {
		char c = body_start[pos];

		if (!is_space(c))
			b64[nb++] = c;
	}

	ret = b64_decode(b64, nb, B64_STD, ret_data, ret_len);
	cipher_wipe(b64, nb);
	free(b64);
	if (ret == -EINVAL)
		ret = -EBADMSG;
	return ret;
}

/* Free a decoded key buffer after wiping it. */
static void secret_buf_free(uint8_t *buf, size_t len)
{
	if (!buf)
		return;
	cipher_wipe(buf, len);
	free(buf);
}

/* ---- public keys ---- */

int c4gh_pubkey_parse(const char *text, size_t len, uint8_t ret_pk[32])
{
	uint8_t *data;
	size_t dlen;
	int ret;

	memset(ret_pk, 0, 32);
	ret = pem_decode(text, len, &data, &dlen);
	if (ret < 0)
		return ret;

	if (dlen != 32) {
		ret = -EBADMSG;
	} else {
		memcpy(ret_pk, data, 32);
		ret = 0;
	}
	secret_buf_free(data, dlen);
	return ret;
}

int c4gh_pubkey_read_file(const char *path, uint8_t ret_pk[32])
{
	char *text;
	size_t len;
	int ret;

	memset(ret_pk, 0, 32);
	ret = util_read_file(path, KEY_FILE_MAX, &text, &len);
	if (ret == -EFBIG)
		return -EBADMSG;
	if (ret < 0)
		return ret;

	ret = c4gh_pubkey_parse(text, len, ret_pk);
	free(text);
	return ret;
}

/* Create path exclusively with mode and write all of data, durably. */
static int write_new_file(const char *path, const void *data, size_t len,
			  mode_t mode)
{
	const char *p = data;
	int fd, ret = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		  mode);
	if (fd < 0)
		return -errno;

	if (fchmod(fd, mode) < 0) {
		ret = -errno;
		goto out_unlink;
	}
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			goto out_unlink;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) < 0) {
		ret = -errno;
		goto out_unlink;
	}
	if (close(fd) < 0) {
		ret = -errno;
		unlink(path);
		return ret;
	}
	return 0;

out_unlink:
	close(fd);
	unlink(path);
	return ret;
}

/* BEGIN line, base64 of data on one line, END line; text may be secret. */
static int armour(const char *begin, const char *end, const uint8_t *data,
		  size_t len, char **ret_text, size_t *ret_len)
{
	size_t blen = strlen(begin), elen = strlen(end), n;
	char *b64, *text;
	int ret;

	*ret_text = NULL;
	*ret_len = 0;
	ret = b64_encode(data, len, B64_STD, &b64);
	if (ret < 0)
		return ret;

	n = strlen(b64);
	text = malloc(blen + n + 1 + elen + 1);
	if (!text) {
		cipher_wipe(b64, n);
		free(b64);
		return -ENOMEM;
	}
	memcpy(text, begin, blen);
	memcpy(text + blen, b64, n);
	text[blen + n] = '\n';
	memcpy(text + blen + n + 1, end, elen + 1);
	cipher_wipe(b64, n);
	free(b64);
	*ret_text = text;
	*ret_len = blen + n + 1 + elen;
	return 0;
}

int c4gh_pubkey_write_file(const char *path, const uint8_t pk[32])
{
	char *text;
	size_t len;
	int ret;

	ret = armour(pub_begin, pub_end, pk, 32, &text, &len);
	if (ret < 0)
		return ret;

	ret = write_new_file(path, text, len, 0644);
	free(text);
	return ret;
}

/* ---- secret keys: parsing ---- */

enum kdf {
	KDF_NONE,
	KDF_SCRYPT,
	KDF_PBKDF2_SHA256,
};

/* The fields of a decoded c4gh-v1 key; pointers into the decoded buffer. */
struct seckey {
	enum kdf kdf;
	uint32_t rounds;
	const uint8_t *salt;
	size_t salt_len;
	const uint8_t *blob;
	size_t blob_len;
};

struct reader {
	const uint8_t *p;
	size_t len;
	size_t off;
};

/* A u16be-length-prefixed string. */
static int read_string(struct reader *r, const uint8_t **ret_s,
		       size_t *ret_len)
{
	size_t n;

	if (r->len - r->off < 2)
		return -EBADMSG;
	n = (size_t)r->p[r->off] << 8 | r->p[r->off + 1];
	r->off += 2;
	if (r->len - r->off < n)
		return -EBADMSG;
	*ret_s = r->p + r->off;
	*ret_len = n;
	r->off += n;
	return 0;
}

static int name_is(const uint8_t *s, size_t len, const char *name)
{
	return len == strlen(name) && memcmp(s, name, len) == 0;
}

static int seckey_fields(const uint8_t *data, size_t len,
			 struct seckey *ret)
{
	struct reader r = { data, len, sizeof(magic) };
	const uint8_t *kdf, *opts, *cipher, *comment;
	size_t kdf_len, opts_len, cipher_len, comment_len;

	memset(ret, 0, sizeof(*ret));
	if (len < sizeof(magic) || memcmp(data, magic, sizeof(magic)) != 0) {
		/* OpenSSH keys are a real format we just do not take. */
		if (len >= 15 && memcmp(data, "openssh-key-v1", 15) == 0)
			return -EPROTONOSUPPORT;
		return -EBADMSG;
	}

	if (read_string(&r, &kdf, &kdf_len) < 0)
		return -EBADMSG;

	if (name_is(kdf, kdf_len, "none")) {
		ret->kdf = KDF_NONE;
	} else {
		if (name_is(kdf, kdf_len, "scrypt"))
			ret->kdf = KDF_SCRYPT;
		else if (name_is(kdf, kdf_len, "pbkdf2_hmac_sha256"))
			ret->kdf = KDF_PBKDF2_SHA256;
		else
			return -EPROTONOSUPPORT;	/* bcrypt, unknown */

		if (read_string(&r, &opts, &opts_len) < 0 || opts_len < 4)
			return -EBADMSG;
		ret->rounds = (uint32_t)opts[0] << 24 |
			      (uint32_t)opts[1] << 16 |
			      (uint32_t)opts[2] << 8 | opts[3];
		ret->salt = opts + 4;
		ret->salt_len = opts_len - 4;
	}

	if (read_string(&r, &cipher, &cipher_len) < 0)
		return -EBADMSG;
	if (name_is(cipher, cipher_len, "none")) {
		if (ret->kdf != KDF_NONE)
			return -EBADMSG;
	} else if (name_is(cipher, cipher_len, "chacha20_poly1305")) {
		if (ret->kdf == KDF_NONE)
			return -EBADMSG;
	} else {
		return -EPROTONOSUPPORT;
	}

	if (read_string(&r, &ret->blob, &ret->blob_len) < 0)
		return -EBADMSG;
	if (ret->blob_len != (ret->kdf == KDF_NONE ? 32 : BLOB_LEN))
		return -EBADMSG;

	/* An optional comment, then nothing. */
	if (r.off < r.len && read_string(&r, &comment, &comment_len) < 0)
		return -EBADMSG;
	if (r.off != r.len)
		return -EBADMSG;

	if (ret->kdf == KDF_PBKDF2_SHA256 &&
	    (ret->rounds == 0 || ret->rounds > PBKDF2_ROUNDS_MAX))
		return -EBADMSG;
	return 0;
}

int c4gh_seckey_needs_passphrase(const char *text, size_t len)
{
	struct seckey key;
	uint8_t *data;
	size_t dlen;
	int ret;

	ret = pem_decode(text, len, &data, &dlen);
	if (ret < 0)
		return ret;

	ret = seckey_fields(data, dlen, &key);
	if (ret == 0)
		ret = key.kdf != KDF_NONE;
	secret_buf_free(data, dlen);
	return ret;
}

/* Derive the blob key and open the blob into ret_sk. */
static int seckey_unlock(const struct seckey *key, const char *pass,
			 size_t passlen, uint8_t ret_sk[32])
{
	uint8_t dk[32], sk[32];
	int ret;

	if (!pass)
		return -EKEYREJECTED;

	if (key->kdf == KDF_SCRYPT)
		ret = cipher_scrypt(pass, passlen, key->salt, key->salt_len,
				    SCRYPT_N, SCRYPT_R, SCRYPT_P, dk, 32);
	else
		ret = cipher_pbkdf2_sha256(pass, passlen, key->salt,
					   key->salt_len, key->rounds, dk, 32);
	if (ret < 0)
		goto out_wipe_dk;

	ret = cipher_aead_decrypt(dk, key->blob, key->blob + CIPHER_NONCE_LEN,
				  key->blob_len - CIPHER_NONCE_LEN, sk);
	if (ret == -EBADMSG)
		ret = -EKEYREJECTED;
	if (ret == 0)
		memcpy(ret_sk, sk, 32);

	cipher_wipe(sk, sizeof(sk));
out_wipe_dk:
	cipher_wipe(dk, sizeof(dk));
	return ret;
}

int c4gh_seckey_parse(const char *text, size_t len, const char *pass,
		      size_t passlen, uint8_t ret_sk[32])
{
	struct seckey key;
	uint8_t *data;
	size_t dlen;
	int ret;

	memset(ret_sk, 0, 32);
	ret = pem_decode(text, len, &data, &dlen);
	if (ret < 0)
		return ret;

	ret = seckey_fields(data, dlen, &key);
	if (ret < 0)
		goto out_free_data;

	if (key.kdf == KDF_NONE)
		memcpy(ret_sk, key.blob, 32);
	else
		ret = seckey_unlock(&key, pass, passlen, ret_sk);

out_free_data:
	secret_buf_free(data, dlen);
	return ret;
}

int c4gh_seckey_read_file(const char *path, const char *pass,
			  size_t passlen, uint8_t ret_sk[32])
{
	char *text;
	size_t len;
	int ret;

	memset(ret_sk, 0, 32);
	ret = util_read_file(path, KEY_FILE_MAX, &text, &len);
	if (ret == -EFBIG)
		return -EBADMSG;
	if (ret < 0)
		return ret;

	ret = c4gh_seckey_parse(text, len, pass, passlen, ret_sk);
	cipher_wipe(text, len);
	free(text);
	return ret;
}

/* ---- secret keys: writing ---- */

static uint8_t *put_string(uint8_t *p, const void *s, size_t len)
{
	*p++ = (uint8_t)(len >> 8);
	*p++ = (uint8_t)len;
	memcpy(p, s, len);
	return p + len;
}

int c4gh_seckey_write_file(const char *path, const uint8_t sk[32],
			   const char *pass, size_t passlen,
			   const char *comment)
{
	uint8_t opts[4 + SALT_LEN], sealed[BLOB_LEN], dk[32];
	size_t comment_len = comment ? strlen(comment) : 0, cap, blen, tlen;
	uint8_t *blob, *p;
	char *text;
	int ret;

	if (comment_len > 65535)
		return -EINVAL;

	/* magic, then at most five u16-prefixed strings */
	cap = sizeof(magic) + 5 * 2 + 6 + sizeof(opts) + 17 + BLOB_LEN +
	      comment_len;
	blob = malloc(cap);
	if (!blob)
		return -ENOMEM;

	p = blob;
	memcpy(p, magic, sizeof(magic));
	p += sizeof(magic);
	if (!pass) {
		p = put_string(p, "none", 4);
		p = put_string(p, "none", 4);
		p = put_string(p, sk, 32);
	} else {
		memset(opts, 0, 4);			/* rounds: 0 */
		ret = cipher_random(opts + 4, SALT_LEN);
		if (ret < 0)
			goto out_wipe_blob;
		ret = cipher_random(sealed, CIPHER_NONCE_LEN);
		if (ret < 0)
			goto out_wipe_blob;

		ret = cipher_scrypt(pass, passlen, opts + 4, SALT_LEN,
				    SCRYPT_N, SCRYPT_R, SCRYPT_P, dk, 32);
		if (ret < 0)
			goto out_wipe_blob;
		ret = cipher_aead_encrypt(dk, sealed, sk, 32,
					  sealed + CIPHER_NONCE_LEN);
		cipher_wipe(dk, sizeof(dk));
		if (ret < 0)
			goto out_wipe_blob;

		p = put_string(p, "scrypt", 6);
		p = put_string(p, opts, sizeof(opts));
		p = put_string(p, "chacha20_poly1305", 17);
		p = put_string(p, sealed, sizeof(sealed));
	}
	if (comment_len > 0)
		p = put_string(p, comment, comment_len);
	blen = (size_t)(p - blob);

	ret = armour(sec_begin, sec_end, blob, blen, &text, &tlen);
	if (ret < 0)
		goto out_wipe_blob;

	ret = write_new_file(path, text, tlen, 0600);
	cipher_wipe(text, tlen);
	free(text);

out_wipe_blob:
	cipher_wipe(blob, cap);
	free(blob);
	return ret;
}

/* ---- messages ---- */

const char *c4gh_strerror(int err)
{
	const char *desc;

	if (err < 0)
		err = -err;
	switch (err) {
	case 0:
		return "success";
	case EBADMSG:
		return "not Crypt4GH, malformed, or failed authentication";
	case EPROTONOSUPPORT:
		return "unsupported Crypt4GH version, method or key protection "
		       "(key protections supported: none, scrypt, "
		       "pbkdf2_hmac_sha256; bcrypt is not supported)";
	case ENOKEY:
		return "no header packet opens with this key "
		       "(not encrypted for it)";
	case EKEYREJECTED:
		return "wrong passphrase or corrupt key";
	case ENOMEM:
		return "out of memory";
	case EIO:
		return "input/output error";
	case EEXIST:
		return "file exists";
	case ENOTTY:
		return "no terminal to ask for a passphrase";
	case EAGAIN:
		return "more data needed";
	default:
		break;
	}
	desc = strerrordesc_np(err);
	return desc ? desc : "unknown error";
}
