/*
 * test_c4gh_pool.c - the shared pool of decrypted segments: hits and
 * misses, least recently used out first, owners kept apart, dropping
 * wipes, locked memory, and readers sharing one pool.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "c4gh.h"
#include "c4gh_pool.h"
#include "c4gh_reader.h"
#include "cipher.h"

#define SEG	C4GH_SEGMENT_SIZE

static uint8_t seg_a[SEG], seg_b[SEG], seg_c[SEG];

static int setup(void **state)
{
	(void)state;
	memset(seg_a, 'a', SEG);
	memset(seg_b, 'b', SEG);
	memset(seg_c, 'c', SEG);
	return 0;
}

static void test_pool_refuses_less_than_a_segment(void **state)
{
	struct c4gh_pool *p = (void *)1;

	(void)state;
	assert_int_equal(c4gh_pool_new(SEG - 1, &p), -EINVAL);
	assert_null(p);
	assert_null(c4gh_pool_free(NULL));
}

static void test_pool_hits_misses_and_partial_segments(void **state)
{
	struct c4gh_pool *p;
	uint8_t buf[100];
	uint64_t o;

	(void)state;
	assert_int_equal(c4gh_pool_new(4 * SEG, &p), 0);
	o = c4gh_pool_owner_new(p);
	assert_int_equal(c4gh_pool_copy(p, o, 0, 0, 1, NULL), 0);

	c4gh_pool_put(p, o, 7, seg_a, 1000);
	assert_int_equal(c4gh_pool_count(p), 1);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(c4gh_pool_copy(p, o, 7, 900, 100, buf), 1);
	assert_memory_equal(buf, seg_a, 100);
	/* Past what the segment holds: a miss, nothing copied. */
	memset(buf, 0, sizeof(buf));
	assert_int_equal(c4gh_pool_copy(p, o, 7, 901, 100, buf), 0);
	assert_int_equal(buf[0], 0);
	assert_int_equal(c4gh_pool_copy(p, o, 8, 0, 1, buf), 0);

	/* Put again: replaced, still one entry. */
	c4gh_pool_put(p, o, 7, seg_b, SEG);
	assert_int_equal(c4gh_pool_count(p), 1);
	assert_int_equal(c4gh_pool_copy(p, o, 7, SEG - 100, 100, buf), 1);
	assert_memory_equal(buf, seg_b, 100);

	/* Nothing longer than a segment is kept. */
	c4gh_pool_put(p, o, 9, seg_c, 0);
	assert_int_equal(c4gh_pool_count(p), 1);
	c4gh_pool_free(p);
}

static void test_pool_evicts_least_recently_used(void **state)
{
	struct c4gh_pool *p;
	uint8_t buf[10];
	uint64_t o;

	(void)state;
	assert_int_equal(c4gh_pool_new(2 * SEG + 100, &p), 0);
	assert_int_equal(c4gh_pool_capacity(p), 2);
	o = c4gh_pool_owner_new(p);
	c4gh_pool_put(p, o, 1, seg_a, SEG);
	c4gh_pool_put(p, o, 2, seg_b, SEG);
	/* Touch 1: then 2 is the oldest. */
	assert_int_equal(c4gh_pool_copy(p, o, 1, 0, 10, buf), 1);
	c4gh_pool_put(p, o, 3, seg_c, SEG);
	assert_int_equal(c4gh_pool_count(p), 2);
	assert_int_equal(c4gh_pool_copy(p, o, 2, 0, 10, buf), 0);
	assert_int_equal(c4gh_pool_copy(p, o, 1, 0, 10, buf), 1);
	assert_memory_equal(buf, seg_a, 10);
	assert_int_equal(c4gh_pool_copy(p, o, 3, 0, 10, buf), 1);
	assert_memory_equal(buf, seg_c, 10);
	c4gh_pool_free(p);
}

static void test_pool_keeps_owners_apart_and_drop_forgets(void **state)
{
	struct c4gh_pool *p;
	uint64_t o1, o2;
	uint8_t buf[10];

	(void)state;
	assert_int_equal(c4gh_pool_new(8 * SEG, &p), 0);
	o1 = c4gh_pool_owner_new(p);
	o2 = c4gh_pool_owner_new(p);
	assert_int_not_equal(o1, o2);
	c4gh_pool_put(p, o1, 5, seg_a, SEG);
	c4gh_pool_put(p, o2, 5, seg_b, SEG);
	c4gh_pool_put(p, o1, 6, seg_c, SEG);
	assert_int_equal(c4gh_pool_copy(p, o2, 5, 0, 10, buf), 1);
	assert_memory_equal(buf, seg_b, 10);
	assert_int_equal(c4gh_pool_copy(p, o2, 6, 0, 10, buf), 0);

	c4gh_pool_drop(p, o1);
	assert_int_equal(c4gh_pool_count(p), 1);
	assert_int_equal(c4gh_pool_copy(p, o1, 5, 0, 10, buf), 0);
	assert_int_equal(c4gh_pool_copy(p, o1, 6, 0, 10, buf), 0);
	assert_int_equal(c4gh_pool_copy(p, o2, 5, 0, 10, buf), 1);

	/* Dropped entries are used again before the pool grows. */
	c4gh_pool_put(p, o2, 1, seg_a, SEG);
	c4gh_pool_put(p, o2, 2, seg_a, SEG);
	assert_int_equal(c4gh_pool_count(p), 3);
	c4gh_pool_free(p);
}

/* ---- readers sharing a pool ---------------------------------------------- */

struct mem {
	uint8_t *data;
	size_t len;
	int fetches;
};

static int mem_fetch(void *ctx, uint64_t off, uint8_t *buf, size_t len)
{
	struct mem *m = ctx;

	m->fetches++;
	if (off > m->len || len > m->len - off)
		return -EIO;
	memcpy(buf, m->data + off, len);
	return 0;
}

/* nsegs full segments of pt, encrypted under key, into a data section. */
static uint8_t *encrypt_all(const uint8_t key[32], const uint8_t *pt,
			    size_t nsegs, size_t *ret_len)
{
	uint8_t *out = malloc(nsegs * C4GH_CIPHER_SEGMENT);
	size_t i;

	assert_non_null(out);
	for (i = 0; i < nsegs; i++)
		assert_int_equal(c4gh_segment_encrypt(key, pt + i * SEG, SEG,
				 out + i * C4GH_CIPHER_SEGMENT), 0);
	*ret_len = nsegs * C4GH_CIPHER_SEGMENT;
	return out;
}

static void test_pool_serves_readers_and_forgets_a_freed_one(void **state)
{
	const size_t nsegs = 8;
	struct c4gh_reader_ops ops = { 0 };
	struct c4gh_header hdr;
	struct c4gh_reader *r1, *r2;
	struct c4gh_pool *p;
	struct mem m1 = { 0 }, m2 = { 0 };
	uint8_t *pt, buf[4096];
	size_t i;

	(void)state;
	memset(&hdr, 0, sizeof(hdr));
	hdr.nkeys = 1;
	assert_int_equal(cipher_random(hdr.keys[0], 32), 0);
	pt = malloc(nsegs * SEG);
	assert_non_null(pt);
	assert_int_equal(cipher_random(pt, nsegs * SEG), 0);
	m1.data = encrypt_all(hdr.keys[0], pt, nsegs, &m1.len);
	m2.data = encrypt_all(hdr.keys[0], pt, nsegs, &m2.len);

	assert_int_equal(c4gh_pool_new(16 * SEG, &p), 0);
	ops.fetch = mem_fetch;
	ops.pool = p;
	ops.ctx = &m1;
	assert_int_equal(c4gh_reader_new(&hdr, m1.len, &ops, &r1), 0);
	ops.ctx = &m2;
	assert_int_equal(c4gh_reader_new(&hdr, m2.len, &ops, &r2), 0);

	/* 4 KiB reads all over: one fetch per segment, then only hits. */
	for (i = 0; i < 2 * nsegs * SEG / sizeof(buf); i++) {
		uint64_t off = (i * 7919 % (nsegs * SEG / sizeof(buf))) *
			       sizeof(buf);

		assert_int_equal(c4gh_reader_pread(r1, buf, sizeof(buf), off,
						   NULL), sizeof(buf));
		assert_memory_equal(buf, pt + off, sizeof(buf));
	}
	assert_int_equal(m1.fetches, nsegs);
	assert_int_equal(c4gh_pool_count(p), nsegs);

	/* Another reader of the same bytes has its own entries. */
	assert_int_equal(c4gh_reader_pread(r2, buf, 100, 3 * SEG + 5, NULL),
			 100);
	assert_memory_equal(buf, pt + 3 * SEG + 5, 100);
	assert_int_equal(m2.fetches, 1);
	assert_int_equal(c4gh_pool_count(p), nsegs + 1);

	/* A freed reader's plaintext leaves the pool at once. */
	r1 = c4gh_reader_free(r1);
	assert_int_equal(c4gh_pool_count(p), 1);
	assert_int_equal(c4gh_reader_pread(r2, buf, 100, 3 * SEG + 200, NULL),
			 100);
	assert_int_equal(m2.fetches, 1);

	/* Whole segments do not go through the pool. */
	assert_int_equal(c4gh_reader_pread(r2, pt, 2 * SEG, 0, NULL),
			 2 * SEG);
	assert_int_equal(c4gh_pool_count(p), 1);

	c4gh_reader_free(r2);
	assert_int_equal(c4gh_pool_count(p), 0);
	c4gh_pool_free(p);
	free(m1.data);
	free(m2.data);
	free(pt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pool_refuses_less_than_a_segment),
		cmocka_unit_test(test_pool_hits_misses_and_partial_segments),
		cmocka_unit_test(test_pool_evicts_least_recently_used),
		cmocka_unit_test(test_pool_keeps_owners_apart_and_drop_forgets),
		cmocka_unit_test(test_pool_serves_readers_and_forgets_a_freed_one),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
