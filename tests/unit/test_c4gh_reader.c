/*
 * test_c4gh_reader.c - random access to Crypt4GH plaintext over an
 * in-memory data section: buffer sizes, segment boundaries, EOF, threads,
 * edit lists, and every failure path (tag, check callback, fetch,
 * truncation).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "c4gh.h"
#include "c4gh_reader.h"
#include "cipher.h"

#define BIG_SIZE	3158073
#define BIG_SEGS	49

static const char R1_SK[] =
	"8a5d0118e8f393bbee0696a85c446ebb082635edba08f09e4e1a813c08c28ad2";

/* An in-memory data section with fault injection. */
struct mem {
	const uint8_t *data;
	size_t len;
	int fail_fetch;			/* fetch returns -EIO */
	uint64_t reject_seg;		/* check rejects this segment */
	int check_calls;
	int check_bad_input;		/* check saw bytes not in data */
	int fetches;			/* count of fetch calls */
	void *data_owner;		/* test's own context */
	pthread_mutex_t lock;
};

static int mem_fetch(void *ctx, uint64_t off, uint8_t *buf, size_t len)
{
	struct mem *m = ctx;

	pthread_mutex_lock(&m->lock);
	m->fetches++;
	pthread_mutex_unlock(&m->lock);
	if (m->fail_fetch)
		return -EIO;
	if (off > m->len || len > m->len - off)
		return -EIO;
	memcpy(buf, m->data + off, len);
	return 0;
}

static int mem_check(void *ctx, uint64_t idx, const uint8_t *seg, size_t len)
{
	struct mem *m = ctx;
	uint64_t off = idx * C4GH_CIPHER_SEGMENT;

	pthread_mutex_lock(&m->lock);
	m->check_calls++;
	if (off + len > m->len || memcmp(m->data + off, seg, len) != 0)
		m->check_bad_input = 1;
	pthread_mutex_unlock(&m->lock);
	return idx == m->reject_seg ? -EBADMSG : 0;
}

struct fixture {
	uint8_t *enc;			/* whole file */
	size_t enclen;
	uint8_t *plain;
	size_t plainlen;
	struct c4gh_header hdr;
	struct mem mem;
	struct c4gh_reader *r;
};

static char *data_path(const char *rel)
{
	const char *base = getenv("MARKETFS_TESTDATA");
	char *p;

	assert_non_null(base);
	assert_true(asprintf(&p, "%s/crypt4gh/%s", base, rel) > 0);
	return p;
}

static uint8_t *read_all(const char *rel, size_t *ret_len)
{
	char *path = data_path(rel);
	struct stat st;
	uint8_t *buf;
	size_t done = 0;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	while (done < (size_t)st.st_size) {
		n = read(fd, buf + done, (size_t)st.st_size - done);
		assert_true(n > 0);
		done += (size_t)n;
	}
	close(fd);
	free(path);
	*ret_len = done;
	return buf;
}

static void hex_decode(const char *hex, uint8_t *out, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned int v;

		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

/* Load enc and plain, decrypt the header, make a reader (data_len). */
static struct fixture *fixture_new(const char *enc, const char *plain,
				   int with_check)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct c4gh_reader_ops ops = { 0 };
	uint8_t sk[32];

	assert_non_null(f);
	hex_decode(R1_SK, sk, 32);
	f->enc = read_all(enc, &f->enclen);
	f->plain = read_all(plain, &f->plainlen);
	assert_int_equal(c4gh_header_decrypt(f->enc, f->enclen, sk, &f->hdr),
			 0);
	f->mem.data = f->enc + f->hdr.header_len;
	f->mem.len = f->enclen - f->hdr.header_len;
	f->mem.reject_seg = UINT64_MAX;
	pthread_mutex_init(&f->mem.lock, NULL);

	ops.fetch = mem_fetch;
	ops.check = with_check ? mem_check : NULL;
	ops.ctx = &f->mem;
	assert_int_equal(c4gh_reader_new(&f->hdr, f->mem.len, &ops, &f->r), 0);
	return f;
}

static void fixture_free(struct fixture *f)
{
	assert_null(c4gh_reader_free(f->r));
	c4gh_header_release(&f->hdr);
	pthread_mutex_destroy(&f->mem.lock);
	free(f->enc);
	free(f->plain);
	free(f);
}

/* Read [off, off + len) with reads of at most bufsize; compare. */
static void read_compare(struct fixture *f, uint64_t off, size_t len,
			 size_t bufsize)
{
	uint8_t *buf = malloc(bufsize);
	size_t done = 0;
	ssize_t n;

	assert_non_null(buf);
	while (done < len) {
		size_t want = len - done < bufsize ? len - done : bufsize;

		n = c4gh_reader_pread(f->r, buf, want, off + done, NULL);
		if (n != (ssize_t)want)
			fail_msg("pread(%zu @ %llu) = %zd", want,
				 (unsigned long long)(off + done), n);
		assert_memory_equal(buf, f->plain + off + done, want);
		done += want;
	}
	free(buf);
}

static void test_c4gh_reader_buffer_sizes_give_same_bytes(void **state)
{
	static const size_t sizes[] = { 4096, 128 * 1024, 32 * 1024 * 1024 };
	struct fixture *f;
	size_t i;

	(void)state;
	f = fixture_new("enc/size-3158073.bin.c4gh", "plain/size-3158073.bin",
			1);
	assert_int_equal(c4gh_reader_size(f->r), BIG_SIZE);
	for (i = 0; i < 3; i++) {
		read_compare(f, 0, BIG_SIZE, sizes[i]);
		read_compare(f, 12345, BIG_SIZE - 12345 - 777, sizes[i]);
	}
	assert_int_equal(f->mem.check_bad_input, 0);

	fixture_free(f);

	/* One 32 MiB read of 49 segments on a fresh reader: 4 per call. */
	f = fixture_new("enc/size-3158073.bin.c4gh", "plain/size-3158073.bin",
			1);
	read_compare(f, 100, BIG_SIZE - 100, 32 * 1024 * 1024);
	assert_int_equal(f->mem.fetches, 13);
	fixture_free(f);
}

static void test_c4gh_reader_segment_boundaries(void **state)
{
	struct fixture *f;
	uint64_t k, at;
	int d;

	(void)state;
	f = fixture_new("enc/size-3158073.bin.c4gh", "plain/size-3158073.bin",
			1);
	for (k = 0; k <= BIG_SEGS; k++) {
		for (d = -1; d <= 1; d++) {
			if (k == 0 && d < 0)
				continue;
			at = k * 65536 + (uint64_t)(int64_t)d;
			if (at >= BIG_SIZE)
				continue;
			read_compare(f, at, at + 3 <= BIG_SIZE ? 3 : 1, 4096);
			read_compare(f, at, BIG_SIZE - at < 70000 ?
				     BIG_SIZE - at : 70000, 1 << 20);
		}
	}
	fixture_free(f);
}

static void test_c4gh_reader_tail_and_eof(void **state)
{
	struct c4gh_reader_error err;
	struct fixture *f;
	uint8_t buf[200];

	(void)state;
	f = fixture_new("enc/size-3158073.bin.c4gh", "plain/size-3158073.bin",
			0);
	memset(buf, 0xaa, sizeof(buf));
	assert_int_equal(c4gh_reader_pread(f->r, buf, sizeof(buf),
					   BIG_SIZE - 10, &err), 10);
	assert_memory_equal(buf, f->plain + BIG_SIZE - 10, 10);
	assert_int_equal(err.err, 0);
	assert_int_equal(c4gh_reader_pread(f->r, buf, sizeof(buf), BIG_SIZE,
					   &err), 0);
	assert_int_equal(c4gh_reader_pread(f->r, buf, sizeof(buf),
					   BIG_SIZE + 100000, &err), 0);
	assert_int_equal(c4gh_reader_pread(f->r, buf, sizeof(buf),
					   UINT64_MAX, &err), 0);
	assert_int_equal(c4gh_reader_pread(f->r, buf, 0, 0, &err), 0);
	fixture_free(f);
}

/* Small files: 1 byte, one full segment, a segment plus one byte. */
static void test_c4gh_reader_small_files(void **state)
{
	static const char *const names[][2] = {
		{ "enc/size-1.bin.c4gh", "plain/size-1.bin" },
		{ "enc/size-65535.bin.c4gh", "plain/size-65535.bin" },
		{ "enc/size-65536.bin.c4gh", "plain/size-65536.bin" },
		{ "enc/size-65537.bin.c4gh", "plain/size-65537.bin" },
		{ "enc/size-200000.bin.both-recipients.c4gh",
		  "plain/size-200000.bin" },
	};
	struct fixture *f;
	uint8_t buf[16];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		f = fixture_new(names[i][0], names[i][1], 1);
		assert_int_equal(c4gh_reader_size(f->r), f->plainlen);
		read_compare(f, 0, f->plainlen, 1 << 20);
		read_compare(f, f->plainlen - 1, 1, 7);
		assert_int_equal(c4gh_reader_pread(f->r, buf, sizeof(buf),
						   f->plainlen, NULL), 0);
		fixture_free(f);
	}

	f = fixture_new("enc/size-0.bin.c4gh", "plain/size-0.bin", 1);
	assert_int_equal(c4gh_reader_size(f->r), 0);
	assert_int_equal(c4gh_reader_pread(f->r, buf, sizeof(buf), 0, NULL), 0);
	assert_int_equal(f->mem.fetches, 0);
	fixture_free(f);
}

struct thread_arg {
	struct fixture *f;
	unsigned int seed;
	int bad;
};

static void *reader_thread(void *p)
{
	struct thread_arg *a = p;
	uint8_t *buf = malloc(300000);
	unsigned int i;

	if (!buf) {
		a->bad = 1;
		return NULL;
	}
	for (i = 0; i < 300; i++) {
		uint64_t off = (uint64_t)rand_r(&a->seed) % BIG_SIZE;
		size_t len = (size_t)rand_r(&a->seed) % 300000 + 1;
		size_t want = len < BIG_SIZE - off ? len : BIG_SIZE - off;
		ssize_t n;

		/* Half the reads go to a few hot segments: cache traffic. */
		if (i % 2)
			off = (uint64_t)(rand_r(&a->seed) % 3) * 65536 +
			      (uint64_t)(rand_r(&a->seed) % 65536);
		want = len < BIG_SIZE - off ? len : BIG_SIZE - off;
		n = c4gh_reader_pread(a->f->r, buf, len, off, NULL);
		if (n != (ssize_t)want ||
		    memcmp(buf, a->f->plain + off, want) != 0)
			a->bad = 1;
	}
	free(buf);
	return NULL;
}

static void test_c4gh_reader_threads_read_concurrently(void **state)
{
	struct thread_arg args[4];
	pthread_t th[4];
	struct fixture *f;
	int i;

	(void)state;
	f = fixture_new("enc/size-3158073.bin.c4gh", "plain/size-3158073.bin",
			1);
	for (i = 0; i < 4; i++) {
		args[i].f = f;
		args[i].seed = 1000u + (unsigned int)i;
		args[i].bad = 0;
		assert_int_equal(pthread_create(&th[i], NULL, reader_thread,
						&args[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(args[i].bad, 0);
	}
	fixture_free(f);
}

static void test_c4gh_reader_edit_list_vector(void **state)
{
	struct fixture *f;

	(void)state;
	f = fixture_new("enc/size-3158073.bin.editlist.c4gh",
			"plain/editlist-expected-output.bin", 1);
	assert_int_equal(f->hdr.nedits, 2);
	assert_int_equal(f->plainlen, 300000);
	assert_int_equal(c4gh_reader_size(f->r), 300000);
	read_compare(f, 0, 300000, 4096);
	read_compare(f, 0, 300000, 32 * 1024 * 1024);
	read_compare(f, 31072 - 1, 3, 4096);	/* a segment edge inside */
	read_compare(f, 299999, 1, 4096);
	fixture_free(f);
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

static void test_c4gh_reader_synthetic_edit_lists(void **state)
{
	static const uint64_t lists[][8] = {
		{ 70000, 100, 0, 0, 131072, 5 },	/* even */
		{ 65535, 2, 65534, 0, 1 },		/* odd */
		{ 0, 0, 0, 0 },				/* nothing */
		{ 3000000, 9000000 },			/* clipped */
		{ 1, 1, 1, 1, 1, 1, 1 },		/* odd, rest */
	};
	static const unsigned int counts[] = { 6, 5, 4, 2, 7 };
	struct c4gh_reader_ops ops = { 0 };
	struct c4gh_reader *r;
	struct fixture *f;
	uint8_t *exp, *buf;
	size_t explen, i;
	ssize_t n;

	(void)state;
	f = fixture_new("enc/size-3158073.bin.c4gh", "plain/size-3158073.bin",
			0);
	exp = malloc(BIG_SIZE);
	buf = malloc(BIG_SIZE + 10);
	assert_non_null(exp);
	assert_non_null(buf);
	ops.fetch = mem_fetch;
	ops.check = NULL;
	ops.ctx = &f->mem;

	for (i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		struct c4gh_header h = f->hdr;
		uint64_t off;

		h.has_edits = 1;
		h.nedits = counts[i];
		memcpy(h.edits, lists[i], counts[i] * sizeof(uint64_t));
		explen = apply_edits(f->plain, BIG_SIZE, lists[i], counts[i],
				     exp);
		assert_int_equal(c4gh_reader_new(&h, f->mem.len, &ops, &r), 0);
		c4gh_header_release(&h);
		assert_int_equal(c4gh_reader_size(r), explen);

		n = c4gh_reader_pread(r, buf, BIG_SIZE + 10, 0, NULL);
		assert_int_equal(n, explen);
		assert_memory_equal(buf, exp, explen);
		for (off = 0; off < explen; off += 4093) {
			size_t want = explen - off < 5000 ? explen - off : 5000;

			n = c4gh_reader_pread(r, buf, 5000, off, NULL);
			assert_int_equal(n, want);
			assert_memory_equal(buf, exp + off, want);
		}
		assert_int_equal(c4gh_reader_pread(r, buf, 10, explen, NULL),
				 0);
		r = c4gh_reader_free(r);
	}
	free(buf);
	free(exp);
	fixture_free(f);
}

/* What the nonce_reuse callback saw. */
struct reuse_seen {
	int calls;
	uint64_t first, again;
};

static void note_reuse(void *ctx, uint64_t first, uint64_t again)
{
	struct mem *m = ctx;
	struct reuse_seen *seen = (struct reuse_seen *)m->data_owner;

	seen->calls++;
	seen->first = first;
	seen->again = again;
}

/*
 * Three full segments of the big vector's plaintext under its data key,
 * with nonces n0, n1, n2 (each byte repeated), into out (3 segments).
 */
static void make_three(const struct fixture *f, uint8_t n0, uint8_t n1,
		       uint8_t n2, uint8_t *out)
{
	const uint8_t tags[3] = { n0, n1, n2 };
	uint8_t nonce[12];
	unsigned int i;

	for (i = 0; i < 3; i++) {
		uint8_t *seg = out + (size_t)i * C4GH_CIPHER_SEGMENT;

		memset(nonce, tags[i], sizeof(nonce));
		memcpy(seg, nonce, sizeof(nonce));
		assert_int_equal(cipher_aead_encrypt(f->hdr.keys[0], nonce,
				 f->plain + (size_t)i * C4GH_SEGMENT_SIZE,
				 C4GH_SEGMENT_SIZE, seg + 12), 0);
	}
}

/* T-C11: a producer that reused a nonce is reported once; reads work. */
static void test_c4gh_reader_reports_nonce_reuse(void **state)
{
	const size_t len = 3 * (size_t)C4GH_CIPHER_SEGMENT;
	const size_t plen = 3 * (size_t)C4GH_SEGMENT_SIZE;
	struct c4gh_reader_ops ops = { 0 };
	struct reuse_seen seen = { 0 };
	struct c4gh_reader *r;
	struct fixture *f;
	struct mem m;
	uint8_t *data, *buf;

	(void)state;
	f = fixture_new("enc/size-3158073.bin.c4gh", "plain/size-3158073.bin",
			0);
	data = malloc(len);
	buf = malloc(plen);
	assert_non_null(data);
	assert_non_null(buf);
	memset(&m, 0, sizeof(m));
	m.data = data;
	m.len = len;
	m.reject_seg = UINT64_MAX;
	m.data_owner = &seen;
	pthread_mutex_init(&m.lock, NULL);
	ops.fetch = mem_fetch;
	ops.check = mem_check;
	ops.ctx = &m;
	ops.nonce_reuse = note_reuse;

	/* Distinct nonces: silence. */
	make_three(f, 1, 2, 3, data);
	assert_int_equal(c4gh_reader_new(&f->hdr, len, &ops, &r), 0);
	assert_int_equal(c4gh_reader_pread(r, buf, plen, 0, NULL), plen);
	assert_memory_equal(buf, f->plain, plen);
	assert_int_equal(seen.calls, 0);
	r = c4gh_reader_free(r);

	/* Segments 0 and 2 share one: the bytes, and one report. */
	make_three(f, 7, 8, 7, data);
	assert_int_equal(c4gh_reader_new(&f->hdr, len, &ops, &r), 0);
	assert_int_equal(c4gh_reader_pread(r, buf, plen, 0, NULL), plen);
	assert_memory_equal(buf, f->plain, plen);
	assert_int_equal(seen.calls, 1);
	assert_int_equal(seen.first, 0);
	assert_int_equal(seen.again, 2);
	assert_int_equal(c4gh_reader_pread(r, buf, 100, 2 * C4GH_SEGMENT_SIZE
					   + 5, NULL), 100);
	assert_int_equal(c4gh_reader_pread(r, buf, plen, 0, NULL), plen);
	assert_int_equal(seen.calls, 1);
	r = c4gh_reader_free(r);

	/* The same, with the middle nonce in the same slot of the table. */
	seen.calls = 0;
	make_three(f, 7, 0x0f, 7, data);
	assert_int_equal(c4gh_reader_new(&f->hdr, len, &ops, &r), 0);
	assert_int_equal(c4gh_reader_pread(r, buf, plen, 0, NULL), plen);
	assert_memory_equal(buf, f->plain, plen);
	assert_int_equal(seen.calls, 1);
	assert_int_equal(seen.first, 0);
	assert_int_equal(seen.again, 2);
	r = c4gh_reader_free(r);

	/* Read backwards, one segment at a time: reported as 2, then 0. */
	seen.calls = 0;
	make_three(f, 7, 8, 7, data);
	assert_int_equal(c4gh_reader_new(&f->hdr, len, &ops, &r), 0);
	assert_int_equal(c4gh_reader_pread(r, buf, C4GH_SEGMENT_SIZE,
					   2 * C4GH_SEGMENT_SIZE, NULL),
			 C4GH_SEGMENT_SIZE);
	assert_int_equal(seen.calls, 0);
	assert_int_equal(c4gh_reader_pread(r, buf, C4GH_SEGMENT_SIZE, 0,
					   NULL), C4GH_SEGMENT_SIZE);
	assert_memory_equal(buf, f->plain, C4GH_SEGMENT_SIZE);
	assert_int_equal(seen.calls, 1);
	assert_int_equal(seen.first, 2);
	assert_int_equal(seen.again, 0);
	r = c4gh_reader_free(r);

	/* A digest that does not match fails the read before any report. */
	seen.calls = 0;
	m.reject_seg = 2;
	assert_int_equal(c4gh_reader_new(&f->hdr, len, &ops, &r), 0);
	assert_int_equal(c4gh_reader_pread(r, buf, plen, 0, NULL), -EBADMSG);
	assert_int_equal(seen.calls, 0);
	r = c4gh_reader_free(r);

	pthread_mutex_destroy(&m.lock);
	free(buf);
	free(data);
	fixture_free(f);
}

/*
 * Segments the request wants whole are decrypted into its buffer; a
 * failure later in the same request leaves none of their bytes there.
 */
static void test_c4gh_reader_failure_wipes_whole_segments(void **state)
{
	const size_t plen = 4 * (size_t)C4GH_SEGMENT_SIZE;
	struct fixture *f;
	uint8_t *buf;
	size_t i;

	(void)state;
	f = fixture_new("enc/size-3158073.bin.c4gh", "plain/size-3158073.bin",
			1);
	buf = malloc(plen);
	assert_non_null(buf);
	f->mem.reject_seg = 3;
	assert_int_equal(c4gh_reader_pread(f->r, buf, plen, 0, NULL),
			 -EBADMSG);
	for (i = 0; i < plen; i++)
		if (buf[i] != 0)
			fail_msg("byte %zu left in the buffer", i);

	/* Whole segments are not cached: the next read fetches again. */
	f->mem.reject_seg = UINT64_MAX;
	f->mem.fetches = 0;
	assert_int_equal(c4gh_reader_pread(f->r, buf, plen, 0, NULL),
			 (ssize_t)plen);
	assert_memory_equal(buf, f->plain, plen);
	assert_int_equal(c4gh_reader_pread(f->r, buf, C4GH_SEGMENT_SIZE, 0,
					   NULL), C4GH_SEGMENT_SIZE);
	assert_int_equal(f->mem.fetches, 2);

	/* A partial segment is: the rest of it comes from the cache. */
	assert_int_equal(c4gh_reader_pread(f->r, buf, 100, 5 *
					   C4GH_SEGMENT_SIZE, NULL), 100);
	assert_int_equal(c4gh_reader_pread(f->r, buf, 1000, 5 *
					   C4GH_SEGMENT_SIZE + 100, NULL),
			 1000);
	assert_memory_equal(buf, f->plain + 5 * C4GH_SEGMENT_SIZE + 100,
			    1000);
	assert_int_equal(f->mem.fetches, 3);
	free(buf);
	fixture_free(f);
}

static void test_c4gh_reader_corrupt_tag_fails_whole_read(void **state)
{
	struct c4gh_reader_error err;
	struct fixture *f;
	uint8_t *copy, *buf;
	const uint64_t k = 5;
	ssize_t n;

	(void)state;
	f = fixture_new("enc/size-3158073.bin.c4gh", "plain/size-3158073.bin",
			0);
	copy = malloc(f->mem.len);
	assert_non_null(copy);
	memcpy(copy, f->mem.data, f->mem.len);
	/* last byte of segment k's tag */
	copy[(k + 1) * C4GH_CIPHER_SEGMENT - 1] ^= 0x01;
	f->mem.data = copy;

	buf = malloc(3 * 65536);
	assert_non_null(buf);
	n = c4gh_reader_pread(f->r, buf, 3 * 65536, (k - 1) * 65536, &err);
	assert_int_equal(n, -EBADMSG);
	assert_int_equal(err.err, -EBADMSG);
	assert_int_equal(err.segment, k);
	assert_string_equal(err.what, "tag");

	/* Even a read inside segment k alone, and again (no cached state). */
	n = c4gh_reader_pread(f->r, buf, 10, k * 65536 + 100, &err);
	assert_int_equal(n, -EBADMSG);
	assert_int_equal(err.segment, k);

	/* Neighbours still read fine; the error is cleared. */
	n = c4gh_reader_pread(f->r, buf, 65536, (k - 1) * 65536, &err);
	assert_int_equal(n, 65536);
	assert_int_equal(err.err, 0);
	assert_memory_equal(buf, f->plain + (k - 1) * 65536, 65536);
	read_compare(f, (k + 1) * 65536, 65536, 4096);

	f->mem.data = f->enc + f->hdr.header_len;
	free(copy);
	free(buf);
	fixture_free(f);
}

static void test_c4gh_reader_check_rejects_segment(void **state)
{
	struct c4gh_reader_error err;
	struct fixture *f;
	uint8_t buf[4096];
	ssize_t n;

	(void)state;
	f = fixture_new("enc/size-3158073.bin.c4gh", "plain/size-3158073.bin",
			1);
	f->mem.reject_seg = 7;
	n = c4gh_reader_pread(f->r, buf, sizeof(buf), 7 * 65536 - 100, &err);
	assert_int_equal(n, -EBADMSG);
	assert_int_equal(err.err, -EBADMSG);
	assert_int_equal(err.segment, 7);
	assert_string_equal(err.what, "digest");
	/* The check ran on the right ciphertext. */
	assert_true(f->mem.check_calls >= 1);
	assert_int_equal(f->mem.check_bad_input, 0);

	read_compare(f, 6 * 65536, 65536, 4096);
	read_compare(f, 8 * 65536, 65536, 4096);
	fixture_free(f);
}

static void test_c4gh_reader_fetch_failure_is_eio(void **state)
{
	struct c4gh_reader_error err;
	struct fixture *f;
	uint8_t buf[100];
	ssize_t n;

	(void)state;
	f = fixture_new("enc/size-3158073.bin.c4gh", "plain/size-3158073.bin",
			1);
	f->mem.fail_fetch = 1;
	n = c4gh_reader_pread(f->r, buf, sizeof(buf), 3 * 65536 + 5, &err);
	assert_int_equal(n, -EIO);
	assert_int_equal(err.err, -EIO);
	assert_int_equal(err.segment, 3);
	assert_string_equal(err.what, "fetch");
	f->mem.fail_fetch = 0;
	read_compare(f, 3 * 65536 + 5, sizeof(buf), 4096);
	fixture_free(f);
}

static void test_c4gh_reader_truncated_data_fails_at_tail(void **state)
{
	struct c4gh_reader_error err;
	struct c4gh_reader_ops ops = { 0 };
	struct c4gh_reader *r;
	struct fixture *f;
	uint8_t buf[4096];
	uint64_t cut, size;
	ssize_t n;

	(void)state;
	f = fixture_new("enc/size-3158073.bin.c4gh", "plain/size-3158073.bin",
			0);
	ops.fetch = mem_fetch;
	ops.check = NULL;
	ops.ctx = &f->mem;

	/* 100 bytes missing from the end: still a plausible size. */
	cut = f->mem.len - 100;
	f->mem.len = cut;
	assert_int_equal(c4gh_reader_new(&f->hdr, cut, &ops, &r), 0);
	assert_int_equal(c4gh_plain_size(cut, &size), 0);
	assert_int_equal(c4gh_reader_size(r), BIG_SIZE - 100);
	assert_int_equal(c4gh_reader_size(r), size);

	n = c4gh_reader_pread(r, buf, sizeof(buf), 0, &err);
	assert_int_equal(n, sizeof(buf));
	assert_memory_equal(buf, f->plain, sizeof(buf));
	n = c4gh_reader_pread(r, buf, sizeof(buf), size - 10, &err);
	assert_int_equal(n, -EBADMSG);
	assert_int_equal(err.segment, BIG_SEGS - 1);
	assert_string_equal(err.what, "tag");
	r = c4gh_reader_free(r);

	/* Cut so that the last segment would be 1..28 bytes: refused. */
	cut = 48 * (uint64_t)C4GH_CIPHER_SEGMENT + 28;
	assert_int_equal(c4gh_reader_new(&f->hdr, cut, &ops, &r), -EBADMSG);
	assert_null(r);

	/* Claiming more than the data there: the fetch fails. */
	f->mem.len = 48 * (uint64_t)C4GH_CIPHER_SEGMENT;
	assert_int_equal(c4gh_reader_new(&f->hdr, 49 * (uint64_t)
					 C4GH_CIPHER_SEGMENT, &ops, &r), 0);
	n = c4gh_reader_pread(r, buf, sizeof(buf), 49 * 65536 - 10, &err);
	assert_int_equal(n, -EIO);
	assert_int_equal(err.segment, 48);
	r = c4gh_reader_free(r);
	fixture_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_c4gh_reader_buffer_sizes_give_same_bytes),
		cmocka_unit_test(test_c4gh_reader_segment_boundaries),
		cmocka_unit_test(test_c4gh_reader_tail_and_eof),
		cmocka_unit_test(test_c4gh_reader_small_files),
		cmocka_unit_test(test_c4gh_reader_threads_read_concurrently),
		cmocka_unit_test(test_c4gh_reader_edit_list_vector),
		cmocka_unit_test(test_c4gh_reader_synthetic_edit_lists),
		cmocka_unit_test(test_c4gh_reader_corrupt_tag_fails_whole_read),
		cmocka_unit_test(test_c4gh_reader_check_rejects_segment),
		cmocka_unit_test(test_c4gh_reader_fetch_failure_is_eio),
		cmocka_unit_test(test_c4gh_reader_truncated_data_fails_at_tail),
		cmocka_unit_test(test_c4gh_reader_reports_nonce_reuse),
		cmocka_unit_test(test_c4gh_reader_failure_wipes_whole_segments),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
