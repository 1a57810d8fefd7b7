/*
 * warm.c - read files through the mount to fill the daemon's cache.
 *
 * Every byte goes through the mount like any other read, so every open
 * is decided and logged as usual; what stays behind is the ciphertext in
 * the daemon's disk cache (never plaintext: this program only discards
 * what it reads).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "warm.h"

#define WARM_BUF	(1u << 20)
#define WARM_MAX_FILES	1000000
#define FUSE_MAGIC	0x65735546	/* statfs f_type of a FUSE mount */

struct warm_file {
	char *path;
	uint64_t size;
};

static struct {
	pthread_mutex_t lock;
	struct warm_file *files;
	size_t nfiles;
	size_t next;		/* next file to take */
	uint64_t total;		/* bytes to read */
	uint64_t done;		/* bytes read */
	size_t failed;
	int bar;		/* stderr is a terminal */
	time_t last_draw;
} w = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int collect(const char *path, const struct stat *st, int type,
		   struct FTW *ftw)
{
	struct warm_file *nf;

	(void)ftw;
	if (type != FTW_F || !S_ISREG(st->st_mode))
		return 0;
	if (w.nfiles >= WARM_MAX_FILES)
		return 1;
	nf = realloc(w.files, (w.nfiles + 1) * sizeof(*nf));
	if (!nf)
		return -1;
	w.files = nf;
	nf[w.nfiles].path = strdup(path);
	if (!nf[w.nfiles].path)
		return -1;
	nf[w.nfiles].size = (uint64_t)st->st_size;
	w.total += (uint64_t)st->st_size;
	w.nfiles++;
	return 0;
}

/* Draw the bar at most a few times a second (under w.lock). */
static void draw(int force)
{
	time_t now = time(NULL);
	int pct, i;
	char bar[41];

	if (!w.bar || (!force && now == w.last_draw))
		return;
	w.last_draw = now;
	pct = w.total ? (int)(w.done * 100 / w.total) : 100;
	for (i = 0; i < 40; i++)
		bar[i] = i < pct * 40 / 100 ? '#' : '.';
	bar[40] = '\0';
	fprintf(stderr, "\rwarming [%s] %3d%% %llu/%llu MiB, %zu files",
		bar, pct, (unsigned long long)(w.done >> 20),
		(unsigned long long)(w.total >> 20), w.nfiles);
	if (force)
		fputc('\n', stderr);
}

static void read_one(const struct warm_file *f, char *buf)
{
	ssize_t n;
	int fd, err = 0;

	fd = open(f->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = errno;
	} else {
		while ((n = read(fd, buf, WARM_BUF)) > 0) {
			pthread_mutex_lock(&w.lock);
			w.done += (uint64_t)n;
			draw(0);
			pthread_mutex_unlock(&w.lock);
		}
		if (n < 0)
			err = errno;
		close(fd);
	}
	if (err) {
		pthread_mutex_lock(&w.lock);
		w.failed++;
		if (w.bar)
			fputc('\n', stderr);
		fprintf(stderr, "marketfs: cannot read '%s': %s\n", f->path,
			strerror(err));
		pthread_mutex_unlock(&w.lock);
	}
}

static void *worker(void *arg)
{
	char *buf = malloc(WARM_BUF);
	size_t i;

	(void)arg;
	if (!buf)
		return NULL;
	for (;;) {
		pthread_mutex_lock(&w.lock);
		i = w.next < w.nfiles ? w.next++ : w.nfiles;
		pthread_mutex_unlock(&w.lock);
		if (i == w.nfiles)
			break;
		read_one(&w.files[i], buf);
	}
	free(buf);
	return NULL;
}

int warm_paths(char *const *paths, int npaths, int jobs)
{
	pthread_t th[16];
	int i, started = 0;
	size_t k;

	for (i = 0; i < npaths; i++) {
		struct statfs sf;

		if (access(paths[i], F_OK) < 0) {
			fprintf(stderr, "marketfs: '%s': %s\n", paths[i],
				strerror(errno));
			return 2;
		}
		/* Reading anything else would fill no cache of ours. */
		if (statfs(paths[i], &sf) < 0 || sf.f_type != FUSE_MAGIC) {
			fprintf(stderr, "marketfs: '%s' is not inside a "
				"marketfs mount\n", paths[i]);
			return 2;
		}
		if (nftw(paths[i], collect, 16, FTW_PHYS) < 0) {
			fprintf(stderr, "marketfs: cannot list '%s'\n",
				paths[i]);
			return 1;
		}
	}

	w.bar = isatty(STDERR_FILENO);
	if (jobs < 1)
		jobs = 1;
	if (jobs > 16)
		jobs = 16;
	for (i = 0; i < jobs; i++)
		if (pthread_create(&th[started], NULL, worker, NULL) == 0)
			started++;
	if (started == 0)
		worker(NULL);
	for (i = 0; i < started; i++)
		pthread_join(th[i], NULL);

	pthread_mutex_lock(&w.lock);
	draw(1);
	pthread_mutex_unlock(&w.lock);
	printf("read %zu of %zu files, %llu bytes\n", w.nfiles - w.failed,
	       w.nfiles, (unsigned long long)w.done);
	for (k = 0; k < w.nfiles; k++)
		free(w.files[k].path);
	free(w.files);
	return w.failed ? 1 : 0;
}
