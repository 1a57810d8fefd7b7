/*
 * util.c - small helpers shared by the modules and the tools: bounded
 * whole-file reads, atomic writes, mkdir -p, checked number parsing,
 * relative path checks and passphrase input.
 *
 * Passphrases are read into fixed buffers that are wiped, never into
 * buffers that realloc() could leave copies of.  The terminal prompt
 * turns echo off and puts it back on every path, including a signal
 * (SIGINT, SIGTERM, ...) arriving while the user types: the handler only
 * notes the signal, echo is restored, then the signal is raised again.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "cipher.h"
#include "util.h"

#define PASS_MAX	4096	/* bytes of passphrase accepted */
#define READ_STEP	65536	/* growth of a whole-file read buffer */

int util_read_file(const char *path, size_t max, char **ret_buf,
		   size_t *ret_len)
{
	struct stat st;
	char *buf = NULL, *nbuf;
	size_t cap, len = 0;
	int fd, ret;

	*ret_buf = NULL;
	*ret_len = 0;
	if (max >= SIZE_MAX - 1)
		return -EINVAL;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;

	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out_close_fd;
	}
	if (S_ISDIR(st.st_mode)) {
		ret = -EISDIR;
		goto out_close_fd;
	}
	if (S_ISREG(st.st_mode) && (uintmax_t)st.st_size > max) {
		ret = -EFBIG;
		goto out_close_fd;
	}

	/* Size from fstat is a hint only; the file may grow or be a pipe. */
	cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : READ_STEP;
	if (cap > max + 1)
		cap = max + 1;
	buf = malloc(cap + 1);
	if (!buf) {
		ret = -ENOMEM;
		goto out_close_fd;
	}

	for (;;) {
		ssize_t n;

		if (len == cap) {
			size_t ncap;

			if (cap > max) {
				ret = -EFBIG;
				goto out_free_buf;
			}
			ncap = cap + READ_STEP;
			if (ncap > max + 1)
				ncap = max + 1;
			nbuf = realloc(buf, ncap + 1);
			if (!nbuf) {
				ret = -ENOMEM;
				goto out_free_buf;
			}
			buf = nbuf;
			cap = ncap;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			goto out_free_buf;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > max) {
		ret = -EFBIG;
		goto out_free_buf;
	}
	buf[len] = '\0';
	close(fd);
	*ret_buf = buf;
	*ret_len = len;
	return 0;

out_free_buf:
	free(buf);
out_close_fd:
	close(fd);
	return ret;
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* fsync the directory that holds path. */
static int fsync_parent(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int fd, ret = 0;

	if (!slash)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	if (!dir)
		return -ENOMEM;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return -errno;

	if (fsync(fd) < 0 && errno != EINVAL)
		ret = -errno;
	close(fd);
	return ret;
}

int util_write_file_atomic(const char *path, const void *data, size_t len,
			   mode_t mode)
{
	static const char suffix[] = ".tmp.XXXXXX";
	size_t plen = strlen(path);
	char *tmp;
	int fd, ret;

	if (plen == 0)
		return -EINVAL;

	tmp = malloc(plen + sizeof(suffix));
	if (!tmp)
		return -ENOMEM;
	memcpy(tmp, path, plen);
	memcpy(tmp + plen, suffix, sizeof(suffix));

	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		goto out_free_tmp;
	}
	if (fchmod(fd, mode) < 0) {
		ret = -errno;
		goto out_unlink_tmp;
	}
	ret = write_all(fd, data, len);
	if (ret < 0)
		goto out_unlink_tmp;

	if (fsync(fd) < 0) {
		ret = -errno;
		goto out_unlink_tmp;
	}
	if (close(fd) < 0) {
		fd = -1;
		ret = -errno;
		goto out_unlink_tmp;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		ret = -errno;
		goto out_unlink_tmp;
	}
	free(tmp);
	return fsync_parent(path);

out_unlink_tmp:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
out_free_tmp:
	free(tmp);
	return ret;
}

int util_mkdir_p(const char *path, mode_t mode)
{
	struct stat st;
	char *copy, *p;
	int ret = 0;

	if (!path || !*path)
		return -EINVAL;

	copy = strdup(path);
	if (!copy)
		return -ENOMEM;

	/* Create each prefix that ends just before a '/', then the whole. */
	p = copy;
	for (;;) {
		char *slash;
		char saved;

		while (*p == '/')
			p++;
		slash = strchr(p, '/');
		if (!slash)
			slash = p + strlen(p);
		saved = *slash;
		*slash = '\0';
		if (*copy && mkdir(copy, mode) < 0) {
			if (errno != EEXIST) {
				ret = -errno;
				break;
			}
			if (stat(copy, &st) < 0) {
				ret = -errno;
				break;
			}
			if (!S_ISDIR(st.st_mode)) {
				ret = -ENOTDIR;
				break;
			}
		}
		*slash = saved;
		if (!saved)
			break;
		p = slash + 1;
		while (*p == '/')
			p++;
		if (!*p)
			break;
	}
	free(copy);
	return ret;
}

int util_parse_u64(const char *text, uint64_t *ret)
{
	uint64_t v = 0;
	const char *p;

	*ret = 0;
	if (!text || !*text)
		return -EINVAL;

	for (p = text; *p; p++) {
		unsigned int d;

		if (*p < '0' || *p > '9')
			return -EINVAL;
		d = (unsigned int)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*ret = v;
	return 0;
}

int util_path_is_safe(const char *path)
{
	const char *p, *comp;

	if (!path || !*path || *path == '/')
		return 0;

	comp = path;
	for (p = path;; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '/' || c == '\0') {
			size_t n = (size_t)(p - comp);

			if (n == 0)
				return 0;
			if (n == 1 && comp[0] == '.')
				return 0;
			if (n == 2 && comp[0] == '.' && comp[1] == '.')
				return 0;
			if (c == '\0')
				return 1;
			comp = p + 1;
		} else if (c < 0x20 || c == 0x7f) {
			return 0;
		}
	}
}

/* Hand back the first len bytes of buf as a fresh, exactly sized copy. */
static int pass_copy(const char *buf, size_t len, char **ret_pass,
		     size_t *ret_len)
{
	char *pass = malloc(len + 1);

	if (!pass)
		return -ENOMEM;
	memcpy(pass, buf, len);
	pass[len] = '\0';
	*ret_pass = pass;
	*ret_len = len;
	return 0;
}

static int read_passphrase_file(const char *path, char **ret_pass,
				size_t *ret_len)
{
	char buf[PASS_MAX + 1];
	size_t len = 0, line;
	char *nl;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;

	/* Only the first line matters: stop at a newline or the cap. */
	while (len < sizeof(buf) && !memchr(buf, '\n', len)) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			goto out_wipe_buf;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}

	nl = memchr(buf, '\n', len);
	if (nl) {
		line = (size_t)(nl - buf);
	} else if (len > PASS_MAX) {
		ret = -EFBIG;
		goto out_wipe_buf;
	} else {
		line = len;
	}
	/* A file written on Windows ends its line with CR LF. */
	if (line > 0 && buf[line - 1] == '\r')
		line--;
	if (line == 0) {
		ret = -EINVAL;
		goto out_wipe_buf;
	}
	if (memchr(buf, '\0', line)) {
		ret = -EINVAL;
		goto out_wipe_buf;
	}
	ret = pass_copy(buf, line, ret_pass, ret_len);

out_wipe_buf:
	cipher_wipe(buf, sizeof(buf));
	close(fd);
	return ret;
}

static volatile sig_atomic_t tty_signal;

static void tty_note_signal(int sig)
{
	tty_signal = sig;
}

static const int tty_signals[] = { SIGINT, SIGHUP, SIGQUIT, SIGTERM };
#define N_TTY_SIGNALS	(sizeof(tty_signals) / sizeof(tty_signals[0]))

static int read_passphrase_tty(const char *prompt, char **ret_pass,
			       size_t *ret_len)
{
	struct sigaction sa, old[N_TTY_SIGNALS];
	struct termios saved, quiet;
	char buf[PASS_MAX + 1];
	size_t len = 0, i;
	int fd, ret = 0, sig;

	fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -ENOTTY;

	if (tcgetattr(fd, &saved) < 0) {
		close(fd);
		return -ENOTTY;
	}

	/* No SA_RESTART: a signal must interrupt the read below. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = tty_note_signal;
	sigemptyset(&sa.sa_mask);
	tty_signal = 0;
	for (i = 0; i < N_TTY_SIGNALS; i++)
		sigaction(tty_signals[i], &sa, &old[i]);

	quiet = saved;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	if (tcsetattr(fd, TCSAFLUSH, &quiet) < 0) {
		ret = -errno;
		goto out_restore_signals;
	}

	if (prompt)
		(void)write_all(fd, prompt, strlen(prompt));

	for (;;) {
		char c;
		ssize_t n;

		if (tty_signal) {
			ret = -EINTR;
			break;
		}
		n = read(fd, &c, 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		if (n == 0 || c == '\n')
			break;
		if (len == PASS_MAX) {
			ret = -EFBIG;
			continue;	/* swallow the rest of the line */
		}
		if (c == '\r')
			continue;
		buf[len++] = c;
	}

	(void)tcsetattr(fd, TCSAFLUSH, &saved);
	if (ret == 0)
		ret = pass_copy(buf, len, ret_pass, ret_len);
	cipher_wipe(buf, sizeof(buf));

out_restore_signals:
	for (i = 0; i < N_TTY_SIGNALS; i++)
		sigaction(tty_signals[i], &old[i], NULL);
	close(fd);
	sig = tty_signal;
	if (sig)
		raise(sig);
	return ret;
}

int util_read_passphrase(const char *path, const char *prompt,
			 char **ret_pass, size_t *ret_len)
{
	*ret_pass = NULL;
	*ret_len = 0;
	if (path)
		return read_passphrase_file(path, ret_pass, ret_len);
	return read_passphrase_tty(prompt, ret_pass, ret_len);
}

void util_secret_free(char *secret, size_t len)
{
	if (!secret)
		return;
	cipher_wipe(secret, len + 1);
	free(secret);
}

char *util_xdg_path(const char *xdg_var, const char *fallback,
		    const char *leaf)
{
	const char *base = getenv(xdg_var), *home = getenv("HOME");
	const char *sep = leaf ? "/" : "";
	char *path = NULL;
	int n;

	if (!leaf)
		leaf = "";
	if (base && base[0] == '/')
		n = asprintf(&path, "%s/marketfs%s%s", base, sep, leaf);
	else if (home && home[0] == '/')
		n = asprintf(&path, "%s/%s/marketfs%s%s", home, fallback, sep,
			     leaf);
	else
		return NULL;
	return n < 0 ? NULL : path;
}
