/* npy.c - reading and writing NumPy .npy files (format 1.0/2.0/3.0, C order). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dfq/dfq_npy.h"

#define NPY_MAGIC     "\x93NUMPY"
#define NPY_MAGIC_LEN 6
/* No sane header is this big; refusing early keeps a lying length field from
 * making us allocate gigabytes. */
#define NPY_HEADER_MAX (1u << 20)

/* Element kinds we can read; each maps to one little-endian layout. */
enum npy_kind {
	NPY_F4,
	NPY_F8,
	NPY_I8,
	NPY_I4,
	NPY_I2,
	NPY_I1,
	NPY_U1,
	NPY_U2,
	NPY_U4,
	NPY_B1,
};

struct npy_header {
	enum npy_kind kind;
	size_t esize;
	int ndim;
	int64_t dims[DFQ_MAX_DIMS];
	bool have_descr, have_order, have_shape;
};

/* --- header dict parsing ------------------------------------------------- */

/* A cursor over the header text (NUL-terminated copy of the header). */
struct npy_lex {
	const char *p;
	const char *path;
};

static void lex_skip_ws(struct npy_lex *lx)
{
	while (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\n' || *lx->p == '\r')
		lx->p++;
}

static bool lex_accept(struct npy_lex *lx, char c)
{
	lex_skip_ws(lx);
	if (*lx->p != c)
		return false;
	lx->p++;
	return true;
}

/* Read a Python string literal ('...' or "...") into buf.  Escapes never
 * occur in the strings numpy writes, so a backslash is refused. */
static dfq_status lex_string(struct npy_lex *lx, char *buf, size_t len, struct dfq_error *err)
{
	lex_skip_ws(lx);
	char q = *lx->p;
	if (q != '\'' && q != '"')
		return dfq_error_set(err, DFQ_ERR_PARSE, "%s: .npy header: expected a string",
				     lx->path);
	lx->p++;
	size_t n = 0;
	while (*lx->p && *lx->p != q) {
		if (*lx->p == '\\' || n + 1 >= len)
			return dfq_error_set(err, DFQ_ERR_PARSE,
					     "%s: .npy header: unexpected string", lx->path);
		buf[n++] = *lx->p++;
	}
	if (*lx->p != q)
		return dfq_error_set(err, DFQ_ERR_PARSE,
				     "%s: .npy header: unterminated string", lx->path);
	lx->p++;
	buf[n] = '\0';
	return DFQ_OK;
}

/* Map a numpy dtype string to an element kind.  '|' and '<' are fine; '='
 * (native) is little-endian on every host we build for; '>' is refused
 * except for one-byte types, where byte order does not exist. */
static dfq_status parse_descr(const char *d, struct npy_header *h, const char *path,
			      struct dfq_error *err)
{
	static const struct {
		const char *code;
		enum npy_kind kind;
		size_t esize;
	} kinds[] = {
		{"f4", NPY_F4, 4}, {"f8", NPY_F8, 8}, {"i8", NPY_I8, 8}, {"i4", NPY_I4, 4},
		{"i2", NPY_I2, 2}, {"i1", NPY_I1, 1}, {"u1", NPY_U1, 1}, {"u2", NPY_U2, 2},
		{"u4", NPY_U4, 4}, {"b1", NPY_B1, 1},
	};
	char order = d[0];
	const char *code = d;
	if (order == '<' || order == '>' || order == '|' || order == '=')
		code++;
	if (code[0] == 'O')
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
				     "%s: object arrays are not supported", path);
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		if (strcmp(code, kinds[i].code) != 0)
			continue;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
		if (order == '=' && kinds[i].esize > 1)
			order = '>';
#endif
		if (order == '>' && kinds[i].esize > 1)
			return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
					     "%s: big-endian data ('%s') is not supported; "
					     "save it little-endian", path, d);
		h->kind = kinds[i].kind;
		h->esize = kinds[i].esize;
		return DFQ_OK;
	}
	return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
			     "%s: element type '%s' is not supported (use float32, float64, "
			     "int8..int64, uint8..uint32 or bool)", path, d);
}

/* Parse "(2, 3)", "(5,)" or "()"; Python 2 files may suffix 'L'. */
static dfq_status parse_shape(struct npy_lex *lx, struct npy_header *h, struct dfq_error *err)
{
	if (!lex_accept(lx, '('))
		return dfq_error_set(err, DFQ_ERR_PARSE, "%s: .npy header: shape is not a tuple",
				     lx->path);
	h->ndim = 0;
	for (;;) {
		if (lex_accept(lx, ')'))
			return DFQ_OK;
		if (h->ndim >= DFQ_MAX_DIMS)
			return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
					     "%s: arrays of more than %d dimensions are not "
					     "supported", lx->path, DFQ_MAX_DIMS);
		lex_skip_ws(lx);
		if (*lx->p < '0' || *lx->p > '9')
			return dfq_error_set(err, DFQ_ERR_PARSE,
					     "%s: .npy header: bad dimension in shape", lx->path);
		char *end;
		errno = 0;
		long long v = strtoll(lx->p, &end, 10);
		if (errno == ERANGE)
			return dfq_error_set(err, DFQ_ERR_PARSE,
					     "%s: .npy header: dimension is too large", lx->path);
		lx->p = end;
		if (*lx->p == 'L' || *lx->p == 'l')
			lx->p++;
		h->dims[h->ndim++] = v;
		if (lex_accept(lx, ','))
			continue;
		if (lex_accept(lx, ')')) {
			/* (5) is just 5 in Python, not a tuple. */
			if (h->ndim == 1)
				return dfq_error_set(err, DFQ_ERR_PARSE,
						     "%s: .npy header: shape is not a tuple",
						     lx->path);
			return DFQ_OK;
		}
		return dfq_error_set(err, DFQ_ERR_PARSE, "%s: .npy header: malformed shape",
				     lx->path);
	}
}

static dfq_status parse_bool(struct npy_lex *lx, bool *out, struct dfq_error *err)
{
	lex_skip_ws(lx);
	if (strncmp(lx->p, "True", 4) == 0) {
		lx->p += 4;
		*out = true;
		return DFQ_OK;
	}
	if (strncmp(lx->p, "False", 5) == 0) {
		lx->p += 5;
		*out = false;
		return DFQ_OK;
	}
	return dfq_error_set(err, DFQ_ERR_PARSE,
			     "%s: .npy header: fortran_order is not True or False", lx->path);
}

static dfq_status parse_entry(struct npy_lex *lx, struct npy_header *h, struct dfq_error *err)
{
	char key[32], descr[32];
	dfq_status st = lex_string(lx, key, sizeof key, err);
	if (st)
		return st;
	if (!lex_accept(lx, ':'))
		return dfq_error_set(err, DFQ_ERR_PARSE, "%s: .npy header: expected ':' after '%s'",
				     lx->path, key);
	if (strcmp(key, "descr") == 0) {
		lex_skip_ws(lx);
		if (*lx->p == '[')
			return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
					     "%s: structured arrays are not supported", lx->path);
		st = lex_string(lx, descr, sizeof descr, err);
		if (st)
			return st;
		h->have_descr = true;
		return parse_descr(descr, h, lx->path, err);
	}
	if (strcmp(key, "fortran_order") == 0) {
		bool fortran = false;
		st = parse_bool(lx, &fortran, err);
		if (st)
			return st;
		if (fortran)
			return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
					     "%s: Fortran-order arrays are not supported; save "
					     "with np.ascontiguousarray()", lx->path);
		h->have_order = true;
		return DFQ_OK;
	}
	if (strcmp(key, "shape") == 0) {
		h->have_shape = true;
		return parse_shape(lx, h, err);
	}
	return dfq_error_set(err, DFQ_ERR_PARSE, "%s: .npy header: unexpected key '%s'", lx->path,
			     key);
}

/* The header is a Python dict literal with exactly descr, fortran_order and
 * shape, in any order, optionally with a trailing comma. */
static dfq_status parse_header(const char *text, const char *path, struct npy_header *h,
			       struct dfq_error *err)
{
	struct npy_lex lx = {text, path};
	memset(h, 0, sizeof *h);
	if (!lex_accept(&lx, '{'))
		return dfq_error_set(err, DFQ_ERR_PARSE, "%s: .npy header is not a dict", path);
	while (!lex_accept(&lx, '}')) {
		dfq_status st = parse_entry(&lx, h, err);
		if (st)
			return st;
		if (!lex_accept(&lx, ',')) {
			if (lex_accept(&lx, '}'))
				break;
			return dfq_error_set(err, DFQ_ERR_PARSE,
					     "%s: .npy header: expected ',' or '}'", path);
		}
	}
	lex_skip_ws(&lx);
	if (*lx.p != '\0')
		return dfq_error_set(err, DFQ_ERR_PARSE, "%s: .npy header: junk after the dict",
				     path);
	if (!h->have_descr || !h->have_order || !h->have_shape)
		return dfq_error_set(err, DFQ_ERR_PARSE,
				     "%s: .npy header lacks %s", path,
				     !h->have_descr ? "'descr'"
				     : !h->have_order ? "'fortran_order'" : "'shape'");
	return DFQ_OK;
}

/* --- reading ----------------------------------------------------------- */

static uint64_t load_le(const unsigned char *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Read the magic, version and header text.  *text is malloc'd (caller frees). */
static dfq_status read_preamble(FILE *f, const char *path, char **text, struct dfq_error *err)
{
	unsigned char pre[12];
	if (fread(pre, 1, 8, f) != 8 || memcmp(pre, NPY_MAGIC, NPY_MAGIC_LEN) != 0)
		return dfq_error_set(err, DFQ_ERR_PARSE, "%s: not a .npy file (bad magic)", path);
	int major = pre[6];
	size_t hlen;
	if (major == 1) {
		if (fread(pre + 8, 1, 2, f) != 2)
			return dfq_error_set(err, DFQ_ERR_PARSE, "%s: truncated .npy header", path);
		hlen = (size_t)load_le(pre + 8, 2);
	} else if (major == 2 || major == 3) {
		if (fread(pre + 8, 1, 4, f) != 4)
			return dfq_error_set(err, DFQ_ERR_PARSE, "%s: truncated .npy header", path);
		hlen = (size_t)load_le(pre + 8, 4);
	} else {
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED,
				     "%s: .npy format version %d.%d is not supported", path,
				     major, pre[7]);
	}
	if (hlen > NPY_HEADER_MAX)
		return dfq_error_set(err, DFQ_ERR_PARSE, "%s: .npy header length %zu is too large",
				     path, hlen);
	char *buf = malloc(hlen + 1);
	if (!buf)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory reading %s", path);
	if (fread(buf, 1, hlen, f) != hlen) {
		free(buf);
		return dfq_error_set(err, DFQ_ERR_PARSE, "%s: truncated .npy header", path);
	}
	buf[hlen] = '\0';
	if (strlen(buf) != hlen) {
		free(buf);
		return dfq_error_set(err, DFQ_ERR_PARSE, "%s: .npy header contains a NUL byte",
				     path);
	}
	*text = buf;
	return DFQ_OK;
}

/* Decode one little-endian element at p: integers (and bool) into *v with
 * true returned, floats into *d with false returned. */
static bool load_elem(const struct npy_header *h, const unsigned char *p, double *d, int64_t *v)
{
	uint64_t bits = load_le(p, h->esize);
	switch (h->kind) {
	case NPY_F4: {
		uint32_t b32 = (uint32_t)bits;
		float x;
		memcpy(&x, &b32, 4);
		*d = x;
		return false;
	}
	case NPY_F8:
		memcpy(d, &bits, 8);
		return false;
	case NPY_I8: *v = (int64_t)bits; break;
	case NPY_I4: *v = (int32_t)(uint32_t)bits; break;
	case NPY_I2: *v = (int16_t)(uint16_t)bits; break;
	case NPY_I1: *v = (int8_t)(uint8_t)bits; break;
	case NPY_U1:
	case NPY_U2:
	case NPY_U4: *v = (int64_t)bits; break;
	case NPY_B1: *v = bits != 0; break;
	}
	return true;
}

/* Convert n elements of raw data into f (float32) or q (int64), whichever is
 * not NULL.  Values pass through as the nearest representable number. */
static void convert_elems(const struct npy_header *h, const unsigned char *raw, int64_t n,
			  float *f, int64_t *q)
{
	for (int64_t i = 0; i < n; i++) {
		double d = 0;
		int64_t v = 0;
		bool is_int = load_elem(h, raw + (size_t)i * h->esize, &d, &v);
		if (f)
			f[i] = is_int ? (float)v : (float)d;
		else
			q[i] = v;
	}
}

/* Convert all of raw data into t (already allocated with the right dtype). */
static void convert(const struct npy_header *h, const unsigned char *raw, struct dfq_tensor *t)
{
	bool to_f32 = t->dtype == DFQ_DTYPE_F32;
	convert_elems(h, raw, t->numel, to_f32 ? dfq_tensor_f32(t) : NULL,
		      to_f32 ? NULL : dfq_tensor_i64(t));
}

static dfq_status read_body(FILE *f, const char *path, const struct npy_header *h,
			    bool as_float, struct dfq_tensor **out, struct dfq_error *err)
{
	for (int i = 0; i < h->ndim; i++)
		if (h->dims[i] < 0)
			return dfq_error_set(err, DFQ_ERR_PARSE, "%s: negative dimension in shape",
					     path);
	/* Check the promised size against the file before allocating, so a
	 * lying header cannot make us ask for terabytes. */
	bool overflow;
	int64_t numel = dfq_dims_numel(h->ndim, h->dims, &overflow);
	if (overflow || (uint64_t)numel > SIZE_MAX / 8)
		return dfq_error_set(err, DFQ_ERR_PARSE, "%s: shape is too large", path);
	struct stat sb;
	long pos = ftell(f);
	if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) && pos >= 0) {
		uint64_t have = (uint64_t)sb.st_size - (uint64_t)pos;
		uint64_t want = (uint64_t)numel * h->esize;
		if (have < want)
			return dfq_error_set(err, DFQ_ERR_PARSE,
					     "%s: truncated data: header promises %llu bytes, "
					     "file has %llu", path, (unsigned long long)want,
					     (unsigned long long)have);
	}
	bool floaty = h->kind == NPY_F4 || h->kind == NPY_F8;
	dfq_dtype dt = (floaty || as_float) ? DFQ_DTYPE_F32 : DFQ_DTYPE_I64;
	struct dfq_error terr;
	struct dfq_tensor *t = dfq_tensor_new(dt, h->ndim, h->dims, &terr);
	if (!t)
		return dfq_error_set(err, terr.status, "%s: %s", path, terr.msg);
	size_t bytes = (size_t)t->numel * h->esize;
	unsigned char *raw = malloc(bytes ? bytes : 1);
	if (!raw) {
		dfq_tensor_free(t);
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory reading %s", path);
	}
	size_t got = fread(raw, 1, bytes, f);
	dfq_status st = DFQ_OK;
	if (got != bytes)
		st = dfq_error_set(err, ferror(f) ? DFQ_ERR_IO : DFQ_ERR_PARSE,
				   "%s: truncated data: header promises %zu bytes, file has %zu",
				   path, bytes, got);
	else if (fgetc(f) != EOF)
		st = dfq_error_set(err, DFQ_ERR_PARSE,
				   "%s: data is longer than the header's shape says", path);
	if (st == DFQ_OK)
		convert(h, raw, t);
	free(raw);
	if (st) {
		dfq_tensor_free(t);
		return st;
	}
	*out = t;
	return DFQ_OK;
}

dfq_status dfq_npy_read(const char *path, bool as_float, struct dfq_tensor **out,
			struct dfq_error *err)
{
	*out = NULL;
	FILE *f = fopen(path, "rb");
	if (!f)
		return dfq_error_set(err, DFQ_ERR_IO, "cannot open %s: %s", path, strerror(errno));
	char *text = NULL;
	struct npy_header h;
	dfq_status st = read_preamble(f, path, &text, err);
	if (st == DFQ_OK)
		st = parse_header(text, path, &h, err);
	if (st == DFQ_OK)
		st = read_body(f, path, &h, as_float, out, err);
	free(text);
	fclose(f);
	return st;
}

/* --- streaming reads --------------------------------------------------- */

struct dfq_npy_reader {
	FILE *f;             /* owned; its descriptor is read with pread() */
	char *path;          /* owned, for messages */
	struct npy_header h;
	int64_t numel;
	off_t data_off;      /* where element 0 starts */
};

/* numpy's name for an element kind. */
static const char *kind_name(enum npy_kind k)
{
	static const char *const names[] = {
		[NPY_F4] = "float32", [NPY_F8] = "float64", [NPY_I8] = "int64",
		[NPY_I4] = "int32",   [NPY_I2] = "int16",   [NPY_I1] = "int8",
		[NPY_U1] = "uint8",   [NPY_U2] = "uint16",  [NPY_U4] = "uint32",
		[NPY_B1] = "bool",
	};
	return names[k];
}

/* The data must be exactly as long as the shape says, as dfq_npy_read()
 * demands: a short file is truncated, a long one is not what it claims. */
static dfq_status check_data_size(struct dfq_npy_reader *r, struct dfq_error *err)
{
	for (int i = 0; i < r->h.ndim; i++)
		if (r->h.dims[i] < 0)
			return dfq_error_set(err, DFQ_ERR_PARSE, "%s: negative dimension in shape",
					     r->path);
	bool overflow;
	r->numel = dfq_dims_numel(r->h.ndim, r->h.dims, &overflow);
	if (overflow || (uint64_t)r->numel > INT64_MAX / 8)
		return dfq_error_set(err, DFQ_ERR_PARSE, "%s: shape is too large", r->path);
	long pos = ftell(r->f);
	struct stat sb;
	if (pos < 0 || fstat(fileno(r->f), &sb) != 0)
		return dfq_error_set(err, DFQ_ERR_IO, "cannot read %s: %s", r->path,
				     strerror(errno));
	if (!S_ISREG(sb.st_mode))
		return dfq_error_set(err, DFQ_ERR_IO, "%s is not a regular file", r->path);
	r->data_off = (off_t)pos;
	uint64_t have = (uint64_t)sb.st_size - (uint64_t)pos;
	uint64_t want = (uint64_t)r->numel * r->h.esize;
	if (have < want)
		return dfq_error_set(err, DFQ_ERR_PARSE, "%s: truncated data: header promises "
				     "%llu bytes, file has %llu", r->path, (unsigned long long)want,
				     (unsigned long long)have);
	if (have > want)
		return dfq_error_set(err, DFQ_ERR_PARSE,
				     "%s: data is longer than the header's shape says", r->path);
	return DFQ_OK;
}

dfq_status dfq_npy_open(const char *path, struct dfq_npy_reader **out, struct dfq_error *err)
{
	*out = NULL;
	struct dfq_npy_reader *r = calloc(1, sizeof *r);
	if (!r || !(r->path = strdup(path))) {
		free(r);
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory opening %s", path);
	}
	r->f = fopen(path, "rb");
	if (!r->f) {
		dfq_status st = dfq_error_set(err, DFQ_ERR_IO, "cannot open %s: %s", path,
					      strerror(errno));
		dfq_npy_close(r);
		return st;
	}
	char *text = NULL;
	dfq_status st = read_preamble(r->f, path, &text, err);
	if (st == DFQ_OK)
		st = parse_header(text, path, &r->h, err);
	free(text);
	if (st == DFQ_OK)
		st = check_data_size(r, err);
	if (st != DFQ_OK) {
		dfq_npy_close(r);
		return st;
	}
	*out = r;
	return DFQ_OK;
}

void dfq_npy_close(struct dfq_npy_reader *r)
{
	if (!r)
		return;
	if (r->f)
		fclose(r->f);
	free(r->path);
	free(r);
}

void dfq_npy_reader_shape(const struct dfq_npy_reader *r, struct dfq_shape *out)
{
	bool floaty = r->h.kind == NPY_F4 || r->h.kind == NPY_F8;
	out->dtype = floaty ? DFQ_DTYPE_F32 : DFQ_DTYPE_I64;
	out->ndim = r->h.ndim;
	for (int i = 0; i < DFQ_MAX_DIMS; i++)
		out->dims[i] = i < r->h.ndim ? r->h.dims[i] : 0;
}

const char *dfq_npy_reader_dtype(const struct dfq_npy_reader *r)
{
	return kind_name(r->h.kind);
}

/* pread() exactly len bytes at off, retrying short reads. */
static dfq_status pread_all(struct dfq_npy_reader *r, void *buf, size_t len, off_t off,
			    struct dfq_error *err)
{
	unsigned char *p = buf;
	while (len > 0) {
		ssize_t got = pread(fileno(r->f), p, len, off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return dfq_error_set(err, DFQ_ERR_IO, "cannot read %s: %s", r->path,
					     strerror(errno));
		if (got == 0)
			return dfq_error_set(err, DFQ_ERR_PARSE, "%s: file shrank while being read",
					     r->path);
		p += got;
		len -= (size_t)got;
		off += got;
	}
	return DFQ_OK;
}

/* Read elements [first, first + n) in chunks through a bounded buffer, so a
 * large request does not need a second copy of its size. */
static dfq_status read_range(struct dfq_npy_reader *r, int64_t first, int64_t n, float *f,
			     int64_t *q, struct dfq_error *err)
{
	if (first < 0 || n < 0 || first > r->numel || n > r->numel - first)
		return dfq_error_set(err, DFQ_ERR_ARG,
				     "%s: elements [%lld, %lld) are outside the array's %lld",
				     r->path, (long long)first, (long long)(first + n),
				     (long long)r->numel);
	enum { CHUNK = 1 << 16 };
	unsigned char *buf = malloc(CHUNK * r->h.esize);
	if (!buf)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory reading %s", r->path);
	dfq_status st = DFQ_OK;
	for (int64_t done = 0; st == DFQ_OK && done < n; done += CHUNK) {
		int64_t k = n - done < CHUNK ? n - done : CHUNK;
		off_t off = r->data_off + (off_t)((first + done) * (int64_t)r->h.esize);
		st = pread_all(r, buf, (size_t)k * r->h.esize, off, err);
		if (st == DFQ_OK)
			convert_elems(&r->h, buf, k, f ? f + done : NULL, q ? q + done : NULL);
	}
	free(buf);
	return st;
}

dfq_status dfq_npy_read_f32(struct dfq_npy_reader *r, int64_t first, int64_t n, float *out,
			    struct dfq_error *err)
{
	return read_range(r, first, n, out, NULL, err);
}

dfq_status dfq_npy_read_i64(struct dfq_npy_reader *r, int64_t first, int64_t n, int64_t *out,
			    struct dfq_error *err)
{
	if (r->h.kind == NPY_F4 || r->h.kind == NPY_F8)
		return dfq_error_set(err, DFQ_ERR_UNSUPPORTED, "%s holds %s data, not integers",
				     r->path, kind_name(r->h.kind));
	return read_range(r, first, n, NULL, out, err);
}

/* --- writing ----------------------------------------------------------- */

/* Build the padded v1.0 header (magic..'\n') into buf; returns its length.
 * numpy aligns the data start to 64 bytes. */
static size_t build_header(const struct dfq_tensor *t, char *buf, size_t cap)
{
	char dict[64 + DFQ_MAX_DIMS * 24];
	size_t n = (size_t)snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, "
				    "'shape': (", t->dtype == DFQ_DTYPE_F32 ? "<f4" : "<i8");
	for (int i = 0; i < t->ndim; i++)
		n += (size_t)snprintf(dict + n, sizeof dict - n, "%s%lld", i ? ", " : "",
				      (long long)t->dims[i]);
	n += (size_t)snprintf(dict + n, sizeof dict - n, "%s), }", t->ndim == 1 ? "," : "");
	size_t total = 10 + n + 1;
	total = (total + 63) / 64 * 64;
	if (total > cap)
		return 0;
	size_t hlen = total - 10;
	memcpy(buf, NPY_MAGIC, NPY_MAGIC_LEN);
	buf[6] = 1;
	buf[7] = 0;
	buf[8] = (char)(hlen & 0xff);
	buf[9] = (char)(hlen >> 8);
	memcpy(buf + 10, dict, n);
	memset(buf + 10 + n, ' ', hlen - n - 1);
	buf[total - 1] = '\n';
	return total;
}

/* Write the little-endian element data. */
static bool write_data(FILE *f, const struct dfq_tensor *t)
{
	size_t esz = dfq_dtype_size(t->dtype);
	const unsigned char *p = t->data;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return fwrite(p, esz, (size_t)t->numel, f) == (size_t)t->numel;
#else
	for (int64_t i = 0; i < t->numel; i++)
		for (size_t b = 0; b < esz; b++)
			if (fputc(p[(size_t)i * esz + esz - 1 - b], f) == EOF)
				return false;
	return true;
#endif
}

dfq_status dfq_npy_write(const char *path, const struct dfq_tensor *t, struct dfq_error *err)
{
	if (t->dtype != DFQ_DTYPE_F32 && t->dtype != DFQ_DTYPE_I64)
		return dfq_error_set(err, DFQ_ERR_ARG, "cannot write a %s tensor as .npy",
				     dfq_dtype_name(t->dtype));
	char hdr[256 + DFQ_MAX_DIMS * 24];
	size_t hn = build_header(t, hdr, sizeof hdr);
	if (hn == 0)
		return dfq_error_set(err, DFQ_ERR_INTERNAL, ".npy header does not fit");

	/* The temporary sits next to path so rename() stays on one file system. */
	size_t plen = strlen(path);
	char *tmp = malloc(plen + 16);
	if (!tmp)
		return dfq_error_set(err, DFQ_ERR_NOMEM, "out of memory writing %s", path);
	snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
	int fd = mkstemp(tmp);
	if (fd < 0) {
		dfq_status st = dfq_error_set(err, DFQ_ERR_IO, "cannot write %s: %s", path,
					      strerror(errno));
		free(tmp);
		return st;
	}
	/* mkstemp makes the file 0600; give it the usual umask-based mode. */
	mode_t mask = umask(0);
	umask(mask);
	if (fchmod(fd, 0666 & ~mask) != 0) {
		/* Not fatal: the data is still right, only the mode is tighter. */
	}
	FILE *f = fdopen(fd, "wb");
	if (!f) {
		dfq_status st = dfq_error_set(err, DFQ_ERR_IO, "cannot write %s: %s", path,
					      strerror(errno));
		close(fd);
		unlink(tmp);
		free(tmp);
		return st;
	}
	bool ok = fwrite(hdr, 1, hn, f) == hn && write_data(f, t);
	ok = (fflush(f) == 0) && ok;
	int saved = errno;
	if (fclose(f) != 0 && ok) {
		ok = false;
		saved = errno;
	}
	if (ok && rename(tmp, path) != 0) {
		ok = false;
		saved = errno;
	}
	dfq_status st = DFQ_OK;
	if (!ok) {
		unlink(tmp);
		st = dfq_error_set(err, DFQ_ERR_IO, "cannot write %s: %s", path, strerror(saved));
	}
	free(tmp);
	return st;
}
