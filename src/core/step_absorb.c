/* step_absorb.c - high-bias absorption (paper sec. 4.1.3; docs/algorithms.md sec. 7): c =
 * max(0, beta - n |gamma|) moves from layer 1's bias into layer 2's, through the ReLU between. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "model_internal.h"

/* Top of the data-free range of layer L's linear output. */
static double stats_top(const struct dfq_layer *L, double n)
{
	double t = -INFINITY;
	for (int64_t c = 0; c < L->cout; c++)
		t = fmax(t, (double)L->beta[c] + n * fabs((double)L->gamma[c]));
	return t;
}

static double bias_max_abs(const struct dfq_model *m, const struct dfq_layer *L)
{
	const float *b = model_b(m, L);
	double t = 0.0;
	for (int64_t o = 0; b && o < L->cout; o++)
		t = fmax(t, fabs((double)b[o]));
	return t;
}

static const char *absorb_blocker(const struct dfq_model *m, const struct dfq_layer *A,
                                  const struct dfq_layer *B)
{
	if (A->act == DFQ_ACT_RELU6)
		return "ReLU6 between (absorption needs ReLU)";
	if (A->bn_node >= 0 || B->bn_node >= 0)
		return "BatchNorm not folded yet";
	if (!A->editable || !B->editable)
		return !A->editable ? A->why_fixed : B->why_fixed;
	if (!A->has_stats)
		return "no BN statistics for the first layer (the model came folded)";
	if (A->b_vi < 0 || B->b_vi < 0)
		return "a MatMul without a bias Add has no bias to absorb into";
	return NULL;
}

/* b1 -= c, beta -= c, b2[o] += sum_i sum_k W2[o, i, k] c[gi] for pair (a, b);
 * *n gets the channels absorbed. */
static dfq_status absorb_pair(struct dfq_model *m, int a, int b, const double *c, int *n,
                              struct dfq_error *err)
{
	struct dfq_layer *A, *B = &m->layers[b];
	float *b1, *b2;
	dfq_status st = model_writable_layer(m, a, &A, err);
	if (st == DFQ_OK)
		st = model_writable_floats(&A->beta, A->cout, err);
	if (st == DFQ_OK)
		st = model_writable_init(m, A->b_vi, &b1, err);
	if (st == DFQ_OK)
		st = model_writable_init(m, B->b_vi, &b2, err);
	if (st != DFQ_OK)
		return st;
	const float *w2 = model_w(m, B);
	*n = 0;
	for (int64_t i = 0; i < A->cout; i++) {
		if (c[i] <= 0.0)
			continue;
		b1[i] = (float)(b1[i] - c[i]);
		A->beta[i] = (float)(A->beta[i] - c[i]);
		(*n)++;
	}
	int64_t cin_g = B->cin / B->group, cout_g = B->cout / B->group;
	for (int64_t o = 0; o < B->cout; o++) {
		const double *cg = c + (o / cout_g) * cin_g;
		double add = 0.0;
		for (int64_t i = 0; i < cin_g; i++) {
			if (cg[i] <= 0.0)
				continue;
			const float *p = w2 + o * B->w_ostride + i * B->w_istride;
			double s = 0.0;
			for (int64_t k = 0; k < B->ksize; k++)
				s += p[k];
			add += s * cg[i];
		}
		b2[o] = (float)(b2[o] + add);
	}
	A->steps |= DFQ_STEP_ABSORB;
	B->steps |= DFQ_STEP_ABSORB;
	return DFQ_OK;
}

dfq_status dfq_model_absorb(struct dfq_model *m, const bool *sel, double n_std,
                            struct dfq_step_report *rep, struct dfq_error *err)
{
	if (!(n_std > 0.0))
		n_std = 3.0;
	struct pair *pairs;
	int npairs;
	struct model_step s;
	struct dfq_step_report r;
	dfq_status st = model_step_open(m, &s, &r, DFQ_STEP_ABSORB, err);
	if (st != DFQ_OK)
		return st;
	st = model_find_pairs(m, &pairs, &npairs, err);
	if (st != DFQ_OK)
		return model_step_close(m, &s, st, "absorb", err);
	int64_t maxc = 1;
	for (int li = 0; li < m->nlayers; li++)
		maxc = m->layers[li].cout > maxc ? m->layers[li].cout : maxc;
	double *c = malloc((size_t)maxc * sizeof *c);
	bool *go = calloc((size_t)(npairs ? npairs : 1), sizeof *go);
	if (!c || !go)
		st = dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory absorbing biases");
	/* pass 1: rows (allocations only) */
	for (int k = 0; k < npairs && st == DFQ_OK; k++) {
		const struct dfq_layer *A = &m->layers[pairs[k].l1], *B = &m->layers[pairs[k].l2];
		if (!model_selected(sel, pairs[k].l1) || A->act == DFQ_ACT_NONE)
			continue;
		struct dfq_step_row *row = model_report_row(&r, pairs[k].l1, err);
		if (!row) {
			st = err ? err->status : DFQ_ERR_NOMEM;
			break;
		}
		row->layer2 = pairs[k].l2;
		const char *why = absorb_blocker(m, A, B);
		if (why)
			snprintf(row->note, sizeof row->note, "skipped: %s", why);
		go[k] = why == NULL;
	}
	/* pass 2: absorb */
	for (int k = 0, ri = 0; k < npairs && st == DFQ_OK; k++) {
		struct dfq_layer *A = &m->layers[pairs[k].l1], *B = &m->layers[pairs[k].l2];
		if (!model_selected(sel, pairs[k].l1) || A->act == DFQ_ACT_NONE)
			continue;
		struct dfq_step_row *row = &r.rows[ri++];
		if (!go[k])
			continue;
		row->before = stats_top(A, m->n_sigma);
		row->before2 = bias_max_abs(m, B);
		for (int64_t i = 0; i < A->cout; i++)
			c[i] = fmax(0.0, (double)A->beta[i] - n_std * fabs((double)A->gamma[i]));
		int n = 0;
		for (int64_t i = 0; i < A->cout; i++)
			n += c[i] > 0.0;
		if (n > 0)
			st = absorb_pair(m, pairs[k].l1, pairs[k].l2, c, &n, err);
		if (st != DFQ_OK)
			break;
		A = &m->layers[pairs[k].l1];
		B = &m->layers[pairs[k].l2];
		row->after = stats_top(A, m->n_sigma);
		row->after2 = bias_max_abs(m, B);
		row->extra = n;
		row->changed = n > 0;
		snprintf(row->note, sizeof row->note, "%d of %lld channels absorbed into '%s'", n,
		         (long long)A->cout, B->name);
		if (n == 0)
			continue;
		/* layer 2's input moved: what was made for its old expected value goes */
		st = model_layer_changed(m, pairs[k].l2, CHANGED_INPUT, &r, err);
		if (st == DFQ_OK)
			st = model_layer_update(m, pairs[k].l1, err);
		if (st == DFQ_OK)
			st = model_layer_update(m, pairs[k].l2, err);
	}
	free(c);
	free(go);
	free(pairs);
	st = model_step_finish(m, &s, st, "absorb", &r, err);
	if (st != DFQ_OK)
		return st;
	snprintf(r.summary, sizeof r.summary,
	         "absorbed high biases in %d of %d layer pair%s with ReLU (c = max(0, beta - %g "
	         "|gamma|))%s",
	         r.nchanged, r.nrows, r.nrows == 1 ? "" : "s", n_std,
	         m->has_stats ? "" : "; the model has no BN statistics");
	model_report_hand(&r, rep);
	return DFQ_OK;
}
