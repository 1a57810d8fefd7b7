/*
 * test_timeutil.c - strict RFC 3339 UTC parsing and formatting.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "timeutil.h"

static void test_timeutil_parses_epoch_and_known_instants(void **state)
{
	int64_t t;

	(void)state;
	assert_int_equal(timeutil_parse("1970-01-01T00:00:00Z", &t), 0);
	assert_int_equal(t, 0);
	assert_int_equal(timeutil_parse("2026-12-03T17:05:37Z", &t), 0);
	assert_int_equal(t, 1796317537);
	assert_int_equal(timeutil_parse("2000-03-01T00:00:00Z", &t), 0);
	assert_int_equal(t, 951868800);
	assert_int_equal(timeutil_parse("1969-12-31T23:59:59Z", &t), 0);
	assert_int_equal(t, -1);
	assert_int_equal(timeutil_parse("9999-12-31T23:59:59Z", &t), 0);
	assert_int_equal(t, 253402300799LL);
}

static void test_timeutil_knows_leap_years(void **state)
{
	int64_t t, u;

	(void)state;
	assert_int_equal(timeutil_parse("2024-02-29T12:00:00Z", &t), 0);
	assert_int_equal(timeutil_parse("2024-03-01T12:00:00Z", &u), 0);
	assert_int_equal(u - t, 86400);
	assert_int_equal(timeutil_parse("2000-02-29T00:00:00Z", &t), 0);
	assert_int_equal(timeutil_parse("2023-02-29T00:00:00Z", &t),
			 -EINVAL);
	assert_int_equal(timeutil_parse("1900-02-29T00:00:00Z", &t),
			 -EINVAL);
	assert_int_equal(timeutil_parse("2100-02-29T00:00:00Z", &t),
			 -EINVAL);
}

static void test_timeutil_rejects_impossible_dates(void **state)
{
	static const char *const bad[] = {
		"2026-02-30T00:00:00Z", "2026-04-31T00:00:00Z",
		"2026-13-01T00:00:00Z", "2026-00-10T00:00:00Z",
		"2026-01-00T00:00:00Z", "2026-01-32T00:00:00Z",
		"2026-01-01T24:00:00Z", "2026-01-01T23:60:00Z",
		"2026-01-01T23:59:60Z",
	};
	int64_t t = 42;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(timeutil_parse(bad[i], &t), -EINVAL);
		assert_int_equal(t, 42);
	}
}

static void test_timeutil_rejects_other_spellings(void **state)
{
	static const char *const bad[] = {
		"2026-12-03t17:05:37Z", "2026-12-03T17:05:37z",
		"2026-12-03 17:05:37Z", "2026-12-03T17:05:37+00:00",
		"2026-12-03T17:05:37.5Z", "2026-12-03T17:05:37.000Z",
		"2026-12-03T17:05:37", "2026-12-03T17:05Z", "2026-12-03",
		"+2026-12-03T17:05:37Z", "2026-12-03T17:05:37Z ",
		" 2026-12-03T17:05:37Z", "2026-1-03T17:05:37Z",
		"2026-12-03T17:05:3aZ", "", "20261203T170537Z",
		"2026-12-03T17:05:37-01:00",
	};
	int64_t t;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(timeutil_parse(bad[i], &t), -EINVAL);
	assert_int_equal(timeutil_parse(NULL, &t), -EINVAL);
}

static void test_timeutil_format_round_trips(void **state)
{
	static const int64_t samples[] = {
		0, 1, -1, 951782400, 951868799, 1796317537, 4102444800LL,
		-62135596800LL, 253402300799LL,
	};
	char buf[TIMEUTIL_RFC3339_LEN];
	int64_t t;

	(void)state;
	timeutil_format(1796317537, buf);
	assert_string_equal(buf, "2026-12-03T17:05:37Z");
	timeutil_format(-1, buf);
	assert_string_equal(buf, "1969-12-31T23:59:59Z");
	timeutil_format(951782400, buf);
	assert_string_equal(buf, "2000-02-29T00:00:00Z");
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		timeutil_format(samples[i], buf);
		assert_int_equal(timeutil_parse(buf, &t), 0);
		assert_int_equal(t, samples[i]);
	}
	/* Beyond year 9999 the format clamps rather than overflow. */
	timeutil_format(INT64_MAX, buf);
	assert_string_equal(buf, "9999-12-31T23:59:59Z");
}

static void test_timeutil_now_is_plausible(void **state)
{
	(void)state;
	/* After 2024-01-01 and before 2200. */
	assert_true(timeutil_now() > 1704067200);
	assert_true(timeutil_now() < 7258118400LL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timeutil_parses_epoch_and_known_instants),
		cmocka_unit_test(test_timeutil_knows_leap_years),
		cmocka_unit_test(test_timeutil_rejects_impossible_dates),
		cmocka_unit_test(test_timeutil_rejects_other_spellings),
		cmocka_unit_test(test_timeutil_format_round_trips),
		cmocka_unit_test(test_timeutil_now_is_plausible),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
