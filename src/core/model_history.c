/* model_history.c - transactions and the step history: commit, roll back, undo, redo. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

static void record_free(struct model_record *r)
{
	model_save_free(r->save);
	free(r->label);
	free(r->touched);
	if (r->tag && r->tag_free)
		r->tag_free(r->tag);
	memset(r, 0, sizeof *r);
}

void model_history_free(struct model_history *h)
{
	for (int i = 0; i < h->n; i++)
		record_free(&h->rec[i]);
	free(h->rec);
	memset(h, 0, sizeof *h);
}

dfq_status dfq_model_begin(struct dfq_model *m, struct dfq_error *err)
{
	return model_txn_open(m, err);
}

bool dfq_model_in_transaction(const struct dfq_model *m)
{
	return m->priv->txn != NULL;
}

void dfq_model_rollback(struct dfq_model *m)
{
	struct model_save *s = m->priv->txn;
	if (!s)
		return;
	m->priv->txn = NULL;
	/* the saved parts are the model as it was: put them back, and free
	 * what the transaction made */
	model_save_swap(m, s);
	model_save_free(s);
}

/* Did the transaction change layer i (as saved in s, and as it is in m)? */
static bool layer_touched(const struct dfq_model *m, const struct model_save *s, int i)
{
	const struct dfq_layer *a = &m->layers[i];
	const struct dfq_layer *b = (s->parts & PART_LAYERS) ? &s->layers[i] : a;
	if ((s->parts & PART_VALUES) &&
	    (s->values[a->w_vi].init != m->g->values[a->w_vi].init ||
	     (a->b_vi >= 0 && s->values[a->b_vi].init != m->g->values[a->b_vi].init)))
		return true;
	if (a == b)
		return false;
	return a->steps != b->steps || a->quantized != b->quantized ||
	       memcmp(&a->q, &b->q, sizeof a->q) != 0 ||
	       memcmp(&a->pin, &b->pin, sizeof a->pin) != 0 || a->act != b->act ||
	       a->bn_node != b->bn_node || a->gamma != b->gamma || a->beta != b->beta ||
	       a->wq != b->wq || a->bcorr_q != b->bcorr_q || a->bcorr_fp != b->bcorr_fp ||
	       a->w_ref != b->w_ref || a->b_run_q != b->b_run_q || a->b_run_fp != b->b_run_fp;
}

/* The layers the open transaction changed, ascending (*out NULL when none). */
static dfq_status touched_layers(const struct dfq_model *m, const struct model_save *s, int **out,
                                 int *n, struct dfq_error *err)
{
	*out = NULL;
	*n = 0;
	bool same = !(s->parts & PART_LAYERS) || s->nlayers == m->nlayers;
	int cnt = 0;
	for (int i = 0; i < m->nlayers; i++)
		cnt += !same || layer_touched(m, s, i);
	if (cnt == 0)
		return DFQ_OK;
	int *t = malloc((size_t)cnt * sizeof *t);
	if (!t)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory recording a step");
	for (int i = 0, k = 0; i < m->nlayers; i++)
		if (!same || layer_touched(m, s, i))
			t[k++] = i;
	*out = t;
	*n = cnt;
	return DFQ_OK;
}

dfq_status dfq_model_commit(struct dfq_model *m, const char *label, void *tag,
                            void (*tag_free)(void *), struct dfq_error *err)
{
	struct model_save *s = m->priv->txn;
	if (!s)
		return dfq_error_set(err, DFQ_ERR_INTERNAL, "no transaction is open");
	struct model_history *h = &m->priv->hist;
	if (h->applied + 1 > h->cap) {
		int cap = h->cap ? 2 * h->cap : 16;
		struct model_record *r = realloc(h->rec, (size_t)cap * sizeof *r);
		if (!r)
			return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory recording a step");
		h->rec = r;
		h->cap = cap;
	}
	struct model_record rec = {.save = s, .tag = tag, .tag_free = tag_free};
	rec.label = strdup(label ? label : "");
	if (!rec.label)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory recording a step");
	dfq_status st = touched_layers(m, s, &rec.touched, &rec.ntouched, err);
	if (st != DFQ_OK) {
		free(rec.label);
		return st;
	}
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	rec.seconds = (double)(t1.tv_sec - m->priv->txn_t0.tv_sec) +
	              (double)(t1.tv_nsec - m->priv->txn_t0.tv_nsec) * 1e-9;
	rec.when = time(NULL);
	/* a new step ends the undone branch */
	for (int i = h->applied; i < h->n; i++)
		record_free(&h->rec[i]);
	h->n = h->applied;
	h->rec[h->n++] = rec;
	h->applied = h->n;
	m->priv->txn = NULL;
	return DFQ_OK;
}

/* Swap the saves of entries [from, to) with the model: backwards to undo,
 * forwards to redo. */
static void swap_range(struct dfq_model *m, int from, int to, bool backwards)
{
	struct model_history *h = &m->priv->hist;
	for (int k = 0; k < to - from; k++)
		model_save_swap(m, h->rec[backwards ? to - 1 - k : from + k].save);
}

dfq_status dfq_model_undo(struct dfq_model *m, int n, int *done, struct dfq_error *err)
{
	struct model_history *h = &m->priv->hist;
	*done = 0;
	if (m->priv->txn)
		return dfq_error_set(err, DFQ_ERR_INTERNAL, "cannot undo inside a transaction");
	int k = n < h->applied ? n : h->applied;
	if (k <= 0)
		return DFQ_OK;
	swap_range(m, h->applied - k, h->applied, true);
	dfq_status st = model_refresh(m, err);
	if (st != DFQ_OK) {
		swap_range(m, h->applied - k, h->applied, false);
		return st;
	}
	h->applied -= k;
	*done = k;
	return DFQ_OK;
}

dfq_status dfq_model_redo(struct dfq_model *m, int n, int *done, struct dfq_error *err)
{
	struct model_history *h = &m->priv->hist;
	*done = 0;
	if (m->priv->txn)
		return dfq_error_set(err, DFQ_ERR_INTERNAL, "cannot redo inside a transaction");
	int avail = h->n - h->applied;
	int k = n < avail ? n : avail;
	if (k <= 0)
		return DFQ_OK;
	swap_range(m, h->applied, h->applied + k, false);
	dfq_status st = model_refresh(m, err);
	if (st != DFQ_OK) {
		swap_range(m, h->applied, h->applied + k, true);
		return st;
	}
	h->applied += k;
	*done = k;
	return DFQ_OK;
}

int dfq_model_history_count(const struct dfq_model *m)
{
	return m->priv->hist.n;
}

int dfq_model_history_applied(const struct dfq_model *m)
{
	return m->priv->hist.applied;
}

dfq_status dfq_model_history_entry(const struct dfq_model *m, int i, struct dfq_history_entry *out,
                                   struct dfq_error *err)
{
	const struct model_history *h = &m->priv->hist;
	if (i < 0 || i >= h->n)
		return dfq_error_set(err, DFQ_ERR_ARG, "no step %d (the history has %d)", i, h->n);
	const struct model_record *r = &h->rec[i];
	out->label = r->label;
	out->applied = i < h->applied;
	out->when = r->when;
	out->seconds = r->seconds;
	out->ntouched = r->ntouched;
	out->touched = r->touched;
	out->tag = r->tag;
	return DFQ_OK;
}

/* The applied entry that last changed layer li's weights, or -1. */
static int last_change(const struct dfq_model *m, int li)
{
	int vi = m->layers[li].w_vi;
	const struct model_history *h = &m->priv->hist;
	/* a tensor that changed was replaced (copy-on-write): walking back from
	 * the model, the first entry whose saved weights differ from the ones
	 * after it made the change */
	const struct dfq_tensor *cur = m->g->values[vi].init;
	for (int r = h->applied - 1; r >= 0; r--) {
		const struct model_save *s = h->rec[r].save;
		if ((s->parts & PART_VALUES) && s->values[vi].init != cur)
			return r;
	}
	return -1;
}

const void *dfq_model_weights_before_id(const struct dfq_model *m, int li, int *step)
{
	int r = li >= 0 && li < m->nlayers ? last_change(m, li) : -1;
	if (step)
		*step = r;
	return r < 0 ? NULL : m->priv->hist.rec[r].save->values[m->layers[li].w_vi].init;
}

/* The weights of layer li in save s with the BatchNormalization they had
 * there folded in (a new tensor), or NULL when they had none (or out of
 * memory: then the unfolded ones serve). */
static struct dfq_tensor *folded(const struct dfq_model *m, const struct model_save *s, int li)
{
	const struct dfq_layer *L = &m->layers[li];
	if (!(s->parts & PART_LAYERS) || !(s->parts & PART_NODES) || li >= s->nlayers)
		return NULL;
	const struct dfq_layer *B = &s->layers[li];
	if (B->w_vi != L->w_vi || B->bn_node < 0 || B->bn_node >= s->nnodes)
		return NULL;
	const struct dfq_node *bn = &s->nodes[B->bn_node];
	const struct dfq_tensor *gam = s->values[bn->inputs[1]].init;
	const struct dfq_tensor *var = s->values[bn->inputs[4]].init;
	if (!gam || !var || gam->numel != L->cout || var->numel != L->cout)
		return NULL;
	struct dfq_tensor *w = dfq_tensor_clone(s->values[L->w_vi].init, NULL);
	if (!w)
		return NULL;
	/* as step_fold.c scales them: W[o] * gamma_o / sqrt(var_o + eps) */
	float *x = dfq_tensor_f32(w);
	int64_t cin_g = L->cin / L->group;
	for (int64_t o = 0; o < L->cout; o++) {
		double sc =
		    dfq_tensor_f32(gam)[o] / sqrt((double)dfq_tensor_f32(var)[o] + bn->p.epsilon);
		for (int64_t i = 0; i < cin_g; i++) {
			float *p = x + o * L->w_ostride + i * L->w_istride;
			for (int64_t k = 0; k < L->ksize; k++)
				p[k] = (float)(p[k] * sc);
		}
	}
	return w;
}

struct dfq_tensor *dfq_model_weights_before(const struct dfq_model *m, int li, int *step)
{
	int r = li >= 0 && li < m->nlayers ? last_change(m, li) : -1;
	if (step)
		*step = r;
	if (r < 0)
		return NULL;
	const struct model_save *s = m->priv->hist.rec[r].save;
	struct dfq_tensor *f = folded(m, s, li);
	return f ? f : dfq_tensor_ref(s->values[m->layers[li].w_vi].init);
}
