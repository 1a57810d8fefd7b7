/*
 * marketfs-market - the market operator's tool.
 *
 * A thin main over fs/operator.c: it parses the command line, prints
 * results and progress, and maps failures to exit statuses: 0 success,
 * 1 failure (one line on stderr; for verify: the market has problems),
 * 2 a mistake on the command line (one line plus the short usage).
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "jws.h"
#include "market.h"
#include "operator.h"
#include "timeutil.h"
#include "util.h"

#define PROG	"marketfs-market"

static const char usage_text[] =
	"usage: " PROG " [--keys-dir DIR] init DIR [--name NAME]\n"
	"       " PROG " [--keys-dir DIR] publish DIR DATASET SRCDIR"
	" [--title T] [--description D]\n"
	"                       [--price P] [--provider P] [--policy NAME]\n"
	"       " PROG " [--keys-dir DIR] grant DIR DATASET --to PUBKEY-FILE"
	" [--version V]\n"
	"                       [--policy NAME|FILE] [--policies-dir DIR]\n"
	"                       [--not-before TIME] [--expires TIME]\n"
	"       " PROG " [--keys-dir DIR] revoke DIR LICENCE\n"
	"       " PROG " [--keys-dir DIR] resign DIR [--validity SECONDS]\n"
	"       " PROG " verify DIR\n"
	"       " PROG " list DIR [--json]\n"
	"       " PROG " --help | --version\n";

static const char help_text[] =
	"\n"
	"Create and run a marketfs market: a directory of signed documents\n"
	"and Crypt4GH objects that any web server, CDN or object store can\n"
	"serve as it is.\n"
	"\n"
	"Commands:\n"
	"  init      make DIR a new market; print the key fingerprint buyers\n"
	"            pin with market_key=\n"
	"  publish   encrypt every file under SRCDIR as a new version of\n"
	"            DATASET and list it in the catalog\n"
	"  grant     issue a licence for DATASET to the holder of a Crypt4GH\n"
	"            public key; the licence id is the last line printed\n"
	"  revoke    add a licence to the revocation list\n"
	"  resign    re-sign the revocation list with a fresh time (run it\n"
	"            daily from a timer)\n"
	"  verify    check every signature and digest of a market\n"
	"  list      show datasets and licences (--json for scripts)\n"
	"\n"
	"Options:\n"
	"  --keys-dir DIR    the market's private keys (default:\n"
	"                    $MARKETFS_MARKET_KEYS, else\n"
	"                    $XDG_CONFIG_HOME/marketfs/markets/<id>)\n"
	"  --name NAME       the market's name (init; default: DIR's name)\n"
	"  --title, --description, --price, --provider   the listing\n"
	"  --policy NAME     default terms (publish) or the licence template\n"
	"                    (grant; default research-12m); a path with '/'\n"
	"                    or ending in .json is read as a file\n"
	"  --policies-dir DIR  where templates are looked up first (also\n"
	"                    $MARKETFS_POLICIES)\n"
	"  --to FILE         the licensee's Crypt4GH public key\n"
	"  --version V       dataset version to license (default: latest)\n"
	"  --not-before TIME, --expires TIME   the licence window, as\n"
	"                    YYYY-MM-DDTHH:MM:SSZ (default: now, and now plus\n"
	"                    the template's duration)\n"
	"  --validity SECONDS  how long a re-signed list is fresh (86400)\n"
	"  --json            machine-readable output (list)\n"
	"  -h, --help        this help\n"
	"  -V, --version     the version\n"
	"\n"
	"Exit status: 0 success, 1 failure (verify: problems found),\n"
	"2 usage error.\n";

enum {
	OPT_KEYS_DIR = 256, OPT_NAME, OPT_TITLE, OPT_DESCRIPTION, OPT_PRICE,
	OPT_PROVIDER, OPT_POLICY, OPT_POLICIES_DIR, OPT_TO, OPT_VERSION_ID,
	OPT_NOT_BEFORE, OPT_EXPIRES, OPT_VALIDITY, OPT_JSON,
};

static const struct option global_opts[] = {
	{ "keys-dir", required_argument, NULL, OPT_KEYS_DIR },
	{ "version", no_argument, NULL, 'V' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* Options after the command ("--version V" is grant's version id). */
static const struct option cmd_opts[] = {
	{ "keys-dir", required_argument, NULL, OPT_KEYS_DIR },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "title", required_argument, NULL, OPT_TITLE },
	{ "description", required_argument, NULL, OPT_DESCRIPTION },
	{ "price", required_argument, NULL, OPT_PRICE },
	{ "provider", required_argument, NULL, OPT_PROVIDER },
	{ "policy", required_argument, NULL, OPT_POLICY },
	{ "policies-dir", required_argument, NULL, OPT_POLICIES_DIR },
	{ "to", required_argument, NULL, OPT_TO },
	{ "version", required_argument, NULL, OPT_VERSION_ID },
	{ "not-before", required_argument, NULL, OPT_NOT_BEFORE },
	{ "expires", required_argument, NULL, OPT_EXPIRES },
	{ "validity", required_argument, NULL, OPT_VALIDITY },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct args {
	const char *cmd;
	const char *keys_dir, *name, *title, *description, *price;
	const char *provider, *policy, *policies_dir, *to, *version;
	const char *not_before, *expires, *validity;
	int json;
	const char *pos[4];
	int npos;
};

static int usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

/* The command being parsed, so a mistake shows only its synopsis. */
static const char *current_cmd;

static const char *synopsis(const char *cmd)
{
	static const char *const lines[][2] = {
		{ "init", "[--keys-dir DIR] init DIR [--name NAME]" },
		{ "publish", "[--keys-dir DIR] publish DIR DATASET SRCDIR"
		  " [--title T] [--description D]\n"
		  "        [--price P] [--provider P] [--policy NAME]" },
		{ "grant", "[--keys-dir DIR] grant DIR DATASET --to PUBKEY-FILE"
		  " [--version V]\n"
		  "        [--policy NAME|FILE] [--policies-dir DIR]"
		  " [--not-before TIME] [--expires TIME]" },
		{ "revoke", "[--keys-dir DIR] revoke DIR LICENCE" },
		{ "resign", "[--keys-dir DIR] resign DIR [--validity SECONDS]" },
		{ "verify", "verify DIR" },
		{ "list", "list DIR [--json]" },
	};

	for (size_t i = 0; cmd && i < sizeof(lines) / sizeof(lines[0]); i++)
		if (!strcmp(lines[i][0], cmd))
			return lines[i][1];
	return NULL;
}

static int usage_error(const char *fmt, ...)
{
	const char *syn = synopsis(current_cmd);
	va_list ap;

	fprintf(stderr, "%s: ", PROG);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (syn)
		fprintf(stderr, "usage: %s %s\nTry '%s --help' for more.\n",
			PROG, syn, PROG);
	else
		fputs(usage_text, stderr);
	return 2;
}

static const char *opt_name(int c)
{
	for (size_t i = 0; cmd_opts[i].name; i++)
		if (cmd_opts[i].val == c)
			return cmd_opts[i].name;
	return "?";
}

static int failure(const char *msg)
{
	fprintf(stderr, "%s: %s\n", PROG, msg);
	return 1;
}

/* Which options each command takes. */
static int allowed(const char *cmd, int opt)
{
	if (opt == OPT_KEYS_DIR)
		return 1;	/* global; verify and list do not need keys */
	if (!strcmp(cmd, "init"))
		return opt == OPT_NAME;
	if (!strcmp(cmd, "publish"))
		return opt == OPT_TITLE || opt == OPT_DESCRIPTION ||
		       opt == OPT_PRICE || opt == OPT_PROVIDER ||
		       opt == OPT_POLICY;
	if (!strcmp(cmd, "grant"))
		return opt == OPT_TO || opt == OPT_VERSION_ID ||
		       opt == OPT_POLICY || opt == OPT_POLICIES_DIR ||
		       opt == OPT_NOT_BEFORE || opt == OPT_EXPIRES;
	if (!strcmp(cmd, "resign"))
		return opt == OPT_VALIDITY;
	if (!strcmp(cmd, "list"))
		return opt == OPT_JSON;
	return 0;
}

/* ---- progress ---- */

struct bar {
	int last;			/* last permille drawn */
	int drawn;
};

static void progress(void *ctx, uint64_t done, uint64_t total)
{
	struct bar *b = ctx;
	int permille = total ? (int)(done * 1000 / total) : 1000;
	int width = 30, fill = permille * width / 1000;

	if (permille == b->last)
		return;
	b->last = permille;
	b->drawn = 1;
	fprintf(stderr, "\rpublishing [%.*s%*s] %3d.%d%%  %.1f/%.1f MiB",
		fill, "##############################", width - fill, "",
		permille / 10, permille % 10, done / 1048576.0,
		total / 1048576.0);
	fflush(stderr);
}

/* ---- commands ---- */

static int cmd_init(const struct args *a)
{
	struct operator_init opt = {
		.dir = a->pos[0], .name = a->name, .keys_dir = a->keys_dir,
	};
	struct market_info *info = NULL;
	char msg[OPERATOR_MSG_LEN] = "", *path, *buf = NULL, *kd = NULL;
	char fp[MARKET_FP_LEN];
	size_t len;
	int r;

	r = operator_market_init(&opt, msg);
	if (r < 0)
		return failure(msg);

	/* Read back what was written: the fingerprint is of that. */
	if (asprintf(&path, "%s/market.jws", a->pos[0]) < 0)
		return failure("out of memory");
	r = util_read_file(path, JWS_MAX_LEN, &buf, &len);
	free(path);
	if (r == 0)
		r = market_info_parse(buf, len, NULL, &info);
	free(buf);
	if (r < 0)
		return failure("cannot read back the new market.jws");
	market_fingerprint(info->sign_pk, fp);
	if (a->keys_dir)
		kd = strdup(a->keys_dir);
	else
		(void)operator_default_keys_dir(info->id, &kd);
	printf("created market '%s' (id %s) in %s\n", info->name, info->id,
	       a->pos[0]);
	printf("private keys in %s: keep them safe and out of the market"
	       " directory\n", kd ? kd : "?");
	printf("buyers pin the market key with market_key=%s\n", fp);
	printf("fingerprint: %s\n", fp);
	free(kd);
	market_info_free(info);
	return 0;
}

static int cmd_publish(const struct args *a)
{
	struct bar bar = { -1, 0 };
	struct operator_publish opt = {
		.dir = a->pos[0], .keys_dir = a->keys_dir,
		.dataset = a->pos[1], .srcdir = a->pos[2],
		.title = a->title, .description = a->description,
		.price = a->price, .provider = a->provider,
		.policy = a->policy,
	};
	char msg[OPERATOR_MSG_LEN] = "", version[64];
	int r;

	if (!market_id_is_valid(a->pos[1]))
		return usage_error("invalid dataset id '%s' (lower-case"
				   " letters, digits, '.', '_', '-'; at most"
				   " 64)", a->pos[1]);
	if (isatty(STDERR_FILENO)) {
		opt.progress = progress;
		opt.progress_ctx = &bar;
	}
	r = operator_publish(&opt, version, msg);
	if (bar.drawn)
		fputc('\n', stderr);
	if (r < 0)
		return failure(msg);
	printf("published %s version %s\n", a->pos[1], version);
	return 0;
}

static int cmd_grant(const struct args *a)
{
	int window_past = 0;
	struct operator_grant opt = {
		.dir = a->pos[0], .keys_dir = a->keys_dir,
		.dataset = a->pos[1], .version = a->version,
		.to_pubkey_file = a->to, .policy = a->policy,
		.policies_dir = a->policies_dir,
		.not_before = a->not_before, .expires = a->expires,
		.ret_window_past = &window_past,
	};
	char msg[OPERATOR_MSG_LEN] = "", id[64];
	int64_t t;
	int r;

	if (!market_id_is_valid(a->pos[1]))
		return usage_error("invalid dataset id '%s'", a->pos[1]);
	if (!a->to)
		return usage_error("grant needs --to PUBKEY-FILE");
	if (a->version && !market_id_is_valid(a->version))
		return usage_error("invalid version '%s'", a->version);
	if (a->not_before && timeutil_parse(a->not_before, &t) < 0)
		return usage_error("invalid --not-before '%s' (want"
				   " YYYY-MM-DDTHH:MM:SSZ)", a->not_before);
	if (a->expires && timeutil_parse(a->expires, &t) < 0)
		return usage_error("invalid --expires '%s' (want"
				   " YYYY-MM-DDTHH:MM:SSZ)", a->expires);
	r = operator_grant(&opt, id, msg);
	if (r < 0)
		return failure(msg);
	if (window_past)
		fprintf(stderr, "%s: warning: licence %s %s\n", PROG, id, msg);
	printf("granted licence for %s to %s\n", a->pos[1], a->to);
	printf("%s\n", id);
	return 0;
}

static int cmd_revoke(const struct args *a)
{
	char msg[OPERATOR_MSG_LEN] = "";
	const char *id = a->pos[1];
	int r;

	if (strlen(id) != 32 || strspn(id, "0123456789abcdef") != 32)
		return usage_error("invalid licence id '%s' (32 hex digits)",
				   id);
	r = operator_revoke(a->pos[0], a->keys_dir, id, msg);
	if (r == -EALREADY) {
		fprintf(stderr, "%s: %s, nothing to do\n", PROG, msg);
		return 0;
	}
	if (r < 0)
		return failure(msg);
	printf("revoked licence %s\n", id);
	return 0;
}

static int cmd_resign(const struct args *a)
{
	char msg[OPERATOR_MSG_LEN] = "";
	uint64_t validity = 86400;
	int r;

	if (a->validity && (util_parse_u64(a->validity, &validity) < 0 ||
			    validity == 0 || validity > 366 * 86400))
		return usage_error("invalid --validity '%s' (seconds, 1 to"
				   " 31622400)", a->validity);
	r = operator_resign(a->pos[0], a->keys_dir, (int64_t)validity, msg);
	if (r < 0)
		return failure(msg);
	return 0;
}

static void report_line(void *ctx, const char *line)
{
	(void)ctx;
	printf("%s\n", line);
}

static int cmd_verify(const struct args *a)
{
	char msg[OPERATOR_MSG_LEN] = "";
	int r;

	r = operator_verify(a->pos[0], report_line, NULL, msg);
	fflush(stdout);
	if (r < 0)
		return failure(msg);
	printf("%s: market is sound\n", a->pos[0]);
	return 0;
}

static const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

static void print_size(uint64_t n, char buf[32])
{
	if (n < 1024)
		snprintf(buf, 32, "%llu B", (unsigned long long)n);
	else if (n < 1048576)
		snprintf(buf, 32, "%.1f KiB", n / 1024.0);
	else if (n < 1073741824)
		snprintf(buf, 32, "%.1f MiB", n / 1048576.0);
	else
		snprintf(buf, 32, "%.1f GiB", n / 1073741824.0);
}

static int cmd_list(const struct args *a)
{
	char msg[OPERATOR_MSG_LEN] = "", *text = NULL, size[32];
	json_error_t jerr;
	json_t *doc, *arr, *e;
	size_t i;
	int r;

	r = operator_list_json(a->pos[0], &text, msg);
	if (r < 0)
		return failure(msg);
	if (a->json) {
		printf("%s\n", text);
		free(text);
		return 0;
	}
	doc = json_loads(text, 0, &jerr);
	free(text);
	if (!doc)
		return failure("out of memory");
	printf("market %s (%s)\nfingerprint %s\n\n",
	       jstr(json_object_get(doc, "market"), "name"),
	       jstr(json_object_get(doc, "market"), "id"),
	       jstr(json_object_get(doc, "market"), "fingerprint"));
	arr = json_object_get(doc, "datasets");
	printf("%-24s %-8s %-10s %6s %11s  %s\n", "DATASET", "LATEST",
	       "VERSIONS", "FILES", "SIZE", "TITLE");
	json_array_foreach(arr, i, e) {
		print_size((uint64_t)json_integer_value(
			json_object_get(e, "size")), size);
		printf("%-24s %-8s %-10zu %6lld %11s  %s\n", jstr(e, "id"),
		       jstr(e, "latest_version"),
		       json_array_size(json_object_get(e, "versions")),
		       (long long)json_integer_value(json_object_get(e,
								     "files")),
		       size, jstr(e, "title"));
	}
	if (json_array_size(arr) == 0)
		printf("(none)\n");
	arr = json_object_get(doc, "licences");
	printf("\n%-32s %-16s %-7s %-16s %-20s %-20s %s\n", "LICENCE",
	       "DATASET", "VERSION", "LICENSEE", "NOT BEFORE", "EXPIRES",
	       "STATUS");
	json_array_foreach(arr, i, e)
		printf("%-32s %-16s %-7s %.16s %-20s %-20s %s\n",
		       jstr(e, "id"), jstr(e, "dataset"), jstr(e, "version"),
		       jstr(e, "licensee"), jstr(e, "not_before"),
		       jstr(e, "expires"), jstr(e, "status"));
	if (json_array_size(arr) == 0)
		printf("(none)\n");
	json_decref(doc);
	return 0;
}

static const struct {
	const char *name;
	int npos;
	int (*fn)(const struct args *a);
} commands[] = {
	{ "init", 1, cmd_init },
	{ "publish", 3, cmd_publish },
	{ "grant", 2, cmd_grant },
	{ "revoke", 2, cmd_revoke },
	{ "resign", 1, cmd_resign },
	{ "verify", 1, cmd_verify },
	{ "list", 1, cmd_list },
};

int main(int argc, char **argv)
{
	struct args a = { 0 };
	size_t ci;
	int c;

	/* Global options stop at the command ("+"). */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+hV", global_opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			printf("%s%s", usage_text, help_text);
			return 0;
		case 'V':
			printf("%s %s\n", PROG, MARKETFS_VERSION);
			return 0;
		case OPT_KEYS_DIR:
			a.keys_dir = optarg;
			break;
		case '?':
			return usage_error("unknown or incomplete option '%s'",
					   argv[optind - 1]);
		default:
			return usage_error("'%s' goes after a command",
					   argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return usage_error("no command given");
	a.cmd = argv[optind];
	for (ci = 0; ci < sizeof(commands) / sizeof(commands[0]); ci++)
		if (!strcmp(commands[ci].name, a.cmd))
			break;
	if (ci == sizeof(commands) / sizeof(commands[0]))
		return usage_error("unknown command '%s'", a.cmd);
	current_cmd = a.cmd;

	/* The command's own options, anywhere among its arguments. */
	argc -= optind;
	argv += optind;
	optind = 0;	/* glibc: 0 re-initialises the parser */
	while ((c = getopt_long(argc, argv, "h", cmd_opts, NULL)) != -1) {
		if (c == 'h') {
			printf("%s%s", usage_text, help_text);
			return 0;
		}
		if (c == '?')
			return usage_error("unknown or incomplete option '%s'"
					   " for %s", argv[optind - 1], a.cmd);
		if (!allowed(a.cmd, c))
			return usage_error("option '--%s' does not apply to"
					   " %s", opt_name(c), a.cmd);
		switch (c) {
		case OPT_KEYS_DIR:	a.keys_dir = optarg; break;
		case OPT_NAME:		a.name = optarg; break;
		case OPT_TITLE:		a.title = optarg; break;
		case OPT_DESCRIPTION:	a.description = optarg; break;
		case OPT_PRICE:		a.price = optarg; break;
		case OPT_PROVIDER:	a.provider = optarg; break;
		case OPT_POLICY:	a.policy = optarg; break;
		case OPT_POLICIES_DIR:	a.policies_dir = optarg; break;
		case OPT_TO:		a.to = optarg; break;
		case OPT_VERSION_ID:	a.version = optarg; break;
		case OPT_NOT_BEFORE:	a.not_before = optarg; break;
		case OPT_EXPIRES:	a.expires = optarg; break;
		case OPT_VALIDITY:	a.validity = optarg; break;
		case OPT_JSON:		a.json = 1; break;
		default:
			return usage_error("unexpected option");
		}
	}
	for (int i = optind; i < argc; i++) {
		if (a.npos == 4)
			return usage_error("too many arguments for %s", a.cmd);
		a.pos[a.npos++] = argv[i];
	}
	if (a.npos != commands[ci].npos)
		return usage_error("%s takes %d argument%s, %d given", a.cmd,
				   commands[ci].npos,
				   commands[ci].npos == 1 ? "" : "s", a.npos);
	for (int i = 0; i < a.npos; i++)
		if (!*a.pos[i])
			return usage_error("empty argument to %s", a.cmd);
	return commands[ci].fn(&a);
}
