/*
 * test_audit.c - the verifier against logs written by alog.c: every
 * single-bit flip is caught; deletion, duplication, swapping, editing,
 * truncation, bad signatures and wrong keys are named; group commit
 * under 64 threads; rotation keeps the chain; checkpoints on a timer;
 * the daemon's log options.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

#include "alog.h"
#include "audit.h"
#include "cipher.h"

static char tmpdir[512];
static char logpath[600];
static char keypath[600];

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "%s/marketfs-audit-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(logpath, sizeof(logpath), "%s/access.log", tmpdir);
	snprintf(keypath, sizeof(keypath), "%s/state/host.key", tmpdir);
	return 0;
}

static int teardown(void **state)
{
	char cmd[700];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static struct alog *open_keyed(uint64_t max_size, unsigned interval)
{
	struct alog_options opt = { 0 };
	struct alog *log = NULL;

	opt.host_key = keypath;
	opt.max_size = max_size;
	opt.checkpoint_interval = interval;
	assert_int_equal(alog_open_opts(logpath, &opt, &log), 0);
	return log;
}

static void write_n(struct alog *log, int n, const char *event)
{
	struct alog_event ev;
	int i;

	for (i = 0; i < n; i++) {
		alog_event_init(&ev);
		ev.event = event;
		ev.decision = "allow";
		ev.dataset = "cohort";
		ev.file = "a/b.csv";
		ev.bytes = i;
		assert_int_equal(alog_write(log, &ev), 0);
	}
}

static char *slurp(const char *path, size_t *ret_len)
{
	struct stat st;
	char *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	buf[st.st_size] = '\0';
	close(fd);
	*ret_len = (size_t)st.st_size;
	return buf;
}

static void spit(const char *path, const char *buf, size_t len)
{
	int fd;

	/* A new file each time: truncating one makes ext4 flush it. */
	(void)unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

static enum audit_problem verify1(const char *path, const uint8_t *pk,
				  struct audit_result *res)
{
	const char *paths[1] = { path };

	assert_int_equal(audit_verify(paths, 1, pk, NULL, res), 0);
	return res->problem;
}

static void host_pk(uint8_t pk[32])
{
	uint8_t sk[32];

	assert_int_equal(alog_host_key_load(keypath, 0, sk, pk), 0);
	cipher_wipe(sk, sizeof(sk));
}

/* Lines of a buffer, as offsets; n lines. */
struct lines {
	size_t off[4096], len[4096];
	size_t n;
};

static void split(const char *buf, size_t len, struct lines *l)
{
	size_t off = 0;
	const char *nl;

	l->n = 0;
	while (off < len) {
		nl = memchr(buf + off, '\n', len - off);
		assert_non_null(nl);
		l->off[l->n] = off;
		l->len[l->n] = (size_t)(nl - (buf + off));
		l->n++;
		off = (size_t)(nl - buf) + 1;
	}
}

/* A new buffer from lines of buf in the order given by idx[0..n). */
static char *assemble(const char *buf, const struct lines *l,
		      const size_t *idx, size_t n, size_t *ret_len)
{
	char *out = malloc(1 << 20);
	size_t o = 0, i;

	assert_non_null(out);
	for (i = 0; i < n; i++) {
		memcpy(out + o, buf + l->off[idx[i]], l->len[idx[i]]);
		o += l->len[idx[i]];
		out[o++] = '\n';
	}
	*ret_len = o;
	return out;
}

/* A sealed log, a torn line and its recovery, then an unsealed tail. */
static void make_mixed_log(void)
{
	struct alog *log;
	int fd;

	log = open_keyed(0, 0);
	write_n(log, 3, "open");
	alog_close(log);			/* checkpoint */
	fd = open(logpath, O_WRONLY | O_APPEND | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "{\"seq\":6,\"ti", 12), 12);
	close(fd);
	log = open_keyed(0, 0);			/* recovered */
	write_n(log, 1, "release");
	alog_close(log);			/* checkpoint */
	assert_int_equal(alog_open(logpath, &log), 0);	/* no key */
	write_n(log, 2, "open");		/* unsealed */
	alog_close(log);
}

static void test_audit_intact_log_verifies(void **state)
{
	struct audit_result res;
	uint8_t pk[32], other[32], sk[32];

	(void)state;
	make_mixed_log();
	host_pk(pk);
	assert_int_equal(verify1(logpath, NULL, &res), AUDIT_INTACT);
	/* log-start, 3 opens, ckpt, torn, recovered, release, ckpt, 2 */
	assert_int_equal(res.lines, 11);
	assert_int_equal(res.records, 10);
	assert_int_equal(res.checkpoints, 2);
	assert_int_equal(res.recovered, 1);
	assert_int_equal(res.first_seq, 1);
	assert_int_equal(res.last_seq, 10);
	assert_int_equal(res.sealed_seq, 8);
	assert_int_equal(res.unsealed, 2);
	assert_true(res.key_from_log);

	assert_int_equal(verify1(logpath, pk, &res), AUDIT_INTACT);
	assert_false(res.key_from_log);

	assert_int_equal(cipher_ed25519_keypair(sk, other), 0);
	assert_int_equal(verify1(logpath, other, &res), AUDIT_WRONG_KEY);
	assert_int_equal(res.line, 1);
}

static void test_audit_every_bit_flip_is_detected(void **state)
{
	struct audit_result res;
	char *orig, *copy, flipped[700];
	size_t len, i;
	int bit, missed = 0;

	(void)state;
	make_mixed_log();
	orig = slurp(logpath, &len);
	assert_int_equal(verify1(logpath, NULL, &res), AUDIT_INTACT);
	copy = malloc(len);
	assert_non_null(copy);
	snprintf(flipped, sizeof(flipped), "%s/flipped.log", tmpdir);
	for (i = 0; i < len; i++) {
		for (bit = 0; bit < 8; bit++) {
			memcpy(copy, orig, len);
			copy[i] = (char)(copy[i] ^ (1 << bit));
			spit(flipped, copy, len);
			if (verify1(flipped, NULL, &res) == AUDIT_INTACT) {
				missed++;
				print_message("undetected flip: byte %zu bit "
					      "%d\n", i, bit);
			}
		}
	}
	assert_int_equal(missed, 0);
	free(copy);
	free(orig);
}

static void test_audit_names_deleted_duplicated_swapped(void **state)
{
	static struct lines l;
	struct audit_result res;
	char path[700], *buf, *out;
	size_t len, olen, idx[64], i, n;
	struct alog *log;

	(void)state;
	log = open_keyed(0, 0);
	write_n(log, 8, "open");
	alog_close(log);
	buf = slurp(logpath, &len);
	split(buf, len, &l);
	assert_int_equal(l.n, 10);	/* start, 8 opens, checkpoint */
	snprintf(path, sizeof(path), "%s/mut.log", tmpdir);

	/* Deleted: line 5 (seq 5). */
	for (i = 0, n = 0; i < l.n; i++)
		if (i != 4)
			idx[n++] = i;
	out = assemble(buf, &l, idx, n, &olen);
	spit(path, out, olen);
	free(out);
	assert_int_equal(verify1(path, NULL, &res), AUDIT_DELETED);
	assert_int_equal(res.line, 5);
	assert_int_equal(res.seq, 6);

	/* Duplicated: line 4 twice. */
	for (i = 0, n = 0; i < l.n; i++) {
		idx[n++] = i;
		if (i == 3)
			idx[n++] = i;
	}
	out = assemble(buf, &l, idx, n, &olen);
	spit(path, out, olen);
	free(out);
	assert_int_equal(verify1(path, NULL, &res), AUDIT_INSERTED);
	assert_int_equal(res.line, 5);
	assert_int_equal(res.seq, 4);

	/* Swapped: lines 3 and 4. */
	for (i = 0; i < l.n; i++)
		idx[i] = i;
	idx[2] = 3;
	idx[3] = 2;
	out = assemble(buf, &l, idx, l.n, &olen);
	spit(path, out, olen);
	free(out);
	assert_int_equal(verify1(path, NULL, &res), AUDIT_REORDERED);
	assert_int_equal(res.line, 3);
	assert_int_equal(res.seq, 4);

	/* First record deleted. */
	for (i = 1, n = 0; i < l.n; i++)
		idx[n++] = i;
	out = assemble(buf, &l, idx, n, &olen);
	spit(path, out, olen);
	free(out);
	assert_int_equal(verify1(path, NULL, &res), AUDIT_DELETED);
	assert_int_equal(res.line, 1);

	/* Truncated inside the last line: torn, never silently kept. */
	spit(path, buf, len - 10);
	assert_int_equal(verify1(path, NULL, &res), AUDIT_TORN);
	assert_int_equal(res.line, 10);

	/* Cut after record 7, at a line boundary: what one host cannot
	 * prove -- intact but unsealed ... */
	spit(path, buf, l.off[8]);
	assert_int_equal(verify1(path, NULL, &res), AUDIT_INTACT);
	assert_int_equal(res.checkpoints, 0);
	assert_int_equal(res.unsealed, 8);
	/* ... unless a witness holds the checkpoint that was cut. */
	{
		const char *paths[1] = { path };
		char wpath[700];

		snprintf(wpath, sizeof(wpath), "%s/witness.log", tmpdir);
		spit(wpath, buf + l.off[9], l.len[9] + 1);
		assert_int_equal(audit_verify(paths, 1, NULL, wpath, &res), 0);
		assert_int_equal(res.problem, AUDIT_ROLLED_BACK);
		assert_int_equal(res.seq, 10);
		paths[0] = logpath;
		assert_int_equal(audit_verify(paths, 1, NULL, wpath, &res), 0);
		assert_int_equal(res.problem, AUDIT_INTACT);
		assert_int_equal(res.witnessed, 1);
	}
	free(buf);
}

/* Rewrite a line's own hash after editing it (what a forger does). */
static void rehash(char *line, size_t len)
{
	char hash[ALOG_HASH_HEX];

	alog_hash_hex(line, len - ALOG_HASH_SUFFIX_LEN, hash);
	memcpy(line + len - ALOG_HASH_SUFFIX_LEN + 9, hash, 64);
}

static void test_audit_names_edits_and_bad_signatures(void **state)
{
	static struct lines l;
	struct audit_result res;
	char path[700], *buf, *p;
	size_t len;
	struct alog *log;

	(void)state;
	log = open_keyed(0, 0);
	write_n(log, 4, "open");
	alog_close(log);
	buf = slurp(logpath, &len);
	split(buf, len, &l);
	snprintf(path, sizeof(path), "%s/mut.log", tmpdir);

	/* Edit line 3 ("a/b.csv" -> "a/x.csv") and fix its own hash: the
	 * next record's prev names it. */
	p = strstr(buf + l.off[2], "a/b.csv");
	assert_non_null(p);
	p[2] = 'x';
	rehash(buf + l.off[2], l.len[2]);
	spit(path, buf, len);
	assert_int_equal(verify1(path, NULL, &res), AUDIT_EDITED);
	assert_int_equal(res.line, 3);
	assert_int_equal(res.seq, 3);
	p[2] = 'b';
	rehash(buf + l.off[2], l.len[2]);

	/* The checkpoint (last line) claims one more line, hash fixed:
	 * its signature no longer holds. */
	p = strstr(buf + l.off[5], "\"count\":5");
	assert_non_null(p);
	p[8] = '6';
	rehash(buf + l.off[5], l.len[5]);
	spit(path, buf, len);
	assert_int_equal(verify1(path, NULL, &res), AUDIT_BAD_SIGNATURE);
	assert_int_equal(res.line, 6);
	free(buf);
}

static struct alog *shared;

static void *reader(void *arg)
{
	struct alog_event ev;
	char file[32];
	int i;

	for (i = 0; i < 50; i++) {
		alog_event_init(&ev);
		ev.event = "open";
		ev.decision = "allow";
		snprintf(file, sizeof(file), "t%ld/f%d", (long)(intptr_t)arg,
			 i);
		ev.file = file;
		if (alog_write(shared, &ev) < 0)
			return (void *)1;
	}
	return NULL;
}

/* 64 writers: one record each, seq 1..N in file order, chain intact. */
static void test_audit_group_commit_64_writers(void **state)
{
	pthread_t tid[64];
	struct audit_result res;
	char *buf;
	size_t len, i, opens = 0;
	void *ret;
	const char *p;

	(void)state;
	shared = open_keyed(0, 0);
	for (i = 0; i < 64; i++)
		assert_int_equal(pthread_create(&tid[i], NULL, reader,
						(void *)(intptr_t)i), 0);
	for (i = 0; i < 64; i++) {
		assert_int_equal(pthread_join(tid[i], &ret), 0);
		assert_null(ret);
	}
	alog_close(shared);
	assert_int_equal(verify1(logpath, NULL, &res), AUDIT_INTACT);
	assert_int_equal(res.records, 64 * 50 + 2);
	assert_int_equal(res.last_seq, 64 * 50 + 2);
	buf = slurp(logpath, &len);
	for (p = buf; (p = strstr(p, "\"event\":\"open\"")); p++)
		opens++;
	assert_int_equal(opens, 64 * 50);
	free(buf);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Rotated files, oldest first, then the current one; n returned. */
static size_t list_logs(char **paths, size_t max)
{
	struct dirent *de;
	size_t n = 0;
	DIR *d = opendir(tmpdir);

	assert_non_null(d);
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "access.log.", 11) != 0 ||
		    strcmp(de->d_name, "access.log.witness") == 0)
			continue;
		assert_true(n < max - 1);
		assert_true(asprintf(&paths[n++], "%s/%s", tmpdir,
				     de->d_name) > 0);
	}
	closedir(d);
	qsort(paths, n, sizeof(*paths), cmp_str);
	paths[n++] = strdup(logpath);
	return n;
}

static void test_audit_rotation_keeps_the_chain(void **state)
{
	struct audit_result res;
	char *paths[64], *buf;
	const char *sub[2];
	size_t n, i, len;
	struct alog *log;

	(void)state;
	log = open_keyed(4096, 0);
	write_n(log, 60, "open");
	alog_close(log);
	n = list_logs(paths, 64);
	assert_true(n >= 4);

	assert_int_equal(audit_verify((const char *const *)paths, n, NULL,
				      NULL, &res), 0);
	assert_int_equal(res.problem, AUDIT_INTACT);
	assert_int_equal(res.first_seq, 1);
	assert_true(res.checkpoints >= n);
	assert_int_equal(res.unsealed, 0);

	/* Every rotated file ends with a checkpoint; the next file starts
	 * with a log-start. */
	buf = slurp(paths[n - 1], &len);
	assert_non_null(strstr(buf, "\"event\":\"log-start\",\"decision\":null,"
			       "\"reason\":\"rotated\""));
	free(buf);

	/* The current file alone verifies too (from its log-start). */
	assert_int_equal(verify1(paths[n - 1], NULL, &res), AUDIT_INTACT);

	/* Out of order, or one missing in the middle. */
	sub[0] = paths[1];
	sub[1] = paths[0];
	assert_int_equal(audit_verify(sub, 2, NULL, NULL, &res), 0);
	assert_int_equal(res.problem, AUDIT_REORDERED);
	sub[0] = paths[0];
	sub[1] = paths[2];
	assert_int_equal(audit_verify(sub, 2, NULL, NULL, &res), 0);
	assert_int_equal(res.problem, AUDIT_DELETED);
	assert_true(res.file == paths[2]);
	assert_int_equal(res.line, 1);

	for (i = 0; i < n; i++)
		free(paths[i]);
}

static void test_audit_checkpoint_timer_seals(void **state)
{
	struct audit_result res;
	struct alog *log;

	(void)state;
	log = open_keyed(0, 1);
	write_n(log, 3, "open");
	usleep(1600 * 1000);
	assert_int_equal(verify1(logpath, NULL, &res), AUDIT_INTACT);
	assert_int_equal(res.checkpoints, 1);
	assert_int_equal(res.unsealed, 0);
	write_n(log, 1, "open");
	assert_int_equal(verify1(logpath, NULL, &res), AUDIT_INTACT);
	assert_int_equal(res.unsealed, 1);
	alog_close(log);
	assert_int_equal(verify1(logpath, NULL, &res), AUDIT_INTACT);
	assert_int_equal(res.checkpoints, 2);
	assert_int_equal(res.unsealed, 0);
}

static void test_audit_host_key_file(void **state)
{
	uint8_t sk[32], pk[32], sk2[32], pk2[32];
	struct stat st;

	(void)state;
	assert_int_equal(alog_host_key_load(keypath, 0, sk, pk), -ENOENT);
	assert_int_equal(alog_host_key_load(keypath, 1, sk, pk), 0);
	assert_int_equal(stat(keypath, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(alog_host_key_load(keypath, 1, sk2, pk2), 0);
	assert_memory_equal(pk, pk2, 32);
	assert_memory_equal(sk, sk2, 32);
	assert_int_equal(chmod(keypath, 0644), 0);
	assert_int_equal(alog_host_key_load(keypath, 0, sk2, pk2), -EACCES);
	assert_int_equal(chmod(keypath, 0600), 0);
	spit(keypath, "zz\n", 3);
	assert_int_equal(alog_host_key_load(keypath, 0, sk2, pk2), -EINVAL);
}

static void test_audit_options_take(void **state)
{
	char a0[] = "marketfs", a1[] = "-o",
	     a2[] = "key=k,log_max_size=64k,syslog,allow_other",
	     a3[] = "-owitness=https://w.example/cp,host_key=/s/h.key",
	     a4[] = "src", a5[] = "-o", a6[] = "log_checkpoint_interval=30",
	     a7[] = "mnt";
	char *argv[] = { a0, a1, a2, a3, a4, a5, a6, a7, NULL };
	char bad[] = "-olog_max_size=lots";
	char *argv2[] = { a0, bad, NULL };
	struct alog_options o = { 0 };
	char msg[128];
	int argc = 8, argc2 = 2;

	(void)state;
	assert_int_equal(alog_options_take(&argc, argv, NULL, &o, msg,
					   sizeof(msg)),
			 0);
	assert_int_equal(argc, 5);
	assert_string_equal(argv[1], "-o");
	assert_string_equal(argv[2], "key=k,allow_other");
	assert_string_equal(argv[3], "src");
	assert_string_equal(argv[4], "mnt");
	assert_null(argv[5]);
	assert_int_equal(o.max_size, 65536);
	assert_int_equal(o.syslog, 1);
	assert_int_equal(o.checkpoint_interval, 30);
	assert_string_equal(o.witness, "https://w.example/cp");
	assert_string_equal(o.host_key, "/s/h.key");
	alog_options_release(&o);

	assert_int_equal(alog_options_take(&argc2, argv2, NULL, &o, msg,
					   sizeof(msg)), -EINVAL);
	assert_non_null(strstr(msg, "log_max_size"));
	alog_options_release(&o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_audit_intact_log_verifies, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_audit_every_bit_flip_is_detected, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_audit_names_deleted_duplicated_swapped, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_audit_names_edits_and_bad_signatures, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_audit_group_commit_64_writers, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_audit_rotation_keeps_the_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_audit_checkpoint_timer_seals, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_audit_host_key_file, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_audit_options_take, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
