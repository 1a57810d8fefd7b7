/*
 * fuzz_c4gh_reader.c - random access reads over a hostile data section.
 *
 * Input: one mode byte, then
 *   even mode: a whole Crypt4GH file (seeds: small files of
 *              tests/data/crypt4gh for recipient1).  Its header is
 *              decrypted with recipient1's key and the reader reads the
 *              data section in chunks; when c4gh_decrypt_fd() decrypts
 *              the same file, the reader must give the same bytes.
 *   odd mode:  a description of a file the target builds itself:
 *              u32 plaintext length (mod 3 segments + 2), content seed,
 *              flags (edit count, corrupt, truncate, failing check),
 *              edit shift, u16 edits, u32 corrupt offset, u16 truncate,
 *              failing segment, then (u32 offset, u16 length) reads.
 *              Every successful read is compared with the plaintext
 *              through an independent edit list walk; a read may fail
 *              only when the data was damaged or a check refused it.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "c4gh.h"
#include "c4gh_reader.h"

#include "fuzz_common.h"

#define PLAIN_MAX	(3 * C4GH_SEGMENT_SIZE + 2)
#define EDITS_MAX	12
#define READS_MAX	16

struct source {
	const uint8_t *data;
	uint64_t len;
	int64_t fail_segment;		/* -1: checks pass */
};

static int fetch(void *ctx, uint64_t off, uint8_t *buf, size_t len)
{
	struct source *s = ctx;

	/* The reader must stay inside the data section it was given. */
	FUZZ_CHECK(off <= s->len && len <= s->len - off);
	memcpy(buf, s->data + off, len);
	return 0;
}

static int check(void *ctx, uint64_t idx, const uint8_t *seg, size_t len)
{
	struct source *s = ctx;

	FUZZ_CHECK(len >= 1 + C4GH_SEGMENT_OVERHEAD &&
		   len <= C4GH_CIPHER_SEGMENT);
	(void)seg;
	return s->fail_segment >= 0 && idx == (uint64_t)s->fail_segment ?
	       -EBADMSG : 0;
}

/*
 * One read; when vis is not NULL the bytes are compared with it
 * (vis_len visible bytes of the undamaged file).  Returns the count, or
 * the error.
 */
static ssize_t read_check(struct c4gh_reader *r, uint64_t off, size_t len,
			  const uint8_t *vis, size_t vis_len, int may_fail)
{
	struct c4gh_reader_error err;
	uint64_t size = c4gh_reader_size(r);
	uint8_t *buf;
	ssize_t n;

	buf = malloc(len ? len : 1);
	if (!buf)
		return -ENOMEM;
	memset(&err, 0, sizeof(err));
	n = c4gh_reader_pread(r, buf, len, off, &err);
	if (n < 0) {
		FUZZ_CHECK(may_fail);
		FUZZ_CHECK(n == -EIO || n == -EBADMSG || n == -ENOMEM);
		FUZZ_CHECK(err.err == (int)n && err.what != NULL);
	} else {
		FUZZ_CHECK((size_t)n <= len);
		if (off >= size)
			FUZZ_CHECK(n == 0);
		else
			FUZZ_CHECK((uint64_t)n == (len < size - off ?
						   len : size - off));
		if (vis && n > 0) {
			FUZZ_CHECK(off + (uint64_t)n <= vis_len);
			FUZZ_CHECK(!memcmp(buf, vis + off, (size_t)n));
		}
	}
	free(buf);
	return n;
}

/* ---- even mode: a whole file ---- */

static int decrypt_whole(const uint8_t *file, size_t len, uint8_t **ret,
			 size_t *ret_len)
{
	int in, out, r = -EIO;
	off_t size;

	in = memfd_create("fuzz-in", MFD_CLOEXEC);
	out = memfd_create("fuzz-out", MFD_CLOEXEC);
	if (in < 0 || out < 0)
		goto out;
	if (len && write(in, file, len) != (ssize_t)len)
		goto out;
	lseek(in, 0, SEEK_SET);
	r = c4gh_decrypt_fd(in, out, fuzz_c4gh_sk);
	if (r < 0)
		goto out;
	size = lseek(out, 0, SEEK_END);
	*ret = malloc(size ? (size_t)size : 1);
	if (!*ret) {
		r = -ENOMEM;
		goto out;
	}
	if (size && pread(out, *ret, (size_t)size, 0) != size) {
		free(*ret);
		r = -EIO;
		goto out;
	}
	*ret_len = (size_t)size;
	r = 0;
out:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return r;
}

static void run_file(const uint8_t *file, size_t len)
{
	static struct c4gh_header hdr;
	struct c4gh_reader_ops ops = { .fetch = fetch, .check = check };
	struct source src = { NULL, 0, -1 };
	struct c4gh_reader *r = NULL;
	uint8_t *expect = NULL;
	size_t expect_len = 0, chunk;
	uint64_t need, off;
	ssize_t n;
	int hlen, ok;

	hlen = c4gh_header_length(file, len, &need);
	if (hlen < 0 || (size_t)hlen > len)
		return;
	if (c4gh_header_decrypt(file, len, fuzz_c4gh_sk, &hdr) < 0)
		return;
	src.data = file + hlen;
	src.len = len - (size_t)hlen;
	ops.ctx = &src;
	if (c4gh_reader_new(&hdr, src.len, &ops, &r) < 0)
		goto out;

	ok = decrypt_whole(file, len, &expect, &expect_len) == 0;
	if (ok)
		FUZZ_CHECK(c4gh_reader_size(r) == expect_len);
	chunk = 1 + (len % 70001);
	for (off = 0; off < c4gh_reader_size(r); off += chunk) {
		n = read_check(r, off, chunk, ok ? expect : NULL, expect_len,
			       !ok);
		if (n < 0)
			break;
	}
	read_check(r, c4gh_reader_size(r), 10, NULL, 0, !ok);
	free(expect);
out:
	c4gh_reader_free(r);
	c4gh_header_release(&hdr);
}

/* ---- odd mode: a file built from a description ---- */

static uint32_t next_rand(uint32_t *state)
{
	uint32_t x = *state;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *state = x;
}

struct cursor {
	const uint8_t *p;
	size_t left;
};

static uint32_t take(struct cursor *c, size_t n)
{
	uint32_t v = n == 4 ? fuzz_le32(c->p, c->left) :
		     n == 2 ? fuzz_le16(c->p, c->left) :
		     (c->left ? c->p[0] : 0);
	size_t k = n < c->left ? n : c->left;

	c->p += k;
	c->left -= k;
	return v;
}

static void run_built(const uint8_t *data, size_t size)
{
	static struct c4gh_header hdr;
	static const uint8_t data_key[32] = { 0x44, 0x4b };
	struct cursor c = { data, size };
	struct c4gh_reader_ops ops = { .fetch = fetch, .check = check };
	struct source src = { NULL, 0, -1 };
	struct c4gh_reader *r = NULL;
	uint64_t edits[EDITS_MAX];
	uint8_t pk[32], *plain = NULL, *cipher = NULL, *vis = NULL;
	uint8_t *hbuf = NULL;
	uint64_t *map = NULL, data_len, off;
	size_t plain_len, vis_len, hlen, i;
	unsigned int nedits, shift, flags, nreads;
	uint32_t seed;
	int damaged = 0, ret;

	plain_len = take(&c, 4) % PLAIN_MAX;
	seed = take(&c, 1) | 0x100;
	flags = take(&c, 1);
	shift = take(&c, 1) % 17;
	nedits = (flags & 0x0f) % (EDITS_MAX + 1);
	for (i = 0; i < nedits; i++)
		edits[i] = (uint64_t)take(&c, 2) << shift;

	plain = malloc(plain_len + 1);
	map = malloc((plain_len + 1) * sizeof(*map));
	vis = malloc(plain_len + 1);
	data_len = c4gh_cipher_size(plain_len);
	cipher = malloc(data_len + 1);
	if (!plain || !map || !vis || !cipher)
		goto out;
	for (i = 0; i < plain_len; i++)
		plain[i] = (uint8_t)next_rand(&seed);
	for (i = 0, off = 0; i < plain_len; i += C4GH_SEGMENT_SIZE) {
		size_t n = plain_len - i < C4GH_SEGMENT_SIZE ?
			   plain_len - i : C4GH_SEGMENT_SIZE;

		FUZZ_CHECK(c4gh_segment_encrypt(data_key, plain + i, n,
						cipher + off) == 0);
		off += n + C4GH_SEGMENT_OVERHEAD;
	}
	FUZZ_CHECK(off == data_len);
	vis_len = fuzz_edit_apply(edits, nedits, 1, plain_len, map);
	for (i = 0; i < vis_len; i++)
		vis[i] = plain[map[i]];

	fuzz_c4gh_pk(pk);
	ret = c4gh_header_build(fuzz_writer_sk, (const uint8_t (*)[32])pk,
				1, data_key, edits, nedits, &hbuf, &hlen);
	if (ret == -ENOMEM)
		goto out;
	FUZZ_CHECK(ret == 0);
	FUZZ_CHECK(c4gh_header_decrypt(hbuf, hlen, fuzz_c4gh_sk, &hdr) == 0);
	FUZZ_CHECK(hdr.nedits == nedits);

	/* Damage, as the flags ask. */
	off = take(&c, 4);
	if ((flags & 0x10) && data_len) {
		cipher[off % data_len] ^= 0x01;
		damaged = 1;
	}
	off = take(&c, 2);
	if ((flags & 0x20) && data_len) {
		data_len -= 1 + off % data_len;
		damaged = 1;
	}
	src.fail_segment = (flags & 0x40) ? (int64_t)take(&c, 1) % 4 : -1;
	src.data = cipher;
	src.len = data_len;
	ops.ctx = &src;

	ret = c4gh_reader_new(&hdr, data_len, &ops, &r);
	if (ret < 0) {
		uint64_t ps;

		/* Only a cut can make a size that is not Crypt4GH. */
		FUZZ_CHECK(ret == -EBADMSG || ret == -ENOMEM);
		FUZZ_CHECK(ret == -ENOMEM || (flags & 0x20));
		FUZZ_CHECK(ret == -ENOMEM || c4gh_plain_size(data_len, &ps) < 0);
		goto out_hdr;
	}
	if (!(flags & 0x20))
		FUZZ_CHECK(c4gh_reader_size(r) == vis_len);

	nreads = 0;
	while (c.left && nreads++ < READS_MAX) {
		uint64_t roff = take(&c, 4) % (vis_len + 70000);
		size_t rlen = take(&c, 2) + (size_t)(flags & 0x80) * 1024;

		read_check(r, roff, rlen, vis, vis_len,
			   damaged || src.fail_segment >= 0);
	}
	/* And the whole file front to back, in odd-sized chunks. */
	for (off = 0; off < vis_len; off += 40000)
		if (read_check(r, off, 40000, vis, vis_len,
			       damaged || src.fail_segment >= 0) < 0)
			break;
out_hdr:
	c4gh_reader_free(r);
	c4gh_header_release(&hdr);
out:
	free(hbuf);
	free(cipher);
	free(vis);
	free(map);
	free(plain);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;

	if (size < 1)
		return 0;
	if (data[0] & 1) {
		run_built(data + 1, size - 1);
		return 0;
	}
	/* A private exact-size copy, so that overreads are caught. */
	copy = malloc(size - 1 ? size - 1 : 1);
	if (!copy)
		return 0;
	memcpy(copy, data + 1, size - 1);
	run_file(copy, size - 1);
	free(copy);
	return 0;
}
