/* test_tensor.c - tensor allocation, copies, reshapes and shape formatting. */
#include "dfq_test.h"

#include <stdint.h>
#include <string.h>

#include "dfq/dfq_tensor.h"

static void test_new_zeroed(void **state)
{
	struct dfq_error err = {0};
	int64_t dims[4] = {2, 3, 4, 5};
	struct dfq_tensor *t = dfq_tensor_new(DFQ_DTYPE_F32, 4, dims, &err);
	assert_non_null(t);
	assert_int_equal(t->numel, 120);
	assert_int_equal(t->ndim, 4);
	assert_int_equal(((uintptr_t)t->data) % 64, 0);
	for (int64_t i = 0; i < t->numel; i++)
		assert_true(dfq_tensor_f32(t)[i] == 0.0f);
	struct dfq_shape s;
	dfq_tensor_shape(t, &s);
	assert_int_equal(s.ndim, 4);
	assert_int_equal(s.dims[3], 5);
	assert_int_equal(s.dtype, DFQ_DTYPE_F32);
	dfq_tensor_free(t);
	dfq_tensor_free(NULL);
}

static void test_scalar_and_zero_dim(void **state)
{
	struct dfq_error err = {0};
	struct dfq_tensor *s = dfq_tensor_new(DFQ_DTYPE_I64, 0, NULL, &err);
	assert_non_null(s);
	assert_int_equal(s->numel, 1);
	dfq_tensor_i64(s)[0] = 42;
	int64_t zd[3] = {4, 0, 3};
	struct dfq_tensor *z = dfq_tensor_new(DFQ_DTYPE_F32, 3, zd, &err);
	assert_non_null(z);
	assert_int_equal(z->numel, 0);
	struct dfq_tensor *zc = dfq_tensor_clone(z, &err);
	assert_non_null(zc);
	assert_true(dfq_tensor_same_shape(z, zc));
	struct dfq_tensor *sc = dfq_tensor_clone(s, &err);
	assert_int_equal(dfq_tensor_i64(sc)[0], 42);
	dfq_tensor_free(s);
	dfq_tensor_free(sc);
	dfq_tensor_free(z);
	dfq_tensor_free(zc);
}

static void test_bad_dims(void **state)
{
	struct dfq_error err = {0};
	int64_t neg[2] = {3, -1};
	assert_null(dfq_tensor_new(DFQ_DTYPE_F32, 2, neg, &err));
	assert_int_equal(err.status, DFQ_ERR_SHAPE);
	int64_t huge[3] = {INT64_MAX / 2, 4, 4};
	bool overflow = false;
	assert_int_equal(dfq_dims_numel(3, huge, &overflow), -1);
	assert_true(overflow);
	assert_null(dfq_tensor_new(DFQ_DTYPE_F32, 3, huge, &err));
	assert_non_null(strstr(err.msg, "overflow"));
	int64_t big[2] = {INT64_MAX / 8, 4}; /* no overflow, but too large */
	assert_null(dfq_tensor_new(DFQ_DTYPE_I64, 2, big, &err));
	assert_int_equal(err.status, DFQ_ERR_NOMEM);
	int64_t d[DFQ_MAX_DIMS + 1] = {1};
	assert_null(dfq_tensor_new(DFQ_DTYPE_F32, DFQ_MAX_DIMS + 1, d, &err));
	assert_int_equal(err.status, DFQ_ERR_UNSUPPORTED);
	assert_null(dfq_tensor_new((dfq_dtype)7, 1, d, &err));
	assert_int_equal(err.status, DFQ_ERR_ARG);
	/* err may be NULL */
	assert_null(dfq_tensor_new(DFQ_DTYPE_F32, 2, neg, NULL));
}

static void test_clone_is_deep(void **state)
{
	struct dfq_error err = {0};
	int64_t dims[2] = {2, 3};
	struct dfq_tensor *t = dfq_tensor_new(DFQ_DTYPE_F32, 2, dims, &err);
	for (int i = 0; i < 6; i++)
		dfq_tensor_f32(t)[i] = (float)i + 0.5f;
	struct dfq_tensor *c = dfq_tensor_clone(t, &err);
	assert_non_null(c);
	assert_ptr_not_equal(c->data, t->data);
	dfq_tensor_f32(t)[0] = 100.0f;
	assert_true(dfq_tensor_f32(c)[0] == 0.5f);
	assert_true(dfq_tensor_f32(c)[5] == 5.5f);
	assert_true(dfq_tensor_same_shape(t, c));
	dfq_tensor_free(t);
	dfq_tensor_free(c);
}

static void test_reshape(void **state)
{
	struct dfq_error err = {0};
	int64_t dims[2] = {4, 6};
	struct dfq_tensor *t = dfq_tensor_new(DFQ_DTYPE_F32, 2, dims, &err);
	dfq_tensor_f32(t)[23] = 7.0f;
	int64_t nd[3] = {2, 3, 4};
	assert_int_equal(dfq_tensor_reshape(t, 3, nd, &err), DFQ_OK);
	assert_int_equal(t->ndim, 3);
	assert_int_equal(t->dims[2], 4);
	assert_true(dfq_tensor_f32(t)[23] == 7.0f);
	int64_t bad[2] = {5, 5};
	assert_int_equal(dfq_tensor_reshape(t, 2, bad, &err), DFQ_ERR_SHAPE);
	assert_int_equal(t->ndim, 3); /* unchanged on failure */
	int64_t neg[2] = {-4, -6};
	assert_int_equal(dfq_tensor_reshape(t, 2, neg, &err), DFQ_ERR_SHAPE);
	assert_int_equal(dfq_tensor_reshape(t, DFQ_MAX_DIMS + 1, nd, &err), DFQ_ERR_SHAPE);
	int64_t f[1] = {24};
	assert_int_equal(dfq_tensor_reshape(t, 1, f, &err), DFQ_OK);
	dfq_tensor_free(t);
}

static void test_shape_str(void **state)
{
	char buf[64];
	struct dfq_shape s = {.dtype = DFQ_DTYPE_F32, .ndim = 4, .dims = {-1, 1, 28, 28}};
	assert_string_equal(dfq_shape_str(&s, buf, sizeof buf), "[?, 1, 28, 28]");
	s.ndim = 0;
	assert_string_equal(dfq_shape_str(&s, buf, sizeof buf), "[]");
	s.ndim = -1;
	assert_string_equal(dfq_shape_str(&s, buf, sizeof buf), "[?]");
	s.ndim = 2;
	s.dims[0] = 1000000;
	s.dims[1] = 3;
	/* a short buffer truncates but stays terminated */
	char small[6];
	dfq_shape_str(&s, small, sizeof small);
	assert_int_equal(strlen(small), 5);
	assert_memory_equal(small, "[1000", 5);
}

static void test_dtype_names(void **state)
{
	assert_string_equal(dfq_dtype_name(DFQ_DTYPE_F32), "float32");
	assert_string_equal(dfq_dtype_name(DFQ_DTYPE_I64), "int64");
	assert_int_equal(dfq_dtype_size(DFQ_DTYPE_F32), 4);
	assert_int_equal(dfq_dtype_size(DFQ_DTYPE_I64), 8);
	struct dfq_error err;
	assert_int_equal(dfq_error_set(&err, DFQ_ERR_IO, "x %d", 1), DFQ_ERR_IO);
	dfq_error_prefix(&err, "ctx");
	assert_string_equal(err.msg, "ctx: x 1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_new_zeroed),  cmocka_unit_test(test_scalar_and_zero_dim),
	    cmocka_unit_test(test_bad_dims),    cmocka_unit_test(test_clone_is_deep),
	    cmocka_unit_test(test_reshape),     cmocka_unit_test(test_shape_str),
	    cmocka_unit_test(test_dtype_names),
	};
	DFQ_RUN_TESTS(tests);
}
