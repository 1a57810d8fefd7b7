/*
 * fsops.c - the FUSE operations of marketfs.
 *
 * Invariants kept here:
 *
 * - Every open() of a file reaches this code (we never declare
 *   FUSE_CAP_NO_OPEN_SUPPORT), is decided from the licence and the
 *   caller of that very request, and is recorded durably in the access
 *   log before it is answered.  If the record cannot be written the open
 *   fails with EIO, whatever the decision was.
 * - Nothing is writable: every mutating operation answers EROFS, and a
 *   write-mode open is logged as denied.
 * - Plaintext leaves only through read(), and only after its segment
 *   authenticated (c4gh_reader); an integrity failure is EIO for the
 *   whole request and is logged with the segment.
 *
 * One open_file per tree node is shared by all handles open on it
 * (reference-counted under open_lock); it holds the file's data key
 * inside its reader, and is wiped when the last handle closes.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <fuse.h>
#include <fuse_opt.h>

#include "alog.h"
#include "c4gh.h"
#include "c4gh_reader.h"
#include "cipher.h"
#include "fsops.h"
#include "http.h"
#include "log.h"
#include "market.h"
#include "timeutil.h"
#include "tree.h"

#define SUMS_MAX	(256u << 20)	/* digests of a 512 GiB file */

/* Shared decrypting state of one open file. */
struct open_file {
	struct c4gh_reader *reader;
	char *url;			/* the object or .c4gh file */
	uint64_t data_off;		/* where its data section starts */
	uint8_t *sums;			/* manifest-bound segment digests */
	uint64_t nsums;
	struct http *http;
};

/* One open() of a file. */
struct handle {
	struct tree_node *node;
	struct open_file *of;		/* NULL for generated text */
	uint64_t bytes;			/* read so far (atomic) */
	struct timespec start;
	uid_t uid;
	gid_t gid;
	pid_t pid;
	int failure_logged;		/* one integrity record per handle */
};

static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;

static const struct fsops_config *fs_cfg(void)
{
	return fuse_get_context()->private_data;
}

/* ---- the shared open-file state ---- */

static void open_file_free(struct open_file *of)
{
	if (!of)
		return;
	c4gh_reader_free(of->reader);
	free(of->url);
	free(of->sums);
	free(of);
}

static int of_fetch(void *ctx, uint64_t off, uint8_t *buf, size_t len)
{
	struct open_file *of = ctx;

	return http_get_range(of->http, of->url, of->data_off + off, len, buf);
}

/* A segment must hash to the digest the signed manifest binds. */
static int of_check(void *ctx, uint64_t idx, const uint8_t *seg, size_t len)
{
	struct open_file *of = ctx;
	uint8_t digest[32];
	int r;

	if (idx >= of->nsums)
		return -EBADMSG;
	r = cipher_sha256(seg, len, digest);
	if (r < 0)
		return r;
	if (!cipher_memeq(digest, of->sums + idx * 32, 32))
		return -EBADMSG;
	return 0;
}

static int open_file_new_plain(const struct fsops_config *cfg,
			       const struct tree_node *node,
			       struct open_file *of, const char **ret_why)
{
	struct c4gh_reader_ops ops = { of_fetch, NULL, of };
	struct c4gh_header hdr;
	uint64_t data_len = 0;
	int r;

	of->url = strdup(node->url);
	if (!of->url)
		return -ENOMEM;

	*ret_why = "header";
	r = tree_plain_header(cfg->http, of->url, cfg->sk, &hdr, &data_len);
	if (r < 0)
		return r;
	of->data_off = hdr.header_len;

	*ret_why = "size";
	r = c4gh_reader_new(&hdr, data_len, &ops, &of->reader);
	c4gh_header_release(&hdr);
	if (r == 0 && c4gh_reader_size(of->reader) != node->size)
		r = -EBADMSG;	/* the file changed since the mount */
	return r;
}

/*
 * A market file: the header comes from our (signed) licence, the data
 * from the object, and every segment is checked against the digests
 * whose own digest the signed manifest binds.
 */
static int open_file_new_market(const struct fsops_config *cfg,
				const struct tree_node *node,
				struct open_file *of, const char **ret_why)
{
	const struct market_file *f = node->mfile;
	const struct market_licence_header *lh;
	struct c4gh_reader_ops ops = { of_fetch, of_check, of };
	struct c4gh_header hdr;
	uint8_t digest[32];
	char *sums_url = NULL;
	size_t len = 0;
	int r;

	*ret_why = "header";
	lh = market_licence_find(node->dataset->licence, f->path);
	if (!lh)
		return -EBADMSG;
	r = c4gh_header_decrypt(lh->header, lh->header_len, cfg->sk, &hdr);
	if (r < 0)
		return r;
	/* A published file has exactly one data key and no edit list. */
	if (hdr.nkeys != 1 || hdr.has_edits) {
		r = -EBADMSG;
		goto out_release_header;
	}

	*ret_why = "fetch";
	r = http_url_join(cfg->tree->base, f->object, &of->url);
	if (r < 0)
		goto out_release_header;
	of->data_off = f->header_len;

	r = http_url_join(cfg->tree->base, f->sums, &sums_url);
	if (r < 0)
		goto out_release_header;
	if (f->nsegments > SUMS_MAX / 32) {
		r = -EBADMSG;
		goto out_free_url;
	}
	r = http_get(cfg->http, sums_url, SUMS_MAX, &of->sums, &len);
	if (r < 0) {
		r = -EIO;
		goto out_free_url;
	}

	*ret_why = "digest";
	r = cipher_sha256(of->sums, len, digest);
	if (r < 0)
		goto out_free_url;
	if (len != f->nsegments * 32 ||
	    !cipher_memeq(digest, f->sums_sha256, 32)) {
		r = -EBADMSG;
		goto out_free_url;
	}
	of->nsums = f->nsegments;

	*ret_why = "size";
	r = c4gh_reader_new(&hdr, f->data_len, &ops, &of->reader);
	if (r == 0 && c4gh_reader_size(of->reader) != f->size)
		r = -EBADMSG;
out_free_url:
	free(sums_url);
out_release_header:
	c4gh_header_release(&hdr);
	return r;
}

/*
 * Take a reference on node's open_file, making it if needed.  Making one
 * fetches over the network, so it runs outside open_lock; if two opens
 * race, the loser's copy is dropped.
 */
static int open_file_get(const struct fsops_config *cfg,
			 struct tree_node *node, struct open_file **ret_of,
			 const char **ret_why)
{
	struct open_file *of;
	int r;

	pthread_mutex_lock(&open_lock);
	if (node->open_state) {
		node->open_count++;
		*ret_of = node->open_state;
		pthread_mutex_unlock(&open_lock);
		return 0;
	}
	pthread_mutex_unlock(&open_lock);

	of = calloc(1, sizeof(*of));
	if (!of)
		return -ENOMEM;
	of->http = cfg->http;
	if (node->mfile)
		r = open_file_new_market(cfg, node, of, ret_why);
	else
		r = open_file_new_plain(cfg, node, of, ret_why);
	if (r < 0) {
		open_file_free(of);
		return r;
	}

	pthread_mutex_lock(&open_lock);
	if (node->open_state) {
		open_file_free(of);
		of = node->open_state;
	} else {
		node->open_state = of;
	}
	node->open_count++;
	pthread_mutex_unlock(&open_lock);

	*ret_of = of;
	return 0;
}

static void open_file_put(struct tree_node *node)
{
	struct open_file *of = NULL;

	pthread_mutex_lock(&open_lock);
	if (node->open_count > 0 && --node->open_count == 0) {
		of = node->open_state;
		node->open_state = NULL;
	}
	pthread_mutex_unlock(&open_lock);
	open_file_free(of);
}

/* ---- the access log ---- */

static void event_for(struct alog_event *ev, const char *event,
		      const struct tree_node *node)
{
	const struct tree_dataset *ds = node ? node->dataset : NULL;
	struct fuse_context *ctx = fuse_get_context();

	alog_event_init(ev);
	ev->event = event;
	ev->has_caller = 1;
	ev->uid = ctx->uid;
	ev->gid = ctx->gid;
	ev->pid = ctx->pid;
	if (node)
		ev->file = node->relpath;
	if (ds) {
		ev->dataset = ds->id;
		ev->version = ds->licence->version;
		ev->licence = ds->licence->id;
	}
}

/*
 * Record a decision.  Returns err when the record is durable, -EIO when
 * it is not: then nothing may be served.
 */
static int record(struct alog_event *ev, int err)
{
	const struct fsops_config *cfg = fs_cfg();
	int r;

	ev->err = -err;
	r = alog_write(cfg->alog, ev);
	if (r < 0) {
		log_error("ACCESS LOG CANNOT BE WRITTEN (%s): refusing "
			  "open of '%s'", strerror(-r),
			  ev->file ? ev->file : "?");
		return -EIO;
	}
	return err;
}

static int deny(const struct tree_node *node, const char *reason, int err,
		const char *detail)
{
	struct alog_event ev;

	event_for(&ev, "open", node);
	ev.decision = "deny";
	ev.reason = reason;
	ev.detail = detail;
	return record(&ev, err);
}

/* ---- decisions ---- */

/*
 * Steps 1-3 of design §4 for a market file (the signature was verified
 * when the licence was loaded, and bound to our key there): revocation,
 * then the validity window against the time used, which is logged.
 */
static int decide_licence(const struct tree_node *node, const char **reason,
			  char *detail, size_t dlen)
{
	const struct market_licence *l = node->dataset->licence;
	const struct tree *tree = fs_cfg()->tree;
	char now_s[TIMEUTIL_RFC3339_LEN], nb[TIMEUTIL_RFC3339_LEN];
	char ex[TIMEUTIL_RFC3339_LEN];
	int64_t now = timeutil_now();

	timeutil_format(now, now_s);
	timeutil_format(l->not_before, nb);
	timeutil_format(l->expires, ex);
	snprintf(detail, dlen, "time used %s; licence valid %s to %s", now_s,
		 nb, ex);

	if (tree->revocations &&
	    market_revocations_has(tree->revocations, l->id)) {
		*reason = "licence revoked";
		return -EKEYREVOKED;
	}
	if (now < l->not_before) {
		*reason = "licence not yet valid";
		return -EACCES;
	}
	if (now >= l->expires) {
		*reason = "licence expired";
		return -EKEYEXPIRED;
	}
	*reason = "licence valid";
	return 0;
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
	struct tree_node *node;
	struct alog_event ev;
	struct handle *h;
	const char *reason = NULL, *why = NULL;
	char detail[256] = "";
	int r;

	r = tree_lookup(fs_cfg()->tree, path, &node);
	if (r < 0)
		return r;
	if (node->kind == TREE_DIR)
		return -EISDIR;

	if ((fi->flags & O_ACCMODE) != O_RDONLY ||
	    (fi->flags & (O_TRUNC | O_CREAT)))
		return deny(node, "write access", -EROFS, NULL);

	if (node->kind == TREE_DATA && node->mfile) {
		r = decide_licence(node, &reason, detail, sizeof(detail));
		if (r < 0)
			return deny(node, reason, r, detail);
	} else if (node->kind == TREE_DATA) {
		reason = "key holder";
	} else {
		reason = "public text";
	}

	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->node = node;
	h->uid = fuse_get_context()->uid;
	h->gid = fuse_get_context()->gid;
	h->pid = fuse_get_context()->pid;
	clock_gettime(CLOCK_MONOTONIC, &h->start);

	if (node->kind == TREE_DATA) {
		r = open_file_get(fs_cfg(), node, &h->of, &why);
		if (r < 0) {
			char d[256];

			snprintf(d, sizeof(d), "%s failed: %s", why,
				 r == -EIO ? http_last_error() :
				 c4gh_strerror(r));
			free(h);
			log_error("'%s': %s", path, d);
			return deny(node, "integrity failure", -EIO, d);
		}
	}

	event_for(&ev, "open", node);
	ev.decision = "allow";
	ev.reason = reason;
	ev.detail = detail[0] ? detail : NULL;
	r = record(&ev, 0);
	if (r < 0) {
		if (h->of)
			open_file_put(node);
		free(h);
		return r;
	}

	/* Published versions never change: their pages may stay cached. */
	fi->keep_cache = node->mfile != NULL || node->kind == TREE_TEXT;
	fi->fh = (uintptr_t)h;
	return 0;
}

static void log_read_failure(struct handle *h,
			     const struct c4gh_reader_error *e)
{
	struct alog_event ev;
	char detail[256];

	if (__atomic_exchange_n(&h->failure_logged, 1, __ATOMIC_SEQ_CST))
		return;
	snprintf(detail, sizeof(detail), "segment %llu: %s failed%s%s",
		 (unsigned long long)e->segment, e->what ? e->what : "read",
		 e->err == -EIO ? ": " : "",
		 e->err == -EIO ? http_last_error() : "");
	log_error("'%s': %s", h->node->relpath, detail);

	event_for(&ev, "integrity", h->node);
	ev.reason = "read failed";
	ev.detail = detail;
	(void)record(&ev, -EIO);
}

static int fs_read(const char *path, char *buf, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct c4gh_reader_error e = { 0 };
	ssize_t n;

	(void)path;
	if (off < 0)
		return -EINVAL;

	if (h->node->kind == TREE_TEXT) {
		if ((uint64_t)off >= h->node->size)
			return 0;
		if (size > h->node->size - (uint64_t)off)
			size = h->node->size - (uint64_t)off;
		memcpy(buf, h->node->text + off, size);
		__atomic_add_fetch(&h->bytes, size, __ATOMIC_RELAXED);
		return (int)size;
	}

	n = c4gh_reader_pread(h->of->reader, buf, size, (uint64_t)off, &e);
	if (n < 0) {
		log_read_failure(h, &e);
		return -EIO;
	}
	__atomic_add_fetch(&h->bytes, (uint64_t)n, __ATOMIC_RELAXED);
	return (int)n;
}

static int fs_release(const char *path, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct alog_event ev;
	struct timespec now;

	(void)path;
	clock_gettime(CLOCK_MONOTONIC, &now);

	alog_event_init(&ev);
	event_for(&ev, "release", h->node);
	/* The context of a release is not the opener's: use the opener. */
	ev.uid = h->uid;
	ev.gid = h->gid;
	ev.pid = h->pid;
	ev.bytes = (int64_t)h->bytes;
	ev.duration_ms = (now.tv_sec - h->start.tv_sec) * 1000 +
			 (now.tv_nsec - h->start.tv_nsec) / 1000000;
	if (alog_write(fs_cfg()->alog, &ev) < 0)
		log_error("ACCESS LOG CANNOT BE WRITTEN: release of '%s' "
			  "not recorded", h->node->relpath);

	if (h->of)
		open_file_put(h->node);
	free(h);
	return 0;
}

/* ---- attributes and directories ---- */

static void fill_stat(const struct tree_node *node, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_mtime = node->mtime;
	st->st_ctime = node->mtime;
	st->st_atime = node->mtime;
	if (node->kind == TREE_DIR) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = (off_t)node->size;
		st->st_blocks = (blkcnt_t)((node->size + 511) / 512);
	}
	st->st_blksize = C4GH_SEGMENT_SIZE;
}

static int fs_getattr(const char *path, struct stat *st,
		      struct fuse_file_info *fi)
{
	struct tree_node *node;
	int r;

	if (fi && fi->fh) {
		fill_stat(((struct handle *)(uintptr_t)fi->fh)->node, st);
		return 0;
	}
	r = tree_lookup(fs_cfg()->tree, path, &node);
	if (r < 0)
		return r;
	fill_stat(node, st);
	return 0;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t filler,
		      off_t off, struct fuse_file_info *fi,
		      enum fuse_readdir_flags flags)
{
	struct tree_node *node;
	struct stat st;
	size_t i;
	int r;

	(void)off;
	(void)fi;
	(void)flags;
	r = tree_lookup(fs_cfg()->tree, path, &node);
	if (r < 0)
		return r;
	if (node->kind != TREE_DIR)
		return -ENOTDIR;

	fill_stat(node, &st);
	if (filler(buf, ".", &st, 0, 0) || filler(buf, "..", NULL, 0, 0))
		return 0;
	for (i = 0; i < node->nchildren; i++) {
		fill_stat(node->children[i], &st);
		if (filler(buf, node->children[i]->name, &st, 0, 0))
			break;
	}
	return 0;
}

static int fs_access(const char *path, int mask)
{
	struct tree_node *node;
	int r;

	r = tree_lookup(fs_cfg()->tree, path, &node);
	if (r < 0)
		return r;
	if (mask & W_OK)
		return -EROFS;
	if ((mask & X_OK) && node->kind != TREE_DIR)
		return -EACCES;
	return 0;
}

static int fs_statfs(const char *path, struct statvfs *sv)
{
	(void)path;
	memset(sv, 0, sizeof(*sv));
	sv->f_bsize = C4GH_SEGMENT_SIZE;
	sv->f_frsize = C4GH_SEGMENT_SIZE;
	sv->f_namemax = NAME_MAX;
	sv->f_flag = ST_RDONLY;
	return 0;
}

/* ---- everything that would change something ---- */

static int fs_erofs_mode(const char *p, mode_t m)
{
	(void)p; (void)m;
	return -EROFS;
}

static int fs_erofs_path(const char *p)
{
	(void)p;
	return -EROFS;
}

static int fs_erofs_2path(const char *a, const char *b)
{
	(void)a; (void)b;
	return -EROFS;
}

static int fs_rename(const char *a, const char *b, unsigned int flags)
{
	(void)a; (void)b; (void)flags;
	return -EROFS;
}

static int fs_mknod(const char *p, mode_t m, dev_t d)
{
	(void)p; (void)m; (void)d;
	return -EROFS;
}

static int fs_chmod(const char *p, mode_t m, struct fuse_file_info *fi)
{
	(void)p; (void)m; (void)fi;
	return -EROFS;
}

static int fs_chown(const char *p, uid_t u, gid_t g,
		    struct fuse_file_info *fi)
{
	(void)p; (void)u; (void)g; (void)fi;
	return -EROFS;
}

static int fs_truncate(const char *p, off_t o, struct fuse_file_info *fi)
{
	(void)p; (void)o; (void)fi;
	return -EROFS;
}

static int fs_write(const char *p, const char *b, size_t s, off_t o,
		    struct fuse_file_info *fi)
{
	(void)p; (void)b; (void)s; (void)o; (void)fi;
	return -EROFS;
}

static int fs_create(const char *p, mode_t m, struct fuse_file_info *fi)
{
	(void)p; (void)m; (void)fi;
	return -EROFS;
}

static int fs_utimens(const char *p, const struct timespec tv[2],
		      struct fuse_file_info *fi)
{
	(void)p; (void)tv; (void)fi;
	return -EROFS;
}

static int fs_setxattr(const char *p, const char *n, const char *v,
		       size_t s, int f)
{
	(void)p; (void)n; (void)v; (void)s; (void)f;
	return -EROFS;
}

static int fs_removexattr(const char *p, const char *n)
{
	(void)p; (void)n;
	return -EROFS;
}

static int fs_fallocate(const char *p, int m, off_t o, off_t l,
			struct fuse_file_info *fi)
{
	(void)p; (void)m; (void)o; (void)l; (void)fi;
	return -EROFS;
}

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *fc)
{
	(void)conn;
	/* Attributes never change while mounted; decisions are per open. */
	fc->entry_timeout = 1.0;
	fc->attr_timeout = 1.0;
	fc->negative_timeout = 1.0;
	fc->use_ino = 0;
	fc->nullpath_ok = 0;
	return fuse_get_context()->private_data;
}

static const struct fuse_operations fs_ops = {
	.init = fs_init,
	.getattr = fs_getattr,
	.readdir = fs_readdir,
	.open = fs_open,
	.read = fs_read,
	.release = fs_release,
	.access = fs_access,
	.statfs = fs_statfs,
	.mknod = fs_mknod,
	.mkdir = fs_erofs_mode,
	.unlink = fs_erofs_path,
	.rmdir = fs_erofs_path,
	.symlink = fs_erofs_2path,
	.rename = fs_rename,
	.link = fs_erofs_2path,
	.chmod = fs_chmod,
	.chown = fs_chown,
	.truncate = fs_truncate,
	.write = fs_write,
	.create = fs_create,
	.utimens = fs_utimens,
	.setxattr = fs_setxattr,
	.removexattr = fs_removexattr,
	.fallocate = fs_fallocate,
};

/* ---- command line ---- */

enum {
	KEY_HELP,
	KEY_VERSION,
	KEY_FOREGROUND,
	KEY_DEBUG,
	KEY_SINGLE,
};

#define MFS_OPT(t, p) { t, offsetof(struct fsops_options, p), 1 }

static const struct fuse_opt option_spec[] = {
	MFS_OPT("key=%s", key),
	MFS_OPT("passphrase_file=%s", passphrase_file),
	MFS_OPT("access_log=%s", access_log),
	MFS_OPT("market_key=%s", market_key),
	MFS_OPT("state_dir=%s", state_dir),
	MFS_OPT("cafile=%s", cafile),
	MFS_OPT("pinned_key=%s", pinned_key),
	MFS_OPT("token_file=%s", token_file),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("-f", KEY_FOREGROUND),
	FUSE_OPT_KEY("-d", KEY_DEBUG),
	FUSE_OPT_KEY("debug", KEY_DEBUG),
	FUSE_OPT_KEY("-s", KEY_SINGLE),
	FUSE_OPT_END
};

/*
 * fuse_opt_parse() hands its data pointer both to the offsets above and
 * to parse_proc(), so the rest of the parse state lives here; the
 * command line is parsed once, before any thread starts.
 */
struct parse_state {
	char *msg;
	size_t msglen;
	int nonopts;
};

static struct parse_state parse_state;

static int parse_proc(void *data, const char *arg, int key,
		      struct fuse_args *outargs)
{
	struct parse_state *ps = &parse_state;
	struct fsops_options *opt = data;

	(void)outargs;
	switch (key) {
	case KEY_HELP:
		opt->show_help = 1;
		return 0;
	case KEY_VERSION:
		opt->show_version = 1;
		return 0;
	case KEY_FOREGROUND:
		opt->foreground = 1;
		return 0;
	case KEY_DEBUG:
		opt->debug = 1;
		opt->foreground = 1;
		return 1;	/* libfuse prints its own debug output */
	case KEY_SINGLE:
		opt->single_thread = 1;
		return 0;
	case FUSE_OPT_KEY_NONOPT:
		if (ps->nonopts == 0)
			opt->source = strdup(arg);
		else if (ps->nonopts == 1)
			opt->mountpoint = strdup(arg);
		else {
			snprintf(ps->msg, ps->msglen,
				 "unexpected argument '%s'", arg);
			return -1;
		}
		ps->nonopts++;
		return 0;
	default:
		return 1;	/* FUSE options go on to libfuse */
	}
}

int fsops_parse_args(int argc, char *argv[], struct fsops_options *ret,
		     char *msg, size_t msglen)
{
	struct fuse_args *args;
	char *abs;

	memset(ret, 0, sizeof(*ret));
	msg[0] = '\0';
	parse_state.msg = msg;
	parse_state.msglen = msglen;
	parse_state.nonopts = 0;
	args = calloc(1, sizeof(*args));
	if (!args)
		return -ENOMEM;
	args->argc = argc;
	args->argv = argv;
	args->allocated = 0;
	ret->fuse_args = args;

	if (fuse_opt_parse(args, ret, option_spec, parse_proc) < 0) {
		if (!msg[0])
			snprintf(msg, msglen, "invalid option");
		return -EINVAL;
	}
	if (ret->show_help || ret->show_version)
		return 0;
	if (!ret->source || !ret->mountpoint) {
		snprintf(msg, msglen, "%s", ret->source ?
			 "missing MOUNTPOINT" : "missing SOURCE and MOUNTPOINT");
		return -EINVAL;
	}

	abs = realpath(ret->mountpoint, NULL);
	if (!abs) {
		snprintf(msg, msglen, "mount point '%s': %s", ret->mountpoint,
			 strerror(errno));
		return -EINVAL;
	}
	free(ret->mountpoint);
	ret->mountpoint = abs;
	return 0;
}

void fsops_options_release(struct fsops_options *opt)
{
	struct fuse_args *args = opt->fuse_args;

	if (args) {
		fuse_opt_free_args(args);
		free(args);
	}
	free(opt->source);
	free(opt->mountpoint);
	free(opt->key);
	free(opt->passphrase_file);
	free(opt->access_log);
	free(opt->market_key);
	free(opt->state_dir);
	free(opt->cafile);
	free(opt->pinned_key);
	free(opt->token_file);
	memset(opt, 0, sizeof(*opt));
}

/* ---- running ---- */

static void log_fuse(enum fuse_log_level level, const char *fmt, va_list ap)
{
	char line[1024];

	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	log_msg(level <= FUSE_LOG_ERR ? LOG_LVL_ERR :
		level == FUSE_LOG_WARNING ? LOG_LVL_WARNING :
		level <= FUSE_LOG_INFO ? LOG_LVL_INFO : LOG_LVL_DEBUG,
		"fuse: %s", line);
}

static void record_daemon_event(const struct fsops_config *cfg,
				const char *event, const char *detail)
{
	struct alog_event ev;

	alog_event_init(&ev);
	ev.event = event;
	ev.detail = detail;
	if (alog_write(cfg->alog, &ev) < 0)
		log_error("ACCESS LOG CANNOT BE WRITTEN: '%s' not recorded",
			  event);
}

int fsops_run(struct fsops_options *opt, const struct fsops_config *cfg)
{
	struct fuse_args *args = opt->fuse_args;
	struct fuse_loop_config *loop;
	struct fuse *fuse;
	char detail[PATH_MAX + 512];
	int r, status = 1;

	fuse_set_log_func(log_fuse);

	/* A mount that looks like any other read-only FUSE mount. */
	if (fuse_opt_add_arg(args, "-osubtype=marketfs,fsname=marketfs") < 0)
		return 1;

	fuse = fuse_new(args, &fs_ops, sizeof(fs_ops), (void *)cfg);
	if (!fuse)
		return 1;

	if (fuse_mount(fuse, opt->mountpoint) != 0)
		goto out_destroy;

	snprintf(detail, sizeof(detail), "source %s mounted at %s",
		 cfg->tree->base, opt->mountpoint);
	record_daemon_event(cfg, "mount", detail);

	/* The parent returns 0 only now that the mount is live. */
	if (fuse_daemonize(opt->foreground) != 0)
		goto out_unmount;
	if (!opt->foreground)
		log_to_syslog();

	if (fuse_set_signal_handlers(fuse_get_session(fuse)) != 0)
		goto out_unmount;

	if (opt->single_thread) {
		r = fuse_loop(fuse);
	} else {
		loop = fuse_loop_cfg_create();
		if (!loop) {
			r = -ENOMEM;
		} else {
			fuse_loop_cfg_set_clone_fd(loop, 0);
			fuse_loop_cfg_set_max_threads(loop, 16);
			r = fuse_loop_mt(fuse, loop);
			fuse_loop_cfg_destroy(loop);
		}
	}
	status = r == 0 ? 0 : 1;
	fuse_remove_signal_handlers(fuse_get_session(fuse));

out_unmount:
	fuse_unmount(fuse);
	record_daemon_event(cfg, "unmount", opt->mountpoint);
out_destroy:
	fuse_destroy(fuse);
	return status;
}
