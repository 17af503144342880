/* model_base.c - a layer's buffers (shared, reference-counted) and the model's accessors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

float *model_w(const struct dfq_model *m, const struct dfq_layer *L)
{
	return dfq_tensor_f32(m->g->values[L->w_vi].init);
}

float *model_b(const struct dfq_model *m, const struct dfq_layer *L)
{
	return L->b_vi >= 0 ? dfq_tensor_f32(m->g->values[L->b_vi].init) : NULL;
}

bool model_selected(const bool *sel, int li)
{
	return !sel || sel[li];
}

int model_point_of(const struct dfq_model *m, int vi)
{
	return vi >= 0 && vi < m->priv->npov ? m->priv->point_of_value[vi] : -1;
}

void model_layer_release(struct dfq_layer *L)
{
	rc_unref(L->name);
	rc_unref(L->alias);
	rc_unref(L->gamma);
	rc_unref(L->beta);
	rc_unref(L->wqp);
	rc_unref(L->bcorr_q);
	rc_unref(L->bcorr_fp);
	dfq_tensor_free(L->wq);
	dfq_tensor_free(L->w_ref);
	dfq_tensor_free(L->b_run_q);
	dfq_tensor_free(L->b_run_fp);
	memset(L, 0, sizeof *L);
}

void model_layer_share(struct dfq_layer *dst, const struct dfq_layer *src)
{
	*dst = *src;
	rc_ref(dst->name);
	rc_ref(dst->alias);
	rc_ref(dst->gamma);
	rc_ref(dst->beta);
	rc_ref(dst->wqp);
	rc_ref(dst->bcorr_q);
	rc_ref(dst->bcorr_fp);
	dfq_tensor_ref(dst->wq);
	dfq_tensor_ref(dst->w_ref);
	dfq_tensor_ref(dst->b_run_q);
	dfq_tensor_ref(dst->b_run_fp);
}

void model_layers_free(struct dfq_layer *layers, int n)
{
	for (int i = 0; layers && i < n; i++)
		model_layer_release(&layers[i]);
	free(layers);
}

void model_layer_spread(const struct dfq_model *m, const struct dfq_layer *L, dfq_qscheme range,
                        double *rmin, double *rmax, double *spread)
{
	const float *w = model_w(m, L);
	int64_t cin_g = L->cin / L->group;
	double lo_r = INFINITY, hi_r = 0.0;
	/* [out, ...] layouts: each output channel is one contiguous run */
	bool rows = L->w_istride == L->ksize && L->w_ostride == cin_g * L->ksize;
	for (int64_t o = 0; o < L->cout; o++) {
		float mn = INFINITY, mx = -INFINITY;
		if (rows) {
			const float *p = w + o * L->w_ostride;
			for (int64_t k = 0; k < L->w_ostride; k++) {
				mn = p[k] < mn ? p[k] : mn;
				mx = p[k] > mx ? p[k] : mx;
			}
		}
		for (int64_t i = 0; i < cin_g && !rows; i++) {
			const float *p = w + o * L->w_ostride + i * L->w_istride;
			for (int64_t k = 0; k < L->ksize; k++) {
				mn = p[k] < mn ? p[k] : mn;
				mx = p[k] > mx ? p[k] : mx;
			}
		}
		double r = range == DFQ_QSCHEME_SYM ? 2.0 * fmax(fabs(mn), fabs(mx))
		                                    : (double)mx - (double)mn;
		lo_r = r < lo_r ? r : lo_r;
		hi_r = r > hi_r ? r : hi_r;
	}
	if (L->cout == 0)
		lo_r = 0.0;
	*rmin = lo_r;
	*rmax = hi_r;
	*spread = lo_r > 0.0 ? hi_r / lo_r : (hi_r > 0.0 ? INFINITY : 1.0);
}
