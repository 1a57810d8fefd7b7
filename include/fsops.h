/*
 * fsops.h - the FUSE side: command-line parsing, mounting, and the
 * operations.  Every open is decided, logged, then answered; reads are
 * decrypted through one shared reader per open file.
 *
 * fs/fsops.c is the only file that includes libfuse headers.
 */
#ifndef MARKETFS_FSOPS_H
#define MARKETFS_FSOPS_H

#include <stdint.h>

struct tree;
struct alog;
struct http;
struct cache;
struct c4gh_pool;

/* What the command line said.  Strings are malloc'd or NULL. */
struct fsops_options {
	char *source;
	char *mountpoint;		/* made absolute */
	char *key;			/* key=FILE */
	char *passphrase_file;		/* passphrase_file=FILE */
	char *access_log;		/* access_log=FILE */
	char *market_key;		/* market_key=HEX */
	char *state_dir;		/* state_dir=DIR */
	char *cafile;			/* cafile=FILE */
	char *pinned_key;		/* pinned_key=sha256//... */
	char *token_file;		/* token_file=FILE */
	char *cache_dir;		/* cache_dir=DIR */
	char *cache_size;		/* cache_size=SIZE (K/M/G) */
	char *plain_cache;		/* plain_cache=SIZE (K/M/G) */
	char *site_policy;		/* site_policy=FILE */
	char *refresh;			/* refresh=SECONDS */
	int allow_other;		/* allow_other was given */
	int foreground;			/* -f */
	int debug;			/* -d: foreground and FUSE debug */
	int single_thread;		/* -s */
	int show_help;			/* -h, --help */
	int show_version;		/* -V, --version */
	void *fuse_args;		/* what goes on to libfuse */
};

/*
 * Parse argv and check the mount point (a directory nothing is mounted
 * on; a dead marketfs mount left there is detached first).  Returns 0,
 * -EINVAL with a one-line reason in msg for a usage mistake, or another
 * negative errno with a reason for a mount point that cannot be used.
 * Release with fsops_options_release() in every case.
 */
int fsops_parse_args(int argc, char *argv[], struct fsops_options *ret,
		     char *msg, size_t msglen);
void fsops_options_release(struct fsops_options *opt);

/*
 * Check that libfuse takes the FUSE options given, without mounting (so
 * a typo is reported before a passphrase is asked).  -EINVAL when not;
 * libfuse has said why through the log.
 */
int fsops_check_fuse_args(struct fsops_options *opt);

struct tree_config;
struct trust;
struct policy_site;

struct fsops_config {
	struct tree *tree;		/* the first tree; fsops takes it over */
	struct alog *alog;
	struct http *http;
	struct cache *cache;		/* verified ciphertext; never NULL */
	struct c4gh_pool *pool;		/* decrypted segments, or NULL */
	const uint8_t *sk;		/* our Crypt4GH secret key (32) */
	const struct tree_config *tree_config;	/* for refreshes */
	struct trust *trust;		/* market state, or NULL (plain) */
	struct policy_site *site;	/* site policy, or NULL */
	int refresh_interval;		/* seconds; 0: only on SIGHUP */
};

/*
 * Mount, detach unless in the foreground (the parent exits only once the
 * mount is live, 0 then), serve until unmounted, unmount.  The mount and
 * unmount are recorded in the access log.  While mounted, the market is
 * refreshed every refresh_interval seconds and on SIGHUP (open handles
 * stay on the tree they opened), and licence ends are watched for: the
 * kernel's caches of a dataset are invalidated when its licence expires
 * or is revoked, and "cut" licences stop open handles.  Takes over
 * cfg->tree (freed when no handle uses it).  Returns an exit status.
 */
int fsops_run(struct fsops_options *opt, const struct fsops_config *cfg);

#endif
