/* dfq_data.h - labelled image data sets read in batches: Fashion-MNIST, IDX, NPY, image folders.
 *
 * A data set is opened from a SPEC string:
 *   fmnist[:DIR]        Fashion-MNIST IDX files (gzip or raw) in DIR, by default Debian's
 *                       dataset-fashion-mnist location; evaluation reads the test set
 *                       (t10k-*), calibration the training set (train-*)
 *   idx:IMAGES,LABELS   an IDX image file ([N,H,W] or [N,C,H,W], unsigned bytes) and an
 *                       IDX label file ([N] unsigned bytes), each gzip or raw
 *   npy:X.npy,Y.npy     images [N,C,H,W] or [N,H,W] as float32/float64 or uint8, labels
 *                       [N] of any integer type
 *   images:DIR          one sub-folder per class (sorted names give the class indices)
 *                       holding PNG/JPEG files; every image is converted to the model's
 *                       channel count, its shorter side resized and centre-cropped to the
 *                       model's H x W (dfq_data_fit())
 *
 * Samples come out as float32 NCHW, normalised per channel:
 *   x = (raw / 255 - mean[c]) / std[c]    for 8-bit data (uint8 IDX/NPY, images)
 *   x = (raw - mean[c]) / std[c]          for float data
 * with mean 0.2860 and std 0.3530 by default for fmnist, mean 0 and std 1 otherwise.
 *
 * Two deterministic, disjoint slices are defined at open time:
 *   evaluation  the first n_eval samples of the set;
 *   calibration for fmnist the first n_calib samples of the training set, for the other
 *               kinds the last n_calib samples of the same set (it is an error if that
 *               would overlap the evaluation slice).
 * Image folders are ordered round-robin over the classes (the first file of every class,
 * then the second, ...), so the first N samples are as balanced as the folder allows.
 *
 * Nothing reads the whole data set into memory: labels are kept (8 bytes a sample), the
 * images are read per batch (gzip files sequentially, reopened when going backwards;
 * raw IDX and NPY files with pread() at offsets; image files decoded one by one). */
#ifndef DFQ_DATA_H
#define DFQ_DATA_H

#include <stdbool.h>
#include <stdint.h>

#include "dfq_error.h"
#include "dfq_tensor.h"

#define DFQ_DATA_MAX_CHANNELS 4       /* mean/std entries */
#define DFQ_DATA_DEFAULT_CALIB 1000   /* calibration samples when none is asked for */
#define DFQ_FMNIST_DIR "/usr/share/datasets/fashion-mnist"
#define DFQ_FMNIST_MEAN 0.2860f
#define DFQ_FMNIST_STD 0.3530f

typedef enum dfq_data_kind {
	DFQ_DATA_FMNIST = 0,
	DFQ_DATA_IDX,
	DFQ_DATA_NPY,
	DFQ_DATA_IMAGES,
} dfq_data_kind;

typedef enum dfq_data_split {
	DFQ_SPLIT_EVAL = 0,
	DFQ_SPLIT_CALIB,
} dfq_data_split;

struct dfq_data_opts {
	int64_t n_eval;  /* evaluation samples; -1 = all that the calibration slice leaves */
	int64_t n_calib; /* calibration samples; -1 = the default (see dfq_data_open()) */
	int nmean, nstd; /* 0 = the kind's default; 1 = every channel; else one per channel */
	float mean[DFQ_DATA_MAX_CHANNELS];
	float std[DFQ_DATA_MAX_CHANNELS];
};

/* n_eval = n_calib = -1, default normalisation. */
void dfq_data_opts_default(struct dfq_data_opts *o);

/* What was opened.  Strings and arrays are owned by the data set. */
struct dfq_data_info {
	dfq_data_kind kind;
	const char *spec;          /* as given to dfq_data_open() */
	const char *kind_name;     /* "fmnist", "idx", "npy", "images" */
	const char *eval_source;   /* the file or folder evaluation samples come from */
	const char *calib_source;  /* the same, for calibration (NULL when n_calib is 0) */
	const char *eval_set;      /* "test" for fmnist, else "all" */
	const char *calib_set;     /* "train" for fmnist, else "all" */
	int64_t eval_total;        /* samples in the evaluation set */
	int64_t calib_total;       /* samples in the set calibration comes from */
	int64_t eval_first, eval_n;   /* the evaluation slice of the evaluation set */
	int64_t calib_first, calib_n; /* the calibration slice of its set */
	int channels;              /* sample shape [C, H, W]; 0 for image folders until */
	int64_t height, width;     /* dfq_data_fit() sets them from the model */
	bool from_model;           /* image folder: C, H, W are the model's (resized) */
	const char *element;       /* stored type: "uint8", "float32", "float64", "PNG/JPEG" */
	bool eight_bit;            /* raw values are 0..255 and divided by 255 */
	int nclasses;              /* max label + 1, or the number of class folders */
	const char *const *class_names; /* nclasses names, or NULL */
	int nnorm;                 /* entries in mean/std: 1 (all channels) or one per channel */
	float mean[DFQ_DATA_MAX_CHANNELS];
	float std[DFQ_DATA_MAX_CHANNELS];
};

struct dfq_data;

/* Open spec (see above) with the slices and normalisation of o (NULL for
 * the defaults).  Default slices: fmnist evaluates on the whole test set and
 * calibrates on the first DFQ_DATA_DEFAULT_CALIB training samples; the other
 * kinds calibrate on the last min(DFQ_DATA_DEFAULT_CALIB, N/10) samples (or,
 * with n_eval given, on at most that many of the samples it leaves) and
 * evaluate on the rest.  Checks headers, sizes and labels now; image data is
 * read later, in batches.  Caller owns *out; free with dfq_data_free(). */
dfq_status dfq_data_open(const char *spec, const struct dfq_data_opts *o, struct dfq_data **out,
			 struct dfq_error *err);
void dfq_data_free(struct dfq_data *d);

/* Borrowed from d; valid until the next dfq_data_fit() or dfq_data_free(). */
const struct dfq_data_info *dfq_data_get_info(const struct dfq_data *d);

/* Fit the data to a model input named name of static shape input ([N, C, H, W],
 * N may be unknown).  Image folders take C (1 or 3), H and W from it; the other
 * kinds check that their sample shape is input's [C, H, W] (DFQ_ERR_SHAPE
 * naming both shapes otherwise).  Also checks the mean/std count against C.
 * May be called again for another model. */
dfq_status dfq_data_fit(struct dfq_data *d, const char *name, const struct dfq_shape *input,
			struct dfq_error *err);

/* Samples in a slice. */
int64_t dfq_data_count(const struct dfq_data *d, dfq_data_split split);
/* Floats in one sample (C * H * W); 0 while an image folder is not fitted. */
int64_t dfq_data_sample_numel(const struct dfq_data *d);

/* Samples [first, first + n) of a slice: n * C * H * W normalised floats into x
 * and n labels into labels (labels may be NULL).  DFQ_ERR_ARG when the range is
 * outside the slice. */
dfq_status dfq_data_read(struct dfq_data *d, dfq_data_split split, int64_t first, int64_t n,
			 float *x, int64_t *labels, struct dfq_error *err);
/* The same into new tensors: *x [n, C, H, W] float32 and *labels [n] int64
 * (labels may be NULL).  The caller owns both. */
dfq_status dfq_data_batch(struct dfq_data *d, dfq_data_split split, int64_t first, int64_t n,
			  struct dfq_tensor **x, struct dfq_tensor **labels, struct dfq_error *err);

/* Resize an image src [c, sh, sw] so that it covers dh x dw keeping its aspect
 * ratio (the shorter side fits), then take the centre dh x dw into dst
 * [c, dh, dw].  Enlarging is bilinear (pixel centres at +0.5, edges clamped);
 * shrinking averages the source area under each output pixel (box filter), so
 * no source pixel is skipped.  Fails only when out of memory. */
dfq_status dfq_image_resize_crop(const float *src, int c, int sh, int sw, float *dst, int dh,
				 int dw, struct dfq_error *err);

#endif
