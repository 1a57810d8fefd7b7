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
	int foreground;			/* -f */
	int debug;			/* -d: foreground and FUSE debug */
	int single_thread;		/* -s */
	int show_help;			/* -h, --help */
	int show_version;		/* -V, --version */
	void *fuse_args;		/* what goes on to libfuse */
};

/*
 * Parse argv.  Returns 0, or -EINVAL with a one-line reason in msg for a
 * user's mistake.  Release with fsops_options_release() in every case.
 */
int fsops_parse_args(int argc, char *argv[], struct fsops_options *ret,
		     char *msg, size_t msglen);
void fsops_options_release(struct fsops_options *opt);

struct fsops_config {
	struct tree *tree;
	struct alog *alog;
	struct http *http;
	const uint8_t *sk;		/* our Crypt4GH secret key (32) */
};

/*
 * Mount, detach unless in the foreground (the parent exits only once the
 * mount is live, 0 then), serve until unmounted, unmount.  The mount and
 * unmount are recorded in the access log.  Returns an exit status.
 */
int fsops_run(struct fsops_options *opt, const struct fsops_config *cfg);

#endif
