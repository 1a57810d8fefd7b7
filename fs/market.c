/*
 * market.c - parse and verify the market's signed documents.
 *
 * Every parser first has jws_verify() check the Ed25519 signature over
 * the received bytes with the market's key, then reads the payload
 * strictly: every member is known and of the right JSON type, no
 * member is unknown, strings have bounded lengths, hex digests are 64
 * lower-case characters, ids have their documented alphabet, times are
 * strict RFC 3339 UTC, integers are JSON integers in range, paths are
 * safe, sorted and unique, and sizes are consistent with Crypt4GH (a
 * file of size bytes has c4gh_cipher_size(size) bytes of data in
 * ceil(size / 65536) segments).  Any deviation is -EBADMSG; a signature
 * that does not verify is -EKEYREJECTED.  Nothing here logs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "b64.h"
#include "c4gh.h"
#include "cipher.h"
#include "jws.h"
#include "market.h"
#include "timeutil.h"
#include "util.h"

#define STR_MAX		4096		/* short strings: names, urls */
#define TEXT_MAX	(256u << 10)	/* long text: descriptions, terms */
#define FILES_MAX	1000000u	/* files in one manifest */
#define DATASETS_MAX	100000u		/* listings in a catalog */
#define IDS_MAX		1000000u	/* ids in an index or revocation list */
#define MARKET_ID_HEX	32		/* market and licence ids: 16 bytes */

void market_fingerprint(const uint8_t pk[32], char ret[MARKET_FP_LEN])
{
	uint8_t d[CIPHER_SHA256_LEN];

	if (cipher_sha256(pk, 32, d) != 0)
		memset(d, 0, sizeof(d));
	cipher_hex(d, sizeof(d), ret);
}

int market_id_is_valid(const char *id)
{
	size_t n;

	if (!id)
		return 0;
	n = strlen(id);
	if (n < 1 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

		if (i == 0 && !alnum)
			return 0;
		if (!alnum && c != '.' && c != '_' && c != '-')
			return 0;
	}
	return 1;
}

/* Lower-case hex of exactly n characters. */
static int is_hex(const char *s, size_t n)
{
	if (strlen(s) != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

static int hex_decode32(const char *s, uint8_t ret[32])
{
	if (!is_hex(s, 64))
		return -EBADMSG;
	for (size_t i = 0; i < 32; i++) {
		unsigned int hi = s[2 * i] <= '9' ? s[2 * i] - '0' :
			s[2 * i] - 'a' + 10;
		unsigned int lo = s[2 * i + 1] <= '9' ? s[2 * i + 1] - '0' :
			s[2 * i + 1] - 'a' + 10;

		ret[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/* ---- strict member access ---- */

/*
 * Refuse members outside the allowed list.  allowed is NULL-terminated;
 * "type" and "format" were checked by jws_verify().
 */
static int only_members(json_t *obj, const char *const *allowed)
{
	const char *key;
	json_t *val;

	json_object_foreach(obj, key, val) {
		int ok = !strcmp(key, "type") || !strcmp(key, "format");

		(void)val;
		for (size_t i = 0; !ok && allowed[i]; i++)
			ok = !strcmp(key, allowed[i]);
		if (!ok)
			return -EBADMSG;
	}
	return 0;
}

/* Exactly the listed members (for nested objects). */
static int exact_members(json_t *obj, const char *const *allowed)
{
	size_t n = 0;

	if (!json_is_object(obj))
		return -EBADMSG;
	for (; allowed[n]; n++)
		if (!json_object_get(obj, allowed[n]))
			return -EBADMSG;
	if (json_object_size(obj) != n)
		return -EBADMSG;
	return 0;
}

/* A required string of at most max bytes, no NUL (jansson refuses it),
 * no control characters other than newline and tab in long text. */
static int get_str(json_t *obj, const char *key, size_t max,
		   const char **ret)
{
	json_t *v = json_object_get(obj, key);
	const char *s;
	size_t n;

	if (!json_is_string(v))
		return -EBADMSG;
	s = json_string_value(v);
	n = json_string_length(v);
	if (n > max || strlen(s) != n)
		return -EBADMSG;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
			return -EBADMSG;
	}
	*ret = s;
	return 0;
}

static int dup_str(json_t *obj, const char *key, size_t max, char **ret)
{
	const char *s;
	int r = get_str(obj, key, max, &s);

	if (r < 0)
		return r;
	*ret = strdup(s);
	return *ret ? 0 : -ENOMEM;
}

static int get_u64(json_t *obj, const char *key, uint64_t max,
		   uint64_t *ret)
{
	json_t *v = json_object_get(obj, key);
	json_int_t i;

	if (!json_is_integer(v))
		return -EBADMSG;
	i = json_integer_value(v);
	if (i < 0 || (uint64_t)i > max)
		return -EBADMSG;
	*ret = (uint64_t)i;
	return 0;
}

static int get_time(json_t *obj, const char *key, int64_t *ret)
{
	const char *s;
	int r = get_str(obj, key, 32, &s);

	if (r < 0)
		return r;
	return timeutil_parse(s, ret) < 0 ? -EBADMSG : 0;
}

static int get_hex32(json_t *obj, const char *key, uint8_t ret[32])
{
	const char *s;
	int r = get_str(obj, key, 64, &s);

	if (r < 0)
		return r;
	return hex_decode32(s, ret);
}

static int get_hexid(json_t *obj, const char *key, char **ret)
{
	const char *s;
	int r = get_str(obj, key, MARKET_ID_HEX, &s);

	if (r < 0)
		return r;
	if (!is_hex(s, MARKET_ID_HEX))
		return -EBADMSG;
	*ret = strdup(s);
	return *ret ? 0 : -ENOMEM;
}

static int get_dsid(json_t *obj, const char *key, char **ret)
{
	const char *s;
	int r = get_str(obj, key, 64, &s);

	if (r < 0)
		return r;
	if (!market_id_is_valid(s))
		return -EBADMSG;
	*ret = strdup(s);
	return *ret ? 0 : -ENOMEM;
}

static int get_key(json_t *obj, const char *key, enum b64_alphabet alpha,
		   uint8_t ret[32])
{
	const char *s;
	int r = get_str(obj, key, 64, &s);

	if (r < 0)
		return r;
	r = b64_decode_exact(s, strlen(s), alpha, ret, 32);
	return r < 0 ? -EBADMSG : 0;
}

/* A URL of an object: a safe relative path or an absolute https URL. */
static int url_is_valid(const char *s)
{
	if (!strncmp(s, "https://", 8)) {
		if (strlen(s) <= 8)
			return 0;
		for (const char *p = s; *p; p++)
			if ((unsigned char)*p <= 0x20 || *p == 0x7f)
				return 0;
		return 1;
	}
	return util_path_is_safe(s) == 1;
}

static int has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

/* A published file's path: safe, and not clashing with the terms file. */
static int file_path_is_valid(const char *s)
{
	return util_path_is_safe(s) == 1 &&
	       !has_suffix(s, MARKET_RESERVED_SUFFIX);
}

/* jws errors to this module's: a wrong type is a malformed document. */
static int verify(const char *jws, size_t len, const uint8_t pk[32],
		  const char *type, json_t **ret)
{
	int r = jws_verify(jws, len, pk, type, ret);

	if (r == -EPROTO)
		return -EBADMSG;
	return r;
}

/* ---- market.jws ---- */

struct market_info *market_info_free(struct market_info *info)
{
	if (!info)
		return NULL;
	free(info->id);
	free(info->name);
	free(info);
	return NULL;
}

static int info_read(json_t *pl, struct market_info *info)
{
	static const char *const members[] = {
		"id", "name", "signing_key", "c4gh_key", "created", NULL
	};
	int r;

	r = only_members(pl, members);
	if (r < 0)
		return r;
	r = get_hexid(pl, "id", &info->id);
	if (r < 0)
		return r;
	r = dup_str(pl, "name", STR_MAX, &info->name);
	if (r < 0)
		return r;
	r = get_key(pl, "signing_key", B64_URL, info->sign_pk);
	if (r < 0)
		return r;
	r = get_key(pl, "c4gh_key", B64_STD, info->c4gh_pk);
	if (r < 0)
		return r;
	return get_time(pl, "created", &info->created);
}

int market_info_parse(const char *jws, size_t len, const uint8_t *pinned,
		      struct market_info **ret_info)
{
	struct market_info *info;
	json_t *pl = NULL;
	uint8_t pk[32];
	int r;

	*ret_info = NULL;
	if (pinned) {
		memcpy(pk, pinned, 32);
	} else {
		/* Self-signed: take the key it carries, then verify. */
		r = jws_peek_payload(jws, len, MARKET_TYPE_INFO, &pl);
		if (r == -EPROTO)
			r = -EBADMSG;
		if (r < 0)
			return r;
		r = get_key(pl, "signing_key", B64_URL, pk);
		json_decref(pl);
		pl = NULL;
		if (r < 0)
			return r;
	}

	r = verify(jws, len, pk, MARKET_TYPE_INFO, &pl);
	if (r < 0)
		return r;
	info = calloc(1, sizeof(*info));
	if (!info) {
		json_decref(pl);
		return -ENOMEM;
	}
	r = info_read(pl, info);
	json_decref(pl);
	if (r == 0 && !cipher_memeq(info->sign_pk, pk, 32))
		r = -EKEYREJECTED;	/* signed by the pin, carries another */
	if (r < 0) {
		market_info_free(info);
		return r;
	}
	*ret_info = info;
	return 0;
}

/* ---- catalog.jws ---- */

static void listing_release(struct market_listing *l)
{
	free(l->id);
	free(l->title);
	free(l->provider);
	free(l->description);
	free(l->price);
	free(l->latest_version);
	free(l->terms);
}

struct market_catalog *market_catalog_free(struct market_catalog *cat)
{
	if (!cat)
		return NULL;
	for (size_t i = 0; i < cat->ndatasets; i++)
		listing_release(&cat->datasets[i]);
	free(cat->datasets);
	free(cat->market_id);
	free(cat);
	return NULL;
}

static int listing_read(json_t *o, struct market_listing *l)
{
	static const char *const members[] = {
		"id", "title", "provider", "description", "price",
		"latest_version", "files", "size", "terms", NULL
	};
	int r;

	r = exact_members(o, members);
	if (r == 0)
		r = get_dsid(o, "id", &l->id);
	if (r == 0)
		r = dup_str(o, "title", STR_MAX, &l->title);
	if (r == 0)
		r = dup_str(o, "provider", STR_MAX, &l->provider);
	if (r == 0)
		r = dup_str(o, "description", TEXT_MAX, &l->description);
	if (r == 0)
		r = dup_str(o, "price", STR_MAX, &l->price);
	if (r == 0)
		r = get_dsid(o, "latest_version", &l->latest_version);
	if (r == 0)
		r = get_u64(o, "files", FILES_MAX, &l->nfiles);
	if (r == 0)
		r = get_u64(o, "size", INT64_MAX, &l->size);
	if (r == 0)
		r = dup_str(o, "terms", STR_MAX, &l->terms);
	return r;
}

static int catalog_read(json_t *pl, struct market_catalog *cat)
{
	static const char *const members[] = {
		"market", "issued", "datasets", NULL
	};
	json_t *arr;
	int r;

	r = only_members(pl, members);
	if (r == 0)
		r = get_hexid(pl, "market", &cat->market_id);
	if (r == 0)
		r = get_time(pl, "issued", &cat->issued);
	if (r < 0)
		return r;
	arr = json_object_get(pl, "datasets");
	if (!json_is_array(arr) || json_array_size(arr) > DATASETS_MAX)
		return -EBADMSG;
	cat->datasets = calloc(json_array_size(arr) + 1,
			       sizeof(*cat->datasets));
	if (!cat->datasets)
		return -ENOMEM;
	for (size_t i = 0; i < json_array_size(arr); i++) {
		r = listing_read(json_array_get(arr, i), &cat->datasets[i]);
		cat->ndatasets = i + 1;
		if (r < 0)
			return r;
		if (i > 0 && strcmp(cat->datasets[i - 1].id,
				    cat->datasets[i].id) >= 0)
			return -EBADMSG;	/* sorted, unique */
	}
	return 0;
}

int market_catalog_parse(const char *jws, size_t len, const uint8_t pk[32],
			 struct market_catalog **ret_catalog)
{
	struct market_catalog *cat;
	json_t *pl;
	int r;

	*ret_catalog = NULL;
	r = verify(jws, len, pk, MARKET_TYPE_CATALOG, &pl);
	if (r < 0)
		return r;
	cat = calloc(1, sizeof(*cat));
	if (!cat) {
		json_decref(pl);
		return -ENOMEM;
	}
	r = catalog_read(pl, cat);
	json_decref(pl);
	if (r < 0) {
		market_catalog_free(cat);
		return r;
	}
	*ret_catalog = cat;
	return 0;
}

/* ---- manifest.jws ---- */

static void file_release(struct market_file *f)
{
	free(f->path);
	free(f->object);
	free(f->sums);
}

struct market_manifest *market_manifest_free(struct market_manifest *m)
{
	if (!m)
		return NULL;
	for (size_t i = 0; i < m->nfiles; i++)
		file_release(&m->files[i]);
	free(m->files);
	free(m->dataset);
	free(m->version);
	free(m->market_id);
	free(m);
	return NULL;
}

static int file_read(json_t *o, struct market_file *f)
{
	static const char *const members[] = {
		"path", "size", "object", "header_len", "data_len",
		"header_sha256", "segments", "sums", "sums_sha256",
		"data_sha256", NULL
	};
	uint64_t nseg;
	int r;

	r = exact_members(o, members);
	if (r == 0)
		r = dup_str(o, "path", STR_MAX, &f->path);
	if (r == 0 && !file_path_is_valid(f->path))
		r = -EBADMSG;
	if (r == 0)
		r = get_u64(o, "size", INT64_MAX / 2, &f->size);
	if (r == 0)
		r = dup_str(o, "object", STR_MAX, &f->object);
	if (r == 0 && !url_is_valid(f->object))
		r = -EBADMSG;
	if (r == 0)
		r = get_u64(o, "header_len", C4GH_HEADER_MAX, &f->header_len);
	if (r == 0 && f->header_len < C4GH_PREAMBLE_LEN)
		r = -EBADMSG;
	if (r == 0)
		r = get_u64(o, "data_len", INT64_MAX, &f->data_len);
	if (r == 0)
		r = get_hex32(o, "header_sha256", f->header_sha256);
	if (r == 0)
		r = get_u64(o, "segments", INT64_MAX, &f->nsegments);
	if (r == 0)
		r = dup_str(o, "sums", STR_MAX, &f->sums);
	if (r == 0 && !url_is_valid(f->sums))
		r = -EBADMSG;
	if (r == 0)
		r = get_hex32(o, "sums_sha256", f->sums_sha256);
	if (r == 0)
		r = get_hex32(o, "data_sha256", f->data_sha256);
	if (r < 0)
		return r;

	/* Sizes must agree with each other as Crypt4GH lays them out. */
	nseg = (f->size + C4GH_SEGMENT_SIZE - 1) / C4GH_SEGMENT_SIZE;
	if (f->data_len != c4gh_cipher_size(f->size) ||
	    f->nsegments != nseg)
		return -EBADMSG;
	return 0;
}

static int manifest_read(json_t *pl, struct market_manifest *m)
{
	static const char *const members[] = {
		"market", "dataset", "version", "created", "files", NULL
	};
	json_t *arr;
	int r;

	r = only_members(pl, members);
	if (r == 0)
		r = get_hexid(pl, "market", &m->market_id);
	if (r == 0)
		r = get_dsid(pl, "dataset", &m->dataset);
	if (r == 0)
		r = get_dsid(pl, "version", &m->version);
	if (r == 0)
		r = get_time(pl, "created", &m->created);
	if (r < 0)
		return r;
	arr = json_object_get(pl, "files");
	if (!json_is_array(arr) || json_array_size(arr) > FILES_MAX)
		return -EBADMSG;
	m->files = calloc(json_array_size(arr) + 1, sizeof(*m->files));
	if (!m->files)
		return -ENOMEM;
	for (size_t i = 0; i < json_array_size(arr); i++) {
		r = file_read(json_array_get(arr, i), &m->files[i]);
		m->nfiles = i + 1;
		if (r < 0)
			return r;
		if (i > 0 && strcmp(m->files[i - 1].path,
				    m->files[i].path) >= 0)
			return -EBADMSG;	/* sorted, unique */
	}
	return 0;
}

int market_manifest_parse(const char *jws, size_t len, const uint8_t pk[32],
			  struct market_manifest **ret_manifest)
{
	struct market_manifest *m;
	json_t *pl;
	int r;

	*ret_manifest = NULL;
	r = verify(jws, len, pk, MARKET_TYPE_MANIFEST, &pl);
	if (r < 0)
		return r;
	m = calloc(1, sizeof(*m));
	if (!m) {
		json_decref(pl);
		return -ENOMEM;
	}
	r = manifest_read(pl, m);
	json_decref(pl);
	if (r == 0)
		r = cipher_sha256(jws, len, m->digest);
	if (r < 0) {
		market_manifest_free(m);
		return r;
	}
	*ret_manifest = m;
	return 0;
}

const struct market_file *
market_manifest_find(const struct market_manifest *m, const char *path)
{
	size_t lo = 0, hi;

	if (!m || !path)
		return NULL;
	hi = m->nfiles;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(path, m->files[mid].path);

		if (c == 0)
			return &m->files[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* ---- licences ---- */

struct market_licence *market_licence_free(struct market_licence *l)
{
	if (!l)
		return NULL;
	for (size_t i = 0; i < l->nheaders; i++) {
		free(l->headers[i].path);
		free(l->headers[i].header);
	}
	free(l->headers);
	free(l->id);
	free(l->market_id);
	free(l->dataset);
	free(l->version);
	free(l->policy);
	free(l->terms);
	free(l->facts);
	free(l);
	return NULL;
}

static int b64_member(json_t *o, const char *key, size_t max,
		      uint8_t **ret, size_t *ret_len)
{
	const char *s;
	int r = get_str(o, key, (max + 2) / 3 * 4, &s);

	if (r < 0)
		return r;
	r = b64_decode(s, strlen(s), B64_STD, ret, ret_len);
	if (r < 0)
		return r == -ENOMEM ? r : -EBADMSG;
	if (*ret_len == 0 || *ret_len > max) {
		free(*ret);
		*ret = NULL;
		return -EBADMSG;
	}
	return 0;
}

static int licence_headers_read(json_t *arr, struct market_licence *l)
{
	static const char *const members[] = { "path", "header", NULL };
	int r;

	if (!json_is_array(arr) || json_array_size(arr) > FILES_MAX)
		return -EBADMSG;
	l->headers = calloc(json_array_size(arr) + 1, sizeof(*l->headers));
	if (!l->headers)
		return -ENOMEM;
	for (size_t i = 0; i < json_array_size(arr); i++) {
		json_t *o = json_array_get(arr, i);
		struct market_licence_header *h = &l->headers[i];

		l->nheaders = i + 1;
		r = exact_members(o, members);
		if (r == 0)
			r = dup_str(o, "path", STR_MAX, &h->path);
		if (r == 0 && !file_path_is_valid(h->path))
			r = -EBADMSG;
		if (r == 0)
			r = b64_member(o, "header", C4GH_HEADER_MAX,
				       &h->header, &h->header_len);
		if (r < 0)
			return r;
		if (i > 0 && strcmp(l->headers[i - 1].path, h->path) >= 0)
			return -EBADMSG;
	}
	return 0;
}

static int licence_read(json_t *pl, struct market_licence *l)
{
	static const char *const members[] = {
		"id", "market", "licensee", "dataset", "version",
		"manifest_sha256", "issued", "not_before", "expires",
		"serial", "policy", "terms", "on_end", "offline_grace",
		"seats", "headers", "facts", NULL
	};
	const char *on_end;
	uint64_t v;
	int r;

	r = only_members(pl, members);
	if (r == 0)
		r = get_hexid(pl, "id", &l->id);
	if (r == 0)
		r = get_hexid(pl, "market", &l->market_id);
	if (r == 0)
		r = get_key(pl, "licensee", B64_STD, l->licensee);
	if (r == 0)
		r = get_dsid(pl, "dataset", &l->dataset);
	if (r == 0)
		r = get_dsid(pl, "version", &l->version);
	if (r == 0)
		r = get_hex32(pl, "manifest_sha256", l->manifest_sha256);
	if (r == 0)
		r = get_time(pl, "issued", &l->issued);
	if (r == 0)
		r = get_time(pl, "not_before", &l->not_before);
	if (r == 0)
		r = get_time(pl, "expires", &l->expires);
	if (r == 0 && l->expires <= l->not_before)
		r = -EBADMSG;
	if (r == 0)
		r = get_u64(pl, "serial", INT64_MAX, &l->serial);
	if (r == 0 && l->serial == 0)
		r = -EBADMSG;
	if (r == 0)
		r = dup_str(pl, "policy", STR_MAX, &l->policy);
	if (r == 0)
		r = dup_str(pl, "terms", TEXT_MAX, &l->terms);
	if (r == 0)
		r = get_str(pl, "on_end", 16, &on_end);
	if (r < 0)
		return r;
	if (!strcmp(on_end, "finish"))
		l->on_end = MARKET_END_FINISH;
	else if (!strcmp(on_end, "cut"))
		l->on_end = MARKET_END_CUT;
	else
		return -EBADMSG;
	r = get_u64(pl, "offline_grace", 10ull * 366 * 86400, &v);
	if (r < 0)
		return r;
	l->offline_grace = (int64_t)v;
	r = get_u64(pl, "seats", UINT32_MAX, &v);
	if (r < 0)
		return r;
	l->seats = (uint32_t)v;
	r = licence_headers_read(json_object_get(pl, "headers"), l);
	if (r < 0)
		return r;
	return b64_member(pl, "facts", 64u << 20, &l->facts, &l->facts_len);
}

int market_licence_parse(const char *jws, size_t len, const uint8_t pk[32],
			 struct market_licence **ret_licence)
{
	struct market_licence *l;
	json_t *pl;
	int r;

	*ret_licence = NULL;
	r = verify(jws, len, pk, MARKET_TYPE_LICENCE, &pl);
	if (r < 0)
		return r;
	l = calloc(1, sizeof(*l));
	if (!l) {
		json_decref(pl);
		return -ENOMEM;
	}
	r = licence_read(pl, l);
	json_decref(pl);
	if (r < 0) {
		market_licence_free(l);
		return r;
	}
	*ret_licence = l;
	return 0;
}

const struct market_licence_header *
market_licence_find(const struct market_licence *l, const char *path)
{
	size_t lo = 0, hi;

	if (!l || !path)
		return NULL;
	hi = l->nheaders;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(path, l->headers[mid].path);

		if (c == 0)
			return &l->headers[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* ---- id lists: licence index and revocations ---- */

static void ids_free(char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

/* Read an array of licence ids; sorted says they must be ascending. */
static int ids_read(json_t *arr, int sorted, char ***ret_ids,
		    size_t *ret_n)
{
	char **ids;
	size_t n;

	if (!json_is_array(arr) || json_array_size(arr) > IDS_MAX)
		return -EBADMSG;
	n = json_array_size(arr);
	ids = calloc(n + 1, sizeof(*ids));
	if (!ids)
		return -ENOMEM;
	*ret_ids = ids;
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_array_get(arr, i);

		if (!json_is_string(v) ||
		    !is_hex(json_string_value(v), MARKET_ID_HEX))
			return -EBADMSG;
		ids[i] = strdup(json_string_value(v));
		*ret_n = i + 1;
		if (!ids[i])
			return -ENOMEM;
		for (size_t j = 0; j < i; j++) {
			int c = strcmp(ids[j], ids[i]);

			if (c == 0 || (sorted && c > 0))
				return -EBADMSG;
		}
	}
	return 0;
}

struct market_index *market_index_free(struct market_index *idx)
{
	if (!idx)
		return NULL;
	ids_free(idx->ids, idx->nids);
	if (idx->datasets)
		for (size_t i = 0; i < idx->nids; i++)
			free(idx->datasets[i]);
	free(idx->datasets);
	free(idx);
	return NULL;
}

int market_index_parse(const char *jws, size_t len, const uint8_t pk[32],
		       struct market_index **ret_index)
{
	static const char *const members[] = {
		"licensee", "licences", "datasets", NULL
	};
	struct market_index *idx;
	json_t *pl, *ds;
	int r;

	*ret_index = NULL;
	r = verify(jws, len, pk, MARKET_TYPE_INDEX, &pl);
	if (r < 0)
		return r;
	idx = calloc(1, sizeof(*idx));
	if (!idx) {
		json_decref(pl);
		return -ENOMEM;
	}
	r = only_members(pl, members);
	if (r == 0)
		r = get_key(pl, "licensee", B64_STD, idx->licensee);
	if (r == 0)
		r = ids_read(json_object_get(pl, "licences"), 0, &idx->ids,
			     &idx->nids);
	/* The dataset of each licence, so that one which fails to verify
	 * can still be named (and refused) under its dataset's folder. */
	ds = json_object_get(pl, "datasets");
	if (r == 0 && (!json_is_array(ds) ||
		       json_array_size(ds) != idx->nids))
		r = -EBADMSG;
	if (r == 0) {
		idx->datasets = calloc(idx->nids + 1, sizeof(char *));
		if (!idx->datasets)
			r = -ENOMEM;
	}
	for (size_t i = 0; r == 0 && i < idx->nids; i++) {
		const char *d = json_string_value(json_array_get(ds, i));

		if (!d || !market_id_is_valid(d))
			r = -EBADMSG;
		else if (!(idx->datasets[i] = strdup(d)))
			r = -ENOMEM;
	}
	json_decref(pl);
	if (r < 0) {
		market_index_free(idx);
		return r;
	}
	*ret_index = idx;
	return 0;
}

struct market_revocations *
market_revocations_free(struct market_revocations *rev)
{
	if (!rev)
		return NULL;
	ids_free(rev->ids, rev->nids);
	free(rev->market_id);
	free(rev);
	return NULL;
}

int market_revocations_parse(const char *jws, size_t len,
			     const uint8_t pk[32],
			     struct market_revocations **ret_rev)
{
	static const char *const members[] = {
		"market", "version", "issued", "next_update", "revoked", NULL
	};
	struct market_revocations *rev;
	json_t *pl;
	int r;

	*ret_rev = NULL;
	r = verify(jws, len, pk, MARKET_TYPE_REVOCATIONS, &pl);
	if (r < 0)
		return r;
	rev = calloc(1, sizeof(*rev));
	if (!rev) {
		json_decref(pl);
		return -ENOMEM;
	}
	r = only_members(pl, members);
	if (r == 0)
		r = get_hexid(pl, "market", &rev->market_id);
	if (r == 0)
		r = get_u64(pl, "version", INT64_MAX, &rev->version);
	if (r == 0 && rev->version == 0)
		r = -EBADMSG;
	if (r == 0)
		r = get_time(pl, "issued", &rev->issued);
	if (r == 0)
		r = get_time(pl, "next_update", &rev->next_update);
	if (r == 0 && rev->next_update <= rev->issued)
		r = -EBADMSG;
	if (r == 0)
		r = ids_read(json_object_get(pl, "revoked"), 1, &rev->ids,
			     &rev->nids);
	json_decref(pl);
	if (r < 0) {
		market_revocations_free(rev);
		return r;
	}
	*ret_rev = rev;
	return 0;
}

int market_revocations_has(const struct market_revocations *rev,
			   const char *licence_id)
{
	size_t lo = 0, hi;

	if (!rev || !licence_id)
		return 0;
	hi = rev->nids;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(licence_id, rev->ids[mid]);

		if (c == 0)
			return 1;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return 0;
}

/* ---- paths ---- */

static int path_printf(char **ret, const char *fmt, const char *a,
		       const char *b)
{
	char *s;

	*ret = NULL;
	if (asprintf(&s, fmt, a, b) < 0)
		return -ENOMEM;
	*ret = s;
	return 0;
}

int market_path_manifest(const char *dataset, const char *version,
			 char **ret_path)
{
	*ret_path = NULL;
	if (!market_id_is_valid(dataset) || !market_id_is_valid(version))
		return -EINVAL;
	return path_printf(ret_path, "datasets/%s/%s/manifest.jws", dataset,
			   version);
}

int market_path_index(const uint8_t licensee[32], char **ret_path)
{
	char fp[MARKET_FP_LEN];

	market_fingerprint(licensee, fp);
	return path_printf(ret_path, "licences/%s/%s", fp, "index.jws");
}

int market_path_licence(const uint8_t licensee[32], const char *licence_id,
			char **ret_path)
{
	char fp[MARKET_FP_LEN];

	*ret_path = NULL;
	if (!licence_id || !is_hex(licence_id, MARKET_ID_HEX))
		return -EINVAL;
	market_fingerprint(licensee, fp);
	return path_printf(ret_path, "licences/%s/%s.jws", fp, licence_id);
}

const char *market_strerror(int err)
{
	switch (err) {
	case 0:			return "valid";
	case -EBADMSG:		return "malformed or inconsistent market document";
	case -EKEYREJECTED:	return "signature does not verify with the market key";
	case -EINVAL:		return "invalid argument";
	case -ENOMEM:		return "out of memory";
	case -EFBIG:		return "market document too large";
	default:		return "cannot read market document";
	}
}
