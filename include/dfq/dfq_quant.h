/* dfq_quant.h - uniform quantization math (docs/algorithms.md, sections 1-2).
 *
 * Pure functions on float arrays: no graph, no I/O.  "Fake quantization":
 * values stay float32 and take at most 2^bits distinct values.
 * Rounding is half to even (nearbyintf in the default rounding mode), as in
 * PyTorch and ONNX Runtime. */
#ifndef DFQ_QUANT_H
#define DFQ_QUANT_H

#include <stdbool.h>
#include <stdint.h>

#include "dfq_error.h"
#include "dfq_tensor.h"

#define DFQ_QBITS_MIN 2
#define DFQ_QBITS_MAX 16
#define DFQ_QSCALE_MIN 1e-8f

typedef enum dfq_qscheme {
	DFQ_QSCHEME_ASYM = 0, /* qmin 0, qmax 2^b-1, zero point rounded so 0.0 is exact */
	DFQ_QSCHEME_SYM,      /* qmin -2^(b-1), qmax 2^(b-1)-1, zero point 0 */
} dfq_qscheme;

/* The grid for one range: x' = (clamp(round(x/scale) + zp, qmin, qmax) - zp) * scale. */
struct dfq_qparams {
	float scale;
	int32_t zero_point;
	int32_t qmin, qmax;
	int bits;
	dfq_qscheme scheme;
};

/* Grid for bits over [lo, hi] (lo <= hi; the range is widened to include
 * 0.0 for the asymmetric scheme, as ONNX QuantizeLinear and AIMET do).
 * DFQ_ERR_ARG for bits outside 2..16, NaN/Inf bounds or lo > hi. */
dfq_status dfq_qparams_make(int bits, dfq_qscheme scheme, float lo, float hi,
			    struct dfq_qparams *out, struct dfq_error *err);

/* One value through the grid (the seed's `quantize` followed by dequantize). */
float dfq_fake_quant1(float x, const struct dfq_qparams *q);
/* Integer code of x on the grid. */
int32_t dfq_quant_code(float x, const struct dfq_qparams *q);

/* Fake-quantize n floats in place with one grid. */
void dfq_fake_quant(float *x, int64_t n, const struct dfq_qparams *q);

/* UniformQuantize of a weight tensor W [out, ...]: per tensor (one grid over
 * min/max of W) or per output channel (a grid per W[o] over its own min/max).
 * Writes Q(W) into out (same shape, may alias w).  If qp is not NULL it gets
 * the grid(s): 1 entry per tensor, dims[0] entries per channel (caller sizes
 * it).  DFQ_ERR_ARG on bad bits or NaN/Inf in w. */
dfq_status dfq_quantize_weights(const struct dfq_tensor *w, int bits, dfq_qscheme scheme,
				bool per_channel, struct dfq_tensor *out, struct dfq_qparams *qp,
				struct dfq_error *err);

/* Min and max of n floats (NaN/Inf -> DFQ_ERR_ARG naming what was found). */
dfq_status dfq_minmax(const float *x, int64_t n, float *lo, float *hi, struct dfq_error *err);

/* _quantize_error reductions over eps = Q(W) - W. */
typedef enum dfq_qerr_reduce {
	DFQ_QERR_NONE = 0, /* eps itself, W's shape */
	DFQ_QERR_SUM,      /* sum |eps|, a scalar */
	DFQ_QERR_MEAN,     /* mean |eps|, a scalar */
	DFQ_QERR_CHANNEL,  /* sum |eps| over all but axis 0: [out] */
	DFQ_QERR_SPATIAL,  /* sum |eps| over kh, kw: [out, in] (rank-2 W: |eps| itself) */
} dfq_qerr_reduce;

/* "none"/"sum"/"mean"/"channel"/"spatial" -> reduction; DFQ_ERR_ARG otherwise. */
dfq_status dfq_qerr_reduce_parse(const char *s, dfq_qerr_reduce *out, struct dfq_error *err);
const char *dfq_qerr_reduce_name(dfq_qerr_reduce r);

/* The seed's _quantize_error: eps = wq - w reduced as asked.  *out is new
 * (caller owns).  w and wq must have the same shape. */
dfq_status dfq_quantize_error(const struct dfq_tensor *w, const struct dfq_tensor *wq,
			      dfq_qerr_reduce reduce, struct dfq_tensor **out,
			      struct dfq_error *err);

/* Summary of eps = wq - w (sums in double). */
struct dfq_qerr_stats {
	double sqnr_db;   /* 10 log10(sum w^2 / sum eps^2); +inf when eps == 0 */
	double max_abs;   /* max |eps| */
	double mean_abs;  /* mean |eps| */
	double mean;      /* mean eps (the bias bias-correction removes) */
	double rms;       /* sqrt(mean eps^2) */
	int64_t n;
};
void dfq_qerr_stats(const float *w, const float *wq, int64_t n, struct dfq_qerr_stats *out);

/* SQNR in dB of approximation b of reference a (n values). */
double dfq_sqnr_db(const float *a, const float *b, int64_t n);

/* Histogram of x into nbins equal bins over [lo, hi] (values outside are
 * counted in the end bins).  counts has nbins entries. */
void dfq_histogram(const float *x, int64_t n, float lo, float hi, int nbins, int64_t *counts);

#endif
