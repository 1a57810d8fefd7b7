/*
 * fuzz_c4gh_key.c - Crypt4GH key file parsing.
 *
 * Input: the text of a key file (seeds: tests/data/crypt4gh/keys/).  It
 * is parsed as a public key, checked for a passphrase, and parsed as a
 * secret key without and with recipient2's passphrase.  Invariants: a
 * secret key that needs no passphrase parses the same with one; a secret
 * key is refused without a passphrase when it needs one.
 */
#include <errno.h>
#include <string.h>

#include "c4gh.h"

#include "fuzz_common.h"

static const char pass[] = "recipient2-test-passphrase";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t pk[32], sk[32], sk2[32];
	char *text;
	int need, r, r2;

	/* A private copy, so that reading past size is caught. */
	text = malloc(size ? size : 1);
	if (!text)
		return 0;
	memcpy(text, data, size);

	r = c4gh_pubkey_parse(text, size, pk);
	if (r < 0)
		FUZZ_CHECK(r == -EBADMSG || r == -EPROTONOSUPPORT ||
			   r == -ENOMEM);
	(void)c4gh_strerror(r);

	need = c4gh_seckey_needs_passphrase(text, size);
	r = c4gh_seckey_parse(text, size, NULL, 0, sk);
	if (need == 1)
		FUZZ_CHECK(r < 0);
	if (need < 0)
		FUZZ_CHECK(r < 0);

	r2 = c4gh_seckey_parse(text, size, pass, sizeof(pass) - 1, sk2);
	if (need == 0 && r == 0) {
		FUZZ_CHECK(r2 == 0);
		FUZZ_CHECK(!memcmp(sk, sk2, 32));
	}
	if (r2 < 0)
		FUZZ_CHECK(r2 == -EBADMSG || r2 == -EPROTONOSUPPORT ||
			   r2 == -EKEYREJECTED || r2 == -ENOMEM ||
			   r2 == -EINVAL);
	free(text);
	return 0;
}
