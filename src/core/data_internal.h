/* data_internal.h - the sample sources behind dfq_data: IDX, NPY and image folders. */
#ifndef DFQ_DATA_INTERNAL_H
#define DFQ_DATA_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "dfq/dfq_error.h"

struct data_source;

struct data_source_ops {
	/* Samples [first, first + n) (already range-checked) as raw floats
	 * (0..255 for 8-bit data), c * h * w per sample, into x. */
	dfq_status (*read)(struct data_source *src, int64_t first, int64_t n, float *x,
			   struct dfq_error *err);
	/* Free the source and everything it owns. */
	void (*free)(struct data_source *src);
};

/* One set of labelled samples.  Each backend embeds this as its first member. */
struct data_source {
	const struct data_source_ops *ops;
	char *name;             /* owned: the file or folder, for messages */
	int64_t count;          /* samples */
	int c;                  /* sample shape; an image folder's is the target */
	int64_t h, w;           /* size, 0 until set by data_images_set_target() */
	const char *element;    /* static: "uint8", "float32", ... */
	bool eight_bit;         /* raw values are 0..255 */
	int64_t *labels;        /* owned, count entries, each in [0, nclasses) */
	int nclasses;
	char **class_names;     /* owned (each and the array), nclasses, or NULL */
};

/* Free src (NULL is fine). */
void data_source_free(struct data_source *src);
/* Check labels are non-negative and set src->nclasses to max + 1.  what names
 * the label file in messages. */
dfq_status data_labels_check(struct data_source *src, const char *what, struct dfq_error *err);

/* data_idx.c: an IDX image file and an IDX label file (each gzip or raw). */
dfq_status data_idx_open(const char *images, const char *labels, struct data_source **out,
			 struct dfq_error *err);
/* data_npy.c: images X.npy and labels Y.npy. */
dfq_status data_npy_open(const char *x, const char *y, struct data_source **out,
			 struct dfq_error *err);
/* data_images.c: a folder of class sub-folders. */
dfq_status data_images_open(const char *dir, struct data_source **out, struct dfq_error *err);
/* Set the size images are converted to (c is 1 or 3). */
dfq_status data_images_set_target(struct data_source *src, int c, int64_t h, int64_t w,
				  struct dfq_error *err);

#endif
