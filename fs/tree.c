/*
 * tree.c - build the namespace of a mount from a market or a folder.
 *
 * Market: fetch and verify the market description (pinned key, or the
 * key recorded at first use), the catalog and the revocation list, then
 * the licence index at the path our public key derives, each licence
 * (signature, licensee, market), and the manifest each licence names
 * (its digest must be the one the licence binds).  A dataset keeps its
 * folder whatever its licence's window says: the decision is taken at
 * each open.  A dataset whose manifest cannot be loaded keeps its
 * folder too, with its terms file only, and the reason is reported.
 *
 * Plain folder: every "*.c4gh" below the folder whose header opens with
 * our key shows up without the suffix, with the exact size its header
 * and length give.  Files that do not open are reported and left out.
 */
#include <dirent.h>
#include <jansson.h>
#include <sys/mman.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "c4gh.h"
#include "cipher.h"
#include "http.h"
#include "market.h"
#include "timeutil.h"
#include "tree.h"
#include "trust.h"
#include "util.h"

#define DOC_MAX		(64u << 20)	/* largest signed document fetched */
#define PLAIN_MAX_FILES	100000		/* files taken from a plain folder */
#define PLAIN_MAX_DEPTH	32

static void report(const struct tree_config *cfg, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void report(const struct tree_config *cfg, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (!cfg->report)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	cfg->report(cfg->report_ctx, line);
}

/* ---- nodes ---- */

static struct tree_node *node_new(const char *name, enum tree_kind kind)
{
	struct tree_node *n;

	n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->name = strdup(name);
	if (!n->name) {
		free(n);
		return NULL;
	}
	n->kind = kind;
	return n;
}

static void node_free(struct tree_node *n)
{
	size_t i;

	if (!n)
		return;
	for (i = 0; i < n->nchildren; i++)
		node_free(n->children[i]);
	free(n->children);
	free(n->name);
	free(n->url);
	free(n->relpath);
	free(n->text);
	free(n);
}

static struct tree_node *node_child(const struct tree_node *dir,
				    const char *name, size_t len)
{
	size_t lo = 0, hi = dir->nchildren;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *cn = dir->children[mid]->name;
		int c = strncmp(cn, name, len);

		if (c == 0 && cn[len] != '\0')
			c = 1;
		if (c == 0)
			return dir->children[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Insert child into dir, keeping children sorted.  -EEXIST on a clash. */
static int node_add(struct tree_node *dir, struct tree_node *child)
{
	struct tree_node **nc;
	size_t pos, hi, cap;
	int c;

	/*
	 * Binary search for the place; children usually arrive in order,
	 * so that is the end and nothing moves.  The array grows by powers
	 * of two (nchildren alone says the capacity), so a folder of n
	 * files costs O(n log n) at mount, not O(n^2).
	 */
	pos = 0;
	hi = dir->nchildren;
	while (pos < hi) {
		size_t mid = pos + (hi - pos) / 2;

		c = strcmp(dir->children[mid]->name, child->name);
		if (c == 0)
			return -EEXIST;
		if (c < 0)
			pos = mid + 1;
		else
			hi = mid;
	}

	nc = dir->children;
	if ((dir->nchildren & (dir->nchildren - 1)) == 0) {
		cap = dir->nchildren ? dir->nchildren * 2 : 1;
		nc = realloc(dir->children, cap * sizeof(*nc));
		if (!nc)
			return -ENOMEM;
	}
	dir->children = nc;
	memmove(&nc[pos + 1], &nc[pos], (dir->nchildren - pos) * sizeof(*nc));
	nc[pos] = child;
	dir->nchildren++;
	return 0;
}

/* Find or make the directory for the first len bytes of rel under dir. */
static int node_mkdirs(struct tree_node *dir, const char *rel,
		       struct tree_node **ret_dir)
{
	const char *p = rel;

	while (*p) {
		const char *slash = strchr(p, '/');
		size_t len;
		struct tree_node *c;
		char *name;
		int r;

		if (!slash)
			break;
		len = (size_t)(slash - p);
		c = node_child(dir, p, len);
		if (c && c->kind != TREE_DIR)
			return -EEXIST;
		if (!c) {
			name = strndup(p, len);
			if (!name)
				return -ENOMEM;
			c = node_new(name, TREE_DIR);
			free(name);
			if (!c)
				return -ENOMEM;
			c->mtime = dir->mtime;
			r = node_add(dir, c);
			if (r < 0) {
				node_free(c);
				return r;
			}
		}
		dir = c;
		p = slash + 1;
	}
	*ret_dir = dir;
	return 0;
}

static const char *path_basename(const char *rel)
{
	const char *s = strrchr(rel, '/');

	return s ? s + 1 : rel;
}

int tree_lookup(const struct tree *tree, const char *path,
		struct tree_node **ret_node)
{
	struct tree_node *n = tree->root;
	const char *p = path;

	while (*p == '/')
		p++;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);

		if (n->kind != TREE_DIR)
			return -ENOTDIR;
		n = node_child(n, p, len);
		if (!n)
			return -ENOENT;
		p += len;
		while (*p == '/')
			p++;
	}
	*ret_node = n;
	return 0;
}

const char *tree_node_dataset_id(const struct tree_node *node)
{
	return node->dataset ? node->dataset->id : NULL;
}

/* ---- fetching documents ---- */

/*
 * Where the last good copy of a market document is kept for starting
 * offline: STATE_DIR/offline/<first 16 hex of SHA-256(base)>/<rel, with
 * '/' as '%'>.  Every document is signed and verified again when used;
 * trusted time and revocation freshness bound how long they serve.
 */
static int offline_path(const struct tree_config *cfg, const char *base,
			const char *rel, char **ret_dir, char **ret_path)
{
	uint8_t digest[32];
	char hex[65], *flat, *p;

	if (!cfg->state_dir || cipher_sha256(base, strlen(base), digest) < 0)
		return -ENOENT;
	cipher_hex(digest, 8, hex);
	flat = strdup(rel);
	if (!flat)
		return -ENOMEM;
	for (p = flat; *p; p++)
		if (*p == '/')
			*p = '%';
	if (asprintf(ret_dir, "%s/offline/%s", cfg->state_dir, hex) < 0) {
		free(flat);
		return -ENOMEM;
	}
	if (asprintf(ret_path, "%s/%s", *ret_dir, flat) < 0) {
		free(*ret_dir);
		free(flat);
		return -ENOMEM;
	}
	free(flat);
	return 0;
}

static void offline_save(const struct tree_config *cfg, const char *base,
			 const char *rel, const uint8_t *buf, size_t len)
{
	char *dir = NULL, *path = NULL;

	if (strncmp(base, "https://", 8) != 0)
		return;		/* a local market is its own copy */
	if (offline_path(cfg, base, rel, &dir, &path) < 0)
		return;
	if (util_mkdir_p(dir, 0700) == 0)
		(void)util_write_file_atomic(path, buf, len, 0600);
	free(dir);
	free(path);
}

static int offline_load(const struct tree_config *cfg, const char *base,
			const char *rel, char **ret_buf, size_t *ret_len)
{
	char *dir = NULL, *path = NULL;
	int r;

	if (strncmp(base, "https://", 8) != 0)
		return -ENOENT;
	r = offline_path(cfg, base, rel, &dir, &path);
	if (r < 0)
		return r;
	r = util_read_file(path, DOC_MAX, ret_buf, ret_len);
	free(dir);
	free(path);
	return r;
}

static int fetch_doc(const struct tree_config *cfg, const char *base,
		     const char *rel, char **ret_buf, size_t *ret_len)
{
	uint8_t *buf = NULL;
	char *url = NULL, why[256];
	size_t len = 0;
	int r;

	r = http_url_join(base, rel, &url);
	if (r < 0)
		return r;

	r = http_get(cfg->http, url, DOC_MAX, &buf, &len);
	free(url);
	if (r == 0) {
		offline_save(cfg, base, rel, buf, len);
		*ret_buf = (char *)buf;
		*ret_len = len;
		return 0;
	}

	/*
	 * Unreachable, not absent: the last copy this host saw, if any.  A
	 * server that fails TLS verification is not "offline": no fallback.
	 */
	if (r != -ENOENT && r != -EPERM && r != -EKEYREJECTED) {
		snprintf(why, sizeof(why), "%s", http_last_error());
		if (offline_load(cfg, base, rel, ret_buf, ret_len) == 0) {
			report(cfg, "market unreachable (%s): using the saved "
			       "copy of '%s'", why, rel);
			return 0;
		}
	}
	return r;
}

/* ---- first-use trust of the market key ---- */

static int trust_file(const struct tree_config *cfg, char **ret_path)
{
	char *path;

	if (!cfg->state_dir)
		return -ENOENT;
	if (asprintf(&path, "%s/known_markets", cfg->state_dir) < 0)
		return -ENOMEM;
	*ret_path = path;
	return 0;
}

/*
 * Look base up in the known_markets file ("<fingerprint> <base>" lines).
 * Returns 1 with the recorded fingerprint, 0 when not recorded.
 */
static int trust_lookup(const char *path, const char *base,
			char ret_fp[MARKET_FP_LEN])
{
	char *buf = NULL, *line, *save = NULL;
	size_t len;
	int r, found = 0;

	r = util_read_file(path, 4u << 20, &buf, &len);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;

	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *sp = strchr(line, ' ');

		if (!sp || sp - line != MARKET_FP_LEN - 1)
			continue;
		if (strcmp(sp + 1, base) != 0)
			continue;
		memcpy(ret_fp, line, MARKET_FP_LEN - 1);
		ret_fp[MARKET_FP_LEN - 1] = '\0';
		found = 1;
	}
	free(buf);
	return found;
}

static int trust_record(const char *path, const char *dir, const char *base,
			const char *fp)
{
	char *line = NULL;
	int fd, r, n;

	r = util_mkdir_p(dir, 0700);
	if (r < 0)
		return r;

	n = asprintf(&line, "%s %s\n", fp, base);
	if (n < 0)
		return -ENOMEM;

	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		goto out_free_line;
	}
	r = 0;
	if (write(fd, line, (size_t)n) != n)
		r = -EIO;
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
out_free_line:
	free(line);
	return r;
}

/*
 * Decide whether to trust the market's key: the pinned fingerprint if
 * one is given, else the one recorded for this base, else record it now.
 */
static int trust_market_key(const struct tree_config *cfg, struct tree *tree,
			    char msg[TREE_MSG_LEN])
{
	char recorded[MARKET_FP_LEN];
	char *path = NULL;
	int r;

	market_fingerprint(tree->info->sign_pk, tree->fingerprint);

	if (cfg->market_key) {
		if (strcasecmp(cfg->market_key, tree->fingerprint) == 0)
			return 0;
		snprintf(msg, TREE_MSG_LEN,
			 "market key %s is not the pinned key %s",
			 tree->fingerprint, cfg->market_key);
		return -EKEYREJECTED;
	}

	r = trust_file(cfg, &path);
	if (r < 0) {
		snprintf(msg, TREE_MSG_LEN,
			 "no state directory to record the market key in; "
			 "use -o market_key=%s", tree->fingerprint);
		return -EACCES;
	}

	r = trust_lookup(path, tree->base, recorded);
	if (r < 0) {
		snprintf(msg, TREE_MSG_LEN, "cannot read '%s': %s", path,
			 strerror(-r));
		goto out_free_path;
	}
	if (r == 1) {
		r = 0;
		if (strcmp(recorded, tree->fingerprint) != 0) {
			snprintf(msg, TREE_MSG_LEN,
				 "market key changed: %s was recorded for "
				 "'%s' in '%s', the market now has %s",
				 recorded, tree->base, path,
				 tree->fingerprint);
			r = -EKEYREJECTED;
		}
		goto out_free_path;
	}

	r = trust_record(path, cfg->state_dir, tree->base, tree->fingerprint);
	if (r < 0) {
		snprintf(msg, TREE_MSG_LEN, "cannot record the market key "
			 "in '%s': %s", path, strerror(-r));
		goto out_free_path;
	}
	tree->key_first_use = 1;
out_free_path:
	free(path);
	return r;
}

/* ---- market ---- */

static void dataset_free(struct tree_dataset *ds)
{
	if (!ds)
		return;
	free(ds->id);
	market_licence_free(ds->licence);
	market_manifest_free(ds->manifest);
	free(ds->problem);
	json_decref(ds->facts);
	free(ds);
}

static char *terms_text(const struct tree *tree, const struct tree_dataset *ds)
{
	const struct market_licence *l = ds->licence;
	char nb[TIMEUTIL_RFC3339_LEN], ex[TIMEUTIL_RFC3339_LEN];
	char is[TIMEUTIL_RFC3339_LEN];
	char *text = NULL;
	char seats[32];

	timeutil_format(l->not_before, nb);
	timeutil_format(l->expires, ex);
	timeutil_format(l->issued, is);
	if (l->seats)
		snprintf(seats, sizeof(seats), "%u", l->seats);
	else
		snprintf(seats, sizeof(seats), "no limit");

	if (asprintf(&text,
		     "Licence terms for dataset '%s'\n"
		     "\n"
		     "market:          %s (%s)\n"
		     "licence:         %s\n"
		     "dataset version: %s\n"
		     "policy:          %s\n"
		     "issued:          %s\n"
		     "valid from:      %s\n"
		     "expires:         %s\n"
		     "at the end:      %s\n"
		     "offline grace:   %lld seconds\n"
		     "seats:           %s\n"
		     "%s%s%s"
		     "\n"
		     "%s%s",
		     ds->id, tree->info->name, tree->info->id, l->id,
		     l->version, l->policy ? l->policy : "-", is, nb, ex,
		     l->on_end == MARKET_END_CUT ?
		     "cut: open files stop reading" :
		     "finish: open files may be read to the end",
		     (long long)l->offline_grace, seats,
		     ds->problem ? "problem:         " : "",
		     ds->problem ? ds->problem : "",
		     ds->problem ? "\n" : "",
		     l->terms ? l->terms : "",
		     l->terms && *l->terms &&
		     l->terms[strlen(l->terms) - 1] != '\n' ? "\n" : "") < 0)
		return NULL;
	return text;
}

static int add_text(struct tree_node *dir, const char *name,
		    const char *relpath, char *text, struct tree_dataset *ds,
		    int64_t mtime)
{
	struct tree_node *n;
	int r;

	if (!text)
		return -ENOMEM;
	n = node_new(name, TREE_TEXT);
	if (!n) {
		free(text);
		return -ENOMEM;
	}
	n->text = text;
	n->size = strlen(text);
	n->dataset = ds;
	n->mtime = mtime;
	n->relpath = strdup(relpath);
	if (!n->relpath) {
		node_free(n);
		return -ENOMEM;
	}
	r = node_add(dir, n);
	if (r < 0)
		node_free(n);
	return r;
}

static int add_dataset_files(struct tree_node *dsdir, struct tree_dataset *ds)
{
	const struct market_manifest *m = ds->manifest;
	size_t i;
	int r;

	for (i = 0; i < m->nfiles; i++) {
		const struct market_file *f = &m->files[i];
		struct tree_node *dir, *n;

		r = node_mkdirs(dsdir, f->path, &dir);
		if (r < 0)
			return r;
		n = node_new(path_basename(f->path), TREE_DATA);
		if (!n)
			return -ENOMEM;
		n->size = f->size;
		n->mfile = f;
		n->dataset = ds;
		n->mtime = m->created;
		n->relpath = strdup(f->path);
		if (!n->relpath) {
			node_free(n);
			return -ENOMEM;
		}
		r = node_add(dir, n);
		if (r < 0) {
			node_free(n);
			return r;
		}
	}
	return 0;
}

/*
 * Load the manifest a licence names and check it is the one the licence
 * binds, and that the licence carries a header for each of its files.
 */
static int load_manifest(const struct tree_config *cfg, struct tree *tree,
			 struct tree_dataset *ds)
{
	const struct market_licence *l = ds->licence;
	struct market_manifest *m = NULL;
	char *rel = NULL, *buf = NULL;
	uint8_t digest[32];
	size_t len, i;
	int r;

	r = market_path_manifest(l->dataset, l->version, &rel);
	if (r < 0)
		return r;

	r = fetch_doc(cfg, tree->base, rel, &buf, &len);
	if (r < 0) {
		(void)asprintf(&ds->problem, "manifest '%s' cannot be "
			       "fetched: %s", rel, http_last_error());
		goto out_free_rel;
	}

	r = cipher_sha256(buf, len, digest);
	if (r < 0)
		goto out_free_buf;
	if (!cipher_memeq(digest, l->manifest_sha256, 32)) {
		(void)asprintf(&ds->problem, "manifest '%s' is not the one "
			       "the licence binds", rel);
		r = -EBADMSG;
		goto out_free_buf;
	}

	r = market_manifest_parse(buf, len, tree->info->sign_pk, &m);
	if (r < 0) {
		(void)asprintf(&ds->problem, "manifest '%s' rejected: %s",
			       rel, market_strerror(r));
		goto out_free_buf;
	}
	if (strcmp(m->market_id, tree->info->id) != 0 ||
	    strcmp(m->dataset, l->dataset) != 0 ||
	    strcmp(m->version, l->version) != 0) {
		(void)asprintf(&ds->problem, "manifest '%s' is for another "
			       "dataset or version", rel);
		r = -EBADMSG;
		goto out_free_manifest;
	}
	for (i = 0; i < m->nfiles; i++) {
		if (!market_licence_find(l, m->files[i].path)) {
			(void)asprintf(&ds->problem, "the licence has no "
				       "header for '%s'", m->files[i].path);
			r = -EBADMSG;
			goto out_free_manifest;
		}
	}

	ds->manifest = m;
	m = NULL;
	r = 0;
out_free_manifest:
	market_manifest_free(m);
out_free_buf:
	free(buf);
out_free_rel:
	free(rel);
	return r;
}

/*
 * Of two licences for one dataset, keep the newer grant: the higher
 * serial (re-granting is how a buyer moves to a new version or new
 * terms), then the later expiry.
 */
static int licence_better(const struct market_licence *a,
			  const struct market_licence *b)
{
	if (a->serial != b->serial)
		return a->serial > b->serial;
	return a->expires > b->expires;
}

static int load_licence(const struct tree_config *cfg, struct tree *tree,
			const char *id, struct market_licence **ret_licence,
			char *why, size_t whylen)
{
	struct market_licence *l = NULL;
	char *rel = NULL, *buf = NULL;
	size_t len;
	int r;

	r = market_path_licence(cfg->pk, id, &rel);
	if (r < 0)
		return r;

	r = fetch_doc(cfg, tree->base, rel, &buf, &len);
	if (r < 0) {
		snprintf(why, whylen, "cannot be fetched: %s",
			 http_last_error());
		report(cfg, "licence '%s' %s", id, why);
		goto out_free_rel;
	}

	r = market_licence_parse(buf, len, tree->info->sign_pk, &l);
	if (r < 0) {
		snprintf(why, whylen, "%s", market_strerror(r));
		report(cfg, "licence '%s' rejected: %s", id, why);
		goto out_free_buf;
	}

	if (strcmp(l->id, id) != 0 || strcmp(l->market_id, tree->info->id) ||
	    !cipher_memeq(l->licensee, cfg->pk, 32)) {
		snprintf(why, whylen, "it is for another licence id, market "
			 "or key (binding mismatch)");
		report(cfg, "licence '%s' rejected: %s", id, why);
		r = -EBADMSG;
		goto out_free_licence;
	}

	*ret_licence = l;
	l = NULL;
out_free_licence:
	market_licence_free(l);
out_free_buf:
	free(buf);
out_free_rel:
	free(rel);
	return r;
}

static struct tree_dataset *find_dataset(struct tree *tree, const char *id)
{
	size_t i;

	for (i = 0; i < tree->ndatasets; i++)
		if (strcmp(tree->datasets[i]->id, id) == 0)
			return tree->datasets[i];
	return NULL;
}

static int take_licence(struct tree *tree, struct market_licence *l)
{
	struct tree_dataset *ds, **nd;

	ds = find_dataset(tree, l->dataset);
	if (ds) {
		if (licence_better(l, ds->licence)) {
			market_licence_free(ds->licence);
			ds->licence = l;
		} else {
			market_licence_free(l);
		}
		return 0;
	}

	ds = calloc(1, sizeof(*ds));
	if (!ds)
		return -ENOMEM;
	ds->id = strdup(l->dataset);
	if (!ds->id) {
		free(ds);
		return -ENOMEM;
	}
	nd = realloc(tree->datasets, (tree->ndatasets + 1) * sizeof(*nd));
	if (!nd) {
		dataset_free(ds);
		return -ENOMEM;
	}
	tree->datasets = nd;
	ds->licence = l;
	nd[tree->ndatasets++] = ds;
	return 0;
}

/* A licence the index lists that could not be used: remember why. */
static int note_rejected(struct tree *tree, const char *dataset,
			 const char *licence, const char *why)
{
	struct tree_rejected *nr;

	nr = realloc(tree->rejected, (tree->nrejected + 1) * sizeof(*nr));
	if (!nr)
		return -ENOMEM;
	tree->rejected = nr;
	nr += tree->nrejected;
	nr->dataset = strdup(dataset);
	nr->licence = strdup(licence);
	if (asprintf(&nr->reason, "licence rejected: %s", why) < 0)
		nr->reason = NULL;
	if (!nr->dataset || !nr->licence || !nr->reason) {
		free(nr->dataset);
		free(nr->licence);
		free(nr->reason);
		return -ENOMEM;
	}
	tree->nrejected++;
	return 0;
}

const struct tree_rejected *tree_rejected_for(const struct tree *tree,
					      const char *path)
{
	const char *ds, *end;
	size_t i, len;

	if (strncmp(path, "/datasets/", 10) != 0)
		return NULL;
	ds = path + 10;
	end = strchr(ds, '/');
	len = end ? (size_t)(end - ds) : strlen(ds);
	for (i = 0; i < tree->nrejected; i++) {
		const struct tree_rejected *rj = &tree->rejected[i];

		if (strlen(rj->dataset) == len &&
		    strncmp(rj->dataset, ds, len) == 0 &&
		    !find_dataset((struct tree *)tree, rj->dataset))
			return rj;
	}
	return NULL;
}

static int load_licences(const struct tree_config *cfg, struct tree *tree)
{
	struct market_index *idx = NULL;
	char *rel = NULL, *buf = NULL;
	size_t len, i;
	int r;

	r = market_path_index(cfg->pk, &rel);
	if (r < 0)
		return r;

	r = fetch_doc(cfg, tree->base, rel, &buf, &len);
	if (r == -ENOENT) {
		report(cfg, "no licences for this key in the market");
		r = 0;
		goto out_free_rel;
	}
	if (r < 0) {
		report(cfg, "licence index cannot be fetched: %s",
		       http_last_error());
		goto out_free_rel;
	}

	r = market_index_parse(buf, len, tree->info->sign_pk, &idx);
	if (r < 0) {
		report(cfg, "licence index rejected: %s", market_strerror(r));
		goto out_free_buf;
	}
	if (!cipher_memeq(idx->licensee, cfg->pk, 32)) {
		report(cfg, "licence index rejected: it is for another key");
		r = -EBADMSG;
		goto out_free_index;
	}

	for (i = 0; i < idx->nids; i++) {
		struct market_licence *l = NULL;
		char why[256] = "";

		if (load_licence(cfg, tree, idx->ids[i], &l, why,
				 sizeof(why)) < 0) {
			r = note_rejected(tree, idx->datasets[i],
					  idx->ids[i], why);
			if (r < 0)
				goto out_free_index;
			continue;
		}
		r = take_licence(tree, l);
		if (r < 0)
			goto out_free_index;
	}
	r = 0;
out_free_index:
	market_index_free(idx);
out_free_buf:
	free(buf);
out_free_rel:
	free(rel);
	return r;
}

static char *catalog_readme(const struct tree *tree,
			    const struct market_listing *d)
{
	char *text = NULL;

	if (asprintf(&text,
		     "%s\n"
		     "\n"
		     "dataset:     %s\n"
		     "provider:    %s\n"
		     "market:      %s\n"
		     "version:     %s\n"
		     "files:       %llu\n"
		     "size:        %llu bytes\n"
		     "price:       %s\n"
		     "offered:     %s\n"
		     "\n"
		     "%s\n",
		     d->title ? d->title : d->id, d->id,
		     d->provider ? d->provider : "-", tree->info->name,
		     d->latest_version ? d->latest_version : "-",
		     (unsigned long long)d->nfiles,
		     (unsigned long long)d->size, d->price ? d->price : "-",
		     d->terms ? d->terms : "-",
		     d->description ? d->description : "") < 0)
		return NULL;
	return text;
}

static int build_market_tree(struct tree *tree)
{
	struct tree_node *dsroot, *catroot;
	int64_t mtime = tree->info->created;
	size_t i;
	int r;

	dsroot = node_new("datasets", TREE_DIR);
	if (!dsroot)
		return -ENOMEM;
	dsroot->mtime = mtime;
	r = node_add(tree->root, dsroot);
	if (r < 0) {
		node_free(dsroot);
		return r;
	}

	catroot = node_new("catalog", TREE_DIR);
	if (!catroot)
		return -ENOMEM;
	catroot->mtime = mtime;
	r = node_add(tree->root, catroot);
	if (r < 0) {
		node_free(catroot);
		return r;
	}

	for (i = 0; i < tree->ndatasets; i++) {
		struct tree_dataset *ds = tree->datasets[i];
		struct tree_node *d;

		d = node_new(ds->id, TREE_DIR);
		if (!d)
			return -ENOMEM;
		d->dataset = ds;
		d->mtime = ds->licence->issued;
		r = node_add(dsroot, d);
		if (r < 0) {
			node_free(d);
			return r;
		}
		if (ds->manifest) {
			r = add_dataset_files(d, ds);
			if (r < 0)
				return r;
		}
		r = add_text(d, MARKET_TERMS_FILE, MARKET_TERMS_FILE,
			     terms_text(tree, ds), ds, ds->licence->issued);
		if (r < 0)
			return r;
	}

	/* A dataset whose only licence was rejected keeps a folder saying
	 * so; paths below it answer EACCES (fsops). */
	for (i = 0; i < tree->nrejected; i++) {
		const struct tree_rejected *rj = &tree->rejected[i];
		struct tree_node *d;
		char *text = NULL;

		if (find_dataset(tree, rj->dataset) ||
		    node_child(dsroot, rj->dataset, strlen(rj->dataset)))
			continue;
		d = node_new(rj->dataset, TREE_DIR);
		if (!d)
			return -ENOMEM;
		d->mtime = mtime;
		r = node_add(dsroot, d);
		if (r < 0) {
			node_free(d);
			return r;
		}
		if (asprintf(&text, "Licence terms for dataset '%s'\n\n"
			     "licence:         %s\n"
			     "problem:         %s\n\n"
			     "This licence could not be verified, so nothing "
			     "of the dataset is served:\nevery open under "
			     "this folder is refused (EACCES) and logged.\n",
			     rj->dataset, rj->licence, rj->reason) < 0)
			return -ENOMEM;
		r = add_text(d, MARKET_TERMS_FILE, MARKET_TERMS_FILE, text,
			     NULL, mtime);
		if (r < 0)
			return r;
	}

	for (i = 0; tree->catalog && i < tree->catalog->ndatasets; i++) {
		const struct market_listing *l = &tree->catalog->datasets[i];
		struct tree_node *d;
		char *rel = NULL;

		d = node_new(l->id, TREE_DIR);
		if (!d)
			return -ENOMEM;
		d->mtime = tree->catalog->issued;
		r = node_add(catroot, d);
		if (r < 0) {
			node_free(d);
			if (r == -EEXIST)
				continue;
			return r;
		}
		if (asprintf(&rel, "catalog/%s/README", l->id) < 0)
			return -ENOMEM;
		r = add_text(d, "README", rel, catalog_readme(tree, l), NULL,
			     tree->catalog->issued);
		free(rel);
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * Parse a revocation list of this market; 0 with the list, or a negative
 * errno after reporting why it was not taken.
 */
static int parse_revocations(const struct tree_config *cfg,
			     const struct tree *tree, const char *doc,
			     size_t len, const char *what,
			     struct market_revocations **ret)
{
	struct market_revocations *rev = NULL;
	int r;

	r = market_revocations_parse(doc, len, tree->info->sign_pk, &rev);
	if (r < 0) {
		report(cfg, "%s revocation list rejected: %s", what,
		       market_strerror(r));
		return r;
	}
	if (strcmp(rev->market_id, tree->info->id) != 0) {
		report(cfg, "%s revocation list rejected: it is another "
		       "market's", what);
		market_revocations_free(rev);
		return -EBADMSG;
	}
	*ret = rev;
	return 0;
}

/*
 * The revocation list: the market's if it verifies and is not older than
 * one already seen (its signed time then moves trusted time forward);
 * otherwise the newest one this host saved, so that neither a market
 * that is down nor one that serves an old list revives a licence.
 */
static int load_revocations(const struct tree_config *cfg, struct tree *tree,
			    char msg[TREE_MSG_LEN])
{
	struct market_revocations *rev = NULL;
	char *doc = NULL;
	size_t len;
	int r;

	if (cfg->trust) {
		tree->trust = cfg->trust;
	} else {
		r = trust_open(cfg->state_dir ? cfg->state_dir : "/nonexistent",
			       tree->info->id, &tree->trust);
		if (r < 0) {
			snprintf(msg, TREE_MSG_LEN, "cannot use the state of "
				 "market '%s' under '%s': %s", tree->info->id,
				 cfg->state_dir ? cfg->state_dir : "(none)",
				 r == -EBADMSG ? "the file is damaged" :
				 strerror(-r));
			return r;
		}
		tree->owns_trust = 1;
	}

	r = fetch_doc(cfg, tree->base, "revocations.jws", &doc, &len);
	if (r < 0)
		report(cfg, "revocation list cannot be fetched: %s",
		       http_last_error());
	if (r == 0 && parse_revocations(cfg, tree, doc, len, "the market's",
					&rev) == 0) {
		r = trust_offer_revocations(tree->trust, rev->version,
					    rev->issued, doc, len);
		if (r == -ESTALE) {
			report(cfg, "revocation list version %llu is older "
			       "than one already seen: rollback refused, "
			       "using the newer saved list",
			       (unsigned long long)rev->version);
			rev = market_revocations_free(rev);
		} else if (r < 0) {
			report(cfg, "cannot save the revocation list: %s",
			       strerror(-r));
		}
	}
	free(doc);
	doc = NULL;
	if (rev) {
		tree->revocations = rev;
		return 0;
	}

	/* Offline, or the market's list was not taken: the saved one. */
	if (trust_saved_revocations(tree->trust, &doc, &len) == 0 &&
	    parse_revocations(cfg, tree, doc, len, "saved", &rev) == 0) {
		tree->revocations = rev;
		tree->revocations_offline = 1;
	}
	free(doc);
	return 0;
}

/* A licence older than one this host has seen for the dataset: replay. */
static void check_serial(const struct tree_config *cfg, struct tree *tree,
			 struct tree_dataset *ds)
{
	int r;

	if (!tree->trust)
		return;
	r = trust_offer_serial(tree->trust, ds->id, ds->licence->serial);
	if (r == -ESTALE) {
		ds->replayed = 1;
		report(cfg, "licence '%s' for dataset '%s' has serial %llu, "
		       "older than one already seen: replay refused",
		       ds->licence->id, ds->id,
		       (unsigned long long)ds->licence->serial);
	} else if (r < 0) {
		report(cfg, "cannot save the licence serial of '%s': %s",
		       ds->id, strerror(-r));
	}
}

/*
 * Open the facts the market sealed for us in the licence (plaintext
 * digests).  They are public to the licensee only; failing to open them
 * loses the xattr, nothing else.
 */
static void load_facts(const struct tree_config *cfg, struct tree_dataset *ds)
{
	const struct market_licence *l = ds->licence;
	json_error_t jerr;
	json_t *o, *files;
	char *plain = NULL;
	int in = -1, out = -1, r;
	off_t size;

	if (!l->facts || l->facts_len == 0)
		return;
	in = memfd_create("marketfs-facts", MFD_CLOEXEC);
	out = memfd_create("marketfs-facts", MFD_CLOEXEC);
	if (in < 0 || out < 0)
		goto out_close;
	if (write(in, l->facts, l->facts_len) != (ssize_t)l->facts_len ||
	    lseek(in, 0, SEEK_SET) < 0)
		goto out_close;
	r = c4gh_decrypt_fd(in, out, cfg->sk);
	if (r < 0) {
		report(cfg, "facts of licence '%s' cannot be opened: %s",
		       l->id, c4gh_strerror(r));
		goto out_close;
	}
	size = lseek(out, 0, SEEK_END);
	if (size <= 0 || size > (16 << 20) || lseek(out, 0, SEEK_SET) < 0)
		goto out_close;
	plain = malloc((size_t)size);
	if (!plain || read(out, plain, (size_t)size) != size)
		goto out_free;

	o = json_loadb(plain, (size_t)size, JSON_REJECT_DUPLICATES, &jerr);
	files = json_object_get(o, "files");
	if (json_is_object(files))
		ds->facts = json_incref(files);
	else
		report(cfg, "facts of licence '%s' are malformed", l->id);
	json_decref(o);
out_free:
	free(plain);
out_close:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
}

const char *tree_node_sha256(const struct tree_node *node)
{
	json_t *f;
	const char *hex;

	if (!node->dataset || !node->dataset->facts || !node->mfile)
		return NULL;
	f = json_object_get(node->dataset->facts, node->relpath);
	hex = json_string_value(json_object_get(f, "sha256"));
	return hex && strlen(hex) == 64 ? hex : NULL;
}

static int load_market(const struct tree_config *cfg, struct tree *tree,
		       const char *buf, size_t len, char msg[TREE_MSG_LEN])
{
	char *doc = NULL;
	size_t dlen, i;
	int r;

	r = market_info_parse(buf, len, NULL, &tree->info);
	if (r < 0) {
		snprintf(msg, TREE_MSG_LEN, "market description rejected: %s",
			 market_strerror(r));
		return -EBADMSG;
	}

	r = trust_market_key(cfg, tree, msg);
	if (r < 0)
		return r;

	if (fetch_doc(cfg, tree->base, "catalog.jws", &doc, &dlen) == 0) {
		r = market_catalog_parse(doc, dlen, tree->info->sign_pk,
					 &tree->catalog);
		if (r < 0)
			report(cfg, "catalog rejected: %s",
			       market_strerror(r));
		if (r == 0 && strcmp(tree->catalog->market_id,
				     tree->info->id) != 0) {
			report(cfg, "catalog rejected: it is another "
			       "market's");
			tree->catalog = market_catalog_free(tree->catalog);
		}
		free(doc);
		doc = NULL;
	} else {
		report(cfg, "no catalog: %s", http_last_error());
	}

	r = load_revocations(cfg, tree, msg);
	if (r < 0)
		return r;

	r = load_licences(cfg, tree);
	if (r < 0) {
		snprintf(msg, TREE_MSG_LEN, "loading licences failed: %s",
			 strerror(-r));
		return r;
	}

	for (i = 0; i < tree->ndatasets; i++) {
		struct tree_dataset *ds = tree->datasets[i];

		check_serial(cfg, tree, ds);
		if (load_manifest(cfg, tree, ds) < 0)
			report(cfg, "dataset '%s': %s", ds->id,
			       ds->problem ? ds->problem : "manifest failed");
		load_facts(cfg, ds);
	}

	r = build_market_tree(tree);
	if (r < 0)
		snprintf(msg, TREE_MSG_LEN, "building the tree failed: %s",
			 strerror(-r));
	return r;
}

/* ---- plain folder of Crypt4GH files ---- */

static int base_to_dir(const char *base, char **ret_dir)
{
	const char *p;
	char *dir;
	size_t i, o;

	if (strncmp(base, "file://", 7) != 0)
		return -EPROTONOSUPPORT;
	p = base + 7;

	/* Undo the percent-encoding http_source_to_base applied. */
	dir = malloc(strlen(p) + 1);
	if (!dir)
		return -ENOMEM;
	for (i = 0, o = 0; p[i]; i++) {
		unsigned int c;

		if (p[i] == '%' && p[i + 1] && p[i + 2] &&
		    sscanf(&p[i + 1], "%2x", &c) == 1) {
			dir[o++] = (char)c;
			i += 2;
		} else {
			dir[o++] = p[i];
		}
	}
	dir[o] = '\0';
	*ret_dir = dir;
	return 0;
}

int tree_plain_header(struct http *http, const char *url, const uint8_t *sk,
		      struct c4gh_header *ret_hdr, uint64_t *ret_data_len)
{
	uint64_t need = C4GH_PREAMBLE_LEN, have = 0, fsize;
	uint8_t *buf = NULL;
	int r;

	r = http_size(http, url, &fsize);
	if (r < 0)
		return -EIO;

	/* Fetch what the header's own lengths say it needs, bounded. */
	for (;;) {
		uint8_t *nb;

		if (need > fsize || need > C4GH_HEADER_MAX) {
			r = -EBADMSG;
			goto out_free_buf;
		}
		if (need > have) {
			nb = realloc(buf, need);
			if (!nb) {
				r = -ENOMEM;
				goto out_free_buf;
			}
			buf = nb;
			r = http_get_range(http, url, 0, need, buf);
			if (r < 0)
				goto out_free_buf;
			have = need;
		}
		r = c4gh_header_length(buf, have, &need);
		if (r > 0 && (uint64_t)r <= have)
			break;
		if (r > 0)
			need = (uint64_t)r;
		else if (r != -EAGAIN)
			goto out_free_buf;
	}

	r = c4gh_header_decrypt(buf, have, sk, ret_hdr);
	if (r < 0)
		goto out_free_buf;
	*ret_data_len = fsize - ret_hdr->header_len;
out_free_buf:
	free(buf);
	return r;
}

/* Work out the visible size of one plain Crypt4GH file. */
static int plain_probe(const struct tree_config *cfg, const char *url,
		       uint64_t *ret_size)
{
	struct c4gh_header hdr;
	uint64_t data_len = 0, plain;
	int r;

	r = tree_plain_header(cfg->http, url, cfg->sk, &hdr, &data_len);
	if (r < 0)
		return r;

	r = c4gh_plain_size(data_len, &plain);
	if (r == 0)
		*ret_size = c4gh_edit_visible_size(&hdr, plain);
	c4gh_header_release(&hdr);
	return r;
}

static int plain_add_file(const struct tree_config *cfg, struct tree *tree,
			  const char *rel, int64_t mtime)
{
	struct tree_node *dir, *n;
	char *url = NULL, *shown;
	uint64_t size = 0;
	size_t len = strlen(rel);
	int r;

	r = http_url_join(tree->base, rel, &url);
	if (r < 0)
		return r;

	r = plain_probe(cfg, url, &size);
	if (r < 0) {
		report(cfg, "'%s' left out: %s", rel, c4gh_strerror(r));
		free(url);
		return 0;
	}

	shown = strndup(rel, len - 5);	/* drop ".c4gh" */
	if (!shown) {
		free(url);
		return -ENOMEM;
	}
	r = node_mkdirs(tree->root, shown, &dir);
	if (r < 0)
		goto out_free;
	n = node_new(path_basename(shown), TREE_DATA);
	if (!n) {
		r = -ENOMEM;
		goto out_free;
	}
	n->size = size;
	n->mtime = mtime;
	n->url = url;
	n->relpath = shown;
	url = NULL;
	shown = NULL;
	r = node_add(dir, n);
	if (r < 0) {
		report(cfg, "'%s' left out: its name clashes", rel);
		node_free(n);
		r = 0;
	}
out_free:
	free(shown);
	free(url);
	return r;
}

static int plain_walk(const struct tree_config *cfg, struct tree *tree,
		      const char *root, const char *rel, int depth,
		      size_t *count)
{
	char *path = NULL;
	struct dirent *de;
	DIR *d;
	int r = 0;

	if (depth > PLAIN_MAX_DEPTH)
		return 0;
	if (asprintf(&path, "%s%s", root, rel) < 0)
		return -ENOMEM;
	d = opendir(path);
	if (!d) {
		r = -errno;
		free(path);
		return r;
	}

	while ((de = readdir(d)) != NULL) {
		char *sub = NULL, *full = NULL;
		struct stat st;
		size_t nl = strlen(de->d_name);

		if (de->d_name[0] == '.')
			continue;
		if (asprintf(&sub, "%s%s", rel, de->d_name) < 0) {
			r = -ENOMEM;
			break;
		}
		if (asprintf(&full, "%s%s", root, sub) < 0) {
			free(sub);
			r = -ENOMEM;
			break;
		}
		if (lstat(full, &st) < 0) {
			free(full);
			free(sub);
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			char *subdir = NULL;

			if (asprintf(&subdir, "%s/", sub) >= 0) {
				r = plain_walk(cfg, tree, root, subdir,
					       depth + 1, count);
				free(subdir);
			}
		} else if (S_ISREG(st.st_mode) && nl > 5 &&
			   strcmp(de->d_name + nl - 5, ".c4gh") == 0 &&
			   util_path_is_safe(sub)) {
			if (++*count > PLAIN_MAX_FILES)
				r = -EFBIG;
			else
				r = plain_add_file(cfg, tree, sub,
						   st.st_mtime);
		}
		free(full);
		free(sub);
		if (r < 0)
			break;
	}
	closedir(d);
	free(path);
	return r;
}

static int load_plain(const struct tree_config *cfg, struct tree *tree,
		      char msg[TREE_MSG_LEN])
{
	char *dir = NULL;
	size_t count = 0;
	int r;

	r = base_to_dir(tree->base, &dir);
	if (r < 0) {
		snprintf(msg, TREE_MSG_LEN, "'%s' holds no market.jws, and "
			 "only a local folder can be read as plain Crypt4GH "
			 "files", cfg->source);
		return -ENOENT;
	}

	r = plain_walk(cfg, tree, dir, "", 0, &count);
	if (r < 0)
		snprintf(msg, TREE_MSG_LEN, "reading folder '%s' failed: %s",
			 dir, strerror(-r));
	/* A mistyped path must not look like "you own nothing". */
	if (r == 0 && tree->root->nchildren == 0) {
		snprintf(msg, TREE_MSG_LEN, "'%s' is not a market (no "
			 "market.jws) and holds no Crypt4GH file that opens "
			 "with this key", dir);
		r = -ENOENT;
	}
	free(dir);
	return r;
}

/* ---- entry points ---- */

int tree_load(const struct tree_config *cfg, struct tree **ret_tree,
	      char msg[TREE_MSG_LEN])
{
	struct tree *tree;
	char *buf = NULL;
	size_t len;
	int r;

	msg[0] = '\0';
	tree = calloc(1, sizeof(*tree));
	if (!tree)
		return -ENOMEM;

	r = http_source_to_base(cfg->source, &tree->base);
	if (r < 0) {
		snprintf(msg, TREE_MSG_LEN, "'%s' is not a directory, file:// "
			 "or https:// source: %s", cfg->source, strerror(-r));
		goto out_free_tree;
	}

	tree->root = node_new("", TREE_DIR);
	if (!tree->root) {
		r = -ENOMEM;
		goto out_free_tree;
	}
	tree->root->mtime = timeutil_now();

	r = fetch_doc(cfg, tree->base, "market.jws", &buf, &len);
	if (r == 0) {
		tree->is_market = 1;
		r = load_market(cfg, tree, buf, len, msg);
		free(buf);
	} else if (r == -ENOENT) {
		r = load_plain(cfg, tree, msg);
	} else {
		snprintf(msg, TREE_MSG_LEN, "cannot fetch the market "
			 "description from '%s': %s", tree->base,
			 http_last_error());
	}
	if (r < 0)
		goto out_free_tree;

	*ret_tree = tree;
	return 0;

out_free_tree:
	if (!msg[0])
		snprintf(msg, TREE_MSG_LEN, "%s", strerror(-r));
	tree_free(tree);
	return r;
}

struct tree *tree_free(struct tree *tree)
{
	size_t i;

	if (!tree)
		return NULL;
	node_free(tree->root);
	for (i = 0; i < tree->ndatasets; i++)
		dataset_free(tree->datasets[i]);
	free(tree->datasets);
	market_info_free(tree->info);
	market_catalog_free(tree->catalog);
	market_revocations_free(tree->revocations);
	for (i = 0; i < tree->nrejected; i++) {
		free(tree->rejected[i].dataset);
		free(tree->rejected[i].licence);
		free(tree->rejected[i].reason);
	}
	free(tree->rejected);
	if (tree->owns_trust)
		trust_free(tree->trust);
	free(tree->base);
	free(tree);
	return NULL;
}
