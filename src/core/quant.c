/* quant.c - quantization grids, fake quantization, quantization error (docs/algorithms.md secs. 1-2). */
#include <assert.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "dfq/dfq_quant.h"

/*
 * Rounding.  Every code is round_half_even(x / scale); the definition uses nearbyintf() in the
 * default rounding mode.  A nearbyintf() call per value keeps the loop scalar (5.5 ns per value
 * on the 2-core test box; 11 ns with the int conversion of the textbook form) while the same
 * rounding done with one add and one subtract vectorises (0.3 ns, memory bound):
 *
 *   for |t| <= 2^22, t + 1.5*2^23 lies in [2^23, 2^24), where floats are exactly the integers,
 *   so the addition itself rounds t to an integer, to nearest with ties to the even sum; as
 *   1.5*2^23 is even, ties go to the even integer.  Subtracting the constant again is exact.
 *
 * Callers clamp t to the code range first (|t| <= 2^17), so the precondition always holds.  It
 * needs float arithmetic done in float (FLT_EVAL_METHOD 0, true for SSE/NEON) and no value-
 * changing optimisation (-ffast-math would fold the add/subtract); otherwise use nearbyintf().
 * tests/test_quant.c checks it against nearbyintf() on every tie and its neighbours.
 */
#if FLT_EVAL_METHOD == 0 && !defined(__FAST_MATH__)
static inline float round_half_even(float t)
{
	const float magic = 12582912.0f; /* 1.5 * 2^23 */
	return (t + magic) - magic;
}
#else
static inline float round_half_even(float t)
{
	return nearbyintf(t);
}
#endif

/*
 * q - zp for x, as a float: clamp(round(x / scale) + zp, qmin, qmax) - zp.
 * Clamping commutes with rounding when the bounds are integers, so this is
 * round(clamp(x / scale, qmin - zp, qmax - zp)): no int conversion, so no overflow when x / scale
 * is huge or infinite.  NaN stays NaN (both comparisons are false).  lo_c/hi_c are qmin - zp
 * and qmax - zp, exact in float (|.| <= 2^16).
 */
static inline float code_offset(float x, float scale, float lo_c, float hi_c)
{
	float t = x / scale;
	t = t < lo_c ? lo_c : t;
	t = t > hi_c ? hi_c : t;
	return round_half_even(t);
}

/* dst[i] = Q(src[i]); dst may equal src.  Blocks of 8 with a fixed inner trip count let GCC's
 * -O2 vectoriser (cheap cost model, no epilogue) use SIMD; the tail is the same function. */
static void fake_quant_span(const float *src, float *dst, int64_t n, const struct dfq_qparams *q)
{
	const float scale = q->scale;
	const float lo_c = (float)(q->qmin - q->zero_point);
	const float hi_c = (float)(q->qmax - q->zero_point);
	int64_t i = 0;

	for (; i + 8 <= n; i += 8) {
		float t[8];
		for (int j = 0; j < 8; j++)
			t[j] = code_offset(src[i + j], scale, lo_c, hi_c) * scale;
		for (int j = 0; j < 8; j++)
			dst[i + j] = t[j];
	}
	for (; i < n; i++)
		dst[i] = code_offset(src[i], scale, lo_c, hi_c) * scale;
}

static dfq_status check_bits(int bits, struct dfq_error *err)
{
	if (bits < DFQ_QBITS_MIN || bits > DFQ_QBITS_MAX)
		return dfq_error_set(err, DFQ_ERR_ARG, "quantization needs %d to %d bits, not %d",
				     DFQ_QBITS_MIN, DFQ_QBITS_MAX, bits);
	return DFQ_OK;
}

static dfq_status check_scheme(dfq_qscheme scheme, struct dfq_error *err)
{
	if (scheme != DFQ_QSCHEME_ASYM && scheme != DFQ_QSCHEME_SYM)
		return dfq_error_set(err, DFQ_ERR_ARG, "unknown quantization scheme %d",
				     (int)scheme);
	return DFQ_OK;
}

/* (hi - lo) / steps in float, as PyTorch and ONNX Runtime compute it.  hi - lo overflows only
 * for ranges wider than FLT_MAX; then divide first (no NaN, no inf scale). */
static float range_scale(float lo, float hi, int32_t steps)
{
	float width = hi - lo;
	if (isinf(width))
		return hi / (float)steps - lo / (float)steps;
	return width / (float)steps;
}

/*
 * A constant range [c, c], c != 0, puts c on code +-kmax (kmax = qmax - qmin asymmetric, qmax
 * symmetric) with scale fl(|c| / kmax).  In float, kmax * fl(|c| / kmax) misses |c| by an ulp
 * for ~0.4% of values at 8 bits (17% at 2 bits), and no neighbouring scale fixes it.  As
 * docs/algorithms.md wants a constant tensor to quantize to itself, take the largest code k <= kmax
 * whose scale |c| / k gives back |c| exactly: k = kmax (the definition) almost always, a power
 * of two always works unless |c| / k is below the scale floor.  Returns def when none does
 * (|c| < DFQ_QSCALE_MIN: nothing reproduces c with a floored scale).
 */
static float constant_scale(float c_abs, int32_t kmax, float def)
{
	int32_t k = kmax;
	double kfloor = (double)c_abs / (double)DFQ_QSCALE_MIN; /* larger k: scale below floor */
	if (kfloor < (double)k)
		k = (int32_t)kfloor;
	for (; k >= 1; k--) {
		float s = c_abs / (float)k;
		if (s >= DFQ_QSCALE_MIN && (float)k * s == c_abs &&
		    nearbyintf(c_abs / s) == (float)k)
			return s;
	}
	return def;
}

dfq_status dfq_qparams_make(int bits, dfq_qscheme scheme, float lo, float hi,
			    struct dfq_qparams *out, struct dfq_error *err)
{
	dfq_status st = check_bits(bits, err);
	if (st)
		return st;
	if ((st = check_scheme(scheme, err)))
		return st;
	if (!isfinite(lo) || !isfinite(hi))
		return dfq_error_set(err, DFQ_ERR_ARG, "quantization range [%g, %g] is not finite",
				     (double)lo, (double)hi);
	if (lo > hi)
		return dfq_error_set(err, DFQ_ERR_ARG,
				     "quantization range [%g, %g] has its minimum above its "
				     "maximum",
				     (double)lo, (double)hi);

	struct dfq_qparams q = {.bits = bits, .scheme = scheme};
	float scale, wlo = 0.0f;
	int32_t kmax;
	if (scheme == DFQ_QSCHEME_ASYM) {
		q.qmin = 0;
		q.qmax = (int32_t)((1u << bits) - 1);
		/* Widen to include 0.0 so that zero (padding, ReLU output) is exact. */
		wlo = lo < 0.0f ? lo : 0.0f;
		float whi = hi > 0.0f ? hi : 0.0f;
		scale = range_scale(wlo, whi, q.qmax - q.qmin);
		kmax = q.qmax - q.qmin;
	} else {
		q.qmin = -(int32_t)(1u << (bits - 1));
		q.qmax = (int32_t)(1u << (bits - 1)) - 1;
		scale = fmaxf(fabsf(lo), fabsf(hi)) / (float)q.qmax;
		kmax = q.qmax;
	}
	if (lo == hi && lo != 0.0f)
		scale = constant_scale(fabsf(lo), kmax, scale);
	q.scale = fmaxf(scale, DFQ_QSCALE_MIN);

	if (scheme == DFQ_QSCHEME_ASYM) {
		/* wlo <= 0, scale > 0: -wlo / scale is in [0, ~qmax]; clamp the rounding slop. */
		float z = nearbyintf(-wlo / q.scale);
		z = fminf(fmaxf(z, (float)q.qmin), (float)q.qmax);
		q.zero_point = (int32_t)z;
	}
	*out = q;
	return DFQ_OK;
}

float dfq_fake_quant1(float x, const struct dfq_qparams *q)
{
	float r = code_offset(x, q->scale, (float)(q->qmin - q->zero_point),
			      (float)(q->qmax - q->zero_point));
	return r * q->scale;
}

/* NaN has no code: it gets the zero point's (the code of 0.0). */
int32_t dfq_quant_code(float x, const struct dfq_qparams *q)
{
	float r = code_offset(x, q->scale, (float)(q->qmin - q->zero_point),
			      (float)(q->qmax - q->zero_point));
	if (isnan(r))
		return q->zero_point;
	return (int32_t)r + q->zero_point;
}

void dfq_fake_quant(float *x, int64_t n, const struct dfq_qparams *q)
{
	assert(q->scale > 0.0f);
	fake_quant_span(x, x, n, q);
}

/*
 * Min and max of x[0..n) ignoring nothing: returns false and the index of the first NaN/Inf
 * in *bad.  Eight independent lanes so the loop vectorises; NaN never wins a comparison, so it
 * is tracked by its own flag.  n == 0 gives [0, 0].
 */
static bool minmax_scan(const float *x, int64_t n, float *lo, float *hi, int64_t *bad)
{
	float mn[8], mx[8];
	int nan[8];
	for (int j = 0; j < 8; j++) {
		mn[j] = INFINITY;
		mx[j] = -INFINITY;
		nan[j] = 0;
	}
	int64_t i = 0;
	for (; i + 8 <= n; i += 8) {
		for (int j = 0; j < 8; j++) {
			float v = x[i + j];
			mn[j] = v < mn[j] ? v : mn[j];
			mx[j] = v > mx[j] ? v : mx[j];
			nan[j] |= v != v;
		}
	}
	for (; i < n; i++) {
		float v = x[i];
		mn[0] = v < mn[0] ? v : mn[0];
		mx[0] = v > mx[0] ? v : mx[0];
		nan[0] |= v != v;
	}
	float l = mn[0], h = mx[0];
	int any_nan = nan[0];
	for (int j = 1; j < 8; j++) {
		l = mn[j] < l ? mn[j] : l;
		h = mx[j] > h ? mx[j] : h;
		any_nan |= nan[j];
	}
	if (n == 0) {
		*lo = *hi = 0.0f;
		return true;
	}
	/* With n > 0 and no NaN, min and max are finite unless some value is infinite. */
	if (any_nan || isinf(l) || isinf(h)) {
		for (i = 0; i < n && isfinite(x[i]); i++)
			;
		*bad = i;
		return false;
	}
	*lo = l;
	*hi = h;
	return true;
}

static const char *nonfinite_name(float v)
{
	if (isnan(v))
		return "NaN";
	return v > 0 ? "+Inf" : "-Inf";
}

dfq_status dfq_minmax(const float *x, int64_t n, float *lo, float *hi, struct dfq_error *err)
{
	int64_t bad;
	if (!minmax_scan(x, n, lo, hi, &bad))
		return dfq_error_set(err, DFQ_ERR_ARG, "found %s at index %lld of %lld values",
				     nonfinite_name(x[bad]), (long long)bad, (long long)n);
	return DFQ_OK;
}

static dfq_status check_f32(const struct dfq_tensor *t, const char *what, struct dfq_error *err)
{
	if (t->dtype != DFQ_DTYPE_F32)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED, "%s must be float32, not %s", what,
				     dfq_dtype_name(t->dtype));
	return DFQ_OK;
}

static dfq_status check_same_shape(const struct dfq_tensor *a, const char *an,
				   const struct dfq_tensor *b, const char *bn,
				   struct dfq_error *err)
{
	if (dfq_tensor_same_shape(a, b))
		return DFQ_OK;
	char sa[128], sb[128];
	struct dfq_shape s;
	dfq_tensor_shape(a, &s);
	dfq_shape_str(&s, sa, sizeof sa);
	dfq_tensor_shape(b, &s);
	dfq_shape_str(&s, sb, sizeof sb);
	return dfq_error_set(err, DFQ_ERR_SHAPE, "%s %s and %s %s differ in shape", an, sa, bn, sb);
}

/*
 * Ownership: reads w, writes out (caller's, may be w itself) and qp (caller's, 1 or dims[0]
 * entries).  The whole tensor is checked before anything is written, so on error out and qp are
 * untouched (important when out aliases w).
 */
dfq_status dfq_quantize_weights(const struct dfq_tensor *w, int bits, dfq_qscheme scheme,
				bool per_channel, struct dfq_tensor *out, struct dfq_qparams *qp,
				struct dfq_error *err)
{
	dfq_status st;
	if ((st = check_bits(bits, err)) || (st = check_scheme(scheme, err)) ||
	    (st = check_f32(w, "weight tensor", err)) ||
	    (st = check_f32(out, "quantized weight tensor", err)) ||
	    (st = check_same_shape(w, "weight tensor", out, "its output", err)))
		return st;
	if (per_channel && w->ndim < 1)
		return dfq_error_set(err, DFQ_ERR_SHAPE,
				     "per-channel quantization needs a weight tensor with an "
				     "output-channel axis, not a scalar");

	const float *x = dfq_tensor_f32(w);
	float *y = dfq_tensor_f32(out);
	int64_t n = w->numel;
	float lo, hi;
	int64_t bad;
	if (!minmax_scan(x, n, &lo, &hi, &bad)) {
		if (per_channel && w->dims[0] > 0)
			return dfq_error_set(err, DFQ_ERR_ARG,
					     "weight tensor has %s at element %lld (output channel "
					     "%lld)",
					     nonfinite_name(x[bad]), (long long)bad,
					     (long long)(bad / (n / w->dims[0])));
		return dfq_error_set(err, DFQ_ERR_ARG, "weight tensor has %s at element %lld",
				     nonfinite_name(x[bad]), (long long)bad);
	}

	struct dfq_qparams q;
	if (!per_channel) {
		if ((st = dfq_qparams_make(bits, scheme, lo, hi, &q, err)))
			return st;
		fake_quant_span(x, y, n, &q);
		if (qp)
			qp[0] = q;
		return DFQ_OK;
	}
	int64_t channels = w->dims[0];
	int64_t per = channels ? n / channels : 0;
	for (int64_t o = 0; o < channels; o++) {
		const float *src = x + o * per;
		/* Cannot fail: the whole tensor was checked above. */
		if (!minmax_scan(src, per, &lo, &hi, &bad))
			return dfq_error_set(err, DFQ_ERR_INTERNAL,
					     "channel %lld changed while being quantized",
					     (long long)o);
		if ((st = dfq_qparams_make(bits, scheme, lo, hi, &q, err)))
			return dfq_error_prefix(err, "output channel %lld", (long long)o);
		fake_quant_span(src, y + o * per, per, &q);
		if (qp)
			qp[o] = q;
	}
	return DFQ_OK;
}

static const char *const reduce_names[] = {
	[DFQ_QERR_NONE] = "none",
	[DFQ_QERR_SUM] = "sum",
	[DFQ_QERR_MEAN] = "mean",
	[DFQ_QERR_CHANNEL] = "channel",
	[DFQ_QERR_SPATIAL] = "spatial",
};
#define N_REDUCE ((int)(sizeof reduce_names / sizeof reduce_names[0]))

dfq_status dfq_qerr_reduce_parse(const char *s, dfq_qerr_reduce *out, struct dfq_error *err)
{
	for (int r = 0; r < N_REDUCE; r++) {
		if (s && strcmp(s, reduce_names[r]) == 0) {
			*out = (dfq_qerr_reduce)r;
			return DFQ_OK;
		}
	}
	return dfq_error_set(err, DFQ_ERR_ARG,
			     "unknown error reduction '%s' (none, sum, mean, channel, spatial)",
			     s ? s : "(null)");
}

const char *dfq_qerr_reduce_name(dfq_qerr_reduce r)
{
	if ((int)r < 0 || (int)r >= N_REDUCE)
		return "?";
	return reduce_names[r];
}

/* out[g] = sum over the group's `per` elements of |wq - w|, in double; eps is taken in float
 * first, as the seed's eps = Q(W) - W tensor is. */
static void sum_abs_groups(const float *w, const float *wq, int64_t groups, int64_t per,
			   float *out)
{
	for (int64_t g = 0; g < groups; g++) {
		double s = 0.0;
		for (int64_t i = g * per; i < (g + 1) * per; i++)
			s += fabs((double)(wq[i] - w[i]));
		out[g] = (float)s;
	}
}

/* Ownership: *out is new on success and belongs to the caller; untouched on error. */
dfq_status dfq_quantize_error(const struct dfq_tensor *w, const struct dfq_tensor *wq,
			      dfq_qerr_reduce reduce, struct dfq_tensor **out,
			      struct dfq_error *err)
{
	dfq_status st;
	if ((st = check_f32(w, "weight tensor", err)) ||
	    (st = check_f32(wq, "quantized weight tensor", err)) ||
	    (st = check_same_shape(w, "weight tensor", wq, "quantized weight tensor", err)))
		return st;

	int ndim;
	int64_t dims[DFQ_MAX_DIMS];
	switch (reduce) {
	case DFQ_QERR_NONE:
		ndim = w->ndim;
		memcpy(dims, w->dims, sizeof dims);
		break;
	case DFQ_QERR_SUM:
	case DFQ_QERR_MEAN:
		ndim = 0;
		break;
	case DFQ_QERR_CHANNEL:
		if (w->ndim < 1)
			return dfq_error_set(err, DFQ_ERR_SHAPE,
					     "the per-channel error needs a weight tensor with an "
					     "output-channel axis, not a scalar");
		ndim = 1;
		dims[0] = w->dims[0];
		break;
	case DFQ_QERR_SPATIAL:
		if (w->ndim < 2)
			return dfq_error_set(err, DFQ_ERR_SHAPE,
					     "the spatial error needs a weight tensor of rank 2 or "
					     "more, not rank %d",
					     w->ndim);
		ndim = 2;
		dims[0] = w->dims[0];
		dims[1] = w->dims[1];
		break;
	default:
		return dfq_error_set(err, DFQ_ERR_ARG, "unknown error reduction %d", (int)reduce);
	}

	struct dfq_error terr;
	struct dfq_tensor *t = dfq_tensor_new(DFQ_DTYPE_F32, ndim, dims, &terr);
	if (!t)
		return dfq_error_set(err, terr.status, "%s", terr.msg);
	const float *a = dfq_tensor_f32(w), *b = dfq_tensor_f32(wq);
	float *o = dfq_tensor_f32(t);
	int64_t n = w->numel;
	switch (reduce) {
	case DFQ_QERR_NONE:
		for (int64_t i = 0; i < n; i++)
			o[i] = b[i] - a[i];
		break;
	case DFQ_QERR_SUM:
		sum_abs_groups(a, b, 1, n, o);
		break;
	case DFQ_QERR_MEAN: {
		double s = 0.0;
		for (int64_t i = 0; i < n; i++)
			s += fabs((double)(b[i] - a[i]));
		o[0] = n ? (float)(s / (double)n) : 0.0f; /* empty: 0, never NaN */
		break;
	}
	case DFQ_QERR_CHANNEL:
	case DFQ_QERR_SPATIAL:
		/* numel == 0 gives groups of 0 elements, i.e. zeros. */
		if (t->numel)
			sum_abs_groups(a, b, t->numel, n / t->numel, o);
		break;
	}
	*out = t;
	return DFQ_OK;
}

void dfq_qerr_stats(const float *w, const float *wq, int64_t n, struct dfq_qerr_stats *out)
{
	double sw2 = 0.0, se2 = 0.0, sabs = 0.0, se = 0.0, mx = 0.0;
	for (int64_t i = 0; i < n; i++) {
		double e = (double)wq[i] - (double)w[i];
		double ae = fabs(e);
		sw2 += (double)w[i] * (double)w[i];
		se2 += e * e;
		sabs += ae;
		se += e;
		mx = ae > mx ? ae : mx;
	}
	memset(out, 0, sizeof *out);
	out->n = n;
	out->max_abs = mx;
	/* eps == 0 everywhere (also n == 0): infinitely good; w == 0 but eps != 0: -inf. */
	out->sqnr_db = se2 == 0.0 ? INFINITY : 10.0 * log10(sw2 / se2);
	if (n > 0) {
		out->mean_abs = sabs / (double)n;
		out->mean = se / (double)n;
		out->rms = sqrt(se2 / (double)n);
	}
}

double dfq_sqnr_db(const float *a, const float *b, int64_t n)
{
	double sa2 = 0.0, se2 = 0.0;
	for (int64_t i = 0; i < n; i++) {
		double e = (double)b[i] - (double)a[i];
		sa2 += (double)a[i] * (double)a[i];
		se2 += e * e;
	}
	return se2 == 0.0 ? INFINITY : 10.0 * log10(sa2 / se2);
}

/*
 * Bin k covers [lo + k w, lo + (k+1) w), w = (hi - lo) / nbins; hi itself goes to the last bin,
 * values below lo (also -Inf) to bin 0, above hi (also +Inf) to the last bin; NaN is not
 * counted.  counts is overwritten.  lo > hi is taken as [hi, lo].  A degenerate range
 * (lo == hi, or an infinite bound) has no width: values equal to it (or inside) go to the
 * middle bin, as numpy's histogram does when it widens such a range by +-0.5.
 */
void dfq_histogram(const float *x, int64_t n, float lo, float hi, int nbins, int64_t *counts)
{
	if (nbins <= 0)
		return;
	memset(counts, 0, (size_t)nbins * sizeof *counts);
	if (lo > hi) {
		float t = lo;
		lo = hi;
		hi = t;
	}
	double dlo = lo, width = (double)hi - (double)lo;
	bool degenerate = !(width > 0.0) || !isfinite(width);
	double per_unit = degenerate ? 0.0 : (double)nbins / width;
	for (int64_t i = 0; i < n; i++) {
		float v = x[i];
		int64_t k;
		if (isnan(v))
			continue;
		if (v < lo) {
			k = 0;
		} else if (v > hi) {
			k = nbins - 1;
		} else if (degenerate) {
			k = nbins / 2;
		} else {
			double f = ((double)v - dlo) * per_unit;
			k = f >= (double)nbins ? nbins - 1 : (int64_t)f;
		}
		counts[k]++;
	}
}
