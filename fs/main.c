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
#include "c4gh_pool.h"
#include "cache.h"
#include "cipher.h"
#include "config.h"
#include "fsops.h"
#include "http.h"
#include "log.h"
#include "policy.h"
#include "tree.h"
#include "trust.h"
#include "util.h"
#include "warm.h"

#define KEY_FILE_MAX	(64u << 10)
#define PLAIN_CACHE_DEFAULT	(64ull << 20)
#define PLAIN_CACHE_MAX		(64ull << 30)

static const char usage_short[] =
	"usage: marketfs [-f] [-d] [-s] [-o OPTION[,OPTION...]] SOURCE "
	"MOUNTPOINT\n"
	"       marketfs --warm PATH...\n";

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
"  site_policy=FILE       which local users and groups may open which\n"
"                         datasets on an allow_other mount (JSON)\n"
"  refresh=SECONDS        reload licences and revocations this often\n"
"                         (default 600; 0: only on SIGHUP)\n"
"  cache_dir=DIR          disk cache of verified ciphertext (default\n"
"                         $XDG_CACHE_HOME/marketfs, /var/cache/marketfs\n"
"                         for root)\n"
"  cache_size=SIZE        its bound, with K, M, G or T (default 1G; 0: none)\n"
"  plain_cache=SIZE       decrypted segments kept for reads in part of a\n"
"                         segment, in locked memory (default 64M; 0: a\n"
"                         few per open file)\n"
"\n"
"--warm PATH... reads every file under the PATHs (in a mount) so that the\n"
"disk cache holds them before going offline, with a progress bar.\n"
"\n"
"Any other -o option goes to FUSE (allow_other, default_permissions...).\n"
"Options are also read from /etc/marketfs/marketfs.conf and\n"
"$XDG_CONFIG_HOME/marketfs/config; the command line wins.\n"
"Unmount with: fusermount3 -u MOUNTPOINT\n"
"\n"
"Exit status: 0 mounted (with -f: served, then unmounted), 1 failure,\n"
"2 usage or configuration error, 3 the key or its passphrase is wrong.\n");
}

static int set_defaults(struct fsops_options *opt)
{
	int root = geteuid() == 0;

	if (!opt->key) {
		opt->key = util_xdg_path("XDG_CONFIG_HOME", ".config", "key.sec");
		if (!opt->key)
			return -ENOMEM;
	}
	if (!opt->access_log) {
		opt->access_log = root ?
			strdup("/var/log/marketfs/access.log") :
			util_xdg_path("XDG_STATE_HOME", ".local/state",
				 "access.log");
		if (!opt->access_log)
			return -ENOMEM;
	}
	if (!opt->state_dir) {
		opt->state_dir = root ? strdup("/var/lib/marketfs") :
			util_xdg_path("XDG_STATE_HOME", ".local/state", NULL);
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
	if (r < 0 && c4gh_pubkey_parse(text, len, pk) == 0) {
		log_error("key '%s' is a public key: key= takes the secret "
			  "key made with it (marketfs-keygen --sk)", opt->key);
		goto out_free_text;
	}
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

/* ---- access log options (alog.h): begin ---- */
static const char usage_log[] =
"access log options (-o), see docs/access-log.md:\n"
"  host_key=FILE          Ed25519 key that signs checkpoints (default\n"
"                         STATE_DIR/host.key, made on first use)\n"
"  log_checkpoint_interval=SECONDS  seal the log this often (default\n"
"                         300; 0: only at unmount)\n"
"  log_max_size=SIZE      rotate past SIZE (K, M, G; default 64M; 0: never)\n"
"  log_warn_free=SIZE     warn when the log's disk has less free\n"
"                         (default: a tenth of it)\n"
"  syslog                 mirror every record to syslog (authpriv)\n"
"  witness=URL            POST each checkpoint to this https:// URL\n"
"  witness_cafile=FILE    CA bundle for the witness\n"
"  witness_spool=FILE     unsent checkpoints (default ACCESS_LOG.witness)\n";

static struct alog *open_access_log(const char *path,
				    struct alog_options *aopt,
				    const char *state_dir)
{
	struct alog *alog = NULL;
	char *dir;
	int r;

	if (!aopt->host_key && state_dir &&
	    asprintf(&aopt->host_key, "%s/host.key", state_dir) < 0)
		aopt->host_key = NULL;
	/* The timer and witness threads start after fuse_daemonize(). */
	aopt->defer_threads = 1;

	dir = strdup(path);
	if (!dir)
		return NULL;
	if (strrchr(dir, '/') && strrchr(dir, '/') != dir) {
		*strrchr(dir, '/') = '\0';
		(void)util_mkdir_p(dir, 0700);
	}
	free(dir);

	r = alog_open_opts(path, aopt, &alog);
	if (r == -EBUSY) {
		log_error("the access log '%s' is in use by another marketfs: "
			  "give each mount its own access_log=FILE", path);
		return NULL;
	}
	if (r < 0) {
		log_error("cannot open the access log '%s' (host key '%s'): "
			  "%s", path, aopt->host_key ? aopt->host_key : "-",
			  strerror(-r));
		return NULL;
	}
	return alog;
}
/* ---- access log options: end ---- */

/*
 * The cache of verified ciphertext segments.  A disk directory that
 * cannot be used is only a warning: segments then come from the market
 * every time (and from memory).  NULL only when out of memory.
 */
static struct cache *open_cache(const struct fsops_options *opt,
				uint64_t size, struct http *http)
{
	struct cache_options copt = { 0 };
	struct cache *cache = NULL;
	char *dir = NULL;
	int r;

	if (size > 0 && opt->cache_dir) {
		dir = strdup(opt->cache_dir);
		if (dir && make_absolute(&dir) < 0) {
			free(dir);
			dir = NULL;
		}
	} else if (size > 0) {
		(void)cache_default_dir(&dir);
	}
	copt.dir = dir;
	copt.size = size;
	copt.workers = CACHE_DEFAULT_WORKERS;
	r = cache_new(&copt, http, &cache);
	if (r < 0 && dir) {
		log_warn("cache: cannot use '%s': %s, caching in memory only",
			 dir, strerror(-r));
		copt.dir = NULL;
		r = cache_new(&copt, http, &cache);
	}
	free(dir);
	return r < 0 ? NULL : cache;
}

static void harden_process(void)
{
	struct rlimit rl = { 0, 0 };

	/* Keys and plaintext must never land in a core file. */
	(void)setrlimit(RLIMIT_CORE, &rl);
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	/* libcurl would write TLS session secrets where this names. */
	(void)unsetenv("SSLKEYLOGFILE");
}

/*
 * The pool of decrypted segments, in locked memory.  Without the right
 * to lock all of it (RLIMIT_MEMLOCK) it stays as small as the limit;
 * without any, readers keep a few segments each.
 */
static struct c4gh_pool *open_pool(uint64_t bytes)
{
	struct c4gh_pool *pool = NULL;
	struct rlimit rl;
	int r;

	if (bytes == 0)
		return NULL;
	if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 &&
	    rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < bytes &&
	    geteuid() != 0)
		log_info("plain_cache: at most %llu KiB can be locked "
			 "(RLIMIT_MEMLOCK), so it holds no more",
			 (unsigned long long)rl.rlim_cur / 1024);
	r = c4gh_pool_new((size_t)bytes, &pool);
	if (r < 0)
		log_warn("plain_cache: %s; keeping a few segments per open "
			 "file instead", strerror(-r));
	return pool;
}

int main(int argc, char *argv[])
{
	struct fsops_options opt;
	struct http_options hopt = { 0 };
	struct fsops_config cfg = { 0 };
	struct tree_config tcfg = { 0 };
	struct load_report lr = { 0 };
	struct config_args cargs;
	struct tree *tree = NULL;
	struct http *http = NULL;
	struct cache *cache = NULL;
	struct policy_site *site = NULL;
	struct trust *trust = NULL;
	uint64_t refresh = 600;
	uint64_t cache_size = CACHE_DEFAULT_SIZE;
	uint64_t plain_cache = PLAIN_CACHE_DEFAULT;
	struct c4gh_pool *pool = NULL;
	struct alog *alog = NULL;
	struct alog_options aopt = { 0 };
	uint8_t sk[32], pk[32];
	char msg[TREE_MSG_LEN];
	int r, status = 1;

	harden_process();
	log_init("marketfs", LOG_LVL_INFO);

	/* marketfs --warm PATH...: not a mount, a reader of one. */
	if (argc >= 2 && strcmp(argv[1], "--warm") == 0) {
		if (argc < 3) {
			fprintf(stderr, "marketfs: --warm needs the files or "
				"folders of a mount to read\n%s",
				usage_short);
			return 2;
		}
		return warm_paths(argv + 2, argc - 2, 4);
	}

	/*
	 * Config files (config.c): their entries become -o arguments put
	 * before the command line's, so that the command line wins.
	 */
	r = config_load(argc, argv, &cargs, msg, sizeof(msg));
	if (r < 0) {
		fprintf(stderr, "marketfs: %s\n", msg);
		return 2;
	}
	/* End of the config-file step. */

	/* Access-log options (alog.h) are taken out before FUSE's. */
	aopt.checkpoint_interval = 300;
	aopt.max_size = 64u << 20;
	r = alog_options_take(&cargs.argc, cargs.argv, free, &aopt, msg,
			      sizeof(msg));
	if (r < 0) {
		fprintf(stderr, "marketfs: %s\n%s", msg, usage_short);
		config_args_release(&cargs);
		return 2;
	}

	r = fsops_parse_args(cargs.argc, cargs.argv, &opt, msg, sizeof(msg));
	if (r < 0 && r != -EINVAL) {
		fprintf(stderr, "marketfs: %s\n", msg);
		fsops_options_release(&opt);
		config_args_release(&cargs);
		return 1;
	}
	if (r < 0) {
		fprintf(stderr, "marketfs: %s\n%s", msg, usage_short);
		fsops_options_release(&opt);
		config_args_release(&cargs);
		return 2;
	}
	if (opt.show_help) {
		usage_full();
		printf("\n%s", usage_log);	/* access log options */
		fsops_options_release(&opt);
		config_args_release(&cargs);
		return 0;
	}
	if (opt.show_version) {
		printf("marketfs %s\n", MARKETFS_VERSION);
		fsops_options_release(&opt);
		config_args_release(&cargs);
		return 0;
	}
	if (opt.debug)
		log_init("marketfs", LOG_LVL_DEBUG);

	/* Before any passphrase is asked: libfuse must take its options. */
	if (fsops_check_fuse_args(&opt) < 0) {
		fprintf(stderr, "%s", usage_short);
		status = 2;
		goto out_release;
	}

	if (set_defaults(&opt) < 0 || make_absolute(&opt.access_log) < 0 ||
	    make_absolute(&opt.state_dir) < 0) {
		log_error("out of memory");
		goto out_release;
	}

	if (opt.cache_size &&
	    cache_parse_size(opt.cache_size, &cache_size) < 0) {
		fprintf(stderr, "marketfs: cache_size '%s' is not a size like "
			"512M or 2G\n%s", opt.cache_size, usage_short);
		status = 2;
		goto out_release;
	}

	if (opt.plain_cache &&
	    (cache_parse_size(opt.plain_cache, &plain_cache) < 0 ||
	     plain_cache > PLAIN_CACHE_MAX ||
	     (plain_cache > 0 && plain_cache < C4GH_SEGMENT_SIZE))) {
		fprintf(stderr, "marketfs: plain_cache '%s' is not 0 or a size "
			"from 64K to 64G like 256M\n%s", opt.plain_cache,
			usage_short);
		status = 2;
		goto out_release;
	}

	if (opt.refresh && (util_parse_u64(opt.refresh, &refresh) < 0 ||
			    refresh > 86400 * 365)) {
		fprintf(stderr, "marketfs: refresh '%s' is not a number of "
			"seconds\n%s", opt.refresh, usage_short);
		status = 2;
		goto out_release;
	}
	if (opt.site_policy &&
	    policy_site_load(opt.site_policy, &site, msg, sizeof(msg)) < 0) {
		fprintf(stderr, "marketfs: %s\n", msg);
		status = 2;
		goto out_release;
	}

	/* Exit 3: the key or its passphrase is wrong (no restart helps). */
	r = load_key(&opt, sk, pk);
	if (r < 0) {
		status = r == -ENOMEM ? 1 : 3;
		goto out_wipe;
	}

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
	cache = open_cache(&opt, cache_size, http);
	if (!cache) {
		log_error("out of memory");
		goto out_http;
	}

	pool = open_pool(plain_cache);

	alog = open_access_log(opt.access_log, &aopt, opt.state_dir);
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
		on_report(&lr, line);
	}

	/* The market's remembered state outlives every tree. */
	trust = tree->trust;
	tree->owns_trust = 0;

	cfg.tree = tree;
	cfg.tree_config = &tcfg;
	cfg.trust = trust;
	cfg.site = site;
	cfg.refresh_interval = (int)refresh;
	cfg.alog = alog;
	cfg.http = http;
	cfg.cache = cache;
	cfg.pool = pool;
	cfg.sk = sk;
	/* fsops takes the tree over: it frees it once no handle uses it. */
	status = fsops_run(&opt, &cfg);
	trust_free(trust);
out_alog:
	alog_close(alog);
out_http:
	/* Its read-ahead threads call into http: stop them first. */
	cache_free(cache);
	http_free(http);
	http_global_cleanup();
	c4gh_pool_free(pool);	/* every reader is gone by now */
out_wipe:
	cipher_wipe(sk, sizeof(sk));
out_release:
	policy_site_free(site);
	fsops_options_release(&opt);
	config_args_release(&cargs);
	alog_options_release(&aopt);
	return status;
}
