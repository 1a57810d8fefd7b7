/*
 * test_policy.c - the open-time decision: window, rollback, revocation
 * and its freshness, the caller, the site policy, seats.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy.h"

#define T0	1800000000LL	/* 2027-01-15 */

static char revoked_id[] = "aaaa";
static char *revoked_ids[] = { revoked_id };

static struct market_licence licence = {
	.id = (char *)"bbbb",
	.dataset = (char *)"cohort",
	.not_before = T0 - 1000,
	.expires = T0 + 1000,
	.offline_grace = 600,
};

static struct market_revocations rev = {
	.version = 3,
	.issued = T0 - 100,
	.next_update = T0 + 1000,
	.ids = revoked_ids,
	.nids = 1,
};

static const char *const lab[] = { "lab", "users" };

static struct policy_caller alice = {
	.uid = 1001, .user = "alice", .groups = lab, .ngroups = 2,
	.exe = "/usr/bin/python3.11",
};

static void input_init(struct policy_input *in)
{
	memset(in, 0, sizeof(*in));
	in->licence = &licence;
	in->revocations = &rev;
	in->time.now = T0;
	in->time.system = T0;
	in->caller = &alice;
	in->owner = 1001;
}

static int decide(const struct policy_input *in, const char **reason)
{
	struct policy_decision d;

	policy_decide(in, &d);
	*reason = d.reason;
	return d.err;
}

static void test_policy_window(void **state)
{
	struct policy_input in;
	const char *why;

	(void)state;
	input_init(&in);
	assert_int_equal(decide(&in, &why), 0);
	in.time.now = T0 + 1000;	/* the first second past expiry */
	assert_int_equal(decide(&in, &why), -EKEYEXPIRED);
	assert_string_equal(why, "licence expired");
	in.time.now = T0 + 999;
	assert_int_equal(decide(&in, &why), 0);
	in.time.now = T0 - 1001;	/* one second before not_before */
	assert_int_equal(decide(&in, &why), -EACCES);
	assert_string_equal(why, "licence not yet valid");
	in.time.now = T0 - 1000;
	assert_int_equal(decide(&in, &why), 0);
}

static void test_policy_rollback_refuses(void **state)
{
	struct policy_input in;
	struct policy_decision d;

	(void)state;
	input_init(&in);
	in.time.rollback = 1;
	in.time.system = T0 - 400 * 86400;
	policy_decide(&in, &d);
	assert_int_equal(d.err, -EACCES);
	assert_string_equal(d.reason, "clock rollback");
	assert_non_null(strstr(d.detail, "rollback"));
}

static void test_policy_revocation(void **state)
{
	struct market_licence l = licence;
	struct policy_input in;
	const char *why;

	(void)state;
	input_init(&in);
	l.id = revoked_id;
	in.licence = &l;
	assert_int_equal(decide(&in, &why), -EKEYREVOKED);
	l.id = licence.id;
	l.expires = T0 + 100000;

	/* No list at all: freshness cannot be established. */
	in.revocations = NULL;
	assert_int_equal(decide(&in, &why), -EACCES);
	assert_string_equal(why, "revocation status unknown");

	/* Past next_update, inside the grace, then past it. */
	in.licence = &l;
	in.revocations = &rev;
	in.time.now = rev.next_update + licence.offline_grace;
	assert_int_equal(decide(&in, &why), 0);
	in.time.now += 1;
	assert_int_equal(decide(&in, &why), -EACCES);
	assert_string_equal(why, "revocation list stale");
}

static void test_policy_caller_private_mount(void **state)
{
	struct policy_caller bob = alice;
	struct policy_input in;
	const char *why;

	(void)state;
	input_init(&in);
	bob.uid = 1002;
	bob.user = "bob";
	in.caller = &bob;
	assert_int_equal(decide(&in, &why), -EACCES);
	assert_string_equal(why, "not the mounting user");
}

static void test_policy_site_grants(void **state)
{
	static const char text[] =
		"{\"grants\": [{\"dataset\": \"cohort\", \"users\": "
		"[\"carol\"], \"groups\": [\"lab\"]}],"
		" \"programs\": {\"deny\": [\"updatedb\"],"
		" \"flag\": [\"tar\"]}}";
	struct policy_caller bob = { .uid = 1002, .user = "bob" };
	struct policy_caller carol = { .uid = 1003, .user = "carol" };
	struct policy_caller indexer = alice;
	struct policy_site *site = NULL;
	struct policy_input in;
	const char *why;
	char msg[256];

	(void)state;
	assert_int_equal(policy_site_parse(text, strlen(text), &site, msg,
					   sizeof(msg)), 0);
	input_init(&in);
	in.shared = 1;
	in.owner = 999;
	in.site = site;

	assert_int_equal(decide(&in, &why), 0);		/* group lab */
	in.caller = &carol;
	assert_int_equal(decide(&in, &why), 0);		/* by name */
	in.caller = &bob;
	assert_int_equal(decide(&in, &why), -EACCES);
	assert_string_equal(why, "site policy says no");

	indexer.exe = "/usr/bin/updatedb";
	in.caller = &indexer;
	assert_int_equal(decide(&in, &why), -EACCES);
	assert_string_equal(why, "program denied by site policy");
	assert_int_equal(policy_site_program(site, "/bin/tar"),
			 POLICY_PROGRAM_FLAGGED);

	/* A shared mount with no site policy lets only its owner in. */
	in.site = NULL;
	in.caller = &alice;
	assert_int_equal(decide(&in, &why), -EACCES);
	alice.uid = 999;
	assert_int_equal(decide(&in, &why), 0);
	alice.uid = 1001;
	policy_site_free(site);
}

static void test_policy_site_rejects_bad_files(void **state)
{
	static const char *const bad[] = {
		"[]",
		"{\"grants\": {}}",
		"{\"grants\": [{\"dataset\": \"cohort\", \"users\": "
		"\"alice\"}]}",
		"{\"grants\": [{\"users\": [\"alice\"]}]}",
		"{\"grants\": [], \"grants\": []}",
		"{\"grant\": []}",
		"{\"programs\": {\"allow\": []}}",
		"{\"grants\": [{\"dataset\": \"../x\"}]}",
	};
	struct policy_site *site;
	char msg[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		site = NULL;
		assert_int_equal(policy_site_parse(bad[i], strlen(bad[i]),
						   &site, msg, sizeof(msg)),
				 -EBADMSG);
		assert_null(site);
		assert_true(strlen(msg) > 0);
	}
}

static void test_policy_seats(void **state)
{
	struct market_licence l = licence;
	struct policy_input in;
	const char *why;

	(void)state;
	input_init(&in);
	l.seats = 2;
	in.licence = &l;
	in.seats_used = 1;
	assert_int_equal(decide(&in, &why), 0);
	in.seats_used = 2;
	assert_int_equal(decide(&in, &why), -EACCES);
	assert_string_equal(why, "seat limit reached");
	in.holds_seat = 1;
	assert_int_equal(decide(&in, &why), 0);
}

static void test_policy_status(void **state)
{
	struct market_licence l = licence;

	(void)state;
	assert_string_equal(policy_licence_status(&l, &rev, T0), "valid");
	assert_string_equal(policy_licence_status(&l, &rev, T0 + 1000),
			    "expired");
	assert_string_equal(policy_licence_status(&l, &rev, T0 - 2000),
			    "not-yet-valid");
	l.id = revoked_id;
	assert_string_equal(policy_licence_status(&l, &rev, T0), "revoked");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy_window),
		cmocka_unit_test(test_policy_rollback_refuses),
		cmocka_unit_test(test_policy_revocation),
		cmocka_unit_test(test_policy_caller_private_mount),
		cmocka_unit_test(test_policy_site_grants),
		cmocka_unit_test(test_policy_site_rejects_bad_files),
		cmocka_unit_test(test_policy_seats),
		cmocka_unit_test(test_policy_status),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
