/* data_npy.c - images and labels from two .npy files, images read per batch with pread(). */
#include <stdlib.h>
#include <string.h>

#include "data_internal.h"
#include "dfq/dfq_npy.h"

struct npy_source {
	struct data_source base;
	struct dfq_npy_reader *x; /* owned */
	int64_t item;             /* elements per sample */
};

static dfq_status npy_source_read(struct data_source *base, int64_t first, int64_t n, float *x,
				  struct dfq_error *err)
{
	struct npy_source *s = (struct npy_source *)base;
	return dfq_npy_read_f32(s->x, first * s->item, n * s->item, x, err);
}

static void npy_source_free(struct data_source *base)
{
	struct npy_source *s = (struct npy_source *)base;
	dfq_npy_close(s->x);
	free(base->name);
	free(base->labels);
	free(s);
}

static const struct data_source_ops npy_ops = {npy_source_read, npy_source_free};

/* Images: [N, C, H, W] or [N, H, W] (one channel); float data is taken as it
 * is, uint8 as 0..255. */
static dfq_status check_images(struct npy_source *s, const char *path, struct dfq_error *err)
{
	struct dfq_shape sh;
	dfq_npy_reader_shape(s->x, &sh);
	const char *dt = dfq_npy_reader_dtype(s->x);
	bool is_float = strcmp(dt, "float32") == 0 || strcmp(dt, "float64") == 0;
	if (!is_float && strcmp(dt, "uint8") != 0)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED, "%s holds %s images; use float32 "
				     "or uint8", path, dt);
	if (sh.ndim != 3 && sh.ndim != 4) {
		char buf[160];
		return dfq_error_set(err, DFQ_ERR_SHAPE, "%s: images must be [N, C, H, W] or "
				     "[N, H, W], not %s", path,
				     dfq_shape_str(&sh, buf, sizeof buf));
	}
	s->base.element = dt;
	s->base.eight_bit = !is_float;
	s->base.count = sh.dims[0];
	s->base.c = sh.ndim == 4 ? (int)sh.dims[1] : 1;
	s->base.h = sh.dims[sh.ndim - 2];
	s->base.w = sh.dims[sh.ndim - 1];
	if (sh.ndim == 4 && sh.dims[1] > 65536)
		return dfq_error_set(err, DFQ_ERR_SHAPE, "%s: %lld channels is too many", path,
				     (long long)sh.dims[1]);
	s->item = (int64_t)s->base.c * s->base.h * s->base.w;
	if (s->base.count == 0 || s->item == 0)
		return dfq_error_set(err, DFQ_ERR_SHAPE, "%s holds no image data", path);
	return DFQ_OK;
}

/* Labels: [N] (or [N, 1]) integers, read whole. */
static dfq_status read_labels(struct data_source *src, const char *path, struct dfq_error *err)
{
	struct dfq_npy_reader *r = NULL;
	dfq_status st = dfq_npy_open(path, &r, err);
	if (st)
		return st;
	struct dfq_shape sh;
	dfq_npy_reader_shape(r, &sh);
	char buf[160];
	if (sh.dtype != DFQ_DTYPE_I64)
		st = dfq_error_set(err, DFQ_ERR_UNSUPPORTED, "%s holds %s labels; labels must be "
				   "integers (int64 or int32)", path, dfq_npy_reader_dtype(r));
	else if (!(sh.ndim == 1 || (sh.ndim == 2 && sh.dims[1] == 1)))
		st = dfq_error_set(err, DFQ_ERR_SHAPE, "%s: labels must be [N], not %s", path,
				   dfq_shape_str(&sh, buf, sizeof buf));
	else if (sh.dims[0] != src->count)
		st = dfq_error_set(err, DFQ_ERR_SHAPE, "%s holds %lld images but %s holds %lld "
				   "labels", src->name, (long long)src->count, path,
				   (long long)sh.dims[0]);
	if (st == DFQ_OK) {
		src->labels = malloc(sizeof *src->labels * (size_t)(src->count + 1));
		if (!src->labels)
			st = dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory reading %s", path);
	}
	if (st == DFQ_OK)
		st = dfq_npy_read_i64(r, 0, src->count, src->labels, err);
	dfq_npy_close(r);
	return st == DFQ_OK ? data_labels_check(src, path, err) : st;
}

dfq_status data_npy_open(const char *x, const char *y, struct data_source **out,
			 struct dfq_error *err)
{
	*out = NULL;
	struct npy_source *s = calloc(1, sizeof *s);
	if (!s || !(s->base.name = strdup(x))) {
		free(s);
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory opening %s", x);
	}
	s->base.ops = &npy_ops;
	dfq_status st = dfq_npy_open(x, &s->x, err);
	if (st == DFQ_OK)
		st = check_images(s, x, err);
	if (st == DFQ_OK)
		st = read_labels(&s->base, y, err);
	if (st != DFQ_OK) {
		npy_source_free(&s->base);
		return st;
	}
	*out = &s->base;
	return DFQ_OK;
}
