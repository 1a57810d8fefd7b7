/*
 * test_cache.c - the cache of verified ciphertext segments.
 *
 * The "market" here is a file of random bytes read through file://
 * (with the cache's local flag, so the disk part and read-ahead are used
 * as for https); its segment digests play the manifest's.  Every case
 * checks exact bytes, exact errnos and what lies in the cache directory.
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

#include "c4gh.h"
#include "cache.h"
#include "cipher.h"
#include "http.h"

#define SEG	C4GH_CIPHER_SEGMENT
#define HDR	123			/* bytes before the data section */
#define NSEG	6
#define DLEN	((uint64_t)5 * SEG + 1000)	/* last segment short */

struct fx {
	char dir[64];			/* work directory */
	char obj[128];			/* the object file */
	char url[160];
	char cdir[128];			/* the cache directory */
	uint8_t *data;			/* the data section */
	uint8_t sums[NSEG * 32];
	struct http *http;
};

static size_t seg_len(uint64_t i)
{
	uint64_t left = DLEN - i * SEG;

	return left < SEG ? (size_t)left : SEG;
}

static void write_object(struct fx *fx)
{
	FILE *f = fopen(fx->obj, "wb");
	uint8_t hdr[HDR];

	assert_non_null(f);
	memset(hdr, 0x55, sizeof(hdr));
	assert_int_equal(fwrite(hdr, 1, HDR, f), HDR);
	assert_int_equal(fwrite(fx->data, 1, DLEN, f), DLEN);
	assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	uint64_t i;
	int fd;

	assert_non_null(fx);
	strcpy(fx->dir, "/tmp/test_cache.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->obj, sizeof(fx->obj), "%s/object.c4gh", fx->dir);
	snprintf(fx->url, sizeof(fx->url), "file://%s", fx->obj);
	snprintf(fx->cdir, sizeof(fx->cdir), "%s/cache/sub", fx->dir);
	fx->data = malloc(DLEN);
	assert_non_null(fx->data);
	fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, fx->data, DLEN), (ssize_t)DLEN);
	close(fd);
	for (i = 0; i < NSEG; i++)
		assert_int_equal(cipher_sha256(fx->data + i * SEG, seg_len(i),
					       fx->sums + i * 32), 0);
	write_object(fx);
	assert_int_equal(http_new(NULL, &fx->http), 0);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	char cmd[128];

	http_free(fx->http);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	assert_int_equal(system(cmd), 0);
	free(fx->data);
	free(fx);
	return 0;
}

static struct cache *new_cache(struct fx *fx, uint64_t size)
{
	struct cache_options o = { .dir = fx->cdir, .size = size,
				   .local = 1 };
	struct cache *c = NULL;

	assert_int_equal(cache_new(&o, fx->http, &c), 0);
	return c;
}

static struct cache_file *new_file(struct fx *fx, struct cache *c)
{
	struct cache_file *f = NULL;
	uint8_t *sums = malloc(sizeof(fx->sums));

	assert_non_null(sums);
	memcpy(sums, fx->sums, sizeof(fx->sums));
	assert_int_equal(cache_file_new(c, fx->url, HDR, DLEN, sums, NSEG,
					&f), 0);
	return f;
}

/* Fetch segments first..last and compare with the data. */
static int fetch_segs(struct cache_file *f, struct fx *fx, uint64_t first,
		      uint64_t last)
{
	size_t len = 0;
	uint64_t i;
	uint8_t *buf;
	int r;

	for (i = first; i <= last; i++)
		len += seg_len(i);
	buf = malloc(len);
	assert_non_null(buf);
	r = cache_file_fetch(f, first * SEG, buf, len);
	if (r == 0)
		assert_memory_equal(buf, fx->data + first * SEG, len);
	free(buf);
	return r;
}

static int count_files(const char *dir, int *ret_tmp)
{
	char sub[512];
	struct dirent *de, *fe;
	DIR *d, *s;
	int n = 0;

	if (ret_tmp)
		*ret_tmp = 0;
	d = opendir(dir);
	if (!d)
		return -1;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
		s = opendir(sub);
		if (!s)
			continue;
		while ((fe = readdir(s))) {
			if (fe->d_name[0] != '.')
				n++;
			else if (ret_tmp && strncmp(fe->d_name, ".tmp.", 5) == 0)
				(*ret_tmp)++;
		}
		closedir(s);
	}
	closedir(d);
	return n;
}

/* The disk path of segment i. */
static void seg_path(struct fx *fx, uint64_t i, char *out, size_t outlen)
{
	char hex[65];
	size_t k;

	for (k = 0; k < 32; k++)
		sprintf(hex + 2 * k, "%02x", fx->sums[i * 32 + k]);
	snprintf(out, outlen, "%s/%.2s/%s", fx->cdir, hex, hex);
}

static void test_cache_parses_sizes_with_suffixes(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(cache_parse_size("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(cache_parse_size("4096", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(cache_parse_size("512M", &v), 0);
	assert_int_equal(v, 512ull << 20);
	assert_int_equal(cache_parse_size("2G", &v), 0);
	assert_int_equal(v, 2ull << 30);
	assert_int_equal(cache_parse_size("64k", &v), 0);
	assert_int_equal(v, 64ull << 10);
	assert_int_equal(cache_parse_size("3GiB", &v), 0);
	assert_int_equal(v, 3ull << 30);
	assert_int_equal(cache_parse_size("1T", &v), 0);
	assert_int_equal(v, 1ull << 40);
	assert_int_equal(cache_parse_size("", &v), -EINVAL);
	assert_int_equal(cache_parse_size("G", &v), -EINVAL);
	assert_int_equal(cache_parse_size("12X", &v), -EINVAL);
	assert_int_equal(cache_parse_size("-1", &v), -EINVAL);
	assert_int_equal(cache_parse_size("1 G", &v), -EINVAL);
	assert_int_equal(cache_parse_size("99999999999999999999", &v),
			 -ERANGE);
	assert_int_equal(cache_parse_size("99999999999G", &v), -ERANGE);
}

static void test_cache_serves_exact_bytes_and_files_them_by_digest(
	void **state)
{
	struct fx *fx = *state;
	struct cache *c = new_cache(fx, 1 << 30);
	struct cache_file *f = new_file(fx, c);
	char path[256], top[128];
	struct stat st;
	uint64_t i;

	assert_int_equal(fetch_segs(f, fx, 0, NSEG - 1), 0);
	/* Again: now from memory. */
	assert_int_equal(fetch_segs(f, fx, 2, 4), 0);
	assert_int_equal(fetch_segs(f, fx, NSEG - 1, NSEG - 1), 0);

	for (i = 0; i < NSEG; i++) {
		seg_path(fx, i, path, sizeof(path));
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_size, (off_t)seg_len(i));
		assert_int_equal(st.st_mode & 07777, 0600);
	}
	assert_int_equal(stat(fx->cdir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	snprintf(top, sizeof(top), "%s/cache", fx->dir);
	assert_int_equal(stat(top, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(cache_disk_usage(c), DLEN);

	cache_file_free(f);
	cache_free(c);
}

static void test_cache_serves_whole_segments_only(void **state)
{
	struct fx *fx = *state;
	struct cache *c = new_cache(fx, 1 << 30);
	struct cache_file *f = new_file(fx, c);
	static uint8_t buf[2 * SEG];

	/* Part of a segment cannot be checked: refused, nothing copied. */
	memset(buf, 0xa5, sizeof(buf));
	assert_int_equal(cache_file_fetch(f, SEG + 17, buf, 3000), -EINVAL);
	assert_int_equal(cache_file_fetch(f, SEG, buf, 3000), -EINVAL);
	assert_int_equal(cache_file_fetch(f, SEG, buf, SEG + 1), -EINVAL);
	assert_int_equal(buf[0], 0xa5);
	assert_int_equal(cache_file_fetch(f, DLEN - 10, buf, 11), -EINVAL);
	assert_int_equal(cache_file_fetch(f, DLEN, buf, 1), -EINVAL);

	/* The short last segment is whole. */
	assert_int_equal(cache_file_fetch(f, 5 * SEG, buf, 1000), 0);
	assert_memory_equal(buf, fx->data + 5 * SEG, 1000);
	assert_int_equal(cache_file_fetch(f, 4 * SEG, buf, SEG + 1000), 0);
	assert_memory_equal(buf, fx->data + 4 * SEG, SEG + 1000);
	cache_file_free(f);
	cache_free(c);
}

static void test_cache_survives_restart_and_serves_without_origin(
	void **state)
{
	struct fx *fx = *state;
	struct cache *c = new_cache(fx, 1 << 30);
	struct cache_file *f = new_file(fx, c);

	assert_int_equal(fetch_segs(f, fx, 0, NSEG - 1), 0);
	cache_file_free(f);
	cache_free(c);

	/* The origin is gone: only the disk cache can answer. */
	assert_int_equal(unlink(fx->obj), 0);
	c = new_cache(fx, 1 << 30);
	assert_int_equal(cache_disk_usage(c), DLEN);
	f = new_file(fx, c);
	assert_int_equal(fetch_segs(f, fx, 0, NSEG - 1), 0);
	assert_int_equal(fetch_segs(f, fx, 3, 3), 0);
	cache_file_free(f);
	cache_free(c);

	/* Cold, without origin: an error, never bytes. */
	c = new_cache(fx, 0);
	f = new_file(fx, c);
	assert_int_equal(fetch_segs(f, fx, 0, 1), -EIO);
	cache_file_free(f);
	cache_free(c);
}

static void test_cache_refetches_damaged_or_swapped_files(void **state)
{
	struct fx *fx = *state;
	struct cache *c = new_cache(fx, 1 << 30);
	struct cache_file *f = new_file(fx, c);
	char p1[256], p2[256], cmd[600];
	uint8_t *copy;
	FILE *fp;

	assert_int_equal(fetch_segs(f, fx, 0, NSEG - 1), 0);
	cache_file_free(f);
	cache_free(c);

	/* Flip a byte of segment 1's file; put segment 3's bytes under
	 * segment 2's name; truncate segment 4's. */
	seg_path(fx, 1, p1, sizeof(p1));
	fp = fopen(p1, "r+b");
	assert_non_null(fp);
	fseek(fp, 100, SEEK_SET);
	fputc(fgetc(fp) ^ 1, fp);
	fclose(fp);
	seg_path(fx, 2, p1, sizeof(p1));
	seg_path(fx, 3, p2, sizeof(p2));
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", p2, p1);
	assert_int_equal(system(cmd), 0);
	seg_path(fx, 4, p1, sizeof(p1));
	assert_int_equal(truncate(p1, 1000), 0);

	c = new_cache(fx, 1 << 30);
	f = new_file(fx, c);
	assert_int_equal(fetch_segs(f, fx, 0, NSEG - 1), 0);
	cache_file_free(f);
	cache_free(c);

	/* Repaired on disk: without the origin, every segment reads. */
	assert_int_equal(unlink(fx->obj), 0);
	c = new_cache(fx, 1 << 30);
	f = new_file(fx, c);
	assert_int_equal(fetch_segs(f, fx, 0, NSEG - 1), 0);
	cache_file_free(f);
	cache_free(c);

	/* A damaged file with no origin: EIO, and the file is deleted. */
	seg_path(fx, 0, p1, sizeof(p1));
	copy = malloc(SEG);
	assert_non_null(copy);
	memset(copy, 0, SEG);
	fp = fopen(p1, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(copy, 1, SEG, fp), SEG);	/* zeros */
	fclose(fp);
	free(copy);
	c = new_cache(fx, 1 << 30);
	f = new_file(fx, c);
	assert_int_equal(fetch_segs(f, fx, 0, 0), -EIO);
	assert_int_equal(access(p1, F_OK), -1);
	cache_file_free(f);
	cache_free(c);
}

static void test_cache_refuses_changed_origin_and_keeps_nothing(
	void **state)
{
	struct fx *fx = *state;
	struct cache *c = new_cache(fx, 1 << 30);
	struct cache_file *f = new_file(fx, c);
	uint8_t buf[SEG];
	char path[256];
	int tmp;

	/* Segment 2 changes at the origin (a re-publication in place). */
	fx->data[2 * SEG + 5] ^= 0x80;
	write_object(fx);
	fx->data[2 * SEG + 5] ^= 0x80;

	assert_int_equal(fetch_segs(f, fx, 0, 1), 0);
	assert_int_equal(cache_file_fetch(f, 2 * SEG, buf, SEG), -EBADMSG);
	assert_string_not_equal(cache_last_error(), "no error");
	assert_int_equal(fetch_segs(f, fx, 1, 3), -EBADMSG);
	seg_path(fx, 2, path, sizeof(path));
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(count_files(fx->cdir, &tmp), 2);
	assert_int_equal(tmp, 0);
	cache_file_free(f);
	cache_free(c);
}

static void test_cache_stays_within_its_bound(void **state)
{
	struct fx *fx = *state;
	struct cache *c = new_cache(fx, 3 * SEG);
	struct cache_file *f = new_file(fx, c);
	char path[256];

	assert_int_equal(fetch_segs(f, fx, 0, 1), 0);
	assert_int_equal(fetch_segs(f, fx, 0, 0), 0);	/* 0 used last */
	assert_int_equal(fetch_segs(f, fx, 2, 3), 0);
	assert_true(cache_disk_usage(c) <= 3 * SEG);
	assert_int_equal(count_files(fx->cdir, NULL), 3);
	/* Least recently used went first: 1, not 0. */
	seg_path(fx, 1, path, sizeof(path));
	assert_int_equal(access(path, F_OK), -1);
	seg_path(fx, 0, path, sizeof(path));
	assert_int_equal(access(path, F_OK), 0);
	cache_file_free(f);
	cache_free(c);

	/* A smaller bound at the next start evicts at once. */
	c = new_cache(fx, 2 * SEG);
	assert_true(cache_disk_usage(c) <= 2 * SEG);
	assert_int_equal(count_files(fx->cdir, NULL), 2);
	cache_free(c);
}

static void test_cache_removes_leftover_temporary_files(void **state)
{
	struct fx *fx = *state;
	struct cache *c = new_cache(fx, 1 << 30);
	char path[256];
	int tmp;
	FILE *fp;

	cache_free(c);
	snprintf(path, sizeof(path), "%s/ab", fx->cdir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/ab/.tmp.Xy12zz", fx->cdir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("half a segment", fp);
	fclose(fp);
	assert_int_equal(chmod(fx->cdir, 0755), 0);

	c = new_cache(fx, 1 << 30);
	assert_int_equal(count_files(fx->cdir, &tmp), 0);
	assert_int_equal(tmp, 0);
	assert_int_equal(cache_disk_usage(c), 0);
	cache_free(c);
	{
		struct stat st;

		assert_int_equal(stat(fx->cdir, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0700);
	}
}

static void test_cache_reads_on_when_disk_fails(void **state)
{
	struct fx *fx = *state;
	struct cache *c = new_cache(fx, 1 << 30);
	struct cache_file *f = new_file(fx, c);
	char path[256], hex[3];
	uint64_t i;
	FILE *fp;

	/* Every sub-directory a segment needs is a file: nothing can be
	 * stored, and reading goes on from the origin. */
	for (i = 0; i < NSEG; i++) {
		snprintf(hex, sizeof(hex), "%02x", fx->sums[i * 32]);
		snprintf(path, sizeof(path), "%s/%s", fx->cdir, hex);
		fp = fopen(path, "w");
		assert_non_null(fp);
		fclose(fp);
	}
	assert_int_equal(fetch_segs(f, fx, 0, NSEG - 1), 0);
	assert_int_equal(cache_disk_usage(c), 0);
	cache_file_free(f);
	cache_free(c);
}

static void test_cache_refuses_a_file_as_directory(void **state)
{
	struct fx *fx = *state;
	struct cache_options o = { .dir = fx->obj, .size = 1 << 20 };
	struct cache *c = NULL;

	assert_int_equal(cache_new(&o, fx->http, &c), -ENOTDIR);
	assert_null(c);
}

static void test_cache_verified_blob_by_digest(void **state)
{
	struct fx *fx = *state;
	struct cache *c = new_cache(fx, 1 << 30);
	uint8_t digest[32], wrong[32], *buf = NULL;
	size_t len = 0;
	char path[140];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/blob.sums", fx->dir);
	fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(fx->sums, 1, sizeof(fx->sums), fp),
			 sizeof(fx->sums));
	fclose(fp);
	assert_int_equal(cipher_sha256(fx->sums, sizeof(fx->sums), digest), 0);
	memcpy(wrong, digest, 32);
	wrong[0] ^= 1;
	snprintf(fx->url, sizeof(fx->url), "file://%s", path);

	assert_int_equal(cache_get_verified(c, fx->url, wrong, 1 << 20, &buf,
					    &len), -EBADMSG);
	assert_int_equal(cache_get_verified(c, fx->url, digest, 100, &buf,
					    &len), -EFBIG);
	assert_int_equal(cache_get_verified(c, fx->url, digest, 1 << 20, &buf,
					    &len), 0);
	assert_int_equal(len, sizeof(fx->sums));
	assert_memory_equal(buf, fx->sums, len);
	free(buf);

	assert_int_equal(unlink(path), 0);
	buf = NULL;
	assert_int_equal(cache_get_verified(c, fx->url, digest, 1 << 20, &buf,
					    &len), 0);
	assert_memory_equal(buf, fx->sums, sizeof(fx->sums));
	free(buf);
	cache_free(c);
}

struct reader_arg {
	struct fx *fx;
	struct cache_file *f;
	unsigned int seed;
	int bad;
};

static void *reader_main(void *p)
{
	struct reader_arg *a = p;
	uint64_t first, last;
	int k;

	for (k = 0; k < 40; k++) {
		first = (uint64_t)rand_r(&a->seed) % NSEG;
		last = first + (uint64_t)rand_r(&a->seed) % (NSEG - first);
		if (k % 3 == 0) {
			first = (uint64_t)k % NSEG;	/* sequential runs */
			last = first;
		}
		if (fetch_segs(a->f, a->fx, first, last) != 0)
			a->bad++;
	}
	return NULL;
}

static void test_cache_concurrent_readers_get_exact_bytes(void **state)
{
	struct fx *fx = *state;
	struct cache_options o = { .dir = fx->cdir, .size = 1 << 30,
				   .local = 1, .workers = 3,
				   .mem_size = 2 * SEG };
	struct reader_arg args[8];
	struct cache_file *f;
	pthread_t t[8];
	struct cache *c;
	int i;

	/* A memory bound smaller than the readers' needs: entries are busy,
	 * reads must still be exact. */
	assert_int_equal(cache_new(&o, fx->http, &c), 0);
	f = new_file(fx, c);
	for (i = 0; i < 8; i++) {
		args[i] = (struct reader_arg){ fx, f, (unsigned int)i + 1, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, reader_main,
						&args[i]), 0);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(args[i].bad, 0);
	}
	cache_file_free(f);
	cache_free(c);
}

static void test_cache_reads_ahead_for_sequential_readers(void **state)
{
	struct fx *fx = *state;
	struct cache_options o = { .dir = fx->cdir, .size = 1 << 30,
				   .local = 1, .workers = 2 };
	struct cache_file *f;
	struct cache *c;
	int i, n = 0;

	assert_int_equal(cache_new(&o, fx->http, &c), 0);
	f = new_file(fx, c);
	/* Reading segment 0 then 1 queues 2.. on the workers. */
	assert_int_equal(fetch_segs(f, fx, 0, 0), 0);
	assert_int_equal(fetch_segs(f, fx, 1, 1), 0);
	for (i = 0; i < 200 && n < NSEG; i++) {
		usleep(10000);
		n = count_files(fx->cdir, NULL);
	}
	assert_int_equal(n, NSEG);
	/* Closing with read-ahead queued or running is safe. */
	cache_file_free(f);
	cache_free(c);
}

static void test_cache_fetches_the_start_at_open(void **state)
{
	struct fx *fx = *state;
	struct cache_options o = { .dir = fx->cdir, .size = 1 << 30,
				   .local = 1, .workers = 1 };
	struct cache_file *f;
	struct cache *c;
	int i, n = 0;

	/* Without a single read, the first two segments arrive... */
	assert_int_equal(cache_new(&o, fx->http, &c), 0);
	f = new_file(fx, c);
	for (i = 0; i < 1000 && n < 2; i++) {	/* 10 s: valgrind is slow */
		usleep(10000);
		n = count_files(fx->cdir, NULL);
	}
	usleep(50000);
	assert_int_equal(count_files(fx->cdir, NULL), 2);
	/* ...and are then served with the origin gone; the third is not. */
	assert_int_equal(unlink(fx->obj), 0);
	assert_int_equal(fetch_segs(f, fx, 0, 1), 0);
	assert_int_equal(fetch_segs(f, fx, 2, 2), -EIO);
	cache_file_free(f);
	cache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cache_parses_sizes_with_suffixes),
		cmocka_unit_test_setup_teardown(
			test_cache_serves_exact_bytes_and_files_them_by_digest,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_cache_serves_whole_segments_only, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_cache_survives_restart_and_serves_without_origin,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_cache_refetches_damaged_or_swapped_files,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_cache_refuses_changed_origin_and_keeps_nothing,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_cache_stays_within_its_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_cache_removes_leftover_temporary_files,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_cache_reads_on_when_disk_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_cache_refuses_a_file_as_directory,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_cache_verified_blob_by_digest, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_cache_concurrent_readers_get_exact_bytes,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_cache_reads_ahead_for_sequential_readers,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_cache_fetches_the_start_at_open, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
