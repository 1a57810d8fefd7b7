/*
 * test_config.c - configuration files: the exact arguments they turn
 * into, their order before the command line, the mistakes refused with
 * FILE:LINE, the files that are not read.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

static void assert_argv(const struct config_args *ca, const char *const *want)
{
	int i;

	for (i = 0; want[i]; i++) {
		assert_true(i < ca->argc);
		assert_string_equal(ca->argv[i], want[i]);
	}
	assert_int_equal(ca->argc, i);
	assert_null(ca->argv[ca->argc]);
}

static int parse(struct config_args *ca, const char *text, char *msg,
		 size_t msglen)
{
	assert_int_equal(config_args_init(ca, "marketfs"), 0);
	return config_parse(ca, "test.conf", text, strlen(text), msg, msglen);
}

static void test_config_entries_become_o_arguments(void **state)
{
	struct config_args ca;
	char msg[256];
	static const char *const want[] = {
		"marketfs",
		"-o", "key=/etc/marketfs/key.sec",
		"-o", "allow_other",
		"-o", "access_log=/var/log/m a.log",
		"-o", "market_key=ab12",
		NULL
	};

	(void)state;
	assert_int_equal(parse(&ca,
		"# a comment\n"
		"\n"
		"key = /etc/marketfs/key.sec\n"
		"   allow_other   \n"
		"\t# indented comment\n"
		"access_log=/var/log/m a.log\r\n"
		"market_key =\tab12", msg, sizeof(msg)), 0);
	assert_argv(&ca, want);
	assert_int_equal(ca.entries, 4);
	config_args_release(&ca);
}

static void test_config_value_commas_escaped(void **state)
{
	struct config_args ca;
	char msg[256];
	static const char *const want[] = {
		"marketfs", "-o", "key=/a\\,allow_other\\\\x#y", NULL
	};

	(void)state;
	assert_int_equal(parse(&ca, "key = /a,allow_other\\x#y\n", msg,
			       sizeof(msg)), 0);
	assert_argv(&ca, want);
	config_args_release(&ca);
}

static void expect_mistake(const char *text, const char *want_msg)
{
	struct config_args ca;
	char msg[256];

	assert_int_equal(parse(&ca, text, msg, sizeof(msg)), -EINVAL);
	assert_string_equal(msg, want_msg);
	config_args_release(&ca);
}

static void test_config_mistakes_name_file_and_line(void **state)
{
	(void)state;
	expect_mistake("allow_other\n\nkey\t= \n",
		       "test.conf:3: no value for 'key'");
	expect_mistake("# ok\nkey /x\n", "test.conf:2: unexpected '/' after "
		       "'key' (expected 'name = value' or 'name')");
	expect_mistake("= value\n",
		       "test.conf:1: expected 'name = value' or 'name'");
	expect_mistake("-o key=x\n",
		       "test.conf:1: expected 'name = value' or 'name'");
	expect_mistake("key = a\033b\n",
		       "test.conf:1: control character in the value of "
		       "'key'");
}

static void test_config_nul_byte_refused(void **state)
{
	struct config_args ca;
	char msg[256];

	(void)state;
	assert_int_equal(config_args_init(&ca, "marketfs"), 0);
	assert_int_equal(config_parse(&ca, "t", "key = a\0b\n", 10, msg,
				      sizeof(msg)), -EINVAL);
	assert_string_equal(msg, "t: not a text file (NUL byte)");
	config_args_release(&ca);
}

static void test_config_entries_bounded(void **state)
{
	struct config_args ca;
	char msg[256], *text;
	size_t i, n = CONFIG_ENTRIES_MAX + 1;

	(void)state;
	text = malloc(n * 3 + 1);
	assert_non_null(text);
	for (i = 0; i < n; i++)
		memcpy(text + 3 * i, "ro\n", 3);
	text[3 * n] = '\0';
	assert_int_equal(parse(&ca, text, msg, sizeof(msg)), -EINVAL);
	assert_string_equal(msg, "test.conf:257: more than 256 entries");
	config_args_release(&ca);
	free(text);
}

/* A fresh directory for files, removed by the test itself. */
static char *tmpdir(void)
{
	char *dir = strdup("/tmp/test_config.XXXXXX");

	assert_non_null(dir);
	assert_non_null(mkdtemp(dir));
	return dir;
}

static char *write_file(const char *dir, const char *leaf, const char *text,
			mode_t mode)
{
	char *path;
	int fd;

	assert_true(asprintf(&path, "%s/%s", dir, leaf) > 0);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

static void test_config_read_missing_is_empty(void **state)
{
	struct config_args ca;
	char msg[256];
	static const char *const want[] = { "marketfs", NULL };

	(void)state;
	assert_int_equal(config_args_init(&ca, "marketfs"), 0);
	assert_int_equal(config_read(&ca, "/nonexistent/marketfs/config",
				     msg, sizeof(msg)), 0);
	assert_argv(&ca, want);
	config_args_release(&ca);
}

static void test_config_read_refuses_world_writable(void **state)
{
	struct config_args ca;
	char msg[512], want_msg[512], *dir, *path;

	(void)state;
	dir = tmpdir();
	path = write_file(dir, "c", "ro\n", 0666);
	assert_int_equal(config_args_init(&ca, "marketfs"), 0);
	assert_int_equal(config_read(&ca, path, msg, sizeof(msg)), -EPERM);
	snprintf(want_msg, sizeof(want_msg), "%s: writable by anyone; "
		 "refusing it (chmod o-w)", path);
	assert_string_equal(msg, want_msg);
	assert_int_equal(ca.argc, 1);
	config_args_release(&ca);

	/* A directory is not a config file. */
	assert_int_equal(config_args_init(&ca, "marketfs"), 0);
	assert_int_equal(config_read(&ca, dir, msg, sizeof(msg)), -EINVAL);
	config_args_release(&ca);

	unlink(path);
	free(path);
	rmdir(dir);
	free(dir);
}

static void test_config_read_too_large(void **state)
{
	struct config_args ca;
	char msg[512], *dir, *path, *text;

	(void)state;
	dir = tmpdir();
	text = malloc(CONFIG_FILE_MAX + 2);
	assert_non_null(text);
	memset(text, '#', CONFIG_FILE_MAX + 1);
	text[CONFIG_FILE_MAX + 1] = '\0';
	path = write_file(dir, "big", text, 0644);
	assert_int_equal(config_args_init(&ca, "marketfs"), 0);
	assert_int_equal(config_read(&ca, path, msg, sizeof(msg)), -EFBIG);
	config_args_release(&ca);

	/* Exactly the limit is read. */
	text[CONFIG_FILE_MAX] = '\0';
	free(write_file(dir, "big", text, 0644));
	assert_int_equal(config_args_init(&ca, "marketfs"), 0);
	assert_int_equal(config_read(&ca, path, msg, sizeof(msg)), 0);
	assert_int_equal(ca.argc, 1);
	config_args_release(&ca);

	unlink(path);
	free(path);
	free(text);
	rmdir(dir);
	free(dir);
}

static void test_config_user_path_xdg_then_home(void **state)
{
	char *p;

	(void)state;
	setenv("XDG_CONFIG_HOME", "/x/conf", 1);
	setenv("HOME", "/home/u", 1);
	p = config_user_path();
	assert_string_equal(p, "/x/conf/marketfs/config");
	free(p);

	setenv("XDG_CONFIG_HOME", "relative", 1);	/* ignored */
	p = config_user_path();
	assert_string_equal(p, "/home/u/.config/marketfs/config");
	free(p);

	unsetenv("XDG_CONFIG_HOME");
	unsetenv("HOME");
	assert_null(config_user_path());
}

/* config_load(): the user file's entries, then the command line's. */
static void test_config_load_user_file_before_command_line(void **state)
{
	struct config_args ca;
	char msg[512], *dir, *sub, *path;
	char a0[] = "marketfs", a1[] = "-o", a2[] = "key=/cli.sec",
	     a3[] = "SRC", a4[] = "MNT";
	char *argv[] = { a0, a1, a2, a3, a4, NULL };
	struct stat st;
	int sys_entries = 0;

	(void)state;
	dir = tmpdir();
	assert_true(asprintf(&sub, "%s/marketfs", dir) > 0);
	assert_int_equal(mkdir(sub, 0700), 0);
	path = write_file(sub, "config", "key = /file.sec\nallow_other\n",
			  0600);
	setenv("XDG_CONFIG_HOME", dir, 1);

	/* The system file, if this machine has one, comes first. */
	if (stat(CONFIG_SYSTEM_PATH, &st) == 0) {
		assert_int_equal(config_args_init(&ca, "marketfs"), 0);
		assert_int_equal(config_read(&ca, CONFIG_SYSTEM_PATH, msg,
					     sizeof(msg)), 0);
		sys_entries = ca.entries;
		config_args_release(&ca);
	}

	assert_int_equal(config_load(5, argv, &ca, msg, sizeof(msg)), 0);
	assert_int_equal(ca.argc, 1 + 2 * sys_entries + 4 + 4);
	assert_string_equal(ca.argv[0], "marketfs");
	assert_string_equal(ca.argv[1 + 2 * sys_entries], "-o");
	assert_string_equal(ca.argv[2 + 2 * sys_entries], "key=/file.sec");
	assert_string_equal(ca.argv[4 + 2 * sys_entries], "allow_other");
	assert_string_equal(ca.argv[ca.argc - 4], "-o");
	assert_string_equal(ca.argv[ca.argc - 3], "key=/cli.sec");
	assert_string_equal(ca.argv[ca.argc - 2], "SRC");
	assert_string_equal(ca.argv[ca.argc - 1], "MNT");
	config_args_release(&ca);

	/* A mistake in the file stops the load with FILE:LINE. */
	free(write_file(sub, "config", "allow_other\nkey\n=x\n", 0600));
	if (sys_entries == 0 && stat(CONFIG_SYSTEM_PATH, &st) != 0) {
		char want[600];

		assert_int_equal(config_load(5, argv, &ca, msg, sizeof(msg)),
				 -EINVAL);
		snprintf(want, sizeof(want), "%s:3: expected 'name = value' "
			 "or 'name'", path);
		assert_string_equal(msg, want);
		assert_null(ca.argv);
	}

	/* ...but not --help: no file is read then. */
	{
		char h1[] = "--help";
		char *hargv[] = { a0, h1, NULL };
		static const char *const want[] = {
			"marketfs", "--help", NULL
		};

		assert_int_equal(config_load(2, hargv, &ca, msg, sizeof(msg)),
				 0);
		assert_argv(&ca, want);
		config_args_release(&ca);
	}

	unsetenv("XDG_CONFIG_HOME");
	unlink(path);
	free(path);
	rmdir(sub);
	free(sub);
	rmdir(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_entries_become_o_arguments),
		cmocka_unit_test(test_config_value_commas_escaped),
		cmocka_unit_test(test_config_mistakes_name_file_and_line),
		cmocka_unit_test(test_config_nul_byte_refused),
		cmocka_unit_test(test_config_entries_bounded),
		cmocka_unit_test(test_config_read_missing_is_empty),
		cmocka_unit_test(test_config_read_refuses_world_writable),
		cmocka_unit_test(test_config_read_too_large),
		cmocka_unit_test(test_config_user_path_xdg_then_home),
		cmocka_unit_test(test_config_load_user_file_before_command_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
