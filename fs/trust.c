/*
 * trust.c - trusted time and the highest versions seen, per market.
 *
 * The state is a small JSON file written atomically (temporary file,
 * fsync, rename) every time it grows, so a crash never loses a floor
 * that an open has already relied on.  Only signed facts move it: the
 * revocation list's signed time and version, and licence serials.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "trust.h"
#include "util.h"

#define STATE_MAX	(16u << 20)

struct trust {
	pthread_mutex_t lock;
	char *path;
	char *market_id;
	int64_t floor;		/* last signed server time */
	int64_t floor_boot;	/* CLOCK_BOOTTIME seconds at that moment */
	char boot_id[64];	/* boot the reading above belongs to */
	uint64_t rev_version;
	char *rev_jws;		/* newest revocation list seen */
	json_t *serials;	/* {"dataset": highest serial} */
};

static int64_t clock_seconds(clockid_t id)
{
	struct timespec ts;

	if (clock_gettime(id, &ts) < 0)
		return 0;
	return (int64_t)ts.tv_sec;
}

/*
 * Seconds since boot, from the kernel's /proc/uptime rather than
 * clock_gettime(): a library preloaded into the daemon (libfaketime) can
 * fake every clock call, but not what the kernel writes in a file.
 */
static int64_t boot_seconds(void)
{
	char buf[64];
	ssize_t n;
	int fd;

	fd = open("/proc/uptime", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return clock_seconds(CLOCK_BOOTTIME);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return clock_seconds(CLOCK_BOOTTIME);
	buf[n] = '\0';
	return (int64_t)strtoll(buf, NULL, 10);
}

static char this_boot[64];
static pthread_once_t boot_once = PTHREAD_ONCE_INIT;

static void boot_id_once(void)
{
	char *text = NULL;
	size_t len;

	if (util_read_file("/proc/sys/kernel/random/boot_id", 256, &text,
			   &len) < 0)
		return;
	text[strcspn(text, "\n")] = '\0';
	snprintf(this_boot, sizeof(this_boot), "%s", text);
	free(text);
}

/* This boot's id, so a boot-clock reading is never compared across one. */
static void read_boot_id(char buf[64])
{
	pthread_once(&boot_once, boot_id_once);
	memcpy(buf, this_boot, 64);
}

static int save(struct trust *t)
{
	json_t *o;
	char *text;
	int r;

	o = json_pack("{s:s, s:I, s:I, s:s, s:I, s:s?, s:O}",
		      "market", t->market_id,
		      "floor", (json_int_t)t->floor,
		      "floor_boot", (json_int_t)t->floor_boot,
		      "boot_id", t->boot_id,
		      "revocations_version", (json_int_t)t->rev_version,
		      "revocations", t->rev_jws,
		      "serials", t->serials);
	if (!o)
		return -ENOMEM;
	text = json_dumps(o, JSON_INDENT(1) | JSON_SORT_KEYS);
	json_decref(o);
	if (!text)
		return -ENOMEM;
	r = util_write_file_atomic(t->path, text, strlen(text), 0600);
	free(text);
	return r;
}

static int load(struct trust *t)
{
	json_error_t jerr;
	json_t *o, *serials, *v;
	const char *market = NULL, *boot = NULL, *rev = NULL;
	json_int_t floor = 0, fboot = 0, rver = 0;
	char *text = NULL;
	const char *k;
	size_t len;
	int r;

	r = util_read_file(t->path, STATE_MAX, &text, &len);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;

	o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	free(text);
	if (!o)
		return -EBADMSG;
	r = json_unpack(o, "{s:s, s:I, s:I, s:s, s:I, s:o}",
			"market", &market, "floor", &floor,
			"floor_boot", &fboot, "boot_id", &boot,
			"revocations_version", &rver, "serials", &serials);
	v = json_object_get(o, "revocations");
	if (json_is_string(v))
		rev = json_string_value(v);
	else if (v && !json_is_null(v))
		r = -1;
	if (r < 0 || strcmp(market, t->market_id) != 0 ||
	    !json_is_object(serials) || floor < 0 || rver < 0) {
		json_decref(o);
		return -EBADMSG;
	}
	json_object_foreach(serials, k, v) {
		if (!json_is_integer(v) || json_integer_value(v) < 0) {
			json_decref(o);
			return -EBADMSG;
		}
	}

	t->floor = floor;
	t->floor_boot = fboot;
	snprintf(t->boot_id, sizeof(t->boot_id), "%s", boot);
	t->rev_version = (uint64_t)rver;
	if (rev && !(t->rev_jws = strdup(rev))) {
		json_decref(o);
		return -ENOMEM;
	}
	json_decref(t->serials);
	t->serials = json_deep_copy(serials);
	json_decref(o);
	return t->serials ? 0 : -ENOMEM;
}

int trust_open(const char *state_dir, const char *market_id,
	       struct trust **ret_trust)
{
	struct trust *t;
	char *dir = NULL;
	int r;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->lock, NULL);
	t->market_id = strdup(market_id);
	t->serials = json_object();
	if (!t->market_id || !t->serials) {
		r = -ENOMEM;
		goto out_free;
	}
	if (asprintf(&dir, "%s/markets", state_dir) < 0 ||
	    asprintf(&t->path, "%s/%s.json", dir, market_id) < 0) {
		r = -ENOMEM;
		goto out_free;
	}
	r = util_mkdir_p(dir, 0700);
	if (r < 0)
		goto out_free;

	r = load(t);
	if (r < 0)
		goto out_free;

	free(dir);
	*ret_trust = t;
	return 0;
out_free:
	free(dir);
	trust_free(t);
	return r;
}

struct trust *trust_free(struct trust *t)
{
	if (!t)
		return NULL;
	pthread_mutex_destroy(&t->lock);
	free(t->path);
	free(t->market_id);
	free(t->rev_jws);
	json_decref(t->serials);
	free(t);
	return NULL;
}

int trust_offer_revocations(struct trust *t, uint64_t version,
			    int64_t issued, const char *jws, size_t len)
{
	char *copy;
	int r = 0;

	pthread_mutex_lock(&t->lock);
	if (version < t->rev_version) {
		r = -ESTALE;
		goto out_unlock;
	}
	if (version == t->rev_version && t->rev_jws &&
	    strlen(t->rev_jws) == len && memcmp(t->rev_jws, jws, len) == 0)
		goto out_unlock;

	copy = strndup(jws, len);
	if (!copy) {
		r = -ENOMEM;
		goto out_unlock;
	}
	free(t->rev_jws);
	t->rev_jws = copy;
	t->rev_version = version;

	/* A signed time moves the floor up, never down. */
	if (issued > t->floor) {
		t->floor = issued;
		t->floor_boot = boot_seconds();
		read_boot_id(t->boot_id);
	}
	r = save(t);
out_unlock:
	pthread_mutex_unlock(&t->lock);
	return r;
}

int trust_saved_revocations(struct trust *t, char **ret_jws, size_t *ret_len)
{
	int r = 0;

	pthread_mutex_lock(&t->lock);
	if (!t->rev_jws) {
		r = -ENOENT;
	} else {
		*ret_jws = strdup(t->rev_jws);
		if (!*ret_jws)
			r = -ENOMEM;
		else
			*ret_len = strlen(t->rev_jws);
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

int trust_offer_serial(struct trust *t, const char *dataset, uint64_t serial)
{
	json_t *v;
	int r = 0;

	pthread_mutex_lock(&t->lock);
	v = json_object_get(t->serials, dataset);
	if (v && (uint64_t)json_integer_value(v) > serial) {
		r = -ESTALE;
		goto out_unlock;
	}
	if (v && (uint64_t)json_integer_value(v) == serial)
		goto out_unlock;
	if (json_object_set_new(t->serials, dataset,
				json_integer((json_int_t)serial)) < 0) {
		r = -ENOMEM;
		goto out_unlock;
	}
	r = save(t);
out_unlock:
	pthread_mutex_unlock(&t->lock);
	return r;
}

void trust_time_now(struct trust *t, struct trust_time *ret)
{
	char boot_id[64];
	int64_t system = clock_seconds(CLOCK_REALTIME);
	int64_t expected;

	memset(ret, 0, sizeof(*ret));
	ret->system = system;
	ret->now = system;
	if (!t)
		return;

	pthread_mutex_lock(&t->lock);
	ret->floor = t->floor;
	expected = t->floor;
	if (t->floor > 0) {
		read_boot_id(boot_id);
		/*
		 * On the same boot, the boot clock says how much time has
		 * passed since the signed time; across a reboot only the
		 * signed time itself is known.  A boot clock that went
		 * backwards (faked) counts as no time passed.
		 */
		if (boot_id[0] && strcmp(boot_id, t->boot_id) == 0) {
			int64_t elapsed = boot_seconds() - t->floor_boot;

			if (elapsed > 0)
				expected = t->floor + elapsed;
		}
		if (expected > ret->now)
			ret->now = expected;
		if (system < expected - TRUST_TOLERANCE)
			ret->rollback = 1;
	}
	pthread_mutex_unlock(&t->lock);
}
