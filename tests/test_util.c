/* test_util.c - the small helpers: SHA-256 against FIPS 180-4's examples and sha256sum, the edit
 * distance, reference-counted blocks and tensors. */
#include "dfq_test.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dfq/dfq_sha256.h"
#include "dfq/dfq_tensor.h"
#include "dfq/dfq_text.h"
#include "rc.h"

static void sha_str(const char *s, size_t n, char hex[65])
{
	struct dfq_sha256 c;
	dfq_sha256_init(&c);
	dfq_sha256_update(&c, s, n);
	dfq_sha256_hex(&c, hex);
}

static void test_sha256_vectors(void **state)
{
	char hex[65];
	sha_str("abc", 3, hex);
	assert_string_equal(hex,
	                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	sha_str("", 0, hex);
	assert_string_equal(hex,
	                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	sha_str(two, strlen(two), hex);
	assert_string_equal(hex,
	                    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	/* a million 'a', fed in uneven pieces */
	struct dfq_sha256 c;
	dfq_sha256_init(&c);
	char a[1000];
	memset(a, 'a', sizeof a);
	size_t left = 1000000, piece = 1;
	while (left) {
		size_t n = piece < left ? piece : left;
		dfq_sha256_update(&c, a, n);
		left -= n;
		piece = piece % 987 + 13; /* at most 999 */
	}
	dfq_sha256_hex(&c, hex);
	assert_string_equal(hex,
	                    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* Against the system's sha256sum on a file of every length 0..200 bytes. */
static void test_sha256_file(void **state)
{
	if (system("command -v sha256sum >/dev/null 2>&1") != 0)
		dfq_skip("sha256sum is not installed\n");
	char path[] = "/tmp/dfq-sha-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	for (int len = 0; len <= 200; len += 7) {
		FILE *f = fopen(path, "wb");
		for (int i = 0; i < len; i++)
			fputc((i * 37 + len) & 0xff, f);
		fclose(f);
		char hex[65], cmd[128], want[65] = "";
		struct dfq_error err;
		assert_int_equal(dfq_sha256_file(path, hex, &err), DFQ_OK);
		snprintf(cmd, sizeof cmd, "sha256sum %s", path);
		FILE *p = popen(cmd, "r");
		assert_non_null(p);
		assert_int_equal(fscanf(p, "%64s", want), 1);
		pclose(p);
		assert_string_equal(hex, want);
	}
	unlink(path);
	char hex[65];
	struct dfq_error err;
	assert_int_equal(dfq_sha256_file("/nonexistent/model.onnx", hex, &err), DFQ_ERR_IO);
	assert_non_null(strstr(err.msg, "/nonexistent/model.onnx"));
}

static void test_edit_distance(void **state)
{
	assert_int_equal(dfq_edit_distance("kitten", "sitting"), 3);
	assert_int_equal(dfq_edit_distance("", "abc"), 3);
	assert_int_equal(dfq_edit_distance("quantize", "quantize"), 0);
	assert_int_equal(dfq_edit_distance("equalise", "equalize"), 1);
}

static void test_rc(void **state)
{
	float *p = rc_alloc(4 * sizeof *p);
	assert_non_null(p);
	assert_true(p[0] == 0.0f && p[3] == 0.0f);
	p[1] = 2.0f;
	float *q = p;
	assert_false(rc_shared(p));
	rc_ref(q);
	assert_true(rc_shared(p));
	/* a shared block is copied before it is changed */
	assert_true(rc_writable((void **)&p, 4 * sizeof *p));
	assert_true(p != q && p[1] == 2.0f);
	assert_false(rc_shared(q));
	p[1] = 3.0f;
	assert_true(q[1] == 2.0f);
	rc_unref(p);
	rc_unref(q);
	char *s = rc_strdup("conv1");
	assert_string_equal(s, "conv1");
	rc_unref(s);
	/* tensors: the last owner frees */
	int64_t d[1] = {3};
	struct dfq_tensor *t = dfq_tensor_new(DFQ_DTYPE_F32, 1, d, NULL);
	assert_false(dfq_tensor_shared(t));
	dfq_tensor_ref(t);
	assert_true(dfq_tensor_shared(t));
	dfq_tensor_free(t);
	assert_false(dfq_tensor_shared(t));
	dfq_tensor_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sha256_vectors),
	    cmocka_unit_test(test_sha256_file),
	    cmocka_unit_test(test_edit_distance),
	    cmocka_unit_test(test_rc),
	};
	DFQ_RUN_TESTS(tests);
}
