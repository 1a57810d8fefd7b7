/*
 * test_market.c - the market's signed documents: each one written with
 * jws_sign() parses back field for field; every strictness rule holds;
 * a document of one type never passes for another.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "b64.h"
#include "c4gh.h"
#include "cipher.h"
#include "jws.h"
#include "market.h"

#define MID	"0123456789abcdef0123456789abcdef"
#define LID	"fedcba9876543210fedcba9876543210"
#define H64	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define H64B	"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

struct keys {
	uint8_t sk[32], pk[32], sk2[32], pk2[32];
	char kid[MARKET_FP_LEN], kid2[MARKET_FP_LEN];
};

static int setup(void **state)
{
	struct keys *k = calloc(1, sizeof(*k));

	if (!k || cipher_ed25519_keypair(k->sk, k->pk) ||
	    cipher_ed25519_keypair(k->sk2, k->pk2))
		return -1;
	market_fingerprint(k->pk, k->kid);
	market_fingerprint(k->pk2, k->kid2);
	*state = k;
	return 0;
}

static int teardown(void **state)
{
	free(*state);
	return 0;
}

static char *sign(const struct keys *k, json_t *pl, const char *type)
{
	char *jws = NULL;

	assert_int_equal(jws_sign(pl, type, k->sk, k->kid, &jws), 0);
	json_decref(pl);
	return jws;
}

static json_t *file_entry(const char *path, json_int_t size)
{
	json_int_t nseg = (size + 65535) / 65536;

	return json_pack("{s:s, s:I, s:s, s:I, s:I, s:s, s:I, s:s, s:s,"
			 " s:s}", "path", path, "size", size,
			 "object", "datasets/d/v1/objects/000001.c4gh",
			 "header_len", (json_int_t)124,
			 "data_len", (json_int_t)c4gh_cipher_size(
				 (uint64_t)size),
			 "header_sha256", H64, "segments", nseg,
			 "sums", "datasets/d/v1/objects/000001.sums",
			 "sums_sha256", H64B, "data_sha256", H64);
}

static json_t *manifest_payload(void)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:[o, o, o]}",
			 "market", MID, "dataset", "d", "version", "v1",
			 "created", "2026-01-02T03:04:05Z",
			 "files", file_entry("a.txt", 6),
			 file_entry("dir/b.bin", 200000),
			 file_entry("empty", 0));
}

static json_t *licence_payload(const uint8_t x25519[32])
{
	char *lk = NULL, *hdr = NULL;
	uint8_t raw[124] = { 'c', 'r', 'y', 'p', 't', '4', 'g', 'h', 1 };
	json_t *pl;

	assert_int_equal(b64_encode(x25519, 32, B64_STD, &lk), 0);
	assert_int_equal(b64_encode(raw, sizeof(raw), B64_STD, &hdr), 0);
	pl = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I,"
		       " s:s, s:s, s:s, s:I, s:I, s:[{s:s, s:s}, {s:s, s:s}],"
		       " s:s}",
		       "id", LID, "market", MID, "licensee", lk,
		       "dataset", "d", "version", "v1",
		       "manifest_sha256", H64,
		       "issued", "2026-01-01T00:00:00Z",
		       "not_before", "2026-01-01T00:00:00Z",
		       "expires", "2027-01-01T00:00:00Z",
		       "serial", (json_int_t)3, "policy", "research-12m",
		       "terms", "research only\nno redistribution",
		       "on_end", "cut", "offline_grace", (json_int_t)3600,
		       "seats", (json_int_t)2,
		       "headers", "path", "a.txt", "header", hdr,
		       "path", "b.txt", "header", hdr,
		       "facts", "AAAA");
	free(lk);
	free(hdr);
	return pl;
}

static void test_market_info_round_trips(void **state)
{
	struct keys *k = *state;
	uint8_t x[32];
	char *sk64, *xk64, *jws;
	struct market_info *info;

	memset(x, 7, sizeof(x));
	assert_int_equal(b64_encode(k->pk, 32, B64_URL, &sk64), 0);
	assert_int_equal(b64_encode(x, 32, B64_STD, &xk64), 0);
	jws = sign(k, json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", MID,
				"name", "Demo", "signing_key", sk64,
				"c4gh_key", xk64,
				"created", "2026-12-03T17:05:37Z"),
		   MARKET_TYPE_INFO);
	assert_int_equal(market_info_parse(jws, strlen(jws), NULL, &info), 0);
	assert_string_equal(info->id, MID);
	assert_string_equal(info->name, "Demo");
	assert_memory_equal(info->sign_pk, k->pk, 32);
	assert_memory_equal(info->c4gh_pk, x, 32);
	assert_int_equal(info->created, 1796317537);
	market_info_free(info);

	/* Pinned to the right key, then to another one. */
	assert_int_equal(market_info_parse(jws, strlen(jws), k->pk, &info), 0);
	market_info_free(info);
	assert_int_equal(market_info_parse(jws, strlen(jws), k->pk2, &info),
			 -EKEYREJECTED);
	assert_null(info);
	free(jws);

	/* Signed by another key than the one it carries. */
	{
		json_t *pl = json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", MID,
				       "name", "Demo", "signing_key", sk64,
				       "c4gh_key", xk64,
				       "created", "2026-12-03T17:05:37Z");

		assert_int_equal(jws_sign(pl, MARKET_TYPE_INFO, k->sk2,
					  k->kid2, &jws), 0);
		json_decref(pl);
	}
	assert_int_equal(market_info_parse(jws, strlen(jws), NULL, &info),
			 -EKEYREJECTED);
	free(jws);
	free(sk64);
	free(xk64);
}

static void test_market_catalog_round_trips(void **state)
{
	struct keys *k = *state;
	struct market_catalog *cat;
	char *jws;

	jws = sign(k, json_pack("{s:s, s:s, s:[{s:s, s:s, s:s, s:s, s:s, s:s,"
				" s:I, s:I, s:s}]}", "market", MID,
				"issued", "2026-01-02T03:04:05Z", "datasets",
				"id", "cohort-1", "title", "Cohort", "provider",
				"Hospital", "description", "ECGs\nand notes",
				"price", "EUR 1200", "latest_version", "v2",
				"files", (json_int_t)3, "size",
				(json_int_t)123456, "terms", "research-12m"),
		   MARKET_TYPE_CATALOG);
	assert_int_equal(market_catalog_parse(jws, strlen(jws), k->pk, &cat),
			 0);
	assert_string_equal(cat->market_id, MID);
	assert_int_equal(cat->ndatasets, 1);
	assert_string_equal(cat->datasets[0].id, "cohort-1");
	assert_string_equal(cat->datasets[0].description, "ECGs\nand notes");
	assert_string_equal(cat->datasets[0].price, "EUR 1200");
	assert_string_equal(cat->datasets[0].latest_version, "v2");
	assert_int_equal(cat->datasets[0].nfiles, 3);
	assert_int_equal(cat->datasets[0].size, 123456);
	assert_string_equal(cat->datasets[0].terms, "research-12m");
	market_catalog_free(cat);
	free(jws);
}

static void test_market_manifest_round_trips(void **state)
{
	struct keys *k = *state;
	struct market_manifest *m;
	const struct market_file *f;
	uint8_t digest[32];
	char *jws;

	jws = sign(k, manifest_payload(), MARKET_TYPE_MANIFEST);
	assert_int_equal(market_manifest_parse(jws, strlen(jws), k->pk, &m),
			 0);
	assert_string_equal(m->dataset, "d");
	assert_string_equal(m->version, "v1");
	assert_string_equal(m->market_id, MID);
	assert_int_equal(m->nfiles, 3);
	cipher_sha256(jws, strlen(jws), digest);
	assert_memory_equal(m->digest, digest, 32);

	f = market_manifest_find(m, "dir/b.bin");
	assert_non_null(f);
	assert_int_equal(f->size, 200000);
	assert_int_equal(f->nsegments, 4);
	assert_int_equal(f->data_len, 200000 + 4 * 28);
	assert_int_equal(f->header_len, 124);
	assert_int_equal(f->header_sha256[0], 0xaa);
	assert_int_equal(f->sums_sha256[31], 0xbb);
	assert_string_equal(f->sums, "datasets/d/v1/objects/000001.sums");
	f = market_manifest_find(m, "empty");
	assert_non_null(f);
	assert_int_equal(f->nsegments, 0);
	assert_int_equal(f->data_len, 0);
	assert_null(market_manifest_find(m, "nope"));
	assert_non_null(market_manifest_find(m, "a.txt"));
	market_manifest_free(m);
	free(jws);
}

static void test_market_licence_round_trips(void **state)
{
	struct keys *k = *state;
	struct market_licence *l;
	uint8_t x[32];
	char *jws;

	memset(x, 9, sizeof(x));
	jws = sign(k, licence_payload(x), MARKET_TYPE_LICENCE);
	assert_int_equal(market_licence_parse(jws, strlen(jws), k->pk, &l), 0);
	assert_string_equal(l->id, LID);
	assert_string_equal(l->market_id, MID);
	assert_memory_equal(l->licensee, x, 32);
	assert_int_equal(l->not_before, 1767225600);
	assert_int_equal(l->expires, 1798761600);
	assert_int_equal(l->serial, 3);
	assert_int_equal(l->on_end, MARKET_END_CUT);
	assert_int_equal(l->offline_grace, 3600);
	assert_int_equal(l->seats, 2);
	assert_string_equal(l->terms, "research only\nno redistribution");
	assert_int_equal(l->nheaders, 2);
	assert_int_equal(l->headers[1].header_len, 124);
	assert_int_equal(l->headers[1].header[8], 1);
	assert_non_null(market_licence_find(l, "b.txt"));
	assert_null(market_licence_find(l, "c.txt"));
	assert_int_equal(l->facts_len, 3);
	market_licence_free(l);
	free(jws);
}

static void test_market_index_and_revocations_round_trip(void **state)
{
	struct keys *k = *state;
	struct market_index *idx;
	struct market_revocations *rev;
	uint8_t x[32];
	char *jws, *lk;

	memset(x, 5, sizeof(x));
	assert_int_equal(b64_encode(x, 32, B64_STD, &lk), 0);
	jws = sign(k, json_pack("{s:s, s:[s, s], s:[s, s]}", "licensee", lk,
				"licences", LID, MID,
				"datasets", "cohort", "imaging"),
		   MARKET_TYPE_INDEX);
	assert_int_equal(market_index_parse(jws, strlen(jws), k->pk, &idx), 0);
	assert_memory_equal(idx->licensee, x, 32);
	assert_int_equal(idx->nids, 2);
	assert_string_equal(idx->ids[0], LID);
	assert_string_equal(idx->datasets[1], "imaging");
	market_index_free(idx);
	free(jws);

	/* Each licence must name its dataset, and a valid one. */
	jws = sign(k, json_pack("{s:s, s:[s, s], s:[s]}", "licensee", lk,
				"licences", LID, MID, "datasets", "cohort"),
		   MARKET_TYPE_INDEX);
	assert_int_equal(market_index_parse(jws, strlen(jws), k->pk, &idx),
			 -EBADMSG);
	free(jws);
	jws = sign(k, json_pack("{s:s, s:[s], s:[s]}", "licensee", lk,
				"licences", LID, "datasets", "../x"),
		   MARKET_TYPE_INDEX);
	assert_int_equal(market_index_parse(jws, strlen(jws), k->pk, &idx),
			 -EBADMSG);
	free(jws);
	free(lk);

	jws = sign(k, json_pack("{s:s, s:I, s:s, s:s, s:[s, s]}", "market",
				MID, "version", (json_int_t)4, "issued",
				"2026-01-01T00:00:00Z", "next_update",
				"2026-01-02T00:00:00Z", "revoked", MID, LID),
		   MARKET_TYPE_REVOCATIONS);
	assert_int_equal(market_revocations_parse(jws, strlen(jws), k->pk,
						  &rev), 0);
	assert_int_equal(rev->version, 4);
	assert_int_equal(rev->next_update - rev->issued, 86400);
	assert_true(market_revocations_has(rev, LID));
	assert_true(market_revocations_has(rev, MID));
	assert_false(market_revocations_has(rev, H64));
	market_revocations_free(rev);
	free(jws);

	/* Unsorted revoked ids are refused (lookups binary-search). */
	jws = sign(k, json_pack("{s:s, s:I, s:s, s:s, s:[s, s]}", "market",
				MID, "version", (json_int_t)4, "issued",
				"2026-01-01T00:00:00Z", "next_update",
				"2026-01-02T00:00:00Z", "revoked", LID, MID),
		   MARKET_TYPE_REVOCATIONS);
	assert_int_equal(market_revocations_parse(jws, strlen(jws), k->pk,
						  &rev), -EBADMSG);
	free(jws);
}

static void test_market_rejects_licence_as_manifest(void **state)
{
	struct keys *k = *state;
	struct market_manifest *m = NULL;
	struct market_licence *l = NULL;
	struct market_revocations *rev = NULL;
	uint8_t x[32] = { 1 };
	char *lic, *man;

	lic = sign(k, licence_payload(x), MARKET_TYPE_LICENCE);
	man = sign(k, manifest_payload(), MARKET_TYPE_MANIFEST);
	assert_int_equal(market_manifest_parse(lic, strlen(lic), k->pk, &m),
			 -EBADMSG);
	assert_null(m);
	assert_int_equal(market_licence_parse(man, strlen(man), k->pk, &l),
			 -EBADMSG);
	assert_null(l);
	assert_int_equal(market_revocations_parse(man, strlen(man), k->pk,
						  &rev), -EBADMSG);
	/* And a manifest signed by another key. */
	assert_int_equal(market_manifest_parse(man, strlen(man), k->pk2, &m),
			 -EKEYREJECTED);
	free(lic);
	free(man);
}

/* Change one member of the manifest's second file; expect -EBADMSG. */
static void expect_bad_file(const struct keys *k, const char *key,
			    json_t *value)
{
	json_t *pl = manifest_payload();
	struct market_manifest *m = NULL;
	char *jws;

	if (value)
		json_object_set_new(json_array_get(json_object_get(pl,
			"files"), 1), key, value);
	else
		json_object_del(json_array_get(json_object_get(pl, "files"),
					       1), key);
	jws = sign(k, pl, MARKET_TYPE_MANIFEST);
	if (market_manifest_parse(jws, strlen(jws), k->pk, &m) != -EBADMSG)
		fail_msg("manifest with bad '%s' accepted", key);
	assert_null(m);
	free(jws);
}

static void test_market_manifest_is_strict(void **state)
{
	struct keys *k = *state;
	json_t *pl;
	struct market_manifest *m;
	char *jws;

	expect_bad_file(k, "path", json_string("../etc/passwd"));
	expect_bad_file(k, "path", json_string("/abs"));
	expect_bad_file(k, "path", json_string("a//b"));
	expect_bad_file(k, "path", json_string("TERMS.marketfs"));
	expect_bad_file(k, "path", json_string("a.txt"));	/* duplicate */
	expect_bad_file(k, "path", json_string("0first"));	/* unsorted */
	expect_bad_file(k, "size", json_integer(-1));
	expect_bad_file(k, "size", json_real(200000.0));
	expect_bad_file(k, "size", json_integer(200001));	/* data_len */
	expect_bad_file(k, "segments", json_integer(3));
	expect_bad_file(k, "data_len", json_integer(200000));
	expect_bad_file(k, "header_sha256", json_string(H64 "a"));
	expect_bad_file(k, "header_sha256", json_string(
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
	expect_bad_file(k, "sums_sha256", json_string("zz"));
	expect_bad_file(k, "object", json_string("http://x/y"));
	expect_bad_file(k, "object", json_string("../x"));
	expect_bad_file(k, "header_len", json_integer(4));
	expect_bad_file(k, "extra", json_string("x"));
	expect_bad_file(k, "data_sha256", NULL);

	/* An https object is allowed. */
	pl = manifest_payload();
	json_object_set_new(json_array_get(json_object_get(pl, "files"), 0),
			    "object", json_string("https://cdn.example/o/1"));
	jws = sign(k, pl, MARKET_TYPE_MANIFEST);
	assert_int_equal(market_manifest_parse(jws, strlen(jws), k->pk, &m),
			 0);
	market_manifest_free(m);
	free(jws);

	/* Top level: unknown member, non-UTC time, bad dataset id. */
	pl = manifest_payload();
	json_object_set_new(pl, "note", json_string("x"));
	jws = sign(k, pl, MARKET_TYPE_MANIFEST);
	assert_int_equal(market_manifest_parse(jws, strlen(jws), k->pk, &m),
			 -EBADMSG);
	free(jws);
	pl = manifest_payload();
	json_object_set_new(pl, "created",
			    json_string("2026-01-02T03:04:05+01:00"));
	jws = sign(k, pl, MARKET_TYPE_MANIFEST);
	assert_int_equal(market_manifest_parse(jws, strlen(jws), k->pk, &m),
			 -EBADMSG);
	free(jws);
	pl = manifest_payload();
	json_object_set_new(pl, "dataset", json_string("Upper"));
	jws = sign(k, pl, MARKET_TYPE_MANIFEST);
	assert_int_equal(market_manifest_parse(jws, strlen(jws), k->pk, &m),
			 -EBADMSG);
	free(jws);
}

static void test_market_licence_is_strict(void **state)
{
	static const char *const drop[] = {
		"id", "market", "licensee", "expires", "serial", "terms",
		"headers", "facts",
	};
	struct keys *k = *state;
	struct market_licence *l;
	uint8_t x[32] = { 3 };
	json_t *pl;
	char *jws;

	for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++) {
		pl = licence_payload(x);
		json_object_del(pl, drop[i]);
		jws = sign(k, pl, MARKET_TYPE_LICENCE);
		if (market_licence_parse(jws, strlen(jws), k->pk, &l) !=
		    -EBADMSG)
			fail_msg("licence without '%s' accepted", drop[i]);
		free(jws);
	}

	pl = licence_payload(x);
	json_object_set_new(pl, "on_end", json_string("linger"));
	jws = sign(k, pl, MARKET_TYPE_LICENCE);
	assert_int_equal(market_licence_parse(jws, strlen(jws), k->pk, &l),
			 -EBADMSG);
	free(jws);

	pl = licence_payload(x);
	json_object_set_new(pl, "expires", json_string("2025-12-31T00:00:00Z"));
	jws = sign(k, pl, MARKET_TYPE_LICENCE);
	assert_int_equal(market_licence_parse(jws, strlen(jws), k->pk, &l),
			 -EBADMSG);
	free(jws);

	pl = licence_payload(x);
	json_object_set_new(pl, "seats", json_integer(1LL << 33));
	jws = sign(k, pl, MARKET_TYPE_LICENCE);
	assert_int_equal(market_licence_parse(jws, strlen(jws), k->pk, &l),
			 -EBADMSG);
	free(jws);

	pl = licence_payload(x);
	json_object_set_new(pl, "licensee", json_string("AAAA"));
	jws = sign(k, pl, MARKET_TYPE_LICENCE);
	assert_int_equal(market_licence_parse(jws, strlen(jws), k->pk, &l),
			 -EBADMSG);
	free(jws);
}

static void test_market_ids_and_paths(void **state)
{
	uint8_t pk[32] = { 0 };
	char fp[MARKET_FP_LEN], *p;

	(void)state;
	assert_true(market_id_is_valid("cohort-1"));
	assert_true(market_id_is_valid("a"));
	assert_true(market_id_is_valid("v12"));
	assert_false(market_id_is_valid(""));
	assert_false(market_id_is_valid("-a"));
	assert_false(market_id_is_valid(".hidden"));
	assert_false(market_id_is_valid("Upper"));
	assert_false(market_id_is_valid("a/b"));
	assert_false(market_id_is_valid(
		"a0123456789012345678901234567890123456789012345678901234567890123"));

	/* SHA-256 of 32 zero bytes. */
	market_fingerprint(pk, fp);
	assert_string_equal(fp, "66687aadf862bd776c8fc18b8e9f8e20"
			    "089714856ee233b3902a591d0d5f2925");
	assert_int_equal(market_path_manifest("d", "v3", &p), 0);
	assert_string_equal(p, "datasets/d/v3/manifest.jws");
	free(p);
	assert_int_equal(market_path_manifest("../d", "v3", &p), -EINVAL);
	assert_int_equal(market_path_index(pk, &p), 0);
	assert_string_equal(p, "licences/66687aadf862bd776c8fc18b8e9f8e20"
			    "089714856ee233b3902a591d0d5f2925/index.jws");
	free(p);
	assert_int_equal(market_path_licence(pk, LID, &p), 0);
	assert_string_equal(p, "licences/66687aadf862bd776c8fc18b8e9f8e20"
			    "089714856ee233b3902a591d0d5f2925/" LID ".jws");
	free(p);
	assert_int_equal(market_path_licence(pk, "../x", &p), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_market_info_round_trips),
		cmocka_unit_test(test_market_catalog_round_trips),
		cmocka_unit_test(test_market_manifest_round_trips),
		cmocka_unit_test(test_market_licence_round_trips),
		cmocka_unit_test(test_market_index_and_revocations_round_trip),
		cmocka_unit_test(test_market_rejects_licence_as_manifest),
		cmocka_unit_test(test_market_manifest_is_strict),
		cmocka_unit_test(test_market_licence_is_strict),
		cmocka_unit_test(test_market_ids_and_paths),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
