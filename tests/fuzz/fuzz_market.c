/*
 * fuzz_market.c - the six signed market documents.
 *
 * Input: one selector byte, then bytes.  selector % 6 picks the parser
 * (market description, catalog, manifest, licence, licence index,
 * revocations); (selector / 6) % 2 says what the bytes are:
 *   0  a whole JWS document, checked with the fixed market key;
 *   1  a payload, signed as is by the target with the fixed market key,
 *      so that the strict parser behind the signature is reached.
 * For the market description, (selector / 12) % 2 says whether the key
 * is pinned or taken from the document.
 * Invariants checked on success: lists sorted and unique as documented,
 * lookups find every listed entry, a manifest's digest is the SHA-256 of
 * its bytes, a description carries the key that really signed it.
 */
#include <errno.h>
#include <string.h>

#include "c4gh.h"
#include "cipher.h"
#include "jws.h"
#include "market.h"

#include "fuzz_common.h"

enum doc {
	DOC_INFO, DOC_CATALOG, DOC_MANIFEST, DOC_LICENCE, DOC_INDEX,
	DOC_REVOCATIONS, DOC_COUNT
};

static const char *const doc_types[DOC_COUNT] = {
	MARKET_TYPE_INFO, MARKET_TYPE_CATALOG, MARKET_TYPE_MANIFEST,
	MARKET_TYPE_LICENCE, MARKET_TYPE_INDEX, MARKET_TYPE_REVOCATIONS,
};

/* FUZZ_TRACE=1 in the environment prints each result (seed checks). */
static void trace(int r)
{
	if (getenv("FUZZ_TRACE"))
		fprintf(stderr, "parse: %d\n", r);
}

static void check_errno(int r)
{
	FUZZ_CHECK(r == -EBADMSG || r == -EKEYREJECTED || r == -ENOMEM ||
		   r == -EPROTONOSUPPORT || r == -EFBIG || r == -EPROTO);
	(void)market_strerror(r);
}

static void run_info(const char *jws, size_t len, int pin)
{
	struct market_info *info = NULL;
	json_t *payload = NULL;
	uint8_t pk[32];
	int r;

	fuzz_market_keys(NULL, pk);
	r = market_info_parse(jws, len, pin ? pk : NULL, &info);
	trace(r);
	if (r < 0) {
		check_errno(r);
		FUZZ_CHECK(info == NULL);
		return;
	}
	/* The key it carries really signed it (and is the pin if any). */
	if (pin)
		FUZZ_CHECK(!memcmp(info->sign_pk, pk, 32));
	FUZZ_CHECK(jws_verify(jws, len, info->sign_pk, MARKET_TYPE_INFO,
			      &payload) == 0);
	json_decref(payload);
	FUZZ_CHECK(strlen(info->id) == 32);
	market_info_free(info);
}

static void run_catalog(const char *jws, size_t len, const uint8_t pk[32])
{
	struct market_catalog *cat = NULL;
	size_t i;
	int r;

	r = market_catalog_parse(jws, len, pk, &cat);
	trace(r);
	if (r < 0) {
		check_errno(r);
		return;
	}
	for (i = 0; i < cat->ndatasets; i++) {
		FUZZ_CHECK(market_id_is_valid(cat->datasets[i].id));
		if (i)
			FUZZ_CHECK(strcmp(cat->datasets[i - 1].id,
					  cat->datasets[i].id) < 0);
	}
	market_catalog_free(cat);
}

static void run_manifest(const char *jws, size_t len, const uint8_t pk[32])
{
	struct market_manifest *m = NULL;
	uint8_t digest[32];
	size_t i;
	int r;

	r = market_manifest_parse(jws, len, pk, &m);
	trace(r);
	if (r < 0) {
		check_errno(r);
		return;
	}
	FUZZ_CHECK(cipher_sha256(jws, len, digest) == 0);
	FUZZ_CHECK(!memcmp(digest, m->digest, 32));
	FUZZ_CHECK(market_id_is_valid(m->dataset));
	FUZZ_CHECK(market_id_is_valid(m->version));
	for (i = 0; i < m->nfiles; i++) {
		const struct market_file *f = &m->files[i];

		if (i)
			FUZZ_CHECK(strcmp(m->files[i - 1].path, f->path) < 0);
		FUZZ_CHECK(market_manifest_find(m, f->path) == f);
		FUZZ_CHECK(f->data_len == c4gh_cipher_size(f->size));
	}
	FUZZ_CHECK(market_manifest_find(m, "") == NULL);
	FUZZ_CHECK(market_manifest_find(m, "\x7f") == NULL);
	market_manifest_free(m);
}

static void run_licence(const char *jws, size_t len, const uint8_t pk[32])
{
	struct market_licence *l = NULL;
	size_t i;
	int r;

	r = market_licence_parse(jws, len, pk, &l);
	trace(r);
	if (r < 0) {
		check_errno(r);
		return;
	}
	FUZZ_CHECK(l->expires > l->not_before);
	FUZZ_CHECK(l->serial > 0);
	FUZZ_CHECK(l->on_end == MARKET_END_FINISH ||
		   l->on_end == MARKET_END_CUT);
	for (i = 0; i < l->nheaders; i++) {
		const struct market_licence_header *h = &l->headers[i];

		if (i)
			FUZZ_CHECK(strcmp(l->headers[i - 1].path,
					  h->path) < 0);
		FUZZ_CHECK(market_licence_find(l, h->path) == h);
		FUZZ_CHECK(h->header_len > 0 &&
			   h->header_len <= C4GH_HEADER_MAX);
	}
	FUZZ_CHECK(market_licence_find(l, "") == NULL);
	market_licence_free(l);
}

static void run_index(const char *jws, size_t len, const uint8_t pk[32])
{
	struct market_index *idx = NULL;
	size_t i, j;
	int r;

	r = market_index_parse(jws, len, pk, &idx);
	trace(r);
	if (r < 0) {
		check_errno(r);
		return;
	}
	for (i = 0; i < idx->nids; i++)
		for (j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(idx->ids[i], idx->ids[j]) != 0);
	market_index_free(idx);
}

static void run_revocations(const char *jws, size_t len,
			    const uint8_t pk[32])
{
	struct market_revocations *rev = NULL;
	size_t i;
	int r;

	r = market_revocations_parse(jws, len, pk, &rev);
	trace(r);
	if (r < 0) {
		check_errno(r);
		return;
	}
	for (i = 0; i < rev->nids; i++) {
		if (i)
			FUZZ_CHECK(strcmp(rev->ids[i - 1], rev->ids[i]) < 0);
		FUZZ_CHECK(market_revocations_has(rev, rev->ids[i]) == 1);
	}
	FUZZ_CHECK(market_revocations_has(rev, "") == 0);
	FUZZ_CHECK(market_revocations_has(rev, "zz") == 0);
	market_revocations_free(rev);
}

static void run_doc(enum doc doc, const char *jws, size_t len, int pin)
{
	uint8_t pk[32];

	fuzz_market_keys(NULL, pk);
	switch (doc) {
	case DOC_INFO:
		run_info(jws, len, pin);
		break;
	case DOC_CATALOG:
		run_catalog(jws, len, pk);
		break;
	case DOC_MANIFEST:
		run_manifest(jws, len, pk);
		break;
	case DOC_LICENCE:
		run_licence(jws, len, pk);
		break;
	case DOC_INDEX:
		run_index(jws, len, pk);
		break;
	default:
		run_revocations(jws, len, pk);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum doc doc;
	char *jws = NULL;
	size_t len;
	int pin;

	if (size < 1)
		return 0;
	doc = (enum doc)(data[0] % DOC_COUNT);
	pin = (data[0] / 12) % 2;
	if ((data[0] / 6) % 2 == 0) {
		/* A private copy, so that reading past size is caught. */
		len = size - 1;
		jws = malloc(len ? len : 1);
		if (!jws)
			return 0;
		memcpy(jws, data + 1, len);
	} else if (fuzz_sign_raw(doc_types[doc], data + 1, size - 1, &jws,
				 &len) < 0) {
		return 0;
	}
	run_doc(doc, jws, len, pin);
	free(jws);
	return 0;
}
