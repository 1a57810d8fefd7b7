/*
 * gen_corpus.c - write the seed inputs of fuzz_market and fuzz_jws.
 *
 * Usage: fuzz_gen_corpus CORPUS_DIR [MARKET_DIR]
 * Writes CORPUS_DIR/market/ and CORPUS_DIR/jws/: for each of the six
 * documents a valid payload (selector for "sign this payload") and the
 * same document signed (selector for "whole JWS"), with the fixed keys
 * of fuzz_common.c.  Run again whenever those keys or the document
 * formats change; the output is deterministic.
 *
 * With MARKET_DIR (a market made by marketfs-market init, publish,
 * grant, revoke), each of its .jws documents is added too: as a whole
 * document (only market.jws verifies there: it is self-signed) and its
 * payload, decoded, as a "sign this payload" seed.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "b64.h"
#include "cipher.h"
#include "market.h"

#include "fuzz_common.h"

#define HEX0 "0123456789abcdef0123456789abcdef"
#define HEX1 "fedcba9876543210fedcba9876543210"
#define H64 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define T0 "2026-01-01T00:00:00Z"
#define T1 "2027-01-01T00:00:00Z"

static int write_seed(const char *dir, const char *name, uint8_t sel,
		      const void *data, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wbe");
	if (!f)
		return -errno;
	fputc(sel, f);
	fwrite(data, 1, len, f);
	return fclose(f) ? -errno : 0;
}

static char tool_dir[4096];
static unsigned int tool_count;

/* Which fuzz_market parser reads the document at path (-1: none). */
static int doc_of(const char *path)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	if (!strcmp(base, "market.jws"))
		return 0;
	if (!strcmp(base, "catalog.jws"))
		return 1;
	if (!strcmp(base, "manifest.jws"))
		return 2;
	if (!strcmp(base, "index.jws"))
		return 4;
	if (!strcmp(base, "revocations.jws"))
		return 5;
	if (strstr(path, "/licences/"))
		return 3;
	return -1;
}

static int add_tool_doc(const char *path, const struct stat *st, int flag,
			struct FTW *ftw)
{
	static char text[1 << 20];
	char name[64];
	const char *dot1, *dot2;
	uint8_t *payload = NULL;
	size_t len, plen;
	FILE *f;
	int doc = doc_of(path);

	(void)st;
	(void)ftw;
	len = strlen(path);
	if (flag != FTW_F || len < 4 || strcmp(path + len - 4, ".jws") ||
	    doc < 0)
		return 0;
	f = fopen(path, "rbe");
	if (!f)
		return 0;
	len = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		len--;
	text[len] = '\0';

	/* The whole document; market.jws also with the key from inside. */
	snprintf(name, sizeof(name), "tool-jws-%d-%u", doc, tool_count);
	if (write_seed(tool_dir, name, (uint8_t)doc, text, len) < 0)
		return -1;
	dot1 = strchr(text, '.');
	dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	if (dot2 && b64_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), B64_URL,
			       &payload, &plen) == 0) {
		snprintf(name, sizeof(name), "tool-payload-%d-%u", doc,
			 tool_count);
		if (write_seed(tool_dir, name, (uint8_t)(doc + 6), payload,
			       plen) < 0) {
			free(payload);
			return -1;
		}
		free(payload);
	}
	tool_count++;
	return 0;
}

int main(int argc, char **argv)
{
	char market_dir[4096], jws_dir[4096], name[64], pl[4096];
	char *sign_b64 = NULL, *c4gh_b64 = NULL, *lic_b64 = NULL, *jws;
	uint8_t pk[32], cpk[32], hdr[FUZZ_PACKET_OVERHEAD + 56];
	char *hdr_b64 = NULL;
	size_t len;
	int i;

	if (argc != 2 && argc != 3) {
		fprintf(stderr, "usage: %s CORPUS_DIR [MARKET_DIR]\n", argv[0]);
		return 2;
	}
	snprintf(market_dir, sizeof(market_dir), "%s/market", argv[1]);
	snprintf(jws_dir, sizeof(jws_dir), "%s/jws", argv[1]);
	mkdir(market_dir, 0755);
	mkdir(jws_dir, 0755);

	fuzz_market_keys(NULL, pk);
	fuzz_c4gh_pk(cpk);
	/* A small but well-formed Crypt4GH header for licence seeds. */
	memcpy(hdr, "crypt4gh\1\0\0\0\1\0\0\0", 16);
	memset(hdr + 16 + FUZZ_PACKET_OVERHEAD, 0, 40);
	if (fuzz_c4gh_seal(hdr + 16 + FUZZ_PACKET_OVERHEAD, 40, 0,
			   hdr + 16) < 0 ||
	    b64_encode(pk, 32, B64_URL, &sign_b64) < 0 ||
	    b64_encode(cpk, 32, B64_STD, &c4gh_b64) < 0 ||
	    b64_encode(cpk, 32, B64_STD, &lic_b64) < 0 ||
	    b64_encode(hdr, 16 + FUZZ_PACKET_OVERHEAD + 40, B64_STD,
		       &hdr_b64) < 0)
		return 1;

	for (i = 0; i < 6; i++) {
		switch (i) {
		case 0:
			snprintf(pl, sizeof(pl),
				 "{\"type\":\"%s\",\"format\":1,\"id\":\"%s\","
				 "\"name\":\"Fuzz market\",\"signing_key\":"
				 "\"%s\",\"c4gh_key\":\"%s\",\"created\":"
				 "\"%s\"}", MARKET_TYPE_INFO, HEX0, sign_b64,
				 c4gh_b64, T0);
			break;
		case 1:
			snprintf(pl, sizeof(pl),
				 "{\"type\":\"%s\",\"format\":1,\"market\":"
				 "\"%s\",\"issued\":\"%s\",\"datasets\":["
				 "{\"id\":\"ds1\",\"title\":\"T\",\"provider\":"
				 "\"P\",\"description\":\"D\",\"price\":"
				 "\"EUR 1\",\"latest_version\":\"v1\","
				 "\"files\":1,\"size\":1,\"terms\":\"research\"},"
				 "{\"id\":\"ds2\",\"title\":\"U\",\"provider\":"
				 "\"Q\",\"description\":\"E\",\"price\":"
				 "\"EUR 2\",\"latest_version\":\"2.0\","
				 "\"files\":0,\"size\":0,\"terms\":\"open\"}]}",
				 MARKET_TYPE_CATALOG, HEX0, T0);
			break;
		case 2:
			snprintf(pl, sizeof(pl),
				 "{\"type\":\"%s\",\"format\":1,\"market\":"
				 "\"%s\",\"dataset\":\"ds1\",\"version\":\"v1\","
				 "\"created\":\"%s\",\"files\":["
				 "{\"path\":\"a/b.txt\",\"size\":1,\"object\":"
				 "\"objects/1\",\"header_len\":124,\"data_len\":"
				 "29,\"header_sha256\":\"%s\",\"segments\":1,"
				 "\"sums\":\"objects/1.sums\",\"sums_sha256\":"
				 "\"%s\",\"data_sha256\":\"%s\"},"
				 "{\"path\":\"c\",\"size\":65537,\"object\":"
				 "\"https://example.org/o/2\",\"header_len\":"
				 "124,\"data_len\":65593,\"header_sha256\":"
				 "\"%s\",\"segments\":2,\"sums\":"
				 "\"objects/2.sums\",\"sums_sha256\":\"%s\","
				 "\"data_sha256\":\"%s\"}]}",
				 MARKET_TYPE_MANIFEST, HEX0, T0, H64, H64, H64,
				 H64, H64, H64);
			break;
		case 3:
			snprintf(pl, sizeof(pl),
				 "{\"type\":\"%s\",\"format\":1,\"id\":\"%s\","
				 "\"market\":\"%s\",\"licensee\":\"%s\","
				 "\"dataset\":\"ds1\",\"version\":\"v1\","
				 "\"manifest_sha256\":\"%s\",\"issued\":\"%s\","
				 "\"not_before\":\"%s\",\"expires\":\"%s\","
				 "\"serial\":1,\"policy\":\"research\","
				 "\"terms\":\"Use for research only.\\n\","
				 "\"on_end\":\"finish\",\"offline_grace\":86400,"
				 "\"seats\":2,\"headers\":[{\"path\":\"a/b.txt\","
				 "\"header\":\"%s\"},{\"path\":\"c\",\"header\":"
				 "\"%s\"}],\"facts\":\"%s\"}",
				 MARKET_TYPE_LICENCE, HEX1, HEX0, lic_b64, H64,
				 T0, T0, T1, hdr_b64, hdr_b64, hdr_b64);
			break;
		case 4:
			snprintf(pl, sizeof(pl),
				 "{\"type\":\"%s\",\"format\":1,\"licensee\":"
				 "\"%s\",\"licences\":[\"%s\",\"%s\"]}",
				 MARKET_TYPE_INDEX, lic_b64, HEX1, HEX0);
			break;
		default:
			snprintf(pl, sizeof(pl),
				 "{\"type\":\"%s\",\"format\":1,\"market\":"
				 "\"%s\",\"version\":3,\"issued\":\"%s\","
				 "\"next_update\":\"%s\",\"revoked\":[\"%s\","
				 "\"%s\"]}",
				 MARKET_TYPE_REVOCATIONS, HEX0, T0, T1, HEX0,
				 HEX1);
			break;
		}
		/* fuzz_market: selector i + 6 signs, i + 18 pins too. */
		snprintf(name, sizeof(name), "payload-%d", i);
		if (write_seed(market_dir, name, (uint8_t)(i + 6), pl,
			       strlen(pl)) < 0)
			return 1;
		if (fuzz_sign_raw(i == 0 ? MARKET_TYPE_INFO :
				  i == 1 ? MARKET_TYPE_CATALOG :
				  i == 2 ? MARKET_TYPE_MANIFEST :
				  i == 3 ? MARKET_TYPE_LICENCE :
				  i == 4 ? MARKET_TYPE_INDEX :
				  MARKET_TYPE_REVOCATIONS,
				  (const uint8_t *)pl, strlen(pl), &jws,
				  &len) < 0)
			return 1;
		snprintf(name, sizeof(name), "jws-%d", i);
		if (write_seed(market_dir, name, (uint8_t)i, jws, len) < 0)
			return 1;
		if (i == 0 && write_seed(market_dir, "jws-0-pinned", 12, jws,
					 len) < 0)
			return 1;
		free(jws);
	}

	/* fuzz_jws: types[0] is the manifest type, types[1] the licence. */
	snprintf(pl, sizeof(pl), "{\"type\":\"%s\",\"format\":1,\"a\":[1,"
		 "2.5,null,true,\"x\"],\"b\":{\"c\":\"\\u00e9\"}}",
		 MARKET_TYPE_MANIFEST);
	if (fuzz_sign_raw(MARKET_TYPE_MANIFEST, (const uint8_t *)pl,
			  strlen(pl), &jws, &len) < 0)
		return 1;
	if (write_seed(jws_dir, "jws-manifest", 0, jws, len) < 0 ||
	    write_seed(jws_dir, "payload-manifest", 1, pl, strlen(pl)) < 0 ||
	    write_seed(jws_dir, "json-manifest", 2, pl, strlen(pl)) < 0 ||
	    write_seed(jws_dir, "jws-wrong-type", 3, jws, len) < 0 ||
	    write_seed(jws_dir, "json-no-format", 2, "{\"k\":1}", 7) < 0)
		return 1;
	free(jws);

	if (argc == 3) {
		snprintf(tool_dir, sizeof(tool_dir), "%s", market_dir);
		if (nftw(argv[2], add_tool_doc, 16, FTW_PHYS) != 0)
			return 1;
	}

	free(sign_b64);
	free(c4gh_b64);
	free(lic_b64);
	free(hdr_b64);
	return 0;
}
