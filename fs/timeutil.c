/*
 * timeutil.c - strict RFC 3339 UTC times.
 *
 * The only accepted form is "YYYY-MM-DDTHH:MM:SSZ": exactly 20 characters,
 * upper-case 'T' and 'Z', no fraction, no numeric offset, a real calendar
 * date (leap years per the Gregorian rules) and a time of day below
 * 24:00:00.  A leap second (":60") is refused: signed documents never
 * need one and accepting it would give two spellings of one instant.
 * Conversion is done with the days-from-civil arithmetic so that it does
 * not depend on the process's time zone or on timegm's range.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "timeutil.h"

#define SECS_PER_DAY	86400

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t days_from_civil(int64_t y, unsigned int m, unsigned int d)
{
	int64_t era;
	unsigned int yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned int)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

/* The inverse of days_from_civil. */
static void civil_from_days(int64_t z, int64_t *ret_y, unsigned int *ret_m,
			    unsigned int *ret_d)
{
	int64_t era, y;
	unsigned int doe, yoe, doy, mp, d, m;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned int)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = (int64_t)yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	d = doy - (153 * mp + 2) / 5 + 1;
	m = mp < 10 ? mp + 3 : mp - 9;
	*ret_y = y + (m <= 2);
	*ret_m = m;
	*ret_d = d;
}

static int is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned int days_in_month(int64_t y, unsigned int m)
{
	static const unsigned char days[12] = {
		31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
	};

	if (m == 2 && is_leap(y))
		return 29;
	return days[m - 1];
}

/* Parse n decimal digits at s; -1 when one is not a digit. */
static int digits(const char *s, unsigned int n)
{
	int v = 0;

	for (unsigned int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int timeutil_parse(const char *text, int64_t *ret_time)
{
	int y, mo, d, h, mi, s;

	if (!text || strlen(text) != TIMEUTIL_RFC3339_LEN - 1)
		return -EINVAL;
	if (text[4] != '-' || text[7] != '-' || text[10] != 'T' ||
	    text[13] != ':' || text[16] != ':' || text[19] != 'Z')
		return -EINVAL;

	y = digits(text, 4);
	mo = digits(text + 5, 2);
	d = digits(text + 8, 2);
	h = digits(text + 11, 2);
	mi = digits(text + 14, 2);
	s = digits(text + 17, 2);
	if (y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 ||
	    mi < 0 || mi > 59 || s < 0 || s > 59)
		return -EINVAL;
	if ((unsigned int)d > days_in_month(y, (unsigned int)mo))
		return -EINVAL;

	*ret_time = days_from_civil(y, (unsigned int)mo, (unsigned int)d) *
		    SECS_PER_DAY + h * 3600 + mi * 60 + s;
	return 0;
}

void timeutil_format(int64_t t, char buf[TIMEUTIL_RFC3339_LEN])
{
	/* Clamp to the years the format can spell: 0000 to 9999. */
	const int64_t lo = days_from_civil(0, 1, 1) * SECS_PER_DAY;
	const int64_t hi = days_from_civil(10000, 1, 1) * SECS_PER_DAY - 1;
	int64_t days, secs, y;
	unsigned int m, d;

	if (t < lo)
		t = lo;
	if (t > hi)
		t = hi;
	days = t / SECS_PER_DAY;
	secs = t % SECS_PER_DAY;
	if (secs < 0) {
		secs += SECS_PER_DAY;
		days--;
	}
	civil_from_days(days, &y, &m, &d);
	buf[0] = (char)('0' + y / 1000);
	buf[1] = (char)('0' + y / 100 % 10);
	buf[2] = (char)('0' + y / 10 % 10);
	buf[3] = (char)('0' + y % 10);
	buf[4] = '-';
	buf[5] = (char)('0' + m / 10);
	buf[6] = (char)('0' + m % 10);
	buf[7] = '-';
	buf[8] = (char)('0' + d / 10);
	buf[9] = (char)('0' + d % 10);
	buf[10] = 'T';
	buf[11] = (char)('0' + secs / 36000);
	buf[12] = (char)('0' + secs / 3600 % 10);
	buf[13] = ':';
	buf[14] = (char)('0' + secs % 3600 / 600);
	buf[15] = (char)('0' + secs % 3600 / 60 % 10);
	buf[16] = ':';
	buf[17] = (char)('0' + secs % 60 / 10);
	buf[18] = (char)('0' + secs % 10);
	buf[19] = 'Z';
	buf[20] = '\0';
}

int64_t timeutil_now(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return (int64_t)time(NULL);
	return (int64_t)ts.tv_sec;
}
