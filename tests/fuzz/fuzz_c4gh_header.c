/*
 * fuzz_c4gh_header.c - Crypt4GH header length, decryption, edit lists and
 * re-encryption over hostile headers.
 *
 * Input: one mode byte, then
 *   even mode: the header bytes as is (seeds: the start of the .c4gh
 *              files of tests/data/crypt4gh, for recipient1);
 *   odd mode:  packet plaintexts, each a 16-bit little-endian length and
 *              that many bytes, which the target seals for recipient1 so
 *              that the packet parser behind the tag is reached.
 * Invariants checked: -EAGAIN asks for more than was given; a header
 * alone measures the same; a decrypted header is consistent; the edit
 * list mapping agrees with an independent walk; re-encrypting to the
 * same key gives back the same keys and edits.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "c4gh.h"
#include "cipher.h"

#include "fuzz_common.h"

#define SEALED_PACKETS_MAX	24
#define ORACLE_PLAIN_MAX	300

static void check_edits(const struct c4gh_header *hdr, uint64_t plain_size)
{
	static uint64_t map[ORACLE_PLAIN_MAX];
	uint64_t plain_off, run, j;
	size_t vis, v;
	int r;

	vis = fuzz_edit_apply(hdr->edits, hdr->nedits, hdr->has_edits,
			      (size_t)plain_size, map);
	FUZZ_CHECK(c4gh_edit_visible_size(hdr, plain_size) == vis);
	for (v = 0; v < vis; v++) {
		r = c4gh_edit_map(hdr, plain_size, v, &plain_off, &run);
		FUZZ_CHECK(r == 0);
		FUZZ_CHECK(plain_off == map[v]);
		FUZZ_CHECK(run >= 1 && run <= vis - v);
		for (j = 0; j < run; j++)
			FUZZ_CHECK(map[v + j] == plain_off + j);
	}
	FUZZ_CHECK(c4gh_edit_map(hdr, plain_size, vis, &plain_off, &run) ==
		   -ERANGE);
	FUZZ_CHECK(c4gh_edit_map(hdr, plain_size, UINT64_MAX, &plain_off,
				 &run) == -ERANGE);
}

static void check_reencrypt(const uint8_t *buf, size_t len,
			    const struct c4gh_header *hdr)
{
	struct c4gh_header again;
	uint8_t pk[32], *out = NULL;
	size_t out_len = 0;
	int r;

	fuzz_c4gh_pk(pk);
	r = c4gh_header_reencrypt(buf, len, fuzz_c4gh_sk, fuzz_writer_sk,
				  (const uint8_t (*)[32])pk, 1, &out,
				  &out_len);
	if (r == -ENOMEM)
		return;
	FUZZ_CHECK(r == 0);

	r = c4gh_header_decrypt(out, out_len, fuzz_c4gh_sk, &again);
	FUZZ_CHECK(r == 0);
	FUZZ_CHECK(again.header_len == out_len);
	FUZZ_CHECK(again.nkeys == hdr->nkeys);
	FUZZ_CHECK(!memcmp(again.keys, hdr->keys, 32 * (size_t)hdr->nkeys));
	FUZZ_CHECK(again.has_edits == hdr->has_edits);
	FUZZ_CHECK(again.nedits == hdr->nedits);
	FUZZ_CHECK(!memcmp(again.edits, hdr->edits,
			   sizeof(uint64_t) * hdr->nedits));
	c4gh_header_release(&again);
	free(out);
}

static void check_header(const uint8_t *buf, size_t len)
{
	static struct c4gh_header hdr;	/* 32 KiB: not on the stack */
	uint64_t need = 0, again_need = 0;
	int n, r;

	n = c4gh_header_length(buf, len, &need);
	if (n == -EAGAIN)
		FUZZ_CHECK(need > len && need <= C4GH_HEADER_MAX);
	if (n >= 0) {
		FUZZ_CHECK((uint64_t)n <= C4GH_HEADER_MAX);
		FUZZ_CHECK(n >= C4GH_PREAMBLE_LEN);
		if ((size_t)n <= len)
			FUZZ_CHECK(c4gh_header_length(buf, (size_t)n,
						      &again_need) == n);
	}

	r = c4gh_header_decrypt(buf, len, fuzz_c4gh_sk, &hdr);
	if (r < 0) {
		FUZZ_CHECK(r == -EBADMSG || r == -EPROTONOSUPPORT ||
			   r == -ENOKEY || r == -ENOMEM);
		return;
	}
	FUZZ_CHECK(n >= 0 && hdr.header_len == (uint64_t)n);
	FUZZ_CHECK(hdr.nkeys >= 1 && hdr.nkeys <= C4GH_MAX_KEYS);
	FUZZ_CHECK(hdr.nedits <= C4GH_MAX_EDITS);
	FUZZ_CHECK(hdr.has_edits || hdr.nedits == 0);

	check_edits(&hdr, 0);
	check_edits(&hdr, 1);
	check_edits(&hdr, 97);
	check_edits(&hdr, ORACLE_PLAIN_MAX);
	/* Sizes past any buffer: only the arithmetic. */
	(void)c4gh_edit_visible_size(&hdr, UINT64_MAX);
	(void)c4gh_edit_visible_size(&hdr, (uint64_t)1 << 40);

	check_reencrypt(buf, len, &hdr);
	c4gh_header_release(&hdr);
}

/* Build "crypt4gh", version 1, count, then the sealed packets. */
static void run_sealed(const uint8_t *data, size_t size)
{
	size_t cap = C4GH_PREAMBLE_LEN +
		     SEALED_PACKETS_MAX * FUZZ_PACKET_OVERHEAD + size;
	uint8_t *buf, tweak;
	size_t off = C4GH_PREAMBLE_LEN, i = 0;
	uint32_t count = 0;

	if (size < 1)
		return;
	tweak = data[0];
	data++;
	size--;

	buf = malloc(cap);
	if (!buf)
		return;
	memcpy(buf, "crypt4gh\1\0\0\0", 12);
	while (i < size && count < SEALED_PACKETS_MAX) {
		size_t plen = fuzz_le16(data + i, size - i);

		i += 2;
		if (plen > size - (i < size ? i : size))
			plen = i < size ? size - i : 0;
		if (fuzz_c4gh_seal(data + i, plen, (uint8_t)count,
				   buf + off) < 0)
			break;
		off += plen + FUZZ_PACKET_OVERHEAD;
		i += plen;
		count++;
	}
	/* The tweak may claim one packet more or less than there is. */
	if (tweak & 1)
		count += (tweak & 2) ? 1u : (uint32_t)-1;
	buf[12] = (uint8_t)count;
	buf[13] = (uint8_t)(count >> 8);
	buf[14] = (uint8_t)(count >> 16);
	buf[15] = (uint8_t)(count >> 24);

	check_header(buf, off);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		run_sealed(data + 1, size - 1);
	else
		check_header(data + 1, size - 1);
	return 0;
}
