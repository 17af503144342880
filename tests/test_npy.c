/* test_npy.c - .npy reader/writer: round trips, every dtype, malformed files. */
#define _GNU_SOURCE /* memmem */
#include <dirent.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dfq_test.h"

#include "dfq/dfq_npy.h"

static char tmpdir[64];

/* A path inside the per-run temporary directory (static buffer: one at a time). */
static const char *tpath(const char *name)
{
	static char buf[256];
	snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
	return buf;
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* Write a .npy file by hand: magic, version, length field, dict padded to a
 * multiple of 64 with spaces and '\n', then the raw data bytes. */
static void make_npy(const char *path, int major, const char *dict, const void *data, size_t len)
{
	size_t lenfield = major == 1 ? 2 : 4;
	size_t pre = 8 + lenfield;
	size_t total = (pre + strlen(dict) + 1 + 63) / 64 * 64;
	size_t hlen = total - pre;
	unsigned char *buf = calloc(1, total + len);
	assert_non_null(buf);
	memcpy(buf, "\x93NUMPY", 6);
	buf[6] = (unsigned char)major;
	buf[7] = 0;
	for (size_t i = 0; i < lenfield; i++)
		buf[8 + i] = (unsigned char)(hlen >> (8 * i));
	memcpy(buf + pre, dict, strlen(dict));
	memset(buf + pre + strlen(dict), ' ', hlen - strlen(dict) - 1);
	buf[total - 1] = '\n';
	if (len)
		memcpy(buf + total, data, len);
	write_file(path, buf, total + len);
	free(buf);
}

static void expect_fail(const char *path, bool as_float, dfq_status want)
{
	struct dfq_tensor *t = (struct dfq_tensor *)1;
	struct dfq_error err;
	dfq_error_clear(&err);
	dfq_status st = dfq_npy_read(path, as_float, &t, &err);
	assert_int_not_equal(st, DFQ_OK);
	if (want != DFQ_OK)
		assert_int_equal(st, want);
	assert_null(t);
	assert_true(strlen(err.msg) > 0);
	assert_null(strchr(err.msg, '\n'));
}

static struct dfq_tensor *read_ok(const char *path, bool as_float)
{
	struct dfq_tensor *t = NULL;
	struct dfq_error err;
	dfq_error_clear(&err);
	dfq_status st = dfq_npy_read(path, as_float, &t, &err);
	if (st != DFQ_OK)
		fail_msg("reading %s failed: %s", path, err.msg);
	assert_non_null(t);
	return t;
}

/* --- round trips ------------------------------------------------------- */

static void roundtrip(dfq_dtype dt, int ndim, const int64_t *dims)
{
	struct dfq_error err;
	struct dfq_tensor *t = dfq_tensor_new(dt, ndim, dims, &err);
	assert_non_null(t);
	for (int64_t i = 0; i < t->numel; i++) {
		if (dt == DFQ_DTYPE_F32)
			dfq_tensor_f32(t)[i] = (float)i * 0.5f - 3.25f;
		else
			dfq_tensor_i64(t)[i] = i * 1000003 - 7;
	}
	const char *p = tpath("rt.npy");
	assert_int_equal(dfq_npy_write(p, t, &err), DFQ_OK);
	struct dfq_tensor *r = read_ok(p, false);
	assert_true(dfq_tensor_same_shape(t, r));
	assert_int_equal(r->numel, t->numel);
	if (t->numel)
		assert_memory_equal(r->data, t->data, (size_t)t->numel * dfq_dtype_size(dt));
	dfq_tensor_free(r);
	dfq_tensor_free(t);
}

static void test_roundtrip_shapes(void **state)
{
	const int64_t d2[] = {2, 3}, d1[] = {5}, d4[] = {1, 3, 4, 4}, de[] = {0, 3};
	const int64_t d8[] = {1, 2, 1, 2, 1, 2, 1, 3};
	roundtrip(DFQ_DTYPE_F32, 2, d2);
	roundtrip(DFQ_DTYPE_I64, 2, d2);
	roundtrip(DFQ_DTYPE_F32, 1, d1);
	roundtrip(DFQ_DTYPE_I64, 1, d1);
	roundtrip(DFQ_DTYPE_F32, 0, NULL);
	roundtrip(DFQ_DTYPE_F32, 4, d4);
	roundtrip(DFQ_DTYPE_F32, 2, de);
	roundtrip(DFQ_DTYPE_I64, 8, d8);
}

/* The written header must be exactly what numpy itself writes. */
static void test_write_header_bytes(void **state)
{
	const int64_t dims[] = {2, 3};
	struct dfq_error err;
	struct dfq_tensor *t = dfq_tensor_new(DFQ_DTYPE_F32, 2, dims, &err);
	const char *p = tpath("hdr.npy");
	assert_int_equal(dfq_npy_write(p, t, &err), DFQ_OK);
	dfq_tensor_free(t);
	unsigned char buf[128 + 24];
	FILE *f = fopen(p, "rb");
	assert_non_null(f);
	size_t n = fread(buf, 1, sizeof buf, f);
	fclose(f);
	assert_int_equal(n, 128 + 24);
	const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
	assert_memory_equal(buf, "\x93NUMPY\x01\x00\x76\x00", 10);
	assert_memory_equal(buf + 10, dict, strlen(dict));
	for (size_t i = 10 + strlen(dict); i < 127; i++)
		assert_int_equal(buf[i], ' ');
	assert_int_equal(buf[127], '\n');

	/* 1-D shapes carry the tuple comma; 0-D is (). */
	const int64_t d1[] = {7};
	t = dfq_tensor_new(DFQ_DTYPE_I64, 1, d1, &err);
	assert_int_equal(dfq_npy_write(p, t, &err), DFQ_OK);
	dfq_tensor_free(t);
	f = fopen(p, "rb");
	n = fread(buf, 1, 64, f);
	fclose(f);
	assert_int_equal(n, 64);
	assert_non_null(memmem(buf, 64, "'<i8'", 5));
	assert_non_null(memmem(buf, 64, "'shape': (7,)", 13));
	t = dfq_tensor_new(DFQ_DTYPE_F32, 0, NULL, &err);
	assert_int_equal(dfq_npy_write(p, t, &err), DFQ_OK);
	dfq_tensor_free(t);
	f = fopen(p, "rb");
	n = fread(buf, 1, 64, f);
	fclose(f);
	assert_non_null(memmem(buf, 64, "'shape': ()", 11));
}

/* A failed write leaves nothing behind, and an existing file is replaced. */
static void test_write_atomic(void **state)
{
	struct dfq_error err;
	const int64_t dims[] = {3};
	struct dfq_tensor *t = dfq_tensor_new(DFQ_DTYPE_F32, 1, dims, &err);
	dfq_error_clear(&err);
	assert_int_not_equal(dfq_npy_write(tpath("nodir/x.npy"), t, &err), DFQ_OK);
	assert_int_equal(err.status, DFQ_ERR_IO);
	assert_non_null(strstr(err.msg, "nodir/x.npy"));

	const char *p = tpath("over.npy");
	write_file(p, "junk", 4);
	dfq_tensor_f32(t)[1] = 42.0f;
	assert_int_equal(dfq_npy_write(p, t, &err), DFQ_OK);
	struct dfq_tensor *r = read_ok(p, false);
	assert_true(r->dtype == DFQ_DTYPE_F32);
	assert_true(dfq_tensor_f32(r)[1] == 42.0f);
	dfq_tensor_free(r);
	dfq_tensor_free(t);

	/* No temporary files are left in the directory. */
	DIR *d = opendir(tmpdir);
	assert_non_null(d);
	struct dirent *e;
	while ((e = readdir(d)))
		assert_null(strstr(e->d_name, ".tmp."));
	closedir(d);
}

/* --- every accepted dtype, written byte by byte ------------------------ */

static void check_values(const char *path, bool as_float, dfq_dtype want_dt, const double *want,
			 int n)
{
	struct dfq_tensor *t = read_ok(path, as_float);
	assert_int_equal(t->dtype, want_dt);
	assert_int_equal(t->ndim, 1);
	assert_int_equal(t->numel, n);
	for (int i = 0; i < n; i++) {
		if (want_dt == DFQ_DTYPE_F32)
			assert_true(dfq_tensor_f32(t)[i] == (float)want[i]);
		else
			assert_true(dfq_tensor_i64(t)[i] == (int64_t)want[i]);
	}
	dfq_tensor_free(t);
}

static void test_dtypes(void **state)
{
	const char *p = tpath("dt.npy");
	const char *shape3 = "'fortran_order': False, 'shape': (3,), }";
	char dict[128];
	static const double fv[] = {1.5, -2.0, 1e-3};
	static const double iv[] = {-1, 2, 3};
	static const double uv[] = {255, 0, 7};
	static const double bv[] = {1, 0, 1};

	/* float32: 1.5, -2.0, 0.001f */
	static const unsigned char f4[] = {0, 0, 0xc0, 0x3f, 0, 0, 0, 0xc0, 0x6f, 0x12, 0x83, 0x3a};
	snprintf(dict, sizeof dict, "{'descr': '<f4', %s", shape3);
	make_npy(p, 1, dict, f4, sizeof f4);
	check_values(p, false, DFQ_DTYPE_F32, fv, 3);
	check_values(p, true, DFQ_DTYPE_F32, fv, 3);

	/* float64 loads as float32 */
	double f8[3] = {1.5, -2.0, 1e-3};
	snprintf(dict, sizeof dict, "{'descr': '<f8', %s", shape3);
	make_npy(p, 1, dict, f8, sizeof f8);
	check_values(p, false, DFQ_DTYPE_F32, fv, 3);

	/* int64, int32, int16, int8: -1, 2, 3 */
	static const unsigned char i8[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
					   2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0};
	static const unsigned char i4[] = {0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 3, 0, 0, 0};
	static const unsigned char i2[] = {0xff, 0xff, 2, 0, 3, 0};
	static const unsigned char i1[] = {0xff, 2, 3};
	static const struct {
		const char *descr;
		const void *data;
		size_t len;
	} ints[] = {
		{"<i8", i8, sizeof i8}, {"<i4", i4, sizeof i4}, {"<i2", i2, sizeof i2},
		{"|i1", i1, sizeof i1}, {"<i1", i1, sizeof i1}, {">i1", i1, sizeof i1},
	};
	for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
		snprintf(dict, sizeof dict, "{'descr': '%s', %s", ints[k].descr, shape3);
		make_npy(p, 1, dict, ints[k].data, ints[k].len);
		check_values(p, false, DFQ_DTYPE_I64, iv, 3);
		check_values(p, true, DFQ_DTYPE_F32, iv, 3);
	}

	/* unsigned: 255, 0, 7 */
	static const unsigned char u1[] = {255, 0, 7};
	static const unsigned char u2[] = {255, 0, 0, 0, 7, 0};
	static const unsigned char u4[] = {255, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0};
	snprintf(dict, sizeof dict, "{'descr': '|u1', %s", shape3);
	make_npy(p, 1, dict, u1, sizeof u1);
	check_values(p, false, DFQ_DTYPE_I64, uv, 3);
	check_values(p, true, DFQ_DTYPE_F32, uv, 3);
	snprintf(dict, sizeof dict, "{'descr': '<u2', %s", shape3);
	make_npy(p, 1, dict, u2, sizeof u2);
	check_values(p, false, DFQ_DTYPE_I64, uv, 3);
	snprintf(dict, sizeof dict, "{'descr': '<u4', %s", shape3);
	make_npy(p, 1, dict, u4, sizeof u4);
	check_values(p, true, DFQ_DTYPE_F32, uv, 3);

	/* bool */
	static const unsigned char b1[] = {1, 0, 1};
	snprintf(dict, sizeof dict, "{'descr': '|b1', %s", shape3);
	make_npy(p, 1, dict, b1, sizeof b1);
	check_values(p, false, DFQ_DTYPE_I64, bv, 3);
	check_values(p, true, DFQ_DTYPE_F32, bv, 3);
}

/* Header versions 2.0 and 3.0 and the dict spellings numpy has used. */
static void test_header_variants(void **state)
{
	const char *p = tpath("var.npy");
	static const float data[6] = {1, 2, 3, 4, 5, 6};
	static const char *const dicts[] = {
		"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
		"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}",
		"{\"shape\": (2,3), \"fortran_order\": False, \"descr\": \"<f4\"}",
		"{ 'fortran_order' : False , 'descr' : '=f4' , 'shape' : ( 2L , 3L , ) , }",
	};
	for (int major = 1; major <= 3; major++) {
		for (size_t k = 0; k < sizeof dicts / sizeof dicts[0]; k++) {
			make_npy(p, major, dicts[k], data, sizeof data);
			struct dfq_tensor *t = read_ok(p, false);
			assert_int_equal(t->ndim, 2);
			assert_int_equal(t->dims[0], 2);
			assert_int_equal(t->dims[1], 3);
			assert_memory_equal(t->data, data, sizeof data);
			dfq_tensor_free(t);
		}
	}
	/* scalar: shape () holds one element */
	make_npy(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", data, 4);
	struct dfq_tensor *t = read_ok(p, false);
	assert_int_equal(t->ndim, 0);
	assert_int_equal(t->numel, 1);
	assert_true(dfq_tensor_f32(t)[0] == 1.0f);
	dfq_tensor_free(t);
	/* empty array: no data bytes at all */
	make_npy(p, 2, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 5), }", NULL, 0);
	t = read_ok(p, false);
	assert_int_equal(t->numel, 0);
	assert_int_equal(t->dims[1], 5);
	dfq_tensor_free(t);
}

/* --- malformed input: an error, never a crash -------------------------- */

static void test_refused(void **state)
{
	const char *p = tpath("bad.npy");
	static const float data[6] = {1, 2, 3, 4, 5, 6};
	static const struct {
		const char *dict;
		dfq_status st;
	} cases[] = {
		{"{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3)}", DFQ_ERR_UNSUPPORTED},
		{"{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", DFQ_ERR_UNSUPPORTED},
		{"{'descr': '|O', 'fortran_order': False, 'shape': (2, 3), }", DFQ_ERR_UNSUPPORTED},
		{"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,), }",
		 DFQ_ERR_UNSUPPORTED},
		{"{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }", DFQ_ERR_UNSUPPORTED},
		{"{'descr': '<f2', 'fortran_order': False, 'shape': (12,), }", DFQ_ERR_UNSUPPORTED},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3, 1, 1, 1, 1, 1, 1), }",
		 DFQ_ERR_UNSUPPORTED},
		/* header lies about the size */
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4), }", DFQ_ERR_PARSE},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", DFQ_ERR_PARSE},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (4000000000, 4000000000), }",
		 DFQ_ERR_PARSE},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }",
		 DFQ_ERR_PARSE},
		/* malformed dicts */
		{"{'descr': '<f4', 'shape': (2, 3), }", DFQ_ERR_PARSE},
		{"{'descr': '<f4', 'fortran_order': False}", DFQ_ERR_PARSE},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}",
		 DFQ_ERR_PARSE},
		{"{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2, 3), }", DFQ_ERR_PARSE},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }", DFQ_ERR_PARSE},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (6), }", DFQ_ERR_PARSE},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3], }", DFQ_ERR_PARSE},
		{"{'descr': '<f4' 'fortran_order': False, 'shape': (2, 3), }", DFQ_ERR_PARSE},
		{"{'descr': '<f4, 'fortran_order': False, 'shape': (2, 3), }", DFQ_OK},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } junk", DFQ_ERR_PARSE},
		{"['descr', '<f4']", DFQ_ERR_PARSE},
		{"", DFQ_ERR_PARSE},
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		make_npy(p, 1, cases[k].dict, data, sizeof data);
		expect_fail(p, false, cases[k].st);
	}
}

static void test_truncated_and_magic(void **state)
{
	const char *p = tpath("trunc.npy");
	static const float data[6] = {1, 2, 3, 4, 5, 6};
	make_npy(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", data,
		 sizeof data);
	unsigned char full[64 + sizeof data];
	FILE *f = fopen(p, "rb");
	assert_int_equal(fread(full, 1, sizeof full, f), sizeof full);
	fclose(f);
	/* every proper prefix of a valid file is refused */
	for (size_t n = 0; n < sizeof full; n++) {
		write_file(p, full, n);
		expect_fail(p, false, DFQ_ERR_PARSE);
	}
	/* bad magic, unknown version, lying header length, NUL in header */
	unsigned char bad[sizeof full];
	memcpy(bad, full, sizeof full);
	bad[1] = 'X';
	write_file(p, bad, sizeof bad);
	expect_fail(p, false, DFQ_ERR_PARSE);
	memcpy(bad, full, sizeof full);
	bad[6] = 9;
	write_file(p, bad, sizeof bad);
	expect_fail(p, false, DFQ_ERR_UNSUPPORTED);
	memcpy(bad, full, sizeof full);
	bad[8] = 0xff;
	bad[9] = 0xff;
	write_file(p, bad, sizeof bad);
	expect_fail(p, false, DFQ_ERR_PARSE);
	memcpy(bad, full, sizeof full);
	bad[30] = 0;
	write_file(p, bad, sizeof bad);
	expect_fail(p, false, DFQ_ERR_PARSE);
	/* missing file, and a directory */
	expect_fail(tpath("does-not-exist.npy"), false, DFQ_ERR_IO);
	expect_fail(tmpdir, false, DFQ_OK);
}

/* Deterministic pseudo-random bytes, with and without a valid magic. */
static void test_random_bytes(void **state)
{
	const char *p = tpath("rand.npy");
	uint64_t s = 0x9e3779b97f4a7c15ull;
	unsigned char buf[300];
	for (int iter = 0; iter < 400; iter++) {
		size_t n = (size_t)(iter % 300);
		for (size_t i = 0; i < n; i++) {
			s = s * 6364136223846793005ull + 1442695040888963407ull;
			buf[i] = (unsigned char)(s >> 56);
		}
		if (iter % 2 && n >= 10) {
			memcpy(buf, "\x93NUMPY\x01\x00", 8);
			buf[8] = (unsigned char)(n - 10);
			buf[9] = 0;
			if (n > 11)
				buf[10] = '{';
		}
		write_file(p, buf, n);
		struct dfq_tensor *t = NULL;
		struct dfq_error err;
		if (dfq_npy_read(p, iter % 3 == 0, &t, &err) == DFQ_OK)
			dfq_tensor_free(t);
		else
			assert_null(t);
	}
}

static int setup_dir(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/dfq-test-npy-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static void remove_dir(void)
{
	DIR *d = opendir(tmpdir);
	if (!d)
		return;
	struct dirent *e;
	char path[512];
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(tmpdir);
}

int main(void)
{
	if (setup_dir() != 0) {
		perror("mkdtemp");
		return 1;
	}
	atexit(remove_dir);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_shapes),
		cmocka_unit_test(test_write_header_bytes),
		cmocka_unit_test(test_write_atomic),
		cmocka_unit_test(test_dtypes),
		cmocka_unit_test(test_header_variants),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_truncated_and_magic),
		cmocka_unit_test(test_random_bytes),
	};
	DFQ_RUN_TESTS(tests);
}
