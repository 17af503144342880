/* step_equalize.c - cross-layer equalization (paper sec. 4.1; docs/algorithms.md sec. 6): per
 * channel i of the tensor between two layers, s_i = sqrt(r1_i r2_i) / r2_i, iterated over all
 * pairs until the weights stop changing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

#define S_MIN 1e-8 /* scale factors are kept within [S_MIN, S_MAX], as jakc4103/DFQ does */
#define S_MAX 1e8

void dfq_equalize_opts_default(struct dfq_equalize_opts *o)
{
	/* measured defaults (docs/algorithms.md sec. 6.2, 6.3): max - min, the range of the
	 * default asymmetric grids, and chains that end at linear layers, after which bias
	 * correction gains wherever the empirical one does */
	o->range = DFQ_QSCHEME_ASYM;
	o->chains = DFQ_EQ_CHAINS_STOP_LINEAR;
	o->max_rounds = 20;
	o->tol = 2e-7;
}

/* --- equalization state: per-layer row/column factors ------------------------ */

/*
 * Nothing touches the weights until the end: each layer carries a row factor
 * a[o] (output channels, changed when it is layer 1 of a pair) and a column
 * factor b[c] (input channels, changed when it is layer 2), and W'[o, i, k] =
 * a[o] b[gi] W[o, i, k] (gi: the global input channel of i in o's group).
 * Ranges scale with the factors, so a layer that is only ever layer 1 has
 * row ranges a[o] R[o] with R computed once, and one that is only layer 2
 * column ranges b[c] C[c]: a round costs O(channels) for them.  Layers in
 * both roles (depthwise convs inside a chain, a projection feeding the next
 * expansion) recompute from their "cells" W[o, i, :] (max, min, sum |w|).
 */
struct eqlayer {
	bool used;
	bool row_dyn, col_dyn; /* layer 1 / layer 2 of some active pair */
	bool sym;
	int64_t cout, cin, cin_g, cout_g;
	/* both roles: cell max/min and sum |w| (W itself when ksize == 1) */
	const float *mx, *mn, *asum;
	int64_t os, is; /* cell strides */
	bool abs_is_w;  /* asum is W (|.| still to take) */
	float *own;     /* owned cell storage when ksize > 1 */
	/* one role: base ranges and absolute sums (owned) */
	double *base;                /* R[cout] (layer 1 only) or C[cin] (layer 2 only) */
	double *absum;               /* per row (layer 1 only) or per column (layer 2 only) */
	double *a, *b;               /* row (cout) and column (cin) factors, owned */
	double *a0, *b0;             /* factors at the start of the round, owned */
	double *tmp_hi, *tmp_lo;     /* cin scratch, owned */
	bool contig;                 /* cells are W with unit input stride (fast paths) */
	float *fb, *fb0, *fhi, *flo; /* float scratch for the fast paths, owned */
};

static void eq_free(struct eqlayer *e)
{
	free(e->own);
	free(e->base);
	free(e->absum);
	free(e->a);
	free(e->b);
	free(e->a0);
	free(e->b0);
	free(e->tmp_hi);
	free(e->tmp_lo);
	free(e->fb);
	free(e->fb0);
	free(e->fhi);
	free(e->flo);
}

/* Max and min of one cell under the sym/asym range definition. */
static inline void cell_hilo(bool sym, double x, double y, double *hi, double *lo)
{
	if (sym) {
		x = fmax(fabs(x), fabs(y));
		y = -x;
	}
	*hi = x;
	*lo = y;
}

/*
 * Contiguous fast paths (a 1x1 conv or Gemm stored [out, in]: cell (o, i) is
 * w[o * os + i]).  Float loops in blocks of 8 with a fixed trip count, the
 * shape GCC's -O2 vectoriser takes; the tail uses the same expressions.
 */
#define VB 8

/* max and min of f[i] * w[i] (or of |f[i] w[i]| as hi, -hi as lo when sym). */
static void row_hilo(const float *w, const float *f, int64_t n, bool sym, float *hi, float *lo)
{
	float h8[VB], l8[VB];
	for (int j = 0; j < VB; j++) {
		h8[j] = -INFINITY;
		l8[j] = INFINITY;
	}
	int64_t i = 0;
	for (; i + VB <= n; i += VB) {
		for (int j = 0; j < VB; j++) {
			float v = f[i + j] * w[i + j];
			v = sym ? fabsf(v) : v;
			h8[j] = v > h8[j] ? v : h8[j];
			l8[j] = v < l8[j] ? v : l8[j];
		}
	}
	float h = -INFINITY, l = INFINITY;
	for (int j = 0; j < VB; j++) {
		h = h8[j] > h ? h8[j] : h;
		l = l8[j] < l ? l8[j] : l;
	}
	for (; i < n; i++) {
		float v = f[i] * w[i];
		v = sym ? fabsf(v) : v;
		h = v > h ? v : h;
		l = v < l ? v : l;
	}
	*hi = h;
	*lo = sym ? -h : l;
}

/* hi[i] = max(hi[i], a w[i]), lo[i] likewise (sym: |a w[i]|, lo unused). */
static void col_hilo(const float *w, float a, int64_t n, bool sym, float *hi, float *lo)
{
	int64_t i = 0;
	for (; i + VB <= n; i += VB) {
		for (int j = 0; j < VB; j++) {
			float v = a * w[i + j];
			v = sym ? fabsf(v) : v;
			hi[i + j] = v > hi[i + j] ? v : hi[i + j];
			lo[i + j] = v < lo[i + j] ? v : lo[i + j];
		}
	}
	for (; i < n; i++) {
		float v = a * w[i];
		v = sym ? fabsf(v) : v;
		hi[i] = v > hi[i] ? v : hi[i];
		lo[i] = v < lo[i] ? v : lo[i];
	}
}

/* sum |w[i]| |f[i] - g[i]| */
static double abs_dot(const float *w, const float *f, const float *g, int64_t n)
{
	float s8[VB] = {0};
	int64_t i = 0;
	for (; i + VB <= n; i += VB)
		for (int j = 0; j < VB; j++)
			s8[j] += fabsf(w[i + j]) * fabsf(f[i + j] - g[i + j]);
	double s = 0.0;
	for (int j = 0; j < VB; j++)
		s += s8[j];
	for (; i < n; i++)
		s += fabsf(w[i]) * fabsf(f[i] - g[i]);
	return s;
}

/* sum |w[i]| */
static double abs_sum(const float *w, int64_t n)
{
	float s8[VB] = {0};
	int64_t i = 0;
	for (; i + VB <= n; i += VB)
		for (int j = 0; j < VB; j++)
			s8[j] += fabsf(w[i + j]);
	double s = 0.0;
	for (int j = 0; j < VB; j++)
		s += s8[j];
	for (; i < n; i++)
		s += fabsf(w[i]);
	return s;
}

/* Cells of a layer in both roles. */
static dfq_status eq_cells(struct eqlayer *e, const struct dfq_layer *L, const float *w,
                           struct dfq_error *err)
{
	if (L->ksize == 1) {
		e->mx = e->mn = e->asum = w;
		e->abs_is_w = true;
		e->os = L->w_ostride;
		e->is = L->w_istride;
		e->contig = e->is == 1;
		if (e->contig) {
			e->fb = malloc((size_t)e->cin * sizeof *e->fb);
			e->fb0 = malloc((size_t)e->cin * sizeof *e->fb0);
			e->fhi = malloc((size_t)e->cin * sizeof *e->fhi);
			e->flo = malloc((size_t)e->cin * sizeof *e->flo);
			if (!e->fb || !e->fb0 || !e->fhi || !e->flo)
				return dfq_error_set(err, DFQ_ERR_NOMEM,
				                     "out of memory equalizing");
		}
		return DFQ_OK;
	}
	int64_t nc = e->cout * e->cin_g;
	e->own = malloc((size_t)(3 * nc) * sizeof *e->own);
	if (!e->own)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory equalizing");
	float *mx = e->own, *mn = e->own + nc, *as = e->own + 2 * nc;
	for (int64_t o = 0; o < e->cout; o++) {
		for (int64_t i = 0; i < e->cin_g; i++) {
			const float *p = w + o * L->w_ostride + i * L->w_istride;
			float hi = p[0], lo = p[0];
			double s = 0.0;
			for (int64_t k = 0; k < L->ksize; k++) {
				hi = p[k] > hi ? p[k] : hi;
				lo = p[k] < lo ? p[k] : lo;
				s += fabsf(p[k]);
			}
			mx[o * e->cin_g + i] = hi;
			mn[o * e->cin_g + i] = lo;
			as[o * e->cin_g + i] = (float)s;
		}
	}
	e->mx = mx;
	e->mn = mn;
	e->asum = as;
	e->os = e->cin_g;
	e->is = 1;
	return DFQ_OK;
}

/* One role: R[o] and sum |W[o]| (rows) or C[c] and sum |W[:, c]| (columns),
 * in a single pass over W. */
static void eq_bases_contig(struct eqlayer *e, const float *w, int64_t os, float *fhi, float *flo)
{
	int64_t n = e->cin_g;
	if (e->row_dyn) {
		float *ones = fhi;
		for (int64_t i = 0; i < n; i++)
			ones[i] = 1.0f;
		for (int64_t o = 0; o < e->cout; o++) {
			float h, l;
			row_hilo(w + o * os, ones, n, e->sym, &h, &l);
			e->base[o] = (double)h - l;
			e->absum[o] = abs_sum(w + o * os, n);
		}
		return;
	}
	for (int64_t i = 0; i < e->cin; i++) {
		fhi[i] = -INFINITY;
		flo[i] = INFINITY;
		e->absum[i] = 0.0;
	}
	for (int64_t o = 0; o < e->cout; o++) {
		int64_t base = (o / e->cout_g) * e->cin_g;
		col_hilo(w + o * os, 1.0f, n, e->sym, fhi + base, flo + base);
		for (int64_t i = 0; i < n; i++)
			e->absum[base + i] += fabsf(w[o * os + i]);
	}
	for (int64_t i = 0; i < e->cin; i++)
		e->base[i] = e->sym ? 2.0 * fhi[i] : (double)fhi[i] - flo[i];
}

static void eq_bases(struct eqlayer *e, const struct dfq_layer *L, const float *w)
{
	bool rows = e->row_dyn;
	int64_t n = rows ? e->cout : e->cin;
	double *hi = e->tmp_hi, *lo = e->tmp_lo;
	for (int64_t c = 0; c < e->cin; c++) {
		hi[c] = -INFINITY;
		lo[c] = INFINITY;
	}
	for (int64_t c = 0; c < n; c++)
		e->absum[c] = 0.0;
	for (int64_t o = 0; o < e->cout; o++) {
		int64_t base = (o / e->cout_g) * e->cin_g;
		double rhi = -INFINITY, rlo = INFINITY, rabs = 0.0;
		for (int64_t i = 0; i < e->cin_g; i++) {
			const float *p = w + o * L->w_ostride + i * L->w_istride;
			float mx = p[0], mn = p[0], s = 0.0f;
			for (int64_t k = 0; k < L->ksize; k++) {
				mx = p[k] > mx ? p[k] : mx;
				mn = p[k] < mn ? p[k] : mn;
				s += fabsf(p[k]);
			}
			double h, l;
			cell_hilo(e->sym, mx, mn, &h, &l);
			if (rows) {
				rhi = h > rhi ? h : rhi;
				rlo = l < rlo ? l : rlo;
				rabs += s;
			} else {
				hi[base + i] = h > hi[base + i] ? h : hi[base + i];
				lo[base + i] = l < lo[base + i] ? l : lo[base + i];
				e->absum[base + i] += s;
			}
		}
		if (rows) {
			e->base[o] = rhi - rlo;
			e->absum[o] = rabs;
		}
	}
	if (!rows)
		for (int64_t c = 0; c < e->cin; c++)
			e->base[c] = hi[c] - lo[c];
}

static dfq_status eq_init(struct eqlayer *e, const struct dfq_model *m, const struct dfq_layer *L,
                          bool sym, struct dfq_error *err)
{
	e->sym = sym;
	e->cout = L->cout;
	e->cin = L->cin;
	e->cin_g = L->cin / L->group;
	e->cout_g = L->cout / L->group;
	e->a = malloc((size_t)e->cout * sizeof *e->a);
	e->a0 = malloc((size_t)e->cout * sizeof *e->a0);
	e->b = malloc((size_t)e->cin * sizeof *e->b);
	e->b0 = malloc((size_t)e->cin * sizeof *e->b0);
	e->tmp_hi = malloc((size_t)e->cin * sizeof *e->tmp_hi);
	e->tmp_lo = malloc((size_t)e->cin * sizeof *e->tmp_lo);
	if (!e->a || !e->a0 || !e->b || !e->b0 || !e->tmp_hi || !e->tmp_lo)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory equalizing");
	for (int64_t o = 0; o < e->cout; o++)
		e->a[o] = 1.0;
	for (int64_t i = 0; i < e->cin; i++)
		e->b[i] = 1.0;
	const float *w = model_w(m, L);
	if (e->row_dyn && e->col_dyn)
		return eq_cells(e, L, w, err);
	int64_t n = e->row_dyn ? e->cout : e->cin;
	e->base = malloc((size_t)n * sizeof *e->base);
	e->absum = malloc((size_t)n * sizeof *e->absum);
	if (!e->base || !e->absum)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory equalizing");
	if (L->ksize == 1 && L->w_istride == 1) {
		float *fh = malloc((size_t)e->cin * sizeof *fh),
		      *fl = malloc((size_t)e->cin * sizeof *fl);
		if (!fh || !fl) {
			free(fh);
			free(fl);
			return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory equalizing");
		}
		eq_bases_contig(e, w, L->w_ostride, fh, fl);
		free(fh);
		free(fl);
	} else {
		eq_bases(e, L, w);
	}
	return DFQ_OK;
}

/* Range of every output channel (rows) under the current factors. */
static void eq_row_ranges(const struct eqlayer *e, double *r)
{
	if (!e->col_dyn) {
		for (int64_t o = 0; o < e->cout; o++)
			r[o] = e->a[o] * e->base[o];
		return;
	}
	if (e->contig) {
		for (int64_t c = 0; c < e->cin; c++)
			e->fb[c] = (float)e->b[c];
		for (int64_t o = 0; o < e->cout; o++) {
			float h, l;
			row_hilo(e->mx + o * e->os, e->fb + (o / e->cout_g) * e->cin_g, e->cin_g,
			         e->sym, &h, &l);
			r[o] = e->a[o] * ((double)h - l);
		}
		return;
	}
	for (int64_t o = 0; o < e->cout; o++) {
		const double *b = e->b + (o / e->cout_g) * e->cin_g;
		const float *mx = e->mx + o * e->os, *mn = e->mn + o * e->os;
		double hi = -INFINITY, lo = INFINITY;
		for (int64_t i = 0; i < e->cin_g; i++) {
			double h, l;
			cell_hilo(e->sym, b[i] * mx[i * e->is], b[i] * mn[i * e->is], &h, &l);
			hi = h > hi ? h : hi;
			lo = l < lo ? l : lo;
		}
		r[o] = e->a[o] * (hi - lo);
	}
}

/* Range of every input channel (columns) under the current factors. */
static void eq_col_ranges(struct eqlayer *e, double *r)
{
	if (!e->row_dyn) {
		for (int64_t c = 0; c < e->cin; c++)
			r[c] = e->b[c] * e->base[c];
		return;
	}
	if (e->contig) {
		for (int64_t c = 0; c < e->cin; c++) {
			e->fhi[c] = -INFINITY;
			e->flo[c] = INFINITY;
		}
		for (int64_t o = 0; o < e->cout; o++) {
			int64_t base = (o / e->cout_g) * e->cin_g;
			col_hilo(e->mx + o * e->os, (float)e->a[o], e->cin_g, e->sym, e->fhi + base,
			         e->flo + base);
		}
		for (int64_t c = 0; c < e->cin; c++)
			r[c] = e->b[c] * (e->sym ? 2.0 * e->fhi[c] : (double)e->fhi[c] - e->flo[c]);
		return;
	}
	double *hi = e->tmp_hi, *lo = e->tmp_lo;
	for (int64_t c = 0; c < e->cin; c++) {
		hi[c] = -INFINITY;
		lo[c] = INFINITY;
	}
	for (int64_t o = 0; o < e->cout; o++) {
		int64_t base = (o / e->cout_g) * e->cin_g;
		const float *mx = e->mx + o * e->os, *mn = e->mn + o * e->os;
		double a = e->a[o];
		for (int64_t i = 0; i < e->cin_g; i++) {
			double h, l;
			cell_hilo(e->sym, a * mx[i * e->is], a * mn[i * e->is], &h, &l);
			hi[base + i] = h > hi[base + i] ? h : hi[base + i];
			lo[base + i] = l < lo[base + i] ? l : lo[base + i];
		}
	}
	for (int64_t c = 0; c < e->cin; c++)
		r[c] = e->b[c] * (hi[c] - lo[c]);
}

/* sum |dW| of this round: sum over weights of |W0| * |a b - a0 b0|. */
static double eq_round_change(const struct eqlayer *e)
{
	double s = 0.0;
	if (!e->col_dyn) {
		for (int64_t o = 0; o < e->cout; o++)
			s += e->absum[o] * fabs(e->a[o] - e->a0[o]);
		return s;
	}
	if (!e->row_dyn) {
		for (int64_t c = 0; c < e->cin; c++)
			s += e->absum[c] * fabs(e->b[c] - e->b0[c]);
		return s;
	}
	if (e->contig) {
		for (int64_t o = 0; o < e->cout; o++) {
			int64_t base = (o / e->cout_g) * e->cin_g;
			for (int64_t i = 0; i < e->cin_g; i++) {
				e->fb[i] = (float)(e->a[o] * e->b[base + i]);
				e->fb0[i] = (float)(e->a0[o] * e->b0[base + i]);
			}
			s += abs_dot(e->asum + o * e->os, e->fb, e->fb0, e->cin_g);
		}
		return s;
	}
	for (int64_t o = 0; o < e->cout; o++) {
		int64_t base = (o / e->cout_g) * e->cin_g;
		const float *as = e->asum + o * e->os;
		double a = e->a[o], a0 = e->a0[o];
		for (int64_t i = 0; i < e->cin_g; i++) {
			double w = e->abs_is_w ? fabs(as[i * e->is]) : as[i * e->is];
			s += w * fabs(a * e->b[base + i] - a0 * e->b0[base + i]);
		}
	}
	return s;
}

/* One pair: s_i = sqrt(r1_i r2_i) / r2_i; layer 1 rows /= s, layer 2 columns *= s. */
static void eq_pair(struct eqlayer *e1, struct eqlayer *e2, double *r1, double *r2)
{
	eq_row_ranges(e1, r1);
	eq_col_ranges(e2, r2);
	for (int64_t i = 0; i < e1->cout; i++) {
		if (!(r1[i] > 0.0) || !(r2[i] > 0.0))
			continue;
		double s = sqrt(r1[i] * r2[i]) / r2[i];
		s = s < S_MIN ? S_MIN : s > S_MAX ? S_MAX : s;
		e1->a[i] /= s;
		e2->b[i] *= s;
	}
}

/* Rescale W (and w_ref), bias and statistics of layer li by the factors. */
static dfq_status eq_apply(struct dfq_model *m, int li, const struct eqlayer *e,
                           struct dfq_error *err)
{
	struct dfq_layer *L;
	float *ws[2] = {NULL, NULL}, *bias = NULL;
	dfq_status st = model_writable_layer(m, li, &L, err);
	if (st == DFQ_OK)
		st = model_writable_init(m, L->w_vi, &ws[0], err);
	if (st == DFQ_OK && L->w_ref)
		st = model_writable_tensor(&L->w_ref, err);
	if (st == DFQ_OK && L->b_vi >= 0)
		st = model_writable_init(m, L->b_vi, &bias, err);
	if (st == DFQ_OK && L->has_stats)
		st = model_writable_floats(&L->gamma, L->cout, err);
	if (st == DFQ_OK && L->has_stats)
		st = model_writable_floats(&L->beta, L->cout, err);
	if (st != DFQ_OK)
		return st;
	if (L->w_ref)
		ws[1] = dfq_tensor_f32(L->w_ref);
	int64_t cin_g = e->cin_g;
	for (int t = 0; t < 2; t++) {
		float *w = ws[t];
		if (!w)
			continue;
		if (L->ksize == 1 && L->w_istride == 1) {
			for (int64_t o = 0; o < e->cout; o++) {
				const double *b = e->b + (o / e->cout_g) * cin_g;
				float *p = w + o * L->w_ostride;
				for (int64_t i = 0; i < cin_g; i++)
					p[i] = (float)(p[i] * (e->a[o] * b[i]));
			}
			continue;
		}
		for (int64_t o = 0; o < e->cout; o++) {
			const double *b = e->b + (o / e->cout_g) * cin_g;
			for (int64_t i = 0; i < cin_g; i++) {
				float f = (float)(e->a[o] * b[i]);
				float *p = w + o * L->w_ostride + i * L->w_istride;
				for (int64_t k = 0; k < L->ksize; k++)
					p[k] *= f;
			}
		}
	}
	for (int64_t o = 0; o < e->cout; o++) {
		if (bias)
			bias[o] = (float)(bias[o] * e->a[o]);
		if (L->has_stats) {
			L->gamma[o] = (float)(L->gamma[o] * e->a[o]);
			L->beta[o] = (float)(L->beta[o] * e->a[o]);
		}
	}
	L->steps |= DFQ_STEP_EQUALIZE;
	return DFQ_OK;
}

/* Why pair p cannot be equalized (skipped, not an error), or NULL. */
static const char *pair_blocker(const struct dfq_model *m, const struct pair *p)
{
	const struct dfq_layer *A = &m->layers[p->l1], *B = &m->layers[p->l2];
	if (!A->editable || !B->editable)
		return !A->editable ? A->why_fixed : B->why_fixed;
	return NULL;
}

/* Hard errors for a selected pair: ReLU6 between, BN not folded. */
static dfq_status pair_check(const struct dfq_model *m, const struct pair *p, struct dfq_error *err)
{
	const struct dfq_layer *A = &m->layers[p->l1], *B = &m->layers[p->l2];
	if (A->act == DFQ_ACT_RELU6) {
		dfq_error_set(
		    err, DFQ_ERR_ARG,
		    "layer '%s' is followed by ReLU6, which does not commute with rescaling",
		    A->name);
		return dfq_error_remedy(err, DFQ_REMEDY_RELU6);
	}
	const struct dfq_layer *bn = A->bn_node >= 0 ? A : B->bn_node >= 0 ? B : NULL;
	if (bn) {
		dfq_error_set(err, DFQ_ERR_ARG, "layer '%s' still has its BatchNormalization",
		              bn->name);
		return dfq_error_remedy(err, DFQ_REMEDY_FOLD);
	}
	return DFQ_OK;
}

struct eqrun {
	struct pair *pairs;
	int npairs;
	bool *on;           /* pair selected and not blocked */
	struct eqlayer *eq; /* per layer, used ones initialised */
	double *r1, *r2;    /* scratch, max channels */
	double *spread0;    /* per layer: spread before (NAN when not computed) */
	int64_t nweights;
};

static void eqrun_free(struct eqrun *q, int nlayers)
{
	free(q->pairs);
	free(q->on);
	for (int i = 0; q->eq && i < nlayers; i++)
		if (q->eq[i].used)
			eq_free(&q->eq[i]);
	free(q->eq);
	free(q->r1);
	free(q->r2);
	free(q->spread0);
}

static bool pair_selected(const bool *sel, const struct pair *p)
{
	return model_selected(sel, p->l1) || model_selected(sel, p->l2);
}

static dfq_status eqrun_init(struct eqrun *q, const struct dfq_model *m, const bool *sel,
                             const struct dfq_equalize_opts *o, struct dfq_step_report *r,
                             struct dfq_error *err)
{
	bool sym = o->range == DFQ_QSCHEME_SYM;
	dfq_status st = model_find_pairs(m, &q->pairs, &q->npairs, err);
	if (st != DFQ_OK)
		return st;
	q->on = calloc((size_t)(q->npairs ? q->npairs : 1), sizeof *q->on);
	q->eq = calloc((size_t)(m->nlayers ? m->nlayers : 1), sizeof *q->eq);
	if (!q->on || !q->eq)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory equalizing");
	/* roles first: they decide what each layer precomputes */
	for (int k = 0; k < q->npairs; k++) {
		const struct pair *p = &q->pairs[k];
		if (!pair_selected(sel, p))
			continue;
		if ((st = pair_check(m, p, err)) != DFQ_OK)
			return st;
		struct dfq_step_row *row = model_report_row(r, p->l1, err);
		if (!row)
			return err ? err->status : DFQ_ERR_NOMEM;
		row->layer2 = p->l2;
		const char *why = pair_blocker(m, p);
		/* stop-linear: a layer with no activation ends its chain */
		if (!why && o->chains == DFQ_EQ_CHAINS_STOP_LINEAR &&
		    m->layers[p->l1].act == DFQ_ACT_NONE)
			why = "no activation between (a linear layer ends the chain: chains "
			      "stop-linear)";
		if (why) {
			snprintf(row->note, sizeof row->note, "skipped: %s", why);
			continue;
		}
		q->on[k] = true;
		q->eq[p->l1].used = q->eq[p->l1].row_dyn = true;
		q->eq[p->l2].used = q->eq[p->l2].col_dyn = true;
	}
	int64_t maxc = 1;
	for (int li = 0; li < m->nlayers; li++) {
		if (!q->eq[li].used)
			continue;
		const struct dfq_layer *L = &m->layers[li];
		maxc = L->cout > maxc ? L->cout : maxc;
		maxc = L->cin > maxc ? L->cin : maxc;
		if ((st = eq_init(&q->eq[li], m, L, sym, err)) != DFQ_OK)
			return st;
		q->nweights += m->g->values[L->w_vi].init->numel;
	}
	q->r1 = malloc((size_t)maxc * sizeof *q->r1);
	q->r2 = malloc((size_t)maxc * sizeof *q->r2);
	q->spread0 = malloc((size_t)(m->nlayers ? m->nlayers : 1) * sizeof *q->spread0);
	if (!q->r1 || !q->r2 || !q->spread0)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory equalizing");
	return DFQ_OK;
}

/* Iterate all pairs until the mean |dW| of a round drops below tol. */
static void eq_iterate(struct eqrun *q, int nlayers, const struct dfq_equalize_opts *o,
                       struct dfq_step_report *r)
{
	for (r->rounds = 0; r->rounds < o->max_rounds;) {
		for (int li = 0; li < nlayers; li++) {
			struct eqlayer *e = &q->eq[li];
			if (!e->used)
				continue;
			memcpy(e->a0, e->a, (size_t)e->cout * sizeof *e->a);
			memcpy(e->b0, e->b, (size_t)e->cin * sizeof *e->b);
		}
		for (int k = 0; k < q->npairs; k++)
			if (q->on[k])
				eq_pair(&q->eq[q->pairs[k].l1], &q->eq[q->pairs[k].l2], q->r1,
				        q->r2);
		double change = 0.0;
		for (int li = 0; li < nlayers; li++)
			if (q->eq[li].used)
				change += eq_round_change(&q->eq[li]);
		r->rounds++;
		r->last_delta = q->nweights ? change / (double)q->nweights : 0.0;
		if (r->last_delta < o->tol)
			break;
	}
}

/* Range spread of every used layer into out (NAN for the others). */
static void used_spreads(const struct dfq_model *m, const struct eqrun *q, dfq_qscheme range,
                         double *out)
{
	for (int li = 0; li < m->nlayers; li++) {
		double lo, hi;
		out[li] = NAN;
		if (q->eq[li].used)
			model_layer_spread(m, &m->layers[li], range, &lo, &hi, &out[li]);
	}
}

dfq_status dfq_model_equalize(struct dfq_model *m, const bool *sel,
                              const struct dfq_equalize_opts *opts, struct dfq_step_report *rep,
                              struct dfq_error *err)
{
	struct dfq_equalize_opts o;
	if (opts)
		o = *opts;
	else
		dfq_equalize_opts_default(&o);
	if (o.max_rounds < 1 || !(o.tol >= 0.0) ||
	    (o.range != DFQ_QSCHEME_ASYM && o.range != DFQ_QSCHEME_SYM) ||
	    (o.chains != DFQ_EQ_CHAINS_THROUGH && o.chains != DFQ_EQ_CHAINS_STOP_LINEAR))
		return dfq_error_set(
		    err, DFQ_ERR_ARG,
		    "equalization needs at least one round, a tolerance >= 0 and a "
		    "known range and chain scope");
	struct dfq_step_report r;
	dfq_step_report_init(&r);
	r.step = DFQ_STEP_EQUALIZE;
	struct eqrun q = {0};
	dfq_status st = eqrun_init(&q, m, sel, &o, &r, err);
	if (st != DFQ_OK) {
		eqrun_free(&q, m->nlayers);
		dfq_step_report_free(&r);
		return st;
	}
	used_spreads(m, &q, o.range, q.spread0);
	eq_iterate(&q, m->nlayers, &o, &r);
	/* rescale weights, biases, statistics: nothing above changed the model */
	struct model_step s;
	st = model_step_open(m, &s, NULL, 0, err);
	if (st != DFQ_OK) {
		eqrun_free(&q, m->nlayers);
		dfq_step_report_free(&r);
		return st;
	}
	for (int li = 0; li < m->nlayers && st == DFQ_OK; li++) {
		if (!q.eq[li].used)
			continue;
		st = eq_apply(m, li, &q.eq[li], err);
		if (st == DFQ_OK)
			st = model_layer_changed(m, li, CHANGED_WEIGHTS, &r, err);
		if (st == DFQ_OK)
			st = model_layer_update(m, li, err);
	}
	double *spread1 = malloc((size_t)(m->nlayers ? m->nlayers : 1) * sizeof *spread1);
	if (!spread1 && st == DFQ_OK)
		st = dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory equalizing");
	if (spread1)
		used_spreads(m, &q, o.range, spread1);
	for (int k = 0, ri = 0; k < q.npairs && spread1; k++) {
		const struct pair *p = &q.pairs[k];
		if (!pair_selected(sel, p))
			continue;
		struct dfq_step_row *row = &r.rows[ri++];
		if (!q.on[k])
			continue;
		row->before = q.spread0[p->l1];
		row->before2 = q.spread0[p->l2];
		row->after = spread1[p->l1];
		row->after2 = spread1[p->l2];
		double ls = 0.0;
		const struct eqlayer *e2 = &q.eq[p->l2];
		for (int64_t i = 0; i < e2->cin; i++)
			ls = fmax(ls, fabs(log2(e2->b[i])));
		row->extra = ls;
		row->changed = true;
		snprintf(row->note, sizeof row->note, "%s -> %s (%s)", m->layers[p->l1].name,
		         m->layers[p->l2].name, dfq_act_name(m->layers[p->l1].act));
	}
	free(spread1);
	eqrun_free(&q, m->nlayers);
	st = model_step_finish(m, &s, st, "equalize", &r, err);
	if (st != DFQ_OK)
		return st;
	snprintf(r.summary, sizeof r.summary,
	         "equalized %d layer pair%s in %d round%s (mean |dW| of the last round %.3g)%s",
	         r.nchanged, r.nchanged == 1 ? "" : "s", r.rounds, r.rounds == 1 ? "" : "s",
	         r.last_delta, r.nrows == 0 ? "; no eligible pairs among the targets" : "");
	model_report_hand(&r, rep);
	return DFQ_OK;
}
