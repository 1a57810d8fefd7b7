/*
 * config.h - the daemon's configuration files.
 *
 * /etc/marketfs/marketfs.conf, then $XDG_CONFIG_HOME/marketfs/config
 * (~/.config/marketfs/config), hold what a user would otherwise repeat
 * on every mount: "name = value" lines (or a bare "name" for a flag)
 * with the names of the -o options, '#' starting a comment line.  Each
 * entry becomes a "-o name=value" argument placed before those of the
 * command line, so the user file overrides the system one and the
 * command line overrides both (the last key=, access_log=... wins; FUSE
 * flags only add up).
 */
#ifndef MARKETFS_CONFIG_H
#define MARKETFS_CONFIG_H

#include <stddef.h>

#define CONFIG_SYSTEM_PATH	"/etc/marketfs/marketfs.conf"
#define CONFIG_FILE_MAX		(64u << 10)	/* bytes in one file */
#define CONFIG_ENTRIES_MAX	256		/* entries over all files */

/* An argv built from the files and the command line. */
struct config_args {
	int argc;
	char **argv;			/* NULL-terminated; all malloc'd */
	int entries;			/* entries taken from files */
};

/* Start with argv0 alone.  Release with config_args_release(). */
int config_args_init(struct config_args *ca, const char *argv0);
void config_args_release(struct config_args *ca);

/*
 * Parse the text of one file (name for messages) and append its
 * entries.  -EINVAL with "FILE:LINE: reason" in msg for a mistake.
 */
int config_parse(struct config_args *ca, const char *name, const char *text,
		 size_t len, char *msg, size_t msglen);

/*
 * Read and parse the file at path; a missing file is no error.  A file
 * that others may write is refused (-EPERM), as is one too large.
 */
int config_read(struct config_args *ca, const char *path, char *msg,
		size_t msglen);

/* Append argv[1..argc-1] as they are. */
int config_args_append(struct config_args *ca, int argc, char *const argv[]);

/*
 * The user's file: $XDG_CONFIG_HOME/marketfs/config, else
 * $HOME/.config/marketfs/config; malloc'd, NULL when neither is set
 * (or out of memory).
 */
char *config_user_path(void);

/*
 * All of the above for main(): the system file, the user's file, then
 * the command line.  With -h, --help, -V or --version on the command line
 * no file is read, so help is shown even when a file is wrong.
 */
int config_load(int argc, char *const argv[], struct config_args *ret,
		char *msg, size_t msglen);

#endif
