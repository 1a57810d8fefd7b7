/*
 * tree.h - the namespace a mount shows, built once at mount time.
 *
 * Two kinds of SOURCE:
 *
 * - a market (a directory or https:// base holding market.jws): the
 *   tree is  datasets/<id>/<files of the licensed version>  plus a terms
 *   file in each dataset folder, and  catalog/<id>/README  for every
 *   dataset the market lists.  Licences are found at the path derived
 *   from our public key, verified, and bound to their manifests here;
 *   whether an open is allowed *now* is decided at each open (fsops.c).
 * - a plain folder of Crypt4GH files: each file readable with our key
 *   appears with ".c4gh" dropped, its exact size taken from its header.
 *
 * The tree is immutable once built, so lookups need no lock.  Nothing
 * here logs: problems met while loading go to the report callback, one
 * line each, and the caller logs them.
 */
#ifndef MARKETFS_TREE_H
#define MARKETFS_TREE_H

#include <stddef.h>
#include <stdint.h>

#include "market.h"

struct http;

enum tree_kind {
	TREE_DIR,
	TREE_DATA,		/* encrypted file: decided, logged, decrypted */
	TREE_TEXT,		/* generated text: terms, catalog README */
};

/* A dataset folder under datasets/: one licence and its manifest. */
struct tree_dataset {
	char *id;
	struct market_licence *licence;		/* owned */
	struct market_manifest *manifest;	/* owned; NULL if not loaded */
	char *problem;		/* why the manifest is missing, or NULL */
	int replayed;		/* licence older than one already seen */
	void *facts;		/* json_t {"path": {"sha256": hex}} or NULL */
};

struct tree_node {
	char *name;
	enum tree_kind kind;
	uint64_t size;			/* exact plaintext size */
	int64_t mtime;
	struct tree_node **children;	/* TREE_DIR: sorted by name */
	size_t nchildren;
	struct tree_dataset *dataset;	/* market files and terms, or NULL */
	const struct market_file *mfile; /* TREE_DATA in a market */
	char *url;			/* TREE_DATA in a plain folder */
	char *relpath;			/* path inside its dataset or folder */
	char *text;			/* TREE_TEXT contents */
	void *open_state;		/* fsops' shared state, under its lock */
	unsigned int open_count;	/* likewise */
};

typedef void (*tree_report_fn)(void *ctx, const char *line);

struct tree_config {
	const char *source;		/* directory, file:// or https:// */
	struct http *http;
	const uint8_t *sk;		/* our Crypt4GH secret key (32) */
	const uint8_t *pk;		/* and its public key (32) */
	const char *market_key;		/* pinned fingerprint (hex) or NULL */
	const char *state_dir;		/* where first-use trust is kept */
	struct trust *trust;		/* the market's remembered state, or
					 * NULL: tree_load opens it */
	tree_report_fn report;
	void *report_ctx;
};

/* A licence the index lists that could not be used, and why. */
struct tree_rejected {
	char *dataset;
	char *licence;
	char *reason;			/* "licence rejected: ..." */
};

struct tree {
	struct tree_node *root;
	int is_market;
	char *base;			/* base URL, ending in '/' */
	struct market_info *info;	/* market only */
	struct market_catalog *catalog;	/* may be NULL */
	struct market_revocations *revocations;	/* may be NULL */
	struct tree_dataset **datasets;
	size_t ndatasets;
	char fingerprint[MARKET_FP_LEN];	/* market key, market only */
	int key_first_use;		/* the key was trusted just now */
	struct trust *trust;		/* market only; see owns_trust */
	int owns_trust;			/* opened by tree_load: the caller
					 * takes it over (and clears this) */
	int revocations_offline;	/* the list is the saved copy */
	struct tree_rejected *rejected;	/* licences that did not verify */
	size_t nrejected;
};

/*
 * The rejected licence of the dataset a path lies in ("/datasets/D/..."),
 * when D has no licence that verified; NULL otherwise.  Opens there are
 * refused with EACCES, not answered ENOENT.
 */
const struct tree_rejected *tree_rejected_for(const struct tree *tree,
					      const char *path);

/* Plaintext SHA-256 (hex) of a market file, from the licence's sealed
 * facts; NULL when not known. */
const char *tree_node_sha256(const struct tree_node *node);

#define TREE_MSG_LEN	512

/*
 * Load SOURCE and build its tree.  Returns 0, or a negative errno with a
 * one-line reason in msg: -ENOENT (no such source), -EKEYREJECTED (the
 * market key differs from the pinned or recorded one), -EBADMSG (market
 * description invalid), -EIO (fetch failed).
 */
int tree_load(const struct tree_config *cfg, struct tree **ret_tree,
	      char msg[TREE_MSG_LEN]);
struct tree *tree_free(struct tree *tree);	/* NULL-safe */

/* Find the node for an absolute path ("/" is the root).  -ENOENT. */
int tree_lookup(const struct tree *tree, const char *path,
		struct tree_node **ret_node);

struct c4gh_header;

/*
 * Fetch and decrypt the header at the start of the Crypt4GH file at url
 * with sk, fetching no more than its own lengths ask for (bounded by
 * C4GH_HEADER_MAX).  *ret_data_len is the length of the data section.
 * -EIO when the file cannot be fetched; c4gh.h's errnos otherwise.
 */
int tree_plain_header(struct http *http, const char *url, const uint8_t *sk,
		      struct c4gh_header *ret_hdr, uint64_t *ret_data_len);

/* The dataset id and path-in-dataset a node stands for (may be NULL). */
const char *tree_node_dataset_id(const struct tree_node *node);

#endif
