/*
 * test_http.c - the transport over file:// in a private temporary
 * directory: whole reads, bounds, exact ranges, URL building and the
 * references a market may not make.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
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

#include "http.h"

#define DATA_LEN	200003

static char tmpdir[512];
static char *base;		/* file:// URL of tmpdir */
static uint8_t data[DATA_LEN];
static struct http *h;

static void write_file(const char *name, const void *buf, size_t len,
		       mode_t mode)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static char *url_of(const char *ref)
{
	char *url = NULL;

	assert_int_equal(http_url_join(base, ref, &url), 0);
	return url;
}

static int group_setup(void **state)
{
	uint32_t x = 0x12345678;
	char path[PATH_MAX];
	size_t i;

	(void)state;
	for (i = 0; i < DATA_LEN; i++) {
		x = x * 1103515245u + 12345u;
		data[i] = (uint8_t)(x >> 16);
	}
	snprintf(tmpdir, sizeof(tmpdir), "%s/marketfs-http-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmpdir))
		return -1;
	write_file("data.bin", data, DATA_LEN, 0644);
	write_file("small.txt", "hello\n", 6, 0644);
	snprintf(path, sizeof(path), "%s/with space", tmpdir);
	if (mkdir(path, 0755) < 0)
		return -1;
	write_file("with space/x%y.txt", "odd name", 8, 0644);
	write_file("token-open", "secret-token\n", 13, 0644);
	write_file("token-private", "secret-token\n", 13, 0600);
	if (http_global_init() < 0)
		return -1;
	if (http_new(NULL, &h) < 0)
		return -1;
	if (http_source_to_base(tmpdir, &base) < 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[PATH_MAX + 32];

	(void)state;
	h = http_free(h);
	free(base);
	http_global_cleanup();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_http_get_reads_whole_file(void **state)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	char *url = url_of("data.bin");

	(void)state;
	assert_int_equal(http_get(h, url, DATA_LEN, &buf, &len), 0);
	assert_int_equal(len, DATA_LEN);
	assert_memory_equal(buf, data, DATA_LEN);
	assert_int_equal(buf[len], 0);		/* NUL-terminated */
	free(buf);
	free(url);

	url = url_of("small.txt");
	assert_int_equal(http_get(h, url, 100, &buf, &len), 0);
	assert_int_equal(len, 6);
	assert_string_equal((char *)buf, "hello\n");
	free(buf);
	free(url);
}

static void test_http_get_missing_is_enoent(void **state)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	char *url = url_of("no-such-file");

	(void)state;
	assert_int_equal(http_get(h, url, 100, &buf, &len), -ENOENT);
	assert_null(buf);
	assert_int_equal(http_size(h, url, &(uint64_t){0}), -ENOENT);
	free(url);
}

static void test_http_get_over_max_is_efbig(void **state)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	char *url = url_of("data.bin");

	(void)state;
	assert_int_equal(http_get(h, url, DATA_LEN - 1, &buf, &len), -EFBIG);
	assert_null(buf);
	assert_int_equal(http_get(h, url, 0, &buf, &len), -EFBIG);
	free(url);
}

static void test_http_size_of_file(void **state)
{
	uint64_t size = 0;
	char *url = url_of("data.bin");

	(void)state;
	assert_int_equal(http_size(h, url, &size), 0);
	assert_int_equal(size, DATA_LEN);
	free(url);
}

static void test_http_range_returns_exact_bytes(void **state)
{
	static const struct { uint64_t off; size_t len; } cases[] = {
		{ 0, 1 }, { 0, 65536 }, { 1, 100 }, { 65535, 2 },
		{ 65536, 65536 }, { DATA_LEN - 10, 10 }, { DATA_LEN - 1, 1 },
		{ 0, DATA_LEN },
	};
	uint8_t *buf = malloc(DATA_LEN);
	char *url = url_of("data.bin");
	size_t i;

	(void)state;
	assert_non_null(buf);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(buf, 0xee, DATA_LEN);
		assert_int_equal(http_get_range(h, url, cases[i].off,
						cases[i].len, buf), 0);
		assert_memory_equal(buf, data + cases[i].off, cases[i].len);
		if (cases[i].len < DATA_LEN)
			assert_int_equal(buf[cases[i].len], 0xee);
	}
	free(buf);
	free(url);
}

static void test_http_range_past_eof_is_eio(void **state)
{
	uint8_t buf[64];
	char *url = url_of("data.bin");

	(void)state;
	/* Straddling the end: never a short read. */
	assert_int_equal(http_get_range(h, url, DATA_LEN - 5, 10, buf), -EIO);
	assert_string_not_equal(http_last_error(), "no error");
	/* Wholly past the end. */
	assert_int_equal(http_get_range(h, url, DATA_LEN, 1, buf), -EIO);
	assert_int_equal(http_get_range(h, url, DATA_LEN + 1000, 64, buf),
			 -EIO);
	free(url);

	url = url_of("no-such-file");
	assert_int_equal(http_get_range(h, url, 0, 1, buf), -ENOENT);
	free(url);
}

static void test_http_source_to_base_of_relative_dir(void **state)
{
	char cwd[PATH_MAX], want[PATH_MAX + 64], *b = NULL;
	char real[PATH_MAX];

	(void)state;
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(tmpdir), 0);
	assert_non_null(realpath(tmpdir, real));

	assert_int_equal(http_source_to_base("with space", &b), 0);
	snprintf(want, sizeof(want), "file://%s/with%%20space/", real);
	assert_string_equal(b, want);
	free(b);

	assert_int_equal(http_source_to_base("./with space/../", &b), 0);
	snprintf(want, sizeof(want), "file://%s/", real);
	assert_string_equal(b, want);
	free(b);

	assert_int_equal(http_source_to_base("small.txt", &b), -ENOTDIR);
	assert_int_equal(http_source_to_base("missing", &b), -ENOENT);
	assert_int_equal(chdir(cwd), 0);
}

static void test_http_source_to_base_keeps_urls(void **state)
{
	char *b = NULL;

	(void)state;
	assert_int_equal(http_source_to_base("https://m.example/mk", &b), 0);
	assert_string_equal(b, "https://m.example/mk/");
	free(b);
	assert_int_equal(http_source_to_base("https://m.example/", &b), 0);
	assert_string_equal(b, "https://m.example/");
	free(b);
	assert_int_equal(http_source_to_base("file:///srv/market", &b), 0);
	assert_string_equal(b, "file:///srv/market/");
	free(b);
	assert_int_equal(http_source_to_base("http://m.example/", &b),
			 -EPROTONOSUPPORT);
	assert_int_equal(http_source_to_base("ftp://m.example/", &b),
			 -EPROTONOSUPPORT);
	assert_int_equal(http_source_to_base("gopher://x/", &b),
			 -EPROTONOSUPPORT);
}

/* Ranges of file:// URLs are read locally: escapes, hosts, oddities. */
static void test_http_range_of_local_names(void **state)
{
	char url[PATH_MAX + 64], *u;
	uint8_t buf[16];

	(void)state;
	u = url_of("with space/x%y.txt");
	memset(buf, 0, sizeof(buf));
	assert_int_equal(http_get_range(h, u, 4, 4, buf), 0);
	assert_memory_equal(buf, "name", 4);
	free(u);

	/* "localhost" is this host; any other host is not. */
	snprintf(url, sizeof(url), "file://localhost%s/small.txt", tmpdir);
	assert_int_equal(http_get_range(h, url, 0, 5, buf), 0);
	assert_memory_equal(buf, "hello", 5);
	snprintf(url, sizeof(url), "file://elsewhere%s/small.txt", tmpdir);
	assert_int_not_equal(http_get_range(h, url, 0, 5, buf), 0);

	/* An escaped NUL never cuts the path short. */
	snprintf(url, sizeof(url), "file://%s/small.txt%%00.jws", tmpdir);
	assert_int_not_equal(http_get_range(h, url, 0, 5, buf), 0);

	/* A directory cannot be read. */
	snprintf(url, sizeof(url), "file://%s/with%%20space", tmpdir);
	assert_int_equal(http_get_range(h, url, 0, 5, buf), -EIO);
}

static void test_http_url_join_encodes_and_reads(void **state)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	char *url = NULL, want[PATH_MAX + 64];

	(void)state;
	assert_int_equal(http_url_join(base, "with space/x%y.txt", &url), 0);
	snprintf(want, sizeof(want), "%swith%%20space/x%%25y.txt", base);
	assert_string_equal(url, want);
	assert_int_equal(http_get(h, url, 100, &buf, &len), 0);
	assert_int_equal(len, 8);
	assert_memory_equal(buf, "odd name", 8);
	free(buf);
	free(url);

	assert_int_equal(http_url_join("https://m.example/mk/",
				       "datasets/a b/m.jws", &url), 0);
	assert_string_equal(url, "https://m.example/mk/datasets/a%20b/m.jws");
	free(url);
}

static void test_http_url_join_refuses_unsafe_refs(void **state)
{
	static const char *const perm[] = {
		"file:///etc/passwd", "file:passwd", "FILE:///etc/passwd",
		"http://m.example/x", "ftp://m.example/x", "data:,hello",
		"https://evil.example/x",	/* from a file:// base */
	};
	static const char *const inval[] = {
		"..", "../x", "a/../b", "a/..", "/etc/passwd", "a\\b",
		"a\nb", "", "a//b", "./a", "a/",
	};
	char *url = NULL;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(perm) / sizeof(perm[0]); i++)
		assert_int_equal(http_url_join(base, perm[i], &url), -EPERM);
	for (i = 0; i < sizeof(inval) / sizeof(inval[0]); i++)
		assert_int_equal(http_url_join(base, inval[i], &url), -EINVAL);
	assert_null(url);

	/* From an https market, an https object URL is taken as is... */
	assert_int_equal(http_url_join("https://m.example/",
				       "https://cdn.example/o/1", &url), 0);
	assert_string_equal(url, "https://cdn.example/o/1");
	free(url);
	/* ...but never a local file or plain http. */
	assert_int_equal(http_url_join("https://m.example/", "file:///etc/x",
				       &url), -EPERM);
	assert_int_equal(http_url_join("https://m.example/", "http://m/x",
				       &url), -EPERM);
}

static void test_http_get_refuses_other_schemes(void **state)
{
	uint8_t *buf = NULL;
	size_t len;

	(void)state;
	assert_int_equal(http_get(h, "http://127.0.0.1:9/x", 10, &buf, &len),
			 -EPERM);
	assert_int_equal(http_get(h, "ftp://127.0.0.1:9/x", 10, &buf, &len),
			 -EPERM);
	assert_null(buf);
}

static void test_http_new_checks_token_file_mode(void **state)
{
	struct http_options opt = { .retries = -1 };
	struct http *t = NULL;
	char path[PATH_MAX];

	(void)state;
	snprintf(path, sizeof(path), "%s/token-open", tmpdir);
	opt.token_file = path;
	assert_int_equal(http_new(&opt, &t), -EACCES);
	assert_null(t);

	snprintf(path, sizeof(path), "%s/token-private", tmpdir);
	assert_int_equal(http_new(&opt, &t), 0);
	assert_non_null(t);
	t = http_free(t);

	snprintf(path, sizeof(path), "%s/token-missing", tmpdir);
	assert_int_equal(http_new(&opt, &t), -ENOENT);

	opt.token_file = NULL;
	opt.cafile = path;
	assert_int_equal(http_new(&opt, &t), -ENOENT);
	assert_null(t);
}

struct reader_arg {
	char *url;
	int failures;
};

static void *reader(void *p)
{
	struct reader_arg *a = p;
	uint8_t buf[4096];
	uint64_t off;
	int i;

	for (i = 0; i < 50; i++) {
		off = ((uint64_t)i * 7919u * (uint64_t)(uintptr_t)a) %
		      (DATA_LEN - sizeof(buf));
		if (http_get_range(h, a->url, off, sizeof(buf), buf) < 0 ||
		    memcmp(buf, data + off, sizeof(buf)) != 0)
			a->failures++;
	}
	return NULL;
}

static void test_http_threads_read_concurrently(void **state)
{
	struct reader_arg args[8];
	pthread_t tid[8];
	int i;

	(void)state;
	for (i = 0; i < 8; i++) {
		args[i].url = url_of("data.bin");
		args[i].failures = 0;
		assert_int_equal(pthread_create(&tid[i], NULL, reader,
						&args[i]), 0);
	}
	for (i = 0; i < 8; i++) {
		assert_int_equal(pthread_join(tid[i], NULL), 0);
		assert_int_equal(args[i].failures, 0);
		free(args[i].url);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http_get_reads_whole_file),
		cmocka_unit_test(test_http_get_missing_is_enoent),
		cmocka_unit_test(test_http_get_over_max_is_efbig),
		cmocka_unit_test(test_http_size_of_file),
		cmocka_unit_test(test_http_range_returns_exact_bytes),
		cmocka_unit_test(test_http_range_past_eof_is_eio),
		cmocka_unit_test(test_http_range_of_local_names),
		cmocka_unit_test(test_http_source_to_base_of_relative_dir),
		cmocka_unit_test(test_http_source_to_base_keeps_urls),
		cmocka_unit_test(test_http_url_join_encodes_and_reads),
		cmocka_unit_test(test_http_url_join_refuses_unsafe_refs),
		cmocka_unit_test(test_http_get_refuses_other_schemes),
		cmocka_unit_test(test_http_new_checks_token_file_mode),
		cmocka_unit_test(test_http_threads_read_concurrently),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
