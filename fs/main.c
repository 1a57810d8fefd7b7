/*
 * main.c - the marketfs daemon: options, key, access log, market, mount.
 *
 * Everything that can fail for a user's reason (options, key,
 * passphrase, market, trust in the market key, access log) is done
 * before mounting, in the foreground, so that a failure is one clear
 * line on stderr and a non-zero exit, and a zero exit means the mount is
 * live.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "alog.h"
#include "c4gh.h"
#include "cipher.h"
#include "fsops.h"
#include "http.h"
#include "log.h"
#include "tree.h"
#include "util.h"

#define KEY_FILE_MAX	(64u << 10)

static const char usage_short[] =
	"usage: marketfs [-f] [-d] [-s] [-o OPTION[,OPTION...]] SOURCE "
	"MOUNTPOINT\n";

static void usage_full(void)
{
	printf("%s", usage_short);
	printf("\n"
"Mount a data market (or a folder of Crypt4GH files) read-only at\n"
"MOUNTPOINT.  SOURCE is a market directory, a file:// or https:// URL.\n"
"\n"
"  -f                     stay in the foreground\n"
"  -d                     debug output (implies -f)\n"
"  -s                     single-threaded\n"
"  -h, --help             this help\n"
"  -V, --version          the version\n"
"\n"
"marketfs options (-o):\n"
"  key=FILE               your Crypt4GH secret key\n"
"                         (default $XDG_CONFIG_HOME/marketfs/key.sec)\n"
"  passphrase_file=FILE   the key's passphrase (else asked on a terminal)\n"
"  access_log=FILE        the access log (default\n"
"                         $XDG_STATE_HOME/marketfs/access.log, or\n"
"                         /var/log/marketfs/access.log for root)\n"
"  market_key=HEX         pin the market's key fingerprint\n"
"  state_dir=DIR          where market keys trusted on first use are kept\n"
"  cafile=FILE            CA bundle for an https:// market\n"
"  pinned_key=sha256//..  pin the https server's public key\n"
"  token_file=FILE        bearer token for an https:// market (mode 0600)\n"
"\n"
"Any other -o option goes to FUSE (allow_other, default_permissions...).\n"
"Unmount with: fusermount3 -u MOUNTPOINT\n");
}

/* $XDG_<var> or ~/<fallback>, then /marketfs/<leaf>. */
static char *xdg_path(const char *var, const char *fallback,
		      const char *leaf)
{
	const char *base = getenv(var), *home = getenv("HOME");
	char *path = NULL;
	int n;

	if (base && base[0] == '/')
		n = asprintf(&path, "%s/marketfs%s%s", base, leaf ? "/" : "",
			     leaf ? leaf : "");
	else if (home && home[0] == '/')
		n = asprintf(&path, "%s/%s/marketfs%s%s", home, fallback,
			     leaf ? "/" : "", leaf ? leaf : "");
	else
		return NULL;
	return n < 0 ? NULL : path;
}

static int set_defaults(struct fsops_options *opt)
{
	int root = geteuid() == 0;

	if (!opt->key) {
		opt->key = xdg_path("XDG_CONFIG_HOME", ".config", "key.sec");
		if (!opt->key)
			return -ENOMEM;
	}
	if (!opt->access_log) {
		opt->access_log = root ?
			strdup("/var/log/marketfs/access.log") :
			xdg_path("XDG_STATE_HOME", ".local/state",
				 "access.log");
		if (!opt->access_log)
			return -ENOMEM;
	}
	if (!opt->state_dir) {
		opt->state_dir = root ? strdup("/var/lib/marketfs") :
			xdg_path("XDG_STATE_HOME", ".local/state", NULL);
		if (!opt->state_dir)
			return -ENOMEM;
	}
	return 0;
}

/* Make path absolute, since the daemon changes to "/" when it detaches. */
static int make_absolute(char **path)
{
	char cwd[PATH_MAX], *abs;

	if ((*path)[0] == '/')
		return 0;
	if (!getcwd(cwd, sizeof(cwd)))
		return -errno;
	if (asprintf(&abs, "%s/%s", cwd, *path) < 0)
		return -ENOMEM;
	free(*path);
	*path = abs;
	return 0;
}

static int load_key(const struct fsops_options *opt, uint8_t sk[32],
		    uint8_t pk[32])
{
	char *text = NULL, *pass = NULL, *prompt = NULL;
	size_t len, passlen = 0;
	int r;

	r = util_read_file(opt->key, KEY_FILE_MAX, &text, &len);
	if (r < 0) {
		log_error("cannot read key '%s': %s%s", opt->key,
			  strerror(-r), r == -ENOENT ?
			  " (give your key with -o key=FILE)" : "");
		return r;
	}

	r = c4gh_seckey_needs_passphrase(text, len);
	if (r < 0) {
		log_error("key '%s': %s", opt->key, c4gh_strerror(r));
		goto out_free_text;
	}
	if (r == 1) {
		if (asprintf(&prompt, "Passphrase for key '%s': ",
			     opt->key) < 0) {
			r = -ENOMEM;
			goto out_free_text;
		}
		r = util_read_passphrase(opt->passphrase_file, prompt, &pass,
					 &passlen);
		free(prompt);
		if (r == -ENOTTY) {
			log_error("key '%s' is protected by a passphrase and "
				  "there is no terminal to ask for it: use "
				  "-o passphrase_file=FILE", opt->key);
			goto out_free_text;
		}
		if (r < 0) {
			log_error("cannot read the passphrase%s%s: %s",
				  opt->passphrase_file ? " file " : "",
				  opt->passphrase_file ?
				  opt->passphrase_file : "", strerror(-r));
			goto out_free_text;
		}
	}

	r = c4gh_seckey_parse(text, len, pass, passlen, sk);
	util_secret_free(pass, passlen);
	if (r < 0) {
		log_error("key '%s': %s", opt->key, c4gh_strerror(r));
		goto out_free_text;
	}

	r = cipher_x25519_public(sk, pk);
	if (r < 0)
		log_error("key '%s': cannot derive its public key", opt->key);
out_free_text:
	cipher_wipe(text, len);
	free(text);
	return r;
}

struct load_report {
	struct alog *alog;
};

static void on_report(void *ctx, const char *line)
{
	struct load_report *lr = ctx;
	struct alog_event ev;

	log_warn("%s", line);
	alog_event_init(&ev);
	ev.event = "load";
	ev.detail = line;
	if (alog_write(lr->alog, &ev) < 0)
		log_error("ACCESS LOG CANNOT BE WRITTEN: '%s'", line);
}

static struct alog *open_access_log(const char *path)
{
	struct alog *alog = NULL;
	char *dir;
	int r;

	dir = strdup(path);
	if (!dir)
		return NULL;
	if (strrchr(dir, '/') && strrchr(dir, '/') != dir) {
		*strrchr(dir, '/') = '\0';
		(void)util_mkdir_p(dir, 0700);
	}
	free(dir);

	r = alog_open(path, &alog);
	if (r < 0) {
		log_error("cannot open the access log '%s': %s", path,
			  strerror(-r));
		return NULL;
	}
	return alog;
}

static void harden_process(void)
{
	struct rlimit rl = { 0, 0 };

	/* Keys and plaintext must never land in a core file. */
	(void)setrlimit(RLIMIT_CORE, &rl);
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

int main(int argc, char *argv[])
{
	struct fsops_options opt;
	struct http_options hopt = { 0 };
	struct fsops_config cfg = { 0 };
	struct tree_config tcfg = { 0 };
	struct load_report lr = { 0 };
	struct tree *tree = NULL;
	struct http *http = NULL;
	struct alog *alog = NULL;
	uint8_t sk[32], pk[32];
	char msg[TREE_MSG_LEN];
	int r, status = 1;

	harden_process();
	log_init("marketfs", LOG_LVL_INFO);

	r = fsops_parse_args(argc, argv, &opt, msg, sizeof(msg));
	if (r < 0) {
		fprintf(stderr, "marketfs: %s\n%s", msg, usage_short);
		fsops_options_release(&opt);
		return 2;
	}
	if (opt.show_help) {
		usage_full();
		fsops_options_release(&opt);
		return 0;
	}
	if (opt.show_version) {
		printf("marketfs %s\n", MARKETFS_VERSION);
		fsops_options_release(&opt);
		return 0;
	}
	if (opt.debug)
		log_init("marketfs", LOG_LVL_DEBUG);

	if (set_defaults(&opt) < 0 || make_absolute(&opt.access_log) < 0 ||
	    make_absolute(&opt.state_dir) < 0) {
		log_error("out of memory");
		goto out_release;
	}

	if (load_key(&opt, sk, pk) < 0)
		goto out_wipe;

	if (http_global_init() < 0) {
		log_error("cannot initialise libcurl");
		goto out_wipe;
	}
	hopt.cafile = opt.cafile;
	hopt.pinned_key = opt.pinned_key;
	hopt.token_file = opt.token_file;
	hopt.retries = -1;
	r = http_new(&hopt, &http);
	if (r < 0) {
		log_error("cannot set up transfers: %s%s", strerror(-r),
			  r == -EACCES ? " (token_file must be readable by "
			  "its owner only)" : "");
		goto out_http;
	}

	alog = open_access_log(opt.access_log);
	if (!alog)
		goto out_http;

	lr.alog = alog;
	tcfg.source = opt.source;
	tcfg.http = http;
	tcfg.sk = sk;
	tcfg.pk = pk;
	tcfg.market_key = opt.market_key;
	tcfg.state_dir = opt.state_dir;
	tcfg.report = on_report;
	tcfg.report_ctx = &lr;
	r = tree_load(&tcfg, &tree, msg);
	if (r < 0) {
		log_error("%s", msg);
		goto out_alog;
	}
	if (tree->key_first_use) {
		char line[256];

		snprintf(line, sizeof(line), "market key %s trusted on first "
			 "use and recorded", tree->fingerprint);
		log_notice("%s", line);
		on_report(&lr, line);
	}

	cfg.tree = tree;
	cfg.alog = alog;
	cfg.http = http;
	cfg.sk = sk;
	status = fsops_run(&opt, &cfg);

	tree_free(tree);
out_alog:
	alog_close(alog);
out_http:
	http_free(http);
	http_global_cleanup();
out_wipe:
	cipher_wipe(sk, sizeof(sk));
out_release:
	fsops_options_release(&opt);
	return status;
}
