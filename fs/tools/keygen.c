/*
 * keygen.c - marketfs-keygen: make a Crypt4GH (X25519) key pair in the
 * reference tool's file format.
 *
 * The secret key is written 0600, protected with scrypt and
 * ChaCha20-Poly1305 unless --nocrypt is given; the passphrase comes from
 * --passphrase-file or is asked twice on the terminal.  Existing files
 * are left alone unless --force.  Exit status: 0 done, 1 something
 * failed (one line says what), 2 a usage mistake.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "c4gh.h"
#include "cipher.h"
#include "util.h"

#define PROG	"marketfs-keygen"

enum {
	EXIT_USAGE = 2,
};

enum {
	OPT_PK = 256,
	OPT_SK,
	OPT_PASSFILE,
	OPT_NOCRYPT,
};

struct options {
	const char *pk_path;
	const char *sk_path;
	const char *pass_file;
	const char *comment;
	int nocrypt;
	int force;
};

static const char short_usage[] =
	"Usage: " PROG " --pk FILE --sk FILE [--passphrase-file FILE | "
	"--nocrypt]\n"
	"                       [-C COMMENT] [-f]\n";

static void print_help(void)
{
	printf("%s", short_usage);
	printf("\n"
"Make a Crypt4GH key pair (X25519) in the format of the reference\n"
"crypt4gh tools: a public key file and a secret key file.\n"
"\n"
"  --pk FILE               write the public key to FILE\n"
"  --sk FILE               write the secret key to FILE (mode 0600)\n"
"  --passphrase-file FILE  protect the secret key with the first line of\n"
"                          FILE (scrypt + ChaCha20-Poly1305)\n"
"  --nocrypt               store the secret key without a passphrase\n"
"  -C, --comment COMMENT   a comment stored in the secret key file\n"
"  -f, --force             replace FILEs that already exist\n"
"  -h, --help              show this help and exit\n"
"  -V, --version           show the version and exit\n"
"\n"
"Without --passphrase-file or --nocrypt the passphrase is asked twice on\n"
"the terminal.\n"
"\n"
"Exit status: 0 the key pair was written; 1 something failed; 2 wrong\n"
"usage.\n");
}

/* One line naming the mistake, then the short usage; exit 2. */
static int usage_error(const char *msg)
{
	fprintf(stderr, PROG ": %s\n%sTry '" PROG " --help' for more.\n",
		msg, short_usage);
	return EXIT_USAGE;
}

static int parse_options(int argc, char **argv, struct options *opt)
{
	static const struct option longopts[] = {
		{ "pk", required_argument, NULL, OPT_PK },
		{ "sk", required_argument, NULL, OPT_SK },
		{ "passphrase-file", required_argument, NULL, OPT_PASSFILE },
		{ "nocrypt", no_argument, NULL, OPT_NOCRYPT },
		{ "comment", required_argument, NULL, 'C' },
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	char msg[256];
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":C:fhV", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_PK:
			opt->pk_path = optarg;
			break;
		case OPT_SK:
			opt->sk_path = optarg;
			break;
		case OPT_PASSFILE:
			opt->pass_file = optarg;
			break;
		case OPT_NOCRYPT:
			opt->nocrypt = 1;
			break;
		case 'C':
			opt->comment = optarg;
			break;
		case 'f':
			opt->force = 1;
			break;
		case 'h':
			print_help();
			return -1;
		case 'V':
			printf(PROG " " MARKETFS_VERSION "\n");
			return -1;
		case ':':
			if (optopt > 0 && optopt < 256)
				snprintf(msg, sizeof(msg),
					 "option '-%c' needs a value", optopt);
			else
				snprintf(msg, sizeof(msg),
					 "option '%.200s' needs a value",
					 argv[optind - 1]);
			return usage_error(msg);
		default:
			if (optopt > 0 && optopt < 256)
				snprintf(msg, sizeof(msg),
					 "unknown option '-%c'", optopt);
			else
				snprintf(msg, sizeof(msg),
					 "unknown option '%.200s'",
					 argv[optind - 1]);
			return usage_error(msg);
		}
	}
	if (optind < argc) {
		snprintf(msg, sizeof(msg), "unexpected argument '%.200s'",
			 argv[optind]);
		return usage_error(msg);
	}
	if (!opt->pk_path || !opt->sk_path)
		return usage_error("both --pk FILE and --sk FILE are needed");
	if (!*opt->pk_path || !*opt->sk_path)
		return usage_error("empty file name");
	if (strcmp(opt->pk_path, opt->sk_path) == 0)
		return usage_error("--pk and --sk name the same file");
	if (opt->nocrypt && opt->pass_file)
		return usage_error("--passphrase-file and --nocrypt exclude "
				   "each other");
	if (opt->comment && strlen(opt->comment) > 1024)
		return usage_error("comment longer than 1024 bytes");
	return 0;
}

/* Without --force, refuse before asking anything. */
static int check_absent(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == 0) {
		fprintf(stderr, PROG ": %s: file exists (use --force to "
			"replace it)\n", path);
		return -EEXIST;
	}
	if (errno != ENOENT) {
		fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
		return -errno;
	}
	return 0;
}

static int remove_old(const char *path)
{
	if (unlink(path) < 0 && errno != ENOENT) {
		fprintf(stderr, PROG ": cannot replace %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Get the passphrase: 0 with *ret_pass set, or an exit status (the
 * message printed).
 */
static int get_passphrase(const struct options *opt, char **ret_pass,
			  size_t *ret_len)
{
	char *again;
	size_t again_len;
	int r, same;

	if (opt->pass_file) {
		r = util_read_passphrase(opt->pass_file, NULL, ret_pass,
					 ret_len);
		if (r == -EINVAL) {
			fprintf(stderr, PROG ": %s: the first line is empty "
				"(no passphrase)\n", opt->pass_file);
			return EXIT_FAILURE;
		}
		if (r < 0) {
			fprintf(stderr, PROG ": cannot read passphrase file "
				"%s: %s\n", opt->pass_file,
				c4gh_strerror(r));
			return EXIT_FAILURE;
		}
		return 0;
	}

	r = util_read_passphrase(NULL, "Passphrase for the new key: ",
				 ret_pass, ret_len);
	if (r == -ENOTTY)
		return usage_error("no terminal to ask for a passphrase; "
				   "use --passphrase-file FILE or --nocrypt");
	if (r < 0) {
		fprintf(stderr, PROG ": cannot read the passphrase: %s\n",
			c4gh_strerror(r));
		return EXIT_FAILURE;
	}
	if (*ret_len == 0) {
		fprintf(stderr, PROG ": empty passphrase; use --nocrypt for a "
			"key without one\n");
		goto out_free_pass;
	}

	r = util_read_passphrase(NULL, "Repeat: ", &again, &again_len);
	if (r < 0) {
		fprintf(stderr, PROG ": cannot read the passphrase: %s\n",
			c4gh_strerror(r));
		goto out_free_pass;
	}
	same = again_len == *ret_len &&
	       cipher_memeq(again, *ret_pass, again_len);
	util_secret_free(again, again_len);
	if (!same) {
		fprintf(stderr, PROG ": the passphrases do not match\n");
		goto out_free_pass;
	}
	return 0;

out_free_pass:
	util_secret_free(*ret_pass, *ret_len);
	*ret_pass = NULL;
	*ret_len = 0;
	return EXIT_FAILURE;
}

/* Make the directory a key file goes in (0700), if it is missing. */
static int make_parent(const char *path)
{
	char *dir = strdup(path), *slash;
	int r = 0;

	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		r = util_mkdir_p(dir, 0700);
		if (r < 0)
			fprintf(stderr, PROG ": cannot make directory %s: %s\n",
				dir, strerror(-r));
	}
	free(dir);
	return r;
}

int main(int argc, char **argv)
{
	struct options opt = { 0 };
	uint8_t sk[32], pk[32];
	char *pass = NULL;
	size_t passlen = 0;
	int r, status;

	r = parse_options(argc, argv, &opt);
	if (r < 0)
		return EXIT_SUCCESS;	/* --help or --version */
	if (r > 0)
		return r;

	if (!opt.force && (check_absent(opt.sk_path) < 0 ||
			   check_absent(opt.pk_path) < 0))
		return EXIT_FAILURE;

	if (!opt.nocrypt) {
		status = get_passphrase(&opt, &pass, &passlen);
		if (status != 0)
			return status;
	}

	status = EXIT_FAILURE;
	r = cipher_x25519_keypair(sk, pk);
	if (r < 0) {
		fprintf(stderr, PROG ": cannot make a key pair: %s\n",
			c4gh_strerror(r));
		goto out_wipe;
	}

	if (opt.force && (remove_old(opt.sk_path) < 0 ||
			  remove_old(opt.pk_path) < 0))
		goto out_wipe;

	/* The usual place, ~/.config/marketfs, may not exist yet. */
	if (make_parent(opt.sk_path) < 0 || make_parent(opt.pk_path) < 0)
		goto out_wipe;

	r = c4gh_seckey_write_file(opt.sk_path, sk, pass, passlen,
				   opt.comment);
	if (r < 0) {
		fprintf(stderr, PROG ": cannot write secret key %s: %s\n",
			opt.sk_path, c4gh_strerror(r));
		goto out_wipe;
	}
	r = c4gh_pubkey_write_file(opt.pk_path, pk);
	if (r < 0) {
		fprintf(stderr, PROG ": cannot write public key %s: %s\n",
			opt.pk_path, c4gh_strerror(r));
		/* No half pair: the secret key alone is of no use. */
		(void)unlink(opt.sk_path);
		goto out_wipe;
	}
	printf("secret key: %s (%s)\npublic key: %s (give this one to "
	       "the market)\n", opt.sk_path, pass ? "passphrase-protected" :
	       "not protected", opt.pk_path);
	status = EXIT_SUCCESS;

out_wipe:
	cipher_wipe(sk, sizeof(sk));
	util_secret_free(pass, passlen);
	return status;
}
