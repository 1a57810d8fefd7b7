/*
 * audit.c - marketfs-audit: verify, read and report on access logs.
 *
 *   verify LOG... [--key HOST-PUBKEY] [--witness FILE]
 *   show LOG... [filters]        a readable table
 *   summary LOG... [filters]     per dataset and per user
 *   export LOG... --format csv|json [filters]
 *   report LOG... -o FILE.html [filters]   one self-contained page
 *   key HOST-KEY-FILE            the public half of a host key
 *
 * Exit status: 0 done (verify: intact); 1 verify found a problem;
 * 2 a usage mistake; 3 a file could not be read or written.
 */
#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alog.h"
#include "audit.h"
#include "cipher.h"
#include "timeutil.h"
#include "util.h"

#define PROG	"marketfs-audit"

enum {
	EXIT_PROBLEM = 1,
	EXIT_USAGE = 2,
	EXIT_IO = 3,
};

enum {
	OPT_SINCE = 256,
	OPT_UNTIL,
	OPT_USER,
	OPT_DATASET,
	OPT_FILE,
	OPT_DENIED,
	OPT_KEY,
	OPT_WITNESS,
	OPT_FORMAT,
};

static const char short_usage[] =
	"Usage: " PROG " verify LOG... [--key HOST-PUBKEY] [--witness FILE]\n"
	"       " PROG " show LOG... [FILTERS]\n"
	"       " PROG " summary LOG... [FILTERS]\n"
	"       " PROG " export LOG... --format csv|json [FILTERS]\n"
	"       " PROG " report LOG... -o FILE.html [FILTERS]\n"
	"       " PROG " why LOG... --file PATH [--user U] [--dataset D]\n"
	"       " PROG " key HOST-KEY-FILE\n";

static void print_help(void)
{
	printf("%s", short_usage);
	printf("\n"
"Check and read marketfs access logs.  Give rotated files oldest first,\n"
"the current file last (e.g. access.log.* access.log).\n"
"\n"
"Commands:\n"
"  verify    check the hash chain, every line's own hash and every\n"
"            checkpoint signature; name the first bad record.  Without\n"
"            --key the log's own recorded host key is used: that proves\n"
"            the log is consistent, not that this host wrote it.\n"
"  show      the records as a table\n"
"  summary   opens, denials and bytes per dataset and per user\n"
"  export    the records as CSV or a JSON array\n"
"  report    an HTML page with charts (works offline)\n"
"  why       explain the last decision on a file (for a user): allowed\n"
"            or refused, and why.  --file takes the path in the dataset,\n"
"            DATASET/FILE, or a path through the mount\n"
"            (.../datasets/DATASET/FILE).\n"
"            For what an open would get now, read the mount's\n"
"            user.marketfs.decision extended attribute (getfattr).\n"
"  key       print the public key of a host key file (state_dir/host.key)\n"
"\n"
"Options:\n"
"  --key HEX|FILE     the host's Ed25519 public key (64 hex digits)\n"
"  --witness FILE     checkpoints a witness received (one per line)\n"
"  --format csv|json  for export\n"
"  -o FILE            for report\n"
"  --since T          records at or after T (RFC 3339 text, or a prefix\n"
"                     such as 2026-12-03)\n"
"  --until T          records before T\n"
"  --user U           user name or uid\n"
"  --dataset D        dataset id\n"
"  --file F           file path (shell pattern)\n"
"  --denied           denials only\n"
"  -h, --help         this help;  -V, --version  the version\n"
"\n"
"Exit status: 0 done (verify: intact; records after the last checkpoint\n"
"are reported as unsealed, which is not a failure); 1 verify found a\n"
"problem; 2 wrong usage; 3 a file could not be read or written.\n");
}

static int usage_error(const char *msg)
{
	fprintf(stderr, PROG ": %s\n%sTry '" PROG " --help' for more.\n",
		msg, short_usage);
	return EXIT_USAGE;
}

struct options {
	const char *cmd;
	const char **logs;
	size_t nlogs;
	const char *key;
	const char *witness;
	const char *format;
	const char *out;
	const char *since, *until, *user, *dataset, *file;
	int denied;
};

/* ---- filters ---------------------------------------------------------- */

static bool selected(const struct options *o, const struct audit_record *r)
{
	char uid[32];

	if (o->since && (!r->time || strcmp(r->time, o->since) < 0))
		return false;
	if (o->until && (!r->time || strcmp(r->time, o->until) >= 0))
		return false;
	if (o->user) {
		snprintf(uid, sizeof(uid), "%lld", (long long)r->uid);
		if (!((r->user && strcmp(r->user, o->user) == 0) ||
		      (r->uid >= 0 && strcmp(uid, o->user) == 0)))
			return false;
	}
	if (o->dataset && (!r->dataset || strcmp(r->dataset, o->dataset)))
		return false;
	if (o->file && (!r->file || fnmatch(o->file, r->file, 0) != 0))
		return false;
	if (o->denied && (!r->decision || strcmp(r->decision, "deny")))
		return false;
	return true;
}

static const char *dash(const char *s)
{
	return s ? s : "-";
}

/* ---- verify --------------------------------------------------------------- */

static int load_pubkey(const char *arg, uint8_t pk[32])
{
	char *text = NULL;
	size_t len = 0;
	int r;

	if (audit_parse_key(arg, pk) == 0)
		return 0;
	r = util_read_file(arg, 4096, &text, &len);
	if (r < 0)
		return r;
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
		text[--len] = '\0';
	r = audit_parse_key(text, pk);
	free(text);
	return r;
}

static int cmd_verify(const struct options *o)
{
	struct audit_result res;
	uint8_t pk[32];
	int r;

	if (o->key) {
		r = load_pubkey(o->key, pk);
		if (r < 0) {
			fprintf(stderr, PROG ": --key: not a public key (64 hex "
				"digits or a file holding them): %s\n", o->key);
			return EXIT_USAGE;
		}
	}
	r = audit_verify(o->logs, o->nlogs, o->key ? pk : NULL, o->witness,
			 &res);
	if (r < 0) {
		fprintf(stderr, PROG ": %s: %s\n", res.file ? res.file : "?",
			strerror(-r));
		return EXIT_IO;
	}
	if (res.problem != AUDIT_INTACT) {
		printf("FAILED: %s", res.file ? res.file : "?");
		if (res.line)
			printf(" line %llu", (unsigned long long)res.line);
		if (res.seq)
			printf(" (seq %llu)", (unsigned long long)res.seq);
		printf(": %s: %s\n", audit_problem_name(res.problem),
		       res.what);
		return EXIT_PROBLEM;
	}
	printf("OK: %zu file%s, %llu record%s, %llu checkpoint%s, chain "
	       "intact", o->nlogs, o->nlogs == 1 ? "" : "s",
	       (unsigned long long)res.records, res.records == 1 ? "" : "s",
	       (unsigned long long)res.checkpoints,
	       res.checkpoints == 1 ? "" : "s");
	if (res.records)
		printf(" (seq %llu to %llu)",
		       (unsigned long long)res.first_seq,
		       (unsigned long long)res.last_seq);
	printf("\n");
	if (res.recovered)
		printf("torn lines: %llu, each marked by a \"recovered\" record "
		       "(a crash during a write)\n",
		       (unsigned long long)res.recovered);
	if (res.sealed_seq)
		printf("last checkpoint: seq %llu at %s\n",
		       (unsigned long long)res.sealed_seq, res.sealed_time);
	else
		printf("no checkpoint: nothing is sealed\n");
	if (res.unsealed)
		printf("unsealed: %llu record%s after the last checkpoint "
		       "(not yet signed; not tampering, but a cut there cannot "
		       "be proven without a witness)\n",
		       (unsigned long long)res.unsealed,
		       res.unsealed == 1 ? "" : "s");
	if (o->witness)
		printf("witness: %llu checkpoint%s match\n",
		       (unsigned long long)res.witnessed,
		       res.witnessed == 1 ? "" : "s");
	if (!res.host_key[0])
		printf("host key: none recorded (no checkpoints to check)\n");
	else if (res.key_from_log)
		printf("host key: %s, as recorded in the log itself: this "
		       "proves the log is consistent, not where it came from "
		       "(give --key HOST-PUBKEY for that)\n", res.host_key);
	else if (res.checkpoints)
		printf("host key: %s (given): checkpoints signed by this "
		       "host\n", res.host_key);
	else
		printf("host key: %s (given): no checkpoint yet to check it "
		       "against\n", res.host_key);
	return 0;
}

/* ---- show and export --------------------------------------------------------- */

static int show_one(const struct audit_record *r, void *ctx)
{
	const struct options *o = ctx;
	char who[64], what[64], bytes[32];

	if (!selected(o, r))
		return 0;
	if (r->uid >= 0)
		snprintf(who, sizeof(who), "%s(%lld)", dash(r->user),
			 (long long)r->uid);
	else
		snprintf(who, sizeof(who), "-");
	snprintf(what, sizeof(what), "%s%s%s", r->event,
		 r->decision ? " " : "", r->decision ? r->decision : "");
	if (r->bytes >= 0)
		snprintf(bytes, sizeof(bytes), "%lld", (long long)r->bytes);
	else
		snprintf(bytes, sizeof(bytes), "-");
	printf("%-7llu %-24s %-18s %-16s %-14s %-28s %10s  %s%s%s\n",
	       (unsigned long long)r->seq, dash(r->time), what, who,
	       dash(r->dataset), dash(r->file), bytes,
	       dash(r->reason), r->errno_name ? " " : "",
	       r->errno_name ? r->errno_name : "");
	return 0;
}

static int cmd_show(const struct options *o)
{
	int r;

	printf("%-7s %-24s %-18s %-16s %-14s %-28s %10s  %s\n", "SEQ", "TIME",
	       "EVENT", "USER", "DATASET", "FILE", "BYTES", "REASON");
	r = audit_foreach(o->logs, o->nlogs, show_one, (void *)o);
	if (r < 0) {
		fprintf(stderr, PROG ": %s\n", strerror(-r));
		return EXIT_IO;
	}
	return 0;
}

static void csv_field(const char *s, bool last)
{
	const char *p;

	if (s) {
		putchar('"');
		for (p = s; *p; p++) {
			if (*p == '"')
				putchar('"');
			putchar(*p);
		}
		putchar('"');
	}
	putchar(last ? '\n' : ',');
}

static void csv_int(int64_t v)
{
	if (v >= 0)
		printf("%lld", (long long)v);
	putchar(',');
}

struct export_state {
	const struct options *o;
	bool json;
	size_t n;
};

static void json_field(const char *key, const char *s, bool last)
{
	const unsigned char *p;

	printf("\"%s\":", key);
	if (!s) {
		printf("null");
	} else {
		putchar('"');
		for (p = (const unsigned char *)s; *p; p++) {
			if (*p == '"' || *p == '\\')
				printf("\\%c", *p);
			else if (*p < 0x20)
				printf("\\u%04x", *p);
			else
				putchar(*p);
		}
		putchar('"');
	}
	if (!last)
		putchar(',');
}

static void json_int(const char *key, int64_t v)
{
	if (v >= 0)
		printf("\"%s\":%lld,", key, (long long)v);
	else
		printf("\"%s\":null,", key);
}

static int export_one(const struct audit_record *r, void *ctx)
{
	struct export_state *st = ctx;

	if (!selected(st->o, r))
		return 0;
	if (!st->json) {
		printf("%llu,", (unsigned long long)r->seq);
		csv_field(r->time, false);
		csv_field(r->event, false);
		csv_field(r->decision, false);
		csv_field(r->reason, false);
		csv_field(r->errno_name, false);
		csv_int(r->uid);
		csv_int(r->gid);
		csv_field(r->user, false);
		csv_int(r->pid);
		csv_field(r->exe, false);
		csv_field(r->dataset, false);
		csv_field(r->version, false);
		csv_field(r->file, false);
		csv_field(r->licence, false);
		csv_int(r->bytes);
		csv_int(r->duration_ms);
		csv_field(r->detail, true);
		st->n++;
		return 0;
	}
	printf("%s\n  {\"seq\":%llu,", st->n ? "," : "",
	       (unsigned long long)r->seq);
	json_field("time", r->time, false);
	json_field("event", r->event, false);
	json_field("decision", r->decision, false);
	json_field("reason", r->reason, false);
	json_field("errno", r->errno_name, false);
	json_int("uid", r->uid);
	json_int("gid", r->gid);
	json_field("user", r->user, false);
	json_int("pid", r->pid);
	json_field("exe", r->exe, false);
	json_field("dataset", r->dataset, false);
	json_field("version", r->version, false);
	json_field("file", r->file, false);
	json_field("licence", r->licence, false);
	json_int("bytes", r->bytes);
	json_int("duration_ms", r->duration_ms);
	json_field("detail", r->detail, true);
	putchar('}');
	st->n++;
	return 0;
}

static int cmd_export(const struct options *o)
{
	struct export_state st = { .o = o };
	int r;

	if (!o->format)
		return usage_error("export needs --format csv or --format json");
	if (strcmp(o->format, "csv") == 0)
		printf("seq,time,event,decision,reason,errno,uid,gid,user,pid,"
		       "exe,dataset,version,file,licence,bytes,duration_ms,"
		       "detail\n");
	else if (strcmp(o->format, "json") == 0)
		st.json = true;
	else
		return usage_error("--format must be csv or json");
	if (st.json)
		printf("[");
	r = audit_foreach(o->logs, o->nlogs, export_one, &st);
	if (st.json)
		printf("%s]\n", st.n ? "\n" : "");
	if (r < 0) {
		fprintf(stderr, PROG ": %s\n", strerror(-r));
		return EXIT_IO;
	}
	return 0;
}

/* ---- summary and report: aggregation ------------------------------------------ */

struct tally {
	char *name;
	uint64_t opens, denials, bytes;
	uint64_t *buckets;		/* report: opens per time bucket */
};

struct tallies {
	struct tally *v;
	size_t n;
};

struct agg {
	const struct options *o;
	struct tallies datasets, users, reasons;
	int64_t tmin, tmax;
	/* second pass (report): bucketing */
	int64_t bucket_s;
	size_t nbuckets;
	uint64_t *denial_buckets;
	bool oom;
};

static struct tally *tally_get(struct agg *a, struct tallies *t,
			       const char *name)
{
	struct tally *nv;
	size_t i;

	for (i = 0; i < t->n; i++)
		if (strcmp(t->v[i].name, name) == 0)
			return &t->v[i];
	nv = realloc(t->v, (t->n + 1) * sizeof(*nv));
	if (!nv) {
		a->oom = true;
		return NULL;
	}
	t->v = nv;
	memset(&t->v[t->n], 0, sizeof(*nv));
	t->v[t->n].name = strdup(name);
	if (!t->v[t->n].name) {
		a->oom = true;
		return NULL;
	}
	return &t->v[t->n++];
}

static int64_t record_time(const struct audit_record *r)
{
	char t[TIMEUTIL_RFC3339_LEN];
	int64_t v;

	if (!r->time || strlen(r->time) < 19)
		return -1;
	memcpy(t, r->time, 19);
	t[19] = 'Z';
	t[20] = '\0';
	return timeutil_parse(t, &v) == 0 ? v : -1;
}

static void user_name(const struct audit_record *r, char *buf, size_t len)
{
	if (r->user)
		snprintf(buf, len, "%s", r->user);
	else
		snprintf(buf, len, "uid %lld", (long long)r->uid);
}

static bool is_open(const struct audit_record *r)
{
	return strcmp(r->event, "open") == 0;
}

static int agg_one(const struct audit_record *r, void *ctx)
{
	struct agg *a = ctx;
	struct tally *d = NULL, *u = NULL, *why;
	bool deny = r->decision && strcmp(r->decision, "deny") == 0;
	char uname[64];
	int64_t t;

	if (!selected(a->o, r))
		return 0;
	if (!is_open(r) && strcmp(r->event, "release") != 0)
		return 0;
	if (r->dataset)
		d = tally_get(a, &a->datasets, r->dataset);
	if (r->uid >= 0) {
		user_name(r, uname, sizeof(uname));
		u = tally_get(a, &a->users, uname);
	}
	if (a->oom)
		return -ENOMEM;
	if (strcmp(r->event, "release") == 0) {
		if (r->bytes > 0) {
			if (d)
				d->bytes += (uint64_t)r->bytes;
			if (u)
				u->bytes += (uint64_t)r->bytes;
		}
		return 0;
	}
	t = record_time(r);
	if (t >= 0) {
		if (a->tmin < 0 || t < a->tmin)
			a->tmin = t;
		if (t > a->tmax)
			a->tmax = t;
	}
	if (deny) {
		why = tally_get(a, &a->reasons, r->reason ? r->reason :
				(r->errno_name ? r->errno_name : "unknown"));
		if (!why)
			return -ENOMEM;
		why->denials++;
		if (d)
			d->denials++;
		if (u)
			u->denials++;
	} else {
		if (d)
			d->opens++;
		if (u)
			u->opens++;
	}
	return 0;
}

/* Second pass of the report: opens per bucket per dataset and user. */
static int bucket_one(const struct audit_record *r, void *ctx)
{
	struct agg *a = ctx;
	struct tally *tl;
	char uname[64];
	int64_t t;
	size_t b;

	if (!selected(a->o, r) || !is_open(r))
		return 0;
	t = record_time(r);
	if (t < 0)
		return 0;
	b = (size_t)((t - a->tmin) / a->bucket_s);
	if (b >= a->nbuckets)
		b = a->nbuckets - 1;
	if (r->decision && strcmp(r->decision, "deny") == 0) {
		a->denial_buckets[b]++;
		return 0;
	}
	if (r->dataset) {
		tl = tally_get(a, &a->datasets, r->dataset);
		if (tl && tl->buckets)
			tl->buckets[b]++;
	}
	if (r->uid >= 0) {
		user_name(r, uname, sizeof(uname));
		tl = tally_get(a, &a->users, uname);
		if (tl && tl->buckets)
			tl->buckets[b]++;
	}
	return 0;
}

static void tallies_free(struct tallies *t)
{
	size_t i;

	for (i = 0; i < t->n; i++) {
		free(t->v[i].name);
		free(t->v[i].buckets);
	}
	free(t->v);
	t->v = NULL;
	t->n = 0;
}

static void agg_free(struct agg *a)
{
	tallies_free(&a->datasets);
	tallies_free(&a->users);
	tallies_free(&a->reasons);
	free(a->denial_buckets);
}

static int collect(const struct options *o, struct agg *a)
{
	int r;

	memset(a, 0, sizeof(*a));
	a->o = o;
	a->tmin = -1;
	r = audit_foreach(o->logs, o->nlogs, agg_one, a);
	if (r < 0) {
		fprintf(stderr, PROG ": %s\n", strerror(-r));
		agg_free(a);
		return EXIT_IO;
	}
	return 0;
}

static void print_tallies(const char *title, const struct tallies *t)
{
	size_t i;

	printf("%-32s %10s %10s %16s\n", title, "opens", "denials", "bytes");
	for (i = 0; i < t->n; i++)
		printf("%-32s %10llu %10llu %16llu\n", t->v[i].name,
		       (unsigned long long)t->v[i].opens,
		       (unsigned long long)t->v[i].denials,
		       (unsigned long long)t->v[i].bytes);
}

static int cmd_summary(const struct options *o)
{
	struct agg a;
	int r;

	r = collect(o, &a);
	if (r)
		return r;
	print_tallies("dataset", &a.datasets);
	printf("\n");
	print_tallies("user", &a.users);
	agg_free(&a);
	return 0;
}

/* ---- report -------------------------------------------------------------------- */

static const char *const palette[] = {
	"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
	"#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
};
#define NPAL	(sizeof(palette) / sizeof(palette[0]))

static void html_text(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		default: fputc(*s, f);
		}
	}
}

/* Lines of opens per bucket, one per tally, with a legend. */
static void svg_lines(FILE *f, const struct agg *a, const struct tallies *t,
		      const char *title)
{
	const int W = 760, H = 260, L = 50, B = 30, T = 20;
	uint64_t max = 1;
	char when[TIMEUTIL_RFC3339_LEN];
	size_t i, b;
	double x, y;

	for (i = 0; i < t->n; i++)
		for (b = 0; b < a->nbuckets; b++)
			if (t->v[i].buckets && t->v[i].buckets[b] > max)
				max = t->v[i].buckets[b];
	fprintf(f, "<h2>");
	html_text(f, title);
	fprintf(f, "</h2>\n<svg width=\"%d\" height=\"%d\" "
		"xmlns=\"http://www.w3.org/2000/svg\" role=\"img\">\n",
		W + 200, H);
	fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" "
		"stroke=\"#333\"/>\n", L, H - B, W, H - B);
	fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" "
		"stroke=\"#333\"/>\n", L, T, L, H - B);
	fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\" "
		"text-anchor=\"end\">%llu</text>\n", L - 4, T + 4,
		(unsigned long long)max);
	fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\" "
		"text-anchor=\"end\">0</text>\n", L - 4, H - B);
	timeutil_format(a->tmin, when);
	fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\">%s</text>\n", L,
		H - 8, when);
	timeutil_format(a->tmin + a->bucket_s * (int64_t)a->nbuckets, when);
	fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\" "
		"text-anchor=\"end\">%s</text>\n", W, H - 8, when);
	for (i = 0; i < t->n; i++) {
		if (!t->v[i].buckets)
			continue;
		fprintf(f, "<polyline fill=\"none\" stroke-width=\"2\" "
			"stroke=\"%s\" points=\"", palette[i % NPAL]);
		for (b = 0; b < a->nbuckets; b++) {
			x = L + (double)(W - L) * ((double)b + 0.5) /
			    (double)a->nbuckets;
			y = (double)(H - B) - (double)(H - B - T) *
			    (double)t->v[i].buckets[b] / (double)max;
			fprintf(f, "%.1f,%.1f ", x, y);
		}
		fprintf(f, "\"/>\n");
		fprintf(f, "<rect x=\"%d\" y=\"%zu\" width=\"12\" height=\"12\" "
			"fill=\"%s\"/><text x=\"%d\" y=\"%zu\" "
			"font-size=\"12\">", W + 20, T + i * 18,
			palette[i % NPAL], W + 38, T + i * 18 + 11);
		html_text(f, t->v[i].name);
		fprintf(f, "</text>\n");
	}
	fprintf(f, "</svg>\n");
}

/* Horizontal bars of one count per tally. */
static void svg_bars(FILE *f, const struct tallies *t, bool denials,
		     const char *title, const char *color)
{
	const int W = 760, L = 220, ROW = 22;
	uint64_t max = 1, v;
	size_t i;
	double w;

	for (i = 0; i < t->n; i++) {
		v = denials ? t->v[i].denials : t->v[i].opens;
		if (v > max)
			max = v;
	}
	fprintf(f, "<h2>");
	html_text(f, title);
	fprintf(f, "</h2>\n");
	if (t->n == 0) {
		fprintf(f, "<p>None.</p>\n");
		return;
	}
	fprintf(f, "<svg width=\"%d\" height=\"%zu\" "
		"xmlns=\"http://www.w3.org/2000/svg\" role=\"img\">\n", W + 80,
		t->n * ROW + 10);
	for (i = 0; i < t->n; i++) {
		v = denials ? t->v[i].denials : t->v[i].opens;
		w = (double)(W - L) * (double)v / (double)max;
		fprintf(f, "<text x=\"%d\" y=\"%zu\" font-size=\"12\" "
			"text-anchor=\"end\">", L - 6, i * ROW + 16);
		html_text(f, t->v[i].name);
		fprintf(f, "</text><rect x=\"%d\" y=\"%zu\" width=\"%.1f\" "
			"height=\"16\" fill=\"%s\"/><text x=\"%.1f\" y=\"%zu\" "
			"font-size=\"12\">%llu</text>\n", L, i * ROW + 4, w,
			color, L + w + 4, i * ROW + 16,
			(unsigned long long)v);
	}
	fprintf(f, "</svg>\n");
}

static void html_table(FILE *f, const char *title, const struct tallies *t)
{
	size_t i;

	fprintf(f, "<table><tr><th>");
	html_text(f, title);
	fprintf(f, "</th><th>opens</th><th>denials</th><th>bytes</th></tr>\n");
	for (i = 0; i < t->n; i++) {
		fprintf(f, "<tr><td>");
		html_text(f, t->v[i].name);
		fprintf(f, "</td><td>%llu</td><td>%llu</td><td>%llu</td>"
			"</tr>\n", (unsigned long long)t->v[i].opens,
			(unsigned long long)t->v[i].denials,
			(unsigned long long)t->v[i].bytes);
	}
	fprintf(f, "</table>\n");
}

static int alloc_buckets(struct agg *a)
{
	struct tallies *sets[2] = { &a->datasets, &a->users };
	int64_t span = a->tmax - a->tmin + 1;
	static const int64_t steps[] = { 1, 10, 60, 600, 3600, 21600, 86400,
					 604800 };
	size_t i, k;

	a->bucket_s = steps[0];
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		a->bucket_s = steps[i];
		if (span / steps[i] <= 60)
			break;
	}
	while (span / a->bucket_s > 60)
		a->bucket_s *= 2;
	a->nbuckets = (size_t)(span / a->bucket_s) + 1;
	a->denial_buckets = calloc(a->nbuckets, sizeof(uint64_t));
	if (!a->denial_buckets)
		return -ENOMEM;
	for (k = 0; k < 2; k++)
		for (i = 0; i < sets[k]->n; i++) {
			sets[k]->v[i].buckets = calloc(a->nbuckets,
						       sizeof(uint64_t));
			if (!sets[k]->v[i].buckets)
				return -ENOMEM;
		}
	return 0;
}

static int cmd_report(const struct options *o)
{
	struct tallies deny = { 0 };
	struct tally dt = { .name = (char *)"denied opens" };
	char when[TIMEUTIL_RFC3339_LEN];
	struct agg a;
	FILE *f;
	size_t i;
	int r;

	if (!o->out)
		return usage_error("report needs -o FILE.html");
	r = collect(o, &a);
	if (r)
		return r;
	if (a.tmin >= 0) {
		if (alloc_buckets(&a) < 0 ||
		    audit_foreach(o->logs, o->nlogs, bucket_one, &a) < 0) {
			fprintf(stderr, PROG ": out of memory\n");
			agg_free(&a);
			return EXIT_IO;
		}
	}
	f = fopen(o->out, "we");
	if (!f) {
		fprintf(stderr, PROG ": %s: %s\n", o->out, strerror(errno));
		agg_free(&a);
		return EXIT_IO;
	}
	fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head>"
		"<meta charset=\"utf-8\"><title>marketfs access report"
		"</title>\n<style>body{font-family:sans-serif;margin:2em;"
		"color:#222}table{border-collapse:collapse;margin:1em 0}"
		"td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
		"td:first-child,th:first-child{text-align:left}"
		"svg{background:#fafafa;border:1px solid #eee}</style>"
		"</head><body>\n<h1>marketfs access report</h1>\n<p>");
	for (i = 0; i < o->nlogs; i++) {
		html_text(f, o->logs[i]);
		fputs(i + 1 < o->nlogs ? ", " : "", f);
	}
	if (a.tmin >= 0) {
		timeutil_format(a.tmin, when);
		fprintf(f, "<br>from %s", when);
		timeutil_format(a.tmax, when);
		fprintf(f, " to %s", when);
	}
	fprintf(f, "</p>\n");
	if (a.tmin >= 0) {
		svg_lines(f, &a, &a.datasets,
			  "Opens over time, per dataset");
		svg_lines(f, &a, &a.users, "Opens over time, per user");
		dt.buckets = a.denial_buckets;
		deny.v = &dt;
		deny.n = 1;
		svg_lines(f, &a, &deny, "Denied opens over time");
	} else {
		fprintf(f, "<p>No opens in these records.</p>\n");
	}
	svg_bars(f, &a.users, false, "Opens per user", "#1f77b4");
	svg_bars(f, &a.reasons, true, "Denials by reason", "#d62728");
	fprintf(f, "<h2>Summary</h2>\n");
	html_table(f, "dataset", &a.datasets);
	html_table(f, "user", &a.users);
	fprintf(f, "</body></html>\n");
	agg_free(&a);
	if (fclose(f) != 0) {
		fprintf(stderr, PROG ": %s: %s\n", o->out, strerror(errno));
		return EXIT_IO;
	}
	return 0;
}

/* ---- key ---------------------------------------------------------------------- */

static int cmd_key(const struct options *o)
{
	uint8_t sk[32], pk[32];
	char hex[ALOG_KEY_HEX];
	int r;

	if (o->nlogs != 1)
		return usage_error("key takes one HOST-KEY-FILE");
	r = alog_host_key_load(o->logs[0], 0, sk, pk);
	cipher_wipe(sk, sizeof(sk));
	if (r < 0) {
		fprintf(stderr, PROG ": %s: %s\n", o->logs[0],
			r == -EINVAL ? "not a host key file" : strerror(-r));
		return EXIT_IO;
	}
	cipher_hex(pk, sizeof(pk), hex);
	printf("%s\n", hex);
	return 0;
}

/* ---- why ---------------------------------------------------------------- */

struct why_state {
	const struct options *o;
	char *time, *user, *exe, *dataset, *file, *decision, *reason;
	char *errno_name, *detail, *licence;
	int64_t uid, pid;
	uint64_t seq;
	size_t seen;
};

static void why_set(char **dst, const char *src)
{
	free(*dst);
	*dst = src ? strdup(src) : NULL;
}

static int why_one(const struct audit_record *r, void *ctx)
{
	struct why_state *w = ctx;

	if (!r->event || strcmp(r->event, "open") != 0 ||
	    !selected(w->o, r))
		return 0;
	w->seen++;
	w->seq = r->seq;
	w->uid = r->uid;
	w->pid = r->pid;
	why_set(&w->time, r->time);
	why_set(&w->user, r->user);
	why_set(&w->exe, r->exe);
	why_set(&w->dataset, r->dataset);
	why_set(&w->file, r->file);
	why_set(&w->decision, r->decision);
	why_set(&w->reason, r->reason);
	why_set(&w->errno_name, r->errno_name);
	why_set(&w->detail, r->detail);
	why_set(&w->licence, r->licence);
	return 0;
}

/*
 * Take "DATASET/FILE" in path as the dataset and the file of o; the
 * copy it cuts is returned in *ret_split.  -ENOENT without a '/'.
 */
static int split_dataset(struct options *o, const char *path,
			 char **ret_split)
{
	char *split, *slash;

	split = strdup(path);
	if (!split)
		return -ENOMEM;
	slash = strchr(split, '/');
	if (!slash) {
		free(split);
		return -ENOENT;
	}
	*slash = '\0';
	o->dataset = split;
	o->file = slash + 1;
	*ret_split = split;
	return 0;
}

static int cmd_why(struct options *o)
{
	struct why_state w = { .o = o };
	char *split = NULL;
	bool mount_path;
	const char *p;
	int r, status = 0;

	if (!o->file)
		return usage_error("why needs --file PATH");
	/* A path through the mount names its dataset too. */
	p = strstr(o->file, "datasets/");
	mount_path = p && (p == o->file || p[-1] == '/');
	if (mount_path &&
	    split_dataset(o, p + strlen("datasets/"), &split) == -ENOMEM)
		return EXIT_IO;

	r = audit_foreach(o->logs, o->nlogs, why_one, &w);
	/* Nothing inside a dataset by that path: try DATASET/FILE. */
	if (r >= 0 && w.seen == 0 && !mount_path && !o->dataset) {
		r = split_dataset(o, o->file, &split);
		if (r == -ENOMEM)
			return EXIT_IO;
		r = r == 0 ? audit_foreach(o->logs, o->nlogs, why_one, &w) : 0;
	}
	if (r < 0) {
		fprintf(stderr, PROG ": %s\n", strerror(-r));
		status = EXIT_IO;
	} else if (w.seen == 0) {
		printf("no open of '%s'%s%s%s%s in these logs\n", o->file,
		       o->dataset ? " in dataset " : "",
		       o->dataset ? o->dataset : "",
		       o->user ? " by " : "", o->user ? o->user : "");
		status = 1;
	} else {
		printf("%s: %s (uid %lld, pid %lld, %s) opening '%s' in "
		       "dataset %s\n", dash(w.time), dash(w.user),
		       (long long)w.uid, (long long)w.pid, dash(w.exe),
		       dash(w.file), dash(w.dataset));
		if (w.decision && strcmp(w.decision, "allow") == 0)
			printf("  allowed: %s\n", dash(w.reason));
		else
			printf("  REFUSED (%s): %s\n", dash(w.errno_name),
			       dash(w.reason));
		if (w.detail)
			printf("  %s\n", w.detail);
		printf("  licence %s; record seq %llu (%zu matching opens)\n",
		       dash(w.licence), (unsigned long long)w.seq, w.seen);
	}
	free(w.time); free(w.user); free(w.exe); free(w.dataset);
	free(w.file); free(w.decision); free(w.reason); free(w.errno_name);
	free(w.detail); free(w.licence);
	free(split);
	return status;
}

/* ---- main ------------------------------------------------------------------------ */

/* The 12-digit sequence suffix of a rotated file, or -1. */
static long long rotated_seq(const char *path)
{
	const char *dot = strrchr(path, '.');
	size_t i;

	if (!dot || strlen(dot + 1) != 12)
		return -1;
	for (i = 1; i <= 12; i++)
		if (dot[i] < '0' || dot[i] > '9')
			return -1;
	return atoll(dot + 1);
}

static int log_order(const void *a, const void *b)
{
	long long x = rotated_seq(*(const char *const *)a);
	long long y = rotated_seq(*(const char *const *)b);

	/* Rotated files first, oldest first; the current ones after. */
	if (x >= 0 && y >= 0)
		return x < y ? -1 : x > y;
	if (x >= 0 || y >= 0)
		return x >= 0 ? -1 : 1;
	return 0;
}

/*
 * "access.log*" from a shell also names the witness spool and comes out
 * with the current file first: keep the logs only, in the log's order.
 */
static void order_logs(struct options *o)
{
	size_t i, n = 0;

	for (i = 0; i < o->nlogs; i++) {
		size_t l = strlen(o->logs[i]);

		if (l > 8 && strcmp(o->logs[i] + l - 8, ".witness") == 0)
			continue;
		o->logs[n++] = o->logs[i];
	}
	o->nlogs = n;
	/* qsort is not stable: sort the rotated files apart, then append
	 * the others in the order given. */
	if (n > 1) {
		const char **v = malloc(n * sizeof(*v));
		size_t k = 0, j;

		if (!v)
			return;
		for (j = 0; j < n; j++)
			if (rotated_seq(o->logs[j]) >= 0)
				v[k++] = o->logs[j];
		qsort(v, k, sizeof(*v), log_order);
		for (j = 0; j < n; j++)
			if (rotated_seq(o->logs[j]) < 0)
				v[k++] = o->logs[j];
		memcpy(o->logs, v, n * sizeof(*v));
		free(v);
	}
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "since", required_argument, NULL, OPT_SINCE },
		{ "until", required_argument, NULL, OPT_UNTIL },
		{ "user", required_argument, NULL, OPT_USER },
		{ "dataset", required_argument, NULL, OPT_DATASET },
		{ "file", required_argument, NULL, OPT_FILE },
		{ "denied", no_argument, NULL, OPT_DENIED },
		{ "key", required_argument, NULL, OPT_KEY },
		{ "witness", required_argument, NULL, OPT_WITNESS },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	char msg[256];
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":o:hV", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_SINCE: o->since = optarg; break;
		case OPT_UNTIL: o->until = optarg; break;
		case OPT_USER: o->user = optarg; break;
		case OPT_DATASET: o->dataset = optarg; break;
		case OPT_FILE: o->file = optarg; break;
		case OPT_DENIED: o->denied = 1; break;
		case OPT_KEY: o->key = optarg; break;
		case OPT_WITNESS: o->witness = optarg; break;
		case OPT_FORMAT: o->format = optarg; break;
		case 'o': o->out = optarg; break;
		case 'h':
			print_help();
			return 1;
		case 'V':
			printf(PROG " %s\n", MARKETFS_VERSION);
			return 1;
		case ':':
			snprintf(msg, sizeof(msg), "option '%s' needs a value",
				 argv[optind - 1]);
			return -usage_error(msg);
		default:
			snprintf(msg, sizeof(msg), "unknown option '%s'",
				 argv[optind - 1]);
			return -usage_error(msg);
		}
	}
	if (optind >= argc)
		return -usage_error("missing command");
	o->cmd = argv[optind++];
	if (optind >= argc)
		return -usage_error("missing LOG file");
	o->logs = (const char **)(argv + optind);
	o->nlogs = (size_t)(argc - optind);
	order_logs(o);
	if (o->nlogs == 0)
		return -usage_error("missing LOG file");
	return 0;
}

int main(int argc, char **argv)
{
	struct options o = { 0 };
	char msg[128];
	int r;

	r = parse_options(argc, argv, &o);
	if (r)
		return r > 0 ? 0 : -r;
	if (strcmp(o.cmd, "verify") == 0)
		return cmd_verify(&o);
	if (o.key || o.witness)
		return usage_error("--key and --witness are for verify");
	if (strcmp(o.cmd, "show") == 0)
		return cmd_show(&o);
	if (strcmp(o.cmd, "summary") == 0)
		return cmd_summary(&o);
	if (strcmp(o.cmd, "export") == 0)
		return cmd_export(&o);
	if (strcmp(o.cmd, "report") == 0)
		return cmd_report(&o);
	if (strcmp(o.cmd, "key") == 0)
		return cmd_key(&o);
	if (strcmp(o.cmd, "why") == 0)
		return cmd_why(&o);
	snprintf(msg, sizeof(msg), "unknown command '%.60s'", o.cmd);
	return usage_error(msg);
}
