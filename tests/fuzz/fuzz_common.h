/*
 * fuzz_common.h - fixed keys and helpers shared by the fuzz targets.
 *
 * Every target defines LLVMFuzzerTestOneInput(); the helpers here give
 * them fixed test keys (never secret: recipient1 of tests/data/crypt4gh,
 * and a constant Ed25519 key), a way to sign fuzzer-chosen payload
 * bytes exactly as given, and a way to seal fuzzer-chosen Crypt4GH
 * header packets, so that the code behind a signature or a tag is
 * reached too.  FUZZ_CHECK() aborts on a broken invariant, which
 * libFuzzer (or the standalone replayer) reports as a crash.
 */
#ifndef MARKETFS_FUZZ_COMMON_H
#define MARKETFS_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)						\
	do {								\
		if (!(cond)) {						\
			fprintf(stderr, "%s:%d: invariant broken: %s\n", \
				__FILE__, __LINE__, #cond);		\
			abort();					\
		}							\
	} while (0)

/* Bytes of a method-0 header packet around a payload of n bytes. */
#define FUZZ_PACKET_OVERHEAD	(4 + 4 + 32 + 12 + 16)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* recipient1's X25519 secret key, and its public key. */
extern const uint8_t fuzz_c4gh_sk[32];
void fuzz_c4gh_pk(uint8_t ret_pk[32]);

/* A second fixed X25519 key, used as the writer of sealed packets. */
extern const uint8_t fuzz_writer_sk[32];

/* The fixed market Ed25519 key pair and its fingerprint (kid). */
void fuzz_market_keys(uint8_t ret_sk[32], uint8_t ret_pk[32]);
void fuzz_market_kid(char ret_kid[65]);

/*
 * A compact JWS of the given type whose payload is exactly
 * payload[0..len) (base64url-encoded as is), signed with the market key.
 * *ret_jws is malloc'd and NUL-terminated.  0 or a negative errno.
 */
int fuzz_sign_raw(const char *type, const uint8_t *payload, size_t len,
		  char **ret_jws, size_t *ret_len);

/*
 * Seal pt[0..len) into a method-0 header packet (length, method, writer
 * key, nonce, ciphertext, tag) for recipient1, written by the writer
 * key, with a nonce made from nonce_seed.  ret_pkt receives len +
 * FUZZ_PACKET_OVERHEAD bytes.
 */
int fuzz_c4gh_seal(const uint8_t *pt, size_t len, uint8_t nonce_seed,
		   uint8_t *ret_pkt);

/* Little-endian readers that return 0 past the end of the input. */
uint32_t fuzz_le32(const uint8_t *p, size_t avail);
uint16_t fuzz_le16(const uint8_t *p, size_t avail);

/*
 * Visible bytes of plain[0..plain_len) under an edit list (skip, keep,
 * skip, ...; an odd list keeps the rest), written independently of
 * fs/c4gh.c as an oracle.  active is the header's "edits apply" state.
 * Returns the visible length; ret_map[i] (if not NULL, plain_len
 * entries) is the plaintext offset of visible byte i.
 */
size_t fuzz_edit_apply(const uint64_t *edits, unsigned int nedits,
		       int active, size_t plain_len, uint64_t *ret_map);

#endif
