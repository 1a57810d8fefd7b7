/*
 * audit.c - reading access logs back (alog.h's format).
 *
 * Verification walks every line of every file in order and keeps the
 * first problem:
 *
 * - Each line must be a record in the exact form alog.c writes: it ends
 *   with ,"hash":"<hex>"} where hex is the SHA-256 of what comes before
 *   (so a line checks itself, even the last one), it parses as a JSON
 *   object with every key in the fixed order, and dumping it again gives
 *   the same bytes.
 * - Its "prev" must be the hash of the line before, and its seq the one
 *   after the previous record's.  The first line of the first file
 *   starts a chain (prev all zeros) or continues a rotated file
 *   ("log-start"); the first line of each next file must continue the
 *   last line of the one before.
 * - A line that is not a record is accepted only when the very next
 *   line is a "recovered" record whose prev is that line's hash: that is
 *   how the daemon marks a write torn by a crash.
 * - A checkpoint must be signed by the host key (given, or the one the
 *   log recorded first) over alog_checkpoint_text(), and its count must
 *   be the number of lines before it in its file.
 *
 * When the chain breaks, the seqs of all lines (collected in a first
 * pass) tell a deletion from a reordering or an insertion.
 */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alog.h"
#include "audit.h"
#include "cipher.h"
#include "util.h"

#define NKEYS	23

static const char *const record_keys[NKEYS] = {
	"seq", "time", "event", "decision", "reason", "errno", "uid", "gid",
	"user", "pid", "exe", "dataset", "version", "file", "licence",
	"bytes", "duration_ms", "detail", "host_key", "count", "sig",
	"prev", "hash",
};

static const char zero_hash[ALOG_HASH_HEX] =
	"0000000000000000000000000000000000000000000000000000000000000000";

const char *audit_problem_name(enum audit_problem p)
{
	switch (p) {
	case AUDIT_INTACT:		return "intact";
	case AUDIT_EDITED:		return "edited";
	case AUDIT_INSERTED:		return "inserted";
	case AUDIT_DELETED:		return "deleted";
	case AUDIT_REORDERED:		return "reordered";
	case AUDIT_BAD_SIGNATURE:	return "bad checkpoint signature";
	case AUDIT_WRONG_KEY:		return "wrong host key";
	case AUDIT_TORN:		return "torn";
	case AUDIT_ROLLED_BACK:		return "rolled back";
	}
	return "?";
}

static bool is_lower_hex(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[len] == '\0';
}

int audit_parse_key(const char *hex, uint8_t ret_pk[32])
{
	uint8_t pk[32];
	size_t i;
	int hi, lo;

	if (!hex || strlen(hex) != 64)
		return -EINVAL;
	for (i = 0; i < 32; i++) {
		hi = hex[2 * i];
		lo = hex[2 * i + 1];
		hi = hi >= '0' && hi <= '9' ? hi - '0' :
		     hi >= 'a' && hi <= 'f' ? hi - 'a' + 10 :
		     hi >= 'A' && hi <= 'F' ? hi - 'A' + 10 : -1;
		lo = lo >= '0' && lo <= '9' ? lo - '0' :
		     lo >= 'a' && lo <= 'f' ? lo - 'a' + 10 :
		     lo >= 'A' && lo <= 'F' ? lo - 'A' + 10 : -1;
		if (hi < 0 || lo < 0)
			return -EINVAL;
		pk[i] = (uint8_t)(hi << 4 | lo);
	}
	memcpy(ret_pk, pk, 32);
	return 0;
}

/* ---- one line ---------------------------------------------------------- */

/* A record as verification needs it; strings point into obj. */
struct vrec {
	json_t *obj;
	uint64_t seq;
	const char *time, *event, *reason, *prev, *host_key, *sig;
	int64_t count;			/* -1: null */
};

static const char *str_or_null(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/*
 * Is line[0..len) a record exactly as alog.c writes it?  0 and rec
 * filled (json_decref(rec->obj) after), or -EBADMSG with why.
 */
static int check_line(const char *line, size_t len, struct vrec *rec,
		      char *why, size_t whylen)
{
	char hash[ALOG_HASH_HEX];
	json_error_t jerr;
	const char *key, *tail;
	json_t *o, *v;
	char *again;
	size_t i;
	void *it;

	memset(rec, 0, sizeof(*rec));
	if (len > ALOG_LINE_MAX) {
		snprintf(why, whylen, "longer than any record");
		return -EBADMSG;
	}
	if (len < ALOG_HASH_SUFFIX_LEN + 2) {
		snprintf(why, whylen, "too short to be a record");
		return -EBADMSG;
	}
	tail = line + len - ALOG_HASH_SUFFIX_LEN;
	if (memcmp(tail, ",\"hash\":\"", 9) != 0 ||
	    memcmp(line + len - 2, "\"}", 2) != 0) {
		snprintf(why, whylen, "does not end with its hash");
		return -EBADMSG;
	}
	alog_hash_hex(line, len - ALOG_HASH_SUFFIX_LEN, hash);
	if (memcmp(tail + 9, hash, 64) != 0) {
		snprintf(why, whylen, "does not match its own hash");
		return -EBADMSG;
	}

	o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o || !json_is_object(o) || json_object_size(o) != NKEYS) {
		snprintf(why, whylen, "not a record: %.80s",
			 o ? "wrong keys" : jerr.text);
		json_decref(o);
		return -EBADMSG;
	}
	for (i = 0, it = json_object_iter(o); it && i < NKEYS;
	     i++, it = json_object_iter_next(o, it)) {
		key = json_object_iter_key(it);
		if (strcmp(key, record_keys[i]) != 0)
			break;
	}
	if (i != NKEYS) {
		snprintf(why, whylen, "keys out of order");
		json_decref(o);
		return -EBADMSG;
	}
	again = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!again || strlen(again) != len || memcmp(again, line, len) != 0) {
		snprintf(why, whylen, "not in the form the daemon writes");
		free(again);
		json_decref(o);
		return -EBADMSG;
	}
	free(again);

	rec->obj = o;
	v = json_object_get(o, "seq");
	rec->seq = json_is_integer(v) && json_integer_value(v) > 0 ?
		   (uint64_t)json_integer_value(v) : 0;
	rec->time = str_or_null(o, "time");
	rec->event = str_or_null(o, "event");
	rec->reason = str_or_null(o, "reason");
	rec->prev = str_or_null(o, "prev");
	rec->host_key = str_or_null(o, "host_key");
	rec->sig = str_or_null(o, "sig");
	v = json_object_get(o, "count");
	rec->count = json_is_integer(v) ? json_integer_value(v) : -1;
	if (!rec->seq || !rec->time || !rec->event || !rec->prev ||
	    !is_lower_hex(rec->prev, 64) ||
	    (rec->host_key && !is_lower_hex(rec->host_key, 64)) ||
	    (rec->sig && !is_lower_hex(rec->sig, 128)) ||
	    (!json_is_null(v) && rec->count < 0)) {
		snprintf(why, whylen, "a field has the wrong type or form");
		json_decref(o);
		rec->obj = NULL;
		return -EBADMSG;
	}
	return 0;
}

/* ---- whole files --------------------------------------------------------- */

struct file_buf {
	char *buf;
	size_t len;
};

static int load(const char *path, struct file_buf *f)
{
	return util_read_file(path, AUDIT_FILE_MAX, &f->buf, &f->len);
}

/* The seq a line claims, read cheaply (0 when none). */
static uint64_t quick_seq(const char *line, size_t len)
{
	uint64_t v = 0;
	size_t i;

	if (len < 8 || memcmp(line, "{\"seq\":", 7) != 0)
		return 0;
	for (i = 7; i < len && line[i] >= '0' && line[i] <= '9' && i < 27;
	     i++)
		v = v * 10 + (uint64_t)(line[i] - '0');
	return v;
}

/* Every line's claimed seq, over all files (first pass). */
struct seqs {
	uint64_t *v;
	uint8_t (*h)[CIPHER_SHA256_LEN];	/* each line's hash */
	size_t n, cap;
};

static int seqs_add(struct seqs *s, uint64_t seq, const char *line,
		    size_t len)
{
	void *nv, *nh;
	size_t cap;

	if (s->n == s->cap) {
		cap = s->cap ? s->cap * 2 : 1024;
		nv = realloc(s->v, cap * sizeof(*s->v));
		if (!nv)
			return -ENOMEM;
		s->v = nv;
		nh = realloc(s->h, cap * sizeof(*s->h));
		if (!nh)
			return -ENOMEM;
		s->h = nh;
		s->cap = cap;
	}
	s->v[s->n] = seq;
	if (cipher_sha256(line, len, s->h[s->n]) < 0)
		return -EIO;
	s->n++;
	return 0;
}

static int collect_seqs(const char *const *paths, size_t n, struct seqs *s,
			struct audit_result *res)
{
	struct file_buf f;
	size_t i, off, len;
	const char *nl;
	int r;

	for (i = 0; i < n; i++) {
		memset(&f, 0, sizeof(f));
		r = load(paths[i], &f);
		if (r < 0) {
			res->file = paths[i];
			return r;
		}
		for (off = 0; off < f.len; off += len + 1) {
			nl = memchr(f.buf + off, '\n', f.len - off);
			len = nl ? (size_t)(nl - (f.buf + off)) : f.len - off;
			r = seqs_add(s, quick_seq(f.buf + off, len),
				     f.buf + off, len);
			if (r < 0) {
				free(f.buf);
				return r;
			}
		}
		free(f.buf);
	}
	return 0;
}

/* ---- the walk --------------------------------------------------------------- */

struct walk {
	struct audit_result *res;
	struct seqs seqs;
	size_t g;			/* global index of the current line */
	char expect_prev[ALOG_HASH_HEX];	/* "" when unknown */
	uint64_t expect_seq;		/* 0 when unknown */
	const char *prev_file;		/* of the line before */
	uint64_t prev_line;
	uint64_t prev_seq;
	bool key_known;
	uint8_t pk[32];
	/* a line that is not a record, waiting for its "recovered" */
	bool pending;
	const char *pending_file;
	uint64_t pending_line;
	uint64_t pending_seq;		/* the seq it claims, if any */
	char pending_why[128];
	/* checkpoints seen: seq and sig, for the witness */
	uint64_t *ck_seq;
	char (*ck_sig)[ALOG_SIG_HEX];
	size_t ck_n, ck_cap;
};

static void problem(struct walk *w, enum audit_problem p, const char *file,
		    uint64_t line, uint64_t seq, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

static void problem(struct walk *w, enum audit_problem p, const char *file,
		    uint64_t line, uint64_t seq, const char *fmt, ...)
{
	va_list ap;

	if (w->res->problem != AUDIT_INTACT)
		return;
	w->res->problem = p;
	w->res->file = file;
	w->res->line = line;
	w->res->seq = seq;
	va_start(ap, fmt);
	vsnprintf(w->res->what, sizeof(w->res->what), fmt, ap);
	va_end(ap);
}

static bool seen_seq(const struct walk *w, uint64_t seq, size_t from,
		     size_t to, size_t *ret_idx)
{
	size_t i;

	for (i = from; i < to; i++)
		if (w->seqs.v[i] == seq) {
			if (ret_idx)
				*ret_idx = i;
			return true;
		}
	return false;
}

/* The chain breaks at a valid record: say what most likely happened. */
static void classify(struct walk *w, const struct vrec *rec,
		     const char *file, uint64_t line)
{
	uint64_t s = rec->seq, e = w->expect_seq;
	size_t k;

	if (e && s > e) {
		if (seen_seq(w, e, w->g + 1, w->seqs.n, NULL))
			problem(w, AUDIT_REORDERED, file, line, s,
				"record seq %llu comes before seq %llu",
				(unsigned long long)s, (unsigned long long)e);
		else
			problem(w, AUDIT_DELETED, file, line, s,
				"records seq %llu to %llu are missing before "
				"this one", (unsigned long long)e,
				(unsigned long long)(s - 1));
		return;
	}
	if (e && s < e) {
		if (seen_seq(w, s, 0, w->g, &k) &&
		    memcmp(w->seqs.h[k], w->seqs.h[w->g],
			   CIPHER_SHA256_LEN) == 0)
			problem(w, AUDIT_INSERTED, file, line, s,
				"a copy of record seq %llu was inserted",
				(unsigned long long)s);
		else if (seen_seq(w, s, 0, w->g, NULL))
			problem(w, AUDIT_INSERTED, file, line, s,
				"seq %llu appears twice: a record was "
				"inserted", (unsigned long long)s);
		else
			problem(w, AUDIT_REORDERED, file, line, s,
				"record seq %llu comes after seq %llu",
				(unsigned long long)s,
				(unsigned long long)(e - 1));
		return;
	}
	if (w->prev_line == 0 || w->prev_file != file) {
		problem(w, AUDIT_REORDERED, file, line, s,
			"this file does not continue %s (files out of "
			"order, or one between them missing?)",
			w->prev_file ? w->prev_file : "the one before");
		return;
	}
	/* Same seq as expected but another prev: the line before changed
	 * (and its own hash was recomputed). */
	problem(w, AUDIT_EDITED, w->prev_file, w->prev_line, w->prev_seq,
		"record seq %llu does not match the hash that the next "
		"record (seq %llu) holds for it",
		(unsigned long long)w->prev_seq, (unsigned long long)s);
}

static int note_checkpoint(struct walk *w, const struct vrec *rec)
{
	void *ns, *nsig;
	size_t cap;

	if (w->ck_n == w->ck_cap) {
		cap = w->ck_cap ? w->ck_cap * 2 : 64;
		ns = realloc(w->ck_seq, cap * sizeof(*w->ck_seq));
		if (!ns)
			return -ENOMEM;
		w->ck_seq = ns;
		nsig = realloc(w->ck_sig, cap * sizeof(*w->ck_sig));
		if (!nsig)
			return -ENOMEM;
		w->ck_sig = nsig;
		w->ck_cap = cap;
	}
	w->ck_seq[w->ck_n] = rec->seq;
	memcpy(w->ck_sig[w->ck_n], rec->sig, ALOG_SIG_HEX);
	w->ck_n++;
	return 0;
}

static int take_key(struct walk *w, const char *hex, const char *file,
		    uint64_t line, uint64_t seq)
{
	uint8_t pk[32];

	if (audit_parse_key(hex, pk) < 0)
		return -EINVAL;
	if (!w->key_known) {
		memcpy(w->pk, pk, 32);
		w->key_known = true;
		snprintf(w->res->host_key, sizeof(w->res->host_key), "%s",
			 hex);
		return 0;
	}
	if (!cipher_memeq(pk, w->pk, 32)) {
		problem(w, AUDIT_WRONG_KEY, file, line, seq,
			"names host key %.16s..., not the expected %.16s...",
			hex, w->res->host_key);
		return -EKEYREJECTED;
	}
	return 0;
}

/* Checkpoint checks: key, signature, count. */
static void check_checkpoint(struct walk *w, const struct vrec *rec,
			     const char *file, uint64_t line)
{
	char text[512];
	uint8_t sig[CIPHER_SIG_LEN];
	size_t i;

	if (!rec->host_key || !rec->sig || rec->count < 0) {
		problem(w, AUDIT_BAD_SIGNATURE, file, line, rec->seq,
			"checkpoint without key, signature or count");
		return;
	}
	if (take_key(w, rec->host_key, file, line, rec->seq) < 0)
		return;
	for (i = 0; i < CIPHER_SIG_LEN; i++) {
		unsigned int b;

		if (sscanf(rec->sig + 2 * i, "%2x", &b) != 1)
			break;
		sig[i] = (uint8_t)b;
	}
	if (i != CIPHER_SIG_LEN ||
	    alog_checkpoint_text(rec->host_key, rec->seq, rec->time,
				 rec->prev, (uint64_t)rec->count, text,
				 sizeof(text)) < 0 ||
	    cipher_ed25519_verify(w->pk, text, strlen(text), sig) < 0) {
		problem(w, AUDIT_BAD_SIGNATURE, file, line, rec->seq,
			"the checkpoint's signature does not verify");
		return;
	}
	if ((uint64_t)rec->count != line - 1) {
		problem(w, (uint64_t)rec->count > line - 1 ? AUDIT_DELETED :
			AUDIT_INSERTED, file, line, rec->seq,
			"the checkpoint seals %lld lines before it; the file "
			"has %llu", (long long)rec->count,
			(unsigned long long)(line - 1));
		return;
	}
	w->res->checkpoints++;
	w->res->sealed_seq = rec->seq;
	snprintf(w->res->sealed_time, sizeof(w->res->sealed_time), "%s",
		 rec->time);
	w->res->unsealed = 0;
	if (note_checkpoint(w, rec) < 0)
		problem(w, AUDIT_EDITED, file, line, rec->seq,
			"out of memory");
}

/* A valid record at line (1-based) of file number fi. */
static void walk_record(struct walk *w, const struct vrec *rec, size_t fi,
			const char *file, uint64_t line)
{
	bool is_ck = strcmp(rec->event, "checkpoint") == 0;
	bool is_start = strcmp(rec->event, "log-start") == 0;
	bool chain_start = strcmp(rec->prev, zero_hash) == 0;

	if (w->pending) {
		if (strcmp(rec->event, "recovered") != 0 ||
		    strcmp(rec->prev, w->expect_prev) != 0) {
			problem(w, AUDIT_EDITED, w->pending_file,
				w->pending_line, w->pending_seq, "not a record (%s), and "
				"not marked as torn by the next line",
				w->pending_why);
			return;
		}
		w->pending = false;
		w->res->recovered++;
	}

	if (fi == 0 && line == 1) {
		if (chain_start && rec->seq != 1) {
			problem(w, AUDIT_DELETED, file, line, rec->seq,
				"the log starts at seq %llu, not 1",
				(unsigned long long)rec->seq);
			return;
		}
		if (!chain_start && !is_start) {
			problem(w, AUDIT_DELETED, file, line, rec->seq,
				"the file does not begin with the start of a "
				"log: records before seq %llu were deleted",
				(unsigned long long)rec->seq);
			return;
		}
		w->res->first_seq = rec->seq;
	} else if (chain_start && line == 1) {
		problem(w, AUDIT_REORDERED, file, line, rec->seq,
			"this file starts the log: it must come first");
		return;
	} else if (chain_start) {
		problem(w, AUDIT_INSERTED, file, line, rec->seq,
			"a second chain starts here");
		return;
	} else if (line == 1 && !is_start) {
		problem(w, AUDIT_DELETED, file, line, rec->seq,
			"the file does not begin with a log-start record");
		return;
	} else if (strcmp(rec->prev, w->expect_prev) != 0 ||
		   rec->seq != w->expect_seq) {
		classify(w, rec, file, line);
		return;
	}

	if (is_start && rec->host_key &&
	    take_key(w, rec->host_key, file, line, rec->seq) < 0)
		return;
	if (is_ck)
		check_checkpoint(w, rec, file, line);
	else
		w->res->unsealed++;
	w->res->records++;
	w->res->last_seq = rec->seq;
	w->expect_seq = rec->seq + 1;
	w->prev_file = file;
	w->prev_line = line;
	w->prev_seq = rec->seq;
}

static void walk_line(struct walk *w, const char *line, size_t len,
		      size_t fi, const char *file, uint64_t lineno)
{
	char why[128];
	struct vrec rec;

	if (check_line(line, len, &rec, why, sizeof(why)) < 0) {
		if (w->pending) {
			problem(w, AUDIT_EDITED, w->pending_file,
				w->pending_line, w->pending_seq, "not a record (%s)",
				w->pending_why);
			return;
		}
		w->pending = true;
		w->pending_file = file;
		w->pending_line = lineno;
		w->pending_seq = quick_seq(line, len);
		snprintf(w->pending_why, sizeof(w->pending_why), "%s", why);
	} else {
		walk_record(w, &rec, fi, file, lineno);
		json_decref(rec.obj);
	}
	alog_hash_hex(line, len, w->expect_prev);
	if (w->pending) {
		w->prev_file = file;
		w->prev_line = lineno;
	}
}

/* ---- the witness's view ------------------------------------------------------ */

static void check_witness(struct walk *w, const char *path)
{
	char *buf = NULL, why[128];
	size_t len = 0, off, n, i;
	struct vrec rec;
	const char *nl;
	int r;

	r = util_read_file(path, AUDIT_FILE_MAX, &buf, &len);
	if (r < 0) {
		problem(w, AUDIT_ROLLED_BACK, path, 0, 0,
			"cannot read the witness file: %s", strerror(-r));
		return;
	}
	for (off = 0; off < len; off += n + 1) {
		nl = memchr(buf + off, '\n', len - off);
		n = nl ? (size_t)(nl - (buf + off)) : len - off;
		if (n == 0)
			continue;
		if (check_line(buf + off, n, &rec, why, sizeof(why)) < 0)
			continue;
		if (strcmp(rec.event, "checkpoint") == 0 && rec.sig &&
		    rec.host_key &&
		    strcmp(rec.host_key, w->res->host_key) == 0) {
			for (i = 0; i < w->ck_n; i++)
				if (w->ck_seq[i] == rec.seq)
					break;
			if (i == w->ck_n)
				problem(w, AUDIT_ROLLED_BACK, path, 0,
					rec.seq, "the witness holds checkpoint "
					"seq %llu, which the log does not have "
					"(its last seq is %llu): cut or rolled "
					"back", (unsigned long long)rec.seq,
					(unsigned long long)w->res->last_seq);
			else if (strcmp(w->ck_sig[i], rec.sig) != 0)
				problem(w, AUDIT_ROLLED_BACK, path, 0,
					rec.seq, "the witness holds another "
					"checkpoint seq %llu than the log: "
					"rewritten", (unsigned long long)rec.seq);
			else
				w->res->witnessed++;
		}
		json_decref(rec.obj);
	}
	free(buf);
}

int audit_verify(const char *const *paths, size_t n, const uint8_t *pk,
		 const char *witness, struct audit_result *ret)
{
	struct walk w;
	struct file_buf f;
	size_t fi, off, len;
	uint64_t lineno;
	const char *nl;
	int r;

	memset(ret, 0, sizeof(*ret));
	memset(&w, 0, sizeof(w));
	w.res = ret;
	if (pk) {
		memcpy(w.pk, pk, 32);
		w.key_known = true;
		cipher_hex(pk, 32, ret->host_key);
	} else {
		ret->key_from_log = 1;
	}
	r = collect_seqs(paths, n, &w.seqs, ret);
	if (r < 0)
		goto out_free;

	for (fi = 0; fi < n && ret->problem == AUDIT_INTACT; fi++) {
		memset(&f, 0, sizeof(f));
		r = load(paths[fi], &f);
		if (r < 0) {
			ret->file = paths[fi];
			goto out_free;
		}
		lineno = 0;
		for (off = 0; off < f.len && ret->problem == AUDIT_INTACT;
		     off += len + 1, w.g++) {
			nl = memchr(f.buf + off, '\n', f.len - off);
			len = nl ? (size_t)(nl - (f.buf + off)) : f.len - off;
			lineno++;
			ret->lines++;
			if (!nl) {
				if (w.pending)
					problem(&w, AUDIT_EDITED,
						w.pending_file, w.pending_line,
						w.pending_seq, "not a record (%s)",
						w.pending_why);
				problem(&w, AUDIT_TORN, paths[fi], lineno,
					quick_seq(f.buf + off, len),
					"the last line is incomplete (no "
					"newline): torn by a crash and not yet "
					"recovered, or cut");
				break;
			}
			walk_line(&w, f.buf + off, len, fi, paths[fi], lineno);
		}
		free(f.buf);
	}
	if (w.pending)
		problem(&w, AUDIT_EDITED, w.pending_file, w.pending_line,
			w.pending_seq,
			"not a record (%s)", w.pending_why);
	if (witness && ret->problem == AUDIT_INTACT)
		check_witness(&w, witness);
	r = 0;
out_free:
	free(w.seqs.v);
	free(w.seqs.h);
	free(w.ck_seq);
	free(w.ck_sig);
	return r;
}

/* ---- records for reading ------------------------------------------------------ */

static int64_t int_or(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

static int foreach_line(const char *line, size_t len, audit_record_fn fn,
			void *ctx)
{
	struct audit_record rec;
	json_error_t jerr;
	json_t *o, *v;
	int r;

	o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o)
		return 0;
	v = json_object_get(o, "seq");
	if (!json_is_object(o) || !json_is_integer(v) ||
	    json_integer_value(v) <= 0 ||
	    !json_is_string(json_object_get(o, "event"))) {
		json_decref(o);
		return 0;
	}
	memset(&rec, 0, sizeof(rec));
	rec.seq = (uint64_t)json_integer_value(v);
	rec.time = str_or_null(o, "time");
	rec.event = str_or_null(o, "event");
	rec.decision = str_or_null(o, "decision");
	rec.reason = str_or_null(o, "reason");
	rec.errno_name = str_or_null(o, "errno");
	rec.uid = int_or(o, "uid");
	rec.gid = int_or(o, "gid");
	rec.pid = int_or(o, "pid");
	rec.user = str_or_null(o, "user");
	rec.exe = str_or_null(o, "exe");
	rec.dataset = str_or_null(o, "dataset");
	rec.version = str_or_null(o, "version");
	rec.file = str_or_null(o, "file");
	rec.licence = str_or_null(o, "licence");
	rec.bytes = int_or(o, "bytes");
	rec.duration_ms = int_or(o, "duration_ms");
	rec.detail = str_or_null(o, "detail");
	r = fn(&rec, ctx);
	json_decref(o);
	return r;
}

int audit_foreach(const char *const *paths, size_t n, audit_record_fn fn,
		  void *ctx)
{
	struct file_buf f;
	size_t fi, off, len;
	const char *nl;
	int r = 0;

	for (fi = 0; fi < n && r >= 0; fi++) {
		memset(&f, 0, sizeof(f));
		r = load(paths[fi], &f);
		if (r < 0)
			return r;
		for (off = 0; off < f.len && r >= 0; off += len + 1) {
			nl = memchr(f.buf + off, '\n', f.len - off);
			len = nl ? (size_t)(nl - (f.buf + off)) : f.len - off;
			if (len > 0 && len <= ALOG_LINE_MAX)
				r = foreach_line(f.buf + off, len, fn, ctx);
		}
		free(f.buf);
	}
	return r < 0 ? r : 0;
}
