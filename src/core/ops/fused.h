/* fused.h - kernels of the fused fast path (fused.c), run by the plan in optimize.c.
 *
 * They work on activations in "CNHW" layout: all images' planes of channel 0,
 * then of channel 1, ...  For a batch that makes a 1x1 convolution one matrix
 * product with N * H * W columns instead of N small ones, and for one image
 * (or one channel) it is the same memory as NCHW, so converting is free.
 * Not part of the public API. */
#ifndef DFQ_FUSED_H
#define DFQ_FUSED_H

#include <stdbool.h>
#include <stdint.h>

#include "dfq/dfq_error.h"
#include "dfq/dfq_parallel.h"

/* Fake quantization of an activation on one grid (see dfq_fake_quant):
 * v = round_half_even(clip(v * inv, lo, hi)) * scale, with lo/hi = qmin/qmax
 * minus the zero point and inv = 1 / scale.  The definition (quant.c) divides
 * by scale; multiplying by the reciprocal, as PyTorch's fake_quantize does,
 * can differ from it only when v / scale lies within an ulp of a half-integer
 * (off by one code, about once in 10^5 values), the same order as the
 * rounding differences of the fused sums themselves, while a division per
 * value would double the cost of a quantized MobileNetV2 (measured). */
struct fused_fq {
	float inv, lo, hi, scale;
};

/* What follows a convolution's sum, per output element of channel m:
 *   v = acc * scale[m] + bias[m];  v = clip(v, lo1, hi1) if act1;  v = fq(v, q1) if fq1;
 *   v += res;  v = clip(v, lo2, hi2) if act2;  v = fq(v, q2) if fq2
 * where clip is Clip's "if (v < lo) v = lo; if (v > hi) v = hi" (NaN passes; Relu is
 * clip(0, +inf)).  res has the output's layout and shape.  A BatchNormalization
 * after the convolution is its scale and bias.  q1 quantizes the convolution's
 * (activated) output before a residual is added, q2 the sum. */
struct fused_epi {
	const float *scale; /* per output channel, or NULL for 1 */
	const float *bias;  /* per output channel, or NULL for 0 */
	bool act1, act2;
	float lo1, hi1, lo2, hi2;
	bool fq1, fq2;
	struct fused_fq q1, q2;
	const float *res; /* or NULL */
};

/* The struct fused_fq of a grid (scale > 0, qmin <= zero_point <= qmax). */
struct fused_fq fused_fq_of(float scale, int32_t zero_point, int32_t qmin, int32_t qmax);

/* Floats before and after every activation buffer of the plan that kernels may
 * read (and must ignore): shifted vector loads near the edges of a tensor go
 * there instead of needing bounds checks. */
#define FUSED_GUARD 1024

/* Kernel taps (kh * kw) of a depthwise convolution the kernels handle. */
#define FUSED_MAX_TAPS 64

/* A 2-D convolution, group 1 or depthwise (group == c, any channel multiplier), in CNHW. */
struct fused_conv {
	int64_t n, c, h, w;                     /* input */
	int64_t m, oh, ow;                      /* output channels and size */
	int64_t kh, kw, sh, sw, dh, dw, ph, pw; /* kernel, strides, dilations, begin pads */
	bool depthwise;                         /* else group 1 */
	const float *x;                         /* [c][n][h][w], FUSED_GUARD floats around */
	const float *wt;                        /* [m][c or 1][kh][kw] */
	float *y;                               /* [m][n][oh][ow] */
	struct fused_epi epi;
	/* The shift-map mask tables (fused_conv_masks_fill), which depend on the
	 * geometry only; NULL: built in the scratch at every run. */
	const void *masks;
};

/* Bytes of cv's mask tables, 0 when it has none; and filling them (buf
 * 64-byte aligned).  Callers that run a geometry often keep them. */
size_t fused_conv_masks_size(const struct fused_conv *cv);
void fused_conv_masks_fill(const struct fused_conv *cv, void *buf);

/* Scratch floats fused_conv_run needs for cv on nthreads threads. */
int64_t fused_conv_scratch(const struct fused_conv *cv, int nthreads);

/* Run cv on pool (NULL = this thread) with scratch (fused_conv_scratch()
 * floats, 64-byte aligned, contents irrelevant).  Group-1 convolutions need
 * the BLAS (dfq_blas_init must have succeeded). */
void fused_conv_run(const struct fused_conv *cv, struct dfq_pool *pool, float *scratch);

/* A depthwise convolution dw and the 1x1 convolution pw that reads its
 * output, run together block by block so that dw's output never goes to
 * memory (dw->y is not written; pw->x is not read).  fused_dw_pw_ok: whether
 * they can (the AVX-512 kernels, dw through the shift map without a residual,
 * pw a stride-1 unpadded 1x1 of dw's output) and it pays on nthreads threads;
 * the scratch as for fused_conv_run. */
bool fused_dw_pw_ok(const struct fused_conv *dw, const struct fused_conv *pw, int nthreads);
int64_t fused_dw_pw_scratch(const struct fused_conv *dw, const struct fused_conv *pw,
                            int nthreads);
void fused_dw_pw_run(const struct fused_conv *dw, const struct fused_conv *pw,
                     struct dfq_pool *pool, float *scratch);
/* GlobalAveragePool of x [c][n][hw] (CNHW) into y [n][c] (NCHW with 1x1 planes). */
void fused_gap_cnhw(const float *x, int64_t n, int64_t c, int64_t hw, float *y,
                    struct dfq_pool *pool);

/* Layout changes between NCHW [n][c][hw] and CNHW [c][n][hw]. */
void fused_nchw_to_cnhw(const float *src, float *dst, int64_t n, int64_t c, int64_t hw,
                        struct dfq_pool *pool);
void fused_cnhw_to_nchw(const float *src, float *dst, int64_t n, int64_t c, int64_t hw,
                        struct dfq_pool *pool);

/* Use the portable kernels even where the CPU has AVX-512 or AVX2 (tests run both). */
void fused_force_generic(bool on);

/* Tests: the multiply-adds below which a convolution runs on the calling
 * thread alone (fused.c's PAR_MIN_MACS by default); 0 shares out every one,
 * so that small test cases take the multi-threaded paths. */
void fused_set_par_min_macs(long long macs);

/* "avx512", "avx2" or "generic": the kernels in use. */
const char *fused_isa(void);

#endif
