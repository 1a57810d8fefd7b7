/*
 * test_util.c - whole-file reads, atomic writes, mkdir -p, checked
 * numbers, safe relative paths, passphrase files.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "util.h"

static char dir[] = "/tmp/marketfs-util.XXXXXX";

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

static void test_util_write_atomic_then_read(void **state)
{
	char path[256], *buf = NULL;
	struct stat st;
	size_t len = 0;

	(void)state;
	snprintf(path, sizeof(path), "%s/a.txt", dir);
	assert_int_equal(util_write_file_atomic(path, "hello\n", 6, 0600), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(util_read_file(path, 100, &buf, &len), 0);
	assert_int_equal(len, 6);
	assert_memory_equal(buf, "hello\n", 7);	/* NUL-terminated too */
	free(buf);

	/* Replaced whole, never appended to. */
	assert_int_equal(util_write_file_atomic(path, "x", 1, 0644), 0);
	assert_int_equal(util_read_file(path, 100, &buf, &len), 0);
	assert_int_equal(len, 1);
	free(buf);
	assert_int_equal(util_read_file(path, 0, &buf, &len), -EFBIG);
	snprintf(path, sizeof(path), "%s/missing", dir);
	assert_int_equal(util_read_file(path, 100, &buf, &len), -ENOENT);
}

static void test_util_mkdir_p(void **state)
{
	char path[256];
	struct stat st;

	(void)state;
	snprintf(path, sizeof(path), "%s/x/y/z", dir);
	assert_int_equal(util_mkdir_p(path, 0700), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(util_mkdir_p(path, 0700), 0);	/* exists: fine */
}

static void test_util_parse_u64(void **state)
{
	uint64_t v = 0;

	(void)state;
	assert_int_equal(util_parse_u64("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(util_parse_u64("18446744073709551615", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(util_parse_u64("18446744073709551616", &v),
			 -ERANGE);
	assert_int_equal(util_parse_u64("", &v), -EINVAL);
	assert_int_equal(util_parse_u64("12a", &v), -EINVAL);
	assert_int_equal(util_parse_u64("-1", &v), -EINVAL);
	assert_int_equal(util_parse_u64(" 1", &v), -EINVAL);
}

static void test_util_path_is_safe(void **state)
{
	static const char *const good[] = {
		"a", "a/b", "dir/file.csv", "with space.txt", "a..b",
	};
	static const char *const bad[] = {
		"", "/a", "a/", "a//b", ".", "..", "a/../b", "a/./b",
		"a\nb", "a\tb",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(util_path_is_safe(good[i]));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(util_path_is_safe(bad[i]));
}

static void test_util_passphrase_file(void **state)
{
	char path[256], *pass = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/pass", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("secret words\nsecond line\n", f);
	fclose(f);
	assert_int_equal(util_read_passphrase(path, NULL, &pass, &len), 0);
	assert_int_equal(len, 12);
	assert_memory_equal(pass, "secret words", 12);
	util_secret_free(pass, len);

	/* An empty first line is a mistake, not an empty passphrase. */
	f = fopen(path, "w");
	fputs("\nlater\n", f);
	fclose(f);
	assert_int_equal(util_read_passphrase(path, NULL, &pass, &len),
			 -EINVAL);
}

static void test_util_xdg_path(void **state)
{
	char *p;

	(void)state;
	setenv("HOME", "/home/ana", 1);
	setenv("XDG_CONFIG_HOME", "/xdg", 1);
	p = util_xdg_path("XDG_CONFIG_HOME", ".config", "config");
	assert_string_equal(p, "/xdg/marketfs/config");
	free(p);
	/* A relative value is ignored, as the XDG spec says. */
	setenv("XDG_CONFIG_HOME", "rel", 1);
	p = util_xdg_path("XDG_CONFIG_HOME", ".config", NULL);
	assert_string_equal(p, "/home/ana/.config/marketfs");
	free(p);
	unsetenv("XDG_CONFIG_HOME");
	unsetenv("HOME");
	assert_null(util_xdg_path("XDG_CONFIG_HOME", ".config", "x"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_util_write_atomic_then_read),
		cmocka_unit_test(test_util_mkdir_p),
		cmocka_unit_test(test_util_parse_u64),
		cmocka_unit_test(test_util_path_is_safe),
		cmocka_unit_test(test_util_passphrase_file),
		cmocka_unit_test(test_util_xdg_path),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
