/*
 * operator.c - the market operator's work: make a market directory,
 * publish datasets into it, grant, revoke, re-sign, verify and list.
 *
 * Invariants:
 * - The market's private keys (keys_dir) are never under the market
 *   directory, which is public as a whole.  Plaintext digests of
 *   published files (the "facts") are kept in keys_dir too, and only
 *   leave it sealed for a licensee inside a licence.
 * - Each published file is encrypted once, streamed segment by segment;
 *   its header is sealed to the market's own Crypt4GH key, so that a
 *   grant re-wraps the header and never touches the data.
 * - Every document and object is written to a temporary file in its
 *   final directory, synced, then renamed: readers see the old or the
 *   new file, never half of one.  A manifest is written only after all
 *   its objects, and the catalog only after the manifest.
 * - Every document read back is verified with the market's key first.
 *
 * Nothing here prints: failures leave one line in ret_msg.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "b64.h"
#include "c4gh.h"
#include "cipher.h"
#include "jws.h"
#include "market.h"
#include "operator.h"
#include "timeutil.h"
#include "util.h"

#define SIGNING_KEY_FILE	"signing.key"
#define C4GH_SEC_FILE		"market.sec"
#define C4GH_PUB_FILE		"market.pub"
#define SIGN_KEY_BEGIN		"-----BEGIN MARKETFS ED25519 SECRET KEY-----\n"
#define SIGN_KEY_END		"-----END MARKETFS ED25519 SECRET KEY-----\n"
#define DEFAULT_POLICY		"research-12m"
#define DAY			86400
#define SRC_FILES_MAX		1000000u	/* files in one publish */
#define SRC_DEPTH_MAX		64		/* directory nesting */
#define FACTS_MAX		(256u << 20)	/* bytes of a facts file */
#define POLICY_MAX		(1u << 20)	/* bytes of a policy template */

/* An opened market: its description and private keys. */
struct op_market {
	const char *dir;
	char *keys_dir;
	struct market_info *info;
	uint8_t sign_sk[32];		/* Ed25519, wiped in op_close */
	uint8_t c4gh_sk[32];		/* X25519, wiped in op_close */
	char kid[MARKET_FP_LEN];	/* fingerprint of the signing key */
};

static int msgf(char *msg, int r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Leave one line in msg and return r. */
static int msgf(char *msg, int r, const char *fmt, ...)
{
	va_list ap;

	if (msg) {
		va_start(ap, fmt);
		vsnprintf(msg, OPERATOR_MSG_LEN, fmt, ap);
		va_end(ap);
	}
	return r;
}

static char *path_join(const char *a, const char *b)
{
	char *s;

	if (asprintf(&s, "%s/%s", a, b) < 0)
		return NULL;
	return s;
}

static int file_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static int read_doc(const char *dir, const char *rel, char **ret_buf,
		    size_t *ret_len)
{
	char *path = path_join(dir, rel);
	int r;

	if (!path)
		return -ENOMEM;
	r = util_read_file(path, JWS_MAX_LEN, ret_buf, ret_len);
	free(path);
	return r;
}

/* Sign payload (reference taken) and write it atomically at dir/rel. */
static int write_doc(const struct op_market *m, const char *rel,
		     json_t *payload, const char *type)
{
	char *jws = NULL, *path;
	int r;

	r = jws_sign(payload, type, m->sign_sk, m->kid, &jws);
	json_decref(payload);
	if (r < 0)
		return r;
	path = path_join(m->dir, rel);
	if (!path) {
		free(jws);
		return -ENOMEM;
	}
	r = util_write_file_atomic(path, jws, strlen(jws), 0644);
	free(path);
	free(jws);
	return r;
}

static json_t *json_time(int64_t t)
{
	char buf[TIMEUTIL_RFC3339_LEN];

	timeutil_format(t, buf);
	return json_string(buf);
}

static char *hex32(const uint8_t d[32], char buf[65])
{
	cipher_hex(d, 32, buf);
	return buf;
}

static json_t *json_key(const uint8_t k[32], enum b64_alphabet alpha)
{
	char *s = NULL;
	json_t *j;

	if (b64_encode(k, 32, alpha, &s) < 0)
		return NULL;
	j = json_string(s);
	free(s);
	return j;
}

static int random_id(char ret[33])
{
	uint8_t b[16];
	int r = cipher_random(b, sizeof(b));

	if (r < 0)
		return r;
	cipher_hex(b, sizeof(b), ret);
	return 0;
}

/*
 * Text that can go into a signed document: valid UTF-8 (jansson refuses
 * anything else) and no control characters but newline and tab (the
 * parsers refuse those).
 */
static int text_is_clean(const char *s)
{
	json_t *j;

	for (const char *p = s; *p; p++)
		if (((unsigned char)*p < 0x20 && *p != '\n' && *p != '\t') ||
		    *p == 0x7f)
			return 0;
	j = json_string(s);
	json_decref(j);
	return j != NULL;
}

/* ---- keys ---- */

int operator_default_keys_dir(const char *market_id, char **ret_dir)
{
	const char *env = getenv("MARKETFS_MARKET_KEYS");
	char *s, *leaf;

	*ret_dir = NULL;
	if (env && *env) {
		s = strdup(env);
		goto out;
	}
	if (!market_id || !*market_id || strchr(market_id, '/'))
		return -EINVAL;
	if (asprintf(&leaf, "markets/%s", market_id) < 0)
		return -ENOMEM;
	s = util_xdg_path("XDG_CONFIG_HOME", ".config", leaf);
	free(leaf);
	if (!s)
		return -ENOENT;
out:
	if (!s)
		return -ENOMEM;
	*ret_dir = s;
	return 0;
}

static int keys_dir_for(const char *keys_dir, const char *market_id,
			char **ret)
{
	if (keys_dir) {
		*ret = strdup(keys_dir);
		return *ret ? 0 : -ENOMEM;
	}
	return operator_default_keys_dir(market_id, ret);
}

static int sign_key_write(const char *path, const uint8_t sk[32])
{
	char *b64 = NULL, *text = NULL;
	int fd, r, n;

	r = b64_encode(sk, 32, B64_STD, &b64);
	if (r < 0)
		return r;
	n = asprintf(&text, SIGN_KEY_BEGIN "%s\n" SIGN_KEY_END, b64);
	cipher_wipe(b64, strlen(b64));
	free(b64);
	if (n < 0)
		return -ENOMEM;

	/* O_EXCL: never overwrite a key; 0600 from the start. */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		  0600);
	if (fd < 0) {
		r = -errno;
		goto out_wipe;
	}
	r = 0;
	if (write(fd, text, (size_t)n) != n)
		r = -EIO;
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	if (r < 0)
		unlink(path);
out_wipe:
	cipher_wipe(text, (size_t)n);
	free(text);
	return r;
}

static int sign_key_read(const char *path, uint8_t ret_sk[32])
{
	const size_t lb = strlen(SIGN_KEY_BEGIN), le = strlen(SIGN_KEY_END);
	char *text = NULL;
	size_t len = 0;
	int r;

	r = util_read_file(path, 4096, &text, &len);
	if (r < 0)
		return r;
	if (len < lb + le + 2 || memcmp(text, SIGN_KEY_BEGIN, lb) != 0 ||
	    memcmp(text + len - le, SIGN_KEY_END, le) != 0 ||
	    text[len - le - 1] != '\n') {
		r = -EBADMSG;
		goto out;
	}
	r = b64_decode_exact(text + lb, len - lb - le - 1, B64_STD, ret_sk,
			     32);
	if (r < 0)
		r = -EBADMSG;
out:
	cipher_wipe(text, len);
	free(text);
	return r;
}

static void op_close(struct op_market *m)
{
	cipher_wipe(m->sign_sk, sizeof(m->sign_sk));
	cipher_wipe(m->c4gh_sk, sizeof(m->c4gh_sk));
	market_info_free(m->info);
	free(m->keys_dir);
	memset(m, 0, sizeof(*m));
}

/*
 * Open the market at dir with the keys in keys_dir (or the default):
 * the description must verify, and the private keys must match the
 * public keys it carries.
 */
static int op_open(const char *dir, const char *keys_dir,
		   struct op_market *m, char *msg)
{
	uint8_t pk[32];
	char *buf = NULL, *path;
	size_t len;
	int r;

	memset(m, 0, sizeof(*m));
	m->dir = dir;
	r = read_doc(dir, "market.jws", &buf, &len);
	if (r == -ENOENT)
		return msgf(msg, r, "'%s' is not a market (no market.jws)",
			    dir);
	if (r < 0)
		return msgf(msg, r, "cannot read '%s/market.jws': %s", dir,
			    strerror(-r));
	r = market_info_parse(buf, len, NULL, &m->info);
	free(buf);
	if (r < 0)
		return msgf(msg, r, "'%s/market.jws': %s", dir,
			    market_strerror(r));
	market_fingerprint(m->info->sign_pk, m->kid);

	r = keys_dir_for(keys_dir, m->info->id, &m->keys_dir);
	if (r < 0) {
		op_close(m);
		return msgf(msg, r, "cannot find the market's keys directory"
			    " (use --keys-dir)");
	}

	path = path_join(m->keys_dir, SIGNING_KEY_FILE);
	r = path ? sign_key_read(path, m->sign_sk) : -ENOMEM;
	if (r == 0)
		r = cipher_ed25519_public(m->sign_sk, pk);
	if (r == 0 && !cipher_memeq(pk, m->info->sign_pk, 32))
		r = -EKEYREJECTED;
	if (r < 0) {
		msgf(msg, r, "cannot use signing key '%s': %s",
		     path ? path : SIGNING_KEY_FILE,
		     r == -EKEYREJECTED ? "not this market's key" :
		     strerror(-r));
		free(path);
		op_close(m);
		return r;
	}
	free(path);

	path = path_join(m->keys_dir, C4GH_SEC_FILE);
	r = path ? c4gh_seckey_read_file(path, NULL, 0, m->c4gh_sk) : -ENOMEM;
	if (r == 0)
		r = cipher_x25519_public(m->c4gh_sk, pk);
	if (r == 0 && !cipher_memeq(pk, m->info->c4gh_pk, 32))
		r = -EKEYREJECTED;
	if (r < 0) {
		msgf(msg, r, "cannot use Crypt4GH key '%s': %s",
		     path ? path : C4GH_SEC_FILE,
		     r == -EKEYREJECTED ? "not this market's key" :
		     c4gh_strerror(r));
		free(path);
		op_close(m);
		return r;
	}
	free(path);
	return 0;
}

/* ---- documents ---- */

static int write_catalog(const struct op_market *m,
			 const struct market_catalog *cat,
			 const struct market_listing *update)
{
	json_t *pl, *arr;
	size_t i = 0, n = cat ? cat->ndatasets : 0;
	int done = 0;

	arr = json_array();
	if (!arr)
		return -ENOMEM;
	/* Merge update into the sorted list, replacing its old entry. */
	for (;;) {
		const struct market_listing *l = NULL;

		if (i < n && update && !done) {
			int c = strcmp(cat->datasets[i].id, update->id);

			if (c < 0) {
				l = &cat->datasets[i++];
			} else {
				l = update;
				done = 1;
				if (c == 0)
					i++;
			}
		} else if (i < n) {
			l = &cat->datasets[i++];
		} else if (update && !done) {
			l = update;
			done = 1;
		} else {
			break;
		}
		if (json_array_append_new(arr, json_pack(
			"{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s}",
			"id", l->id, "title", l->title,
			"provider", l->provider,
			"description", l->description, "price", l->price,
			"latest_version", l->latest_version,
			"files", (json_int_t)l->nfiles,
			"size", (json_int_t)l->size, "terms", l->terms)) != 0) {
			json_decref(arr);
			return -ENOMEM;
		}
	}
	pl = json_pack("{s:s, s:o, s:o}", "market", m->info->id,
		       "issued", json_time(timeutil_now()), "datasets", arr);
	if (!pl)
		return -ENOMEM;
	return write_doc(m, "catalog.jws", pl, MARKET_TYPE_CATALOG);
}

static int write_revocations(const struct op_market *m, uint64_t version,
			     char **ids, size_t nids, int64_t validity)
{
	int64_t now = timeutil_now();
	json_t *pl, *arr = json_array();

	if (!arr)
		return -ENOMEM;
	for (size_t i = 0; i < nids; i++)
		if (json_array_append_new(arr, json_string(ids[i])) != 0) {
			json_decref(arr);
			return -ENOMEM;
		}
	pl = json_pack("{s:s, s:I, s:o, s:o, s:o}", "market", m->info->id,
		       "version", (json_int_t)version,
		       "issued", json_time(now),
		       "next_update", json_time(now + validity),
		       "revoked", arr);
	if (!pl)
		return -ENOMEM;
	return write_doc(m, "revocations.jws", pl, MARKET_TYPE_REVOCATIONS);
}

static int load_catalog(const struct op_market *m,
			struct market_catalog **ret)
{
	char *buf;
	size_t len;
	int r = read_doc(m->dir, "catalog.jws", &buf, &len);

	if (r < 0)
		return r;
	r = market_catalog_parse(buf, len, m->info->sign_pk, ret);
	free(buf);
	return r;
}

static int load_revocations(const struct op_market *m,
			    struct market_revocations **ret)
{
	char *buf;
	size_t len;
	int r = read_doc(m->dir, "revocations.jws", &buf, &len);

	if (r < 0)
		return r;
	r = market_revocations_parse(buf, len, m->info->sign_pk, ret);
	free(buf);
	return r;
}

static int load_manifest(const struct op_market *m, const char *dataset,
			 const char *version, struct market_manifest **ret)
{
	char *rel, *buf;
	size_t len;
	int r;

	r = market_path_manifest(dataset, version, &rel);
	if (r < 0)
		return r;
	r = read_doc(m->dir, rel, &buf, &len);
	free(rel);
	if (r < 0)
		return r;
	r = market_manifest_parse(buf, len, m->info->sign_pk, ret);
	free(buf);
	return r;
}

/* ---- init ---- */

/* Is child (an existing path) inside or equal to parent? */
static int path_is_inside(const char *child, const char *parent)
{
	char *c = realpath(child, NULL), *p = realpath(parent, NULL);
	int inside = 0;

	if (c && p) {
		size_t n = strlen(p);

		inside = !strncmp(c, p, n) &&
			 (c[n] == '\0' || c[n] == '/' || n == 1);
	}
	free(c);
	free(p);
	return inside;
}

int operator_market_init(const struct operator_init *opt,
			 char ret_msg[OPERATOR_MSG_LEN])
{
	struct op_market m = { .dir = opt->dir };
	struct market_info info = { 0 };
	uint8_t c4gh_pk[32];
	char id[33], *path = NULL, *base = NULL;
	const char *name = opt->name;
	json_t *pl;
	int r;

	if (!opt->dir || !*opt->dir)
		return msgf(ret_msg, -EINVAL, "no market directory given");
	if (name && (!*name || strlen(name) > 256 || !text_is_clean(name)))
		return msgf(ret_msg, -EINVAL, "invalid market name");
	path = path_join(opt->dir, "market.jws");
	if (!path)
		return -ENOMEM;
	if (file_exists(path)) {
		free(path);
		return msgf(ret_msg, -EEXIST, "'%s' already holds a market",
			    opt->dir);
	}
	free(path);
	path = NULL;

	r = random_id(id);
	if (r < 0)
		return msgf(ret_msg, r, "cannot get random bytes");
	r = keys_dir_for(opt->keys_dir, id, &m.keys_dir);
	if (r < 0)
		return msgf(ret_msg, r, "cannot choose a keys directory"
			    " (set HOME or use --keys-dir)");

	r = util_mkdir_p(opt->dir, 0755);
	if (r < 0) {
		msgf(ret_msg, r, "cannot create '%s': %s", opt->dir,
		     strerror(-r));
		goto out;
	}
	r = util_mkdir_p(m.keys_dir, 0700);
	if (r < 0) {
		msgf(ret_msg, r, "cannot create keys directory '%s': %s",
		     m.keys_dir, strerror(-r));
		goto out;
	}
	if (path_is_inside(m.keys_dir, opt->dir)) {
		r = msgf(ret_msg, -EINVAL, "keys directory '%s' is inside the"
			 " public market directory", m.keys_dir);
		goto out;
	}
	(void)chmod(m.keys_dir, 0700);

	/* The keys, each refused if one is already there. */
	r = cipher_ed25519_keypair(m.sign_sk, info.sign_pk);
	if (r == 0)
		r = cipher_x25519_keypair(m.c4gh_sk, c4gh_pk);
	if (r < 0) {
		msgf(ret_msg, r, "cannot make keys: %s", strerror(-r));
		goto out;
	}
	path = path_join(m.keys_dir, SIGNING_KEY_FILE);
	r = path ? sign_key_write(path, m.sign_sk) : -ENOMEM;
	if (r < 0) {
		msgf(ret_msg, r, "cannot write '%s': %s", path ? path : "",
		     r == -EEXIST ? "a key is already there" : strerror(-r));
		goto out;
	}
	free(path);
	path = path_join(m.keys_dir, C4GH_SEC_FILE);
	r = path ? c4gh_seckey_write_file(path, m.c4gh_sk, NULL, 0,
					  "marketfs market key") : -ENOMEM;
	if (r < 0) {
		msgf(ret_msg, r, "cannot write '%s': %s", path ? path : "",
		     r == -EEXIST ? "a key is already there" : strerror(-r));
		goto out;
	}
	free(path);
	path = path_join(m.keys_dir, C4GH_PUB_FILE);
	r = path ? c4gh_pubkey_write_file(path, c4gh_pk) : -ENOMEM;
	if (r < 0) {
		msgf(ret_msg, r, "cannot write '%s': %s", path ? path : "",
		     strerror(-r));
		goto out;
	}

	if (!name) {
		char *copy = strdup(opt->dir);
		char *slash;

		if (!copy) {
			r = -ENOMEM;
			goto out;
		}
		while (strlen(copy) > 1 && copy[strlen(copy) - 1] == '/')
			copy[strlen(copy) - 1] = '\0';
		slash = strrchr(copy, '/');
		base = strdup(slash && slash[1] ? slash + 1 : copy);
		free(copy);
		if (!base) {
			r = -ENOMEM;
			goto out;
		}
		if (!text_is_clean(base)) {
			r = msgf(ret_msg, -EINVAL, "the directory's name is"
				 " not valid UTF-8 text: use --name");
			goto out;
		}
		name = base;
	}

	/* The documents: description, empty catalog, empty revocations. */
	info.id = id;
	market_fingerprint(info.sign_pk, m.kid);
	m.info = &info;
	pl = json_pack("{s:s, s:s, s:o, s:o, s:o}", "id", id, "name", name,
		       "signing_key", json_key(info.sign_pk, B64_URL),
		       "c4gh_key", json_key(c4gh_pk, B64_STD),
		       "created", json_time(timeutil_now()));
	r = pl ? write_doc(&m, "market.jws", pl, MARKET_TYPE_INFO) : -ENOMEM;
	if (r == 0)
		r = write_catalog(&m, NULL, NULL);
	if (r == 0)
		r = write_revocations(&m, 1, NULL, 0, DAY);
	if (r < 0)
		msgf(ret_msg, r, "cannot write the market documents in '%s':"
		     " %s", opt->dir, strerror(-r));
	m.info = NULL;
out:
	free(base);
	free(path);
	op_close(&m);
	return r;
}

/* ---- publish ---- */

struct src_file {
	char *rel;			/* path in the dataset */
	char *abs;			/* where to read it */
	uint64_t size;
};

struct src_list {
	struct src_file *v;
	size_t n, cap;
	uint64_t total;
	char *root;			/* realpath of the source dir */
};

static void src_list_release(struct src_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].rel);
		free(l->v[i].abs);
	}
	free(l->v);
	free(l->root);
}

static int src_add(struct src_list *l, const char *rel, const char *abs,
		   uint64_t size)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct src_file *v;

		if (l->n >= SRC_FILES_MAX)
			return -E2BIG;
		v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n].rel = strdup(rel);
	l->v[l->n].abs = strdup(abs);
	l->v[l->n].size = size;
	l->n++;
	l->total += size;
	if (!l->v[l->n - 1].rel || !l->v[l->n - 1].abs)
		return -ENOMEM;
	return 0;
}

static int src_walk(struct src_list *l, const char *abs, const char *rel,
		    int depth, char *msg)
{
	struct dirent *de;
	DIR *d;
	int r = 0;

	if (depth > SRC_DEPTH_MAX)
		return msgf(msg, -ELOOP, "'%s' is nested too deeply", abs);
	d = opendir(abs);
	if (!d)
		return msgf(msg, -errno, "cannot read '%s': %s", abs,
			    strerror(errno));
	while (r == 0 && (errno = 0, de = readdir(d))) {
		char *a = NULL, *rl = NULL, *real = NULL;
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		a = path_join(abs, de->d_name);
		rl = *rel ? path_join(rel, de->d_name) : strdup(de->d_name);
		if (!a || !rl) {
			r = -ENOMEM;
			goto next;
		}
		if (!util_path_is_safe(rl) || strlen(rl) > 4000 ||
		    !text_is_clean(rl)) {
			r = msgf(msg, -EINVAL, "unsafe file name '%s'", rl);
			goto next;
		}
		if (lstat(a, &st) < 0) {
			r = msgf(msg, -errno, "cannot stat '%s': %s", a,
				 strerror(errno));
			goto next;
		}
		if (S_ISLNK(st.st_mode)) {
			/* Followed only when it stays inside the source. */
			real = realpath(a, NULL);
			if (!real || strncmp(real, l->root, strlen(l->root)) ||
			    real[strlen(l->root)] != '/') {
				r = msgf(msg, -EPERM, "symbolic link '%s'"
					 " leads outside the source directory",
					 rl);
				goto next;
			}
			if (stat(real, &st) < 0 || !S_ISREG(st.st_mode)) {
				r = msgf(msg, -EPERM, "symbolic link '%s'"
					 " is not to a regular file", rl);
				goto next;
			}
		}
		if (S_ISDIR(st.st_mode)) {
			r = src_walk(l, a, rl, depth + 1, msg);
		} else if (S_ISREG(st.st_mode)) {
			size_t n = strlen(rl);
			size_t s = strlen(MARKET_RESERVED_SUFFIX);

			if (n >= s && !strcmp(rl + n - s,
					      MARKET_RESERVED_SUFFIX)) {
				r = msgf(msg, -EINVAL, "file name '%s' ends in"
					 " the reserved '%s'", rl,
					 MARKET_RESERVED_SUFFIX);
				goto next;
			}
			r = src_add(l, rl, real ? real : a,
				    (uint64_t)st.st_size);
			if (r == -E2BIG)
				msgf(msg, r, "more than %u files",
				     SRC_FILES_MAX);
		} else {
			r = msgf(msg, -EINVAL, "'%s' is not a regular file",
				 rl);
		}
next:
		free(real);
		free(rl);
		free(a);
	}
	if (r == 0 && errno != 0)
		r = msgf(msg, -errno, "cannot read '%s': %s", abs,
			 strerror(errno));
	closedir(d);
	return r;
}

static int src_cmp(const void *a, const void *b)
{
	return strcmp(((const struct src_file *)a)->rel,
		      ((const struct src_file *)b)->rel);
}

/* The next version id of a dataset: v1, v2, ... */
static int next_version(const char *dsdir, char ret[64])
{
	unsigned long long max = 0;
	struct dirent *de;
	DIR *d = opendir(dsdir);

	if (d) {
		while ((de = readdir(d))) {
			const char *s = de->d_name;
			char *end;
			unsigned long long v;

			if (s[0] != 'v' || s[1] < '1' || s[1] > '9')
				continue;
			errno = 0;
			v = strtoull(s + 1, &end, 10);
			if (*end || errno)
				continue;
			if (v > max)
				max = v;
		}
		closedir(d);
	} else if (errno != ENOENT) {
		return -errno;
	}
	snprintf(ret, 64, "v%llu", max + 1);
	return 0;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read up to len bytes, short only at end of file. */
static ssize_t read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* What publishing one file produced, for its manifest entry. */
struct obj_result {
	uint64_t size;
	uint64_t header_len;
	uint64_t nsegments;
	uint8_t header_sha256[32];
	uint8_t data_sha256[32];
	uint8_t sums_sha256[32];
	uint8_t plain_sha256[32];
};

struct progress {
	operator_progress_fn fn;
	void *ctx;
	uint64_t done, total;
};

/*
 * Encrypt src into obj_path (header sealed to the market's key, one data
 * key) and write the digests of its ciphertext segments to sums_path,
 * in one pass.  Both files go through temporaries renamed at the end.
 */
static int publish_object(const struct op_market *m,
			  const struct src_file *src, const char *obj_path,
			  const char *sums_path, struct progress *pg,
			  struct obj_result *res, char *msg)
{
	uint8_t key[32], *hdr = NULL, *pt = NULL, *seg = NULL;
	uint8_t digest[32];
	struct cipher_sha256 *hd = NULL, *hs = NULL, *hp = NULL;
	char *obj_tmp = NULL, *sums_tmp = NULL;
	int in = -1, out = -1, sums = -1, r;
	size_t hlen = 0;
	struct stat st;

	memset(res, 0, sizeof(*res));
	pt = malloc(C4GH_SEGMENT_SIZE);
	seg = malloc(C4GH_CIPHER_SEGMENT);
	if (!pt || !seg || asprintf(&obj_tmp, "%s.tmp", obj_path) < 0 ||
	    asprintf(&sums_tmp, "%s.tmp", sums_path) < 0) {
		r = -ENOMEM;
		goto out;
	}

	in = open(src->abs, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (in < 0 || fstat(in, &st) < 0 || !S_ISREG(st.st_mode)) {
		r = msgf(msg, in < 0 ? -errno : -EINVAL, "cannot read '%s'",
			 src->rel);
		goto out;
	}
	out = open(obj_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	sums = open(sums_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0 || sums < 0) {
		r = msgf(msg, -errno, "cannot create '%s': %s", obj_tmp,
			 strerror(errno));
		goto out;
	}

	r = cipher_random(key, sizeof(key));
	if (r == 0)
		r = c4gh_header_build(m->c4gh_sk, &m->info->c4gh_pk, 1, key,
				      NULL, 0, &hdr, &hlen);
	if (r == 0)
		r = write_all(out, hdr, hlen);
	if (r == 0)
		r = cipher_sha256(hdr, hlen, res->header_sha256);
	if (r == 0)
		r = cipher_sha256_new(&hd);
	if (r == 0)
		r = cipher_sha256_new(&hs);
	if (r == 0)
		r = cipher_sha256_new(&hp);
	if (r < 0) {
		msgf(msg, r, "cannot encrypt '%s': %s", src->rel,
		     strerror(-r));
		goto out;
	}
	res->header_len = hlen;

	for (;;) {
		ssize_t n = read_full(in, pt, C4GH_SEGMENT_SIZE);
		size_t clen;

		if (n < 0) {
			r = msgf(msg, (int)n, "cannot read '%s': %s",
				 src->rel, strerror((int)-n));
			goto out;
		}
		if (n == 0)
			break;
		clen = (size_t)n + C4GH_SEGMENT_OVERHEAD;
		r = c4gh_segment_encrypt(key, pt, (size_t)n, seg);
		if (r == 0)
			r = cipher_sha256_update(hp, pt, (size_t)n);
		if (r == 0)
			r = cipher_sha256_update(hd, seg, clen);
		if (r == 0)
			r = cipher_sha256(seg, clen, digest);
		if (r == 0)
			r = cipher_sha256_update(hs, digest, sizeof(digest));
		if (r == 0)
			r = write_all(sums, digest, sizeof(digest));
		if (r == 0)
			r = write_all(out, seg, clen);
		if (r < 0) {
			msgf(msg, r, "cannot encrypt '%s': %s", src->rel,
			     strerror(-r));
			goto out;
		}
		res->size += (uint64_t)n;
		res->nsegments++;
		pg->done += (uint64_t)n;
		if (pg->fn)
			pg->fn(pg->ctx, pg->done, pg->total);
		if ((size_t)n < C4GH_SEGMENT_SIZE)
			break;
	}
	if (res->size != (uint64_t)st.st_size || res->size != src->size) {
		r = msgf(msg, -EAGAIN, "'%s' changed while it was published",
			 src->rel);
		goto out;
	}

	r = cipher_sha256_final(hd, res->data_sha256);
	hd = NULL;
	if (r == 0)
		r = cipher_sha256_final(hs, res->sums_sha256);
	hs = NULL;
	if (r == 0)
		r = cipher_sha256_final(hp, res->plain_sha256);
	hp = NULL;
	if (r == 0 && (fsync(out) < 0 || fsync(sums) < 0))
		r = -errno;
	if (close(out) < 0 && r == 0)
		r = -EIO;
	if (close(sums) < 0 && r == 0)
		r = -EIO;
	out = sums = -1;
	if (r == 0 && (rename(obj_tmp, obj_path) < 0 ||
		       rename(sums_tmp, sums_path) < 0))
		r = -errno;
	if (r < 0)
		msgf(msg, r, "cannot write '%s': %s", obj_path, strerror(-r));
out:
	cipher_wipe(key, sizeof(key));
	if (pt)
		cipher_wipe(pt, C4GH_SEGMENT_SIZE);
	cipher_sha256_free(hd);
	cipher_sha256_free(hs);
	cipher_sha256_free(hp);
	if (out >= 0)
		close(out);
	if (sums >= 0)
		close(sums);
	if (in >= 0)
		close(in);
	if (r < 0 && obj_tmp) {
		unlink(obj_tmp);
		unlink(sums_tmp);
	}
	free(obj_tmp);
	free(sums_tmp);
	free(hdr);
	free(pt);
	free(seg);
	return r;
}

/* Remove a half-published version directory (best effort). */
static void remove_version(const char *vdir, size_t nobjects)
{
	char *p;

	for (size_t i = 1; i <= nobjects; i++) {
		if (asprintf(&p, "%s/objects/%06zu.c4gh", vdir, i) >= 0) {
			unlink(p);
			free(p);
		}
		if (asprintf(&p, "%s/objects/%06zu.sums", vdir, i) >= 0) {
			unlink(p);
			free(p);
		}
	}
	if (asprintf(&p, "%s/objects", vdir) >= 0) {
		rmdir(p);
		free(p);
	}
	rmdir(vdir);
}

static int write_facts(const struct op_market *m, const char *dataset,
		       const char *version, json_t *files)
{
	char *dir = NULL, *path = NULL, *text = NULL;
	json_t *doc;
	int r;

	doc = json_pack("{s:s, s:s, s:O}", "dataset", dataset,
			"version", version, "files", files);
	if (!doc)
		return -ENOMEM;
	if (asprintf(&dir, "%s/facts/%s", m->keys_dir, dataset) < 0 ||
	    asprintf(&path, "%s/%s.json", dir, version) < 0) {
		r = -ENOMEM;
		goto out;
	}
	text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text) {
		r = -ENOMEM;
		goto out;
	}
	r = util_mkdir_p(dir, 0700);
	if (r == 0)
		r = util_write_file_atomic(path, text, strlen(text), 0600);
out:
	free(text);
	free(path);
	free(dir);
	json_decref(doc);
	return r;
}

int operator_publish(const struct operator_publish *opt, char ret_version[64],
		     char ret_msg[OPERATOR_MSG_LEN])
{
	struct op_market m;
	struct src_list src = { 0 };
	struct market_catalog *cat = NULL;
	struct market_listing listing = { 0 };
	const struct market_listing *old = NULL;
	struct progress pg = { opt->progress, opt->progress_ctx, 0, 0 };
	char version[64], *dsdir = NULL, *vdir = NULL, *objdir = NULL;
	char *rel = NULL;
	json_t *files = NULL, *facts = NULL, *pl;
	size_t published = 0;
	int r;

	ret_version[0] = '\0';
	if (!market_id_is_valid(opt->dataset))
		return msgf(ret_msg, -EINVAL, "invalid dataset id '%s'"
			    " (lower-case letters, digits, '.', '_', '-')",
			    opt->dataset ? opt->dataset : "");
	{
		const char *texts[] = { opt->title, opt->description,
					opt->price, opt->provider,
					opt->policy };

		for (size_t i = 0; i < 5; i++)
			if (texts[i] && !text_is_clean(texts[i]))
				return msgf(ret_msg, -EINVAL, "'%s' is not"
					    " valid UTF-8 text", texts[i]);
		if (opt->policy && !market_id_is_valid(opt->policy))
			return msgf(ret_msg, -EINVAL, "invalid policy name"
				    " '%s'", opt->policy);
	}
	r = op_open(opt->dir, opt->keys_dir, &m, ret_msg);
	if (r < 0)
		return r;

	/* The source files, sorted, every one checked before any work. */
	src.root = realpath(opt->srcdir, NULL);
	if (!src.root) {
		r = msgf(ret_msg, -errno, "cannot open '%s': %s", opt->srcdir,
			 strerror(errno));
		goto out;
	}
	r = src_walk(&src, src.root, "", 0, ret_msg);
	if (r < 0)
		goto out;
	if (src.n == 0) {
		r = msgf(ret_msg, -ENOENT, "no files in '%s'", opt->srcdir);
		goto out;
	}
	qsort(src.v, src.n, sizeof(*src.v), src_cmp);
	pg.total = src.total;

	r = load_catalog(&m, &cat);
	if (r < 0) {
		msgf(ret_msg, r, "cannot read '%s/catalog.jws': %s", m.dir,
		     market_strerror(r));
		goto out;
	}

	if (asprintf(&dsdir, "%s/datasets/%s", m.dir, opt->dataset) < 0) {
		r = -ENOMEM;
		goto out;
	}
	r = next_version(dsdir, version);
	if (r < 0) {
		msgf(ret_msg, r, "cannot read '%s': %s", dsdir, strerror(-r));
		goto out;
	}
	if (asprintf(&vdir, "%s/%s", dsdir, version) < 0 ||
	    asprintf(&objdir, "%s/objects", vdir) < 0) {
		r = -ENOMEM;
		goto out;
	}
	r = util_mkdir_p(dsdir, 0755);
	if (r == 0 && mkdir(vdir, 0755) < 0)
		r = -errno;
	if (r == 0 && mkdir(objdir, 0755) < 0)
		r = -errno;
	if (r < 0) {
		msgf(ret_msg, r, "cannot create '%s': %s", vdir,
		     strerror(-r));
		goto out;
	}

	files = json_array();
	facts = json_object();
	if (!files || !facts) {
		r = -ENOMEM;
		goto out_remove;
	}
	for (size_t i = 0; i < src.n; i++) {
		struct obj_result res;
		char *obj = NULL, *sums = NULL, *obj_abs = NULL;
		char *sums_abs = NULL, h1[65], h2[65], h3[65], h4[65];

		if (asprintf(&obj, "datasets/%s/%s/objects/%06zu.c4gh",
			     opt->dataset, version, i + 1) < 0 ||
		    asprintf(&sums, "datasets/%s/%s/objects/%06zu.sums",
			     opt->dataset, version, i + 1) < 0 ||
		    !(obj_abs = path_join(m.dir, obj)) ||
		    !(sums_abs = path_join(m.dir, sums))) {
			r = -ENOMEM;
		} else {
			r = publish_object(&m, &src.v[i], obj_abs, sums_abs,
					   &pg, &res, ret_msg);
			published = i + 1;
		}
		if (r == 0 && json_array_append_new(files, json_pack(
			"{s:s, s:I, s:s, s:I, s:I, s:s, s:I, s:s, s:s, s:s}",
			"path", src.v[i].rel, "size", (json_int_t)res.size,
			"object", obj, "header_len",
			(json_int_t)res.header_len,
			"data_len", (json_int_t)c4gh_cipher_size(res.size),
			"header_sha256", hex32(res.header_sha256, h1),
			"segments", (json_int_t)res.nsegments,
			"sums", sums,
			"sums_sha256", hex32(res.sums_sha256, h2),
			"data_sha256", hex32(res.data_sha256, h3))) != 0)
			r = -ENOMEM;
		if (r == 0 && json_object_set_new(facts, src.v[i].rel,
			json_pack("{s:s}", "sha256",
				  hex32(res.plain_sha256, h4))) != 0)
			r = -ENOMEM;
		free(obj);
		free(sums);
		free(obj_abs);
		free(sums_abs);
		if (r < 0)
			goto out_remove;
	}

	/* Private facts before the public manifest: a grant needs them. */
	r = write_facts(&m, opt->dataset, version, facts);
	if (r < 0) {
		msgf(ret_msg, r, "cannot write plaintext digests to '%s': %s",
		     m.keys_dir, strerror(-r));
		goto out_remove;
	}
	r = market_path_manifest(opt->dataset, version, &rel);
	if (r < 0)
		goto out_remove;
	pl = json_pack("{s:s, s:s, s:s, s:o, s:O}", "market", m.info->id,
		       "dataset", opt->dataset, "version", version,
		       "created", json_time(timeutil_now()), "files", files);
	r = pl ? write_doc(&m, rel, pl, MARKET_TYPE_MANIFEST) : -ENOMEM;
	if (r < 0) {
		msgf(ret_msg, r, "cannot write the manifest: %s",
		     strerror(-r));
		goto out_remove;
	}

	/* The listing: options given win, else what was listed before. */
	for (size_t i = 0; i < cat->ndatasets; i++)
		if (!strcmp(cat->datasets[i].id, opt->dataset))
			old = &cat->datasets[i];
	listing.id = (char *)opt->dataset;
	listing.title = (char *)(opt->title ? opt->title :
				 old ? old->title : opt->dataset);
	listing.provider = (char *)(opt->provider ? opt->provider :
				    old ? old->provider : m.info->name);
	listing.description = (char *)(opt->description ? opt->description :
				       old ? old->description : "");
	listing.price = (char *)(opt->price ? opt->price :
				 old ? old->price : "");
	listing.terms = (char *)(opt->policy ? opt->policy :
				 old ? old->terms : DEFAULT_POLICY);
	listing.latest_version = version;
	listing.nfiles = src.n;
	listing.size = src.total;
	r = write_catalog(&m, cat, &listing);
	if (r < 0) {
		msgf(ret_msg, r, "cannot write the catalog: %s",
		     strerror(-r));
		goto out;
	}
	snprintf(ret_version, 64, "%s", version);
	goto out;

out_remove:
	remove_version(vdir, published);
out:
	json_decref(files);
	json_decref(facts);
	free(rel);
	free(objdir);
	free(vdir);
	free(dsdir);
	market_catalog_free(cat);
	src_list_release(&src);
	op_close(&m);
	return r;
}

/* ---- grant ---- */

struct policy {
	char *name;
	int64_t duration;		/* seconds */
	const char *on_end;		/* "finish" or "cut" */
	uint64_t offline_grace;
	uint64_t seats;
	char *terms;
};

static void policy_release(struct policy *p)
{
	free(p->name);
	free(p->terms);
}

/* Find a template: a path as given, or NAME.json in the search dirs. */
static int policy_find(const char *name, const char *dir, char **ret_path)
{
	const char *dirs[4];
	size_t n = strlen(name);

	*ret_path = NULL;
	if (strchr(name, '/') || (n > 5 && !strcmp(name + n - 5, ".json"))) {
		*ret_path = strdup(name);
		return *ret_path ? 0 : -ENOMEM;
	}
	if (!market_id_is_valid(name))
		return -EINVAL;
	dirs[0] = dir;
	dirs[1] = getenv("MARKETFS_POLICIES");
	dirs[2] = MARKETFS_POLICIES_DIR;
	dirs[3] = MARKETFS_SOURCE_POLICIES_DIR;
	for (size_t i = 0; i < 4; i++) {
		char *p;

		if (!dirs[i] || !*dirs[i])
			continue;
		if (asprintf(&p, "%s/%s.json", dirs[i], name) < 0)
			return -ENOMEM;
		if (access(p, R_OK) == 0) {
			*ret_path = p;
			return 0;
		}
		free(p);
	}
	return -ENOENT;
}

static int policy_load(const char *name, const char *dir, struct policy *p,
		       char *msg)
{
	static const char *const members[] = {
		"name", "title", "duration_days", "on_end",
		"offline_grace_seconds", "seats", "terms",
	};
	json_error_t jerr;
	json_t *j = NULL, *v;
	char *path = NULL, *buf = NULL;
	size_t len;
	json_int_t days, grace, seats;
	int r;

	memset(p, 0, sizeof(*p));
	r = policy_find(name, dir, &path);
	if (r < 0)
		return msgf(msg, r, "no licence policy template '%s'", name);
	r = util_read_file(path, POLICY_MAX, &buf, &len);
	if (r < 0) {
		msgf(msg, r, "cannot read policy '%s': %s", path,
		     strerror(-r));
		goto out;
	}
	j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	r = -EINVAL;
	if (!json_is_object(j) || json_object_size(j) != 7) {
		msgf(msg, r, "policy '%s': not a template with exactly the"
		     " members name, title, duration_days, on_end,"
		     " offline_grace_seconds, seats, terms", path);
		goto out;
	}
	for (size_t i = 0; i < 7; i++)
		if (!json_object_get(j, members[i])) {
			msgf(msg, r, "policy '%s': no '%s'", path,
			     members[i]);
			goto out;
		}
	v = json_object_get(j, "on_end");
	p->on_end = json_string_value(v);
	days = json_integer_value(json_object_get(j, "duration_days"));
	grace = json_integer_value(json_object_get(j,
						   "offline_grace_seconds"));
	seats = json_integer_value(json_object_get(j, "seats"));
	if (!json_is_string(json_object_get(j, "name")) ||
	    !json_is_string(json_object_get(j, "title")) ||
	    !json_is_string(json_object_get(j, "terms")) ||
	    !json_is_integer(json_object_get(j, "duration_days")) ||
	    !json_is_integer(json_object_get(j, "offline_grace_seconds")) ||
	    !json_is_integer(json_object_get(j, "seats")) ||
	    !p->on_end || (strcmp(p->on_end, "finish") &&
			   strcmp(p->on_end, "cut")) ||
	    days < 1 || days > 36600 || grace < 0 || grace > 10 * 365 * DAY ||
	    seats < 0 || seats > UINT32_MAX ||
	    !market_id_is_valid(json_string_value(json_object_get(j,
								  "name"))) ||
	    json_string_length(json_object_get(j, "terms")) == 0 ||
	    !text_is_clean(json_string_value(json_object_get(j, "terms"))) ||
	    strlen(json_string_value(json_object_get(j, "terms"))) !=
	    json_string_length(json_object_get(j, "terms"))) {
		msgf(msg, r, "policy '%s': a member has a wrong type or"
		     " value", path);
		goto out;
	}
	p->on_end = !strcmp(p->on_end, "cut") ? "cut" : "finish";
	p->name = strdup(json_string_value(json_object_get(j, "name")));
	p->terms = strdup(json_string_value(json_object_get(j, "terms")));
	p->duration = (int64_t)days * DAY;
	p->offline_grace = (uint64_t)grace;
	p->seats = (uint64_t)seats;
	r = p->name && p->terms ? 0 : -ENOMEM;
out:
	if (r < 0)
		policy_release(p);
	json_decref(j);
	free(buf);
	free(path);
	return r;
}

static int parse_time_opt(const char *s, const char *what, int64_t *ret,
			  char *msg)
{
	if (timeutil_parse(s, ret) < 0)
		return msgf(msg, -EINVAL, "invalid %s time '%s' (want"
			    " YYYY-MM-DDTHH:MM:SSZ)", what, s);
	return 0;
}

/* Read len bytes at the start of dir/rel. */
static int read_prefix(const char *dir, const char *rel, size_t len,
		       uint8_t **ret)
{
	char *path = path_join(dir, rel);
	uint8_t *buf;
	ssize_t n;
	int fd;

	*ret = NULL;
	if (!path)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return -errno;
	buf = malloc(len ? len : 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	n = read_full(fd, buf, len);
	close(fd);
	if (n < 0 || (size_t)n != len) {
		free(buf);
		return n < 0 ? (int)n : -EBADMSG;
	}
	*ret = buf;
	return 0;
}

/* The licensee's header for each manifest file, re-wrapped. */
static int grant_headers(const struct op_market *m,
			 const struct market_manifest *man,
			 const uint8_t licensee[32], json_t **ret,
			 char *msg)
{
	json_t *arr = json_array();
	int r = 0;

	*ret = NULL;
	if (!arr)
		return -ENOMEM;
	for (size_t i = 0; i < man->nfiles && r == 0; i++) {
		const struct market_file *f = &man->files[i];
		uint8_t *hdr = NULL, *out = NULL, d[32];
		size_t outlen = 0;
		char *b64 = NULL;

		if (!strncmp(f->object, "https://", 8)) {
			r = msgf(msg, -EOPNOTSUPP, "object of '%s' is not in"
				 " the market directory", f->path);
			break;
		}
		r = read_prefix(m->dir, f->object, f->header_len, &hdr);
		if (r == 0)
			r = cipher_sha256(hdr, f->header_len, d);
		if (r == 0 && !cipher_memeq(d, f->header_sha256, 32))
			r = -EBADMSG;
		if (r < 0) {
			msgf(msg, r, "header of '%s' does not match its"
			     " manifest", f->path);
			free(hdr);
			break;
		}
		r = c4gh_header_reencrypt(hdr, f->header_len, m->c4gh_sk,
					  m->c4gh_sk, (const uint8_t (*)[32])
					  licensee, 1, &out, &outlen);
		free(hdr);
		if (r < 0) {
			msgf(msg, r, "cannot re-wrap the header of '%s': %s",
			     f->path, c4gh_strerror(r));
			break;
		}
		r = b64_encode(out, outlen, B64_STD, &b64);
		free(out);
		if (r == 0 && json_array_append_new(arr, json_pack(
			"{s:s, s:s}", "path", f->path, "header", b64)) != 0)
			r = -ENOMEM;
		free(b64);
	}
	if (r < 0) {
		json_decref(arr);
		return r;
	}
	*ret = arr;
	return 0;
}

/* The plaintext digests of the version, sealed for the licensee. */
static int grant_facts(const struct op_market *m,
		       const struct market_manifest *man,
		       const uint8_t licensee[32], char **ret_b64,
		       char *msg)
{
	char *path = NULL, *buf = NULL, *text = NULL;
	json_t *doc = NULL, *files, *out = NULL, *wrap;
	json_error_t jerr;
	size_t len;
	uint8_t *sealed = NULL;
	struct stat st;
	int in = -1, fd = -1, r;

	*ret_b64 = NULL;
	if (asprintf(&path, "%s/facts/%s/%s.json", m->keys_dir, man->dataset,
		     man->version) < 0)
		return -ENOMEM;
	r = util_read_file(path, FACTS_MAX, &buf, &len);
	if (r < 0) {
		msgf(msg, r, "cannot read plaintext digests '%s': %s", path,
		     strerror(-r));
		goto out;
	}
	doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	files = json_object_get(doc, "files");
	out = json_object();
	if (!json_is_object(files) || !out) {
		r = msgf(msg, -EBADMSG, "'%s' is malformed", path);
		goto out;
	}
	for (size_t i = 0; i < man->nfiles; i++) {
		json_t *e = json_object_get(files, man->files[i].path);
		json_t *h = json_object_get(e, "sha256");

		if (!json_is_string(h) || json_string_length(h) != 64) {
			r = msgf(msg, -EBADMSG, "'%s' has no digest for '%s'",
				 path, man->files[i].path);
			goto out;
		}
		if (json_object_set_new(out, man->files[i].path, json_pack(
			"{s:s}", "sha256", json_string_value(h))) != 0) {
			r = -ENOMEM;
			goto out;
		}
	}
	wrap = json_pack("{s:O}", "files", out);
	text = wrap ? json_dumps(wrap, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(wrap);
	if (!text) {
		r = -ENOMEM;
		goto out;
	}

	/* Through memory files: the facts never touch the disk in clear. */
	in = memfd_create("marketfs-facts", MFD_CLOEXEC);
	fd = memfd_create("marketfs-facts-sealed", MFD_CLOEXEC);
	if (in < 0 || fd < 0) {
		r = msgf(msg, -errno, "memfd_create: %s", strerror(errno));
		goto out;
	}
	r = write_all(in, text, strlen(text));
	if (r == 0 && lseek(in, 0, SEEK_SET) < 0)
		r = -errno;
	if (r == 0)
		r = c4gh_encrypt_fd(in, fd, m->c4gh_sk,
				    (const uint8_t (*)[32])licensee, 1, NULL,
				    NULL);
	if (r == 0 && fstat(fd, &st) < 0)
		r = -errno;
	if (r == 0 && (sealed = malloc((size_t)st.st_size + 1)) == NULL)
		r = -ENOMEM;
	if (r == 0 && pread(fd, sealed, (size_t)st.st_size, 0) !=
		      st.st_size)
		r = -EIO;
	if (r == 0)
		r = b64_encode(sealed, (size_t)st.st_size, B64_STD, ret_b64);
	if (r < 0)
		msgf(msg, r, "cannot seal plaintext digests: %s",
		     c4gh_strerror(r));
out:
	if (in >= 0)
		close(in);
	if (fd >= 0)
		close(fd);
	free(sealed);
	free(text);
	json_decref(out);
	json_decref(doc);
	free(buf);
	free(path);
	return r;
}

/* The licensee's index and the highest serial for this dataset. */
static int load_index(const struct op_market *m, const uint8_t licensee[32],
		      const char *dataset, struct market_index **ret_idx,
		      uint64_t *ret_serial)
{
	struct market_index *idx = NULL;
	char *rel = NULL, *buf = NULL;
	size_t len;
	uint64_t serial = 0;
	int r;

	*ret_idx = NULL;
	*ret_serial = 0;
	r = market_path_index(licensee, &rel);
	if (r < 0)
		return r;
	r = read_doc(m->dir, rel, &buf, &len);
	free(rel);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	r = market_index_parse(buf, len, m->info->sign_pk, &idx);
	free(buf);
	if (r < 0)
		return r;
	for (size_t i = 0; i < idx->nids; i++) {
		struct market_licence *l = NULL;

		r = market_path_licence(licensee, idx->ids[i], &rel);
		if (r == 0)
			r = read_doc(m->dir, rel, &buf, &len);
		free(rel);
		if (r < 0) {
			market_index_free(idx);
			return r;
		}
		r = market_licence_parse(buf, len, m->info->sign_pk, &l);
		free(buf);
		if (r < 0) {
			market_index_free(idx);
			return r;
		}
		if (!strcmp(l->dataset, dataset) && l->serial > serial)
			serial = l->serial;
		market_licence_free(l);
	}
	*ret_idx = idx;
	*ret_serial = serial;
	return 0;
}

int operator_grant(const struct operator_grant *opt, char ret_id[64],
		   char ret_msg[OPERATOR_MSG_LEN])
{
	struct op_market m;
	struct policy pol = { 0 };
	struct market_catalog *cat = NULL;
	struct market_manifest *man = NULL;
	struct market_index *idx = NULL;
	uint8_t licensee[32];
	char id[33], fp[MARKET_FP_LEN], h[65], *version = NULL;
	char *rel = NULL, *dir = NULL, *facts = NULL;
	json_t *headers = NULL, *pl, *ids, *dss;
	int64_t now = timeutil_now(), not_before, expires;
	uint64_t serial = 0;
	int r;

	ret_id[0] = '\0';
	if (opt->ret_window_past)
		*opt->ret_window_past = 0;
	if (!market_id_is_valid(opt->dataset))
		return msgf(ret_msg, -EINVAL, "invalid dataset id '%s'",
			    opt->dataset ? opt->dataset : "");
	if (opt->version && !market_id_is_valid(opt->version))
		return msgf(ret_msg, -EINVAL, "invalid version '%s'",
			    opt->version);
	if (!opt->to_pubkey_file)
		return msgf(ret_msg, -EINVAL, "no licensee key given");
	r = c4gh_pubkey_read_file(opt->to_pubkey_file, licensee);
	if (r < 0)
		return msgf(ret_msg, r, "cannot read public key '%s': %s",
			    opt->to_pubkey_file, r == -ENOENT ?
			    strerror(ENOENT) : c4gh_strerror(r));

	not_before = now;
	if (opt->not_before) {
		r = parse_time_opt(opt->not_before, "not-before", &not_before,
				   ret_msg);
		if (r < 0)
			return r;
	}
	r = policy_load(opt->policy ? opt->policy : DEFAULT_POLICY,
			opt->policies_dir, &pol, ret_msg);
	if (r < 0)
		return r;
	expires = not_before + pol.duration;
	if (opt->expires) {
		r = parse_time_opt(opt->expires, "expiry", &expires, ret_msg);
		if (r < 0)
			goto out_policy;
	}
	if (expires <= not_before) {
		r = msgf(ret_msg, -EINVAL, "the licence would expire before"
			 " it starts");
		goto out_policy;
	}

	r = op_open(opt->dir, opt->keys_dir, &m, ret_msg);
	if (r < 0)
		goto out_policy;

	if (opt->version) {
		version = strdup(opt->version);
	} else {
		r = load_catalog(&m, &cat);
		if (r < 0) {
			msgf(ret_msg, r, "cannot read the catalog: %s",
			     market_strerror(r));
			goto out;
		}
		for (size_t i = 0; i < cat->ndatasets; i++)
			if (!strcmp(cat->datasets[i].id, opt->dataset))
				version = strdup(
					cat->datasets[i].latest_version);
		if (!version) {
			r = msgf(ret_msg, -ENOENT, "no dataset '%s' in the"
				 " catalog", opt->dataset);
			goto out;
		}
	}
	if (!version) {
		r = -ENOMEM;
		goto out;
	}
	r = load_manifest(&m, opt->dataset, version, &man);
	if (r < 0) {
		msgf(ret_msg, r, "no usable manifest for '%s' version '%s':"
		     " %s", opt->dataset, version, r == -ENOENT ?
		     "not published" : market_strerror(r));
		goto out;
	}

	r = grant_headers(&m, man, licensee, &headers, ret_msg);
	if (r < 0)
		goto out;
	r = grant_facts(&m, man, licensee, &facts, ret_msg);
	if (r < 0)
		goto out;
	r = load_index(&m, licensee, opt->dataset, &idx, &serial);
	if (r < 0) {
		msgf(ret_msg, r, "cannot read the licensee's earlier"
		     " licences: %s", market_strerror(r));
		goto out;
	}

	r = random_id(id);
	if (r < 0)
		goto out;
	market_fingerprint(licensee, fp);
	if (asprintf(&dir, "%s/licences/%s", m.dir, fp) < 0) {
		r = -ENOMEM;
		goto out;
	}
	r = util_mkdir_p(dir, 0755);
	if (r < 0) {
		msgf(ret_msg, r, "cannot create '%s': %s", dir, strerror(-r));
		goto out;
	}

	pl = json_pack("{s:s, s:s, s:o, s:s, s:s, s:s, s:o, s:o, s:o, s:I,"
		       " s:s, s:s, s:s, s:I, s:I, s:O, s:s}",
		       "id", id, "market", m.info->id,
		       "licensee", json_key(licensee, B64_STD),
		       "dataset", man->dataset, "version", man->version,
		       "manifest_sha256", hex32(man->digest, h),
		       "issued", json_time(now),
		       "not_before", json_time(not_before),
		       "expires", json_time(expires),
		       "serial", (json_int_t)(serial + 1),
		       "policy", pol.name, "terms", pol.terms,
		       "on_end", pol.on_end,
		       "offline_grace", (json_int_t)pol.offline_grace,
		       "seats", (json_int_t)pol.seats,
		       "headers", headers, "facts", facts);
	r = market_path_licence(licensee, id, &rel);
	if (r == 0)
		r = pl ? write_doc(&m, rel, pl, MARKET_TYPE_LICENCE) : -ENOMEM;
	if (r < 0) {
		msgf(ret_msg, r, "cannot write the licence: %s",
		     strerror(-r));
		goto out;
	}

	/* Then the index that lets the licensee find it. */
	ids = json_array();
	dss = json_array();
	for (size_t i = 0; ids && dss && idx && i < idx->nids; i++) {
		json_array_append_new(ids, json_string(idx->ids[i]));
		json_array_append_new(dss, json_string(idx->datasets[i]));
	}
	if (ids && dss) {
		json_array_append_new(ids, json_string(id));
		json_array_append_new(dss, json_string(man->dataset));
	}
	free(rel);
	rel = NULL;
	r = market_path_index(licensee, &rel);
	pl = ids && dss ? json_pack("{s:o, s:o, s:o}", "licensee",
				    json_key(licensee, B64_STD),
				    "licences", ids, "datasets", dss) :
		   NULL;
	if (!ids || !dss) {	/* json_pack() took them otherwise */
		json_decref(ids);
		json_decref(dss);
	}
	if (r == 0)
		r = pl ? write_doc(&m, rel, pl, MARKET_TYPE_INDEX) : -ENOMEM;
	if (r < 0) {
		msgf(ret_msg, r, "cannot write the licence index: %s",
		     strerror(-r));
		goto out;
	}

	if (opt->ret_window_past && expires <= now) {
		char when[TIMEUTIL_RFC3339_LEN];

		timeutil_format(expires, when);
		*opt->ret_window_past = 1;
		msgf(ret_msg, 0, "already expired at %s", when);
	}
	snprintf(ret_id, 64, "%s", id);
out:
	json_decref(headers);
	free(facts);
	free(dir);
	free(rel);
	free(version);
	market_index_free(idx);
	market_manifest_free(man);
	market_catalog_free(cat);
	op_close(&m);
out_policy:
	policy_release(&pol);
	return r;
}

/* ---- revoke, resign ---- */

static int licence_exists(const char *dir, const char *id)
{
	char *ldir = path_join(dir, "licences"), *p;
	struct dirent *de;
	int found = 0;
	DIR *d;

	if (!ldir)
		return 0;
	d = opendir(ldir);
	while (d && !found && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (asprintf(&p, "%s/%s/%s.jws", ldir, de->d_name, id) < 0)
			break;
		found = file_exists(p);
		free(p);
	}
	if (d)
		closedir(d);
	free(ldir);
	return found;
}

static int ids_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int operator_revoke(const char *dir, const char *keys_dir,
		    const char *licence_id, char ret_msg[OPERATOR_MSG_LEN])
{
	struct op_market m;
	struct market_revocations *rev = NULL;
	char **ids = NULL;
	int r;

	if (!licence_id || strlen(licence_id) != 32 ||
	    strspn(licence_id, "0123456789abcdef") != 32)
		return msgf(ret_msg, -EINVAL, "invalid licence id '%s'",
			    licence_id ? licence_id : "");
	r = op_open(dir, keys_dir, &m, ret_msg);
	if (r < 0)
		return r;
	if (!licence_exists(dir, licence_id)) {
		r = msgf(ret_msg, -ENOENT, "no licence '%s' in this market",
			 licence_id);
		goto out;
	}
	r = load_revocations(&m, &rev);
	if (r < 0) {
		msgf(ret_msg, r, "cannot read the revocation list: %s",
		     market_strerror(r));
		goto out;
	}
	if (market_revocations_has(rev, licence_id)) {
		r = msgf(ret_msg, -EALREADY, "licence '%s' is already"
			 " revoked", licence_id);
		goto out;
	}
	ids = calloc(rev->nids + 1, sizeof(*ids));
	if (!ids) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(ids, rev->ids, rev->nids * sizeof(*ids));
	ids[rev->nids] = (char *)licence_id;
	qsort(ids, rev->nids + 1, sizeof(*ids), ids_cmp);
	r = write_revocations(&m, rev->version + 1, ids, rev->nids + 1, DAY);
	if (r < 0)
		msgf(ret_msg, r, "cannot write the revocation list: %s",
		     strerror(-r));
out:
	free(ids);
	market_revocations_free(rev);
	op_close(&m);
	return r;
}

int operator_resign(const char *dir, const char *keys_dir,
		    int64_t validity, char ret_msg[OPERATOR_MSG_LEN])
{
	struct op_market m;
	struct market_revocations *rev = NULL;
	int r;

	if (validity <= 0 || validity > 366 * DAY)
		return msgf(ret_msg, -EINVAL, "validity must be 1 second to"
			    " 366 days");
	r = op_open(dir, keys_dir, &m, ret_msg);
	if (r < 0)
		return r;
	r = load_revocations(&m, &rev);
	if (r < 0) {
		msgf(ret_msg, r, "cannot read the revocation list: %s",
		     market_strerror(r));
		goto out;
	}
	r = write_revocations(&m, rev->version + 1, rev->ids, rev->nids,
			      validity);
	if (r < 0)
		msgf(ret_msg, r, "cannot write the revocation list: %s",
		     strerror(-r));
out:
	market_revocations_free(rev);
	op_close(&m);
	return r;
}

/* ---- verify ---- */

struct vctx {
	operator_report_fn report;
	void *ctx;
	unsigned long problems;
};

static void problem(struct vctx *v, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void problem(struct vctx *v, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	v->problems++;
	if (!v->report)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	v->report(v->ctx, line);
}

/* Names in a directory (not starting with '.'), sorted. */
static int list_dir(const char *path, char ***ret, size_t *ret_n)
{
	struct dirent *de;
	char **v = NULL;
	size_t n = 0, cap = 0;
	DIR *d;

	*ret = NULL;
	*ret_n = 0;
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			char **nv;

			cap = cap ? cap * 2 : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv)
				goto nomem;
			v = nv;
		}
		v[n] = strdup(de->d_name);
		if (!v[n])
			goto nomem;
		n++;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), ids_cmp);
	*ret = v;
	*ret_n = n;
	return 0;
nomem:
	closedir(d);
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
	return -ENOMEM;
}

static void names_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Check one object and its sums against the manifest entry. */
static void verify_object(const char *dir, const struct market_file *f,
			  const char *where, struct vctx *v)
{
	uint8_t *buf = NULL, *sums = NULL, d[32];
	struct cipher_sha256 *hd = NULL;
	char *path = NULL, *spath = NULL;
	char *sbuf = NULL;
	size_t slen = 0;
	struct stat st;
	int fd = -1;

	if (!strncmp(f->object, "https://", 8)) {
		problem(v, "%s: '%s': object is remote, not checked", where,
			f->path);
		return;
	}
	path = path_join(dir, f->object);
	spath = path_join(dir, f->sums);
	buf = malloc(C4GH_CIPHER_SEGMENT > f->header_len ?
		     C4GH_CIPHER_SEGMENT : f->header_len);
	if (!path || !spath || !buf) {
		problem(v, "%s: out of memory", where);
		goto out;
	}

	/* The sums object first: its digest, then its length. */
	if (util_read_file(spath, (size_t)f->nsegments * 32 + 1, &sbuf,
			   &slen) < 0) {
		problem(v, "%s: '%s': sums object '%s' missing or too large",
			where, f->path, f->sums);
	} else if (cipher_sha256(sbuf, slen, d) < 0 ||
		   !cipher_memeq(d, f->sums_sha256, 32)) {
		problem(v, "%s: '%s': sums object does not match its digest",
			where, f->path);
	} else if (slen != f->nsegments * 32) {
		problem(v, "%s: '%s': sums object has the wrong length",
			where, f->path);
	} else {
		sums = (uint8_t *)sbuf;
	}

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		problem(v, "%s: '%s': object '%s' missing", where, f->path,
			f->object);
		goto out;
	}
	if ((uint64_t)st.st_size != f->header_len + f->data_len) {
		problem(v, "%s: '%s': object is %lld bytes, manifest says"
			" %llu", where, f->path, (long long)st.st_size,
			(unsigned long long)(f->header_len + f->data_len));
		goto out;
	}
	if (read_full(fd, buf, f->header_len) != (ssize_t)f->header_len ||
	    cipher_sha256(buf, f->header_len, d) < 0 ||
	    !cipher_memeq(d, f->header_sha256, 32)) {
		problem(v, "%s: '%s': header does not match its digest",
			where, f->path);
		goto out;
	}
	if (cipher_sha256_new(&hd) < 0) {
		problem(v, "%s: out of memory", where);
		goto out;
	}
	for (uint64_t s = 0; s < f->nsegments; s++) {
		uint64_t left = f->data_len - s * C4GH_CIPHER_SEGMENT;
		size_t n = left > C4GH_CIPHER_SEGMENT ? C4GH_CIPHER_SEGMENT :
			   (size_t)left;

		if (read_full(fd, buf, n) != (ssize_t)n) {
			problem(v, "%s: '%s': cannot read segment %llu", where,
				f->path, (unsigned long long)s);
			goto out;
		}
		cipher_sha256_update(hd, buf, n);
		if (sums && (cipher_sha256(buf, n, d) < 0 ||
			     !cipher_memeq(d, sums + s * 32, 32))) {
			problem(v, "%s: '%s': segment %llu does not match its"
				" digest", where, f->path,
				(unsigned long long)s);
			sums = NULL;	/* one line per file is enough */
		}
	}
	cipher_sha256_final(hd, d);
	hd = NULL;
	if (!cipher_memeq(d, f->data_sha256, 32))
		problem(v, "%s: '%s': data does not match its digest", where,
			f->path);
out:
	cipher_sha256_free(hd);
	if (fd >= 0)
		close(fd);
	free(sbuf);
	free(buf);
	free(spath);
	free(path);
}

static void verify_datasets(const char *dir, const struct market_info *info,
			    const struct market_catalog *cat, struct vctx *v)
{
	char *dsroot = path_join(dir, "datasets");
	char **ds = NULL;
	size_t nds = 0;

	if (!dsroot)
		return;
	if (list_dir(dsroot, &ds, &nds) < 0 && file_exists(dsroot))
		problem(v, "datasets: cannot read the directory");
	for (size_t i = 0; i < nds; i++) {
		char *dsdir = path_join(dsroot, ds[i]), **vers = NULL;
		size_t nvers = 0;
		int listed = 0;

		for (size_t k = 0; cat && k < cat->ndatasets; k++)
			listed |= !strcmp(cat->datasets[k].id, ds[i]);
		if (!listed)
			problem(v, "datasets/%s: not in the catalog", ds[i]);
		if (!dsdir || list_dir(dsdir, &vers, &nvers) < 0)
			problem(v, "datasets/%s: cannot read", ds[i]);
		for (size_t j = 0; j < nvers; j++) {
			struct market_manifest *man = NULL;
			char where[256], *rel = NULL, *buf = NULL;
			size_t len;
			int r;

			snprintf(where, sizeof(where), "datasets/%s/%s",
				 ds[i], vers[j]);
			r = market_path_manifest(ds[i], vers[j], &rel);
			if (r == 0)
				r = read_doc(dir, rel, &buf, &len);
			if (r == 0)
				r = market_manifest_parse(buf, len,
						info->sign_pk, &man);
			free(buf);
			free(rel);
			if (r < 0) {
				problem(v, "%s/manifest.jws: %s", where,
					r == -ENOENT ? "missing" :
					market_strerror(r));
				continue;
			}
			if (strcmp(man->dataset, ds[i]) ||
			    strcmp(man->version, vers[j]))
				problem(v, "%s/manifest.jws: names %s/%s",
					where, man->dataset, man->version);
			if (strcmp(man->market_id, info->id))
				problem(v, "%s/manifest.jws: of another"
					" market", where);
			for (size_t k = 0; k < man->nfiles; k++)
				verify_object(dir, &man->files[k], where, v);
			market_manifest_free(man);
		}
		names_free(vers, nvers);
		free(dsdir);
	}
	/* Every listing points at a published version. */
	for (size_t k = 0; cat && k < cat->ndatasets; k++) {
		const struct market_listing *l = &cat->datasets[k];
		char *rel = NULL, *p = NULL;

		if (market_path_manifest(l->id, l->latest_version, &rel) == 0)
			p = path_join(dir, rel);
		if (p && !file_exists(p))
			problem(v, "catalog.jws: '%s' version '%s' is not"
				" published", l->id, l->latest_version);
		free(p);
		free(rel);
	}
	names_free(ds, nds);
	free(dsroot);
}

static void verify_licence(const char *dir, const struct market_info *info,
			   const char *fpdir, const char *id,
			   const uint8_t licensee[32], struct vctx *v)
{
	struct market_licence *l = NULL;
	struct market_manifest *man = NULL;
	char *rel = NULL, *buf = NULL, fp[MARKET_FP_LEN];
	size_t len;
	int r;

	if (asprintf(&rel, "licences/%s/%s.jws", fpdir, id) < 0)
		return;
	r = read_doc(dir, rel, &buf, &len);
	if (r == 0)
		r = market_licence_parse(buf, len, info->sign_pk, &l);
	free(buf);
	if (r < 0) {
		problem(v, "%s: %s", rel, r == -ENOENT ? "missing" :
			market_strerror(r));
		goto out;
	}
	market_fingerprint(l->licensee, fp);
	if (strcmp(l->id, id) || strcmp(fp, fpdir) ||
	    !cipher_memeq(l->licensee, licensee, 32))
		problem(v, "%s: names another licence or licensee", rel);
	if (strcmp(l->market_id, info->id))
		problem(v, "%s: of another market", rel);
	free(rel);
	rel = NULL;
	r = market_path_manifest(l->dataset, l->version, &rel);
	if (r == 0)
		r = read_doc(dir, rel, &buf, &len);
	if (r == 0)
		r = market_manifest_parse(buf, len, info->sign_pk, &man);
	free(buf);
	if (r < 0) {
		problem(v, "licence %s: manifest of %s/%s: %s", id,
			l->dataset, l->version, r == -ENOENT ? "missing" :
			market_strerror(r));
		goto out;
	}
	if (!cipher_memeq(man->digest, l->manifest_sha256, 32))
		problem(v, "licence %s: manifest of %s/%s has changed since"
			" the grant", id, l->dataset, l->version);
	if (l->nheaders != man->nfiles)
		problem(v, "licence %s: %zu headers for %zu files", id,
			l->nheaders, man->nfiles);
	for (size_t i = 0; i < man->nfiles; i++) {
		const struct market_licence_header *h =
			market_licence_find(l, man->files[i].path);

		if (!h) {
			problem(v, "licence %s: no header for '%s'", id,
				man->files[i].path);
			continue;
		}
		if (c4gh_header_length(h->header, h->header_len, NULL) !=
		    (int)h->header_len)
			problem(v, "licence %s: header for '%s' is malformed",
				id, h->path);
	}
out:
	market_manifest_free(man);
	market_licence_free(l);
	free(rel);
}

static void verify_licences(const char *dir, const struct market_info *info,
			    struct vctx *v)
{
	char *lroot = path_join(dir, "licences");
	char **fps = NULL;
	size_t nfps = 0;

	if (!lroot)
		return;
	if (list_dir(lroot, &fps, &nfps) < 0 && file_exists(lroot))
		problem(v, "licences: cannot read the directory");
	for (size_t i = 0; i < nfps; i++) {
		struct market_index *idx = NULL;
		char *fpdir = path_join(lroot, fps[i]), *rel = NULL;
		char **names = NULL, *buf = NULL, fp[MARKET_FP_LEN];
		size_t nnames = 0, len;
		int r;

		if (asprintf(&rel, "licences/%s/index.jws", fps[i]) < 0)
			r = -ENOMEM;
		else
			r = read_doc(dir, rel, &buf, &len);
		if (r == 0)
			r = market_index_parse(buf, len, info->sign_pk, &idx);
		free(buf);
		if (r < 0) {
			problem(v, "%s: %s", rel ? rel : fps[i],
				r == -ENOENT ? "missing" : market_strerror(r));
		} else {
			market_fingerprint(idx->licensee, fp);
			if (strcmp(fp, fps[i]))
				problem(v, "%s: for another licensee", rel);
			for (size_t k = 0; k < idx->nids; k++)
				verify_licence(dir, info, fps[i], idx->ids[k],
					       idx->licensee, v);
		}
		/* Licence files the index does not name. */
		if (fpdir && list_dir(fpdir, &names, &nnames) == 0) {
			for (size_t k = 0; k < nnames; k++) {
				int known = !strcmp(names[k], "index.jws");

				for (size_t q = 0; idx && q < idx->nids; q++) {
					size_t n = strlen(idx->ids[q]);

					known |= !strncmp(names[k],
							  idx->ids[q], n) &&
						 !strcmp(names[k] + n, ".jws");
				}
				if (!known)
					problem(v, "licences/%s/%s: not in the"
						" index", fps[i], names[k]);
			}
		}
		names_free(names, nnames);
		market_index_free(idx);
		free(rel);
		free(fpdir);
	}
	names_free(fps, nfps);
	free(lroot);
}

int operator_verify(const char *dir, operator_report_fn report, void *ctx,
		    char ret_msg[OPERATOR_MSG_LEN])
{
	struct vctx v = { report, ctx, 0 };
	struct market_info *info = NULL;
	struct market_catalog *cat = NULL;
	struct market_revocations *rev = NULL;
	char *buf = NULL;
	size_t len;
	int r;

	r = read_doc(dir, "market.jws", &buf, &len);
	if (r < 0)
		return msgf(ret_msg, r, "'%s' is not a market: %s", dir,
			    r == -ENOENT ? "no market.jws" : strerror(-r));
	r = market_info_parse(buf, len, NULL, &info);
	free(buf);
	if (r < 0) {
		problem(&v, "market.jws: %s", market_strerror(r));
		return msgf(ret_msg, -EBADMSG, "'%s': 1 problem", dir);
	}

	r = read_doc(dir, "catalog.jws", &buf, &len);
	if (r == 0)
		r = market_catalog_parse(buf, len, info->sign_pk, &cat);
	free(buf);
	if (r < 0)
		problem(&v, "catalog.jws: %s", r == -ENOENT ? "missing" :
			market_strerror(r));
	else if (strcmp(cat->market_id, info->id))
		problem(&v, "catalog.jws: of another market");

	r = read_doc(dir, "revocations.jws", &buf, &len);
	if (r == 0)
		r = market_revocations_parse(buf, len, info->sign_pk, &rev);
	free(buf);
	if (r < 0)
		problem(&v, "revocations.jws: %s", r == -ENOENT ? "missing" :
			market_strerror(r));
	else if (strcmp(rev->market_id, info->id))
		problem(&v, "revocations.jws: of another market");

	verify_datasets(dir, info, cat, &v);
	verify_licences(dir, info, &v);

	market_revocations_free(rev);
	market_catalog_free(cat);
	market_info_free(info);
	if (v.problems)
		return msgf(ret_msg, -EBADMSG, "'%s': %lu problem%s", dir,
			    v.problems, v.problems == 1 ? "" : "s");
	return 0;
}

/* ---- list ---- */

static json_t *list_datasets(const char *dir, const struct market_info *info,
			     const struct market_catalog *cat)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && cat && i < cat->ndatasets; i++) {
		const struct market_listing *l = &cat->datasets[i];
		json_t *vers = json_array();
		char *dsdir = NULL, **names = NULL;
		size_t n = 0;

		if (asprintf(&dsdir, "%s/datasets/%s", dir, l->id) >= 0)
			(void)list_dir(dsdir, &names, &n);
		for (size_t k = 0; vers && k < n; k++) {
			struct market_manifest *man = NULL;
			char *rel = NULL, *buf = NULL;
			uint64_t size = 0;
			size_t len;

			if (market_path_manifest(l->id, names[k], &rel) < 0 ||
			    read_doc(dir, rel, &buf, &len) < 0 ||
			    market_manifest_parse(buf, len, info->sign_pk,
						  &man) < 0) {
				free(rel);
				free(buf);
				continue;
			}
			for (size_t q = 0; q < man->nfiles; q++)
				size += man->files[q].size;
			json_array_append_new(vers, json_pack(
				"{s:s, s:I, s:I, s:o}", "version",
				man->version, "files",
				(json_int_t)man->nfiles, "size",
				(json_int_t)size, "created",
				json_time(man->created)));
			market_manifest_free(man);
			free(rel);
			free(buf);
		}
		names_free(names, n);
		free(dsdir);
		json_array_append_new(arr, json_pack(
			"{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:o}",
			"id", l->id, "title", l->title, "provider",
			l->provider, "price", l->price, "latest_version",
			l->latest_version, "files", (json_int_t)l->nfiles,
			"size", (json_int_t)l->size, "terms", l->terms,
			"versions", vers ? vers : json_array()));
	}
	return arr;
}

static json_t *list_licences(const char *dir, const struct market_info *info,
			     const struct market_revocations *rev)
{
	json_t *arr = json_array();
	char *lroot = path_join(dir, "licences"), **fps = NULL;
	size_t nfps = 0;
	int64_t now = timeutil_now();

	if (lroot)
		(void)list_dir(lroot, &fps, &nfps);
	for (size_t i = 0; arr && i < nfps; i++) {
		char *fpdir = path_join(lroot, fps[i]), **names = NULL;
		size_t n = 0;

		if (fpdir)
			(void)list_dir(fpdir, &names, &n);
		for (size_t k = 0; k < n; k++) {
			struct market_licence *l = NULL;
			char *rel = NULL, *buf = NULL;
			const char *status;
			size_t len;

			if (!strcmp(names[k], "index.jws") ||
			    asprintf(&rel, "licences/%s/%s", fps[i],
				     names[k]) < 0)
				continue;
			if (read_doc(dir, rel, &buf, &len) < 0 ||
			    market_licence_parse(buf, len, info->sign_pk,
						 &l) < 0) {
				free(rel);
				free(buf);
				continue;
			}
			if (market_revocations_has(rev, l->id))
				status = "revoked";
			else if (now >= l->expires)
				status = "expired";
			else if (now < l->not_before)
				status = "not-yet";
			else
				status = "valid";
			json_array_append_new(arr, json_pack(
				"{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:I,"
				" s:s, s:s}",
				"id", l->id, "dataset", l->dataset,
				"version", l->version, "licensee", fps[i],
				"issued", json_time(l->issued),
				"not_before", json_time(l->not_before),
				"expires", json_time(l->expires),
				"serial", (json_int_t)l->serial,
				"policy", l->policy, "status", status));
			market_licence_free(l);
			free(rel);
			free(buf);
		}
		names_free(names, n);
		free(fpdir);
	}
	names_free(fps, nfps);
	free(lroot);
	return arr;
}

int operator_list_json(const char *dir, char **ret_json,
		       char ret_msg[OPERATOR_MSG_LEN])
{
	struct market_info *info = NULL;
	struct market_catalog *cat = NULL;
	struct market_revocations *rev = NULL;
	char *buf = NULL, fp[MARKET_FP_LEN];
	json_t *doc, *revs;
	size_t len;
	int r;

	*ret_json = NULL;
	r = read_doc(dir, "market.jws", &buf, &len);
	if (r == 0)
		r = market_info_parse(buf, len, NULL, &info);
	free(buf);
	if (r < 0)
		return msgf(ret_msg, r, "'%s' is not a usable market: %s",
			    dir, r == -ENOENT ? "no market.jws" :
			    market_strerror(r));
	r = read_doc(dir, "catalog.jws", &buf, &len);
	if (r == 0)
		r = market_catalog_parse(buf, len, info->sign_pk, &cat);
	free(buf);
	if (r < 0) {
		msgf(ret_msg, r, "'%s/catalog.jws': %s", dir,
		     market_strerror(r));
		goto out;
	}
	r = read_doc(dir, "revocations.jws", &buf, &len);
	if (r == 0)
		r = market_revocations_parse(buf, len, info->sign_pk, &rev);
	free(buf);
	if (r < 0) {
		msgf(ret_msg, r, "'%s/revocations.jws': %s", dir,
		     market_strerror(r));
		goto out;
	}

	market_fingerprint(info->sign_pk, fp);
	revs = json_array();
	for (size_t i = 0; revs && i < rev->nids; i++)
		json_array_append_new(revs, json_string(rev->ids[i]));
	doc = json_pack("{s:{s:s, s:s, s:s, s:o}, s:o, s:o,"
			" s:{s:I, s:o, s:o, s:o}}",
			"market", "id", info->id, "name", info->name,
			"fingerprint", fp, "created",
			json_time(info->created),
			"datasets", list_datasets(dir, info, cat),
			"licences", list_licences(dir, info, rev),
			"revocations", "version", (json_int_t)rev->version,
			"issued", json_time(rev->issued), "next_update",
			json_time(rev->next_update), "revoked", revs);
	*ret_json = doc ? json_dumps(doc, JSON_INDENT(2) |
				     JSON_PRESERVE_ORDER) : NULL;
	json_decref(doc);
	r = *ret_json ? 0 : -ENOMEM;
out:
	market_revocations_free(rev);
	market_catalog_free(cat);
	market_info_free(info);
	return r;
}
