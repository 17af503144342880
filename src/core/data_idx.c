/* data_idx.c - IDX files (MNIST's format), gzip-compressed or raw, read sample by sample. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "data_internal.h"
#include "dfq/dfq_tensor.h"

#define IDX_UBYTE 0x08
#define IDX_MAX_DIMS 4

/* One open IDX file.  Raw files are read with pread() at offsets; gzip files
 * can only be read forwards, so the stream position is tracked and the
 * stream rewound when a read goes backwards. */
struct idx_file {
	const char *path;   /* borrowed from the owner */
	int fd;             /* raw files, else -1 */
	gzFile gz;          /* gzip files, else NULL */
	int ndim;
	int64_t dims[IDX_MAX_DIMS];
	int64_t hdr;        /* header bytes before item 0 */
	int64_t item;       /* bytes per item (product of dims[1..]) */
	int64_t zoff;       /* gzip: uncompressed offset the stream is at */
};

struct idx_source {
	struct data_source base;
	struct idx_file img;
	unsigned char *scratch; /* owned, one read's bytes */
	size_t scratch_len;
};

static void idx_close(struct idx_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	if (f->gz)
		gzclose(f->gz);
	f->fd = -1;
	f->gz = NULL;
}

static uint32_t load_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* pread() exactly len bytes at off; *got says how many arrived before EOF. */
static dfq_status pread_full(struct idx_file *f, void *buf, size_t len, off_t off, size_t *got,
			     struct dfq_error *err)
{
	unsigned char *p = buf;
	*got = 0;
	while (*got < len) {
		ssize_t k = pread(f->fd, p + *got, len - *got, off + (off_t)*got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return dfq_error_set(err, DFQ_ERR_IO, "cannot read %s: %s", f->path,
					     strerror(errno));
		if (k == 0)
			break;
		*got += (size_t)k;
	}
	return DFQ_OK;
}

/* gzread() up to len bytes (any size); *got says how many arrived before EOF. */
static dfq_status gzread_full(struct idx_file *f, void *buf, size_t len, size_t *got,
			      struct dfq_error *err)
{
	unsigned char *p = buf;
	*got = 0;
	while (*got < len) {
		size_t want = len - *got;
		unsigned chunk = want > (1u << 30) ? (1u << 30) : (unsigned)want;
		int k = gzread(f->gz, p + *got, chunk);
		if (k < 0) {
			int code;
			const char *msg = gzerror(f->gz, &code);
			/* zlib says "PATH: what"; we name the file ourselves. */
			size_t plen = strlen(f->path);
			if (strncmp(msg, f->path, plen) == 0 && strncmp(msg + plen, ": ", 2) == 0)
				msg += plen + 2;
			return dfq_error_set(err, code == Z_ERRNO ? DFQ_ERR_IO : DFQ_ERR_PARSE,
					     "%s: corrupt gzip data (%s)", f->path,
					     code == Z_ERRNO ? strerror(errno) : msg);
		}
		if (k == 0)
			break;
		*got += (size_t)k;
		f->zoff += k;
	}
	return DFQ_OK;
}

/* Up to len bytes at uncompressed/raw offset off; *got says how many there
 * were before the end of the file. */
static dfq_status idx_read_some(struct idx_file *f, int64_t off, void *buf, size_t len,
				size_t *got, struct dfq_error *err)
{
	if (f->gz) {
		if (off < f->zoff) {
			/* gzip cannot go back: start again from the beginning. */
			if (gzrewind(f->gz) != 0)
				return dfq_error_set(err, DFQ_ERR_IO, "cannot rewind %s", f->path);
			f->zoff = 0;
		}
		if (off > f->zoff) {
			/* zlib skips forwards by decompressing, lazily at the next read. */
			if (gzseek(f->gz, (z_off_t)off, SEEK_SET) < 0)
				return dfq_error_set(err, DFQ_ERR_IO, "cannot seek in %s", f->path);
			f->zoff = off;
		}
		return gzread_full(f, buf, len, got, err);
	}
	return pread_full(f, buf, len, (off_t)off, got, err);
}

/* Exactly len bytes at off, or a parse error saying the file is truncated. */
static dfq_status idx_read_at(struct idx_file *f, int64_t off, void *buf, size_t len,
			      struct dfq_error *err)
{
	size_t got = 0;
	dfq_status st = idx_read_some(f, off, buf, len, &got, err);
	if (st == DFQ_OK && got < len)
		st = dfq_error_set(err, DFQ_ERR_PARSE, "%s: truncated: the data ends %lld bytes "
				   "early", f->path, (long long)(len - got));
	return st;
}

/* Open path (gzip or raw, decided by the gzip magic) and read the header. */
static dfq_status idx_open(struct idx_file *f, const char *path, struct dfq_error *err)
{
	memset(f, 0, sizeof *f);
	f->path = path;
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0)
		return dfq_error_set(err, DFQ_ERR_IO, "cannot open %s: %s", path, strerror(errno));
	unsigned char m[2];
	size_t got = 0;
	dfq_status st = pread_full(f, m, 2, 0, &got, err);
	if (st)
		return st;
	if (got == 2 && m[0] == 0x1f && m[1] == 0x8b) {
		close(f->fd);
		f->fd = -1;
		f->gz = gzopen(path, "rb");
		if (!f->gz)
			return dfq_error_set(err, DFQ_ERR_IO, "cannot open %s: %s", path,
					     errno ? strerror(errno) : "out of memory");
		gzbuffer(f->gz, 1u << 17);
	}
	unsigned char h[4 + 4 * IDX_MAX_DIMS];
	st = idx_read_some(f, 0, h, 4, &got, err);
	if (st)
		return st;
	if (got < 4)
		return dfq_error_set(err, DFQ_ERR_PARSE, "%s: not an IDX file (too short)", path);
	if (h[0] != 0 || h[1] != 0 || h[3] < 1 || h[3] > IDX_MAX_DIMS)
		return dfq_error_set(err, DFQ_ERR_PARSE, "%s: not an IDX file (bad magic)", path);
	if (h[2] != IDX_UBYTE)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
				     "%s: IDX element type 0x%02x is not supported (only unsigned "
				     "bytes, 0x08)", path, h[2]);
	f->ndim = h[3];
	f->hdr = 4 + 4 * f->ndim;
	st = idx_read_some(f, 4, h + 4, (size_t)(4 * f->ndim), &got, err);
	if (st)
		return st;
	if (got < (size_t)(4 * f->ndim))
		return dfq_error_set(err, DFQ_ERR_PARSE, "%s: truncated IDX header", path);
	for (int i = 0; i < f->ndim; i++)
		f->dims[i] = load_be32(h + 4 + 4 * i);
	bool overflow = false;
	f->item = dfq_dims_numel(f->ndim - 1, f->dims + 1, &overflow);
	if (overflow || (f->dims[0] && f->item > INT64_MAX / f->dims[0]))
		return dfq_error_set(err, DFQ_ERR_PARSE, "%s: IDX dimensions are too large", path);
	return DFQ_OK;
}

/* Raw files: the size must be exactly what the header promises. */
static dfq_status idx_check_size(struct idx_file *f, struct dfq_error *err)
{
	if (f->gz)
		return DFQ_OK; /* known only after decompressing; reads find a short file */
	struct stat sb;
	if (fstat(f->fd, &sb) != 0)
		return dfq_error_set(err, DFQ_ERR_IO, "cannot read %s: %s", f->path,
				     strerror(errno));
	int64_t want = f->hdr + f->dims[0] * f->item;
	if ((int64_t)sb.st_size < want)
		return dfq_error_set(err, DFQ_ERR_PARSE, "%s: truncated: the header promises %lld "
				     "bytes, the file has %lld", f->path, (long long)want,
				     (long long)sb.st_size);
	if ((int64_t)sb.st_size > want)
		return dfq_error_set(err, DFQ_ERR_PARSE,
				     "%s: the file is longer than its IDX header says (%lld bytes, "
				     "not %lld)", f->path, (long long)sb.st_size, (long long)want);
	return DFQ_OK;
}

/* Read the whole label file (one byte a sample) into src->labels. */
static dfq_status read_labels(struct data_source *src, const char *path, struct dfq_error *err)
{
	struct idx_file f;
	dfq_status st = idx_open(&f, path, err);
	if (st == DFQ_OK && f.ndim != 1)
		st = dfq_error_set(err, DFQ_ERR_SHAPE, "%s: a label file must be 1-dimensional, "
				   "not %d-dimensional", path, f.ndim);
	if (st == DFQ_OK)
		st = idx_check_size(&f, err);
	if (st == DFQ_OK && f.dims[0] != src->count)
		st = dfq_error_set(err, DFQ_ERR_SHAPE, "%s holds %lld images but %s holds %lld "
				   "labels", src->name, (long long)src->count, path,
				   (long long)f.dims[0]);
	unsigned char *raw = NULL;
	if (st == DFQ_OK) {
		raw = malloc((size_t)src->count + 1);
		src->labels = malloc(sizeof *src->labels * (size_t)(src->count + 1));
		if (!raw || !src->labels)
			st = dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory reading %s", path);
	}
	if (st == DFQ_OK)
		st = idx_read_at(&f, f.hdr, raw, (size_t)src->count, err);
	if (st == DFQ_OK && f.gz) {
		unsigned char extra;
		size_t got = 0;
		st = gzread_full(&f, &extra, 1, &got, err);
		if (st == DFQ_OK && got)
			st = dfq_error_set(err, DFQ_ERR_PARSE,
					   "%s: the file is longer than its IDX header says", path);
	}
	for (int64_t i = 0; st == DFQ_OK && i < src->count; i++)
		src->labels[i] = raw[i];
	free(raw);
	idx_close(&f);
	return st == DFQ_OK ? data_labels_check(src, path, err) : st;
}

static dfq_status idx_source_read(struct data_source *base, int64_t first, int64_t n, float *x,
				  struct dfq_error *err)
{
	struct idx_source *s = (struct idx_source *)base;
	size_t len = (size_t)(n * s->img.item);
	if (len > s->scratch_len) {
		unsigned char *p = realloc(s->scratch, len);
		if (!p)
			return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory reading %s",
					     base->name);
		s->scratch = p;
		s->scratch_len = len;
	}
	dfq_status st = idx_read_at(&s->img, s->img.hdr + first * s->img.item, s->scratch, len,
				    err);
	if (st)
		return st;
	for (size_t i = 0; i < len; i++)
		x[i] = s->scratch[i];
	return DFQ_OK;
}

static void idx_source_free(struct data_source *base)
{
	struct idx_source *s = (struct idx_source *)base;
	idx_close(&s->img);
	free(s->scratch);
	free(base->name);
	free(base->labels);
	free(s);
}

static const struct data_source_ops idx_ops = {idx_source_read, idx_source_free};

/* Image items: [N, H, W] is one channel, [N, C, H, W] is C channels. */
static dfq_status set_sample_shape(struct idx_source *s, struct dfq_error *err)
{
	struct idx_file *f = &s->img;
	if (f->ndim != 3 && f->ndim != 4)
		return dfq_error_set(err, DFQ_ERR_SHAPE, "%s: an image file must be [N, H, W] or "
				     "[N, C, H, W], not %d-dimensional", f->path, f->ndim);
	s->base.count = f->dims[0];
	s->base.c = f->ndim == 4 ? (int)f->dims[1] : 1;
	s->base.h = f->dims[f->ndim - 2];
	s->base.w = f->dims[f->ndim - 1];
	if (f->ndim == 4 && f->dims[1] > 65536)
		return dfq_error_set(err, DFQ_ERR_SHAPE, "%s: %lld channels is too many", f->path,
				     (long long)f->dims[1]);
	if (s->base.count == 0 || f->item == 0)
		return dfq_error_set(err, DFQ_ERR_SHAPE, "%s holds no image data", f->path);
	return DFQ_OK;
}

dfq_status data_idx_open(const char *images, const char *labels, struct data_source **out,
			 struct dfq_error *err)
{
	*out = NULL;
	struct idx_source *s = calloc(1, sizeof *s);
	if (!s || !(s->base.name = strdup(images))) {
		free(s);
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory opening %s", images);
	}
	s->base.ops = &idx_ops;
	s->base.element = "uint8";
	s->base.eight_bit = true;
	s->img.fd = -1;
	dfq_status st = idx_open(&s->img, s->base.name, err);
	if (st == DFQ_OK)
		st = set_sample_shape(s, err);
	if (st == DFQ_OK)
		st = idx_check_size(&s->img, err);
	if (st == DFQ_OK)
		st = read_labels(&s->base, labels, err);
	if (st != DFQ_OK) {
		idx_source_free(&s->base);
		return st;
	}
	*out = &s->base;
	return DFQ_OK;
}
