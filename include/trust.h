/*
 * trust.h - what a host remembers about a market, so that neither a
 * clock set back nor an old document put back can revive a licence.
 *
 * Per market, in STATE_DIR/markets/<market-id>.json (0600):
 *  - the latest signed server time seen (the revocation list's "issued"),
 *    with the boot clock reading and boot id of that moment;
 *  - the highest revocation list version seen, and a copy of that list,
 *    so an offline start still knows what was revoked;
 *  - the highest licence serial seen per dataset.
 *
 * Trusted time (design §4): the later of the system clock and the last
 * signed server time plus the time elapsed since on the boot clock (when
 * the host has not rebooted since; read from /proc/uptime, which a
 * preloaded clock-faking library cannot change).  A system clock earlier than the
 * last signed time by more than TRUST_TOLERANCE is a rollback.  Only
 * signed times are stored; a forward jump of the system clock is never
 * kept as a floor.
 *
 * Thread-safe.  Nothing here logs.
 */
#ifndef MARKETFS_TRUST_H
#define MARKETFS_TRUST_H

#include <stddef.h>
#include <stdint.h>

#define TRUST_TOLERANCE	300	/* seconds of clock skew forgiven */

struct trust;

/*
 * Load (or start) the state of market_id under state_dir.  A missing
 * file is a fresh start; an unreadable or malformed one is -EBADMSG
 * (the caller refuses to go on rather than forget what it saw).
 */
int trust_open(const char *state_dir, const char *market_id,
	       struct trust **ret_trust);
struct trust *trust_free(struct trust *t);	/* NULL-safe */

/*
 * Offer a verified revocation list (its version, signed time and JWS
 * bytes).  Returns 0 when taken (or the same version again), -ESTALE
 * when its version is lower than one already seen (a rollback: the
 * caller keeps the newer list).  Taking it moves the signed-time floor
 * up and is written to disk before returning.
 */
int trust_offer_revocations(struct trust *t, uint64_t version,
			    int64_t issued, const char *jws, size_t len);

/* The stored copy of the newest list seen (malloc'd), or -ENOENT. */
int trust_saved_revocations(struct trust *t, char **ret_jws,
			    size_t *ret_len);

/*
 * Offer a licence's serial for a dataset: 0 when it is at least the
 * highest seen (and then recorded), -ESTALE when lower (a replay).
 */
int trust_offer_serial(struct trust *t, const char *dataset,
		       uint64_t serial);

struct trust_time {
	int64_t now;		/* trusted time */
	int64_t system;		/* the system clock */
	int64_t floor;		/* last signed server time, 0 if none */
	int rollback;		/* system clock behind the floor */
};

void trust_time_now(struct trust *t, struct trust_time *ret);

#endif
