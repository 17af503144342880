/* test_data.c - data sets: IDX (raw/gzip), NPY, image folders, resizing, slices, streaming. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb_image_write.h>
#include <zlib.h>

#include "dfq_test.h"
#include "npy_write.h"

#include "dfq/dfq_data.h"
#include "dfq/dfq_eval.h"
#include "dfq/dfq_npy.h"

static char tmpdir[64];

/* A path inside the per-run temporary directory (rotating static buffers). */
static const char *tpath(const char *name)
{
	static char buf[4][512];
	static int k;
	k = (k + 1) % 4;
	snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
	return buf[k];
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* An IDX file: magic 0 0 type ndim, big-endian dims, then the bytes; gzip
 * compressed when gz. */
static void write_idx(const char *path, bool gz, int type, int ndim, const uint32_t *dims,
		      const void *data, size_t len)
{
	size_t hn = 4 + 4 * (size_t)ndim;
	unsigned char *buf = malloc(hn + len + 1);
	assert_non_null(buf);
	buf[0] = 0;
	buf[1] = 0;
	buf[2] = (unsigned char)type;
	buf[3] = (unsigned char)ndim;
	for (int i = 0; i < ndim; i++)
		for (int b = 0; b < 4; b++)
			buf[4 + 4 * i + b] = (unsigned char)(dims[i] >> (24 - 8 * b));
	if (len)
		memcpy(buf + hn, data, len);
	if (!gz) {
		write_file(path, buf, hn + len);
	} else {
		gzFile f = gzopen(path, "wb");
		assert_non_null(f);
		assert_int_equal(gzwrite(f, buf, (unsigned)(hn + len)), (int)(hn + len));
		assert_int_equal(gzclose(f), Z_OK);
	}
	free(buf);
}


static struct dfq_data *open_ok(const char *spec, const struct dfq_data_opts *o)
{
	struct dfq_data *d = NULL;
	struct dfq_error err;
	dfq_error_clear(&err);
	if (dfq_data_open(spec, o, &d, &err) != DFQ_OK)
		fail_msg("opening %s failed: %s", spec, err.msg);
	assert_non_null(d);
	return d;
}

/* Opening must fail with want and a one-line message containing needle. */
static void open_fails(const char *spec, const struct dfq_data_opts *o, dfq_status want,
		       const char *needle)
{
	struct dfq_data *d = (struct dfq_data *)1;
	struct dfq_error err;
	dfq_error_clear(&err);
	dfq_status st = dfq_data_open(spec, o, &d, &err);
	if (st == DFQ_OK)
		fail_msg("opening %s should have failed", spec);
	assert_null(d);
	assert_int_equal(st, want);
	assert_null(strchr(err.msg, '\n'));
	if (needle && !strstr(err.msg, needle))
		fail_msg("message '%s' lacks '%s'", err.msg, needle);
}

static void read_ok(struct dfq_data *d, dfq_data_split split, int64_t first, int64_t n,
		    float *x, int64_t *y)
{
	struct dfq_error err;
	dfq_error_clear(&err);
	if (dfq_data_read(d, split, first, n, x, y, &err) != DFQ_OK)
		fail_msg("reading [%lld, +%lld) failed: %s", (long long)first, (long long)n,
			 err.msg);
}

static void assert_close(float got, double want, double tol)
{
	if (fabs(got - want) > tol)
		fail_msg("got %.9g, expected %.9g", (double)got, want);
}

/* --- IDX ------------------------------------------------------------------ */

enum { NI = 7, IH = 3, IW = 4, ITEM = IH * IW };

/* Image i, pixel j: a value that tells them apart. */
static unsigned char idx_pixel(int i, int j)
{
	return (unsigned char)(i * 31 + j * 7 + 1);
}

static void make_idx_pair(const char *img, const char *lab, bool gz, int nimg, int nlab)
{
	unsigned char px[NI * ITEM], y[NI + 1];
	for (int i = 0; i < NI; i++)
		for (int j = 0; j < ITEM; j++)
			px[i * ITEM + j] = idx_pixel(i, j);
	for (int i = 0; i < NI + 1; i++)
		y[i] = (unsigned char)(i % 4);
	uint32_t di[3] = {(uint32_t)nimg, IH, IW}, dl[1] = {(uint32_t)nlab};
	write_idx(img, gz, 0x08, 3, di, px, (size_t)nimg * ITEM);
	write_idx(lab, gz, 0x08, 1, dl, y, (size_t)nlab);
}

static void check_idx_samples(struct dfq_data *d, int64_t first, int64_t n, const float *x,
			      const int64_t *y, float mean, float std)
{
	for (int64_t i = 0; i < n; i++) {
		assert_int_equal(y[i], (first + i) % 4);
		for (int j = 0; j < ITEM; j++) {
			double raw = idx_pixel((int)(first + i), j);
			assert_close(x[i * ITEM + j], (raw / 255.0 - mean) / std, 1e-6);
		}
	}
}

static void idx_roundtrip(bool gz)
{
	char spec[600];
	make_idx_pair(tpath("img.idx"), tpath("lab.idx"), gz, NI, NI);
	snprintf(spec, sizeof spec, "idx:%s,%s", tpath("img.idx"), tpath("lab.idx"));
	struct dfq_data_opts o;
	dfq_data_opts_default(&o);
	o.n_eval = NI;
	o.n_calib = 0;
	o.nmean = o.nstd = 1;
	o.mean[0] = 0.5f;
	o.std[0] = 0.25f;
	struct dfq_data *d = open_ok(spec, &o);
	const struct dfq_data_info *in = dfq_data_get_info(d);
	assert_int_equal(in->kind, DFQ_DATA_IDX);
	assert_int_equal(in->eval_total, NI);
	assert_int_equal(in->channels, 1);
	assert_int_equal(in->height, IH);
	assert_int_equal(in->width, IW);
	assert_int_equal(in->nclasses, 4);
	assert_true(in->eight_bit);
	assert_int_equal(dfq_data_sample_numel(d), ITEM);
	float x[NI * ITEM];
	int64_t y[NI];
	/* Forwards, then backwards (a gzip stream must start again), then all. */
	read_ok(d, DFQ_SPLIT_EVAL, 4, 3, x, y);
	check_idx_samples(d, 4, 3, x, y, 0.5f, 0.25f);
	read_ok(d, DFQ_SPLIT_EVAL, 1, 2, x, y);
	check_idx_samples(d, 1, 2, x, y, 0.5f, 0.25f);
	read_ok(d, DFQ_SPLIT_EVAL, 0, NI, x, y);
	check_idx_samples(d, 0, NI, x, y, 0.5f, 0.25f);
	dfq_data_free(d);
}

static void test_idx_raw(void **state)
{
	idx_roundtrip(false);
}

static void test_idx_gz(void **state)
{
	idx_roundtrip(true);
}

static void test_idx_bad_magic(void **state)
{
	const unsigned char junk[16] = {0x01, 0x02, 0x08, 0x03, 0, 0, 0, 1};
	write_file(tpath("junk.idx"), junk, sizeof junk);
	make_idx_pair(tpath("img.idx"), tpath("lab.idx"), false, NI, NI);
	char spec[600];
	snprintf(spec, sizeof spec, "idx:%s,%s", tpath("junk.idx"), tpath("lab.idx"));
	open_fails(spec, NULL, DFQ_ERR_PARSE, "bad magic");
	snprintf(spec, sizeof spec, "idx:%s,%s", tpath("img.idx"), tpath("junk.idx"));
	open_fails(spec, NULL, DFQ_ERR_PARSE, "bad magic");
	/* A well-formed IDX file of another element type. */
	uint32_t dims[3] = {1, 1, 1};
	float one = 1;
	write_idx(tpath("float.idx"), false, 0x0D, 3, dims, &one, 4);
	snprintf(spec, sizeof spec, "idx:%s,%s", tpath("float.idx"), tpath("lab.idx"));
	open_fails(spec, NULL, DFQ_ERR_UNSUPPORTED, "0x0d");
	/* gzip magic, then garbage. */
	const unsigned char badgz[12] = {0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff};
	write_file(tpath("bad.gz"), badgz, sizeof badgz);
	snprintf(spec, sizeof spec, "idx:%s,%s", tpath("bad.gz"), tpath("lab.idx"));
	open_fails(spec, NULL, DFQ_ERR_PARSE, "gzip");
	write_file(tpath("empty.idx"), "", 0);
	snprintf(spec, sizeof spec, "idx:%s,%s", tpath("empty.idx"), tpath("lab.idx"));
	open_fails(spec, NULL, DFQ_ERR_PARSE, "not an IDX file");
}

static void test_idx_truncated(void **state)
{
	/* Raw: the header promises NI images, the file holds NI - 1 and a bit. */
	unsigned char px[NI * ITEM] = {0};
	uint32_t di[3] = {NI, IH, IW}, dl[1] = {NI};
	unsigned char y[NI] = {0};
	write_idx(tpath("short.idx"), false, 0x08, 3, di, px, (NI - 1) * ITEM + 5);
	write_idx(tpath("lab.idx"), false, 0x08, 1, dl, y, NI);
	char spec[600];
	snprintf(spec, sizeof spec, "idx:%s,%s", tpath("short.idx"), tpath("lab.idx"));
	open_fails(spec, NULL, DFQ_ERR_PARSE, "truncated");
	/* Longer than the header says is refused too. */
	write_idx(tpath("long.idx"), false, 0x08, 3, di, px, NI * ITEM);
	FILE *f = fopen(tpath("long.idx"), "ab");
	assert_non_null(f);
	fputc(0, f);
	fclose(f);
	snprintf(spec, sizeof spec, "idx:%s,%s", tpath("long.idx"), tpath("lab.idx"));
	open_fails(spec, NULL, DFQ_ERR_PARSE, "longer");
	/* gzip: only the read that reaches the missing bytes can tell. */
	write_idx(tpath("short.idx.gz"), true, 0x08, 3, di, px, (NI - 1) * ITEM + 5);
	snprintf(spec, sizeof spec, "idx:%s,%s", tpath("short.idx.gz"), tpath("lab.idx"));
	struct dfq_data_opts o;
	dfq_data_opts_default(&o);
	o.n_calib = 0;
	struct dfq_data *d = open_ok(spec, &o);
	float x[NI * ITEM];
	struct dfq_error err;
	read_ok(d, DFQ_SPLIT_EVAL, 0, NI - 1, x, NULL);
	assert_int_equal(dfq_data_read(d, DFQ_SPLIT_EVAL, NI - 2, 2, x, NULL, &err),
			 DFQ_ERR_PARSE);
	assert_non_null(strstr(err.msg, "truncated"));
	dfq_data_free(d);
	/* A truncated gzip label file is found at open time (labels are read whole). */
	write_idx(tpath("img.idx"), false, 0x08, 3, di, px, NI * ITEM);
	write_idx(tpath("shortlab.gz"), true, 0x08, 1, dl, y, NI - 2);
	snprintf(spec, sizeof spec, "idx:%s,%s", tpath("img.idx"), tpath("shortlab.gz"));
	open_fails(spec, NULL, DFQ_ERR_PARSE, "truncated");
}

static void test_idx_count_mismatch(void **state)
{
	make_idx_pair(tpath("img.idx"), tpath("lab.idx"), false, NI, NI - 1);
	char spec[600];
	snprintf(spec, sizeof spec, "idx:%s,%s", tpath("img.idx"), tpath("lab.idx"));
	open_fails(spec, NULL, DFQ_ERR_SHAPE, "6 labels");
	/* Labels must be one-dimensional. */
	uint32_t dims[2] = {NI, 1};
	unsigned char y[NI] = {0};
	write_idx(tpath("lab2.idx"), false, 0x08, 2, dims, y, NI);
	make_idx_pair(tpath("img.idx"), tpath("lab.idx"), false, NI, NI);
	snprintf(spec, sizeof spec, "idx:%s,%s", tpath("img.idx"), tpath("lab2.idx"));
	open_fails(spec, NULL, DFQ_ERR_SHAPE, "1-dimensional");
}

/* --- NPY ------------------------------------------------------------------ */

static void test_npy_f32_i64(void **state)
{
	enum { N = 6, C = 2, H = 3, W = 3, S = C * H * W };
	float xs[N * S];
	int64_t ys[N];
	for (int i = 0; i < N * S; i++)
		xs[i] = (float)i * 0.5f - 3.0f;
	for (int i = 0; i < N; i++)
		ys[i] = 5 - i;
	write_npy(tpath("x.npy"), "<f4", "(6, 2, 3, 3)", xs, sizeof xs);
	write_npy(tpath("y.npy"), "<i8", "(6,)", ys, sizeof ys);
	char spec[600];
	snprintf(spec, sizeof spec, "npy:%s,%s", tpath("x.npy"), tpath("y.npy"));
	struct dfq_data_opts o;
	dfq_data_opts_default(&o);
	o.n_calib = 0;
	o.nmean = o.nstd = 2;
	o.mean[0] = 1;
	o.mean[1] = -1;
	o.std[0] = 2;
	o.std[1] = 4;
	struct dfq_data *d = open_ok(spec, &o);
	const struct dfq_data_info *in = dfq_data_get_info(d);
	assert_int_equal(in->channels, C);
	assert_int_equal(in->height, H);
	assert_false(in->eight_bit);
	assert_string_equal(in->element, "float32");
	assert_int_equal(in->nclasses, 6);
	float x[N * S];
	int64_t y[N];
	read_ok(d, DFQ_SPLIT_EVAL, 0, N, x, y);
	for (int i = 0; i < N; i++) {
		assert_int_equal(y[i], 5 - i);
		for (int j = 0; j < S; j++) {
			int c = j / (H * W);
			double want = (xs[i * S + j] - o.mean[c]) / o.std[c];
			assert_close(x[i * S + j], want, 1e-6);
		}
	}
	dfq_data_free(d);
	/* Three mean values for two channels is an error. */
	o.nmean = o.nstd = 3;
	o.mean[2] = 0;
	o.std[2] = 1;
	open_fails(spec, &o, DFQ_ERR_ARG, "3 mean/std values");
}

static void test_npy_u8_nhw_i32(void **state)
{
	enum { N = 5, H = 4, W = 4 };
	unsigned char xs[N * H * W];
	int32_t ys[N] = {0, 1, 2, 1, 0};
	for (int i = 0; i < N * H * W; i++)
		xs[i] = (unsigned char)(i * 3);
	write_npy(tpath("xu.npy"), "|u1", "(5, 4, 4)", xs, sizeof xs);
	write_npy(tpath("yi.npy"), "<i4", "(5,)", ys, sizeof ys);
	char spec[600];
	snprintf(spec, sizeof spec, "npy:%s,%s", tpath("xu.npy"), tpath("yi.npy"));
	struct dfq_data_opts o;
	dfq_data_opts_default(&o);
	o.n_calib = 0;
	struct dfq_data *d = open_ok(spec, &o);
	const struct dfq_data_info *in = dfq_data_get_info(d);
	/* NHW is one channel: [1, 4, 4]. */
	assert_int_equal(in->channels, 1);
	assert_int_equal(in->height, H);
	assert_int_equal(in->width, W);
	assert_true(in->eight_bit);
	assert_int_equal(in->nclasses, 3);
	struct dfq_tensor *x = NULL, *y = NULL;
	struct dfq_error err;
	assert_int_equal(dfq_data_batch(d, DFQ_SPLIT_EVAL, 1, 3, &x, &y, &err), DFQ_OK);
	assert_int_equal(x->ndim, 4);
	assert_int_equal(x->dims[0], 3);
	assert_int_equal(x->dims[1], 1);
	assert_int_equal(x->dims[2], H);
	assert_int_equal(y->dims[0], 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(dfq_tensor_i64(y)[i], ys[1 + i]);
	for (int j = 0; j < 3 * H * W; j++)
		assert_close(dfq_tensor_f32(x)[j], xs[H * W + j] / 255.0, 1e-7);
	dfq_tensor_free(x);
	dfq_tensor_free(y);
	dfq_data_free(d);
	/* The model's input must be [?, 1, 4, 4]. */
	d = open_ok(spec, &o);
	struct dfq_shape want = {.dtype = DFQ_DTYPE_F32, .ndim = 4, .dims = {-1, 1, 4, 4}};
	assert_int_equal(dfq_data_fit(d, "in", &want, &err), DFQ_OK);
	struct dfq_shape bad = {.dtype = DFQ_DTYPE_F32, .ndim = 4, .dims = {-1, 3, 4, 4}};
	assert_int_equal(dfq_data_fit(d, "in", &bad, &err), DFQ_ERR_SHAPE);
	assert_non_null(strstr(err.msg, "[1, 4, 4]"));
	assert_non_null(strstr(err.msg, "[?, 3, 4, 4]"));
	dfq_data_free(d);
}

static void test_npy_bad(void **state)
{
	float xs[4 * 4] = {0};
	float yf[4] = {0};
	int64_t y3[3] = {0};
	int64_t yneg[4] = {0, 1, -1, 0};
	write_npy(tpath("x4.npy"), "<f4", "(4, 2, 2)", xs, sizeof xs);
	write_npy(tpath("yf.npy"), "<f4", "(4,)", yf, sizeof yf);
	write_npy(tpath("y3.npy"), "<i8", "(3,)", y3, sizeof y3);
	write_npy(tpath("yneg.npy"), "<i8", "(4,)", yneg, sizeof yneg);
	write_npy(tpath("xi.npy"), "<i8", "(2, 2, 2)", xs, 8 * 8);
	write_npy(tpath("xshort.npy"), "<f4", "(4, 2, 2)", xs, sizeof xs - 4);
	char spec[600];
	snprintf(spec, sizeof spec, "npy:%s,%s", tpath("x4.npy"), tpath("yf.npy"));
	open_fails(spec, NULL, DFQ_ERR_UNSUPPORTED, "integers");
	snprintf(spec, sizeof spec, "npy:%s,%s", tpath("x4.npy"), tpath("y3.npy"));
	open_fails(spec, NULL, DFQ_ERR_SHAPE, "3 labels");
	snprintf(spec, sizeof spec, "npy:%s,%s", tpath("x4.npy"), tpath("yneg.npy"));
	open_fails(spec, NULL, DFQ_ERR_PARSE, "label -1 of sample 2");
	snprintf(spec, sizeof spec, "npy:%s,%s", tpath("xi.npy"), tpath("y3.npy"));
	open_fails(spec, NULL, DFQ_ERR_UNSUPPORTED, "int64 images");
	snprintf(spec, sizeof spec, "npy:%s,%s", tpath("xshort.npy"), tpath("y3.npy"));
	open_fails(spec, NULL, DFQ_ERR_PARSE, "truncated");
}

/* The streaming .npy reader added for data sets. */
static void test_npy_reader(void **state)
{
	int16_t v[12];
	for (int i = 0; i < 12; i++)
		v[i] = (int16_t)(i * 100 - 500);
	write_npy(tpath("r.npy"), "<i2", "(3, 4)", v, sizeof v);
	struct dfq_npy_reader *r = NULL;
	struct dfq_error err;
	assert_int_equal(dfq_npy_open(tpath("r.npy"), &r, &err), DFQ_OK);
	struct dfq_shape s;
	dfq_npy_reader_shape(r, &s);
	assert_int_equal(s.ndim, 2);
	assert_int_equal(s.dims[0], 3);
	assert_int_equal(s.dims[1], 4);
	assert_int_equal(s.dtype, DFQ_DTYPE_I64);
	assert_string_equal(dfq_npy_reader_dtype(r), "int16");
	int64_t q[5];
	float f[5];
	assert_int_equal(dfq_npy_read_i64(r, 7, 5, q, &err), DFQ_OK);
	assert_int_equal(dfq_npy_read_f32(r, 2, 3, f, &err), DFQ_OK);
	for (int i = 0; i < 5; i++)
		assert_int_equal(q[i], v[7 + i]);
	for (int i = 0; i < 3; i++)
		assert_close(f[i], v[2 + i], 0);
	assert_int_equal(dfq_npy_read_i64(r, 8, 5, q, &err), DFQ_ERR_ARG);
	dfq_npy_close(r);
	float ff[2] = {1, 2};
	write_npy(tpath("rf.npy"), "<f4", "(2,)", ff, sizeof ff);
	assert_int_equal(dfq_npy_open(tpath("rf.npy"), &r, &err), DFQ_OK);
	assert_int_equal(dfq_npy_read_i64(r, 0, 2, q, &err), DFQ_ERR_UNSUPPORTED);
	dfq_npy_close(r);
	assert_int_equal(dfq_npy_open(tpath("missing.npy"), &r, &err), DFQ_ERR_IO);
	assert_null(r);
}

/* --- resizing --------------------------------------------------------------- */

static void resize(const float *src, int c, int sh, int sw, float *dst, int dh, int dw)
{
	struct dfq_error err;
	assert_int_equal(dfq_image_resize_crop(src, c, sh, sw, dst, dh, dw, &err), DFQ_OK);
}

static void test_resize_up_bilinear(void **state)
{
	/* 2x2 -> 4x4: output centres fall at -0.25, 0.25, 0.75, 1.25 source
	 * pixels, so each axis takes a, .75a+.25b, .25a+.75b, b. */
	const float src[4] = {0, 4, 8, 16};
	float dst[16];
	resize(src, 1, 2, 2, dst, 4, 4);
	const float w0[4] = {1, 0.75f, 0.25f, 0};
	for (int y = 0; y < 4; y++)
		for (int x = 0; x < 4; x++) {
			double top = w0[x] * src[0] + (1 - w0[x]) * src[1];
			double bot = w0[x] * src[2] + (1 - w0[x]) * src[3];
			assert_close(dst[y * 4 + x], w0[y] * top + (1 - w0[y]) * bot, 1e-5);
		}
	assert_close(dst[0], 0, 0);
	assert_close(dst[5], 0.75 * (0.75 * 0 + 0.25 * 4) + 0.25 * (0.75 * 8 + 0.25 * 16), 1e-5);
	assert_close(dst[15], 16, 0);
}

static void test_resize_down_area(void **state)
{
	/* 4x4 -> 2x2: every output is the mean of its 2x2 block. */
	float src[16], dst[4];
	for (int i = 0; i < 16; i++)
		src[i] = (float)i;
	resize(src, 1, 4, 4, dst, 2, 2);
	assert_close(dst[0], (0 + 1 + 4 + 5) / 4.0, 1e-6);
	assert_close(dst[1], (2 + 3 + 6 + 7) / 4.0, 1e-6);
	assert_close(dst[2], (8 + 9 + 12 + 13) / 4.0, 1e-6);
	assert_close(dst[3], (10 + 11 + 14 + 15) / 4.0, 1e-6);
	/* 3x3 -> 2x2: output pixel 0 covers source [0, 1.5): pixel 0 whole and
	 * half of pixel 1, so (a + b/2) / 1.5 per axis. */
	const float s3[9] = {3, 6, 9, 12, 15, 18, 21, 24, 27};
	float d2[4];
	resize(s3, 1, 3, 3, d2, 2, 2);
	double r0 = (3 + 6 * 0.5) / 1.5, r1 = (12 + 15 * 0.5) / 1.5;
	assert_close(d2[0], (r0 + r1 * 0.5) / 1.5, 1e-5);
	double last = ((27 + 24 * 0.5) / 1.5 + (18 + 15 * 0.5) / 1.5 * 0.5) / 1.5;
	assert_close(d2[3], last, 1e-5);
}

static void test_resize_crop(void **state)
{
	/* 2 channels of 2x4 -> 2x2: the scale is 1 (the shorter side fits), the
	 * centre two columns are kept exactly. */
	float src[16], dst[8];
	for (int i = 0; i < 16; i++)
		src[i] = (float)(i * i);
	resize(src, 2, 2, 4, dst, 2, 2);
	for (int c = 0; c < 2; c++)
		for (int y = 0; y < 2; y++)
			for (int x = 0; x < 2; x++)
				assert_close(dst[c * 4 + y * 2 + x], src[c * 8 + y * 4 + x + 1], 0);
	/* 4x8 -> 2x2: halve to 2x4, keep columns 1..2 of that, i.e. the 2x2
	 * blocks of source columns 2..5. */
	float big[32], out[4];
	for (int i = 0; i < 32; i++)
		big[i] = (float)i;
	resize(big, 1, 4, 8, out, 2, 2);
	assert_close(out[0], (2 + 3 + 10 + 11) / 4.0, 1e-6);
	assert_close(out[1], (4 + 5 + 12 + 13) / 4.0, 1e-6);
	assert_close(out[2], (18 + 19 + 26 + 27) / 4.0, 1e-6);
	/* A tall image crops rows: 6x2 -> 2x2 keeps rows 2..3. */
	float tall[12], t2[4];
	for (int i = 0; i < 12; i++)
		tall[i] = (float)i;
	resize(tall, 1, 6, 2, t2, 2, 2);
	for (int i = 0; i < 4; i++)
		assert_close(t2[i], tall[4 + i], 0);
}

/* --- image folders ---------------------------------------------------------- */

static void mkdir_ok(const char *path)
{
	assert_true(mkdir(path, 0755) == 0);
}

/* A w x h image of comp channels, every pixel the colour rgba (gray: r). */
static void write_png(const char *path, int w, int h, int comp, const unsigned char *rgba)
{
	unsigned char *px = malloc((size_t)w * h * comp);
	assert_non_null(px);
	for (int i = 0; i < w * h; i++)
		for (int k = 0; k < comp; k++)
			px[i * comp + k] = rgba[k];
	assert_true(stbi_write_png(path, w, h, comp, px, w * comp) != 0);
	free(px);
}

static void make_folder(void)
{
	static const unsigned char red[4] = {200, 0, 0, 255}, gray[4] = {90, 90, 90, 255};
	static const unsigned char blue[4] = {10, 20, 250, 128};
	mkdir_ok(tpath("imgs"));
	mkdir_ok(tpath("imgs/cat"));
	mkdir_ok(tpath("imgs/ant"));
	mkdir_ok(tpath("imgs/bee"));
	mkdir_ok(tpath("imgs/.hidden"));
	/* ant: 2 files, bee: 1, cat: 3; sorted names give ant 0, bee 1, cat 2. */
	write_png(tpath("imgs/ant/b.png"), 5, 7, 3, red);
	write_png(tpath("imgs/ant/a.PNG"), 8, 8, 1, gray);
	write_png(tpath("imgs/bee/x.png"), 3, 2, 4, blue);
	write_png(tpath("imgs/cat/1.png"), 4, 4, 2, gray);
	write_png(tpath("imgs/cat/2.png"), 9, 3, 3, red);
	write_png(tpath("imgs/cat/3.png"), 2, 2, 1, gray);
	write_png(tpath("imgs/.hidden/z.png"), 2, 2, 1, gray);
	write_file(tpath("imgs/cat/notes.txt"), "not an image", 12);
	write_file(tpath("imgs/README"), "hello", 5);
}

static void test_images_folder(void **state)
{
	make_folder();
	char spec[600];
	snprintf(spec, sizeof spec, "images:%s/", tpath("imgs"));
	struct dfq_data_opts o;
	dfq_data_opts_default(&o);
	o.n_calib = 0;
	struct dfq_data *d = open_ok(spec, &o);
	const struct dfq_data_info *in = dfq_data_get_info(d);
	assert_int_equal(in->eval_total, 6);
	assert_int_equal(in->nclasses, 3);
	assert_string_equal(in->class_names[0], "ant");
	assert_string_equal(in->class_names[2], "cat");
	assert_true(in->from_model);
	assert_int_equal(dfq_data_sample_numel(d), 0);
	float x[6 * 3 * 4 * 4];
	int64_t y[6];
	struct dfq_error err;
	/* Unfitted, the size is unknown. */
	assert_int_equal(dfq_data_read(d, DFQ_SPLIT_EVAL, 0, 1, x, y, &err), DFQ_ERR_ARG);

	/* RGB, 4x4. */
	struct dfq_shape rgb = {.dtype = DFQ_DTYPE_F32, .ndim = 4, .dims = {-1, 3, 4, 4}};
	assert_int_equal(dfq_data_fit(d, "x", &rgb, &err), DFQ_OK);
	assert_int_equal(in->channels, 3);
	read_ok(d, DFQ_SPLIT_EVAL, 0, 6, x, y);
	/* Round-robin: ant/a.PNG, bee/x, cat/1, ant/b, cat/2, cat/3. */
	const int64_t want[6] = {0, 1, 2, 0, 2, 2};
	for (int i = 0; i < 6; i++)
		assert_int_equal(y[i], want[i]);
	const int S = 3 * 16;
	/* Uniform images stay uniform through any resize: gray -> (g, g, g),
	 * colour as it is, alpha dropped; values / 255. */
	const float expect[6][3] = {{90, 90, 90}, {10, 20, 250}, {90, 90, 90},
				    {200, 0, 0},  {200, 0, 0},   {90, 90, 90}};
	for (int i = 0; i < 6; i++)
		for (int c = 0; c < 3; c++)
			for (int p = 0; p < 16; p++)
				assert_close(x[i * S + c * 16 + p], expect[i][c] / 255.0, 1e-5);

	/* Gray, 2x3, with normalisation: RGB becomes luma .299R + .587G + .114B. */
	dfq_data_free(d);
	o.nmean = o.nstd = 1;
	o.mean[0] = 0.5f;
	o.std[0] = 0.2f;
	d = open_ok(spec, &o);
	in = dfq_data_get_info(d);
	struct dfq_shape g = {.dtype = DFQ_DTYPE_F32, .ndim = 4, .dims = {1, 1, 2, 3}};
	assert_int_equal(dfq_data_fit(d, "x", &g, &err), DFQ_OK);
	read_ok(d, DFQ_SPLIT_EVAL, 1, 3, x, y);
	double luma_blue = 0.299 * 10 + 0.587 * 20 + 0.114 * 250;
	double luma_red = 0.299 * 200;
	for (int p = 0; p < 6; p++) {
		assert_close(x[p], (luma_blue / 255.0 - 0.5) / 0.2, 1e-4);
		assert_close(x[6 + p], (90 / 255.0 - 0.5) / 0.2, 1e-5);
		assert_close(x[12 + p], (luma_red / 255.0 - 0.5) / 0.2, 1e-4);
	}
	/* Two channels cannot be made from images. */
	struct dfq_shape two = {.dtype = DFQ_DTYPE_F32, .ndim = 4, .dims = {1, 2, 2, 3}};
	assert_int_equal(dfq_data_fit(d, "x", &two, &err), DFQ_ERR_SHAPE);
	struct dfq_shape dyn = {.dtype = DFQ_DTYPE_F32, .ndim = 4, .dims = {1, 3, -1, -1}};
	assert_int_equal(dfq_data_fit(d, "x", &dyn, &err), DFQ_ERR_SHAPE);
	dfq_data_free(d);

	/* A broken file is named when it is read. */
	write_file(tpath("imgs/bee/y.png"), "\x89PNG garbage", 12);
	d = open_ok(spec, &o);
	assert_int_equal(dfq_data_fit(d, "x", &g, &err), DFQ_OK);
	assert_int_equal(dfq_data_read(d, DFQ_SPLIT_EVAL, 0, 7, x, y, &err), DFQ_ERR_PARSE);
	assert_non_null(strstr(err.msg, "bee/y.png"));
	dfq_data_free(d);

	snprintf(spec, sizeof spec, "images:%s", tpath("imgs/ant"));
	open_fails(spec, NULL, DFQ_ERR_PARSE, "no class sub-folders");
	snprintf(spec, sizeof spec, "images:%s", tpath("nowhere"));
	open_fails(spec, NULL, DFQ_ERR_IO, "nowhere");
}

/* A JPEG decodes too (lossy: only roughly the colour). */
static void test_images_jpeg(void **state)
{
	mkdir_ok(tpath("jpg"));
	mkdir_ok(tpath("jpg/only"));
	unsigned char px[16 * 16 * 3];
	for (int i = 0; i < 16 * 16; i++) {
		px[3 * i] = 100;
		px[3 * i + 1] = 150;
		px[3 * i + 2] = 200;
	}
	assert_true(stbi_write_jpg(tpath("jpg/only/a.jpg"), 16, 16, 3, px, 95) != 0);
	char spec[600];
	snprintf(spec, sizeof spec, "images:%s", tpath("jpg"));
	struct dfq_data_opts o;
	dfq_data_opts_default(&o);
	o.n_calib = 0;
	struct dfq_data *d = open_ok(spec, &o);
	struct dfq_shape rgb = {.dtype = DFQ_DTYPE_F32, .ndim = 4, .dims = {-1, 3, 8, 8}};
	struct dfq_error err;
	assert_int_equal(dfq_data_fit(d, "x", &rgb, &err), DFQ_OK);
	float x[3 * 64];
	read_ok(d, DFQ_SPLIT_EVAL, 0, 1, x, NULL);
	assert_close(x[0], 100 / 255.0, 4 / 255.0);
	assert_close(x[64 + 10], 150 / 255.0, 4 / 255.0);
	assert_close(x[128 + 63], 200 / 255.0, 4 / 255.0);
	dfq_data_free(d);
}

/* --- slices and streaming ------------------------------------------------------ */

static void make_npy_set(int n)
{
	float *xs = malloc(sizeof *xs * (size_t)n * 4);
	int64_t *ys = malloc(sizeof *ys * (size_t)n);
	assert_non_null(xs);
	assert_non_null(ys);
	for (int i = 0; i < n * 4; i++)
		xs[i] = (float)i;
	for (int i = 0; i < n; i++)
		ys[i] = i % 10;
	char shape[64];
	snprintf(shape, sizeof shape, "(%d, 1, 2, 2)", n);
	write_npy(tpath("sx.npy"), "<f4", shape, xs, sizeof *xs * (size_t)n * 4);
	snprintf(shape, sizeof shape, "(%d,)", n);
	write_npy(tpath("sy.npy"), "<i8", shape, ys, sizeof *ys * (size_t)n);
	free(xs);
	free(ys);
}

static void test_slices(void **state)
{
	make_npy_set(50);
	char spec[600];
	snprintf(spec, sizeof spec, "npy:%s,%s", tpath("sx.npy"), tpath("sy.npy"));
	/* Defaults: calibration is the last N/10, evaluation the rest. */
	struct dfq_data *d = open_ok(spec, NULL);
	const struct dfq_data_info *in = dfq_data_get_info(d);
	assert_int_equal(in->eval_first, 0);
	assert_int_equal(in->eval_n, 45);
	assert_int_equal(in->calib_first, 45);
	assert_int_equal(in->calib_n, 5);
	assert_int_equal(dfq_data_count(d, DFQ_SPLIT_CALIB), 5);
	float x[4 * 5];
	int64_t y[5];
	read_ok(d, DFQ_SPLIT_CALIB, 0, 5, x, y);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(y[i], (45 + i) % 10);
		assert_close(x[4 * i], (float)(4 * (45 + i)), 0);
	}
	/* Reading past a slice's end is refused (it would reach the other). */
	struct dfq_error err;
	assert_int_equal(dfq_data_read(d, DFQ_SPLIT_EVAL, 44, 2, x, y, &err), DFQ_ERR_ARG);
	assert_int_equal(dfq_data_read(d, DFQ_SPLIT_CALIB, 5, 1, x, y, &err), DFQ_ERR_ARG);
	dfq_data_free(d);

	struct dfq_data_opts o;
	dfq_data_opts_default(&o);
	o.n_eval = 40;
	d = open_ok(spec, &o);
	in = dfq_data_get_info(d);
	assert_int_equal(in->eval_n, 40);
	assert_int_equal(in->calib_n, 10);
	assert_int_equal(in->calib_first, 40);
	dfq_data_free(d);
	o.n_calib = 11;
	open_fails(spec, &o, DFQ_ERR_ARG, "overlap");
	o.n_eval = 51;
	o.n_calib = 0;
	open_fails(spec, &o, DFQ_ERR_ARG, "51 evaluation samples");
	o.n_eval = -1;
	o.n_calib = 20;
	d = open_ok(spec, &o);
	assert_int_equal(dfq_data_count(d, DFQ_SPLIT_EVAL), 30);
	assert_int_equal(dfq_data_count(d, DFQ_SPLIT_CALIB), 20);
	dfq_data_free(d);
	o.n_calib = 0;
	d = open_ok(spec, &o);
	assert_int_equal(dfq_data_count(d, DFQ_SPLIT_EVAL), 50);
	assert_int_equal(dfq_data_read(d, DFQ_SPLIT_CALIB, 0, 1, x, y, &err), DFQ_ERR_ARG);
	assert_null(dfq_data_get_info(d)->calib_source);
	dfq_data_free(d);
}

static void test_fmnist(void **state)
{
	if (access(DFQ_FMNIST_DIR "/t10k-images-idx3-ubyte.gz", R_OK) != 0)
		dfq_skip("Debian's dataset-fashion-mnist is not installed\n");
	struct dfq_data_opts o;
	dfq_data_opts_default(&o);
	o.n_eval = 100;
	o.n_calib = 64;
	struct dfq_data *d = open_ok("fmnist", &o);
	const struct dfq_data_info *in = dfq_data_get_info(d);
	assert_int_equal(in->kind, DFQ_DATA_FMNIST);
	assert_int_equal(in->eval_total, 10000);
	assert_int_equal(in->calib_total, 60000);
	assert_int_equal(in->eval_n, 100);
	assert_int_equal(in->calib_first, 0);
	assert_int_equal(in->calib_n, 64);
	assert_int_equal(in->nclasses, 10);
	assert_string_equal(in->class_names[9], "Ankle boot");
	assert_close(in->mean[0], 0.2860, 1e-7);
	assert_close(in->std[0], 0.3530, 1e-7);
	/* The first test labels are 9, 2, 1, 1; the first training labels 9, 0, 0, 3. */
	float x[4 * 784];
	int64_t y[4];
	read_ok(d, DFQ_SPLIT_EVAL, 0, 4, x, y);
	assert_int_equal(y[0], 9);
	assert_int_equal(y[1], 2);
	assert_int_equal(y[3], 1);
	assert_close(x[0], (0 - 0.2860) / 0.3530, 1e-6); /* a black corner */
	read_ok(d, DFQ_SPLIT_CALIB, 0, 4, x, y);
	assert_int_equal(y[0], 9);
	assert_int_equal(y[1], 0);
	assert_int_equal(y[3], 3);
	dfq_data_free(d);
	o.n_calib = 60001;
	open_fails("fmnist", &o, DFQ_ERR_ARG, "60000");
	open_fails("fmnist:/nonexistent", NULL, DFQ_ERR_IO, "dataset-fashion-mnist");
}

/* Reading in batches that do not divide N gives what one read gives, for
 * every kind of file, in any order. */
static void stream_same(const char *spec, int64_t n, int64_t item)
{
	struct dfq_data_opts o;
	dfq_data_opts_default(&o);
	o.n_calib = 0;
	struct dfq_data *d = open_ok(spec, &o);
	assert_int_equal(dfq_data_count(d, DFQ_SPLIT_EVAL), n);
	float *all = malloc(sizeof *all * (size_t)(n * item));
	float *part = malloc(sizeof *part * (size_t)(n * item));
	int64_t *ya = malloc(sizeof *ya * (size_t)n), *yp = malloc(sizeof *yp * (size_t)n);
	assert_true(all && part && ya && yp);
	read_ok(d, DFQ_SPLIT_EVAL, 0, n, all, ya);
	for (int64_t b = 1; b <= 4; b++) {
		memset(part, 0, sizeof *part * (size_t)(n * item));
		/* Back to front, so a gzip stream rewinds on every batch. */
		int64_t last = (n - 1) / b * b;
		for (int64_t first = last; first >= 0; first -= b) {
			int64_t m = n - first < b ? n - first : b;
			read_ok(d, DFQ_SPLIT_EVAL, first, m, part + first * item, yp + first);
		}
		assert_memory_equal(all, part, sizeof *all * (size_t)(n * item));
		assert_memory_equal(ya, yp, sizeof *ya * (size_t)n);
	}
	free(all);
	free(part);
	free(ya);
	free(yp);
	dfq_data_free(d);
}

static void test_streaming(void **state)
{
	char spec[600];
	make_idx_pair(tpath("img.idx"), tpath("lab.idx"), false, NI, NI);
	snprintf(spec, sizeof spec, "idx:%s,%s", tpath("img.idx"), tpath("lab.idx"));
	stream_same(spec, NI, ITEM);
	make_idx_pair(tpath("img.gz"), tpath("lab.gz"), true, NI, NI);
	snprintf(spec, sizeof spec, "idx:%s,%s", tpath("img.gz"), tpath("lab.gz"));
	stream_same(spec, NI, ITEM);
	make_npy_set(11);
	snprintf(spec, sizeof spec, "npy:%s,%s", tpath("sx.npy"), tpath("sy.npy"));
	stream_same(spec, 11, 4);
}

static void test_spec_errors(void **state)
{
	open_fails("mnist", NULL, DFQ_ERR_ARG, "fmnist[:DIR]");
	open_fails("idx:onlyone", NULL, DFQ_ERR_ARG, "IMAGES,LABELS");
	open_fails("idx:a,b,c", NULL, DFQ_ERR_ARG, "one comma");
	open_fails("npy:x.npy,", NULL, DFQ_ERR_ARG, "X.npy,Y.npy");
	open_fails("images:", NULL, DFQ_ERR_ARG, "unknown data");
	open_fails("npy:/nonexistent/x.npy,/nonexistent/y.npy", NULL, DFQ_ERR_IO, "x.npy");
	make_npy_set(20);
	char spec[600];
	snprintf(spec, sizeof spec, "npy:%s,%s", tpath("sx.npy"), tpath("sy.npy"));
	struct dfq_data_opts o;
	dfq_data_opts_default(&o);
	o.nstd = 1;
	o.std[0] = 0;
	open_fails(spec, &o, DFQ_ERR_ARG, "positive");
	o.nstd = 2;
	o.nmean = 3;
	open_fails(spec, &o, DFQ_ERR_ARG, "3 mean values but 2 std values");
}

static void test_eval_rank(void **state)
{
	const float s[6] = {0.1f, 0.7f, 0.7f, -1.0f, 0.2f, NAN};
	assert_int_equal(dfq_eval_rank(s, 6, 1), 0);  /* the first of two maxima */
	assert_int_equal(dfq_eval_rank(s, 6, 2), 1);  /* the second */
	assert_int_equal(dfq_eval_rank(s, 6, 4), 2);
	assert_int_equal(dfq_eval_rank(s, 6, 0), 3);
	assert_int_equal(dfq_eval_rank(s, 6, 3), 4);
	assert_int_equal(dfq_eval_rank(s, 6, 5), 6);  /* NaN never hits */
	assert_int_equal(dfq_eval_rank(s, 6, 6), 6);  /* no such class */
	assert_int_equal(dfq_eval_rank(s, 6, -1), 6);
}

static int setup(void **state)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/dfq-test-data.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idx_raw),
		cmocka_unit_test(test_idx_gz),
		cmocka_unit_test(test_idx_bad_magic),
		cmocka_unit_test(test_idx_truncated),
		cmocka_unit_test(test_idx_count_mismatch),
		cmocka_unit_test(test_npy_f32_i64),
		cmocka_unit_test(test_npy_u8_nhw_i32),
		cmocka_unit_test(test_npy_bad),
		cmocka_unit_test(test_npy_reader),
		cmocka_unit_test(test_resize_up_bilinear),
		cmocka_unit_test(test_resize_down_area),
		cmocka_unit_test(test_resize_crop),
		cmocka_unit_test(test_images_folder),
		cmocka_unit_test(test_images_jpeg),
		cmocka_unit_test(test_slices),
		cmocka_unit_test(test_fmnist),
		cmocka_unit_test(test_streaming),
		cmocka_unit_test(test_spec_errors),
		cmocka_unit_test(test_eval_rank),
	};
	int failed = cmocka_run_group_tests(tests, setup, teardown);
	int total = (int)(sizeof tests / sizeof tests[0]);
	if (failed < 0)
		failed = total;
	printf("%d passed, %d failed\n", total - failed, failed);
	return failed ? 1 : 0;
}
