/* data_images.c - class sub-folders of PNG/JPEG images, decoded and resized per sample. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <stb_image.h>

#include "data_internal.h"
#include "dfq/dfq_data.h"

struct images_source {
	struct data_source base;
	char **paths;          /* owned, count entries (each owned), in sample order */
};

/* --- resizing ----------------------------------------------------------- */

/* For each output pixel of one axis: which source pixels it reads and how
 * much of each.  Weights sum to 1. */
struct axis_taps {
	int *first;   /* owned, per output pixel: the first source pixel */
	int *count;   /* owned, per output pixel: how many source pixels */
	double *w;    /* owned, per output pixel: maxtaps weights */
	int maxtaps;
};

static void taps_free(struct axis_taps *t)
{
	free(t->first);
	free(t->count);
	free(t->w);
}

/* Enlarging (s >= 1): bilinear between the two nearest source pixel centres,
 * with output pixel o's centre at (o + 0.5 + off) / s - 0.5 in source pixels
 * (PyTorch's align_corners=False), clamped at the edges. */
static void taps_bilinear(struct axis_taps *t, int o, int src, double s, double off)
{
	double u = (o + 0.5 + off) / s - 0.5;
	u = u < 0 ? 0 : u > src - 1 ? src - 1 : u;
	int i0 = (int)floor(u);
	double frac = u - i0;
	if (i0 >= src - 1) {
		i0 = src - 1;
		frac = 0;
	}
	t->first[o] = i0;
	t->count[o] = frac > 0 ? 2 : 1;
	t->w[o * t->maxtaps] = 1 - frac;
	if (frac > 0)
		t->w[o * t->maxtaps + 1] = frac;
}

/* Shrinking (s < 1): output pixel o covers [(o + off) / s, (o + 1 + off) / s)
 * of the source; each source pixel weighs by its overlap (area averaging). */
static void taps_area(struct axis_taps *t, int o, int src, double s, double off)
{
	double a = (o + off) / s, b = (o + 1 + off) / s;
	a = a < 0 ? 0 : a;
	b = b > src ? src : b;
	int j0 = (int)floor(a), j1 = (int)ceil(b);
	j1 = j1 > src ? src : j1;
	j1 = j1 <= j0 ? j0 + 1 : j1;
	if (j1 - j0 > t->maxtaps)
		j1 = j0 + t->maxtaps; /* cannot happen: maxtaps covers 1/s + 2 */
	double total = 0;
	for (int j = j0; j < j1; j++) {
		double lo = a > j ? a : j, hi = b < j + 1 ? b : j + 1;
		double ov = hi > lo ? hi - lo : 0;
		t->w[o * t->maxtaps + (j - j0)] = ov;
		total += ov;
	}
	t->first[o] = j0;
	t->count[o] = j1 - j0;
	for (int j = 0; j < j1 - j0; j++)
		t->w[o * t->maxtaps + j] = total > 0 ? t->w[o * t->maxtaps + j] / total
						     : 1.0 / (j1 - j0);
}

/* Taps for an axis of src pixels scaled by s and cropped to dst pixels
 * centred: the crop starts off = (src * s - dst) / 2 scaled pixels in. */
static dfq_status make_taps(struct axis_taps *t, int src, int dst, double s, struct dfq_error *err)
{
	memset(t, 0, sizeof *t);
	t->maxtaps = s >= 1 ? 2 : (int)ceil(1.0 / s) + 2;
	t->first = malloc(sizeof *t->first * (size_t)dst);
	t->count = malloc(sizeof *t->count * (size_t)dst);
	t->w = calloc((size_t)dst * (size_t)t->maxtaps, sizeof *t->w);
	if (!t->first || !t->count || !t->w) {
		taps_free(t);
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory resizing an image");
	}
	double off = (src * s - dst) / 2;
	off = off < 0 ? 0 : off;
	for (int o = 0; o < dst; o++) {
		if (s >= 1)
			taps_bilinear(t, o, src, s, off);
		else
			taps_area(t, o, src, s, off);
	}
	return DFQ_OK;
}

dfq_status dfq_image_resize_crop(const float *src, int c, int sh, int sw, float *dst, int dh,
				 int dw, struct dfq_error *err)
{
	/* One scale for both axes keeps the aspect ratio; the larger ratio makes
	 * the image cover dh x dw, and the overhang is cropped evenly. */
	double sy = (double)dh / sh, sx = (double)dw / sw;
	double s = sy > sx ? sy : sx;
	struct axis_taps ty, tx;
	dfq_status st = make_taps(&ty, sh, dh, s, err);
	if (st)
		return st;
	st = make_taps(&tx, sw, dw, s, err);
	if (st) {
		taps_free(&ty);
		return st;
	}
	/* Horizontal pass into rows of the output width, then vertical. */
	float *rows = malloc(sizeof *rows * (size_t)sh * (size_t)dw);
	if (!rows)
		st = dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory resizing an image");
	for (int ch = 0; st == DFQ_OK && ch < c; ch++) {
		const float *plane = src + (size_t)ch * sh * sw;
		for (int y = 0; y < sh; y++)
			for (int ox = 0; ox < dw; ox++) {
				const float *p = plane + (size_t)y * sw + tx.first[ox];
				const double *w = tx.w + (size_t)ox * tx.maxtaps;
				double acc = 0;
				for (int k = 0; k < tx.count[ox]; k++)
					acc += w[k] * p[k];
				rows[(size_t)y * dw + ox] = (float)acc;
			}
		float *out = dst + (size_t)ch * dh * dw;
		for (int oy = 0; oy < dh; oy++) {
			const double *w = ty.w + (size_t)oy * ty.maxtaps;
			for (int ox = 0; ox < dw; ox++) {
				double acc = 0;
				for (int k = 0; k < ty.count[oy]; k++)
					acc += w[k] * rows[(size_t)(ty.first[oy] + k) * dw + ox];
				out[(size_t)oy * dw + ox] = (float)acc;
			}
		}
	}
	free(rows);
	taps_free(&tx);
	taps_free(&ty);
	return st;
}

/* --- listing the folder -------------------------------------------------- */

struct name_list {
	char **v; /* owned, each owned */
	int n, cap;
};

static void names_free(struct name_list *l)
{
	for (int i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof *l);
}

static bool names_push(struct name_list *l, const char *s)
{
	if (l->n == l->cap) {
		int cap = l->cap ? 2 * l->cap : 16;
		char **v = realloc(l->v, sizeof *v * (size_t)cap);
		if (!v)
			return false;
		l->v = v;
		l->cap = cap;
	}
	if (!(l->v[l->n] = strdup(s)))
		return false;
	l->n++;
	return true;
}

/* Byte order, not the locale's: the class indices must not depend on it. */
static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

static bool is_image_name(const char *name)
{
	const char *dot = strrchr(name, '.');
	return dot && (strcasecmp(dot, ".png") == 0 || strcasecmp(dot, ".jpg") == 0 ||
		       strcasecmp(dot, ".jpeg") == 0);
}

/* The sorted names in dir that are directories (want_dirs) or image files;
 * hidden entries are skipped. */
static dfq_status list_dir(const char *dir, bool want_dirs, struct name_list *out,
			   struct dfq_error *err)
{
	memset(out, 0, sizeof *out);
	DIR *d = opendir(dir);
	if (!d)
		return dfq_error_set(err, DFQ_ERR_IO, "cannot open folder %s: %s", dir,
				     strerror(errno));
	dfq_status st = DFQ_OK;
	struct dirent *e;
	while (st == DFQ_OK && (e = readdir(d))) {
		if (e->d_name[0] == '.' || (!want_dirs && !is_image_name(e->d_name)))
			continue;
		char *p = join(dir, e->d_name);
		struct stat sb;
		bool ok = p && stat(p, &sb) == 0 &&
			  (want_dirs ? S_ISDIR(sb.st_mode) : S_ISREG(sb.st_mode));
		if (!p || (ok && !names_push(out, e->d_name)))
			st = dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory listing %s", dir);
		free(p);
	}
	closedir(d);
	if (st)
		names_free(out);
	else if (out->n)
		qsort(out->v, (size_t)out->n, sizeof *out->v, name_cmp);
	return st;
}

/* --- the source ---------------------------------------------------------- */

static void images_source_free(struct data_source *base)
{
	struct images_source *s = (struct images_source *)base;
	for (int64_t i = 0; s->paths && i < base->count; i++)
		free(s->paths[i]);
	free(s->paths);
	for (int i = 0; base->class_names && i < base->nclasses; i++)
		free(base->class_names[i]);
	free(base->class_names);
	free(base->labels);
	free(base->name);
	free(s);
}

/* Decoded 8-bit pixels (interleaved, comp channels) to c float planes:
 * gray is repeated for RGB, RGB becomes gray by ITU-R 601 luma (as PIL's
 * "L" mode), alpha is dropped. */
static void to_planes(const unsigned char *px, int comp, int h, int w, int c, float *out)
{
	size_t n = (size_t)h * w;
	bool color = comp >= 3;
	for (size_t i = 0; i < n; i++) {
		const unsigned char *p = px + i * (size_t)comp;
		if (c == 1) {
			out[i] = color ? (float)(0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2])
				       : (float)p[0];
			continue;
		}
		for (int k = 0; k < 3; k++)
			out[(size_t)k * n + i] = color ? (float)p[k] : (float)p[0];
	}
}

/* Decode one file and resize it into x (c * h * w floats, 0..255). */
static dfq_status read_one(struct images_source *s, int64_t i, float *x, struct dfq_error *err)
{
	const char *path = s->paths[i];
	int w = 0, h = 0, comp = 0;
	unsigned char *px = stbi_load(path, &w, &h, &comp, 0);
	if (!px) {
		const char *why = stbi_failure_reason();
		return dfq_error_set(err, DFQ_ERR_PARSE, "cannot decode image %s: %s", path,
				     why ? why : "unknown error");
	}
	int c = s->base.c;
	float *planes = malloc(sizeof *planes * (size_t)c * (size_t)h * (size_t)w);
	dfq_status st = DFQ_OK;
	if (!planes) {
		st = dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory decoding %s", path);
	} else {
		to_planes(px, comp, h, w, c, planes);
		st = dfq_image_resize_crop(planes, c, h, w, x, (int)s->base.h, (int)s->base.w,
					   err);
	}
	free(planes);
	stbi_image_free(px);
	return st;
}

static dfq_status images_source_read(struct data_source *base, int64_t first, int64_t n,
				     float *x, struct dfq_error *err)
{
	struct images_source *s = (struct images_source *)base;
	if (base->h <= 0 || base->w <= 0 || base->c <= 0)
		return dfq_error_set(err, DFQ_ERR_ARG, "images:%s: the image size comes from the "
				     "model; fit the data to a model first", base->name);
	size_t item = (size_t)base->c * (size_t)base->h * (size_t)base->w;
	for (int64_t i = 0; i < n; i++) {
		dfq_status st = read_one(s, first + i, x + (size_t)i * item, err);
		if (st)
			return st;
	}
	return DFQ_OK;
}

static const struct data_source_ops images_ops = {images_source_read, images_source_free};

dfq_status data_images_set_target(struct data_source *src, int c, int64_t h, int64_t w,
				  struct dfq_error *err)
{
	if (c != 1 && c != 3)
		return dfq_error_set(err, DFQ_ERR_SHAPE, "images:%s: images can be converted to "
				     "1 or 3 channels, not %d", src->name, c);
	if (h <= 0 || w <= 0 || h > 65536 || w > 65536)
		return dfq_error_set(err, DFQ_ERR_SHAPE, "images:%s: cannot resize images to "
				     "%lld x %lld", src->name, (long long)h, (long long)w);
	src->c = c;
	src->h = h;
	src->w = w;
	return DFQ_OK;
}

/* Interleave the classes' file lists round-robin: the first file of every
 * class, then the second, ...; so any prefix is as balanced as it can be. */
static dfq_status collect(struct images_source *s, struct name_list *files, int nclasses,
			  struct dfq_error *err)
{
	int64_t total = 0;
	int longest = 0;
	for (int k = 0; k < nclasses; k++) {
		total += files[k].n;
		longest = files[k].n > longest ? files[k].n : longest;
	}
	if (total == 0)
		return dfq_error_set(err, DFQ_ERR_PARSE, "images:%s: the class folders hold no "
				     ".png/.jpg/.jpeg files", s->base.name);
	s->paths = calloc((size_t)total, sizeof *s->paths);
	s->base.labels = malloc(sizeof *s->base.labels * (size_t)total);
	if (!s->paths || !s->base.labels)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory listing %s", s->base.name);
	int64_t n = 0;
	for (int j = 0; j < longest; j++)
		for (int k = 0; k < nclasses; k++) {
			if (j >= files[k].n)
				continue;
			char *dir = join(s->base.name, s->base.class_names[k]);
			s->paths[n] = dir ? join(dir, files[k].v[j]) : NULL;
			free(dir);
			if (!s->paths[n]) {
				s->base.count = n;
				return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory listing %s",
						     s->base.name);
			}
			s->base.labels[n++] = k;
		}
	s->base.count = n;
	return DFQ_OK;
}

/* List the class folders (taking over their names) and each one's files. */
static dfq_status scan(struct images_source *s, struct dfq_error *err)
{
	struct name_list classes;
	dfq_status st = list_dir(s->base.name, true, &classes, err);
	if (st)
		return st;
	if (classes.n == 0) {
		names_free(&classes);
		return dfq_error_set(err, DFQ_ERR_PARSE, "images:%s: no class sub-folders "
				     "(expected one folder of images per class)", s->base.name);
	}
	s->base.nclasses = classes.n;
	s->base.class_names = classes.v; /* ownership moves to the source */
	struct name_list *files = calloc((size_t)classes.n, sizeof *files);
	if (!files)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory listing %s", s->base.name);
	for (int k = 0; st == DFQ_OK && k < classes.n; k++) {
		char *dir = join(s->base.name, classes.v[k]);
		st = dir ? list_dir(dir, false, &files[k], err)
			 : dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory listing %s",
					 s->base.name);
		free(dir);
	}
	if (st == DFQ_OK)
		st = collect(s, files, classes.n, err);
	for (int k = 0; k < classes.n; k++)
		names_free(&files[k]);
	free(files);
	return st;
}

dfq_status data_images_open(const char *dir, struct data_source **out, struct dfq_error *err)
{
	*out = NULL;
	struct images_source *s = calloc(1, sizeof *s);
	if (!s)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory opening %s", dir);
	/* No trailing slashes: names are joined with '/'. */
	size_t len = strlen(dir);
	while (len > 1 && dir[len - 1] == '/')
		len--;
	s->base.ops = &images_ops;
	s->base.element = "PNG/JPEG";
	s->base.eight_bit = true;
	s->base.name = strndup(dir, len);
	dfq_status st = s->base.name ? scan(s, err)
				     : dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory opening %s",
						     dir);
	if (st != DFQ_OK) {
		images_source_free(&s->base);
		return st;
	}
	*out = &s->base;
	return DFQ_OK;
}
