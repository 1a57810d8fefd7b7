/*
 * standalone_main.c - replay inputs through a fuzz target without
 * libFuzzer.
 *
 * Usage: fuzz_TARGET DIR_OR_FILE...
 * Every regular file (names starting with '.' excepted) of each
 * directory, or each file named, is fed once to
 * LLVMFuzzerTestOneInput().  A missing directory is skipped (the
 * regressions folder may not exist yet); the run fails when no input at
 * all was found, so a broken corpus path cannot pass unnoticed.
 * A broken invariant or a sanitizer report aborts the process.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_common.h"

#define INPUT_MAX	(16u << 20)

static int run_file(const char *path)
{
	struct stat st;
	uint8_t *buf;
	size_t done = 0;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > INPUT_MAX) {
		close(fd);
		return 0;
	}
	/* One spare byte so that an empty file is not malloc(0). */
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return -1;
	}
	while (done < (size_t)st.st_size) {
		n = read(fd, buf + done, (size_t)st.st_size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	close(fd);

	/* Copy into an exact-size buffer so ASan sees overreads. */
	{
		uint8_t *exact = malloc(done ? done : 1);

		if (!exact) {
			free(buf);
			return -1;
		}
		memcpy(exact, buf, done);
		free(buf);
		LLVMFuzzerTestOneInput(exact, done);
		free(exact);
	}
	return 1;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_dir(const char *dir, unsigned long *count)
{
	struct dirent *de;
	char **names = NULL, **grown, path[4096];
	size_t n = 0, i;
	DIR *d;
	int r = 0;

	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -1;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		grown = realloc(names, (n + 1) * sizeof(*names));
		if (!grown) {
			r = -1;
			break;
		}
		names = grown;
		names[n] = strdup(de->d_name);
		if (!names[n]) {
			r = -1;
			break;
		}
		n++;
	}
	closedir(d);

	/* A fixed order, so that a failure is reproducible. */
	if (n)
		qsort(names, n, sizeof(*names), name_cmp);
	for (i = 0; i < n && r == 0; i++) {
		int k;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		k = run_file(path);
		if (k < 0)
			r = -1;
		else
			*count += (unsigned long)k;
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return r;
}

int main(int argc, char **argv)
{
	unsigned long count = 0;
	struct stat st;
	int i;

	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR_OR_FILE...\n", argv[0]);
		return 2;
	}
	for (i = 1; i < argc; i++) {
		int r;

		if (stat(argv[i], &st) == 0 && S_ISREG(st.st_mode)) {
			r = run_file(argv[i]);
			if (r > 0)
				count++;
		} else {
			r = run_dir(argv[i], &count);
		}
		if (r < 0) {
			fprintf(stderr, "%s: cannot read inputs\n", argv[i]);
			return 1;
		}
	}
	printf("%s: %lu inputs replayed\n", argv[0], count);
	return count ? 0 : 1;
}
