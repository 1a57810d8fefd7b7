/*
 * test_c4gh.c - Crypt4GH format core: reference vectors (every row of
 * expected.tsv), the README's worked example, round trips, header
 * re-encryption, edit lists and malformed input.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "c4gh.h"
#include "cipher.h"

#define TSV_ROWS	33

/* ---- helpers ---- */

static char *data_path(const char *rel)
{
	const char *base = getenv("MARKETFS_TESTDATA");
	char *p;

	assert_non_null(base);
	assert_true(asprintf(&p, "%s/crypt4gh/%s", base, rel) > 0);
	return p;
}

static void hex_decode(const char *hex, uint8_t *out, size_t len)
{
	size_t i;

	assert_int_equal(strlen(hex), 2 * len);
	for (i = 0; i < len; i++) {
		unsigned int v;

		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

static uint8_t *read_all(const char *rel, size_t *ret_len)
{
	char *path = data_path(rel);
	struct stat st;
	uint8_t *buf;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	free(path);
	*ret_len = (size_t)st.st_size;
	return buf;
}

static int memfd_with(const void *data, size_t len)
{
	int fd = memfd_create("c4gh-test", MFD_CLOEXEC);

	assert_true(fd >= 0);
	if (len)
		assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

/* Whole content of fd, from its start. */
static uint8_t *fd_contents(int fd, size_t *ret_len)
{
	off_t end = lseek(fd, 0, SEEK_END);
	uint8_t *buf;

	assert_true(end >= 0);
	buf = malloc((size_t)end + 1);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, (size_t)end, 0), end);
	*ret_len = (size_t)end;
	return buf;
}

/* Decrypt a buffer with sk; returns the result and the output. */
static int decrypt_buf(const uint8_t *in, size_t len, const uint8_t sk[32],
		       uint8_t **ret_out, size_t *ret_outlen)
{
	int ifd = memfd_with(in, len);
	int ofd = memfd_with(NULL, 0);
	int r;

	r = c4gh_decrypt_fd(ifd, ofd, sk);
	*ret_out = fd_contents(ofd, ret_outlen);
	close(ifd);
	close(ofd);
	return r;
}

/* Deterministic test content (any bytes would do). */
static void fill_pattern(uint8_t *buf, size_t len, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;
	size_t i;

	for (i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = (uint8_t)x;
	}
}

static const char R1_SK[] =
	"8a5d0118e8f393bbee0696a85c446ebb082635edba08f09e4e1a813c08c28ad2";
static const char R2_SK[] =
	"4178fc77f48635b63bbe380b8b522a189be74e90dd8074e75d4ff84d22b6c7f9";
static const char R2_PK[] =
	"fad175eed978efd30d3a3cbd1ca36a6d7e9264e8a12557661e7e84bd761d3462";

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = v & 0xff;
	p[1] = (v >> 8) & 0xff;
	p[2] = (v >> 16) & 0xff;
	p[3] = (uint8_t)(v >> 24);
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

/*
 * An independent packet sealer (from the spec, not from c4gh.c), for
 * crafting headers c4gh_header_build would never write.  Writes
 * len + 68 bytes to out and returns that count.
 */
static size_t seal_packet(const uint8_t wsk[32], const uint8_t rpk[32],
			  uint32_t method, const uint8_t *pt, size_t len,
			  uint8_t *out)
{
	uint8_t wpk[32], kin[96], digest[64];

	assert_int_equal(cipher_x25519_public(wsk, wpk), 0);
	put32(out, (uint32_t)(len + 68));
	put32(out + 4, method);
	memcpy(out + 8, wpk, 32);
	assert_int_equal(cipher_random(out + 40, 12), 0);
	assert_int_equal(cipher_x25519_shared(wsk, rpk, kin), 0);
	memcpy(kin + 32, rpk, 32);
	memcpy(kin + 64, wpk, 32);
	assert_int_equal(cipher_blake2b512(kin, sizeof(kin), digest), 0);
	assert_int_equal(cipher_aead_encrypt(digest, out + 40, pt, len,
					     out + 52), 0);
	return len + 68;
}

static size_t key_payload(uint8_t *p, uint32_t method, const uint8_t key[32])
{
	put32(p, 0);
	put32(p + 4, method);
	memcpy(p + 8, key, 32);
	return 40;
}

static size_t edit_payload(uint8_t *p, const uint64_t *e, uint32_t n)
{
	uint32_t i;

	put32(p, 1);
	put32(p + 4, n);
	for (i = 0; i < n; i++)
		put64(p + 8 + 8 * i, e[i]);
	return 8 + 8 * (size_t)n;
}

static void preamble(uint8_t *p, uint32_t count)
{
	memcpy(p, "crypt4gh", 8);
	put32(p + 8, 1);
	put32(p + 12, count);
}

/* The spec's ApplyEditList over a whole plaintext, as the oracle. */
static size_t apply_edits(const uint8_t *pt, size_t len, const uint64_t *e,
			  unsigned int n, uint8_t *out)
{
	uint64_t pos = 0, k;
	size_t o = 0;
	unsigned int i;

	if (n == 0) {
		memcpy(out, pt, len);
		return len;
	}
	for (i = 0; i < n; i++) {
		if (i % 2 == 0) {
			pos = e[i] > UINT64_MAX - pos ? UINT64_MAX : pos + e[i];
			continue;
		}
		if (pos >= len)
			break;
		k = e[i] < len - pos ? e[i] : len - pos;
		memcpy(out + o, pt + pos, k);
		o += k;
		pos += k;
	}
	if (n % 2 == 1 && pos < len) {
		memcpy(out + o, pt + pos, len - pos);
		o += len - pos;
	}
	return o;
}

/* ---- reference vectors ---- */

static void test_c4gh_decrypts_every_expected_tsv_row(void **state)
{
	char *tsv_path = data_path("expected.tsv");
	FILE *f = fopen(tsv_path, "re");
	char line[1024];
	unsigned int rows = 0, plain = 0, errors = 0;

	(void)state;
	assert_non_null(f);
	assert_non_null(fgets(line, sizeof(line), f));
	assert_int_equal(strncmp(line, "file\tkey\tpassphrase\t", 20), 0);

	while (fgets(line, sizeof(line), f)) {
		char *fields[7] = { 0 };
		char *p = line, *keypath, *encpath;
		uint8_t sk[32], digest[32], *out;
		char hex[65];
		size_t outlen;
		int i, r, ifd, ofd;

		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '\0')
			continue;
		for (i = 0; i < 7; i++)
			fields[i] = strsep(&p, "\t");
		assert_non_null(fields[3]);
		rows++;

		keypath = data_path(fields[1]);
		if (strcmp(fields[2], "-") == 0)
			r = c4gh_seckey_read_file(keypath, NULL, 0, sk);
		else
			r = c4gh_seckey_read_file(keypath, fields[2],
						  strlen(fields[2]), sk);
		assert_int_equal(r, 0);
		free(keypath);

		encpath = data_path(fields[0]);
		ifd = open(encpath, O_RDONLY | O_CLOEXEC);
		assert_true(ifd >= 0);
		free(encpath);
		ofd = memfd_with(NULL, 0);
		r = c4gh_decrypt_fd(ifd, ofd, sk);
		out = fd_contents(ofd, &outlen);
		close(ifd);
		close(ofd);

		if (strcmp(fields[3], "plaintext") == 0) {
			if (r != 0)
				fail_msg("%s with %s: %d", fields[0],
					 fields[1], r);
			assert_non_null(fields[5]);
			assert_int_equal(outlen, strtoull(fields[5], NULL, 10));
			assert_int_equal(cipher_sha256(out, outlen, digest), 0);
			cipher_hex(digest, 32, hex);
			assert_string_equal(hex, fields[4]);
			plain++;
		} else {
			assert_int_equal(strncmp(fields[3], "error:", 6), 0);
			if (r != -ENOKEY)
				fail_msg("%s with %s: %d, want -ENOKEY",
					 fields[0], fields[1], r);
			assert_int_equal(outlen, 0);
			errors++;
		}
		free(out);
		cipher_wipe(sk, sizeof(sk));
	}
	fclose(f);
	free(tsv_path);

	assert_int_equal(rows, TSV_ROWS);
	assert_int_equal(plain, 12);
	assert_int_equal(errors, 21);
}

static const char WORKED_FILE[] =
	"637279707434676801000000010000006c00000000000000f854ebe0c38ab2b6"
	"001124101eaeadb75a76302c373444736a4cd210ea921600e39e0c3871a79116"
	"b94e725a50c6b3fa9533b5dabc625263476257b15f509d6d65ca1bb1965dd50a"
	"53ee8961988be240680fab70256c8a1eaacd518c33c2fef6b465efd29598adef"
	"cb64d5ae29a7f70228af36389976e714fe7f6610a637c48c6c";

static void test_c4gh_worked_example_byte_by_byte(void **state)
{
	uint8_t file[153], sk[32], key[32], pt[1];
	struct c4gh_header hdr;
	uint64_t need = 0;
	size_t disk_len;
	uint8_t *disk;

	(void)state;
	hex_decode(WORKED_FILE, file, sizeof(file));
	disk = read_all("enc/size-1.bin.c4gh", &disk_len);
	assert_int_equal(disk_len, sizeof(file));
	assert_memory_equal(disk, file, sizeof(file));
	free(disk);

	/* The header length is found step by step. */
	assert_int_equal(c4gh_header_length(file, 8, &need), -EAGAIN);
	assert_int_equal(need, 16);
	assert_int_equal(c4gh_header_length(file, 16, &need), -EAGAIN);
	assert_int_equal(need, 20);
	assert_int_equal(c4gh_header_length(file, 20, &need), 124);
	assert_int_equal(c4gh_header_length(file, 153, &need), 124);

	hex_decode(R1_SK, sk, 32);
	assert_int_equal(c4gh_header_decrypt(file, 124, sk, &hdr), 0);
	assert_int_equal(hdr.nkeys, 1);
	assert_int_equal(hdr.has_edits, 0);
	assert_int_equal(hdr.header_len, 124);
	hex_decode("730c25a76b1edc6799cecef5cf708836"
		   "7fc11669c68969eed4099409780d67a2", key, 32);
	assert_memory_equal(hdr.keys[0], key, 32);

	/* A header shorter than it claims is malformed. */
	assert_int_equal(c4gh_header_decrypt(file, 123, sk, &hdr), -EBADMSG);
	assert_int_equal(c4gh_header_decrypt(file, 124, sk, &hdr), 0);

	assert_int_equal(c4gh_segment_decrypt(&hdr, file + 124, 29, pt), 1);
	assert_int_equal(pt[0], 0x7c);
	c4gh_header_release(&hdr);
	assert_int_equal(hdr.nkeys, 0);
}

/* ---- writing ---- */

static void roundtrip(size_t size)
{
	uint8_t wsk[32], wpk[32], rsk[32], rpk[32], dkey[32];
	struct c4gh_header hdr;
	uint8_t *plain, *enc, *out;
	size_t enclen, outlen;
	uint64_t hlen = 0;
	int ifd, ofd;

	assert_int_equal(cipher_x25519_keypair(wsk, wpk), 0);
	assert_int_equal(cipher_x25519_keypair(rsk, rpk), 0);
	plain = malloc(size + 1);
	assert_non_null(plain);
	fill_pattern(plain, size, (uint32_t)size);

	ifd = memfd_with(plain, size);
	ofd = memfd_with(NULL, 0);
	assert_int_equal(c4gh_encrypt_fd(ifd, ofd, wsk,
					 (const uint8_t (*)[32])rpk, 1, dkey,
					 &hlen), 0);
	enc = fd_contents(ofd, &enclen);
	close(ifd);
	close(ofd);

	assert_int_equal(hlen, 124);
	assert_int_equal(enclen, 124 + c4gh_cipher_size(size));
	/* The reported data key is the one in the header. */
	assert_int_equal(c4gh_header_decrypt(enc, enclen, rsk, &hdr), 0);
	assert_memory_equal(hdr.keys[0], dkey, 32);
	/* The writer's public key is in the packet. */
	assert_memory_equal(enc + 24, wpk, 32);
	c4gh_header_release(&hdr);

	assert_int_equal(decrypt_buf(enc, enclen, rsk, &out, &outlen), 0);
	assert_int_equal(outlen, size);
	if (size)
		assert_memory_equal(out, plain, size);

	/* Another key opens nothing. */
	free(out);
	assert_int_equal(decrypt_buf(enc, enclen, wsk, &out, &outlen),
			 -ENOKEY);
	assert_int_equal(outlen, 0);

	free(out);
	free(enc);
	free(plain);
}

static void test_c4gh_roundtrip_sizes(void **state)
{
	static const size_t sizes[] = {
		0, 1, 65535, 65536, 65537,
		3 * 65536 - 1, 3 * 65536, 3 * 65536 + 1,
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		roundtrip(sizes[i]);
}

static void test_c4gh_size_math(void **state)
{
	uint64_t s = 12345;
	uint64_t r;

	(void)state;
	assert_int_equal(c4gh_plain_size(0, &s), 0);
	assert_int_equal(s, 0);
	for (r = 1; r <= 28; r++) {
		assert_int_equal(c4gh_plain_size(r, &s), -EBADMSG);
		assert_int_equal(c4gh_plain_size(3 * 65564 + r, &s), -EBADMSG);
	}
	assert_int_equal(c4gh_plain_size(29, &s), 0);
	assert_int_equal(s, 1);
	assert_int_equal(c4gh_plain_size(65564, &s), 0);
	assert_int_equal(s, 65536);
	assert_int_equal(c4gh_plain_size(65563, &s), 0);
	assert_int_equal(s, 65535);
	assert_int_equal(c4gh_plain_size(49 * 65564 + 29, &s), 0);
	assert_int_equal(s, 49 * 65536 + 1);

	assert_int_equal(c4gh_cipher_size(0), 0);
	assert_int_equal(c4gh_cipher_size(1), 29);
	assert_int_equal(c4gh_cipher_size(65536), 65564);
	assert_int_equal(c4gh_cipher_size(65537), 65564 + 29);
	assert_int_equal(c4gh_cipher_size(3158073), 48 * 65564 + 12345 + 28);
}

static void test_c4gh_segment_rejects_bad_lengths(void **state)
{
	uint8_t key[32], pt[65536], seg[65564 + 1];
	struct c4gh_header hdr = { 0 };

	(void)state;
	memset(key, 7, sizeof(key));
	memcpy(hdr.keys[0], key, 32);
	hdr.nkeys = 1;
	fill_pattern(pt, sizeof(pt), 1);

	assert_int_equal(c4gh_segment_encrypt(key, pt, 0, seg), -EINVAL);
	assert_int_equal(c4gh_segment_encrypt(key, pt, 65537, seg), -EINVAL);
	assert_int_equal(c4gh_segment_encrypt(key, pt, 65536, seg), 0);
	assert_int_equal(c4gh_segment_decrypt(&hdr, seg, 65564, pt), 65536);
	assert_int_equal(c4gh_segment_decrypt(&hdr, seg, 65565, pt), -EBADMSG);
	assert_int_equal(c4gh_segment_decrypt(&hdr, seg, 28, pt), -EBADMSG);

	/* Several keys: tried in order, the second one works. */
	memset(hdr.keys[0], 9, 32);
	memcpy(hdr.keys[1], key, 32);
	hdr.nkeys = 2;
	assert_int_equal(c4gh_segment_decrypt(&hdr, seg, 65564, pt), 65536);
	hdr.nkeys = 1;
	memset(pt, 0x55, sizeof(pt));
	assert_int_equal(c4gh_segment_decrypt(&hdr, seg, 65564, pt), -EBADMSG);
	/* A failed segment leaves no plaintext behind. */
	assert_int_equal(pt[0], 0);
	assert_int_equal(pt[65535], 0);
}

static void test_c4gh_reencrypt_header_for_recipient2(void **state)
{
	uint8_t r1sk[32], r2sk[32], r2pk[32], wsk[32], wpk[32];
	struct c4gh_header orig, hdr;
	uint8_t *enc, *nbuf, *file, *out, digest[32];
	size_t enclen, nlen, outlen;
	char hex[65];

	(void)state;
	hex_decode(R1_SK, r1sk, 32);
	hex_decode(R2_SK, r2sk, 32);
	hex_decode(R2_PK, r2pk, 32);
	assert_int_equal(cipher_x25519_keypair(wsk, wpk), 0);

	enc = read_all("enc/size-200000.bin.c4gh", &enclen);
	assert_int_equal(c4gh_header_decrypt(enc, enclen, r1sk, &orig), 0);

	/* recipient2 cannot open the original. */
	assert_int_equal(c4gh_header_reencrypt(enc, enclen, r2sk, wsk,
					       (const uint8_t (*)[32])r2pk, 1,
					       &nbuf, &nlen), -ENOKEY);
	assert_null(nbuf);

	assert_int_equal(c4gh_header_reencrypt(enc, enclen, r1sk, wsk,
					       (const uint8_t (*)[32])r2pk, 1,
					       &nbuf, &nlen), 0);
	assert_int_equal(nlen, 124);
	assert_memory_equal(nbuf + 24, wpk, 32);
	assert_int_equal(c4gh_header_decrypt(nbuf, nlen, r1sk, &hdr), -ENOKEY);
	assert_int_equal(c4gh_header_decrypt(nbuf, nlen, r2sk, &hdr), 0);
	assert_int_equal(hdr.nkeys, 1);
	assert_memory_equal(hdr.keys[0], orig.keys[0], 32);
	c4gh_header_release(&hdr);

	/* New header + the untouched data section decrypts for recipient2. */
	file = malloc(nlen + enclen - 124);
	assert_non_null(file);
	memcpy(file, nbuf, nlen);
	memcpy(file + nlen, enc + 124, enclen - 124);
	assert_int_equal(decrypt_buf(file, nlen + enclen - 124, r2sk, &out,
				     &outlen), 0);
	assert_int_equal(outlen, 200000);
	assert_int_equal(cipher_sha256(out, outlen, digest), 0);
	cipher_hex(digest, 32, hex);
	assert_string_equal(hex, "c26c38499d00274d868c7eba520c4575"
				 "a3e70470cdbe3bb7a1f74a40b3315e14");

	c4gh_header_release(&orig);
	free(out);
	free(file);
	free(nbuf);
	free(enc);
}

static void test_c4gh_reencrypt_keeps_edit_list(void **state)
{
	uint8_t r1sk[32], r2sk[32], r2pk[32], wsk[32], wpk[32];
	uint8_t r3sk[32], r3pk[32];
	uint8_t recips[2][32];
	struct c4gh_header hdr;
	uint8_t *enc, *nbuf;
	size_t enclen, nlen;

	(void)state;
	hex_decode(R1_SK, r1sk, 32);
	hex_decode(R2_SK, r2sk, 32);
	hex_decode(R2_PK, r2pk, 32);
	assert_int_equal(cipher_x25519_keypair(wsk, wpk), 0);
	assert_int_equal(cipher_x25519_keypair(r3sk, r3pk), 0);
	memcpy(recips[0], r2pk, 32);
	memcpy(recips[1], r3pk, 32);

	enc = read_all("enc/size-3158073.bin.editlist.c4gh", &enclen);
	assert_int_equal(c4gh_header_reencrypt(enc, enclen, r1sk, wsk,
					       (const uint8_t (*)[32])recips,
					       2, &nbuf, &nlen), 0);
	assert_int_equal(nlen, 16 + 2 * (108 + 92));
	assert_int_equal(c4gh_header_decrypt(nbuf, nlen, r3sk, &hdr), 0);
	assert_int_equal(hdr.has_edits, 1);
	assert_int_equal(hdr.nedits, 2);
	assert_int_equal(hdr.edits[0], 34464);
	assert_int_equal(hdr.edits[1], 300000);
	c4gh_header_release(&hdr);
	free(nbuf);
	free(enc);
}

static void test_c4gh_header_build_multi_recipient(void **state)
{
	uint8_t wsk[32], wpk[32], sk[4][32], pk[4][32], dkey[32];
	static const uint64_t edits[] = { 5, 10, 15 };
	struct c4gh_header hdr;
	uint8_t *buf;
	size_t len;
	int i;

	(void)state;
	assert_int_equal(cipher_x25519_keypair(wsk, wpk), 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(cipher_x25519_keypair(sk[i], pk[i]), 0);
	assert_int_equal(cipher_random(dkey, 32), 0);

	assert_int_equal(c4gh_header_build(wsk, (const uint8_t (*)[32])pk, 3,
					   dkey, edits, 3, &buf, &len), 0);
	assert_int_equal(len, 16 + 3 * (108 + 76 + 24));
	assert_int_equal(c4gh_header_length(buf, len, NULL), (int)len);
	for (i = 0; i < 3; i++) {
		assert_int_equal(c4gh_header_decrypt(buf, len, sk[i], &hdr), 0);
		assert_int_equal(hdr.nkeys, 1);
		assert_memory_equal(hdr.keys[0], dkey, 32);
		assert_int_equal(hdr.has_edits, 1);
		assert_int_equal(hdr.nedits, 3);
		assert_int_equal(hdr.edits[2], 15);
		assert_int_equal(hdr.header_len, len);
		c4gh_header_release(&hdr);
	}
	assert_int_equal(c4gh_header_decrypt(buf, len, sk[3], &hdr), -ENOKEY);
	/* Fresh nonce in every packet. */
	assert_memory_not_equal(buf + 16 + 40, buf + 16 + 108 + 40, 12);
	assert_memory_not_equal(buf + 16 + 40, buf + 16 + 208 + 40, 12);
	free(buf);

	assert_int_equal(c4gh_header_build(wsk, (const uint8_t (*)[32])pk, 0,
					   dkey, NULL, 0, &buf, &len), -EINVAL);
}

/* ---- edit lists ---- */

/* Encrypt pt with a header carrying edits (n may be 0: an empty list). */
static uint8_t *file_with_edits(const uint8_t wsk[32], const uint8_t rpk[32],
				const uint8_t *pt, size_t len,
				const uint64_t *e, uint32_t n, int with_list,
				size_t *ret_len)
{
	uint8_t key[32], payload[8 + 8 * 64];
	size_t hl, pl, off, i;
	uint8_t *f;

	assert_true(n <= 64);
	f = malloc(16 + 2 * 68 + sizeof(payload) + c4gh_cipher_size(len));
	assert_non_null(f);
	assert_int_equal(cipher_random(key, 32), 0);

	preamble(f, with_list ? 2 : 1);
	hl = 16;
	pl = key_payload(payload, 0, key);
	hl += seal_packet(wsk, rpk, 0, payload, pl, f + hl);
	if (with_list) {
		pl = edit_payload(payload, e, n);
		hl += seal_packet(wsk, rpk, 0, payload, pl, f + hl);
	}
	off = hl;
	for (i = 0; i < len; i += 65536) {
		size_t m = len - i < 65536 ? len - i : 65536;

		assert_int_equal(c4gh_segment_encrypt(key, pt + i, m, f + off),
				 0);
		off += m + 28;
	}
	*ret_len = off;
	return f;
}

static void check_edits(const uint64_t *e, uint32_t n, int with_list,
			size_t want_len)
{
	uint8_t wsk[32], wpk[32], rsk[32], rpk[32];
	size_t len = 3 * 65536 + 1000, flen, outlen, explen;
	struct c4gh_header hdr;
	uint8_t *pt, *f, *out, *exp;
	uint64_t v, poff, run;

	assert_int_equal(cipher_x25519_keypair(wsk, wpk), 0);
	assert_int_equal(cipher_x25519_keypair(rsk, rpk), 0);
	pt = malloc(len);
	exp = malloc(len);
	assert_non_null(pt);
	assert_non_null(exp);
	fill_pattern(pt, len, n + 77);
	explen = with_list ? apply_edits(pt, len, e, n, exp) : len;
	if (!with_list)
		memcpy(exp, pt, len);
	assert_int_equal(explen, want_len);

	f = file_with_edits(wsk, rpk, pt, len, e, n, with_list, &flen);
	assert_int_equal(c4gh_header_decrypt(f, flen, rsk, &hdr), 0);
	assert_int_equal(hdr.has_edits, with_list);
	assert_int_equal(hdr.nedits, n);
	assert_int_equal(c4gh_edit_visible_size(&hdr, len), want_len);

	/* Every visible byte maps back to the right plaintext byte. */
	for (v = 0; v < want_len; v += run) {
		assert_int_equal(c4gh_edit_map(&hdr, len, v, &poff, &run), 0);
		assert_true(run > 0);
		assert_true(v + run <= want_len);
		assert_memory_equal(pt + poff, exp + v, run);
	}
	assert_int_equal(c4gh_edit_map(&hdr, len, want_len, &poff, &run),
			 -ERANGE);
	c4gh_header_release(&hdr);

	assert_int_equal(decrypt_buf(f, flen, rsk, &out, &outlen), 0);
	assert_int_equal(outlen, want_len);
	if (want_len)
		assert_memory_equal(out, exp, want_len);

	free(out);
	free(f);
	free(exp);
	free(pt);
}

static void test_c4gh_edit_list_even_count_discards_rest(void **state)
{
	static const uint64_t e[] = { 100, 70000, 65536, 10 };

	(void)state;
	check_edits(e, 4, 1, 70010);
}

static void test_c4gh_edit_list_odd_count_keeps_rest(void **state)
{
	static const uint64_t e[] = { 100, 70000, 65536 };
	size_t len = 3 * 65536 + 1000;

	(void)state;
	check_edits(e, 3, 1, 70000 + (len - 100 - 70000 - 65536));
}

static void test_c4gh_edit_list_zero_keeps(void **state)
{
	static const uint64_t e[] = { 0, 0, 5, 0, 0, 3, 0 };
	size_t len = 3 * 65536 + 1000;

	(void)state;
	/* keep 0, keep 0, keep 3, then (odd) the rest after skipping 5 */
	check_edits(e, 7, 1, 3 + (len - 8));
}

static void test_c4gh_edit_list_empty_means_no_edit(void **state)
{
	(void)state;
	check_edits(NULL, 0, 1, 3 * 65536 + 1000);
	check_edits(NULL, 0, 0, 3 * 65536 + 1000);
}

static void test_c4gh_edit_list_keeps_clipped_at_eof(void **state)
{
	static const uint64_t e1[] = { 196000, 1000000 };
	static const uint64_t e2[] = { 10, 20, 5000000, 7, 3 };
	static const uint64_t e3[] = { UINT64_MAX, UINT64_MAX, 1, 2 };

	(void)state;
	check_edits(e1, 2, 1, 3 * 65536 + 1000 - 196000);
	check_edits(e2, 5, 1, 20);
	check_edits(e3, 4, 1, 0);
}

/* ---- malformed input ---- */

static void test_c4gh_rejects_bad_preamble(void **state)
{
	uint8_t file[153], sk[32], *out;
	struct c4gh_header hdr;
	uint64_t need = 0;
	size_t outlen;

	(void)state;
	hex_decode(WORKED_FILE, file, sizeof(file));
	hex_decode(R1_SK, sk, 32);

	file[0] = 'C';
	assert_int_equal(c4gh_header_length(file, 3, &need), -EBADMSG);
	assert_int_equal(c4gh_header_decrypt(file, 153, sk, &hdr), -EBADMSG);
	assert_int_equal(decrypt_buf(file, 153, sk, &out, &outlen), -EBADMSG);
	assert_int_equal(outlen, 0);
	free(out);
	file[0] = 'c';

	put32(file + 8, 2);
	assert_int_equal(c4gh_header_length(file, 16, &need),
			 -EPROTONOSUPPORT);
	assert_int_equal(decrypt_buf(file, 153, sk, &out, &outlen),
			 -EPROTONOSUPPORT);
	free(out);
	put32(file + 8, 1);

	/* Too short to be anything. */
	assert_int_equal(decrypt_buf(file, 10, sk, &out, &outlen), -EBADMSG);
	free(out);
	assert_int_equal(decrypt_buf(file, 0, sk, &out, &outlen), -EBADMSG);
	free(out);
}

static void test_c4gh_rejects_bad_packet_lengths(void **state)
{
	static const uint32_t bad[] = { 0, 1, 7, 0xFFFFFFFF, (1u << 20) };
	uint8_t file[153], sk[32], *out;
	struct c4gh_header hdr;
	uint64_t need = 0;
	size_t i, outlen;

	(void)state;
	hex_decode(WORKED_FILE, file, sizeof(file));
	hex_decode(R1_SK, sk, 32);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		put32(file + 16, bad[i]);
		assert_int_equal(c4gh_header_length(file, 153, &need),
				 -EBADMSG);
		assert_int_equal(c4gh_header_decrypt(file, 153, sk, &hdr),
				 -EBADMSG);
		assert_int_equal(decrypt_buf(file, 153, sk, &out, &outlen),
				 -EBADMSG);
		assert_int_equal(outlen, 0);
		free(out);
	}

	/* Longer than the bytes there: a truncated header. */
	put32(file + 16, 154);
	assert_int_equal(c4gh_header_length(file, 153, &need), 170);
	assert_int_equal(c4gh_header_decrypt(file, 153, sk, &hdr), -EBADMSG);
	assert_int_equal(decrypt_buf(file, 153, sk, &out, &outlen), -EBADMSG);
	free(out);

	/* Method-0 packet too short for its own fields. */
	put32(file + 16, 60);
	assert_int_equal(c4gh_header_decrypt(file, 153, sk, &hdr), -EBADMSG);
	put32(file + 16, 108);

	/* A huge count fails from the preamble alone, not after a walk. */
	put32(file + 12, 0xFFFFFFFF);
	assert_int_equal(c4gh_header_length(file, 16, &need), -EBADMSG);
	assert_int_equal(decrypt_buf(file, 153, sk, &out, &outlen), -EBADMSG);
	free(out);
	put32(file + 12, 200000);
	assert_int_equal(c4gh_header_length(file, 16, &need), -EBADMSG);

	/* A plausible count with too few packets: truncated. */
	put32(file + 12, 2);
	assert_int_equal(c4gh_header_length(file, 124, &need), -EAGAIN);
	assert_int_equal(need, 128);
	assert_int_equal(decrypt_buf(file, 153, sk, &out, &outlen), -EBADMSG);
	free(out);
	assert_int_equal(decrypt_buf(file, 124, sk, &out, &outlen), -EBADMSG);
	free(out);

	/* count 0: nothing for us. */
	put32(file + 12, 0);
	assert_int_equal(c4gh_header_length(file, 153, &need), 16);
	assert_int_equal(c4gh_header_decrypt(file, 153, sk, &hdr), -ENOKEY);
}

/* Build a header of the given payloads for rpk; returns its length. */
static size_t craft(uint8_t *buf, const uint8_t wsk[32], const uint8_t rpk[32],
		    const uint32_t *methods, uint8_t (*pl)[600],
		    const size_t *pllen, unsigned int n)
{
	size_t off = 16;
	unsigned int i;

	preamble(buf, n);
	for (i = 0; i < n; i++)
		off += seal_packet(wsk, rpk, methods[i], pl[i], pllen[i],
				   buf + off);
	return off;
}

static void test_c4gh_header_packet_rules(void **state)
{
	uint8_t wsk[32], wpk[32], rsk[32], rpk[32], osk[32], opk[32];
	uint8_t k1[32], k2[32], buf[4096], pl[4][600];
	uint32_t methods[4] = { 0, 0, 0, 0 };
	static const uint64_t e[] = { 1, 2 };
	struct c4gh_header hdr;
	size_t len, pllen[4];

	(void)state;
	assert_int_equal(cipher_x25519_keypair(wsk, wpk), 0);
	assert_int_equal(cipher_x25519_keypair(rsk, rpk), 0);
	assert_int_equal(cipher_x25519_keypair(osk, opk), 0);
	memset(k1, 1, 32);
	memset(k2, 2, 32);

	/* Two keys, in header order; the same key twice is kept once. */
	pllen[0] = key_payload(pl[0], 0, k1);
	pllen[1] = key_payload(pl[1], 0, k2);
	pllen[2] = key_payload(pl[2], 0, k1);
	len = craft(buf, wsk, rpk, methods, pl, pllen, 3);
	assert_int_equal(c4gh_header_decrypt(buf, len, rsk, &hdr), 0);
	assert_int_equal(hdr.nkeys, 2);
	assert_memory_equal(hdr.keys[0], k1, 32);
	assert_memory_equal(hdr.keys[1], k2, 32);
	assert_int_equal(hdr.has_edits, 0);

	/* A packet of an unknown header method is skipped. */
	methods[0] = 7;
	len = craft(buf, wsk, rpk, methods, pl, pllen, 2);
	assert_int_equal(c4gh_header_decrypt(buf, len, rsk, &hdr), 0);
	assert_int_equal(hdr.nkeys, 1);
	assert_memory_equal(hdr.keys[0], k2, 32);
	len = craft(buf, wsk, rpk, methods, pl, pllen, 1);
	assert_int_equal(c4gh_header_decrypt(buf, len, rsk, &hdr), -ENOKEY);
	methods[0] = 0;

	/* Unknown data method, also mixed with a known one. */
	pllen[0] = key_payload(pl[0], 1, k1);
	len = craft(buf, wsk, rpk, methods, pl, pllen, 1);
	assert_int_equal(c4gh_header_decrypt(buf, len, rsk, &hdr),
			 -EPROTONOSUPPORT);
	len = craft(buf, wsk, rpk, methods, pl, pllen, 2);
	assert_int_equal(c4gh_header_decrypt(buf, len, rsk, &hdr),
			 -EPROTONOSUPPORT);
	/* ... but not when that packet is for someone else. */
	preamble(buf, 2);
	len = 16 + seal_packet(wsk, opk, 0, pl[0], pllen[0], buf + 16);
	len += seal_packet(wsk, rpk, 0, pl[1], pllen[1], buf + len);
	assert_int_equal(c4gh_header_decrypt(buf, len, rsk, &hdr), 0);
	assert_int_equal(hdr.nkeys, 1);
	assert_memory_equal(hdr.keys[0], k2, 32);

	/* Two edit lists, and an unknown packet type. */
	pllen[0] = key_payload(pl[0], 0, k1);
	pllen[1] = edit_payload(pl[1], e, 2);
	pllen[2] = edit_payload(pl[2], e, 2);
	len = craft(buf, wsk, rpk, methods, pl, pllen, 2);
	assert_int_equal(c4gh_header_decrypt(buf, len, rsk, &hdr), 0);
	assert_int_equal(hdr.nedits, 2);
	len = craft(buf, wsk, rpk, methods, pl, pllen, 3);
	assert_int_equal(c4gh_header_decrypt(buf, len, rsk, &hdr), -EBADMSG);
	put32(pl[1], 2);
	len = craft(buf, wsk, rpk, methods, pl, pllen, 2);
	assert_int_equal(c4gh_header_decrypt(buf, len, rsk, &hdr), -EBADMSG);

	/* An edit list shorter than its count; a padded one is fine. */
	pllen[1] = edit_payload(pl[1], e, 2) - 1;
	len = craft(buf, wsk, rpk, methods, pl, pllen, 2);
	assert_int_equal(c4gh_header_decrypt(buf, len, rsk, &hdr), -EBADMSG);
	pllen[1] = edit_payload(pl[1], e, 2) + 100;
	memset(pl[1] + pllen[1] - 100, 0xee, 100);
	pllen[0] = key_payload(pl[0], 0, k1) + 50;
	memset(pl[0] + pllen[0] - 50, 0xdd, 50);	/* defined padding */
	len = craft(buf, wsk, rpk, methods, pl, pllen, 2);
	assert_int_equal(c4gh_header_decrypt(buf, len, rsk, &hdr), 0);
	assert_int_equal(hdr.nedits, 2);
	assert_int_equal(hdr.edits[1], 2);
	assert_memory_equal(hdr.keys[0], k1, 32);

	/* An edit list with n = 0 is kept as "present, empty". */
	pllen[0] = key_payload(pl[0], 0, k1);
	pllen[1] = edit_payload(pl[1], NULL, 0);
	len = craft(buf, wsk, rpk, methods, pl, pllen, 2);
	assert_int_equal(c4gh_header_decrypt(buf, len, rsk, &hdr), 0);
	assert_int_equal(hdr.has_edits, 1);
	assert_int_equal(hdr.nedits, 0);

	/* Count bigger than C4GH_MAX_EDITS. */
	put32(pl[1] + 4, C4GH_MAX_EDITS + 1);
	pllen[1] = 8;
	len = craft(buf, wsk, rpk, methods, pl, pllen, 2);
	assert_int_equal(c4gh_header_decrypt(buf, len, rsk, &hdr), -EBADMSG);

	/* A too short key packet. */
	pllen[0] = 39;
	len = craft(buf, wsk, rpk, methods, pl, pllen, 1);
	assert_int_equal(c4gh_header_decrypt(buf, len, rsk, &hdr), -EBADMSG);

	/* A low-order writer key is "not for me", not a crash. */
	pllen[0] = key_payload(pl[0], 0, k1);
	len = craft(buf, wsk, rpk, methods, pl, pllen, 1);
	memset(buf + 24, 0, 32);
	assert_int_equal(c4gh_header_decrypt(buf, len, rsk, &hdr), -ENOKEY);
}

static void test_c4gh_bit_flips_never_yield_plaintext(void **state)
{
	uint8_t *file, sk[32], *out;
	size_t len, outlen, i;
	int bit, r;

	(void)state;
	hex_decode(R1_SK, sk, 32);
	file = read_all("enc/size-1.bin.c4gh", &len);
	assert_int_equal(len, 153);

	for (i = 0; i < len; i++) {
		for (bit = 0; bit < 8; bit++) {
			file[i] ^= (uint8_t)(1u << bit);
			r = decrypt_buf(file, len, sk, &out, &outlen);
			if (r >= 0 || outlen != 0)
				fail_msg("byte %zu bit %d: %d, %zu bytes out",
					 i, bit, r, outlen);
			free(out);
			file[i] ^= (uint8_t)(1u << bit);
		}
	}

	/* Sanity: unflipped, it still decrypts. */
	assert_int_equal(decrypt_buf(file, len, sk, &out, &outlen), 0);
	assert_int_equal(outlen, 1);
	assert_int_equal(out[0], 0x7c);
	free(out);

	/* Truncated data (1..28 bytes left of the segment). */
	for (i = 125; i < 153; i++) {
		assert_int_equal(decrypt_buf(file, i, sk, &out, &outlen),
				 -EBADMSG);
		assert_int_equal(outlen, 0);
		free(out);
	}
	free(file);
}

static void test_c4gh_truncated_segment_is_rejected(void **state)
{
	uint8_t sk[32], *file, *out;
	size_t len, outlen;

	(void)state;
	hex_decode(R1_SK, sk, 32);
	file = read_all("enc/size-200000.bin.c4gh", &len);
	/* Cut into the last segment: the first three come out, then error. */
	assert_int_equal(decrypt_buf(file, len - 100, sk, &out, &outlen),
			 -EBADMSG);
	assert_int_equal(outlen, 3 * 65536);
	free(out);
	/* Corrupt the second segment: only the first comes out. */
	file[124 + 65564 + 500] ^= 1;
	assert_int_equal(decrypt_buf(file, len, sk, &out, &outlen), -EBADMSG);
	assert_int_equal(outlen, 65536);
	free(out);
	free(file);
}

static void test_c4gh_strerror_names_causes(void **state)
{
	static const int errs[] = {
		-EBADMSG, -EPROTONOSUPPORT, -ENOKEY, -EKEYREJECTED,
	};
	size_t i, j;

	(void)state;
	/* Each class of failure has its own message. */
	for (i = 0; i < 4; i++) {
		assert_non_null(c4gh_strerror(errs[i]));
		for (j = 0; j < i; j++)
			assert_string_not_equal(c4gh_strerror(errs[i]),
						c4gh_strerror(errs[j]));
	}
	assert_non_null(strstr(c4gh_strerror(-EKEYREJECTED), "passphrase"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_c4gh_decrypts_every_expected_tsv_row),
		cmocka_unit_test(test_c4gh_worked_example_byte_by_byte),
		cmocka_unit_test(test_c4gh_roundtrip_sizes),
		cmocka_unit_test(test_c4gh_size_math),
		cmocka_unit_test(test_c4gh_segment_rejects_bad_lengths),
		cmocka_unit_test(test_c4gh_reencrypt_header_for_recipient2),
		cmocka_unit_test(test_c4gh_reencrypt_keeps_edit_list),
		cmocka_unit_test(test_c4gh_header_build_multi_recipient),
		cmocka_unit_test(test_c4gh_edit_list_even_count_discards_rest),
		cmocka_unit_test(test_c4gh_edit_list_odd_count_keeps_rest),
		cmocka_unit_test(test_c4gh_edit_list_zero_keeps),
		cmocka_unit_test(test_c4gh_edit_list_empty_means_no_edit),
		cmocka_unit_test(test_c4gh_edit_list_keeps_clipped_at_eof),
		cmocka_unit_test(test_c4gh_rejects_bad_preamble),
		cmocka_unit_test(test_c4gh_rejects_bad_packet_lengths),
		cmocka_unit_test(test_c4gh_header_packet_rules),
		cmocka_unit_test(test_c4gh_bit_flips_never_yield_plaintext),
		cmocka_unit_test(test_c4gh_truncated_segment_is_rejected),
		cmocka_unit_test(test_c4gh_strerror_names_causes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
