/* model_settings.c - the settings a model keeps: range source, n-std of the data-free rule,
 * input ranges.  Settings are not steps: undoing a step keeps them. */
#include <math.h>
#include <stdio.h>

#include "model_internal.h"

/* --- settings ------------------------------------------------------------------ */

dfq_status dfq_model_set_range_source(struct dfq_model *m, dfq_range_src src, struct dfq_error *err)
{
	if (src != DFQ_RANGE_BN && src != DFQ_RANGE_MINMAX && src != DFQ_RANGE_GLOBAL &&
	    src != DFQ_RANGE_PERCENTILE)
		return dfq_error_set(
		    err, DFQ_ERR_ARG,
		    "activation ranges come from bn, minmax, global or percentile");
	dfq_range_src old = m->range_src;
	m->range_src = src;
	dfq_status st = model_refresh(m, err);
	if (st != DFQ_OK)
		m->range_src = old;
	return st;
}

dfq_status dfq_model_set_n_sigma(struct dfq_model *m, double n, struct dfq_error *err)
{
	if (!(n > 0.0) || !isfinite(n))
		return dfq_error_set(err, DFQ_ERR_ARG, "n-std must be a positive number, not %g",
		                     n);
	double old = m->n_sigma;
	m->n_sigma = n;
	dfq_status st = model_refresh(m, err);
	if (st != DFQ_OK) {
		m->n_sigma = old;
		model_refresh(m, NULL);
	}
	return st;
}

dfq_status dfq_model_set_input_range(struct dfq_model *m, int input, float lo, float hi,
                                     struct dfq_error *err)
{
	if (input < 0 || input >= m->priv->ngiven)
		return dfq_error_set(err, DFQ_ERR_ARG, "the model has no input %d (it has %d)",
		                     input, m->priv->ngiven);
	if (!isfinite(lo) || !isfinite(hi) || lo > hi)
		return dfq_error_set(err, DFQ_ERR_ARG,
		                     "input range [%g, %g] must be finite with lo <= hi",
		                     (double)lo, (double)hi);
	struct dfq_range old = m->priv->given[input];
	m->priv->given[input] = (struct dfq_range){.valid = true, .lo = lo, .hi = hi};
	dfq_status st = model_refresh(m, err);
	if (st != DFQ_OK)
		m->priv->given[input] = old;
	return st;
}

dfq_status dfq_model_clear_input_range(struct dfq_model *m, int input, struct dfq_error *err)
{
	if (input < 0 || input >= m->priv->ngiven)
		return dfq_error_set(err, DFQ_ERR_ARG, "the model has no input %d (it has %d)",
		                     input, m->priv->ngiven);
	if (!m->priv->given[input].valid)
		return DFQ_OK;
	struct dfq_range old = m->priv->given[input];
	m->priv->given[input] = (struct dfq_range){0};
	dfq_status st = model_refresh(m, err);
	if (st != DFQ_OK)
		m->priv->given[input] = old;
	return st;
}
