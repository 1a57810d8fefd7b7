/*
 * test_alog.c - the access log: order, hash chain, reopening, torn-line
 * recovery, concurrent writers, field layout and the failure path.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "alog.h"
#include "cipher.h"

#define ZERO_HASH \
	"0000000000000000000000000000000000000000000000000000000000000000"

static char tmpdir[512];
static char logpath[600];

struct lines {
	char **v;
	size_t n;
	int ends_in_newline;
};

static void read_lines(struct lines *l)
{
	FILE *f = fopen(logpath, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	assert_non_null(f);
	memset(l, 0, sizeof(*l));
	l->ends_in_newline = 1;
	while ((n = getline(&line, &cap, f)) >= 0) {
		l->ends_in_newline = n > 0 && line[n - 1] == '\n';
		if (l->ends_in_newline)
			line[n - 1] = '\0';
		l->v = realloc(l->v, (l->n + 1) * sizeof(*l->v));
		assert_non_null(l->v);
		l->v[l->n++] = strdup(line);
	}
	free(line);
	fclose(f);
}

static void free_lines(struct lines *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

static void sha_hex(const char *s, char ret[65])
{
	uint8_t d[32];

	assert_int_equal(cipher_sha256(s, strlen(s), d), 0);
	cipher_hex(d, sizeof(d), ret);
}

static json_t *parse(const char *line)
{
	json_error_t err;
	json_t *o = json_loads(line, JSON_REJECT_DUPLICATES, &err);

	assert_non_null(o);
	assert_true(json_is_object(o));
	return o;
}

static int64_t seq_of(const char *line)
{
	json_t *o = parse(line);
	int64_t seq = json_integer_value(json_object_get(o, "seq"));

	json_decref(o);
	return seq;
}

static const char *str_of(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	assert_non_null(v);		/* every key is always present */
	return json_string_value(v);
}

/* Line i's "prev" is the hash of line i-1; line 0's is all zeros. */
static void assert_chain(const struct lines *l)
{
	char want[65];
	size_t i;
	json_t *o;

	for (i = 0; i < l->n; i++) {
		o = parse(l->v[i]);
		if (i == 0)
			strcpy(want, ZERO_HASH);
		else
			sha_hex(l->v[i - 1], want);
		assert_string_equal(str_of(o, "prev"), want);
		json_decref(o);
	}
}

static void write_events(struct alog *log, int n, const char *event)
{
	struct alog_event ev;
	int i;

	for (i = 0; i < n; i++) {
		alog_event_init(&ev);
		ev.event = event;
		ev.bytes = i;
		assert_int_equal(alog_write(log, &ev), 0);
	}
}

static void append_raw(const char *text)
{
	int fd = open(logpath, O_WRONLY | O_APPEND | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)),
			 (ssize_t)strlen(text));
	close(fd);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "%s/marketfs-alog-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(logpath, sizeof(logpath), "%s/access.log", tmpdir);
	return 0;
}

static int teardown(void **state)
{
	char lock[sizeof(tmpdir) + 32];

	(void)state;
	unlink(logpath);
	snprintf(lock, sizeof(lock), "%s/.%s.lock", tmpdir,
		 strrchr(logpath, '/') + 1);
	unlink(lock);
	return rmdir(tmpdir);
}

static void test_alog_records_chain_in_order(void **state)
{
	static const char *const keys[] = {
		"seq", "time", "event", "decision", "reason", "errno", "uid",
		"gid", "user", "pid", "exe", "dataset", "version", "file",
		"licence", "bytes", "duration_ms", "detail", "host_key",
		"count", "sig", "prev", "hash",
	};
	struct alog *log = NULL;
	struct lines l;
	struct stat st;
	const char *p;
	char pat[32];
	size_t i, k;

	(void)state;
	assert_int_equal(alog_open(logpath, &log), 0);
	write_events(log, 5, "open");
	alog_close(log);

	assert_int_equal(stat(logpath, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	read_lines(&l);
	assert_int_equal(l.n, 5);
	assert_true(l.ends_in_newline);
	for (i = 0; i < l.n; i++) {
		assert_int_equal(seq_of(l.v[i]), (int64_t)i + 1);
		/* Keys in the documented order, "hash" last. */
		p = l.v[i];
		for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
			snprintf(pat, sizeof(pat), "\"%s\":", keys[k]);
			p = strstr(p, pat);
			assert_non_null(p);
		}
		assert_int_equal(strncmp(l.v[i], "{\"seq\":", 7), 0);
	}
	assert_chain(&l);
	free_lines(&l);
}

static void test_alog_reopen_continues_seq_and_chain(void **state)
{
	struct alog *log = NULL;
	struct lines l;
	size_t i;

	(void)state;
	assert_int_equal(alog_open(logpath, &log), 0);
	write_events(log, 3, "mount");
	alog_close(log);
	assert_int_equal(alog_open(logpath, &log), 0);
	write_events(log, 2, "unmount");
	alog_close(log);

	read_lines(&l);
	assert_int_equal(l.n, 5);
	for (i = 0; i < l.n; i++)
		assert_int_equal(seq_of(l.v[i]), (int64_t)i + 1);
	assert_chain(&l);
	free_lines(&l);
}

static void check_recovered(const struct lines *l, size_t idx,
			    int64_t seq, const char *want_detail)
{
	json_t *o = parse(l->v[idx]);
	char want[65];

	assert_string_equal(str_of(o, "event"), "recovered");
	assert_int_equal(json_integer_value(json_object_get(o, "seq")), seq);
	assert_non_null(strstr(str_of(o, "detail"), want_detail));
	sha_hex(l->v[idx - 1], want);
	assert_string_equal(str_of(o, "prev"), want);
	json_decref(o);
}

static void test_alog_torn_last_line_is_recovered(void **state)
{
	static const char torn[] = "{\"seq\":4,\"time\":\"2026-12-0";
	struct alog *log = NULL;
	struct lines l;

	(void)state;
	assert_int_equal(alog_open(logpath, &log), 0);
	write_events(log, 3, "open");
	alog_close(log);
	append_raw(torn);	/* a crash in mid-write */

	assert_int_equal(alog_open(logpath, &log), 0);
	write_events(log, 1, "open");
	alog_close(log);

	read_lines(&l);
	assert_int_equal(l.n, 6);
	assert_string_equal(l.v[3], torn);	/* kept, terminated */
	check_recovered(&l, 4, 4, "line 4 ");
	assert_int_equal(seq_of(l.v[5]), 5);
	assert_true(l.ends_in_newline);
	free_lines(&l);

	/* A complete line that is not a record is damage too; it already
	 * ends with a newline, so none is added. */
	append_raw("not json at all\n");
	assert_int_equal(alog_open(logpath, &log), 0);
	alog_close(log);
	read_lines(&l);
	assert_int_equal(l.n, 8);
	assert_string_equal(l.v[6], "not json at all");
	check_recovered(&l, 7, 6, "line 7 ");
	free_lines(&l);

	/* A whole record that lost only its newline: its seq is not
	 * reused. */
	append_raw("{\"seq\":7,\"event\":\"open\"}");
	assert_int_equal(alog_open(logpath, &log), 0);
	write_events(log, 1, "open");
	alog_close(log);
	read_lines(&l);
	assert_int_equal(l.n, 11);
	check_recovered(&l, 9, 8, "line 9 ");
	assert_int_equal(seq_of(l.v[10]), 9);
	free_lines(&l);
}

static struct alog *shared_log;

static void *writer(void *arg)
{
	struct alog_event ev;
	int i;

	for (i = 0; i < 200; i++) {
		alog_event_init(&ev);
		ev.event = "release";
		ev.bytes = (int64_t)(intptr_t)arg;
		ev.duration_ms = i;
		if (alog_write(shared_log, &ev) < 0)
			return (void *)1;
	}
	return NULL;
}

static void test_alog_threads_keep_seq_and_chain(void **state)
{
	pthread_t tid[8];
	struct lines l;
	void *ret;
	size_t i;

	(void)state;
	assert_int_equal(alog_open(logpath, &shared_log), 0);
	for (i = 0; i < 8; i++)
		assert_int_equal(pthread_create(&tid[i], NULL, writer,
						(void *)(intptr_t)i), 0);
	for (i = 0; i < 8; i++) {
		assert_int_equal(pthread_join(tid[i], &ret), 0);
		assert_null(ret);
	}
	alog_close(shared_log);

	read_lines(&l);
	assert_int_equal(l.n, 1600);
	for (i = 0; i < l.n; i++)
		assert_int_equal(seq_of(l.v[i]), (int64_t)i + 1);
	assert_chain(&l);
	free_lines(&l);
}

static void test_alog_fields_appear_as_set(void **state)
{
	struct alog *log = NULL;
	struct alog_event ev;
	struct passwd *pw;
	char exe[PATH_MAX];
	struct lines l;
	ssize_t n;
	json_t *o;
	const char *t;

	(void)state;
	assert_int_equal(alog_open(logpath, &log), 0);
	alog_event_init(&ev);
	ev.event = "open";
	ev.decision = "deny";
	ev.reason = "licence expired";
	ev.err = EKEYEXPIRED;
	ev.has_caller = 1;
	ev.uid = getuid();
	ev.gid = getgid();
	ev.pid = getpid();
	ev.dataset = "cardio";
	ev.version = "3";
	ev.file = "a\xff" "b.csv";		/* not UTF-8 */
	ev.licence = "lic-1";
	ev.bytes = 1234;
	ev.duration_ms = 56;
	ev.detail = "quote \" and newline \n";
	assert_int_equal(alog_write(log, &ev), 0);

	alog_event_init(&ev);
	ev.event = "mount";
	assert_int_equal(alog_write(log, &ev), 0);

	alog_event_init(&ev);
	ev.event = "open";
	ev.has_caller = 1;
	ev.pid = 0;
	assert_int_equal(alog_write(log, &ev), 0);

	alog_event_init(&ev);		/* no event: refused */
	assert_int_equal(alog_write(log, &ev), -EINVAL);
	alog_close(log);

	read_lines(&l);
	assert_int_equal(l.n, 3);

	o = parse(l.v[0]);
	t = str_of(o, "time");
	assert_int_equal(strlen(t), 24);
	assert_int_equal(t[10], 'T');
	assert_int_equal(t[19], '.');
	assert_int_equal(t[23], 'Z');
	assert_string_equal(str_of(o, "event"), "open");
	assert_string_equal(str_of(o, "decision"), "deny");
	assert_string_equal(str_of(o, "reason"), "licence expired");
	assert_string_equal(str_of(o, "errno"), "EKEYEXPIRED");
	assert_int_equal(json_integer_value(json_object_get(o, "uid")),
			 getuid());
	assert_int_equal(json_integer_value(json_object_get(o, "gid")),
			 getgid());
	assert_int_equal(json_integer_value(json_object_get(o, "pid")),
			 getpid());
	pw = getpwuid(getuid());
	if (pw)
		assert_string_equal(str_of(o, "user"), pw->pw_name);
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = '\0';
	assert_string_equal(str_of(o, "exe"), exe);
	assert_string_equal(str_of(o, "dataset"), "cardio");
	assert_string_equal(str_of(o, "version"), "3");
	assert_string_equal(str_of(o, "file"), "a\\xFFb.csv");
	assert_string_equal(str_of(o, "licence"), "lic-1");
	assert_int_equal(json_integer_value(json_object_get(o, "bytes")),
			 1234);
	assert_int_equal(json_integer_value(json_object_get(o,
							    "duration_ms")),
			 56);
	assert_string_equal(str_of(o, "detail"), "quote \" and newline \n");
	json_decref(o);

	/* Nothing set: every key present, null. */
	o = parse(l.v[1]);
	assert_string_equal(str_of(o, "event"), "mount");
	assert_true(json_is_null(json_object_get(o, "decision")));
	assert_true(json_is_null(json_object_get(o, "errno")));
	assert_true(json_is_null(json_object_get(o, "uid")));
	assert_true(json_is_null(json_object_get(o, "user")));
	assert_true(json_is_null(json_object_get(o, "exe")));
	assert_true(json_is_null(json_object_get(o, "file")));
	assert_true(json_is_null(json_object_get(o, "bytes")));
	assert_true(json_is_null(json_object_get(o, "duration_ms")));
	assert_true(json_is_null(json_object_get(o, "detail")));
	assert_int_equal(json_object_size(o), 23);
	json_decref(o);

	o = parse(l.v[2]);
	assert_string_equal(str_of(o, "exe"), "unknown");
	json_decref(o);
	free_lines(&l);
}

static void test_alog_failed_write_leaves_no_half_record(void **state)
{
	struct alog *log = NULL;
	struct alog_event ev;
	struct rlimit old, lim;
	struct stat st;
	struct lines l;
	off_t before;

	(void)state;
	assert_int_equal(alog_open(logpath, &log), 0);
	write_events(log, 2, "open");
	assert_int_equal(stat(logpath, &st), 0);
	before = st.st_size;

	/* The file may grow by 10 bytes only: the write comes up short. */
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = (rlim_t)before + 10;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	alog_event_init(&ev);
	ev.event = "open";
	ev.detail = "this one cannot be written";
	assert_int_equal(alog_write(log, &ev), -EFBIG);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);

	assert_int_equal(stat(logpath, &st), 0);
	assert_int_equal(st.st_size, before);	/* cut back */

	/* The next write continues cleanly. */
	write_events(log, 1, "open");
	alog_close(log);
	read_lines(&l);
	assert_int_equal(l.n, 3);
	assert_int_equal(seq_of(l.v[2]), 3);
	assert_chain(&l);
	free_lines(&l);
}

static void test_alog_refuses_non_regular_file(void **state)
{
	struct alog *log = NULL;

	(void)state;
	assert_int_equal(alog_open(tmpdir, &log), -EISDIR);
	assert_int_equal(alog_open("/dev/null", &log), -EINVAL);
	assert_null(log);
}

static void test_alog_errno_names(void **state)
{
	(void)state;
	assert_string_equal(alog_errno_name(ENOENT), "ENOENT");
	assert_string_equal(alog_errno_name(EACCES), "EACCES");
	assert_string_equal(alog_errno_name(EPERM), "EPERM");
	assert_string_equal(alog_errno_name(EROFS), "EROFS");
	assert_string_equal(alog_errno_name(EIO), "EIO");
	assert_string_equal(alog_errno_name(EKEYEXPIRED), "EKEYEXPIRED");
	assert_string_equal(alog_errno_name(EKEYREVOKED), "EKEYREVOKED");
	assert_string_equal(alog_errno_name(EKEYREJECTED), "EKEYREJECTED");
	assert_string_equal(alog_errno_name(ENOKEY), "ENOKEY");
	assert_string_equal(alog_errno_name(EBADMSG), "EBADMSG");
	assert_string_equal(alog_errno_name(ENOSPC), "ENOSPC");
	assert_string_equal(alog_errno_name(ENOTCONN), "ENOTCONN");
	assert_string_equal(alog_errno_name(-EKEYEXPIRED), "EKEYEXPIRED");
	assert_string_equal(alog_errno_name(9999), "E?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_alog_records_chain_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_alog_reopen_continues_seq_and_chain, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_alog_torn_last_line_is_recovered, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_alog_threads_keep_seq_and_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_alog_fields_appear_as_set, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_alog_failed_write_leaves_no_half_record, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_alog_refuses_non_regular_file, setup, teardown),
		cmocka_unit_test(test_alog_errno_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
