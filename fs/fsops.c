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
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <pwd.h>
#include <semaphore.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <fuse.h>
#include <fuse_opt.h>

#include "alog.h"
#include "c4gh.h"
#include "c4gh_reader.h"
#include "cache.h"
#include "cipher.h"
#include "fsops.h"
#include "http.h"
#include "log.h"
#include "market.h"
#include "policy.h"
#include "timeutil.h"
#include "tree.h"
#include "trust.h"

#define SUMS_MAX	(256u << 20)	/* digests of a 512 GiB file */

/* Shared decrypting state of one open file. */
struct open_file {
	pthread_rwlock_t lock;		/* reads hold it shared; ending a
					 * "cut" licence takes it to wipe */
	int ended;			/* negative errno once cut */
	struct c4gh_reader *reader;	/* NULL once cut */
	char *url;			/* the object or .c4gh file */
	uint64_t data_off;		/* where its data section starts */
	uint8_t *sums;			/* manifest-bound segment digests */
	uint64_t nsums;
	struct http *http;
	struct cache_file *cf;		/* market files: segments and their
					 * digests through the cache */
};

/* A tree and the handles still using it (under state.lock). */
struct gen {
	struct tree *tree;
	unsigned int refs;
};

/* One open() of a file. */
struct handle {
	struct gen *gen;		/* the tree it opened in */
	struct tree_node *node;
	int seat;			/* holds a seat of its dataset */
	char *exe;			/* the opener's executable, or NULL */
	struct cached_path *cp;		/* its page-cache slot, or NULL */
	struct open_file *of;		/* NULL for generated text */
	uint64_t bytes;			/* read so far (atomic) */
	struct timespec start;
	uid_t uid;
	gid_t gid;
	pid_t pid;
	int failure_logged;		/* one integrity record per handle */
};

static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;

/* What the daemon knows while mounted. */
struct seat {
	char *dataset;
	uid_t uid;
	unsigned int handles;
};

struct status_memo {
	char *licence;			/* licence id */
	const char *status;		/* last status seen */
	int warned;			/* expiry warning given */
};

static struct {
	pthread_rwlock_t lock;		/* protects gen */
	struct gen *gen;		/* the current tree */
	char *base;			/* the market's base URL */
	struct fuse *fuse;
	int shared;			/* allow_other */
	uid_t owner;
	sem_t wake;			/* SIGHUP or stop */
	volatile sig_atomic_t refresh_asked;
	int stopping;
	pthread_mutex_t seats_lock;
	struct seat *seats;
	size_t nseats;
	struct status_memo *memo;	/* watcher thread only */
	size_t nmemo;
	bool proc_ours;			/* /proc is of our PID namespace */
} state = {
	.lock = PTHREAD_RWLOCK_INITIALIZER,
	.seats_lock = PTHREAD_MUTEX_INITIALIZER,
};

#define EXPIRY_WARNING	(7 * 86400)	/* warn this long before the end */

/* Set once in fsops_run(), before any thread starts. */
static const struct fsops_config *the_cfg;

static void log_fuse(enum fuse_log_level level, const char *fmt,
		     va_list ap);

static const struct fsops_config *fs_cfg(void)
{
	return the_cfg;
}

/* ---- the shared open-file state ---- */

static void open_file_free(struct open_file *of)
{
	if (!of)
		return;
	pthread_rwlock_destroy(&of->lock);
	c4gh_reader_free(of->reader);
	cache_file_free(of->cf);
	free(of->url);
	free(of->sums);
	free(of);
}

static int of_fetch(void *ctx, uint64_t off, uint8_t *buf, size_t len)
{
	struct open_file *of = ctx;

	if (of->cf)
		return cache_file_fetch(of->cf, off, buf, len);
	return http_get_range(of->http, of->url, of->data_off + off, len, buf);
}

/*
 * A segment must hash to the digest the signed manifest binds.  Only
 * without the cache: cache_file_fetch() checks every segment it returns.
 */
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

/*
 * The producer reused a nonce: harmless to this read (every tag held,
 * and a market's segments matched their digests first), but a sign of
 * a broken encrypter whose files may leak plaintext to anyone who sees
 * two of them.  Once per open file.
 */
static void of_nonce_reuse(void *ctx, uint64_t first, uint64_t again)
{
	struct open_file *of = ctx;

	log_warn("nonce reuse by producer: segments %llu and %llu of '%s' "
		 "share a nonce", (unsigned long long)first,
		 (unsigned long long)again, of->url);
}

static int open_file_new_plain(const struct fsops_config *cfg,
			       const struct tree_node *node,
			       struct open_file *of, const char **ret_why)
{
	struct c4gh_reader_ops ops = {
		.fetch = of_fetch, .ctx = of, .nonce_reuse = of_nonce_reuse,
		.pool = cfg->pool,
	};
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

static int check_object_header(const struct fsops_config *cfg,
			       const char *url, const struct market_file *f)
{
	uint8_t digest[32], *buf;
	int r;

	if (f->header_len == 0 || f->header_len > C4GH_HEADER_MAX)
		return -EBADMSG;
	buf = malloc(f->header_len);
	if (!buf)
		return -ENOMEM;
	r = http_get_range(cfg->http, url, 0, f->header_len, buf);
	if (r == 0) {
		r = cipher_sha256(buf, f->header_len, digest);
		if (r == 0 && !cipher_memeq(digest, f->header_sha256, 32))
			r = -EBADMSG;
	} else {
		r = -EIO;
	}
	free(buf);
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
	struct c4gh_reader_ops ops = {
		.fetch = of_fetch, .check = of_check, .ctx = of,
		.nonce_reuse = of_nonce_reuse, .pool = cfg->pool,
	};
	struct c4gh_header hdr;
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
	r = http_url_join(state.base, f->object, &of->url);
	if (r < 0)
		goto out_release_header;
	of->data_off = f->header_len;

	/*
	 * Our header comes from the signed licence, so the object's own
	 * (market-sealed) header is never decrypted; still, one that is
	 * not the one the manifest binds means the object was tampered
	 * with or swapped: refuse it.  When it cannot be fetched (offline)
	 * the segments' digests still guard every byte served.
	 */
	r = check_object_header(cfg, of->url, f);
	if (r == -EBADMSG) {
		*ret_why = "header digest";
		goto out_release_header;
	}

	r = http_url_join(state.base, f->sums, &sums_url);
	if (r < 0)
		goto out_release_header;
	if (f->nsegments > SUMS_MAX / 32) {
		r = -EBADMSG;
		goto out_free_url;
	}
	/*
	 * Through the disk cache (by digest), so that opens work offline;
	 * it checks what it returns against the digest the manifest binds.
	 */
	r = cache_get_verified(cfg->cache, sums_url, f->sums_sha256,
			       SUMS_MAX, &of->sums, &len);
	if (r < 0) {
		if (r == -EBADMSG)
			*ret_why = "digest";
		r = r == -EBADMSG ? r : -EIO;
		goto out_free_url;
	}

	*ret_why = "digest";
	if (len != f->nsegments * 32) {
		r = -EBADMSG;
		goto out_free_url;
	}
	of->nsums = f->nsegments;

	/*
	 * Remote segments come through the cache (memory, disk,
	 * read-ahead), which takes the digests over and checks every
	 * segment it returns, so the reader need not hash them a second
	 * time.  Local ones are read from their file, each hashed by
	 * of_check() right before it is decrypted.
	 */
	if (cache_keeps(cfg->cache, of->url)) {
		r = cache_file_new(cfg->cache, of->url, of->data_off,
				   f->data_len, of->sums, of->nsums, &of->cf);
		if (r < 0)
			goto out_free_url;
		of->sums = NULL;
		ops.check = NULL;
	}

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
	pthread_rwlock_init(&of->lock, NULL);
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
	if (!state.proc_ours)
		ev->exe = "unknown";	/* not to be looked up in /proc */
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

/* ---- the kernel's page cache across versions ---- */

/*
 * The kernel keeps one page cache per path, shared by every handle on it.
 * Published versions never change, so pages may stay cached between
 * opens, but after a refresh one path can have handles on two versions.
 * So: the handles of the version whose pages are cached use the cache;
 * an open of another version while such handles exist reads directly
 * (no page cache), and the first open of a new version once they are
 * gone flushes the old pages.  A version is known by its manifest's
 * data digest.
 */
struct cached_path {
	struct cached_path *next;
	char *path;
	uint8_t content[32];		/* data digest of the cached version */
	unsigned int handles;		/* open handles using the cache */
};

#define CACHED_BUCKETS	4096

static pthread_mutex_t cached_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cached_path *cached[CACHED_BUCKETS];

static size_t cached_bucket(const char *path)
{
	size_t h = 5381;

	while (*path)
		h = h * 33 + (unsigned char)*path++;
	return h % CACHED_BUCKETS;
}

/*
 * Decide how an open of path with this content uses the page cache:
 * sets fi's keep_cache or direct_io, and returns the slot the handle
 * holds (release it with cached_put()), or NULL when it holds none.
 */
static struct cached_path *cached_get(const char *path,
				      const uint8_t content[32],
				      struct fuse_file_info *fi)
{
	struct cached_path *c;
	size_t b = cached_bucket(path);

	pthread_mutex_lock(&cached_lock);
	for (c = cached[b]; c; c = c->next)
		if (strcmp(c->path, path) == 0)
			break;
	if (!c) {
		c = calloc(1, sizeof(*c));
		if (c)
			c->path = strdup(path);
		if (!c || !c->path) {
			free(c);
			pthread_mutex_unlock(&cached_lock);
			fi->direct_io = 1;	/* safe without a slot */
			return NULL;
		}
		memcpy(c->content, content, 32);
		c->next = cached[b];
		cached[b] = c;
		fi->keep_cache = 0;	/* nothing known about old pages */
	} else if (memcmp(c->content, content, 32) == 0) {
		fi->keep_cache = 1;
	} else if (c->handles > 0) {
		pthread_mutex_unlock(&cached_lock);
		fi->direct_io = 1;	/* another version is being read */
		return NULL;
	} else {
		memcpy(c->content, content, 32);
		fi->keep_cache = 0;	/* flush the old version's pages */
	}
	c->handles++;
	pthread_mutex_unlock(&cached_lock);
	return c;
}

static void cached_put(struct cached_path *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&cached_lock);
	c->handles--;
	pthread_mutex_unlock(&cached_lock);
}

/* ---- the current tree ---- */

static struct gen *gen_get(void)
{
	struct gen *g;

	pthread_rwlock_rdlock(&state.lock);
	g = state.gen;
	__atomic_add_fetch(&g->refs, 1, __ATOMIC_SEQ_CST);
	pthread_rwlock_unlock(&state.lock);
	return g;
}

static void gen_put(struct gen *g)
{
	if (g && __atomic_sub_fetch(&g->refs, 1, __ATOMIC_SEQ_CST) == 0) {
		tree_free(g->tree);
		free(g);
	}
}

static struct gen *gen_new(struct tree *tree)
{
	struct gen *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	g->tree = tree;
	g->refs = 1;
	return g;
}

/* ---- who asks ---- */

struct caller {
	struct policy_caller pc;
	char user[64];
	char exe[PATH_MAX];
	char *group_names[64];
	size_t ngroups;
	char group_buf[64][64];
};

/*
 * Identify the caller of this request: its uid, its groups (read from
 * the calling task, not from any cache), and its executable.
 */
static void caller_get(struct caller *c)
{
	struct fuse_context *ctx = fuse_get_context();
	char buf[4096], path[64];
	gid_t gids[64];
	struct passwd pw, *pwp = NULL;
	struct group gr, *grp;
	ssize_t n;
	pid_t pid;
	int ng, i;

	memset(c, 0, sizeof(*c));
	c->pc.uid = ctx->uid;
	if (getpwuid_r(ctx->uid, &pw, buf, sizeof(buf), &pwp) == 0 && pwp) {
		snprintf(c->user, sizeof(c->user), "%s", pw.pw_name);
		c->pc.user = c->user;
	}

	/*
	 * pid 0: the caller is in a PID namespace the daemon cannot see,
	 * and libfuse would read "/proc/0/...".  Its groups are unknown:
	 * only its primary gid counts.  The same when /proc is not of the
	 * daemon's PID namespace: the pid would name another process.
	 */
	pid = state.proc_ours ? ctx->pid : 0;
	ng = pid > 0 ? fuse_getgroups(64, gids) : 0;
	if (ng < 0 || ng > 63)
		ng = 0;
	gids[ng++] = ctx->gid;
	for (i = 0; i < ng && c->ngroups < 64; i++) {
		grp = NULL;
		if (getgrgid_r(gids[i], &gr, buf, sizeof(buf), &grp) != 0 ||
		    !grp)
			continue;
		snprintf(c->group_buf[c->ngroups], 64, "%s", gr.gr_name);
		c->group_names[c->ngroups] = c->group_buf[c->ngroups];
		c->ngroups++;
	}
	c->pc.groups = (const char *const *)c->group_names;
	c->pc.ngroups = c->ngroups;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	n = pid > 0 ? readlink(path, c->exe, sizeof(c->exe) - 1) : -1;
	if (n > 0) {
		c->exe[n] = '\0';
		c->pc.exe = c->exe;
	}
}

/* ---- seats: local users holding a dataset open ---- */

static void seats_count(const char *dataset, uid_t uid,
			unsigned int *ret_others, int *ret_holds)
{
	size_t i;

	*ret_others = 0;
	*ret_holds = 0;
	for (i = 0; i < state.nseats; i++) {
		if (strcmp(state.seats[i].dataset, dataset) != 0)
			continue;
		if (state.seats[i].uid == uid)
			*ret_holds = 1;
		else
			(*ret_others)++;
	}
}

static int seat_take(const char *dataset, uid_t uid)
{
	struct seat *ns;
	size_t i;

	for (i = 0; i < state.nseats; i++) {
		if (state.seats[i].uid == uid &&
		    strcmp(state.seats[i].dataset, dataset) == 0) {
			state.seats[i].handles++;
			return 0;
		}
	}
	ns = realloc(state.seats, (state.nseats + 1) * sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	state.seats = ns;
	ns[state.nseats].dataset = strdup(dataset);
	if (!ns[state.nseats].dataset)
		return -ENOMEM;
	ns[state.nseats].uid = uid;
	ns[state.nseats].handles = 1;
	state.nseats++;
	return 0;
}

static void seat_release(const char *dataset, uid_t uid)
{
	size_t i;

	pthread_mutex_lock(&state.seats_lock);
	for (i = 0; i < state.nseats; i++) {
		if (state.seats[i].uid != uid ||
		    strcmp(state.seats[i].dataset, dataset) != 0)
			continue;
		if (--state.seats[i].handles == 0) {
			free(state.seats[i].dataset);
			state.seats[i] = state.seats[--state.nseats];
		}
		break;
	}
	pthread_mutex_unlock(&state.seats_lock);
}

/* ---- decisions ---- */

/*
 * Steps 2-5 of design §4 for a market file (the signature was verified
 * and bound to our key when the licence was loaded): policy_decide()
 * with trusted time, the newest revocation list and this caller.  When
 * ret_seat is not NULL this is an open: a seat is taken under seats_lock
 * when it is allowed; with NULL it only says what an open would get.
 */
static int decide_market(const struct gen *g, const struct tree_node *node,
			 const struct caller *c, struct policy_decision *d,
			 int *ret_seat)
{
	const struct fsops_config *cfg = fs_cfg();
	const struct tree_dataset *ds = node->dataset;
	struct policy_input in;

	if (ret_seat)
		*ret_seat = 0;
	if (ds->replayed) {
		memset(d, 0, sizeof(*d));
		snprintf(d->detail, sizeof(d->detail), "licence serial %llu "
			 "is older than one already seen",
			 (unsigned long long)ds->licence->serial);
		d->reason = "licence replayed";
		d->err = -EACCES;
		return d->err;
	}

	memset(&in, 0, sizeof(in));
	in.licence = ds->licence;
	in.revocations = g->tree->revocations;
	trust_time_now(cfg->trust, &in.time);
	in.caller = &c->pc;
	in.shared = state.shared;
	in.owner = state.owner;
	in.site = cfg->site;

	pthread_mutex_lock(&state.seats_lock);
	seats_count(ds->id, c->pc.uid, &in.seats_used, &in.holds_seat);
	policy_decide(&in, d);
	if (ret_seat && d->err == 0 && seat_take(ds->id, c->pc.uid) == 0)
		*ret_seat = 1;
	pthread_mutex_unlock(&state.seats_lock);
	if (ret_seat && in.time.rollback)
		log_warn("clock rollback: system clock is behind the last "
			 "signed market time; time-limited licences refused");
	return d->err;
}

/* A plain folder: holding the key is the licence; who asks still counts. */
static int decide_plain(const struct caller *c, struct policy_decision *d)
{
	const struct fsops_config *cfg = fs_cfg();

	memset(d, 0, sizeof(*d));
	d->reason = "key holder";
	if (policy_site_program(cfg->site, c->pc.exe) ==
	    POLICY_PROGRAM_DENIED) {
		d->reason = "program denied by site policy";
		d->err = -EACCES;
	} else if (!state.shared && c->pc.uid != state.owner) {
		d->reason = "not the mounting user";
		d->err = -EACCES;
	} else if (state.shared && c->pc.uid != state.owner &&
		   !policy_site_allows(cfg->site, "*", &c->pc)) {
		d->reason = "site policy says no";
		d->err = -EACCES;
	}
	return d->err;
}

/*
 * Denials of programs the site policy names (indexers) are logged once
 * a minute per program, with a count, so a crawler cannot flood the log.
 */
static int indexer_quiet(const struct caller *c, const char *reason,
			 unsigned long *ret_suppressed)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static char last_exe[PATH_MAX];
	static time_t last_time;
	static unsigned long suppressed;
	time_t now = time(NULL);
	int quiet = 0;

	if (strcmp(reason, "program denied by site policy") != 0)
		return 0;
	pthread_mutex_lock(&lock);
	if (strcmp(last_exe, c->exe) == 0 && now - last_time < 60) {
		suppressed++;
		quiet = 1;
	} else {
		snprintf(last_exe, sizeof(last_exe), "%s", c->exe);
		last_time = now;
		*ret_suppressed = suppressed;
		suppressed = 0;
	}
	pthread_mutex_unlock(&lock);
	return quiet;
}

/*
 * Under the folder of a dataset whose licence did not verify, every path
 * but its terms file is refused and logged (design §4: a bad signature
 * is EACCES), rather than looking absent.
 */
static int refuse_rejected(const struct tree *tree, const char *path,
			   const char *event)
{
	const struct tree_rejected *rj = tree_rejected_for(tree, path);
	struct alog_event ev;
	const char *file;

	if (!rj)
		return -ENOENT;
	file = path + strlen("/datasets/") + strlen(rj->dataset);
	if (*file == '/')
		file++;
	event_for(&ev, event, NULL);
	ev.decision = "deny";
	ev.reason = rj->reason;
	ev.dataset = rj->dataset;
	ev.licence = rj->licence;
	ev.file = file;
	return record(&ev, -EACCES);
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
	struct policy_decision d = { 0 };
	struct tree_node *node;
	struct alog_event ev;
	struct handle *h;
	struct caller *c;
	struct gen *g;
	const char *why = NULL;
	unsigned long suppressed = 0;
	int r, seat = 0;

	g = gen_get();
	r = tree_lookup(g->tree, path, &node);
	if (r == -ENOENT)
		r = refuse_rejected(g->tree, path, "open");
	if (r < 0)
		goto out_put_gen;
	r = -EISDIR;
	if (node->kind == TREE_DIR)
		goto out_put_gen;

	if ((fi->flags & O_ACCMODE) != O_RDONLY ||
	    (fi->flags & (O_TRUNC | O_CREAT))) {
		r = deny(node, "write access", -EROFS, NULL);
		goto out_put_gen;
	}

	c = malloc(sizeof(*c));
	r = -ENOMEM;
	if (!c)
		goto out_put_gen;
	caller_get(c);
	r = 0;
	if (node->kind == TREE_DATA && node->mfile)
		r = decide_market(g, node, c, &d, &seat);
	else if (node->kind == TREE_DATA)
		r = decide_plain(c, &d);
	else
		d.reason = "public text";
	if (r < 0 && d.reason) {
		char detail[320];

		if (indexer_quiet(c, d.reason, &suppressed)) {
			free(c);
			goto out_put_gen;
		}
		snprintf(detail, sizeof(detail), "%s%s", d.detail,
			 suppressed ? " (earlier denials of it suppressed)" :
			 "");
		free(c);
		r = deny(node, d.reason, r, detail[0] ? detail : NULL);
		goto out_put_gen;
	}
	if (policy_site_program(fs_cfg()->site, c->pc.exe) ==
	    POLICY_PROGRAM_FLAGGED)
		d.reason = "licence valid; program flagged by site policy";

	h = calloc(1, sizeof(*h));
	r = -ENOMEM;
	if (!h) {
		free(c);
		goto out_release_seat;
	}
	h->exe = c->pc.exe ? strdup(c->pc.exe) : NULL;
	free(c);
	h->gen = g;
	h->node = node;
	h->seat = seat;
	h->uid = fuse_get_context()->uid;
	h->gid = fuse_get_context()->gid;
	h->pid = fuse_get_context()->pid;
	clock_gettime(CLOCK_MONOTONIC, &h->start);

	if (node->kind == TREE_DATA) {
		r = open_file_get(fs_cfg(), node, &h->of, &why);
		if (r < 0) {
			char detail[256];

			snprintf(detail, sizeof(detail), "%s failed: %s", why,
				 r == -EIO ? http_last_error() :
				 c4gh_strerror(r));
			free(h->exe);
			free(h);
			log_error("'%s': %s", path, detail);
			r = deny(node, "integrity failure", -EIO, detail);
			goto out_release_seat;
		}
	}

	event_for(&ev, "open", node);
	ev.decision = "allow";
	ev.reason = d.reason;
	ev.detail = d.detail[0] ? d.detail : NULL;
	r = record(&ev, 0);
	if (r < 0) {
		if (h->of)
			open_file_put(node);
		free(h->exe);
		free(h);
		goto out_release_seat;
	}

	/* Published versions never change: their pages may stay cached. */
	if (node->mfile)
		h->cp = cached_get(path, node->mfile->data_sha256, fi);
	else
		fi->keep_cache = 0;	/* text and plain files may change */
	fi->fh = (uintptr_t)h;
	return 0;

out_release_seat:
	if (seat)
		seat_release(node->dataset->id, fuse_get_context()->uid);
out_put_gen:
	gen_put(g);
	return r;
}

/*
 * A "cut" licence stops open handles as soon as it ends: checked on
 * every read against trusted time and the newest revocation list.
 */
static int handle_cut(const struct handle *h)
{
	const struct tree_dataset *ds = h->node->dataset;
	struct trust_time tt;
	const char *status;
	struct gen *g;
	int r = 0;

	if (!ds || !h->node->mfile || ds->licence->on_end != MARKET_END_CUT)
		return 0;
	trust_time_now(fs_cfg()->trust, &tt);
	g = gen_get();
	status = policy_licence_status(ds->licence, g->tree->revocations,
				       tt.now);
	gen_put(g);
	if (strcmp(status, "revoked") == 0)
		r = -EKEYREVOKED;
	else if (strcmp(status, "expired") == 0)
		r = -EKEYEXPIRED;
	return r;
}

static void log_read_failure(struct handle *h,
			     const struct c4gh_reader_error *e)
{
	struct alog_event ev;
	const char *cause = NULL;
	char detail[256];

	if (__atomic_exchange_n(&h->failure_logged, 1, __ATOMIC_SEQ_CST))
		return;
	/* A fetch through the cache keeps its own cause (it may have been
	 * another thread's download). */
	if (h->of && h->of->cf && e->what && strcmp(e->what, "fetch") == 0)
		cause = cache_last_error();
	else if (e->err == -EIO)
		cause = http_last_error();
	snprintf(detail, sizeof(detail), "segment %llu: %s failed%s%s",
		 (unsigned long long)e->segment, e->what ? e->what : "read",
		 cause ? ": " : "", cause ? cause : "");
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
	int r;

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

	r = handle_cut(h);
	if (r < 0)
		return r;

	/* Shared: a "cut" licence ending takes it exclusively to wipe. */
	pthread_rwlock_rdlock(&h->of->lock);
	if (!h->of->reader) {
		r = h->of->ended ? h->of->ended : -EIO;
		pthread_rwlock_unlock(&h->of->lock);
		return r;
	}
	n = c4gh_reader_pread(h->of->reader, buf, size, (uint64_t)off, &e);
	pthread_rwlock_unlock(&h->of->lock);
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
	if (h->exe)
		ev.exe = h->exe;
	ev.bytes = (int64_t)h->bytes;
	ev.duration_ms = (now.tv_sec - h->start.tv_sec) * 1000 +
			 (now.tv_nsec - h->start.tv_nsec) / 1000000;
	if (alog_write(fs_cfg()->alog, &ev) < 0)
		log_error("ACCESS LOG CANNOT BE WRITTEN: release of '%s' "
			  "not recorded", h->node->relpath);

	if (h->of)
		open_file_put(h->node);
	if (h->seat)
		seat_release(h->node->dataset->id, h->uid);
	cached_put(h->cp);
	gen_put(h->gen);
	free(h->exe);
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

	struct gen *g;

	if (fi && fi->fh) {
		fill_stat(((struct handle *)(uintptr_t)fi->fh)->node, st);
		return 0;
	}
	g = gen_get();
	r = tree_lookup(g->tree, path, &node);
	if (r == 0)
		fill_stat(node, st);
	else if (r == -ENOENT)
		r = refuse_rejected(g->tree, path, "lookup");
	gen_put(g);
	return r;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t filler,
		      off_t off, struct fuse_file_info *fi,
		      enum fuse_readdir_flags flags)
{
	struct tree_node *node;
	struct stat st;
	enum fuse_fill_dir_flags plus;
	size_t i;
	int r;

	struct gen *g;

	(void)fi;
	g = gen_get();
	r = tree_lookup(g->tree, path, &node);
	if (r < 0)
		goto out_put_gen;
	r = -ENOTDIR;
	if (node->kind != TREE_DIR)
		goto out_put_gen;

	/*
	 * Each entry carries its own offset ("." 1, ".." 2, child i i + 3),
	 * so every call fills one reply from where the kernel left off.
	 * libfuse passes attributes on to the kernel (READDIRPLUS) only in
	 * this mode: with offsets of 0 it sends the names alone, and "ls -l"
	 * of a big folder then costs one LOOKUP round trip per entry.
	 */
	r = 0;
	fill_stat(node, &st);
	if (off < 1 && filler(buf, ".", &st, 1, 0))
		goto out_put_gen;
	if (off < 2 && filler(buf, "..", NULL, 2, 0))
		goto out_put_gen;
	plus = (flags & FUSE_READDIR_PLUS) ? FUSE_FILL_DIR_PLUS : 0;
	for (i = off > 2 ? (size_t)off - 2 : 0; i < node->nchildren; i++) {
		fill_stat(node->children[i], &st);
		if (filler(buf, node->children[i]->name, &st, (off_t)i + 3,
			   plus))
			break;
	}
out_put_gen:
	gen_put(g);
	return r;
}

static int fs_access(const char *path, int mask)
{
	struct tree_node *node;
	int r;

	struct gen *g;

	g = gen_get();
	r = tree_lookup(g->tree, path, &node);
	if (r == 0 && (mask & W_OK))
		r = -EROFS;
	else if (r == 0 && (mask & X_OK) && node->kind != TREE_DIR)
		r = -EACCES;
	gen_put(g);
	return r;
}

/* ---- extended attributes: the licence in plain sight ---- */

#define XATTR_PREFIX	"user.marketfs."

static const char *const xattr_names[] = {
	"dataset", "licence", "version", "status", "not_before", "expires",
	"on_end", "sha256", "decision", NULL
};

/*
 * What an open by the caller of this request would get now, and why:
 * the same decision as fs_open() takes, without taking a seat or
 * logging (nothing is opened).
 */
static void xattr_decision(const struct tree_node *node, char *buf,
			   size_t len)
{
	struct policy_decision d = { 0 };
	struct caller *c = malloc(sizeof(*c));
	struct gen *g;

	if (!c) {
		snprintf(buf, len, "unknown: out of memory");
		return;
	}
	caller_get(c);
	g = gen_get();
	(void)decide_market(g, node, c, &d, NULL);
	gen_put(g);
	if (d.err)
		snprintf(buf, len, "deny %s: %s%s%s", alog_errno_name(-d.err),
			 d.reason, d.detail[0] ? "; " : "", d.detail);
	else
		snprintf(buf, len, "allow: %s%s%s", d.reason,
			 d.detail[0] ? "; " : "", d.detail);
	free(c);
}

/* The value of one attribute of node into buf; -ENODATA if it has none. */
static int xattr_value(const struct tree_node *node, const char *name,
		       char *buf, size_t len)
{
	const struct tree_dataset *ds = node->dataset;
	const struct market_licence *l;
	struct trust_time tt;
	const char *sha;
	struct gen *g;

	if (!ds)
		return -ENODATA;
	l = ds->licence;
	if (strcmp(name, "dataset") == 0)
		snprintf(buf, len, "%s", ds->id);
	else if (strcmp(name, "licence") == 0)
		snprintf(buf, len, "%s", l->id);
	else if (strcmp(name, "version") == 0)
		snprintf(buf, len, "%s", l->version);
	else if (strcmp(name, "not_before") == 0)
		timeutil_format(l->not_before, buf);
	else if (strcmp(name, "expires") == 0)
		timeutil_format(l->expires, buf);
	else if (strcmp(name, "on_end") == 0)
		snprintf(buf, len, "%s", l->on_end == MARKET_END_CUT ?
			 "cut" : "finish");
	else if (strcmp(name, "status") == 0) {
		trust_time_now(fs_cfg()->trust, &tt);
		g = gen_get();
		snprintf(buf, len, "%s", ds->replayed ? "replayed" :
			 tt.rollback ? "clock-rollback" :
			 policy_licence_status(l, g->tree->revocations,
					       tt.now));
		gen_put(g);
	} else if (strcmp(name, "decision") == 0) {
		if (node->kind == TREE_TEXT)
			snprintf(buf, len, "allow: public text");
		else
			xattr_decision(node, buf, len);
	} else if (strcmp(name, "sha256") == 0) {
		sha = node->kind == TREE_DATA ? tree_node_sha256(node) : NULL;
		if (!sha)
			return -ENODATA;
		snprintf(buf, len, "%s", sha);
	} else {
		return -ENODATA;
	}
	return (int)strlen(buf);
}

static int fs_getxattr(const char *path, const char *name, char *value,
		       size_t size)
{
	struct tree_node *node;
	char buf[512];
	struct gen *g;
	int r;

	if (strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX)) != 0)
		return -ENODATA;
	g = gen_get();
	r = tree_lookup(g->tree, path, &node);
	if (r == 0)
		r = xattr_value(node, name + strlen(XATTR_PREFIX), buf,
				sizeof(buf));
	gen_put(g);
	if (r < 0 || size == 0)
		return r;
	if ((size_t)r > size)
		return -ERANGE;
	memcpy(value, buf, (size_t)r);
	return r;
}

static int fs_listxattr(const char *path, char *list, size_t size)
{
	struct tree_node *node;
	char buf[512];
	size_t total = 0, i, n;
	struct gen *g;
	int r;

	g = gen_get();
	r = tree_lookup(g->tree, path, &node);
	for (i = 0; r == 0 && xattr_names[i]; i++) {
		if (xattr_value(node, xattr_names[i], buf, sizeof(buf)) < 0)
			continue;
		n = strlen(XATTR_PREFIX) + strlen(xattr_names[i]) + 1;
		if (size && total + n > size) {
			r = -ERANGE;
			break;
		}
		if (size)
			snprintf(list + total, n, "%s%s", XATTR_PREFIX,
				 xattr_names[i]);
		total += n;
	}
	gen_put(g);
	return r < 0 ? r : (int)total;
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

/*
 * Read-ahead sized to sequential readers.  The kernel gives a FUSE
 * mount 128 KiB of read-ahead and INIT can only lower it, so it is
 * raised afterwards through the mount's bdi in sysfs (root only;
 * elsewhere the default stays).  With 2 MiB the kernel keeps two 1 MiB
 * reads in flight, which the worker threads decrypt in parallel
 * (scripts/bench: about 1.3x on a fresh sequential read).
 */
#define READ_AHEAD_KB	"2048\n"

static const char *ra_mountpoint;	/* set by fsops_run */

static void *readahead_thread(void *arg)
{
	char *mnt = arg, path[64];
	struct statvfs sv;
	struct stat st;
	int fd;

	/* A request waits for INIT: after it, the kernel's value is set. */
	if (statvfs(mnt, &sv) < 0 || stat(mnt, &st) < 0)
		goto out_free_mnt;
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb",
		 major(st.st_dev), minor(st.st_dev));
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, READ_AHEAD_KB, strlen(READ_AHEAD_KB)) < 0)
		log_debug("read-ahead stays at the kernel's default: %s",
			  strerror(errno));
	if (fd >= 0)
		close(fd);
out_free_mnt:
	free(mnt);
	return NULL;
}

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *fc)
{
	pthread_attr_t attr;
	pthread_t t;
	char *mnt;

	/* Attributes never change while mounted; decisions are per open. */
	fc->entry_timeout = 1.0;
	fc->attr_timeout = 1.0;
	fc->negative_timeout = 1.0;
	fc->use_ino = 0;
	fc->nullpath_ok = 0;

	/* Let read-ahead and big reads overlap in the worker threads. */
	if (conn->max_background < 32)
		conn->max_background = 32;
	mnt = ra_mountpoint ? strdup(ra_mountpoint) : NULL;
	if (mnt && pthread_attr_init(&attr) == 0) {
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &attr, readahead_thread, mnt) == 0)
			mnt = NULL;
		pthread_attr_destroy(&attr);
	}
	free(mnt);
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
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
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
	KEY_ALLOW_OTHER,
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
	MFS_OPT("site_policy=%s", site_policy),
	MFS_OPT("refresh=%s", refresh),
	FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
	MFS_OPT("cache_dir=%s", cache_dir),
	MFS_OPT("cache_size=%s", cache_size),
	MFS_OPT("plain_cache=%s", plain_cache),
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
	case KEY_ALLOW_OTHER:
		opt->allow_other = 1;
		return 1;	/* and libfuse acts on it */
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
		if (arg[0] == '-' && strncmp(arg, "-o", 2) != 0) {
			snprintf(ps->msg, ps->msglen, "unknown option '%s'",
				 arg);
			return -1;
		}
		return 1;	/* FUSE options go on to libfuse */
	}
}

static int is_hex64(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!isxdigit((unsigned char)s[i]))
			return 0;
	return i == 64;
}

/*
 * A mount point left behind by a daemon that died answers ENOTCONN to
 * everything; detach it, so that running the same command again is all
 * it takes to recover.
 */
static int unmount_stale(const char *mountpoint)
{
	char *const argv[] = {
		(char *)"fusermount3", (char *)"-u", (char *)"-z",
		(char *)mountpoint, NULL
	};
	extern char **environ;
	int status;
	pid_t pid;

	if (posix_spawnp(&pid, "fusermount3", NULL, NULL, argv, environ))
		return -ENOENT;
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		return -EIO;
	return 0;
}

/* Is path a mount point already (from /proc/self/mountinfo)? */
static int is_mounted(const char *path)
{
	char line[4096], mp[PATH_MAX];
	int found = 0;
	FILE *f;

	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f)) {
		const char *p = line;
		size_t o = 0;
		int field;

		/* The fifth field, with spaces written as \040 and so on. */
		for (field = 0; field < 4 && p; field++) {
			p = strchr(p, ' ');
			if (p)
				p++;
		}
		if (!p)
			continue;
		while (*p && *p != ' ' && o < sizeof(mp) - 1) {
			if (p[0] == '\\' && p[1] && p[2] && p[3]) {
				mp[o++] = (char)(((p[1] - '0') << 6) |
						 ((p[2] - '0') << 3) |
						 (p[3] - '0'));
				p += 4;
			} else {
				mp[o++] = *p++;
			}
		}
		mp[o] = '\0';
		found = strcmp(mp, path) == 0;
	}
	fclose(f);
	return found;
}

/*
 * The mount point must be a directory nothing is mounted on; a stale
 * marketfs mount there is detached first.  Errors other than -EINVAL
 * are not usage mistakes.
 */
static int check_mountpoint(struct fsops_options *opt, char *msg,
			    size_t msglen)
{
	struct statfs sf;
	struct stat st;
	char *abs;

	/*
	 * A dead mount answers ENOTCONN, but stat() of its root may still be
	 * served from the kernel's attribute cache: ask statfs() too.
	 */
	if ((stat(opt->mountpoint, &st) < 0 && errno == ENOTCONN) ||
	    (statfs(opt->mountpoint, &sf) < 0 && errno == ENOTCONN)) {
		if (unmount_stale(opt->mountpoint) < 0) {
			snprintf(msg, msglen, "mount point '%s' is a dead "
				 "mount and could not be detached: run "
				 "fusermount3 -u -z '%s'", opt->mountpoint,
				 opt->mountpoint);
			return -ENOTCONN;
		}
		log_notice("mount point '%s' was left by a daemon that "
			   "died: detached it", opt->mountpoint);
	}

	abs = realpath(opt->mountpoint, NULL);
	if (!abs) {
		snprintf(msg, msglen, "mount point '%s': %s", opt->mountpoint,
			 strerror(errno));
		return -ENOENT;
	}
	free(opt->mountpoint);
	opt->mountpoint = abs;

	if (stat(abs, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(msg, msglen, "mount point '%s' is not a directory",
			 abs);
		return -ENOTDIR;
	}
	if (is_mounted(abs)) {
		snprintf(msg, msglen, "'%s' is already a mount point: "
			 "unmount it first (fusermount3 -u '%s')", abs, abs);
		return -EBUSY;
	}
	return 0;
}

int fsops_check_fuse_args(struct fsops_options *opt)
{
	struct fuse_args *args = opt->fuse_args, copy;
	struct fuse_operations none;
	struct fuse *fuse;
	int i;

	/* libfuse knows its options: ask it, without mounting anything. */
	fuse_set_log_func(log_fuse);
	memset(&none, 0, sizeof(none));
	memset(&copy, 0, sizeof(copy));
	for (i = 0; i < args->argc; i++)
		if (fuse_opt_add_arg(&copy, args->argv[i]) < 0)
			return -ENOMEM;
	fuse = fuse_new(&copy, &none, sizeof(none), NULL);
	fuse_opt_free_args(&copy);
	if (!fuse)
		return -EINVAL;
	fuse_destroy(fuse);
	return 0;
}

int fsops_parse_args(int argc, char *argv[], struct fsops_options *ret,
		     char *msg, size_t msglen)
{
	struct fuse_args *args;

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

	if (ret->market_key && !is_hex64(ret->market_key)) {
		snprintf(msg, msglen, "market_key must be the market's key "
			 "fingerprint: 64 hex digits");
		return -EINVAL;
	}

	return check_mountpoint(ret, msg, msglen);
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
	free(opt->site_policy);
	free(opt->refresh);
	free(opt->cache_dir);
	free(opt->cache_size);
	free(opt->plain_cache);
	memset(opt, 0, sizeof(*opt));
}

/* ---- running ---- */

static void log_fuse(enum fuse_log_level level, const char *fmt, va_list ap)
{
	/*
	 * libfuse writes some messages in pieces (the unknown-option one in
	 * three): gather them until one ends a line, per thread.
	 */
	static __thread char line[1024];
	static __thread size_t used;
	const char *msg = line;
	size_t n;
	char *p;

	vsnprintf(line + used, sizeof(line) - used, fmt, ap);
	n = strlen(line);
	if (n == 0 || (line[n - 1] != '\n' && n < sizeof(line) - 1)) {
		used = n;
		return;
	}
	used = 0;
	for (p = line; *p; p++)
		if (*p == '\n')
			*p = ' ';
	while (p > line && p[-1] == ' ')
		*--p = '\0';
	if (strncmp(msg, "fuse: ", 6) == 0)
		msg += 6;
	log_msg(level <= FUSE_LOG_ERR ? LOG_LVL_ERR :
		level == FUSE_LOG_WARNING ? LOG_LVL_WARNING :
		level <= FUSE_LOG_INFO ? LOG_LVL_INFO : LOG_LVL_DEBUG,
		"fuse: %s", msg);
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

/* ---- while mounted: licence ends and refreshes ---- */

/* Drop the kernel's cached pages and attributes of a dataset's files. */
static void invalidate_dataset(const struct tree_node *dir, const char *path)
{
	char *child = NULL;
	size_t i;

	for (i = 0; i < dir->nchildren; i++) {
		const struct tree_node *n = dir->children[i];

		if (asprintf(&child, "%s/%s", path, n->name) < 0)
			return;
		if (n->kind == TREE_DIR)
			invalidate_dataset(n, child);
		else
			(void)fuse_invalidate_path(state.fuse, child);
		free(child);
		child = NULL;
	}
	(void)fuse_invalidate_path(state.fuse, path);
}

/* Wipe the keys of every open file of a dataset whose licence cut. */
static void cut_open_files(struct tree_node *dir, int err)
{
	struct open_file *of;
	size_t i;

	for (i = 0; i < dir->nchildren; i++) {
		struct tree_node *n = dir->children[i];

		if (n->kind == TREE_DIR) {
			cut_open_files(n, err);
			continue;
		}
		pthread_mutex_lock(&open_lock);
		of = n->open_state;
		if (of) {
			pthread_rwlock_wrlock(&of->lock);
			of->reader = c4gh_reader_free(of->reader);
			of->ended = err;
			pthread_rwlock_unlock(&of->lock);
		}
		pthread_mutex_unlock(&open_lock);
	}
}

static struct status_memo *memo_for(const char *licence_id)
{
	struct status_memo *nm;
	size_t i;

	for (i = 0; i < state.nmemo; i++)
		if (strcmp(state.memo[i].licence, licence_id) == 0)
			return &state.memo[i];
	nm = realloc(state.memo, (state.nmemo + 1) * sizeof(*nm));
	if (!nm)
		return NULL;
	state.memo = nm;
	memset(&nm[state.nmemo], 0, sizeof(*nm));
	nm[state.nmemo].licence = strdup(licence_id);
	if (!nm[state.nmemo].licence)
		return NULL;
	return &nm[state.nmemo++];
}

static void dataset_event(const struct tree_dataset *ds, const char *event,
			  const char *detail)
{
	struct alog_event ev;

	alog_event_init(&ev);
	ev.event = event;
	ev.dataset = ds->id;
	ev.version = ds->licence->version;
	ev.licence = ds->licence->id;
	ev.detail = detail;
	if (alog_write(fs_cfg()->alog, &ev) < 0)
		log_error("ACCESS LOG CANNOT BE WRITTEN: '%s' of '%s' not "
			  "recorded", event, ds->id);
}

/*
 * Look at every licence once: when one stops being valid, say so, drop
 * the kernel's caches of its dataset and, for "cut", wipe the keys of
 * its open files; warn some days before one expires.
 */
static void watch_licences(void)
{
	struct trust_time tt;
	struct gen *g;
	char detail[256], when[TIMEUTIL_RFC3339_LEN];
	size_t i;

	trust_time_now(fs_cfg()->trust, &tt);
	g = gen_get();
	for (i = 0; i < g->tree->ndatasets; i++) {
		struct tree_dataset *ds = g->tree->datasets[i];
		const struct market_licence *l = ds->licence;
		struct status_memo *m = memo_for(l->id);
		struct tree_node *dir;
		const char *status;
		char *path = NULL;

		if (!m)
			continue;
		status = policy_licence_status(l, g->tree->revocations,
					       tt.now);
		if (strcmp(status, "valid") == 0 && !m->warned &&
		    l->expires - tt.now <= EXPIRY_WARNING) {
			timeutil_format(l->expires, when);
			snprintf(detail, sizeof(detail), "licence expires at "
				 "%s, in %lld hours", when,
				 (long long)(l->expires - tt.now) / 3600);
			log_warn("dataset '%s': %s", ds->id, detail);
			dataset_event(ds, "expiry-warning", detail);
			m->warned = 1;
		}
		if (m->status && strcmp(m->status, status) == 0)
			continue;
		if (m->status && strcmp(m->status, "valid") == 0) {
			int err = strcmp(status, "revoked") == 0 ?
				  -EKEYREVOKED : -EKEYEXPIRED;

			timeutil_format(tt.now, when);
			snprintf(detail, sizeof(detail), "licence %s at %s "
				 "(trusted time); open files %s", status,
				 when, l->on_end == MARKET_END_CUT ?
				 "cut" : "may finish");
			log_notice("dataset '%s': %s", ds->id, detail);
			dataset_event(ds, strcmp(status, "revoked") == 0 ?
				      "revoked" : "expired", detail);
			if (asprintf(&path, "/datasets/%s", ds->id) >= 0 &&
			    tree_lookup(g->tree, path, &dir) == 0) {
				if (l->on_end == MARKET_END_CUT)
					cut_open_files(dir, err);
				invalidate_dataset(dir, path);
			}
			free(path);
		}
		m->status = status;
	}
	gen_put(g);
}

/*
 * Load the market again and make it current.  Handles already open keep
 * the tree (and so the dataset version) they opened; the kernel's caches
 * of every dataset whose version changed or went away are dropped.
 */
static void refresh(void)
{
	const struct fsops_config *cfg = fs_cfg();
	struct tree_config tc = *cfg->tree_config;
	struct tree *tree = NULL;
	struct gen *g, *old;
	char msg[TREE_MSG_LEN], detail[TREE_MSG_LEN + 64], *path = NULL;
	struct tree_node *dir;
	size_t i, j;
	int r;

	tc.trust = cfg->trust;
	r = tree_load(&tc, &tree, msg);
	if (r < 0) {
		snprintf(detail, sizeof(detail), "refresh failed, keeping "
			 "what was loaded: %s", msg);
		log_warn("%s", detail);
		record_daemon_event(cfg, "refresh", detail);
		return;
	}
	g = gen_new(tree);
	if (!g) {
		tree_free(tree);
		return;
	}

	pthread_rwlock_wrlock(&state.lock);
	old = state.gen;
	state.gen = g;
	pthread_rwlock_unlock(&state.lock);

	for (i = 0; i < old->tree->ndatasets; i++) {
		const struct tree_dataset *o = old->tree->datasets[i];
		const struct tree_dataset *n = NULL;

		for (j = 0; j < tree->ndatasets; j++)
			if (strcmp(tree->datasets[j]->id, o->id) == 0)
				n = tree->datasets[j];
		if (n && strcmp(n->licence->version, o->licence->version) == 0)
			continue;
		if (asprintf(&path, "/datasets/%s", o->id) >= 0 &&
		    tree_lookup(old->tree, path, &dir) == 0)
			invalidate_dataset(dir, path);
		free(path);
		path = NULL;
	}
	(void)fuse_invalidate_path(state.fuse, "/datasets");
	gen_put(old);

	snprintf(detail, sizeof(detail), "%zu licensed datasets; "
		 "revocation list version %llu%s", tree->ndatasets,
		 tree->revocations ?
		 (unsigned long long)tree->revocations->version : 0ULL,
		 tree->revocations_offline ? " (saved copy)" : "");
	log_info("refreshed: %s", detail);
	record_daemon_event(cfg, "refresh", detail);
}

static void on_sighup(int sig)
{
	(void)sig;
	state.refresh_asked = 1;
	sem_post(&state.wake);
}

/* One thread: licence ends every second, refreshes when due or asked. */
static void *watch_thread(void *arg)
{
	const struct fsops_config *cfg = arg;
	struct timespec deadline;
	time_t next_refresh = 0;
	/* cfg->tree is freed by the first refresh: read it once, now. */
	int is_market = cfg->tree->is_market;

	if (cfg->refresh_interval > 0)
		next_refresh = time(NULL) + cfg->refresh_interval;
	/*
	 * Note every licence's status now: an end is logged (and acted on)
	 * as a change from it, even when a SIGHUP comes before the first
	 * tick.
	 */
	if (cfg->trust)
		watch_licences();
	while (!__atomic_load_n(&state.stopping, __ATOMIC_SEQ_CST)) {
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += 1;
		(void)sem_timedwait(&state.wake, &deadline);
		if (__atomic_load_n(&state.stopping, __ATOMIC_SEQ_CST))
			break;
		if (is_market &&
		    (state.refresh_asked ||
		     (next_refresh && time(NULL) >= next_refresh))) {
			state.refresh_asked = 0;
			refresh();
			if (cfg->refresh_interval > 0)
				next_refresh = time(NULL) +
					       cfg->refresh_interval;
		}
		if (cfg->trust)
			watch_licences();
	}
	return NULL;
}

/*
 * Is /proc that of our own PID namespace?  Not for a daemon started in
 * a new one without a /proc of its own (unshare -p without --mount-proc):
 * there the callers' pids would name other processes.
 */
static bool proc_is_ours(void)
{
	char buf[32];
	ssize_t n;

	n = readlink("/proc/self", buf, sizeof(buf) - 1);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strtol(buf, NULL, 10) == (long)getpid();
}

int fsops_run(struct fsops_options *opt, const struct fsops_config *cfg)
{
	struct fuse_args *args = opt->fuse_args;
	struct fuse_loop_config *loop;
	struct sigaction sa;
	struct fuse *fuse;
	pthread_t watcher;
	char detail[PATH_MAX + 512];
	int r, status = 1, watching = 0;

	/*
	 * One malloc arena for every thread: each worker thread's own arena
	 * kept request-sized buffers for good, so peak RSS grew with the
	 * threads (scripts/bench: reading 2 GiB, 129 MiB with arenas, 59
	 * MiB without).  Within it, request buffers (libfuse allocates up
	 * to 1 MiB per read) come from the heap and are reused: handed out
	 * by mmap() instead, every read page-faulted and zeroed its whole
	 * buffer, a quarter of a fresh read's time.  Anything larger (a big
	 * file's digest list) is still mapped, and returned at its free.
	 */
	(void)mallopt(M_MMAP_THRESHOLD, 1088 * 1024);
	(void)mallopt(M_TRIM_THRESHOLD, 4 * 1024 * 1024);
	(void)mallopt(M_ARENA_MAX, 1);

	fuse_set_log_func(log_fuse);

	the_cfg = cfg;
	state.gen = gen_new(cfg->tree);
	state.base = strdup(cfg->tree->base);
	if (!state.gen || !state.base || sem_init(&state.wake, 0, 0) < 0)
		return 1;
	state.shared = opt->allow_other;
	state.owner = getuid();
	state.proc_ours = proc_is_ours();

	/* A mount that looks like any other read-only FUSE mount. */
	if (fuse_opt_add_arg(args, "-osubtype=marketfs,fsname=marketfs") < 0)
		return 1;

	fuse = fuse_new(args, &fs_ops, sizeof(fs_ops), (void *)cfg);
	if (!fuse)
		return 1;
	state.fuse = fuse;

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
	/* Access log: its timer and witness threads live in this process. */
	if (alog_start(cfg->alog) < 0)
		log_error("access log: cannot start checkpoints or witness");
	/* So do the read-ahead threads of a remote market, ready at once. */
	if (cache_keeps(cfg->cache, state.base))
		cache_start(cfg->cache);

	if (fuse_set_signal_handlers(fuse_get_session(fuse)) != 0)
		goto out_unmount;

	/* SIGHUP refreshes the market instead of ending the daemon. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sighup;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	(void)sigaction(SIGHUP, &sa, NULL);

	ra_mountpoint = opt->mountpoint;	/* for fs_init */

	/* Threads start only now: they would not survive the detach. */
	if (pthread_create(&watcher, NULL, watch_thread, (void *)cfg) == 0)
		watching = 1;
	else
		log_error("cannot start the licence watcher: licence ends "
			  "are still decided at every open");

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
	/* libfuse returns the signal that ended the loop: a clean end. */
	status = r < 0 ? 1 : 0;
	fuse_remove_signal_handlers(fuse_get_session(fuse));
	if (watching) {
		__atomic_store_n(&state.stopping, 1, __ATOMIC_SEQ_CST);
		sem_post(&state.wake);
		pthread_join(watcher, NULL);
	}

out_unmount:
	fuse_unmount(fuse);
	record_daemon_event(cfg, "unmount", opt->mountpoint);
out_destroy:
	fuse_destroy(fuse);
	state.fuse = NULL;
	gen_put(state.gen);
	state.gen = NULL;
	free(state.base);
	state.base = NULL;
	return status;
}
