/* test_quant.c - quantization grids, fake quantization, weight quantization and error summaries. */
#include "dfq_test.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dfq/dfq_quant.h"

/* Small deterministic generator (xorshift64*), uniform in [lo, hi). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float urand(float lo, float hi)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	uint64_t r = rng_state * 0x2545f4914f6cdd1dull;
	return lo + (hi - lo) * (float)((double)(r >> 40) / (double)(1ull << 24));
}

/* The definition, written the plain way: division, nearbyintf, add the zero point, clamp,
 * convert to int, dequantize.  Only for x / scale within int range. */
static float ref_fake_quant(float x, const struct dfq_qparams *q)
{
	float v = nearbyintf(x / q->scale) + (float)q->zero_point;
	v = fminf(fmaxf(v, (float)q->qmin), (float)q->qmax);
	int32_t code = (int32_t)v;
	return (float)(code - q->zero_point) * q->scale;
}

/* The definition of the grid (non-constant ranges), float arithmetic as PyTorch does it. */
static void ref_qparams(int bits, dfq_qscheme scheme, float lo, float hi, float *scale,
			int32_t *zp)
{
	if (scheme == DFQ_QSCHEME_ASYM) {
		float qmax = (float)((1 << bits) - 1);
		lo = fminf(lo, 0.0f);
		hi = fmaxf(hi, 0.0f);
		*scale = fmaxf((hi - lo) / qmax, DFQ_QSCALE_MIN);
		float z = nearbyintf(-lo / *scale);
		*zp = (int32_t)fminf(fmaxf(z, 0.0f), qmax);
	} else {
		float qmax = (float)((1 << (bits - 1)) - 1);
		*scale = fmaxf(fmaxf(fabsf(lo), fabsf(hi)) / qmax, DFQ_QSCALE_MIN);
		*zp = 0;
	}
}

static struct dfq_qparams make(int bits, dfq_qscheme scheme, float lo, float hi)
{
	struct dfq_error err = {0};
	struct dfq_qparams q;
	assert_int_equal(dfq_qparams_make(bits, scheme, lo, hi, &q, &err), DFQ_OK);
	return q;
}

static struct dfq_tensor *tensor_from(int ndim, const int64_t *dims, const float *v)
{
	struct dfq_error err = {0};
	struct dfq_tensor *t = dfq_tensor_new(DFQ_DTYPE_F32, ndim, dims, &err);
	assert_non_null(t);
	if (v)
		memcpy(t->data, v, (size_t)t->numel * sizeof(float));
	return t;
}

/* 8-bit asymmetric over [-1, 1].  scale = fl(2/255) = 0.007843138 is slightly above 2/255, so
 * -lo / scale = 127.4999924 in float (and in exact arithmetic with that scale): zp 127, not the
 * 128 that 127.5 would round to (PyTorch and ONNX Runtime give 127 too). */
static void test_asym8_minus1_1(void **state)
{
	struct dfq_qparams q = make(8, DFQ_QSCHEME_ASYM, -1.0f, 1.0f);
	assert_true(q.scale == 2.0f / 255.0f);
	assert_int_equal(q.zero_point, 127);
	assert_int_equal(q.qmin, 0);
	assert_int_equal(q.qmax, 255);
	assert_int_equal(q.bits, 8);
	assert_int_equal(q.scheme, DFQ_QSCHEME_ASYM);
	/* 0.5 / scale = 63.749996 -> 64 -> code 191 -> 64 * scale = 0.50196081 */
	assert_int_equal(dfq_quant_code(0.5f, &q), 191);
	assert_true(dfq_fake_quant1(0.5f, &q) == 64.0f * (2.0f / 255.0f));
	assert_true(fabsf(dfq_fake_quant1(0.5f, &q) - 0.50196081f) < 1e-7f);
	/* the ends: -1 / scale = -127.49999 -> -127 -> code 0; 1 -> 127 + 127 = 254 */
	assert_int_equal(dfq_quant_code(-1.0f, &q), 0);
	assert_int_equal(dfq_quant_code(1.0f, &q), 254);
	assert_true(dfq_fake_quant1(-1.0f, &q) == -127.0f * q.scale);
	/* 0 is exact */
	assert_int_equal(dfq_quant_code(0.0f, &q), 127);
	assert_true(dfq_fake_quant1(0.0f, &q) == 0.0f);
}

/* Zero points that are exact ties round to even. */
static void test_zero_point_ties(void **state)
{
	/* scale (254.5 + 0.5) / 255 = 1, -lo / scale = 0.5 -> 0 */
	struct dfq_qparams q = make(8, DFQ_QSCHEME_ASYM, -0.5f, 254.5f);
	assert_true(q.scale == 1.0f);
	assert_int_equal(q.zero_point, 0);
	q = make(8, DFQ_QSCHEME_ASYM, -1.5f, 253.5f);
	assert_int_equal(q.zero_point, 2);
	q = make(8, DFQ_QSCHEME_ASYM, -2.5f, 252.5f);
	assert_int_equal(q.zero_point, 2);
	/* 2 bits over [-1.5, 1.5]: scale 1, zp round(1.5) = 2 */
	q = make(2, DFQ_QSCHEME_ASYM, -1.5f, 1.5f);
	assert_true(q.scale == 1.0f);
	assert_int_equal(q.zero_point, 2);
	/* 16 bits over [-1, 1]: 1 / fl(2/65535) is exactly 32767.5 in float -> 32768 */
	q = make(16, DFQ_QSCHEME_ASYM, -1.0f, 1.0f);
	assert_true(q.scale == 2.0f / 65535.0f);
	assert_true(1.0f / q.scale == 32767.5f);
	assert_int_equal(q.zero_point, 32768);
	assert_int_equal(q.qmax, 65535);
}

/* Codes that are exact ties round to even, and values outside the range clamp. */
static void test_value_ties_and_clamp(void **state)
{
	struct dfq_qparams q = make(8, DFQ_QSCHEME_ASYM, 0.0f, 255.0f); /* scale 1, zp 0 */
	assert_true(q.scale == 1.0f);
	assert_int_equal(q.zero_point, 0);
	assert_true(dfq_fake_quant1(2.5f, &q) == 2.0f);
	assert_true(dfq_fake_quant1(3.5f, &q) == 4.0f);
	assert_true(dfq_fake_quant1(0.5f, &q) == 0.0f);
	assert_true(dfq_fake_quant1(254.5f, &q) == 254.0f);
	assert_true(dfq_fake_quant1(2.4999998f, &q) == 2.0f);
	assert_true(dfq_fake_quant1(2.5000002f, &q) == 3.0f);
	assert_true(dfq_fake_quant1(-0.5f, &q) == 0.0f);
	assert_true(dfq_fake_quant1(-0.7f, &q) == 0.0f); /* below qmin: clamped to 0 */
	assert_true(dfq_fake_quant1(255.5f, &q) == 255.0f);
	assert_true(dfq_fake_quant1(1000.0f, &q) == 255.0f);
	assert_int_equal(dfq_quant_code(1000.0f, &q), 255);
	assert_int_equal(dfq_quant_code(-1000.0f, &q), 0);

	/* with a zero point: scale 1, zp 128 over [-128, 127] */
	q = make(8, DFQ_QSCHEME_ASYM, -128.0f, 127.0f);
	assert_true(q.scale == 1.0f);
	assert_int_equal(q.zero_point, 128);
	assert_true(dfq_fake_quant1(-128.5f, &q) == -128.0f);
	assert_true(dfq_fake_quant1(-127.5f, &q) == -128.0f);
	assert_true(dfq_fake_quant1(-126.5f, &q) == -126.0f);
	assert_true(dfq_fake_quant1(126.5f, &q) == 126.0f);
	assert_true(dfq_fake_quant1(127.6f, &q) == 127.0f);
	assert_int_equal(dfq_quant_code(-200.0f, &q), 0);
	assert_int_equal(dfq_quant_code(200.0f, &q), 255);
}

/* x / scale beyond int32 (and infinite) must clamp, not overflow (UBSan watches this). */
static void test_huge_values_clamp(void **state)
{
	struct dfq_qparams q = make(8, DFQ_QSCHEME_ASYM, 0.0f, 0.0f); /* scale floored to 1e-8 */
	assert_true(q.scale == DFQ_QSCALE_MIN);
	assert_int_equal(q.zero_point, 0);
	float big[] = {1e30f, -1e30f, 3e9f, -3e9f, INFINITY, -INFINITY, FLT_MAX, -FLT_MAX};
	int32_t want[] = {255, 0, 255, 0, 255, 0, 255, 0};
	for (int i = 0; i < 8; i++) {
		assert_int_equal(dfq_quant_code(big[i], &q), want[i]);
		assert_true(dfq_fake_quant1(big[i], &q) == (float)want[i] * q.scale);
	}
	struct dfq_qparams s = make(8, DFQ_QSCHEME_SYM, -1.0f, 1.0f);
	assert_int_equal(dfq_quant_code(1e38f, &s), 127);
	assert_int_equal(dfq_quant_code(-1e38f, &s), -128);
	assert_int_equal(dfq_quant_code(-INFINITY, &s), -128);
	dfq_fake_quant(big, 8, &s);
	assert_true(big[0] == 127.0f * s.scale && big[4] == 127.0f * s.scale);
	assert_true(big[1] == -128.0f * s.scale && big[5] == -128.0f * s.scale);
}

/* Symmetric 4 bits: qmin -8, qmax 7, zp 0. */
static void test_sym4(void **state)
{
	struct dfq_qparams q = make(4, DFQ_QSCHEME_SYM, -7.0f, 7.0f);
	assert_true(q.scale == 1.0f);
	assert_int_equal(q.zero_point, 0);
	assert_int_equal(q.qmin, -8);
	assert_int_equal(q.qmax, 7);
	assert_true(dfq_fake_quant1(-2.5f, &q) == -2.0f);
	assert_true(dfq_fake_quant1(-3.5f, &q) == -4.0f);
	assert_true(dfq_fake_quant1(6.5f, &q) == 6.0f);
	assert_true(dfq_fake_quant1(7.4f, &q) == 7.0f);
	assert_true(dfq_fake_quant1(9.0f, &q) == 7.0f);
	assert_true(dfq_fake_quant1(-7.5f, &q) == -8.0f); /* the extra negative code */
	assert_true(dfq_fake_quant1(-9.0f, &q) == -8.0f);
	assert_int_equal(dfq_quant_code(-9.0f, &q), -8);

	/* [-1, 0.5]: scale max(1, 0.5) / 7 = 0.14285715; -1 / scale = -6.9999995 -> -7,
	 * 0.5 / scale = 3.4999998 -> 3, 0.25 / scale = 1.75 -> 2 */
	q = make(4, DFQ_QSCHEME_SYM, -1.0f, 0.5f);
	assert_true(q.scale == 1.0f / 7.0f);
	assert_int_equal(dfq_quant_code(-1.0f, &q), -7);
	assert_int_equal(dfq_quant_code(0.5f, &q), 3);
	assert_int_equal(dfq_quant_code(0.25f, &q), 2);
	assert_true(dfq_fake_quant1(0.5f, &q) == 3.0f * (1.0f / 7.0f));
}

/* 2 and 16 bits. */
static void test_2_and_16_bits(void **state)
{
	struct dfq_qparams q = make(2, DFQ_QSCHEME_ASYM, 0.0f, 3.0f);
	assert_int_equal(q.qmax, 3);
	assert_true(q.scale == 1.0f);
	float v[] = {-1.0f, 0.4f, 0.5f, 1.5f, 2.5f, 2.6f, 7.0f};
	float want[] = {0.0f, 0.0f, 0.0f, 2.0f, 2.0f, 3.0f, 3.0f};
	for (int i = 0; i < 7; i++)
		assert_true(dfq_fake_quant1(v[i], &q) == want[i]);

	q = make(2, DFQ_QSCHEME_SYM, -1.0f, 1.0f); /* qmin -2, qmax 1, scale 1 */
	assert_int_equal(q.qmin, -2);
	assert_int_equal(q.qmax, 1);
	assert_true(q.scale == 1.0f);
	assert_true(dfq_fake_quant1(-1.6f, &q) == -2.0f);
	assert_true(dfq_fake_quant1(-0.5f, &q) == 0.0f);
	assert_true(dfq_fake_quant1(1.6f, &q) == 1.0f);

	q = make(16, DFQ_QSCHEME_ASYM, 0.0f, 65535.0f);
	assert_true(q.scale == 1.0f);
	assert_true(dfq_fake_quant1(65534.5f, &q) == 65534.0f);
	assert_true(dfq_fake_quant1(40000.5f, &q) == 40000.0f);
	assert_true(dfq_fake_quant1(40001.5f, &q) == 40002.0f);
	assert_true(dfq_fake_quant1(70000.0f, &q) == 65535.0f);
	assert_int_equal(dfq_quant_code(70000.0f, &q), 65535);

	q = make(16, DFQ_QSCHEME_SYM, -32767.0f, 32767.0f);
	assert_int_equal(q.qmin, -32768);
	assert_int_equal(q.qmax, 32767);
	assert_true(q.scale == 1.0f);
	assert_true(dfq_fake_quant1(-32767.5f, &q) == -32768.0f);
	assert_true(dfq_fake_quant1(-40000.0f, &q) == -32768.0f);
}

/* The vectorised rounding equals nearbyintf on every tie k + 0.5 of the 16-bit code range and
 * on the floats next to each tie and each integer. */
static void test_rounding_matches_nearbyintf(void **state)
{
	struct dfq_qparams q = make(16, DFQ_QSCHEME_SYM, -32767.0f, 32767.0f); /* scale 1 */
	for (int k = -32768; k <= 32767; k++) {
		float c[6] = {(float)k + 0.5f, (float)k};
		c[2] = nextafterf(c[0], -INFINITY);
		c[3] = nextafterf(c[0], INFINITY);
		c[4] = nextafterf(c[1], -INFINITY);
		c[5] = nextafterf(c[1], INFINITY);
		for (int j = 0; j < 6; j++) {
			float want = fminf(fmaxf(nearbyintf(c[j]), -32768.0f), 32767.0f);
			if (dfq_fake_quant1(c[j], &q) != want)
				fail_msg("%.9g rounds to %.9g, nearbyintf to %.9g", (double)c[j],
					 (double)dfq_fake_quant1(c[j], &q), (double)want);
		}
	}
}

/* Random data through random grids, all bit widths, both schemes: bit-exact against the plain
 * definition, the array version equals the scalar one, and at most 2^b distinct values. */
static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return (x > y) - (x < y);
}

static void test_random_against_definition(void **state)
{
	enum { N = 4099 }; /* not a multiple of 8: the tail loop runs too */
	static float x[N], y[N];
	for (int bits = DFQ_QBITS_MIN; bits <= DFQ_QBITS_MAX; bits++) {
		for (int scheme = 0; scheme < 2; scheme++) {
			float lo = urand(-3.0f, 1.0f), hi = lo + urand(0.001f, 5.0f);
			struct dfq_qparams q = make(bits, (dfq_qscheme)scheme, lo, hi);
			float rs;
			int32_t rz;
			ref_qparams(bits, (dfq_qscheme)scheme, lo, hi, &rs, &rz);
			assert_true(q.scale == rs);
			assert_int_equal(q.zero_point, rz);
			for (int i = 0; i < N; i++)
				x[i] = y[i] = urand(lo - 0.5f, hi + 0.5f);
			/* exact ties of the grid too */
			for (int i = 0; i < 64; i++)
				x[i] = y[i] = ((float)(i - 32) + 0.5f) * q.scale;
			dfq_fake_quant(y, N, &q);
			for (int i = 0; i < N; i++) {
				float want = ref_fake_quant(x[i], &q);
				if (y[i] != want || dfq_fake_quant1(x[i], &q) != want)
					fail_msg("bits %d scheme %d: x %.9g gives %.9g, want %.9g",
						 bits, scheme, (double)x[i], (double)y[i],
						 (double)want);
				int32_t code = dfq_quant_code(x[i], &q);
				assert_true(code >= q.qmin && code <= q.qmax);
				assert_true((float)(code - q.zero_point) * q.scale == want);
			}
			qsort(y, N, sizeof y[0], cmp_float);
			int distinct = 1;
			for (int i = 1; i < N; i++)
				distinct += y[i] != y[i - 1];
			assert_true(distinct <= (1 << bits));
		}
	}
	/* data covering the whole grid uses exactly 2^b values */
	for (int bits = 2; bits <= 6; bits++) {
		struct dfq_qparams q = make(bits, DFQ_QSCHEME_ASYM, -1.0f, 1.0f);
		for (int i = 0; i < N; i++)
			y[i] = urand(-1.2f, 1.2f);
		dfq_fake_quant(y, N, &q);
		qsort(y, N, sizeof y[0], cmp_float);
		int distinct = 1;
		for (int i = 1; i < N; i++)
			distinct += y[i] != y[i - 1];
		assert_int_equal(distinct, 1 << bits);
	}
}

/* A constant tensor quantizes to itself: zeros, and any c (both signs) where it is possible
 * (|c| >= the scale floor), at every bit width, with no NaN anywhere. */
static void test_constant_tensors(void **state)
{
	float z[5] = {0};
	for (int scheme = 0; scheme < 2; scheme++) {
		struct dfq_qparams q = make(8, (dfq_qscheme)scheme, 0.0f, 0.0f);
		assert_true(q.scale == DFQ_QSCALE_MIN);
		assert_int_equal(q.zero_point, 0);
		dfq_fake_quant(z, 5, &q);
		for (int i = 0; i < 5; i++)
			assert_true(z[i] == 0.0f);
	}
	int misses = 0;
	for (int it = 0; it < 3000; it++) {
		float c = urand(1.0f, 2.0f) * ldexpf(1.0f, (int)urand(-20.0f, 30.0f));
		if (it & 1)
			c = -c;
		for (int bits = DFQ_QBITS_MIN; bits <= DFQ_QBITS_MAX; bits++) {
			for (int scheme = 0; scheme < 2; scheme++) {
				struct dfq_qparams q = make(bits, (dfq_qscheme)scheme, c, c);
				float v = dfq_fake_quant1(c, &q);
				assert_false(isnan(v));
				misses += v != c;
			}
		}
	}
	assert_int_equal(misses, 0);
	/* A case where the definition's scale misses by an ulp: 2 bits, c = 0.1:
	 * fl(3 * fl(c / 3)) != c, so code 2 (scale c / 2) is used. */
	float c = 0.1f;
	assert_true(3.0f * (c / 3.0f) != c);
	struct dfq_qparams q = make(2, DFQ_QSCHEME_ASYM, c, c);
	assert_true(q.scale == c / 2.0f);
	assert_true(dfq_fake_quant1(c, &q) == c);
	assert_int_equal(dfq_quant_code(c, &q), 2);
	q = make(2, DFQ_QSCHEME_ASYM, -c, -c); /* zp 2, code 0 */
	assert_int_equal(q.zero_point, 2);
	assert_int_equal(dfq_quant_code(-c, &q), 0);
	assert_true(dfq_fake_quant1(-c, &q) == -c);
	/* and the usual case keeps the definition's scale c / qmax */
	q = make(8, DFQ_QSCHEME_ASYM, 0.75f, 0.75f);
	assert_true(q.scale == 0.75f / 255.0f);
	assert_true(dfq_fake_quant1(0.75f, &q) == 0.75f);
	q = make(8, DFQ_QSCHEME_ASYM, -0.75f, -0.75f);
	assert_int_equal(q.zero_point, 255);
	assert_true(dfq_fake_quant1(-0.75f, &q) == -0.75f);
	/* below the scale floor no grid can hold c: no NaN, and 0 stays exact */
	q = make(8, DFQ_QSCHEME_ASYM, 1e-12f, 1e-12f);
	assert_true(q.scale == DFQ_QSCALE_MIN);
	assert_false(isnan(dfq_fake_quant1(1e-12f, &q)));
	assert_true(dfq_fake_quant1(0.0f, &q) == 0.0f);
}

/* Bad arguments. */
static void test_bad_args(void **state)
{
	struct dfq_error err = {0};
	struct dfq_qparams q;
	int bad_bits[] = {-1, 0, 1, 17, 32};
	for (int i = 0; i < 5; i++) {
		assert_int_equal(dfq_qparams_make(bad_bits[i], DFQ_QSCHEME_ASYM, 0, 1, &q, &err),
				 DFQ_ERR_ARG);
		assert_non_null(strstr(err.msg, "bits"));
	}
	assert_int_equal(dfq_qparams_make(8, DFQ_QSCHEME_ASYM, NAN, 1, &q, &err), DFQ_ERR_ARG);
	assert_int_equal(dfq_qparams_make(8, DFQ_QSCHEME_SYM, 0, NAN, &q, &err), DFQ_ERR_ARG);
	assert_int_equal(dfq_qparams_make(8, DFQ_QSCHEME_ASYM, -INFINITY, 1, &q, &err),
			 DFQ_ERR_ARG);
	assert_non_null(strstr(err.msg, "not finite"));
	assert_int_equal(dfq_qparams_make(8, DFQ_QSCHEME_ASYM, 2, 1, &q, &err), DFQ_ERR_ARG);
	assert_int_equal(dfq_qparams_make(8, (dfq_qscheme)5, 0, 1, &q, &err), DFQ_ERR_ARG);
	assert_int_equal(dfq_qparams_make(8, DFQ_QSCHEME_ASYM, 2, 1, &q, NULL), DFQ_ERR_ARG);

	/* weights with NaN / Inf: error, and out (here aliasing w) untouched */
	int64_t dims[2] = {3, 2};
	float v[6] = {0.1f, 0.2f, 0.3f, NAN, 0.5f, 0.6f};
	struct dfq_tensor *w = tensor_from(2, dims, v);
	struct dfq_qparams qp[3];
	memset(qp, 0, sizeof qp);
	assert_int_equal(dfq_quantize_weights(w, 8, DFQ_QSCHEME_ASYM, true, w, qp, &err),
			 DFQ_ERR_ARG);
	assert_non_null(strstr(err.msg, "NaN at element 3 (output channel 1)"));
	assert_true(dfq_tensor_f32(w)[0] == 0.1f);
	assert_true(qp[0].scale == 0.0f);
	dfq_tensor_f32(w)[3] = -INFINITY;
	assert_int_equal(dfq_quantize_weights(w, 8, DFQ_QSCHEME_ASYM, false, w, NULL, &err),
			 DFQ_ERR_ARG);
	assert_non_null(strstr(err.msg, "-Inf at element 3"));
	dfq_tensor_f32(w)[3] = 0.4f;
	assert_int_equal(dfq_quantize_weights(w, 1, DFQ_QSCHEME_ASYM, false, w, NULL, &err),
			 DFQ_ERR_ARG);
	assert_int_equal(dfq_quantize_weights(w, 17, DFQ_QSCHEME_SYM, true, w, NULL, &err),
			 DFQ_ERR_ARG);
	/* shape mismatch, wrong dtype, per-channel scalar */
	int64_t d3[1] = {6};
	struct dfq_tensor *o = tensor_from(1, d3, NULL);
	assert_int_equal(dfq_quantize_weights(w, 8, DFQ_QSCHEME_ASYM, false, o, NULL, &err),
			 DFQ_ERR_SHAPE);
	struct dfq_tensor *i64 = dfq_tensor_new(DFQ_DTYPE_I64, 2, dims, &err);
	assert_int_equal(dfq_quantize_weights(i64, 8, DFQ_QSCHEME_ASYM, false, w, NULL, &err),
			 DFQ_ERR_UNSUPPORTED);
	struct dfq_tensor *s = tensor_from(0, NULL, NULL);
	assert_int_equal(dfq_quantize_weights(s, 8, DFQ_QSCHEME_ASYM, true, s, NULL, &err),
			 DFQ_ERR_SHAPE);
	assert_int_equal(dfq_quantize_weights(s, 8, DFQ_QSCHEME_ASYM, false, s, NULL, &err),
			 DFQ_OK);
	dfq_tensor_free(w);
	dfq_tensor_free(o);
	dfq_tensor_free(i64);
	dfq_tensor_free(s);
}

/* NaN passes through fake quantization as NaN (so a broken activation stays visible); its
 * code is the zero point's. */
static void test_nan_passthrough(void **state)
{
	struct dfq_qparams q = make(8, DFQ_QSCHEME_ASYM, -1.0f, 1.0f);
	assert_true(isnan(dfq_fake_quant1(NAN, &q)));
	assert_int_equal(dfq_quant_code(NAN, &q), q.zero_point);
	float v[9] = {0.1f, NAN, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f, NAN};
	dfq_fake_quant(v, 9, &q);
	assert_true(isnan(v[1]) && isnan(v[8]));
	assert_true(v[0] == dfq_fake_quant1(0.1f, &q));
}

/* Extreme finite ranges: no inf or NaN scale. */
static void test_extreme_ranges(void **state)
{
	struct dfq_qparams q = make(8, DFQ_QSCHEME_ASYM, -FLT_MAX, FLT_MAX);
	assert_true(isfinite(q.scale) && q.scale > 0.0f);
	assert_false(isnan(dfq_fake_quant1(1.0f, &q)));
	assert_true(dfq_fake_quant1(0.0f, &q) == 0.0f);
	q = make(2, DFQ_QSCHEME_SYM, -FLT_MAX, FLT_MAX);
	assert_true(isfinite(q.scale));
	q = make(8, DFQ_QSCHEME_ASYM, 0.0f, 1e-10f); /* scale floored */
	assert_true(q.scale == DFQ_QSCALE_MIN);
	assert_true(dfq_fake_quant1(1e-10f, &q) == 0.0f);
}

/* Per tensor vs per channel, channels of different ranges, hand-computed. */
static void test_quantize_weights_per_channel(void **state)
{
	struct dfq_error err = {0};
	int64_t dims[4] = {3, 1, 1, 4};
	float v[12] = {
		0.0f, 0.3f, 0.7f, 1.0f,    /* [0, 1]: scale 1/255, zp 0 */
		-2.0f, -1.0f, 0.5f, 2.0f,  /* [-2, 2]: scale 4/255, zp round(127.49999) = 127 */
		5.0f, 5.0f, 5.0f, 5.0f,    /* constant 5: [0, 5], scale 5/255, exact */
	};
	struct dfq_tensor *w = tensor_from(4, dims, v);
	struct dfq_tensor *out = tensor_from(4, dims, NULL);
	struct dfq_qparams qp[3];
	assert_int_equal(dfq_quantize_weights(w, 8, DFQ_QSCHEME_ASYM, true, out, qp, &err),
			 DFQ_OK);
	assert_true(qp[0].scale == 1.0f / 255.0f);
	assert_int_equal(qp[0].zero_point, 0);
	assert_true(qp[1].scale == 4.0f / 255.0f);
	assert_int_equal(qp[1].zero_point, 127);
	assert_true(qp[2].scale == 5.0f / 255.0f);
	const float *y = dfq_tensor_f32(out);
	/* 0.3f / fl(1/255) is exactly 76.5 in float: a tie, to even 76 */
	assert_true(y[1] == 76.0f * (1.0f / 255.0f));
	assert_true(y[3] == 1.0f);
	/* -2 / (4/255) = -127.49999 -> -127 (code 0); -1 -> -63.749996 -> -64 (code 63);
	 * 0.5 -> 31.874998 -> 32 */
	assert_true(y[4] == -127.0f * (4.0f / 255.0f));
	assert_true(y[5] == -64.0f * (4.0f / 255.0f));
	assert_int_equal(dfq_quant_code(-1.0f, &qp[1]), 63);
	assert_true(y[6] == 32.0f * (4.0f / 255.0f));
	for (int i = 8; i < 12; i++)
		assert_true(y[i] == 5.0f);
	for (int i = 0; i < 12; i++)
		assert_true(y[i] == dfq_fake_quant1(v[i], &qp[i / 4]));
	assert_true(dfq_tensor_f32(w)[1] == 0.3f); /* input untouched */

	/* per tensor: one grid over [-2, 5] */
	struct dfq_qparams one;
	assert_int_equal(dfq_quantize_weights(w, 8, DFQ_QSCHEME_ASYM, false, out, &one, &err),
			 DFQ_OK);
	assert_true(one.scale == 7.0f / 255.0f);
	assert_int_equal(one.zero_point, 73); /* 2 / (7/255) = 72.857 */
	for (int i = 0; i < 12; i++)
		assert_true(y[i] == dfq_fake_quant1(v[i], &one));
	assert_true(y[1] != 76.0f * (1.0f / 255.0f)); /* coarser than per channel */

	/* symmetric per channel, in place (out aliases w), qp NULL */
	assert_int_equal(dfq_quantize_weights(w, 4, DFQ_QSCHEME_SYM, true, w, NULL, &err),
			 DFQ_OK);
	const float *x = dfq_tensor_f32(w);
	/* channel 1: scale 2/7; -1 / (2/7) = -3.4999998 -> -3, 0.5 -> 1.7499999 -> 2 */
	assert_true(x[5] == -3.0f * (2.0f / 7.0f));
	assert_true(x[6] == 2.0f * (2.0f / 7.0f));
	assert_true(x[7] == 2.0f);
	for (int i = 8; i < 12; i++)
		assert_true(x[i] == 5.0f);
	dfq_tensor_free(w);
	dfq_tensor_free(out);
}

/* All-zero weights and zero-size channels quantize to zeros without NaN. */
static void test_quantize_weights_zeros(void **state)
{
	struct dfq_error err = {0};
	int64_t dims[2] = {4, 3};
	struct dfq_tensor *w = tensor_from(2, dims, NULL);
	struct dfq_qparams qp[4];
	for (int scheme = 0; scheme < 2; scheme++) {
		for (int pc = 0; pc < 2; pc++) {
			assert_int_equal(dfq_quantize_weights(w, 8, (dfq_qscheme)scheme, pc, w,
							      qp, &err),
					 DFQ_OK);
			for (int i = 0; i < 12; i++)
				assert_true(dfq_tensor_f32(w)[i] == 0.0f);
			assert_true(qp[0].scale == DFQ_QSCALE_MIN);
		}
	}
	dfq_tensor_free(w);
	int64_t empty[2] = {2, 0};
	w = tensor_from(2, empty, NULL);
	assert_int_equal(dfq_quantize_weights(w, 8, DFQ_QSCHEME_ASYM, true, w, qp, &err),
			 DFQ_OK);
	assert_true(qp[1].scale == DFQ_QSCALE_MIN);
	dfq_tensor_free(w);
}

static void test_minmax(void **state)
{
	struct dfq_error err = {0};
	float v[19];
	for (int i = 0; i < 19; i++)
		v[i] = (float)(i % 7) - 2.0f;
	v[17] = -9.0f; /* in the tail */
	v[3] = 11.0f;  /* in a lane */
	float lo, hi;
	assert_int_equal(dfq_minmax(v, 19, &lo, &hi, &err), DFQ_OK);
	assert_true(lo == -9.0f && hi == 11.0f);
	assert_int_equal(dfq_minmax(v, 0, &lo, &hi, &err), DFQ_OK);
	assert_true(lo == 0.0f && hi == 0.0f);
	v[12] = NAN;
	assert_int_equal(dfq_minmax(v, 19, &lo, &hi, &err), DFQ_ERR_ARG);
	assert_string_equal(err.msg, "found NaN at index 12 of 19 values");
	v[12] = 0.0f;
	v[18] = INFINITY;
	assert_int_equal(dfq_minmax(v, 19, &lo, &hi, &err), DFQ_ERR_ARG);
	assert_string_equal(err.msg, "found +Inf at index 18 of 19 values");
	float all_nan[3] = {NAN, NAN, NAN};
	assert_int_equal(dfq_minmax(all_nan, 3, &lo, &hi, NULL), DFQ_ERR_ARG);
}

/* _quantize_error on W [2, 2, 1, 2] with hand-made eps. */
static void test_quantize_error(void **state)
{
	struct dfq_error err = {0};
	int64_t dims[4] = {2, 2, 1, 2};
	float w[8] = {1.0f, 2.0f, 3.0f, 4.0f, -1.0f, -2.0f, 0.5f, 0.25f};
	float e[8] = {0.5f, -0.25f, 0.0f, 0.125f, -1.0f, 0.0f, 0.25f, -0.5f};
	float wq[8];
	for (int i = 0; i < 8; i++)
		wq[i] = w[i] + e[i];
	struct dfq_tensor *tw = tensor_from(4, dims, w), *tq = tensor_from(4, dims, wq);
	struct dfq_tensor *r = NULL;

	assert_int_equal(dfq_quantize_error(tw, tq, DFQ_QERR_NONE, &r, &err), DFQ_OK);
	assert_true(dfq_tensor_same_shape(r, tw));
	for (int i = 0; i < 8; i++)
		assert_true(dfq_tensor_f32(r)[i] == e[i]);
	dfq_tensor_free(r);

	assert_int_equal(dfq_quantize_error(tw, tq, DFQ_QERR_SUM, &r, &err), DFQ_OK);
	assert_int_equal(r->ndim, 0);
	assert_true(dfq_tensor_f32(r)[0] == 2.625f); /* .5+.25+0+.125+1+0+.25+.5 */
	dfq_tensor_free(r);

	assert_int_equal(dfq_quantize_error(tw, tq, DFQ_QERR_MEAN, &r, &err), DFQ_OK);
	assert_int_equal(r->ndim, 0);
	assert_true(dfq_tensor_f32(r)[0] == 2.625f / 8.0f);
	dfq_tensor_free(r);

	assert_int_equal(dfq_quantize_error(tw, tq, DFQ_QERR_CHANNEL, &r, &err), DFQ_OK);
	assert_int_equal(r->ndim, 1);
	assert_int_equal(r->dims[0], 2);
	assert_true(dfq_tensor_f32(r)[0] == 0.875f);
	assert_true(dfq_tensor_f32(r)[1] == 1.75f);
	dfq_tensor_free(r);

	assert_int_equal(dfq_quantize_error(tw, tq, DFQ_QERR_SPATIAL, &r, &err), DFQ_OK);
	assert_int_equal(r->ndim, 2);
	assert_int_equal(r->dims[0], 2);
	assert_int_equal(r->dims[1], 2);
	float sp[4] = {0.75f, 0.125f, 1.0f, 0.75f};
	for (int i = 0; i < 4; i++)
		assert_true(dfq_tensor_f32(r)[i] == sp[i]);
	dfq_tensor_free(r);

	/* rank 2 (Gemm): spatial is |eps| itself */
	int64_t d2[2] = {2, 4};
	assert_int_equal(dfq_tensor_reshape(tw, 2, d2, &err), DFQ_OK);
	assert_int_equal(dfq_tensor_reshape(tq, 2, d2, &err), DFQ_OK);
	assert_int_equal(dfq_quantize_error(tw, tq, DFQ_QERR_SPATIAL, &r, &err), DFQ_OK);
	for (int i = 0; i < 8; i++)
		assert_true(dfq_tensor_f32(r)[i] == fabsf(e[i]));
	dfq_tensor_free(r);

	/* errors: shape mismatch, rank too low, unknown reduction; *out untouched */
	r = NULL;
	int64_t d1[1] = {8};
	assert_int_equal(dfq_tensor_reshape(tq, 1, d1, &err), DFQ_OK);
	assert_int_equal(dfq_quantize_error(tw, tq, DFQ_QERR_SUM, &r, &err), DFQ_ERR_SHAPE);
	assert_non_null(strstr(err.msg, "[2, 4]"));
	assert_int_equal(dfq_tensor_reshape(tw, 1, d1, &err), DFQ_OK);
	assert_int_equal(dfq_quantize_error(tw, tq, DFQ_QERR_SPATIAL, &r, &err), DFQ_ERR_SHAPE);
	assert_int_equal(dfq_quantize_error(tw, tq, (dfq_qerr_reduce)9, &r, &err), DFQ_ERR_ARG);
	assert_null(r);
	assert_int_equal(dfq_quantize_error(tw, tq, DFQ_QERR_CHANNEL, &r, &err), DFQ_OK);
	assert_int_equal(r->dims[0], 8);
	assert_true(dfq_tensor_f32(r)[0] == 0.5f);
	dfq_tensor_free(r);
	dfq_tensor_free(tw);
	dfq_tensor_free(tq);
}

/* The error of a real quantization: sum |eps| <= n * scale / 2 inside the range. */
static void test_quantize_error_bound(void **state)
{
	struct dfq_error err = {0};
	int64_t dims[2] = {16, 37};
	struct dfq_tensor *w = tensor_from(2, dims, NULL), *wq = tensor_from(2, dims, NULL);
	for (int64_t i = 0; i < w->numel; i++)
		dfq_tensor_f32(w)[i] = urand(-1.0f, 1.0f);
	struct dfq_qparams qp[16];
	assert_int_equal(dfq_quantize_weights(w, 6, DFQ_QSCHEME_ASYM, true, wq, qp, &err),
			 DFQ_OK);
	struct dfq_tensor *r = NULL;
	assert_int_equal(dfq_quantize_error(w, wq, DFQ_QERR_CHANNEL, &r, &err), DFQ_OK);
	for (int o = 0; o < 16; o++) {
		float bound = 37.0f * qp[o].scale * 0.5f * 1.0001f;
		assert_true(dfq_tensor_f32(r)[o] <= bound);
		assert_true(dfq_tensor_f32(r)[o] > 0.0f);
	}
	dfq_tensor_free(r);
	dfq_tensor_free(w);
	dfq_tensor_free(wq);
}

static void test_reduce_names(void **state)
{
	struct dfq_error err = {0};
	const char *names[] = {"none", "sum", "mean", "channel", "spatial"};
	for (int i = 0; i < 5; i++) {
		dfq_qerr_reduce r;
		assert_int_equal(dfq_qerr_reduce_parse(names[i], &r, &err), DFQ_OK);
		assert_int_equal(r, i);
		assert_string_equal(dfq_qerr_reduce_name(r), names[i]);
	}
	dfq_qerr_reduce r = DFQ_QERR_SUM;
	assert_int_equal(dfq_qerr_reduce_parse("Sum", &r, &err), DFQ_ERR_ARG);
	assert_non_null(strstr(err.msg, "'Sum'"));
	assert_int_equal(dfq_qerr_reduce_parse("", &r, &err), DFQ_ERR_ARG);
	assert_int_equal(r, DFQ_QERR_SUM);
	assert_string_equal(dfq_qerr_reduce_name((dfq_qerr_reduce)42), "?");
}

static void test_qerr_stats_and_sqnr(void **state)
{
	float w[4] = {1.0f, 2.0f, 3.0f, 4.0f};
	float wq[4] = {1.0f, 2.5f, 3.0f, 3.5f}; /* eps 0, .5, 0, -.5 */
	struct dfq_qerr_stats s;
	dfq_qerr_stats(w, wq, 4, &s);
	assert_int_equal(s.n, 4);
	/* sum w^2 = 30, sum eps^2 = 0.5 -> 10 log10(60) */
	assert_true(fabs(s.sqnr_db - 17.781512503836436) < 1e-12);
	assert_true(s.max_abs == 0.5);
	assert_true(s.mean_abs == 0.25);
	assert_true(s.mean == 0.0);
	assert_true(fabs(s.rms - sqrt(0.125)) < 1e-15);

	float a[2] = {3.0f, 4.0f}, b[2] = {3.0f, 4.5f}; /* 25 / 0.25 = 100: 20 dB */
	assert_true(fabs(dfq_sqnr_db(a, b, 2) - 20.0) < 1e-12);
	float c[2] = {3.5f, 4.0f}; /* biased error: mean eps */
	dfq_qerr_stats(a, c, 2, &s);
	assert_true(s.mean == 0.25);
	assert_true(isinf(dfq_sqnr_db(a, a, 2)) && dfq_sqnr_db(a, a, 2) > 0);
	dfq_qerr_stats(a, a, 2, &s);
	assert_true(isinf(s.sqnr_db) && s.sqnr_db > 0);
	assert_true(s.max_abs == 0.0 && s.rms == 0.0);
	float zero[2] = {0.0f, 0.0f};
	assert_true(isinf(dfq_sqnr_db(zero, a, 2)) && dfq_sqnr_db(zero, a, 2) < 0);
	dfq_qerr_stats(a, a, 0, &s); /* empty: no NaN */
	assert_int_equal(s.n, 0);
	assert_false(isnan(s.mean_abs) || isnan(s.mean) || isnan(s.rms) || isnan(s.sqnr_db));
	/* 8-bit fake quant of a ramp: about 6.02 dB per bit */
	enum { N = 10000 };
	static float r[N], rq[N];
	for (int i = 0; i < N; i++)
		r[i] = rq[i] = -1.0f + 2.0f * (float)i / (float)(N - 1);
	struct dfq_qparams q = make(8, DFQ_QSCHEME_SYM, -1.0f, 1.0f);
	dfq_fake_quant(rq, N, &q);
	double db = dfq_sqnr_db(r, rq, N); /* uniform signal: 6.02 * 8 - ~0.1 */
	assert_true(db > 47.0 && db < 49.0);
}

static void test_histogram(void **state)
{
	int64_t c[4];
	float v[] = {0.0f, 0.25f, 0.5f, 0.75f, 1.0f, -5.0f, 7.0f, NAN, INFINITY, -INFINITY,
		     0.2499999f, 0.9999999f};
	dfq_histogram(v, 12, 0.0f, 1.0f, 4, c);
	/* bin 0: 0, -5, -inf, 0.2499999; 1: .25; 2: .5; 3: .75, 1, 7, inf, .9999999 */
	assert_int_equal(c[0], 4);
	assert_int_equal(c[1], 1);
	assert_int_equal(c[2], 1);
	assert_int_equal(c[3], 5);
	/* counts are overwritten, lo > hi is swapped */
	dfq_histogram(v, 5, 1.0f, 0.0f, 4, c);
	assert_int_equal(c[0] + c[1] + c[2] + c[3], 5);
	assert_int_equal(c[3], 2);
	/* lo == hi: below -> 0, above -> last, equal -> middle; NaN still ignored */
	int64_t d[5];
	float w[] = {2.0f, 2.0f, 1.0f, 3.0f, NAN};
	dfq_histogram(w, 5, 2.0f, 2.0f, 5, d);
	assert_int_equal(d[0], 1);
	assert_int_equal(d[2], 2);
	assert_int_equal(d[4], 1);
	assert_int_equal(d[1] + d[3], 0);
	/* one bin holds everything that is not NaN */
	int64_t one;
	dfq_histogram(v, 12, 0.0f, 1.0f, 1, &one);
	assert_int_equal(one, 11);
	/* infinite bounds: no NaN bin index */
	dfq_histogram(v, 12, -INFINITY, INFINITY, 4, c);
	assert_int_equal(c[0] + c[1] + c[2] + c[3], 11);
	/* nbins 0: nothing written */
	dfq_histogram(v, 12, 0.0f, 1.0f, 0, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_asym8_minus1_1),
		cmocka_unit_test(test_zero_point_ties),
		cmocka_unit_test(test_value_ties_and_clamp),
		cmocka_unit_test(test_huge_values_clamp),
		cmocka_unit_test(test_sym4),
		cmocka_unit_test(test_2_and_16_bits),
		cmocka_unit_test(test_rounding_matches_nearbyintf),
		cmocka_unit_test(test_random_against_definition),
		cmocka_unit_test(test_constant_tensors),
		cmocka_unit_test(test_bad_args),
		cmocka_unit_test(test_nan_passthrough),
		cmocka_unit_test(test_extreme_ranges),
		cmocka_unit_test(test_quantize_weights_per_channel),
		cmocka_unit_test(test_quantize_weights_zeros),
		cmocka_unit_test(test_minmax),
		cmocka_unit_test(test_quantize_error),
		cmocka_unit_test(test_quantize_error_bound),
		cmocka_unit_test(test_reduce_names),
		cmocka_unit_test(test_qerr_stats_and_sqnr),
		cmocka_unit_test(test_histogram),
	};
	DFQ_RUN_TESTS(tests);
}
