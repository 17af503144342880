/* model_pairs.c - consecutive layer pairs, the unit of equalization and absorption. */
#include <stdlib.h>

#include "model_internal.h"

dfq_status model_find_pairs(const struct dfq_model *m, struct pair **out, int *nout,
                            struct dfq_error *err)
{
	struct pair *p = malloc((size_t)(m->nlayers ? m->nlayers : 1) * sizeof *p);
	if (!p)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory pairing layers");
	int n = 0;
	for (int a = 0; a < m->nlayers; a++) {
		const struct dfq_layer *A = &m->layers[a];
		const struct dfq_value *v = &m->g->values[A->out_vi];
		if (v->nconsumers != 1 || v->is_output)
			continue;
		for (int b = a + 1; b < m->nlayers; b++) {
			const struct dfq_layer *B = &m->layers[b];
			if (B->in_vi == A->out_vi && B->cin == A->cout) {
				p[n++] = (struct pair){a, b};
				break;
			}
		}
	}
	*out = p;
	*nout = n;
	return DFQ_OK;
}
