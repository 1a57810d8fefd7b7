/*
 * fuzz_alog_open.c - reopening an access log whose content is hostile.
 *
 * Input: the whole content of an existing log file.  The target writes
 * it to a private file (under /dev/shm when it exists, else TMPDIR),
 * opens it with alog_open(), appends one record, closes, and opens it
 * again.  Invariants: what was in the file is never rewritten (only
 * appended to); after a successful open and write, the last line is a
 * complete record, so a second open appends nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alog.h"

#include "fuzz_common.h"

static char path[PATH_MAX];

static void make_path(void)
{
	const char *dir = getenv("TMPDIR");
	struct stat st;

	if (path[0])
		return;
	if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode))
		dir = "/dev/shm";
	if (!dir)
		dir = "/tmp";
	snprintf(path, sizeof(path), "%s/marketfs-fuzz-alog.%ld", dir,
		 (long)getpid());
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Does the file still start with data[0..size)? */
static int keeps_prefix(const uint8_t *data, size_t size)
{
	uint8_t buf[4096];
	size_t off = 0;
	int fd, same = 1;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	while (off < size && same) {
		size_t want = size - off < sizeof(buf) ? size - off
						       : sizeof(buf);
		ssize_t n = read(fd, buf, want);

		if (n <= 0) {
			same = 0;
			break;
		}
		same = !memcmp(buf, data + off, (size_t)n);
		off += (size_t)n;
	}
	close(fd);
	return same;
}

static off_t file_size(void)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_size : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct alog *log = NULL;
	struct alog_event ev;
	off_t before;
	int fd, r, w;

	make_path();
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return 0;
	r = write_all(fd, data, size);
	close(fd);
	if (r < 0)
		goto out;

	r = alog_open(path, &log);
	FUZZ_CHECK(keeps_prefix(data, size));
	if (r < 0) {
		FUZZ_CHECK(r != -EINVAL);	/* it is a regular file */
		goto out;
	}
	alog_event_init(&ev);
	ev.event = "open";
	ev.decision = "allow";
	ev.dataset = "ds1";
	ev.bytes = 1;
	w = alog_write(log, &ev);
	alog_close(log);
	log = NULL;
	FUZZ_CHECK(keeps_prefix(data, size));
	if (w < 0)
		goto out;

	before = file_size();
	r = alog_open(path, &log);
	FUZZ_CHECK(r == 0);
	FUZZ_CHECK(file_size() == before);
	alog_close(log);
out:
	unlink(path);
	return 0;
}
