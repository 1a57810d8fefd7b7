/*
 * test_operator.c - the operator's tool end to end on a temporary
 * directory: init, publish, grant, revoke, resign, verify, list.  The
 * licence's header opens with the licensee's key and gives the data key
 * the market sealed for itself; verify finds a flipped byte, a swapped
 * object and a deleted sums file.
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
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>

#include "c4gh.h"
#include "cipher.h"
#include "market.h"
#include "operator.h"
#include "timeutil.h"
#include "util.h"

#define BIG_SIZE	200000		/* four segments, the last partial */

struct fx {
	char root[64];
	char dir[128], keys[128], src[128], policies[512];
	char pub[512], sec[512];
	uint8_t big[BIG_SIZE];
	struct market_info *info;
	char problems[4096];
	int nproblems;
};

static void put_file(const char *dir, const char *name, const void *data,
		     size_t len)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(util_write_file_atomic(path, data, len, 0644), 0);
}

static int rm_rf(const char *path)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	return system(cmd);
}

static char *read_rel(const struct fx *f, const char *rel, size_t *ret_len)
{
	char path[1024], *buf = NULL;

	snprintf(path, sizeof(path), "%s/%s", f->dir, rel);
	assert_int_equal(util_read_file(path, 64u << 20, &buf, ret_len), 0);
	return buf;
}

static int setup(void **state)
{
	const char *data = getenv("MARKETFS_TESTDATA");
	const char *source = getenv("MARKETFS_SOURCE");
	struct operator_init init = { 0 };
	struct fx *f = calloc(1, sizeof(*f));
	char msg[OPERATOR_MSG_LEN], sub[256], *buf;
	size_t len;

	if (!f || !data || !source)
		return -1;
	snprintf(f->root, sizeof(f->root), "/tmp/test_operator.XXXXXX");
	if (!mkdtemp(f->root))
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/market", f->root);
	snprintf(f->keys, sizeof(f->keys), "%s/keys", f->root);
	snprintf(f->src, sizeof(f->src), "%s/src", f->root);
	snprintf(f->policies, sizeof(f->policies), "%s/policies", source);
	snprintf(f->pub, sizeof(f->pub), "%s/crypt4gh/keys/recipient1.pub",
		 data);
	snprintf(f->sec, sizeof(f->sec), "%s/crypt4gh/keys/recipient1.sec",
		 data);

	snprintf(sub, sizeof(sub), "%s/sub", f->src);
	if (util_mkdir_p(sub, 0755) < 0)
		return -1;
	for (size_t i = 0; i < BIG_SIZE; i++)
		f->big[i] = (uint8_t)(i * 7 + i / 251);
	put_file(f->src, "big.bin", f->big, BIG_SIZE);
	put_file(f->src, "a.txt", "hello\n", 6);
	put_file(f->src, "empty", "", 0);
	put_file(sub, "c.csv", "x,y\n1,2\n", 8);

	init.dir = f->dir;
	init.name = "Test market";
	init.keys_dir = f->keys;
	if (operator_market_init(&init, msg) < 0) {
		fprintf(stderr, "init: %s\n", msg);
		return -1;
	}
	buf = read_rel(f, "market.jws", &len);
	if (market_info_parse(buf, len, NULL, &f->info) < 0)
		return -1;
	free(buf);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	market_info_free(f->info);
	rm_rf(f->root);
	free(f);
	return 0;
}

static void report(void *ctx, const char *line)
{
	struct fx *f = ctx;

	f->nproblems++;
	strncat(f->problems, line, sizeof(f->problems) -
		strlen(f->problems) - 2);
	strcat(f->problems, "\n");
}

static int verify(struct fx *f)
{
	char msg[OPERATOR_MSG_LEN];

	f->problems[0] = '\0';
	f->nproblems = 0;
	return operator_verify(f->dir, report, f, msg);
}

static void publish(struct fx *f, const char *want_version)
{
	struct operator_publish p = {
		.dir = f->dir, .keys_dir = f->keys, .dataset = "cohort",
		.srcdir = f->src, .title = "Cohort", .price = "EUR 5",
	};
	char msg[OPERATOR_MSG_LEN] = "", version[64];

	if (operator_publish(&p, version, msg) < 0)
		fail_msg("publish: %s", msg);
	assert_string_equal(version, want_version);
}

static void grant(struct fx *f, const char *expires, int *past,
		  char id[64])
{
	struct operator_grant g = {
		.dir = f->dir, .keys_dir = f->keys, .dataset = "cohort",
		.to_pubkey_file = f->pub, .policies_dir = f->policies,
		.expires = expires, .ret_window_past = past,
	};
	char msg[OPERATOR_MSG_LEN] = "";

	if (expires)
		g.not_before = "2020-01-01T00:00:00Z";
	if (operator_grant(&g, id, msg) < 0)
		fail_msg("grant: %s", msg);
}

static struct market_manifest *load_manifest(struct fx *f, const char *v)
{
	struct market_manifest *m = NULL;
	char rel[128], *buf;
	size_t len;

	snprintf(rel, sizeof(rel), "datasets/cohort/%s/manifest.jws", v);
	buf = read_rel(f, rel, &len);
	assert_int_equal(market_manifest_parse(buf, len, f->info->sign_pk,
					       &m), 0);
	free(buf);
	return m;
}

static struct market_licence *load_licence(struct fx *f, const char *id)
{
	struct market_licence *l = NULL;
	uint8_t pk[32];
	char *rel, *buf;
	size_t len;

	assert_int_equal(c4gh_pubkey_read_file(f->pub, pk), 0);
	assert_int_equal(market_path_licence(pk, id, &rel), 0);
	buf = read_rel(f, rel, &len);
	free(rel);
	assert_int_equal(market_licence_parse(buf, len, f->info->sign_pk,
					      &l), 0);
	free(buf);
	return l;
}

static void test_operator_init_makes_signed_market(void **state)
{
	struct fx *f = *state;
	struct operator_init again = {
		.dir = f->dir, .keys_dir = f->keys,
	};
	struct market_catalog *cat = NULL;
	struct market_revocations *rev = NULL;
	char msg[OPERATOR_MSG_LEN], path[256], *buf;
	struct stat st;
	size_t len;

	assert_string_equal(f->info->name, "Test market");
	assert_int_equal(strlen(f->info->id), 32);
	buf = read_rel(f, "catalog.jws", &len);
	assert_int_equal(market_catalog_parse(buf, len, f->info->sign_pk,
					      &cat), 0);
	assert_int_equal(cat->ndatasets, 0);
	market_catalog_free(cat);
	free(buf);
	buf = read_rel(f, "revocations.jws", &len);
	assert_int_equal(market_revocations_parse(buf, len, f->info->sign_pk,
						  &rev), 0);
	assert_int_equal(rev->version, 1);
	assert_int_equal(rev->nids, 0);
	assert_int_equal(rev->next_update - rev->issued, 86400);
	market_revocations_free(rev);
	free(buf);

	/* Private keys: outside the market, owner-only. */
	snprintf(path, sizeof(path), "%s/signing.key", f->keys);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s/market.sec", f->keys);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(f->keys, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	snprintf(path, sizeof(path), "%s/signing.key", f->dir);
	assert_int_equal(access(path, F_OK), -1);

	/* A second init of the same directory is refused. */
	assert_int_equal(operator_market_init(&again, msg), -EEXIST);

	/* So is a keys directory inside the market directory. */
	snprintf(path, sizeof(path), "%s/other", f->root);
	{
		char keys[300];
		struct operator_init bad = { .dir = path, .keys_dir = keys };

		snprintf(keys, sizeof(keys), "%s/keys", path);
		assert_int_equal(operator_market_init(&bad, msg), -EINVAL);
	}
	assert_int_equal(verify(f), 0);
}

/* Decrypt a whole object with a header opened by sk. */
static void check_object(struct fx *f, const struct market_file *mf,
			 const struct c4gh_header *hdr, const void *want,
			 size_t want_len)
{
	uint8_t *pt = malloc(want_len + 1), *seg;
	char *obj;
	size_t len, off = 0;

	obj = read_rel(f, mf->object, &len);
	assert_int_equal(len, mf->header_len + mf->data_len);
	seg = (uint8_t *)obj + mf->header_len;
	for (uint64_t s = 0; s < mf->nsegments; s++) {
		size_t n = mf->data_len - s * C4GH_CIPHER_SEGMENT;
		ssize_t got;

		if (n > C4GH_CIPHER_SEGMENT)
			n = C4GH_CIPHER_SEGMENT;
		got = c4gh_segment_decrypt(hdr, seg, n, pt + off);
		assert_int_equal(got, n - 28);
		off += (size_t)got;
		seg += n;
	}
	assert_int_equal(off, want_len);
	assert_memory_equal(pt, want, want_len);
	free(obj);
	free(pt);
}

static void test_operator_licence_opens_with_licensee_key(void **state)
{
	struct fx *f = *state;
	struct market_manifest *m;
	struct market_licence *l;
	uint8_t rsk[32], msk[32], want[32];
	char id[64], keypath[256], *facts_text;
	int past = -1;

	publish(f, "v1");
	m = load_manifest(f, "v1");
	assert_int_equal(m->nfiles, 4);
	assert_string_equal(m->files[0].path, "a.txt");
	assert_string_equal(m->files[1].path, "big.bin");
	assert_string_equal(m->files[2].path, "empty");
	assert_string_equal(m->files[3].path, "sub/c.csv");
	assert_int_equal(m->files[1].size, BIG_SIZE);
	assert_int_equal(m->files[1].nsegments, 4);
	assert_string_equal(m->files[1].object,
			    "datasets/cohort/v1/objects/000002.c4gh");

	grant(f, NULL, &past, id);
	assert_int_equal(past, 0);
	l = load_licence(f, id);
	assert_string_equal(l->dataset, "cohort");
	assert_string_equal(l->version, "v1");
	assert_string_equal(l->market_id, f->info->id);
	assert_memory_equal(l->manifest_sha256, m->digest, 32);
	assert_int_equal(l->serial, 1);
	assert_string_equal(l->policy, "research-12m");
	assert_int_equal(l->expires - l->not_before, 365 * 86400);
	assert_int_equal(l->nheaders, 4);
	assert_non_null(strstr(l->terms, "re-identif"));

	assert_int_equal(c4gh_seckey_read_file(f->sec, NULL, 0, rsk), 0);
	snprintf(keypath, sizeof(keypath), "%s/market.sec", f->keys);
	assert_int_equal(c4gh_seckey_read_file(keypath, NULL, 0, msk), 0);
	for (size_t i = 0; i < m->nfiles; i++) {
		const struct market_licence_header *h =
			market_licence_find(l, m->files[i].path);
		struct c4gh_header mine, theirs;
		char *obj;
		size_t len;

		assert_non_null(h);
		assert_int_equal(c4gh_header_decrypt(h->header, h->header_len,
						     rsk, &theirs), 0);
		assert_int_equal(theirs.nkeys, 1);
		/* The market's own header holds the same single data key. */
		obj = read_rel(f, m->files[i].object, &len);
		assert_int_equal(c4gh_header_decrypt((uint8_t *)obj,
						     m->files[i].header_len,
						     msk, &mine), 0);
		assert_int_equal(mine.nkeys, 1);
		assert_memory_equal(mine.keys[0], theirs.keys[0], 32);
		/* The licensee's key does not open the market's header. */
		{
			struct c4gh_header none;

			assert_int_equal(c4gh_header_decrypt((uint8_t *)obj,
				m->files[i].header_len, rsk, &none), -ENOKEY);
		}
		free(obj);
		if (!strcmp(m->files[i].path, "big.bin"))
			check_object(f, &m->files[i], &theirs, f->big,
				     BIG_SIZE);
		if (!strcmp(m->files[i].path, "a.txt"))
			check_object(f, &m->files[i], &theirs, "hello\n", 6);
		c4gh_header_release(&mine);
		c4gh_header_release(&theirs);
	}

	/* The facts: plaintext SHA-256 of each file, for the licensee. */
	{
		int in = memfd_create("in", MFD_CLOEXEC);
		int out = memfd_create("out", MFD_CLOEXEC);
		json_t *doc;
		json_error_t jerr;
		char hex[65];
		struct stat st;

		assert_int_equal(write(in, l->facts, l->facts_len),
				 (ssize_t)l->facts_len);
		lseek(in, 0, SEEK_SET);
		assert_int_equal(c4gh_decrypt_fd(in, out, rsk), 0);
		fstat(out, &st);
		facts_text = calloc(1, (size_t)st.st_size + 1);
		assert_int_equal(pread(out, facts_text, (size_t)st.st_size, 0),
				 st.st_size);
		doc = json_loads(facts_text, JSON_REJECT_DUPLICATES, &jerr);
		assert_non_null(doc);
		cipher_sha256(f->big, BIG_SIZE, want);
		cipher_hex(want, 32, hex);
		assert_string_equal(json_string_value(json_object_get(
			json_object_get(json_object_get(doc, "files"),
					"big.bin"), "sha256")), hex);
		assert_string_equal(json_string_value(json_object_get(
			json_object_get(json_object_get(doc, "files"),
					"empty"), "sha256")),
			"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
		json_decref(doc);
		free(facts_text);
		close(in);
		close(out);
		/* Not readable with the market's own key. */
		in = memfd_create("in", MFD_CLOEXEC);
		out = memfd_create("out", MFD_CLOEXEC);
		assert_int_equal(write(in, l->facts, l->facts_len),
				 (ssize_t)l->facts_len);
		lseek(in, 0, SEEK_SET);
		assert_int_equal(c4gh_decrypt_fd(in, out, msk), -ENOKEY);
		close(in);
		close(out);
	}
	cipher_wipe(rsk, 32);
	cipher_wipe(msk, 32);
	market_licence_free(l);

	/* A second grant raises the serial; a new version is v2. */
	grant(f, NULL, &past, id);
	l = load_licence(f, id);
	assert_int_equal(l->serial, 2);
	market_licence_free(l);
	publish(f, "v2");
	market_manifest_free(m);
	m = load_manifest(f, "v2");
	assert_int_equal(m->nfiles, 4);
	market_manifest_free(m);
	assert_int_equal(verify(f), 0);
}

static void test_operator_grant_in_the_past_warns(void **state)
{
	struct fx *f = *state;
	struct market_licence *l;
	char id[64];
	int past = 0;

	publish(f, "v1");
	grant(f, "2021-01-01T00:00:00Z", &past, id);
	assert_int_equal(past, 1);
	l = load_licence(f, id);
	assert_int_equal(l->not_before, 1577836800);
	assert_int_equal(l->expires, 1609459200);
	market_licence_free(l);
}

static void test_operator_revoke_and_resign(void **state)
{
	struct fx *f = *state;
	struct market_revocations *rev = NULL;
	char id[64], msg[OPERATOR_MSG_LEN], *buf;
	size_t len;
	int past;

	publish(f, "v1");
	grant(f, NULL, &past, id);
	assert_int_equal(operator_revoke(f->dir, f->keys, id, msg), 0);
	assert_int_equal(operator_revoke(f->dir, f->keys, id, msg),
			 -EALREADY);
	assert_int_equal(operator_revoke(f->dir, f->keys,
		"00000000000000000000000000000000", msg), -ENOENT);
	assert_int_equal(operator_revoke(f->dir, f->keys, "../x", msg),
			 -EINVAL);
	assert_int_equal(operator_resign(f->dir, f->keys, 3600, msg), 0);

	buf = read_rel(f, "revocations.jws", &len);
	assert_int_equal(market_revocations_parse(buf, len, f->info->sign_pk,
						  &rev), 0);
	assert_int_equal(rev->version, 3);
	assert_int_equal(rev->nids, 1);
	assert_true(market_revocations_has(rev, id));
	assert_int_equal(rev->next_update - rev->issued, 3600);
	assert_true(rev->issued >= timeutil_now() - 60);
	market_revocations_free(rev);
	free(buf);

	/* The wrong keys are refused. */
	{
		char other[256];

		snprintf(other, sizeof(other), "%s/nokeys", f->root);
		assert_true(operator_resign(f->dir, other, 3600, msg) < 0);
	}
	assert_int_equal(verify(f), 0);
}

static void obj_path(struct fx *f, int n, const char *ext, char *buf)
{
	snprintf(buf, 512, "%s/datasets/cohort/v1/objects/%06d.%s", f->dir,
		 n, ext);
}

static void test_operator_verify_detects_tampering(void **state)
{
	struct fx *f = *state;
	char p1[512], p2[512], tmp[600], id[64];
	uint8_t b;
	int fd, past;

	publish(f, "v1");
	grant(f, NULL, &past, id);
	assert_int_equal(verify(f), 0);

	/* One flipped byte in the data of big.bin (object 2). */
	obj_path(f, 2, "c4gh", p1);
	fd = open(p1, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, 70000), 1);
	b ^= 0x01;
	assert_int_equal(pwrite(fd, &b, 1, 70000), 1);
	assert_int_equal(verify(f), -EBADMSG);
	assert_non_null(strstr(f->problems, "'big.bin': segment 1"));
	b ^= 0x01;
	assert_int_equal(pwrite(fd, &b, 1, 70000), 1);
	close(fd);
	assert_int_equal(verify(f), 0);

	/* Two objects swapped (a.txt and sub/c.csv). */
	obj_path(f, 1, "c4gh", p1);
	obj_path(f, 4, "c4gh", p2);
	snprintf(tmp, sizeof(tmp), "%s.swap", p1);
	assert_int_equal(rename(p1, tmp), 0);
	assert_int_equal(rename(p2, p1), 0);
	assert_int_equal(rename(tmp, p2), 0);
	assert_int_equal(verify(f), -EBADMSG);
	assert_non_null(strstr(f->problems, "'a.txt'"));
	assert_non_null(strstr(f->problems, "'sub/c.csv'"));
	assert_int_equal(rename(p1, tmp), 0);
	assert_int_equal(rename(p2, p1), 0);
	assert_int_equal(rename(tmp, p2), 0);
	assert_int_equal(verify(f), 0);

	/* A deleted sums file. */
	obj_path(f, 2, "sums", p1);
	snprintf(tmp, sizeof(tmp), "%s/saved.sums", f->root);
	assert_int_equal(rename(p1, tmp), 0);
	assert_int_equal(verify(f), -EBADMSG);
	assert_int_equal(f->nproblems, 1);
	assert_non_null(strstr(f->problems, "'big.bin': sums object"));
	assert_int_equal(rename(tmp, p1), 0);

	/* A truncated object. */
	obj_path(f, 2, "c4gh", p1);
	assert_int_equal(truncate(p1, 1000), 0);
	assert_int_equal(verify(f), -EBADMSG);
	assert_non_null(strstr(f->problems, "'big.bin': object is 1000"));
}

static void test_operator_publish_refuses_unsafe_sources(void **state)
{
	struct fx *f = *state;
	struct operator_publish p = {
		.dir = f->dir, .keys_dir = f->keys, .dataset = "cohort",
		.srcdir = f->src,
	};
	char msg[OPERATOR_MSG_LEN], version[64], link[256], name[256];

	/* A symbolic link leaving the source directory. */
	snprintf(link, sizeof(link), "%s/escape", f->src);
	assert_int_equal(symlink("/etc/hostname", link), 0);
	assert_int_equal(operator_publish(&p, version, msg), -EPERM);
	assert_non_null(strstr(msg, "escape"));
	unlink(link);

	/* A link inside is followed. */
	assert_int_equal(symlink("a.txt", link), 0);
	assert_int_equal(operator_publish(&p, version, msg), 0);
	assert_string_equal(version, "v1");
	unlink(link);

	/* A name that could clash with the terms file. */
	snprintf(name, sizeof(name), "%s/x%s", f->src, MARKET_RESERVED_SUFFIX);
	put_file(f->src, "x" MARKET_RESERVED_SUFFIX, "x", 1);
	assert_int_equal(operator_publish(&p, version, msg), -EINVAL);
	unlink(name);

	/* A bad dataset id, and a failed publish leaves no version. */
	p.dataset = "Bad/Id";
	assert_int_equal(operator_publish(&p, version, msg), -EINVAL);
	snprintf(name, sizeof(name), "%s/datasets/cohort/v2", f->dir);
	assert_int_equal(access(name, F_OK), -1);
	assert_int_equal(verify(f), 0);
}

static void test_operator_lists_json(void **state)
{
	struct fx *f = *state;
	char msg[OPERATOR_MSG_LEN], *text = NULL, id[64];
	json_error_t jerr;
	json_t *doc, *lic;
	int past;

	publish(f, "v1");
	grant(f, NULL, &past, id);
	assert_int_equal(operator_list_json(f->dir, &text, msg), 0);
	doc = json_loads(text, 0, &jerr);
	assert_non_null(doc);
	assert_string_equal(json_string_value(json_object_get(
		json_object_get(doc, "market"), "id")), f->info->id);
	assert_int_equal(json_array_size(json_object_get(doc, "datasets")),
			 1);
	lic = json_array_get(json_object_get(doc, "licences"), 0);
	assert_string_equal(json_string_value(json_object_get(lic, "id")), id);
	assert_string_equal(json_string_value(json_object_get(lic, "status")),
			    "valid");
	json_decref(doc);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_operator_init_makes_signed_market, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_operator_licence_opens_with_licensee_key, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_operator_grant_in_the_past_warns, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_operator_revoke_and_resign, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_operator_verify_detects_tampering, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_operator_publish_refuses_unsafe_sources, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_operator_lists_json, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
