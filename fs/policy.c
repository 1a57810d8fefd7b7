/*
 * policy.c - the open-time decision and the site policy.
 *
 * The order of the checks follows design §4: the licence's window
 * against trusted time, its revocation (by a list fresh enough), then
 * the caller.  The first check that fails decides, so the log names the
 * most fundamental reason.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "timeutil.h"
#include "util.h"

#define SITE_MAX		(4u << 20)
#define SITE_MAX_ENTRIES	10000

struct site_grant {
	char *dataset;		/* id or "*" */
	char **users;
	size_t nusers;
	char **groups;
	size_t ngroups;
};

struct policy_site {
	struct site_grant *grants;
	size_t ngrants;
	char **deny;		/* program basenames */
	size_t ndeny;
	char **flag;
	size_t nflag;
};

static void strv_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

struct policy_site *policy_site_free(struct policy_site *site)
{
	size_t i;

	if (!site)
		return NULL;
	for (i = 0; i < site->ngrants; i++) {
		free(site->grants[i].dataset);
		strv_free(site->grants[i].users, site->grants[i].nusers);
		strv_free(site->grants[i].groups, site->grants[i].ngroups);
	}
	free(site->grants);
	strv_free(site->deny, site->ndeny);
	strv_free(site->flag, site->nflag);
	free(site);
	return NULL;
}

/* A JSON array of non-empty strings into a string vector. */
static int strv_from_json(json_t *a, const char *what, char ***ret,
			  size_t *ret_n, char *msg, size_t msglen)
{
	char **v;
	size_t i, n;

	if (!a) {
		*ret = NULL;
		*ret_n = 0;
		return 0;
	}
	if (!json_is_array(a) || json_array_size(a) > SITE_MAX_ENTRIES) {
		snprintf(msg, msglen, "'%s' must be a list of names", what);
		return -EBADMSG;
	}
	n = json_array_size(a);
	v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		const char *s = json_string_value(json_array_get(a, i));

		if (!s || !*s) {
			snprintf(msg, msglen, "'%s' must hold non-empty "
				 "strings", what);
			strv_free(v, i);
			return -EBADMSG;
		}
		v[i] = strdup(s);
		if (!v[i]) {
			strv_free(v, i);
			return -ENOMEM;
		}
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

static int only_members(json_t *o, const char *const *allowed, char *msg,
			size_t msglen)
{
	const char *k;
	json_t *v;
	size_t i;

	json_object_foreach(o, k, v) {
		for (i = 0; allowed[i]; i++)
			if (strcmp(k, allowed[i]) == 0)
				break;
		if (!allowed[i]) {
			snprintf(msg, msglen, "unknown member '%s'", k);
			return -EBADMSG;
		}
	}
	return 0;
}

static int parse_grant(json_t *g, struct site_grant *ret, char *msg,
		       size_t msglen)
{
	static const char *const members[] = {
		"dataset", "users", "groups", NULL
	};
	const char *ds;
	int r;

	if (!json_is_object(g)) {
		snprintf(msg, msglen, "each grant must be an object");
		return -EBADMSG;
	}
	r = only_members(g, members, msg, msglen);
	if (r < 0)
		return r;
	ds = json_string_value(json_object_get(g, "dataset"));
	if (!ds || (strcmp(ds, "*") != 0 && !market_id_is_valid(ds))) {
		snprintf(msg, msglen, "a grant needs a \"dataset\": an id "
			 "or \"*\"");
		return -EBADMSG;
	}
	ret->dataset = strdup(ds);
	if (!ret->dataset)
		return -ENOMEM;
	r = strv_from_json(json_object_get(g, "users"), "users", &ret->users,
			   &ret->nusers, msg, msglen);
	if (r < 0)
		return r;
	return strv_from_json(json_object_get(g, "groups"), "groups",
			      &ret->groups, &ret->ngroups, msg, msglen);
}

int policy_site_parse(const char *text, size_t len,
		      struct policy_site **ret_site, char *msg, size_t msglen)
{
	static const char *const top[] = { "grants", "programs", NULL };
	static const char *const prog[] = { "deny", "flag", NULL };
	struct policy_site *site;
	json_error_t jerr;
	json_t *o, *grants, *programs;
	size_t i;
	int r;

	msg[0] = '\0';
	o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o) {
		snprintf(msg, msglen, "line %d: %s", jerr.line, jerr.text);
		return -EBADMSG;
	}
	site = calloc(1, sizeof(*site));
	if (!site) {
		json_decref(o);
		return -ENOMEM;
	}

	r = -EBADMSG;
	if (!json_is_object(o)) {
		snprintf(msg, msglen, "a site policy is a JSON object");
		goto out_fail;
	}
	r = only_members(o, top, msg, msglen);
	if (r < 0)
		goto out_fail;

	grants = json_object_get(o, "grants");
	if (grants && (!json_is_array(grants) ||
		       json_array_size(grants) > SITE_MAX_ENTRIES)) {
		snprintf(msg, msglen, "'grants' must be a list");
		r = -EBADMSG;
		goto out_fail;
	}
	if (grants && json_array_size(grants) > 0) {
		site->grants = calloc(json_array_size(grants),
				      sizeof(*site->grants));
		if (!site->grants) {
			r = -ENOMEM;
			goto out_fail;
		}
		for (i = 0; i < json_array_size(grants); i++) {
			r = parse_grant(json_array_get(grants, i),
					&site->grants[i], msg, msglen);
			site->ngrants = i + 1;
			if (r < 0)
				goto out_fail;
		}
	}

	programs = json_object_get(o, "programs");
	if (programs) {
		if (!json_is_object(programs)) {
			snprintf(msg, msglen, "'programs' must be an object");
			r = -EBADMSG;
			goto out_fail;
		}
		r = only_members(programs, prog, msg, msglen);
		if (r < 0)
			goto out_fail;
		r = strv_from_json(json_object_get(programs, "deny"),
				   "programs.deny", &site->deny,
				   &site->ndeny, msg, msglen);
		if (r < 0)
			goto out_fail;
		r = strv_from_json(json_object_get(programs, "flag"),
				   "programs.flag", &site->flag,
				   &site->nflag, msg, msglen);
		if (r < 0)
			goto out_fail;
	}

	json_decref(o);
	*ret_site = site;
	return 0;
out_fail:
	json_decref(o);
	policy_site_free(site);
	return r;
}

int policy_site_load(const char *path, struct policy_site **ret_site,
		     char *msg, size_t msglen)
{
	char *text = NULL, inner[256];
	size_t len;
	int r;

	r = util_read_file(path, SITE_MAX, &text, &len);
	if (r < 0) {
		snprintf(msg, msglen, "cannot read site policy '%s': %s",
			 path, strerror(-r));
		return r;
	}
	r = policy_site_parse(text, len, ret_site, inner, sizeof(inner));
	free(text);
	if (r < 0)
		snprintf(msg, msglen, "site policy '%s': %s", path, inner);
	return r;
}

static int strv_has(char *const *v, size_t n, const char *s)
{
	size_t i;

	for (i = 0; s && i < n; i++)
		if (strcmp(v[i], s) == 0)
			return 1;
	return 0;
}

enum policy_program policy_site_program(const struct policy_site *site,
					const char *exe)
{
	const char *base;

	if (!site || !exe)
		return POLICY_PROGRAM_ANY;
	base = strrchr(exe, '/');
	base = base ? base + 1 : exe;
	if (strv_has(site->deny, site->ndeny, base))
		return POLICY_PROGRAM_DENIED;
	if (strv_has(site->flag, site->nflag, base))
		return POLICY_PROGRAM_FLAGGED;
	return POLICY_PROGRAM_ANY;
}

int policy_site_allows(const struct policy_site *site, const char *dataset,
		       const struct policy_caller *c)
{
	size_t i, j;

	if (!site)
		return 0;
	for (i = 0; i < site->ngrants; i++) {
		const struct site_grant *g = &site->grants[i];

		if (strcmp(g->dataset, "*") != 0 &&
		    strcmp(g->dataset, dataset) != 0)
			continue;
		if (strv_has(g->users, g->nusers, c->user))
			return 1;
		for (j = 0; j < c->ngroups; j++)
			if (strv_has(g->groups, g->ngroups, c->groups[j]))
				return 1;
	}
	return 0;
}

const char *policy_licence_status(const struct market_licence *l,
				  const struct market_revocations *rev,
				  int64_t t)
{
	if (rev && market_revocations_has(rev, l->id))
		return "revoked";
	if (t < l->not_before)
		return "not-yet-valid";
	if (t >= l->expires)
		return "expired";
	return "valid";
}

void policy_decide(const struct policy_input *in,
		   struct policy_decision *ret)
{
	const struct market_licence *l = in->licence;
	const struct market_revocations *rev = in->revocations;
	const struct policy_caller *c = in->caller;
	char now_s[TIMEUTIL_RFC3339_LEN], nb[TIMEUTIL_RFC3339_LEN];
	char ex[TIMEUTIL_RFC3339_LEN], sys_s[TIMEUTIL_RFC3339_LEN];
	int64_t t = in->time.now;

	memset(ret, 0, sizeof(*ret));
	timeutil_format(t, now_s);
	timeutil_format(l->not_before, nb);
	timeutil_format(l->expires, ex);
	timeutil_format(in->time.system, sys_s);
	snprintf(ret->detail, sizeof(ret->detail),
		 "time used %s; licence valid %s to %s", now_s, nb, ex);

	/* Step 3: the window, against a time the host cannot wind back. */
	if (in->time.rollback) {
		snprintf(ret->detail, sizeof(ret->detail),
			 "system clock %s is behind the last signed market "
			 "time %s: clock rollback", sys_s, now_s);
		ret->reason = "clock rollback";
		ret->err = -EACCES;
		return;
	}
	if (t < l->not_before) {
		ret->reason = "licence not yet valid";
		ret->err = -EACCES;
		return;
	}
	if (t >= l->expires) {
		ret->reason = "licence expired";
		ret->err = -EKEYEXPIRED;
		return;
	}

	/* Step 4: revocation, by a list still fresh enough. */
	if (!rev) {
		ret->reason = "revocation status unknown";
		ret->err = -EACCES;
		return;
	}
	if (market_revocations_has(rev, l->id)) {
		ret->reason = "licence revoked";
		ret->err = -EKEYREVOKED;
		return;
	}
	if (t > rev->next_update + l->offline_grace) {
		char nu[TIMEUTIL_RFC3339_LEN];

		timeutil_format(rev->next_update, nu);
		snprintf(ret->detail, sizeof(ret->detail),
			 "revocation list version %llu was due for renewal "
			 "at %s; offline grace %llds is over at %s",
			 (unsigned long long)rev->version, nu,
			 (long long)l->offline_grace, now_s);
		ret->reason = "revocation list stale";
		ret->err = -EACCES;
		return;
	}

	/* Step 5: who asks, from this very request. */
	if (!in->shared && c->uid != in->owner) {
		ret->reason = "not the mounting user";
		ret->err = -EACCES;
		return;
	}
	if (policy_site_program(in->site, c->exe) == POLICY_PROGRAM_DENIED) {
		snprintf(ret->detail, sizeof(ret->detail),
			 "program '%s' is denied by the site policy", c->exe);
		ret->reason = "program denied by site policy";
		ret->err = -EACCES;
		return;
	}
	if (in->shared && c->uid != in->owner && !in->site) {
		snprintf(ret->detail, sizeof(ret->detail),
			 "the mount serves other users but has no "
			 "site_policy=: only its owner (uid %u) may open",
			 (unsigned)in->owner);
		ret->reason = "no site policy: owner only";
		ret->err = -EACCES;
		return;
	}
	if (in->shared && c->uid != in->owner &&
	    !policy_site_allows(in->site, l->dataset, c)) {
		snprintf(ret->detail, sizeof(ret->detail),
			 "no site grant for user '%s' (uid %u) on dataset "
			 "'%s'", c->user ? c->user : "?", (unsigned)c->uid,
			 l->dataset);
		ret->reason = "site policy says no";
		ret->err = -EACCES;
		return;
	}
	if (l->seats && !in->holds_seat && in->seats_used >= l->seats) {
		snprintf(ret->detail, sizeof(ret->detail),
			 "all %u seats are held by other users", l->seats);
		ret->reason = "seat limit reached";
		ret->err = -EACCES;
		return;
	}
	ret->reason = "licence valid";
}
