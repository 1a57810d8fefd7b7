/*
 * util.h - small helpers shared by the modules and tools: whole-file
 * reads and atomic writes, checked number parsing, path checks.
 */
#ifndef MARKETFS_UTIL_H
#define MARKETFS_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Read a whole file of at most max bytes.  The buffer is malloc'd and
 * NUL-terminated (not counted).  -EFBIG past max.
 */
int util_read_file(const char *path, size_t max, char **ret_buf,
		   size_t *ret_len);

/*
 * Write a file atomically: a temporary file in the same directory,
 * fsync, rename, fsync of the directory.  mode is the final mode.
 */
int util_write_file_atomic(const char *path, const void *data, size_t len,
			   mode_t mode);

/* mkdir -p with mode for every directory it creates. */
int util_mkdir_p(const char *path, mode_t mode);

/*
 * A per-user path of marketfs: "$<xdg_var>/marketfs[/leaf]" when the
 * variable holds an absolute path, else "$HOME/<fallback>/marketfs[/leaf]"
 * (fallback e.g. ".config").  Malloc'd; NULL when neither is set, or
 * out of memory.
 */
char *util_xdg_path(const char *xdg_var, const char *fallback,
		    const char *leaf);

/* Parse a whole decimal unsigned number; -EINVAL or -ERANGE. */
int util_parse_u64(const char *text, uint64_t *ret);

/*
 * Is path a safe relative path: non-empty, '/'-separated, no leading
 * '/', no empty, "." or ".." component, no control characters?
 */
int util_path_is_safe(const char *path);

/*
 * Read a passphrase: from file when path is not NULL (first line, no
 * newline), otherwise from the terminal without echo after printing
 * prompt on it.  -ENOTTY when there is no terminal.  The buffer is
 * malloc'd; wipe and free it with util_secret_free().
 */
int util_read_passphrase(const char *path, const char *prompt,
			 char **ret_pass, size_t *ret_len);
void util_secret_free(char *secret, size_t len);

#endif
