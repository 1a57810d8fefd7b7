/*
 * test_trust.c - trusted time and the versions a host remembers.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "trust.h"

static char dir[] = "/tmp/marketfs-trust.XXXXXX";

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_trust_no_floor_is_system_time(void **state)
{
	struct trust *t = NULL;
	struct trust_time tt;

	(void)state;
	assert_int_equal(trust_open(dir, "m0", &t), 0);
	trust_time_now(t, &tt);
	assert_int_equal(tt.floor, 0);
	assert_false(tt.rollback);
	assert_true(tt.now >= time(NULL) - 1 && tt.now <= time(NULL) + 1);
	trust_free(t);
}

static void test_trust_signed_time_in_future_is_rollback(void **state)
{
	struct trust *t = NULL;
	struct trust_time tt;
	int64_t future = time(NULL) + 400LL * 86400;

	(void)state;
	/* A signed time 400 days ahead of this clock: the clock is back. */
	assert_int_equal(trust_open(dir, "m1", &t), 0);
	assert_int_equal(trust_offer_revocations(t, 1, future, "r1", 2), 0);
	trust_time_now(t, &tt);
	assert_true(tt.rollback);
	assert_true(tt.now >= future);
	trust_free(t);

	/* Persisted: a restart remembers the floor. */
	assert_int_equal(trust_open(dir, "m1", &t), 0);
	trust_time_now(t, &tt);
	assert_true(tt.rollback);
	assert_true(tt.now >= future);
	trust_free(t);
}

static void test_trust_within_tolerance_is_not_rollback(void **state)
{
	struct trust *t = NULL;
	struct trust_time tt;
	int64_t now = time(NULL);

	(void)state;
	assert_int_equal(trust_open(dir, "m2", &t), 0);
	assert_int_equal(trust_offer_revocations(t, 1, now + 60, "r", 1), 0);
	trust_time_now(t, &tt);
	assert_false(tt.rollback);
	assert_true(tt.now >= now + 60);
	/* An older signed time never lowers the floor. */
	assert_int_equal(trust_offer_revocations(t, 2, now - 9999, "s", 1),
			 0);
	trust_time_now(t, &tt);
	assert_int_equal(tt.floor, now + 60);
	trust_free(t);
}

static void test_trust_revocations_never_go_back(void **state)
{
	struct trust *t = NULL;
	char *jws = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(trust_open(dir, "m3", &t), 0);
	assert_int_equal(trust_saved_revocations(t, &jws, &len), -ENOENT);
	assert_int_equal(trust_offer_revocations(t, 5, 1, "five", 4), 0);
	assert_int_equal(trust_offer_revocations(t, 4, 2, "four", 4),
			 -ESTALE);
	assert_int_equal(trust_offer_revocations(t, 5, 1, "five", 4), 0);
	trust_free(t);

	assert_int_equal(trust_open(dir, "m3", &t), 0);
	assert_int_equal(trust_offer_revocations(t, 4, 2, "four", 4),
			 -ESTALE);
	assert_int_equal(trust_saved_revocations(t, &jws, &len), 0);
	assert_int_equal(len, 4);
	assert_memory_equal(jws, "five", 4);
	free(jws);
	trust_free(t);
}

static void test_trust_serials_never_go_back(void **state)
{
	struct trust *t = NULL;

	(void)state;
	assert_int_equal(trust_open(dir, "m4", &t), 0);
	assert_int_equal(trust_offer_serial(t, "cohort", 2), 0);
	assert_int_equal(trust_offer_serial(t, "cohort", 1), -ESTALE);
	assert_int_equal(trust_offer_serial(t, "other", 1), 0);
	trust_free(t);
	assert_int_equal(trust_open(dir, "m4", &t), 0);
	assert_int_equal(trust_offer_serial(t, "cohort", 1), -ESTALE);
	assert_int_equal(trust_offer_serial(t, "cohort", 3), 0);
	trust_free(t);
}

static void test_trust_corrupt_state_refused(void **state)
{
	struct trust *t = NULL;
	char path[256];
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/markets/m5.json", dir);
	assert_int_equal(trust_open(dir, "m5", &t), 0);
	assert_int_equal(trust_offer_serial(t, "cohort", 2), 0);
	trust_free(t);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"market\": \"m5\", \"floor\": ", f);
	fclose(f);
	assert_int_equal(trust_open(dir, "m5", &t), -EBADMSG);
	/* Another market's state under this name is refused too. */
	f = fopen(path, "w");
	fputs("{\"market\":\"zz\",\"floor\":0,\"floor_boot\":0,"
	      "\"boot_id\":\"\",\"revocations_version\":0,\"serials\":{}}",
	      f);
	fclose(f);
	assert_int_equal(trust_open(dir, "m5", &t), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trust_no_floor_is_system_time),
		cmocka_unit_test(test_trust_signed_time_in_future_is_rollback),
		cmocka_unit_test(test_trust_within_tolerance_is_not_rollback),
		cmocka_unit_test(test_trust_revocations_never_go_back),
		cmocka_unit_test(test_trust_serials_never_go_back),
		cmocka_unit_test(test_trust_corrupt_state_refused),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
