/*
 * operator.h - what marketfs-market does: make a market directory,
 * publish datasets into it, grant, revoke, re-sign, verify and list.
 *
 * The market's private keys never live under the market directory: they
 * are in keys_dir (by default $XDG_CONFIG_HOME/marketfs/markets/<id>,
 * see operator_default_keys_dir()).  Functions print nothing except
 * through the progress callback; they return 0 or a negative errno and,
 * on failure, leave a one-line message in ret_msg-style buffers where
 * they take one.
 */
#ifndef MARKETFS_OPERATOR_H
#define MARKETFS_OPERATOR_H

#include <stddef.h>
#include <stdint.h>

#define OPERATOR_MSG_LEN	512

/* Called with bytes done and total during long jobs; may be NULL. */
typedef void (*operator_progress_fn)(void *ctx, uint64_t done,
				     uint64_t total);

/*
 * The default keys directory for a market (used when a keys_dir option
 * is NULL): the MARKETFS_MARKET_KEYS environment variable when set,
 * otherwise $XDG_CONFIG_HOME (or ~/.config)/marketfs/markets/<market id>.
 * The string is malloc'd.  -ENOENT when neither XDG_CONFIG_HOME nor HOME
 * is an absolute path.  The layout inside is in docs/market-format.md.
 */
int operator_default_keys_dir(const char *market_id, char **ret_dir);

struct operator_init {
	const char *dir;		/* market directory (created) */
	const char *name;		/* may be NULL: basename of dir */
	const char *keys_dir;		/* may be NULL: the default */
};
int operator_market_init(const struct operator_init *opt,
			 char ret_msg[OPERATOR_MSG_LEN]);

struct operator_publish {
	const char *dir;
	const char *keys_dir;
	const char *dataset;
	const char *srcdir;
	const char *title;		/* may be NULL */
	const char *description;	/* may be NULL */
	const char *price;		/* may be NULL */
	const char *provider;		/* may be NULL: the market name */
	const char *policy;		/* default terms; may be NULL */
	operator_progress_fn progress;
	void *progress_ctx;
};
/* Writes the new version's id into ret_version (64 bytes). */
int operator_publish(const struct operator_publish *opt, char ret_version[64],
		     char ret_msg[OPERATOR_MSG_LEN]);

struct operator_grant {
	const char *dir;
	const char *keys_dir;
	const char *dataset;
	const char *version;		/* may be NULL: the latest */
	const char *to_pubkey_file;	/* licensee's Crypt4GH public key */
	const char *policy;		/* a template name in policies_dir, or
					 * a path; NULL: research-12m */
	const char *policies_dir;	/* where templates live */
	const char *not_before;		/* RFC 3339 or NULL */
	const char *expires;		/* RFC 3339 or NULL */
	int *ret_window_past;		/* may be NULL; set to 1 when the
					 * window is already past (allowed) */
};
/*
 * Writes the licence id into ret_id (64 bytes).  When the window is
 * already past, succeeds, sets *ret_window_past and leaves "already
 * expired at TIME" in ret_msg for the caller's warning.
 */
int operator_grant(const struct operator_grant *opt, char ret_id[64],
		   char ret_msg[OPERATOR_MSG_LEN]);

/* -ENOENT for an unknown licence, -EALREADY when already revoked. */
int operator_revoke(const char *dir, const char *keys_dir,
		    const char *licence_id, char ret_msg[OPERATOR_MSG_LEN]);

/* Re-sign the revocation list with a fresh issued time (daily timer). */
int operator_resign(const char *dir, const char *keys_dir,
		    int64_t validity, char ret_msg[OPERATOR_MSG_LEN]);

/* Check every signature and digest; problems go to report (may be NULL)
 * one line each.  0 when the market is sound, -EBADMSG otherwise. */
typedef void (*operator_report_fn)(void *ctx, const char *line);
int operator_verify(const char *dir, operator_report_fn report, void *ctx,
		    char ret_msg[OPERATOR_MSG_LEN]);

/* The market as JSON (datasets, versions, licences, revocations):
 * a malloc'd string. */
int operator_list_json(const char *dir, char **ret_json,
		       char ret_msg[OPERATOR_MSG_LEN]);

#endif
