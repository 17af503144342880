/* data.c - data set SPECs, the evaluation/calibration slices, normalisation and the batch API. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data_internal.h"
#include "dfq/dfq_data.h"

/* Labels above this are surely not class indices (and would make the
 * class count absurd). */
#define LABEL_MAX (1 << 24)

struct dfq_data {
	struct dfq_data_info info;
	struct data_source *eval_src;  /* owned */
	struct data_source *calib_src; /* owned; NULL when calibration reads eval_src */
	char *spec;                    /* owned */
	char *eval_path, *calib_path;  /* owned copies behind info.*_source */
};

static const char *const fmnist_classes[] = {
	"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
	"Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
};

void dfq_data_opts_default(struct dfq_data_opts *o)
{
	memset(o, 0, sizeof *o);
	o->n_eval = -1;
	o->n_calib = -1;
}

void data_source_free(struct data_source *src)
{
	if (src)
		src->ops->free(src);
}

dfq_status data_labels_check(struct data_source *src, const char *what, struct dfq_error *err)
{
	int64_t max = -1;
	for (int64_t i = 0; i < src->count; i++) {
		int64_t y = src->labels[i];
		if (y < 0 || y >= LABEL_MAX)
			return dfq_error_set(err, DFQ_ERR_PARSE, "%s: label %lld of sample %lld is "
					     "not a class index", what, (long long)y, (long long)i);
		max = y > max ? y : max;
	}
	src->nclasses = (int)(max + 1);
	return DFQ_OK;
}

void dfq_data_free(struct dfq_data *d)
{
	if (!d)
		return;
	data_source_free(d->eval_src);
	data_source_free(d->calib_src);
	free(d->spec);
	free(d->eval_path);
	free(d->calib_path);
	free(d);
}

const struct dfq_data_info *dfq_data_get_info(const struct dfq_data *d)
{
	return &d->info;
}

/* --- SPEC parsing --------------------------------------------------------- */

/* Split "A,B" into two new strings (caller frees both).  Exactly one comma. */
static dfq_status split_pair(const char *kind, const char *rest, const char *what,
			     char **a, char **b, struct dfq_error *err)
{
	const char *comma = strchr(rest, ',');
	if (!comma || strchr(comma + 1, ',') || comma == rest || !comma[1])
		return dfq_error_set(err, DFQ_ERR_ARG, "%s: expects %s (two files separated by "
				     "one comma), not '%s'", kind, what, rest);
	*a = strndup(rest, (size_t)(comma - rest));
	*b = strdup(comma + 1);
	if (!*a || !*b) {
		free(*a);
		free(*b);
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory");
	}
	return DFQ_OK;
}

/* *out = dir/name.gz if it exists, else dir/name if that exists (caller
 * frees); an error saying why the file is needed otherwise. */
static dfq_status fmnist_file(const char *dir, const char *name, const char *why, char **out,
			      struct dfq_error *err)
{
	size_t n = strlen(dir) + strlen(name) + 8;
	char *p = malloc(n);
	*out = NULL;
	if (!p)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory");
	snprintf(p, n, "%s/%s.gz", dir, name);
	if (access(p, F_OK) != 0)
		snprintf(p, n, "%s/%s", dir, name);
	if (access(p, F_OK) == 0) {
		*out = p;
		return DFQ_OK;
	}
	snprintf(p, n, "%s/%s.gz", dir, name);
	dfq_status st = dfq_error_set(err, DFQ_ERR_IO, "fmnist: cannot find %s (%s)", p, why);
	free(p);
	return st;
}

/* Open one Fashion-MNIST split ("t10k" or "train") of dir. */
static dfq_status fmnist_open(const char *dir, const char *split, const char *why,
			      struct data_source **out, struct dfq_error *err)
{
	char name[64];
	char *images = NULL, *labels = NULL;
	snprintf(name, sizeof name, "%s-images-idx3-ubyte", split);
	dfq_status st = fmnist_file(dir, name, why, &images, err);
	snprintf(name, sizeof name, "%s-labels-idx1-ubyte", split);
	if (st == DFQ_OK)
		st = fmnist_file(dir, name, why, &labels, err);
	if (st == DFQ_OK)
		st = data_idx_open(images, labels, out, err);
	free(images);
	free(labels);
	return st;
}

/* The sources of spec: eval_src always, calib_src for fmnist's training set
 * (only when calibration samples are wanted). */
static dfq_status open_sources(struct dfq_data *d, const struct dfq_data_opts *o,
			       struct dfq_error *err)
{
	const char *spec = d->spec;
	char *a = NULL, *b = NULL;
	dfq_status st;
	if (strcmp(spec, "fmnist") == 0 || strncmp(spec, "fmnist:", 7) == 0) {
		const char *dir = spec[6] == ':' && spec[7] ? spec + 7 : DFQ_FMNIST_DIR;
		d->info.kind = DFQ_DATA_FMNIST;
		st = fmnist_open(dir, "t10k", "install Debian's dataset-fashion-mnist or give "
				 "fmnist:DIR", &d->eval_src, err);
		if (st == DFQ_OK && o->n_calib != 0)
			st = fmnist_open(dir, "train", "the calibration slice comes from the "
					 "training set; use a calibration size of 0 to do "
					 "without", &d->calib_src, err);
		return st;
	}
	if (strncmp(spec, "idx:", 4) == 0) {
		d->info.kind = DFQ_DATA_IDX;
		st = split_pair("idx", spec + 4, "IMAGES,LABELS", &a, &b, err);
		if (st == DFQ_OK)
			st = data_idx_open(a, b, &d->eval_src, err);
	} else if (strncmp(spec, "npy:", 4) == 0) {
		d->info.kind = DFQ_DATA_NPY;
		st = split_pair("npy", spec + 4, "X.npy,Y.npy", &a, &b, err);
		if (st == DFQ_OK)
			st = data_npy_open(a, b, &d->eval_src, err);
	} else if (strncmp(spec, "images:", 7) == 0 && spec[7]) {
		d->info.kind = DFQ_DATA_IMAGES;
		st = data_images_open(spec + 7, &d->eval_src, err);
	} else {
		st = dfq_error_set(err, DFQ_ERR_ARG, "unknown data '%s'; use fmnist[:DIR], "
				   "idx:IMAGES,LABELS, npy:X.npy,Y.npy or images:DIR", spec);
	}
	free(a);
	free(b);
	return st;
}

/* --- slices --------------------------------------------------------------- */

static dfq_status fmnist_slices(struct dfq_data *d, const struct dfq_data_opts *o,
				struct dfq_error *err)
{
	struct dfq_data_info *in = &d->info;
	in->eval_total = d->eval_src->count;
	in->eval_n = o->n_eval < 0 ? in->eval_total : o->n_eval;
	if (in->eval_n > in->eval_total)
		return dfq_error_set(err, DFQ_ERR_ARG, "%lld evaluation samples asked for but the "
				     "Fashion-MNIST test set has %lld", (long long)in->eval_n,
				     (long long)in->eval_total);
	if (!d->calib_src)
		return DFQ_OK;
	in->calib_total = d->calib_src->count;
	if (o->n_calib > in->calib_total)
		return dfq_error_set(err, DFQ_ERR_ARG, "%lld calibration samples asked for but the "
				     "Fashion-MNIST training set has %lld", (long long)o->n_calib,
				     (long long)in->calib_total);
	in->calib_n = o->n_calib >= 0 ? o->n_calib
		      : in->calib_total < DFQ_DATA_DEFAULT_CALIB ? in->calib_total
								 : DFQ_DATA_DEFAULT_CALIB;
	in->calib_first = 0;
	return DFQ_OK;
}

/* One set: evaluation from the front, calibration from the back. */
static dfq_status shared_slices(struct dfq_data *d, const struct dfq_data_opts *o,
				struct dfq_error *err)
{
	struct dfq_data_info *in = &d->info;
	int64_t total = d->eval_src->count;
	in->eval_total = in->calib_total = total;
	if (o->n_eval > total || o->n_calib > total) {
		bool ev = o->n_eval > total;
		return dfq_error_set(err, DFQ_ERR_ARG, "%lld %s samples asked for but %s holds "
				     "%lld", (long long)(ev ? o->n_eval : o->n_calib),
				     ev ? "evaluation" : "calibration", d->spec, (long long)total);
	}
	int64_t calib = o->n_calib;
	if (calib < 0) {
		int64_t room = o->n_eval >= 0 ? total - o->n_eval : total / 10;
		calib = room < DFQ_DATA_DEFAULT_CALIB ? room : DFQ_DATA_DEFAULT_CALIB;
	}
	int64_t eval = o->n_eval >= 0 ? o->n_eval : total - calib;
	if (eval + calib > total)
		return dfq_error_set(err, DFQ_ERR_ARG, "the evaluation slice (the first %lld "
				     "samples) and the calibration slice (the last %lld) overlap: "
				     "%s holds %lld samples", (long long)eval, (long long)calib,
				     d->spec, (long long)total);
	in->eval_n = eval;
	in->calib_n = calib;
	in->calib_first = total - calib;
	return DFQ_OK;
}

/* --- normalisation -------------------------------------------------------- */

/* Fill mean/std from o or the kind's defaults; one value stands for every
 * channel, otherwise the counts must agree. */
static dfq_status set_norm(struct dfq_data *d, const struct dfq_data_opts *o,
			   struct dfq_error *err)
{
	struct dfq_data_info *in = &d->info;
	bool fm = in->kind == DFQ_DATA_FMNIST;
	int nm = o->nmean, ns = o->nstd;
	if (nm < 0 || nm > DFQ_DATA_MAX_CHANNELS || ns < 0 || ns > DFQ_DATA_MAX_CHANNELS)
		return dfq_error_set(err, DFQ_ERR_ARG, "mean and std take at most %d values",
				     DFQ_DATA_MAX_CHANNELS);
	if (nm > 1 && ns > 1 && nm != ns)
		return dfq_error_set(err, DFQ_ERR_ARG, "%d mean values but %d std values", nm, ns);
	in->nnorm = nm > ns ? nm : ns;
	in->nnorm = in->nnorm ? in->nnorm : 1;
	for (int k = 0; k < in->nnorm; k++) {
		in->mean[k] = nm ? o->mean[nm == 1 ? 0 : k] : fm ? DFQ_FMNIST_MEAN : 0.0f;
		in->std[k] = ns ? o->std[ns == 1 ? 0 : k] : fm ? DFQ_FMNIST_STD : 1.0f;
		if (!isfinite(in->mean[k]))
			return dfq_error_set(err, DFQ_ERR_ARG, "mean %g is not a finite number",
					     (double)in->mean[k]);
		if (!(in->std[k] > 0) || !isfinite(in->std[k]))
			return dfq_error_set(err, DFQ_ERR_ARG, "std %g must be a positive number",
					     (double)in->std[k]);
	}
	return DFQ_OK;
}

/* With C known, the mean/std count must be 1 or C. */
static dfq_status check_norm_channels(const struct dfq_data *d, int c, struct dfq_error *err)
{
	if (d->info.nnorm == 1 || d->info.nnorm == c)
		return DFQ_OK;
	return dfq_error_set(err, DFQ_ERR_ARG, "%d mean/std values given for %d-channel samples "
			     "(give 1 or %d)", d->info.nnorm, c, c);
}

/* x = (raw [/ 255] - mean[c]) / std[c], in float32 as PyTorch computes
 * (x / 255 - mean) / std, so logits agree to the last bits. */
static void normalise(const struct dfq_data *d, float *x, int64_t n)
{
	const struct dfq_data_info *in = &d->info;
	int64_t plane = in->height * in->width;
	for (int64_t i = 0; i < n; i++)
		for (int c = 0; c < in->channels; c++) {
			float m = in->mean[in->nnorm == 1 ? 0 : c];
			float s = in->std[in->nnorm == 1 ? 0 : c];
			float *p = x + (i * in->channels + c) * plane;
			for (int64_t j = 0; j < plane; j++) {
				float v = in->eight_bit ? p[j] / 255.0f : p[j];
				p[j] = (v - m) / s;
			}
		}
}

/* --- open ----------------------------------------------------------------- */

static dfq_status fill_info(struct dfq_data *d, struct dfq_error *err)
{
	struct dfq_data_info *in = &d->info;
	struct data_source *e = d->eval_src, *c = d->calib_src;
	static const char *const kinds[] = {"fmnist", "idx", "npy", "images"};
	in->kind_name = kinds[in->kind];
	in->eval_set = in->kind == DFQ_DATA_FMNIST ? "test" : "all";
	in->calib_set = in->kind == DFQ_DATA_FMNIST ? "train" : "all";
	d->eval_path = strdup(e->name);
	d->calib_path = strdup(c ? c->name : e->name);
	if (!d->eval_path || !d->calib_path)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory");
	in->eval_source = d->eval_path;
	in->calib_source = in->calib_n ? d->calib_path : NULL;
	in->from_model = in->kind == DFQ_DATA_IMAGES;
	in->channels = e->c;
	in->height = e->h;
	in->width = e->w;
	in->element = e->element;
	in->eight_bit = e->eight_bit;
	in->nclasses = e->nclasses;
	if (c && c->nclasses > in->nclasses)
		in->nclasses = c->nclasses;
	if (c && (c->c != e->c || c->h != e->h || c->w != e->w))
		return dfq_error_set(err, DFQ_ERR_SHAPE, "%s and %s hold images of different "
				     "sizes", e->name, c->name);
	if (e->class_names)
		in->class_names = (const char *const *)e->class_names;
	else if (in->kind == DFQ_DATA_FMNIST && in->nclasses == 10)
		in->class_names = fmnist_classes;
	return in->from_model ? DFQ_OK : check_norm_channels(d, in->channels, err);
}

dfq_status dfq_data_open(const char *spec, const struct dfq_data_opts *o, struct dfq_data **out,
			 struct dfq_error *err)
{
	struct dfq_data_opts defaults;
	if (!o) {
		dfq_data_opts_default(&defaults);
		o = &defaults;
	}
	*out = NULL;
	struct dfq_data *d = calloc(1, sizeof *d);
	if (!d || !(d->spec = strdup(spec))) {
		free(d);
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory");
	}
	d->info.spec = d->spec;
	dfq_status st = open_sources(d, o, err);
	if (st == DFQ_OK)
		st = d->info.kind == DFQ_DATA_FMNIST ? fmnist_slices(d, o, err)
						     : shared_slices(d, o, err);
	if (st == DFQ_OK && d->info.eval_n == 0 && o->n_eval != 0)
		st = dfq_error_set(err, DFQ_ERR_ARG, "%s leaves no samples for evaluation", spec);
	if (st == DFQ_OK)
		st = set_norm(d, o, err);
	if (st == DFQ_OK)
		st = fill_info(d, err);
	if (st != DFQ_OK) {
		dfq_data_free(d);
		return st;
	}
	*out = d;
	return DFQ_OK;
}

/* --- fitting to a model ----------------------------------------------------- */

dfq_status dfq_data_fit(struct dfq_data *d, const char *name, const struct dfq_shape *input,
			struct dfq_error *err)
{
	struct dfq_data_info *in = &d->info;
	char want[160], have[160];
	dfq_shape_str(input, want, sizeof want);
	if (input->dtype != DFQ_DTYPE_F32)
		return dfq_error_set(err, DFQ_ERR_SHAPE, "the model's input '%s' takes %s, not "
				     "float32 images", name, dfq_dtype_name(input->dtype));
	if (input->ndim != 4)
		return dfq_error_set(err, DFQ_ERR_SHAPE, "the model's input '%s' is %s; image data "
				     "needs an [N, C, H, W] input", name, want);
	const int64_t *m = input->dims + 1;
	if (in->from_model) {
		if (m[0] <= 0 || m[1] <= 0 || m[2] <= 0)
			return dfq_error_set(err, DFQ_ERR_SHAPE, "the model's input '%s' is %s; "
					     "images need a fixed C, H and W to be resized to",
					     name, want);
		dfq_status st = data_images_set_target(d->eval_src, (int)m[0], m[1], m[2], err);
		if (st == DFQ_OK)
			st = check_norm_channels(d, (int)m[0], err);
		if (st)
			return st;
		in->channels = (int)m[0];
		in->height = m[1];
		in->width = m[2];
		return DFQ_OK;
	}
	const int64_t s[3] = {in->channels, in->height, in->width};
	for (int i = 0; i < 3; i++) {
		if (m[i] < 0 || m[i] == s[i])
			continue;
		struct dfq_shape ds = {.dtype = DFQ_DTYPE_F32, .ndim = 3,
				       .dims = {s[0], s[1], s[2]}};
		return dfq_error_set(err, DFQ_ERR_SHAPE, "the data's samples are %s but the "
				     "model's input '%s' is %s", dfq_shape_str(&ds, have,
				     sizeof have), name, want);
	}
	return DFQ_OK;
}

/* --- reading ---------------------------------------------------------------- */

int64_t dfq_data_count(const struct dfq_data *d, dfq_data_split split)
{
	return split == DFQ_SPLIT_EVAL ? d->info.eval_n : d->info.calib_n;
}

int64_t dfq_data_sample_numel(const struct dfq_data *d)
{
	return (int64_t)d->info.channels * d->info.height * d->info.width;
}

dfq_status dfq_data_read(struct dfq_data *d, dfq_data_split split, int64_t first, int64_t n,
			 float *x, int64_t *labels, struct dfq_error *err)
{
	const struct dfq_data_info *in = &d->info;
	bool ev = split == DFQ_SPLIT_EVAL;
	int64_t count = ev ? in->eval_n : in->calib_n;
	int64_t base = ev ? in->eval_first : in->calib_first;
	struct data_source *src = ev || !d->calib_src ? d->eval_src : d->calib_src;
	if (!ev && count == 0)
		return dfq_error_set(err, DFQ_ERR_ARG, "%s has no calibration slice (open it with "
				     "a calibration size)", d->spec);
	if (first < 0 || n < 0 || first > count || n > count - first)
		return dfq_error_set(err, DFQ_ERR_ARG, "samples [%lld, %lld) are outside the "
				     "%lld-sample %s slice", (long long)first,
				     (long long)(first + n), (long long)count,
				     ev ? "evaluation" : "calibration");
	if (n == 0)
		return DFQ_OK;
	dfq_status st = src->ops->read(src, base + first, n, x, err);
	if (st)
		return st;
	normalise(d, x, n);
	if (labels)
		memcpy(labels, src->labels + base + first, sizeof *labels * (size_t)n);
	return DFQ_OK;
}

dfq_status dfq_data_batch(struct dfq_data *d, dfq_data_split split, int64_t first, int64_t n,
			  struct dfq_tensor **x, struct dfq_tensor **labels, struct dfq_error *err)
{
	*x = NULL;
	if (labels)
		*labels = NULL;
	const struct dfq_data_info *in = &d->info;
	if (n < 0)
		return dfq_error_set(err, DFQ_ERR_ARG, "a batch cannot have %lld samples",
				     (long long)n);
	if (dfq_data_sample_numel(d) <= 0)
		return dfq_error_set(err, DFQ_ERR_ARG, "images:%s: the image size comes from the "
				     "model; fit the data to a model first", in->eval_source);
	int64_t dims[4] = {n, in->channels, in->height, in->width};
	struct dfq_tensor *tx = dfq_tensor_new(DFQ_DTYPE_F32, 4, dims, err);
	struct dfq_tensor *ty = labels && tx ? dfq_tensor_new(DFQ_DTYPE_I64, 1, dims, err) : NULL;
	if (!tx || (labels && !ty)) {
		dfq_tensor_free(tx);
		return DFQ_ERR_NOMEM; /* err was filled by dfq_tensor_new() */
	}
	dfq_status st = dfq_data_read(d, split, first, n, dfq_tensor_f32(tx),
				      ty ? dfq_tensor_i64(ty) : NULL, err);
	if (st) {
		dfq_tensor_free(tx);
		dfq_tensor_free(ty);
		return st;
	}
	*x = tx;
	if (labels)
		*labels = ty;
	return DFQ_OK;
}
