/* figs.c - the figures the panes show of each layer (weight ranges, spread, SQNR of the
 * quantized weights, per-channel ranges now and before the step that last changed them),
 * recomputed only when the layer's tensors were replaced: a redraw costs formatting only. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dfq/dfq_quant.h"
#include "tui_internal.h"

static void figs_release(struct layer_figs *f)
{
	free(f->lo);
	free(f->hi);
	free(f->blo);
	free(f->bhi);
	memset(f, 0, sizeof *f);
}

void figs_free(struct tui *t)
{
	for (int i = 0; i < t->nfigs; i++)
		figs_release(&t->figs[i]);
	free(t->figs);
	t->figs = NULL;
	t->nfigs = 0;
	t->figs_model = NULL;
}

void figs_steps_marks(unsigned steps, char *buf, size_t len)
{
	static const struct {
		unsigned bit;
		char c;
	} marks[] = {
	    {DFQ_STEP_FOLD, 'F'},     {DFQ_STEP_RELU6, 'R'},  {DFQ_STEP_CLIP, 'C'},
	    {DFQ_STEP_EQUALIZE, 'E'}, {DFQ_STEP_ABSORB, 'A'}, {DFQ_STEP_QUANTIZE, 'Q'},
	    {DFQ_STEP_BIASCORR, 'B'},
	};
	size_t n = 0;
	for (size_t i = 0; i < sizeof marks / sizeof marks[0] && n + 1 < len; i++)
		if (steps & marks[i].bit)
			buf[n++] = marks[i].c;
	buf[n] = '\0';
}

/* Per-channel ranges of layer li now and before its last change. */
static void channels(const struct dfq_model *m, int li, struct layer_figs *f)
{
	const struct dfq_layer *L = &m->layers[li];
	int step;
	const void *id = dfq_model_weights_before_id(m, li, &step);
	if (f->have_channels && f->before == id && f->before_step == step)
		return;
	struct dfq_tensor *before = id ? dfq_model_weights_before(m, li, &step) : NULL;
	free(f->lo);
	free(f->hi);
	free(f->blo);
	free(f->bhi);
	f->blo = f->bhi = NULL;
	f->lo = malloc((size_t)L->cout * sizeof *f->lo);
	f->hi = malloc((size_t)L->cout * sizeof *f->hi);
	if (before) {
		f->blo = malloc((size_t)L->cout * sizeof *f->blo);
		f->bhi = malloc((size_t)L->cout * sizeof *f->bhi);
	}
	f->have_channels =
	    f->lo && f->hi && (!before || (f->blo && f->bhi)) &&
	    dfq_model_channel_ranges(m, li, f->lo, f->hi, NULL) == DFQ_OK &&
	    (!before || dfq_model_channel_ranges_of(m, li, before, f->blo, f->bhi, NULL) == DFQ_OK);
	f->before = id;
	f->before_step = step;
	dfq_tensor_free(before);
}

const struct layer_figs *figs_of(struct tui *t, int li, bool want_channels)
{
	const struct dfq_model *m = t->s->model;
	if (!m || li < 0 || li >= m->nlayers)
		return NULL;
	if (t->figs_model != m || t->nfigs != m->nlayers) {
		figs_free(t);
		t->figs = calloc((size_t)m->nlayers, sizeof *t->figs);
		if (!t->figs)
			return NULL;
		t->nfigs = m->nlayers;
		t->figs_model = m;
	}
	struct layer_figs *f = &t->figs[li];
	const struct dfq_layer *L = &m->layers[li];
	const struct dfq_tensor *w = m->g->values[L->w_vi].init;
	if (f->w != w || f->wq != L->wq) {
		bool keep_channels = f->w == w;
		if (!keep_channels) {
			f->have_channels = false;
			f->before = NULL;
		}
		if (dfq_model_layer_info(m, li, &f->info, NULL) != DFQ_OK)
			return NULL;
		f->sqnr = L->quantized && L->wq
		              ? dfq_sqnr_db(dfq_tensor_f32(w), dfq_tensor_f32(L->wq), w->numel)
		              : NAN;
		f->w = w;
		f->wq = L->wq;
	}
	/* bits and the activation range follow settings and steps that leave
	 * the tensors alone: read them every time (cheap) */
	f->info.wbits = L->quantized ? L->q.wbits : 0;
	f->info.abits = L->quantized ? L->q.abits : 0;
	f->info.has_act_range = dfq_model_layer_act_range(m, li, &f->info.act_lo, &f->info.act_hi);
	if (want_channels)
		channels(m, li, f);
	return f;
}
