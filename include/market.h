/*
 * market.h - the market's signed documents, parsed and verified.
 *
 * A market is a static tree of files (docs/market-format.md):
 *
 *   market.jws                          the market description (self-signed)
 *   catalog.jws                         the public listing of datasets
 *   revocations.jws                     the revocation list
 *   datasets/<id>/<version>/manifest.jws
 *   datasets/<id>/<version>/objects/... ciphertext objects and digests
 *   licences/<licensee-fingerprint>/index.jws
 *   licences/<licensee-fingerprint>/<licence-id>.jws
 *
 * Every parse function verifies the JWS signature with the market's
 * Ed25519 key over the received bytes first, then parses strictly
 * (duplicate keys, unknown types, wrong formats, non-UTC times are all
 * -EBADMSG).  Parsed objects are immutable; free with the matching
 * _free (NULL-safe, returns NULL).  Nothing here logs.
 */
#ifndef MARKETFS_MARKET_H
#define MARKETFS_MARKET_H

#include <stddef.h>
#include <stdint.h>

#define MARKET_FORMAT		1
#define MARKET_TYPE_INFO	"marketfs.market"
#define MARKET_TYPE_CATALOG	"marketfs.catalog"
#define MARKET_TYPE_MANIFEST	"marketfs.manifest"
#define MARKET_TYPE_LICENCE	"marketfs.licence"
#define MARKET_TYPE_INDEX	"marketfs.licence-index"
#define MARKET_TYPE_REVOCATIONS	"marketfs.revocations"

/* Name of the terms file shown in each dataset folder.  Published file
 * names may not end in MARKET_RESERVED_SUFFIX, so it cannot clash. */
#define MARKET_TERMS_FILE	"TERMS.marketfs"
#define MARKET_RESERVED_SUFFIX	".marketfs"

/* Hex SHA-256 of a raw 32-byte public key: 64 characters + NUL. */
#define MARKET_FP_LEN		65

void market_fingerprint(const uint8_t pk[32], char ret[MARKET_FP_LEN]);

/* Dataset ids (and version ids): [a-z0-9][a-z0-9._-]{0,63}.
 * 1 valid, 0 not. */
int market_id_is_valid(const char *id);

struct market_info {
	char *id;			/* market id */
	char *name;			/* human name */
	uint8_t sign_pk[32];		/* Ed25519 signing key */
	uint8_t c4gh_pk[32];		/* X25519 key the market seals to */
	int64_t created;
};

/*
 * Parse market.jws.  When pinned is not NULL the document must be signed
 * by that key (and carry it); otherwise it is verified with the key it
 * carries (trust on first use is the caller's business).
 */
int market_info_parse(const char *jws, size_t len, const uint8_t *pinned,
		      struct market_info **ret_info);
struct market_info *market_info_free(struct market_info *info);

struct market_listing {
	char *id;
	char *title;
	char *provider;
	char *description;
	char *price;			/* free text, e.g. "EUR 1200" */
	char *latest_version;
	uint64_t nfiles;
	uint64_t size;			/* plaintext bytes, latest version */
	char *terms;			/* default policy name */
};

struct market_catalog {
	int64_t issued;
	struct market_listing *datasets;	/* sorted by id, unique */
	size_t ndatasets;
	char *market_id;		/* added: the market it lists */
};

int market_catalog_parse(const char *jws, size_t len, const uint8_t pk[32],
			 struct market_catalog **ret_catalog);
struct market_catalog *market_catalog_free(struct market_catalog *cat);

struct market_file {
	char *path;			/* safe relative path in the dataset */
	uint64_t size;			/* plaintext bytes */
	char *object;			/* URL, relative to the market base or
					 * absolute https */
	uint64_t header_len;		/* market-sealed header at the start */
	uint64_t data_len;		/* ciphertext data bytes after it */
	uint8_t header_sha256[32];	/* of object bytes [0, header_len) */
	uint64_t nsegments;
	char *sums;			/* URL of nsegments SHA-256 digests,
					 * one per ciphertext segment */
	uint8_t sums_sha256[32];	/* of the whole sums object */
	uint8_t data_sha256[32];	/* of the whole data section */
};

struct market_manifest {
	char *dataset;
	char *version;
	int64_t created;
	struct market_file *files;	/* sorted by path */
	size_t nfiles;
	uint8_t digest[32];		/* SHA-256 of the JWS bytes */
	char *market_id;		/* added: the market it belongs to */
};

int market_manifest_parse(const char *jws, size_t len, const uint8_t pk[32],
			  struct market_manifest **ret_manifest);
struct market_manifest *market_manifest_free(struct market_manifest *m);
/* Binary search by path; NULL when absent. */
const struct market_file *
market_manifest_find(const struct market_manifest *m, const char *path);

enum market_on_end {
	MARKET_END_FINISH,		/* open handles read on */
	MARKET_END_CUT,			/* open handles fail */
};

struct market_licence_header {
	char *path;			/* file path in the manifest */
	uint8_t *header;		/* Crypt4GH header for the licensee */
	size_t header_len;
};

struct market_licence {
	char *id;
	char *market_id;
	uint8_t licensee[32];		/* licensee's Crypt4GH public key */
	char *dataset;
	char *version;
	uint8_t manifest_sha256[32];	/* the manifest it is for */
	int64_t issued;
	int64_t not_before;
	int64_t expires;
	uint64_t serial;		/* grows with every re-issue */
	char *policy;			/* template name */
	char *terms;			/* the terms, plain text */
	enum market_on_end on_end;
	int64_t offline_grace;		/* seconds */
	uint32_t seats;			/* 0 = no limit */
	struct market_licence_header *headers;	/* sorted by path */
	size_t nheaders;
	uint8_t *facts;			/* Crypt4GH-sealed JSON for the
					 * licensee: {"files":{path:
					 * {"sha256":hex}}}, or NULL */
	size_t facts_len;
};

int market_licence_parse(const char *jws, size_t len, const uint8_t pk[32],
			 struct market_licence **ret_licence);
struct market_licence *market_licence_free(struct market_licence *l);
const struct market_licence_header *
market_licence_find(const struct market_licence *l, const char *path);

struct market_index {
	uint8_t licensee[32];
	char **ids;			/* licence ids */
	char **datasets;		/* the dataset of each, same order */
	size_t nids;
};

int market_index_parse(const char *jws, size_t len, const uint8_t pk[32],
		       struct market_index **ret_index);
struct market_index *market_index_free(struct market_index *idx);

struct market_revocations {
	uint64_t version;		/* grows with every re-signing */
	int64_t issued;			/* signed server time */
	int64_t next_update;
	char **ids;			/* revoked licence ids, sorted */
	size_t nids;
	char *market_id;		/* added: the market it belongs to */
};

int market_revocations_parse(const char *jws, size_t len,
			     const uint8_t pk[32],
			     struct market_revocations **ret_rev);
struct market_revocations *
market_revocations_free(struct market_revocations *rev);
int market_revocations_has(const struct market_revocations *rev,
			   const char *licence_id);

/* Relative paths of documents inside a market. */
int market_path_manifest(const char *dataset, const char *version,
			 char **ret_path);
int market_path_index(const uint8_t licensee[32], char **ret_path);
int market_path_licence(const uint8_t licensee[32], const char *licence_id,
			char **ret_path);

/* A short message for the errors of this module. */
const char *market_strerror(int err);

#endif
