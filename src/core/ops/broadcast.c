/* broadcast.c - numpy/ONNX multidirectional broadcasting of shapes and strides. */
#include <assert.h>

#include "ops_internal.h"

/* One output dim from two aligned input dims (1 when an input lacks the
 * axis).  -1 (unknown) against a known d > 1 must be d for the model to be
 * valid, so we take d; against 1 or -1 it stays unknown.  Returns -2 when the
 * dims cannot broadcast. */
static int64_t broadcast_dim(int64_t da, int64_t db)
{
	if (da == db)
		return da;
	if (da == 1)
		return db;
	if (db == 1)
		return da;
	if (da < 0)
		return db;
	if (db < 0)
		return da;
	return -2;
}

dfq_status ops_broadcast_shape(const struct dfq_shape *a, const struct dfq_shape *b,
			       struct dfq_shape *out, struct dfq_error *err)
{
	struct dfq_shape r = {.dtype = a->dtype};

	if (a->ndim < 0 || b->ndim < 0) {
		r.ndim = -1;
		*out = r;
		return DFQ_OK;
	}
	r.ndim = a->ndim > b->ndim ? a->ndim : b->ndim;
	assert(r.ndim <= DFQ_MAX_DIMS);
	for (int i = 0; i < r.ndim; i++) {
		/* right-aligned: axis i of the result is axis i - (r.ndim - x->ndim) of x */
		int ia = i - (r.ndim - a->ndim), ib = i - (r.ndim - b->ndim);
		int64_t da = ia >= 0 ? a->dims[ia] : 1;
		int64_t db = ib >= 0 ? b->dims[ib] : 1;
		int64_t d = broadcast_dim(da, db);
		if (d == -2) {
			char sa[128], sb[128];
			return dfq_error_set(err, DFQ_ERR_SHAPE,
					     "shapes %s and %s do not broadcast",
					     dfq_shape_str(a, sa, sizeof sa),
					     dfq_shape_str(b, sb, sizeof sb));
		}
		r.dims[i] = d;
	}
	*out = r;
	return DFQ_OK;
}

void ops_broadcast_strides(const struct dfq_tensor *t, int out_ndim, int64_t *strides)
{
	assert(out_ndim >= t->ndim);
	int64_t s = 1;
	int lead = out_ndim - t->ndim;

	for (int i = t->ndim - 1; i >= 0; i--) {
		/* a dim of 1 is read again for every index of the broadcast axis */
		strides[lead + i] = t->dims[i] == 1 ? 0 : s;
		s *= t->dims[i];
	}
	for (int i = 0; i < lead; i++)
		strides[i] = 0;
}
