/*
 * policy.h - the open-time decision (design §4, steps 3 to 5) and the
 * site policy of a shared server.
 *
 * Pure decisions: no I/O, no logging.  A decision carries the errno to
 * answer, a short reason for the access log and a detail line.
 */
#ifndef MARKETFS_POLICY_H
#define MARKETFS_POLICY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "market.h"
#include "trust.h"

struct policy_site;		/* a parsed site policy */

/*
 * Load a site policy file (JSON):
 *   {"grants": [{"dataset": "cohort" or "*", "users": [...],
 *                "groups": [...]}, ...],
 *    "programs": {"deny": ["updatedb", ...], "flag": [...]}}
 * Unknown members, duplicate keys and wrong types are -EBADMSG with a
 * reason in msg.
 */
int policy_site_load(const char *path, struct policy_site **ret_site,
		     char *msg, size_t msglen);
int policy_site_parse(const char *text, size_t len,
		      struct policy_site **ret_site, char *msg,
		      size_t msglen);
struct policy_site *policy_site_free(struct policy_site *site);

/* Program names are matched against the basename of the executable. */
enum policy_program {
	POLICY_PROGRAM_ANY,
	POLICY_PROGRAM_DENIED,
	POLICY_PROGRAM_FLAGGED,
};
enum policy_program policy_site_program(const struct policy_site *site,
					const char *exe);

struct policy_caller;

/* Does a site grant for dataset (or "*") name the caller or a group? */
int policy_site_allows(const struct policy_site *site, const char *dataset,
		       const struct policy_caller *caller);

struct policy_caller {
	uid_t uid;
	const char *user;		/* name, or NULL if unknown */
	const char *const *groups;	/* names of the caller's groups */
	size_t ngroups;
	const char *exe;		/* executable path, or NULL */
};

struct policy_input {
	const struct market_licence *licence;
	const struct market_revocations *revocations;	/* NULL: unknown */
	struct trust_time time;
	const struct policy_caller *caller;
	int shared;			/* mounted with allow_other */
	uid_t owner;			/* the user who mounted */
	const struct policy_site *site;	/* NULL: no site policy */
	unsigned int seats_used;	/* other users holding it open */
	int holds_seat;			/* the caller already holds one */
};

struct policy_decision {
	int err;			/* 0 or a negative errno */
	const char *reason;		/* static string */
	char detail[256];
};

/*
 * Decide an open of a file under a licence.  Order: time window
 * (rollback: EACCES; before: EACCES; after: EKEYEXPIRED), revocation and
 * the freshness of the list (EKEYREVOKED; EACCES when stale or unknown),
 * then who asks (EACCES: another user without allow_other, no site
 * grant, a denied program, no seat left).
 */
void policy_decide(const struct policy_input *in,
		   struct policy_decision *ret);

/*
 * The state of a licence at time t, for xattrs and the terms file:
 * "valid", "not-yet-valid", "expired", "revoked".
 */
const char *policy_licence_status(const struct market_licence *l,
				  const struct market_revocations *rev,
				  int64_t t);

#endif
