/*
 * audit.h - reading access logs back: verification of the chain and the
 * checkpoints, and the records as structs for show / summary / export /
 * report.  The format is alog.h's; docs/access-log.md explains it.
 *
 * Nothing here prints.  Files are read whole, one at a time (at most
 * AUDIT_FILE_MAX bytes each).
 */
#ifndef MARKETFS_AUDIT_H
#define MARKETFS_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "alog.h"

#define AUDIT_FILE_MAX		((size_t)4 << 30)
#define AUDIT_WHAT_MAX		512

/* What is wrong with a log; the first problem found wins. */
enum audit_problem {
	AUDIT_INTACT = 0,
	AUDIT_EDITED,		/* a line differs from what was written */
	AUDIT_INSERTED,		/* a record that does not belong (copy) */
	AUDIT_DELETED,		/* records missing */
	AUDIT_REORDERED,	/* records or files out of order */
	AUDIT_BAD_SIGNATURE,	/* a checkpoint's signature fails */
	AUDIT_WRONG_KEY,	/* signed by another key than expected */
	AUDIT_TORN,		/* an incomplete line nobody marked */
	AUDIT_ROLLED_BACK,	/* the witness holds a checkpoint the log
				 * does not */
};

struct audit_result {
	enum audit_problem problem;
	const char *file;		/* of the first bad record */
	uint64_t line;			/* its line in that file (1-based) */
	uint64_t seq;			/* its seq, 0 when it has none */
	char what[AUDIT_WHAT_MAX];	/* one sentence */

	uint64_t records;		/* valid records */
	uint64_t lines;
	uint64_t checkpoints;
	uint64_t recovered;		/* torn lines marked by "recovered" */
	uint64_t first_seq, last_seq;
	uint64_t sealed_seq;		/* last checkpoint's seq, 0: none */
	char sealed_time[40];
	uint64_t unsealed;		/* records after the last checkpoint */
	char host_key[ALOG_KEY_HEX];	/* the key checked against */
	int key_from_log;		/* 1: no key given, the log's own */
	uint64_t witnessed;		/* witness checkpoints matched */
};

/*
 * Verify paths[0..n) as one chain, oldest file first.  pk: the host's
 * public key (32 bytes), or NULL to take the one the log records.
 * witness: a file of checkpoint lines a witness received, or NULL.
 * 0 when the files could be read (the verdict is in ret->problem), or
 * a negative errno (-ENOENT, -EFBIG, -EISDIR...; ret->file names it).
 */
int audit_verify(const char *const *paths, size_t n, const uint8_t *pk,
		 const char *witness, struct audit_result *ret);

/* "edited", "inserted", ...; "intact" for AUDIT_INTACT. */
const char *audit_problem_name(enum audit_problem p);

/*
 * One record, for reading.  Strings point into the parsed line and are
 * valid during the callback only; absent values are NULL / -1.
 */
struct audit_record {
	uint64_t seq;
	const char *time, *event, *decision, *reason, *errno_name;
	int64_t uid, gid, pid;
	const char *user, *exe;
	const char *dataset, *version, *file, *licence;
	int64_t bytes, duration_ms;
	const char *detail;
};

typedef int (*audit_record_fn)(const struct audit_record *rec, void *ctx);

/*
 * Call fn for every line of paths that parses as a record, in order;
 * lines that do not are skipped (verify says why).  A negative return
 * from fn stops the walk and is returned.
 */
int audit_foreach(const char *const *paths, size_t n, audit_record_fn fn,
		  void *ctx);

/* Parse 64 hex digits into 32 bytes: 0 or -EINVAL. */
int audit_parse_key(const char *hex, uint8_t ret_pk[32]);

#endif
