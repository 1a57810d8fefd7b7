/*
 * test_tree.c - the namespace built from a plain folder of Crypt4GH
 * files: exact sizes from headers and edit lists, files for other keys
 * left out and reported, lookups.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "c4gh.h"
#include "cipher.h"
#include "http.h"
#include "tree.h"

struct fixture {
	struct http *http;
	struct tree *tree;
	uint8_t sk[32];
	uint8_t pk[32];
	int reports;
	char last_report[512];
};

static void on_report(void *ctx, const char *line)
{
	struct fixture *fx = ctx;

	fx->reports++;
	snprintf(fx->last_report, sizeof(fx->last_report), "%s", line);
}

static int setup(void **state)
{
	struct http_options hopt = { 0 };
	struct tree_config cfg = { 0 };
	struct fixture *fx;
	char path[4096], msg[TREE_MSG_LEN];
	const char *data = getenv("MARKETFS_TESTDATA");

	if (!data)
		return -1;
	fx = calloc(1, sizeof(*fx));
	if (!fx)
		return -1;
	snprintf(path, sizeof(path), "%s/crypt4gh/keys/recipient1.sec", data);
	if (c4gh_seckey_read_file(path, NULL, 0, fx->sk) < 0 ||
	    cipher_x25519_public(fx->sk, fx->pk) < 0)
		return -1;
	if (http_global_init() < 0)
		return -1;
	hopt.retries = 0;
	if (http_new(&hopt, &fx->http) < 0)
		return -1;

	snprintf(path, sizeof(path), "%s/crypt4gh/enc", data);
	cfg.source = path;
	cfg.http = fx->http;
	cfg.sk = fx->sk;
	cfg.pk = fx->pk;
	cfg.report = on_report;
	cfg.report_ctx = fx;
	if (tree_load(&cfg, &fx->tree, msg) < 0) {
		fprintf(stderr, "tree_load: %s\n", msg);
		return -1;
	}
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	tree_free(fx->tree);
	http_free(fx->http);
	cipher_wipe(fx->sk, sizeof(fx->sk));
	free(fx);
	http_global_cleanup();
	return 0;
}

static void expect_size(struct fixture *fx, const char *path, uint64_t size)
{
	struct tree_node *n = NULL;

	assert_int_equal(tree_lookup(fx->tree, path, &n), 0);
	assert_int_equal(n->kind, TREE_DATA);
	assert_int_equal(n->size, size);
	assert_non_null(n->url);
}

static void test_tree_plain_sizes_exact(void **state)
{
	struct fixture *fx = *state;

	assert_false(fx->tree->is_market);
	expect_size(fx, "/size-0.bin", 0);
	expect_size(fx, "/size-1.bin", 1);
	expect_size(fx, "/size-65535.bin", 65535);
	expect_size(fx, "/size-65536.bin", 65536);
	expect_size(fx, "/size-65537.bin", 65537);
	expect_size(fx, "/size-200000.bin", 200000);
	expect_size(fx, "/size-200000.bin.both-recipients", 200000);
	expect_size(fx, "/size-3158073.bin", 3158073);
	/* The visible size follows the edit list, not the data section. */
	expect_size(fx, "/size-3158073.bin.editlist", 300000);
}

static void test_tree_plain_other_keys_left_out(void **state)
{
	struct fixture *fx = *state;
	struct tree_node *n;

	assert_int_equal(tree_lookup(fx->tree,
				     "/size-65537.bin.for-recipient2", &n),
			 -ENOENT);
	assert_int_equal(tree_lookup(fx->tree,
				     "/size-200000.bin.reencrypted-for-"
				     "recipient2", &n), -ENOENT);
	/* Two files are not for recipient1, and each is reported. */
	assert_int_equal(fx->reports, 2);
	assert_non_null(strstr(fx->last_report, "left out"));
}

static void test_tree_lookup_paths(void **state)
{
	struct fixture *fx = *state;
	struct tree_node *n;

	assert_int_equal(tree_lookup(fx->tree, "/", &n), 0);
	assert_int_equal(n->kind, TREE_DIR);
	assert_int_equal(n->nchildren, 9);
	assert_int_equal(tree_lookup(fx->tree, "/nope", &n), -ENOENT);
	assert_int_equal(tree_lookup(fx->tree, "/size-1.bin/x", &n),
			 -ENOTDIR);
	assert_int_equal(tree_lookup(fx->tree, "//size-1.bin", &n), 0);
	assert_string_equal(n->relpath, "size-1.bin");
	/* Children are sorted, so lookups can bisect. */
	for (size_t i = 1; i < fx->tree->root->nchildren; i++)
		assert_true(strcmp(fx->tree->root->children[i - 1]->name,
				   fx->tree->root->children[i]->name) < 0);
}

static void test_tree_missing_source(void **state)
{
	struct fixture *fx = *state;
	struct tree_config cfg = { 0 };
	struct tree *t = NULL;
	char msg[TREE_MSG_LEN];

	cfg.source = "/nonexistent/marketfs/source";
	cfg.http = fx->http;
	cfg.sk = fx->sk;
	cfg.pk = fx->pk;
	assert_true(tree_load(&cfg, &t, msg) < 0);
	assert_null(t);
	assert_true(strlen(msg) > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tree_plain_sizes_exact),
		cmocka_unit_test(test_tree_plain_other_keys_left_out),
		cmocka_unit_test(test_tree_lookup_paths),
		cmocka_unit_test(test_tree_missing_source),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
