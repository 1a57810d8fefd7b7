/*
 * c4gh.h - GA4GH Crypt4GH version 1: key files, headers, data segments.
 *
 * A pure format module: no FUSE, no network, no logging.  Every function
 * returns 0 (or a count) on success and a negative errno on failure, with
 * these meanings throughout:
 *
 *   -EBADMSG          not Crypt4GH, malformed, or a tag that fails
 *   -EPROTONOSUPPORT  a version, method or key protection we do not know
 *   -ENOKEY           no header packet decrypts with the given key
 *   -EKEYREJECTED     wrong passphrase (or corrupt protected key)
 *   -ENOMEM, -EIO     as usual
 *
 * c4gh_strerror() turns these into one message for a user.
 *
 * Secret keys are 32 raw X25519 bytes.  Callers keep them in memory they
 * wipe; functions here wipe every intermediate secret they make.
 */
#ifndef MARKETFS_C4GH_H
#define MARKETFS_C4GH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define C4GH_SEGMENT_SIZE	65536		/* plaintext bytes per segment */
#define C4GH_SEGMENT_OVERHEAD	28		/* nonce + tag */
#define C4GH_CIPHER_SEGMENT	(C4GH_SEGMENT_SIZE + C4GH_SEGMENT_OVERHEAD)
#define C4GH_MAX_KEYS		16		/* data keys kept per header */
#define C4GH_MAX_EDITS		4096		/* edit list entries accepted */
#define C4GH_HEADER_MAX		(1u << 20)	/* header bytes accepted */
#define C4GH_PREAMBLE_LEN	16		/* magic, version, count */

/* ---- key files (reference "c4gh-v1" format) ---- */

/*
 * Parse a public key file's text (any PEM label, any wrapping).
 */
int c4gh_pubkey_parse(const char *text, size_t len, uint8_t ret_pk[32]);
int c4gh_pubkey_read_file(const char *path, uint8_t ret_pk[32]);
/* Written 0644 by default; -EEXIST when the file exists. */
int c4gh_pubkey_write_file(const char *path, const uint8_t pk[32]);

/*
 * Is the secret key in text protected by a passphrase?  1 yes, 0 no,
 * negative errno when the text is not a key we can read.  Lets callers
 * decide whether to ask for a passphrase.
 */
int c4gh_seckey_needs_passphrase(const char *text, size_t len);

/*
 * Parse a secret key file's text.  pass may be NULL for unprotected keys.
 * Supports kdf "none", "scrypt" and "pbkdf2_hmac_sha256" with cipher
 * "chacha20_poly1305"; "bcrypt" is -EPROTONOSUPPORT.
 */
int c4gh_seckey_parse(const char *text, size_t len, const char *pass,
		      size_t passlen, uint8_t ret_sk[32]);
int c4gh_seckey_read_file(const char *path, const char *pass,
			  size_t passlen, uint8_t ret_sk[32]);

/*
 * Write a secret key file, mode 0600, -EEXIST when the file exists.  With
 * pass NULL the key is stored unprotected ("none"); otherwise with scrypt
 * (N=16384, r=8, p=1, 16-byte random salt) and ChaCha20-Poly1305, as the
 * reference tool writes it.  comment may be NULL.
 */
int c4gh_seckey_write_file(const char *path, const uint8_t sk[32],
			   const char *pass, size_t passlen,
			   const char *comment);

/* ---- header ---- */

struct c4gh_header {
	uint8_t keys[C4GH_MAX_KEYS][32];	/* data keys, header order */
	unsigned int nkeys;
	int has_edits;				/* an edit list was present */
	unsigned int nedits;
	uint64_t edits[C4GH_MAX_EDITS];		/* skip, keep, skip, ... */
	uint64_t header_len;			/* bytes before the data */
};

/*
 * Length of the header that starts buf.  When buf is too short to tell,
 * returns -EAGAIN with *ret_need set to how many bytes are needed to go
 * on (call again with at least that many).  -EBADMSG on a bad magic or
 * lengths past the limits above, -EPROTONOSUPPORT on version != 1.
 */
int c4gh_header_length(const uint8_t *buf, size_t len, uint64_t *ret_need);

/*
 * Decrypt the header at buf[0..len) with secret key sk.  Packets that do
 * not decrypt with sk, or of an unknown method, are skipped.  Fails with
 * -ENOKEY when no data-key packet decrypts, -EPROTONOSUPPORT on an
 * unknown data encryption method, -EBADMSG on two edit lists, an unknown
 * packet type or a malformed packet.  ret must be released with
 * c4gh_header_release().
 */
int c4gh_header_decrypt(const uint8_t *buf, size_t len, const uint8_t sk[32],
			struct c4gh_header *ret);
void c4gh_header_release(struct c4gh_header *hdr);	/* wipes keys */

/*
 * Build a header: one data-key packet (and one edit-list packet when
 * nedits > 0) for each recipient, encrypted with writer_sk.  The buffer
 * is malloc'd; the caller frees it.
 */
int c4gh_header_build(const uint8_t writer_sk[32],
		      const uint8_t (*recipients)[32], unsigned int nrecipients,
		      const uint8_t data_key[32], const uint64_t *edits,
		      unsigned int nedits, uint8_t **ret_buf, size_t *ret_len);

/*
 * Re-encrypt a header for other recipients: every packet that reader_sk
 * opens is sealed again by writer_sk for each recipient; packets it does
 * not open are dropped.  -ENOKEY when reader_sk opens nothing.
 */
int c4gh_header_reencrypt(const uint8_t *buf, size_t len,
			  const uint8_t reader_sk[32],
			  const uint8_t writer_sk[32],
			  const uint8_t (*recipients)[32],
			  unsigned int nrecipients,
			  uint8_t **ret_buf, size_t *ret_len);

/* ---- data section ---- */

/*
 * Plaintext size of a data section of data_len bytes.  -EBADMSG when its
 * last segment would be 28 bytes or shorter.
 */
int c4gh_plain_size(uint64_t data_len, uint64_t *ret_size);

/* Ciphertext size of a plaintext of size bytes. */
uint64_t c4gh_cipher_size(uint64_t size);

/*
 * Decrypt one segment (nonce || ciphertext || tag, seg_len bytes, at most
 * C4GH_CIPHER_SEGMENT) into ret_pt (at least seg_len - 28 bytes), trying
 * each data key of hdr.  Returns the plaintext length, or -EBADMSG (and
 * ret_pt wiped) when no key authenticates it.
 */
ssize_t c4gh_segment_decrypt(const struct c4gh_header *hdr,
			     const uint8_t *seg, size_t seg_len,
			     uint8_t *ret_pt);

/*
 * Encrypt len bytes (1..C4GH_SEGMENT_SIZE) with a fresh random nonce into
 * ret_seg (len + 28 bytes).
 */
int c4gh_segment_encrypt(const uint8_t key[32], const uint8_t *pt,
			 size_t len, uint8_t *ret_seg);

/* ---- edit lists (spec section "ApplyEditList") ---- */

/* Visible size of a plaintext of plain_size bytes under hdr's edits. */
uint64_t c4gh_edit_visible_size(const struct c4gh_header *hdr,
				uint64_t plain_size);

/*
 * Map a visible offset to the plaintext offset it comes from, and how
 * many visible bytes follow contiguously from there (*ret_run).  -ERANGE
 * at or past the visible end.
 */
int c4gh_edit_map(const struct c4gh_header *hdr, uint64_t plain_size,
		  uint64_t visible_off, uint64_t *ret_plain_off,
		  uint64_t *ret_run);

/* ---- whole streams (tools and tests) ---- */

/*
 * Encrypt everything readable from in_fd to out_fd: header for the
 * recipients, sealed by writer_sk, with a fresh data key, then segments.
 * When ret_data_key is not NULL the data key is copied there (the market
 * tool needs it for its manifest); *ret_header_len likewise if not NULL.
 */
int c4gh_encrypt_fd(int in_fd, int out_fd, const uint8_t writer_sk[32],
		    const uint8_t (*recipients)[32], unsigned int nrecipients,
		    uint8_t *ret_data_key, uint64_t *ret_header_len);

/*
 * Decrypt a whole Crypt4GH stream from in_fd to out_fd with sk, applying
 * any edit list.  Segments are authenticated before any of their bytes
 * are written.  Returns 0 or an errno as above.
 */
int c4gh_decrypt_fd(int in_fd, int out_fd, const uint8_t sk[32]);

/* A message for one of the errnos above, for users. */
const char *c4gh_strerror(int err);

#endif
