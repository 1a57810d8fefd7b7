/*
 * config.c - configuration files turned into -o arguments.
 *
 * A file is a list of lines: blank, a comment ('#' first, after any
 * blanks), "name" (a flag such as allow_other) or "name = value".  The
 * value runs to the end of the line, blanks around it dropped; there are
 * no inline comments, since paths may hold '#'.  Each entry becomes the
 * two arguments "-o" "name=value", with ',' and '\' in the value escaped
 * the way libfuse's option parser unescapes them, so a value can never
 * smuggle in a second option.
 *
 * The arguments of the files go first and the command line's after, and
 * the option parser keeps the last value of a key=, so the command line
 * wins.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "util.h"

#define CONFIG_NAME_MAX	64

int config_args_init(struct config_args *ca, const char *argv0)
{
	memset(ca, 0, sizeof(*ca));
	ca->argv = calloc(2, sizeof(*ca->argv));
	if (!ca->argv)
		return -ENOMEM;
	ca->argv[0] = strdup(argv0 ? argv0 : "marketfs");
	if (!ca->argv[0]) {
		free(ca->argv);
		ca->argv = NULL;
		return -ENOMEM;
	}
	ca->argc = 1;
	return 0;
}

void config_args_release(struct config_args *ca)
{
	int i;

	if (ca->argv) {
		for (i = 0; i < ca->argc; i++)
			free(ca->argv[i]);
		free(ca->argv);
	}
	memset(ca, 0, sizeof(*ca));
}

/* Append one argument; takes ownership of arg (freed on failure). */
static int push(struct config_args *ca, char *arg)
{
	char **argv;

	if (!arg)
		return -ENOMEM;
	argv = realloc(ca->argv, (ca->argc + 2) * sizeof(*argv));
	if (!argv) {
		free(arg);
		return -ENOMEM;
	}
	argv[ca->argc++] = arg;
	argv[ca->argc] = NULL;
	ca->argv = argv;
	return 0;
}

int config_args_append(struct config_args *ca, int argc, char *const argv[])
{
	int i, r;

	for (i = 1; i < argc; i++) {
		r = push(ca, strdup(argv[i]));
		if (r < 0)
			return r;
	}
	return 0;
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static int is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_';
}

/* "name" or "name=value", value escaped for libfuse's -o parser. */
static char *make_option(const char *name, size_t nlen, const char *val,
			 size_t vlen)
{
	char *opt, *d;
	size_t i;

	opt = malloc(nlen + 1 + 2 * vlen + 1);
	if (!opt)
		return NULL;
	memcpy(opt, name, nlen);
	d = opt + nlen;
	if (val) {
		*d++ = '=';
		for (i = 0; i < vlen; i++) {
			if (val[i] == ',' || val[i] == '\\')
				*d++ = '\\';
			*d++ = val[i];
		}
	}
	*d = '\0';
	return opt;
}

/* One line, without its newline; msg gets the reason on -EINVAL. */
static int parse_line(struct config_args *ca, const char *line, size_t len,
		      char *msg, size_t msglen)
{
	const char *name, *val = NULL, *end = line + len;
	size_t nlen, vlen = 0;
	int r;

	while (line < end && is_blank(*line))
		line++;
	while (end > line && (is_blank(end[-1]) || end[-1] == '\r'))
		end--;
	if (line == end || *line == '#')
		return 0;

	name = line;
	while (line < end && is_name_char(*line))
		line++;
	nlen = line - name;
	if (nlen == 0 || nlen > CONFIG_NAME_MAX) {
		snprintf(msg, msglen, nlen ? "option name too long" :
			 "expected 'name = value' or 'name'");
		return -EINVAL;
	}
	while (line < end && is_blank(*line))
		line++;
	if (line < end) {
		if (*line != '=') {
			snprintf(msg, msglen, "unexpected '%c' after '%.*s' "
				 "(expected 'name = value' or 'name')",
				 *line, (int)nlen, name);
			return -EINVAL;
		}
		line++;
		while (line < end && is_blank(*line))
			line++;
		val = line;
		vlen = end - line;
		if (vlen == 0) {
			snprintf(msg, msglen, "no value for '%.*s'",
				 (int)nlen, name);
			return -EINVAL;
		}
		for (; line < end; line++) {
			if ((unsigned char)*line < 0x20 || *line == 0x7f) {
				snprintf(msg, msglen, "control character in "
					 "the value of '%.*s'", (int)nlen,
					 name);
				return -EINVAL;
			}
		}
	}

	if (ca->entries >= CONFIG_ENTRIES_MAX) {
		snprintf(msg, msglen, "more than %d entries",
			 CONFIG_ENTRIES_MAX);
		return -EINVAL;
	}
	r = push(ca, strdup("-o"));
	if (r < 0)
		return r;
	r = push(ca, make_option(name, nlen, val, vlen));
	if (r < 0)
		return r;
	ca->entries++;
	return 0;
}

int config_parse(struct config_args *ca, const char *name, const char *text,
		 size_t len, char *msg, size_t msglen)
{
	const char *p = text, *end = text + len, *nl;
	char why[160];
	unsigned lineno = 0;
	int r;

	msg[0] = '\0';
	if (memchr(text, '\0', len)) {
		snprintf(msg, msglen, "%s: not a text file (NUL byte)", name);
		return -EINVAL;
	}
	while (p < end) {
		lineno++;
		nl = memchr(p, '\n', end - p);
		if (!nl)
			nl = end;
		why[0] = '\0';
		r = parse_line(ca, p, nl - p, why, sizeof(why));
		if (r == -EINVAL) {
			snprintf(msg, msglen, "%s:%u: %s", name, lineno, why);
			return r;
		}
		if (r < 0) {
			snprintf(msg, msglen, "%s: %s", name, strerror(-r));
			return r;
		}
		p = nl + 1;
	}
	return 0;
}

int config_read(struct config_args *ca, const char *path, char *msg,
		size_t msglen)
{
	struct stat st;
	char *text;
	size_t len = 0;
	ssize_t n;
	int fd, r;

	msg[0] = '\0';
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		r = -errno;
		snprintf(msg, msglen, "%s: %s", path, strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		snprintf(msg, msglen, "%s: %s", path, strerror(-r));
		goto out_close_fd;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		snprintf(msg, msglen, "%s: not a regular file", path);
		goto out_close_fd;
	}
	if (st.st_mode & S_IWOTH) {
		r = -EPERM;
		snprintf(msg, msglen, "%s: writable by anyone; refusing it "
			 "(chmod o-w)", path);
		goto out_close_fd;
	}
	if (st.st_size > (off_t)CONFIG_FILE_MAX) {
		r = -EFBIG;
		snprintf(msg, msglen, "%s: larger than %u bytes", path,
			 CONFIG_FILE_MAX);
		goto out_close_fd;
	}

	/* One byte more than allowed, to notice a file that grew. */
	text = malloc(CONFIG_FILE_MAX + 1);
	if (!text) {
		r = -ENOMEM;
		goto out_close_fd;
	}
	for (;;) {
		n = read(fd, text + len, CONFIG_FILE_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			snprintf(msg, msglen, "%s: %s", path, strerror(-r));
			goto out_free_text;
		}
		if (n == 0)
			break;
		len += n;
		if (len > CONFIG_FILE_MAX) {
			r = -EFBIG;
			snprintf(msg, msglen, "%s: larger than %u bytes",
				 path, CONFIG_FILE_MAX);
			goto out_free_text;
		}
	}
	r = config_parse(ca, path, text, len, msg, msglen);
out_free_text:
	free(text);
out_close_fd:
	close(fd);
	return r;
}

char *config_user_path(void)
{
	return util_xdg_path("XDG_CONFIG_HOME", ".config", "config");
}

static int wants_help_or_version(int argc, char *const argv[])
{
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help") ||
		    !strcmp(argv[i], "-V") || !strcmp(argv[i], "--version"))
			return 1;
	}
	return 0;
}

int config_load(int argc, char *const argv[], struct config_args *ret,
		char *msg, size_t msglen)
{
	char *user;
	int r;

	msg[0] = '\0';
	r = config_args_init(ret, argc > 0 ? argv[0] : NULL);
	if (r < 0)
		goto out_nomem;
	if (!wants_help_or_version(argc, argv)) {
		r = config_read(ret, CONFIG_SYSTEM_PATH, msg, msglen);
		if (r < 0)
			goto out_release;
		user = config_user_path();
		if (user) {
			r = config_read(ret, user, msg, msglen);
			free(user);
			if (r < 0)
				goto out_release;
		}
	}
	r = config_args_append(ret, argc, argv);
	if (r < 0)
		goto out_release;
	return 0;

out_release:
	config_args_release(ret);
out_nomem:
	if (!msg[0])
		snprintf(msg, msglen, "%s", strerror(-r));
	return r;
}
