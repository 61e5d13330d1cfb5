/* test_tensor.c — creation, element access, views, copies and dtypes. */
#include "harness.h"

TEST(creation_fills) {
  EXPECT(fc_zeros(2, (int64_t[]){2, 2}, FC_FLOAT32, CPU), FC_FLOAT32, S(2, 2), 0, 0, 0, 0, 0);
  EXPECT(fc_ones(1, (int64_t[]){3}, FC_INT64, CPU), FC_INT64, S(3), 0, 1, 1, 1);
  EXPECT(fc_full(1, (int64_t[]){2}, 2.5, FC_FLOAT64, CPU), FC_FLOAT64, S(2), 0, 2.5, 2.5);
  EXPECT(fc_full(1, (int64_t[]){2}, 7, FC_BOOL, CPU), FC_BOOL, S(2), 0, 1, 1);
  EXPECT0(fc_scalar(-3, FC_INT32, CPU), FC_INT32, 0, -3);
  EXPECT(fc_eye(2, 3, FC_FLOAT32, CPU), FC_FLOAT32, S(2, 3), 0, 1, 0, 0, 0, 1, 0);
  fc_tensor *e = fc_empty(3, (int64_t[]){2, 0, 4}, FC_FLOAT32, CPU);
  CHECK(e && e->numel == 0 && e->stride[0] == 4);
  fc_release(e);
}

TEST(arange_and_linspace) {
  EXPECT(fc_arange(0, 5, 1, FC_INT64, CPU), FC_INT64, S(5), 0, 0, 1, 2, 3, 4);
  EXPECT(fc_arange(1, 2, 0.25, FC_FLOAT32, CPU), FC_FLOAT32, S(4), 0, 1, 1.25, 1.5, 1.75);
  EXPECT(fc_arange(5, 0, -2, FC_FLOAT64, CPU), FC_FLOAT64, S(3), 0, 5, 3, 1);
  EXPECT(fc_linspace(0, 1, 5, FC_FLOAT32, CPU), FC_FLOAT32, S(5), 1e-7, 0, 0.25, 0.5, 0.75, 1);
  EXPECT(fc_linspace(2, 2, 1, FC_FLOAT64, CPU), FC_FLOAT64, S(1), 0, 2);
  CHECK_ERR(fc_arange(0, 5, 0, FC_FLOAT32, CPU), "step must be non-zero");
  CHECK_ERR(fc_arange(0, 5, -1, FC_FLOAT32, CPU), "goes away from end");
  CHECK_ERR(fc_linspace(0, 1, -1, FC_FLOAT32, CPU), "non-negative");
}

TEST(creation_errors) {
  CHECK_ERR(fc_empty(2, (int64_t[]){2, -1}, FC_FLOAT32, CPU), "negative size");
  CHECK_ERR(fc_empty(9, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}, FC_FLOAT32, CPU), "at most 8");
  CHECK_ERR(fc_empty(1, (int64_t[]){2}, 42, CPU), "invalid dtype");
  if (!fc_cuda_is_available()) /* test_cuda_dispatch covers the device path */
    CHECK_ERR(fc_empty(1, (int64_t[]){2}, FC_FLOAT32, ((fc_device){FC_CUDA, 0})), "CUDA backend");
  CHECK_ERR(fc_empty(1, (int64_t[]){(int64_t)1 << 60}, FC_FLOAT32, CPU), "too large");
  int64_t huge8[8] = {1L << 31, 1L << 31, 1L << 31, 1L << 31, 1L << 31, 1L << 31, 1L << 31, 1L << 31};
  CHECK_ERR(fc_empty(8, huge8, FC_FLOAT32, CPU), "too large"); /* the product would overflow */
  fc_tensor *e = fc_empty(3, (int64_t[]){2, 0, 4}, FC_FLOAT32, CPU);
  CHECK(e && fc_is_contiguous(e));
  fc_release(e);
}

TEST(from_buffer_converts) {
  float f[3] = {1.5f, -2.0f, 3.25f};
  EXPECT(fc_from_buffer(f, FC_FLOAT32, 1, (int64_t[]){3}, FC_FLOAT64, CPU), FC_FLOAT64, S(3), 0,
         1.5, -2, 3.25);
  /* float -> int truncates toward zero, like C and PyTorch */
  EXPECT(fc_from_buffer(f, FC_FLOAT32, 1, (int64_t[]){3}, FC_INT32, CPU), FC_INT32, S(3), 0, 1, -2, 3);
  CHECK_ERR(fc_from_buffer(NULL, FC_FLOAT32, 1, (int64_t[]){3}, FC_FLOAT32, CPU), "data is NULL");
}

TEST(get_set_item) {
  fc_tensor *t = MK(FC_FLOAT32, S(2, 3), 1, 2, 3, 4, 5, 6);
  double v = 0;
  CHECK(fc_get(t, (int64_t[]){1, 2}, &v) == 0 && v == 6);
  CHECK(fc_set(t, (int64_t[]){0, 1}, 9) == 0);
  CHECK(fc_get(t, (int64_t[]){0, 1}, &v) == 0 && v == 9);
  CHECK_ERR(fc_get(t, (int64_t[]){2, 0}, &v), "index 2 out of range for dim 0 of size 2");
  CHECK_ERR(fc_item(t, &v), "has 6 elements");
  fc_tensor *s = fc_select(t, 1, 2);
  fc_tensor *one = fc_select(s, 0, 1);
  CHECK(fc_item(one, &v) == 0 && v == 6);
  fc_release(one);
  fc_release(s);
  fc_release(t);
}

TEST(views_share_storage) {
  fc_tensor *t = MK(FC_FLOAT32, S(2, 3), 0, 1, 2, 3, 4, 5);
  fc_tensor *v = fc_view(t, 2, (int64_t[]){3, -1});
  CHECK(v && v->shape[0] == 3 && v->shape[1] == 2 && v->storage == t->storage);
  fc_set(v, (int64_t[]){2, 1}, 50);
  EXPECT(fc_clone(t), FC_FLOAT32, S(2, 3), 0, 0, 1, 2, 3, 4, 50);
  fc_release(v);
  fc_tensor *tr = fc_transpose(t, 0, 1);
  CHECK(tr && !fc_is_contiguous(tr));
  EXPECT(fc_contiguous(tr), FC_FLOAT32, S(3, 2), 0, 0, 3, 1, 4, 2, 50);
  /* a transposed tensor cannot be viewed flat, but can be reshaped */
  CHECK_ERR(fc_view(tr, 1, (int64_t[]){6}), "not compatible with the strides");
  EXPECT(fc_reshape(tr, 1, (int64_t[]){6}), FC_FLOAT32, S(6), 0, 0, 3, 1, 4, 2, 50);
  EXPECT(fc_permute(t, 2, (int[]){1, 0}), FC_FLOAT32, S(3, 2), 0, 0, 3, 1, 4, 2, 50);
  fc_release(tr);
  fc_release(t);
}

TEST(view_errors) {
  fc_tensor *t = fc_zeros(2, (int64_t[]){2, 3}, FC_FLOAT32, CPU);
  CHECK_ERR(fc_view(t, 2, (int64_t[]){4, 2}), "shape [4,2] is invalid for input of shape [2,3]");
  CHECK_ERR(fc_view(t, 2, (int64_t[]){-1, -1}), "only one dimension can be -1");
  CHECK_ERR(fc_view(t, 2, (int64_t[]){-1, 4}), "invalid for input");
  CHECK_ERR(fc_permute(t, 2, (int[]){0, 0}), "repeated");
  CHECK_ERR(fc_permute(t, 1, (int[]){0}), "1 dims given for a 2-dim");
  CHECK_ERR(fc_transpose(t, 0, 2), "dim 2 out of range for a 2-dim tensor");
  CHECK_ERR(fc_expand(t, 2, (int64_t[]){4, 3}), "cannot expand shape [2,3] to [4,3]");
  CHECK_ERR(fc_narrow(t, 1, 2, 2), "out of bounds");
  CHECK_ERR(fc_select(t, 0, 2), "index 2 out of range");
  CHECK_ERR(fc_slice(t, 0, 0, 1, 0), "step must be positive");
  CHECK_ERR(fc_flatten(t, 1, 0), "comes after");
  CHECK_ERR(fc_unsqueeze(t, 4), "out of range");
  CHECK_ERR(fc_as_strided(t, 1, (int64_t[]){7}, (int64_t[]){1}, 0), "storage of 6 elements");
  fc_release(t);
}

TEST(squeeze_unsqueeze_expand_flatten) {
  fc_tensor *t = MK(FC_FLOAT32, S(1, 3, 1), 1, 2, 3);
  fc_tensor *s = fc_squeeze(t, FC_ALL_DIMS);
  CHECK(s && s->ndim == 1 && s->shape[0] == 3);
  fc_tensor *s0 = fc_squeeze(t, -1);
  CHECK(s0 && s0->ndim == 2 && s0->shape[0] == 1);
  fc_tensor *u = fc_unsqueeze(s, 0);
  CHECK(u && u->ndim == 2 && u->shape[0] == 1 && u->shape[1] == 3);
  fc_tensor *u2 = fc_unsqueeze(s, -1);
  CHECK(u2 && u2->ndim == 2 && u2->shape[1] == 1);
  fc_tensor *e = fc_expand(u2, 2, (int64_t[]){-1, 2});
  CHECK(e && e->stride[1] == 0);
  EXPECT(fc_contiguous(e), FC_FLOAT32, S(3, 2), 0, 1, 1, 2, 2, 3, 3);
  fc_tensor *f = fc_flatten(e, 0, -1);
  EXPECT(f, FC_FLOAT32, S(6), 0, 1, 1, 2, 2, 3, 3);
  fc_release(e);
  fc_release(u2);
  fc_release(u);
  fc_release(s0);
  fc_release(s);
  fc_release(t);
}

TEST(slice_narrow_select) {
  fc_tensor *t = fc_arange(0, 12, 1, FC_INT64, CPU);
  fc_tensor *m = fc_view(t, 2, (int64_t[]){3, 4});
  EXPECT(fc_slice(m, 1, 0, 4, 2), FC_INT64, S(3, 2), 0, 0, 2, 4, 6, 8, 10);
  EXPECT(fc_slice(m, 0, -2, 100, 1), FC_INT64, S(2, 4), 0, 4, 5, 6, 7, 8, 9, 10, 11);
  EXPECT(fc_narrow(m, 1, 1, 2), FC_INT64, S(3, 2), 0, 1, 2, 5, 6, 9, 10);
  EXPECT(fc_select(m, 1, -1), FC_INT64, S(3), 0, 3, 7, 11);
  fc_release(m);
  fc_release(t);
}

TEST(copy_broadcasts_and_converts) {
  fc_tensor *dst = fc_zeros(2, (int64_t[]){2, 3}, FC_FLOAT64, CPU);
  fc_tensor *row = MK(FC_INT32, S(3), 1, -2, 3);
  CHECK(fc_copy_(dst, row) == 0);
  EXPECT(fc_clone(dst), FC_FLOAT64, S(2, 3), 0, 1, -2, 3, 1, -2, 3);
  fc_tensor *bad = MK(FC_FLOAT32, S(2), 1, 2);
  CHECK_ERR(fc_copy_(dst, bad), "cannot broadcast");
  fc_tensor *big = fc_zeros(2, (int64_t[]){4, 3}, FC_FLOAT32, CPU);
  CHECK_ERR(fc_copy_(dst, big), "cannot broadcast to destination of shape [2,3]");
  /* into a transposed destination */
  fc_tensor *tr = fc_transpose(dst, 0, 1);
  fc_tensor *src = MK(FC_FLOAT32, S(3, 2), 1, 2, 3, 4, 5, 6);
  CHECK(fc_copy_(tr, src) == 0);
  EXPECT(fc_clone(dst), FC_FLOAT64, S(2, 3), 0, 1, 3, 5, 2, 4, 6);
  fc_release(src);
  fc_release(tr);
  fc_release(big);
  fc_release(bad);
  fc_release(row);
  fc_release(dst);
}

TEST(dtype_round_trips) {
  fc_tensor *t = MK(FC_FLOAT32, S(5), 1.0, -2.5, 65504, 1e-8, 3.14159265);
  /* float16: 65504 is its max; 1e-8 underflows to a subnormal-or-zero */
  fc_tensor *h = fc_to_dtype(t, FC_FLOAT16);
  EXPECT(fc_to_dtype(h, FC_FLOAT32), FC_FLOAT32, S(5), 1e-3, 1.0, -2.5, 65504, 0, 3.140625);
  fc_tensor *b = fc_to_dtype(t, FC_BFLOAT16);
  EXPECT(fc_to_dtype(b, FC_FLOAT64), FC_FLOAT64, S(5), 1e-2, 1.0, -2.5, 65536, 1e-8, 3.140625);
  EXPECT(fc_to_dtype(t, FC_INT64), FC_INT64, S(5), 0, 1, -2, 65504, 0, 3);
  EXPECT(fc_to_dtype(t, FC_BOOL), FC_BOOL, S(5), 0, 1, 1, 1, 1, 1);
  fc_tensor *same = fc_to_dtype(t, FC_FLOAT32);
  CHECK(same == t);
  fc_release(same);
  CHECK_ERR(fc_to_dtype(t, -1), "invalid dtype");
  fc_release(b);
  fc_release(h);
  fc_release(t);
}

TEST(half_conversion_exact_cases) {
  /* float16 bit patterns worked by hand */
  fc_tensor *t = MK(FC_FLOAT32, S(6), 0.5, -0.0, 1.0 / 1024, 6.103515625e-05, 70000, 5.960464477539063e-08);
  fc_tensor *h = fc_to_dtype(t, FC_FLOAT16);
  const uint16_t *bits = fc_data_ptr(h);
  CHECK(bits[0] == 0x3800);
  CHECK(bits[1] == 0x8000);
  CHECK(bits[2] == 0x1400);
  CHECK(bits[3] == 0x0400); /* smallest normal */
  CHECK(bits[4] == 0x7c00); /* overflow to inf */
  CHECK(bits[5] == 0x0001); /* smallest subnormal */
  fc_release(h);
  fc_release(t);
}

/* Contiguous runs convert in hardware (F16C), strided ones in software:
 * both must give the same bits, including subnormals, inf and rounding ties. */
TEST(half_paths_agree) {
  fc_manual_seed(2);
  fc_tensor *r = fc_randn(2, (int64_t[]){1000, 2}, FC_FLOAT32, CPU);
  float *v = fc_data_ptr(r);
  v[0] = 65520.0f;   /* rounds to inf */
  v[2] = 1e-6f;      /* subnormal */
  v[4] = 2049.0f;    /* a tie: rounds to even 2048 */
  v[6] = -0.0f;
  for (int i = 8; i < 2000; i += 2) v[i] *= (float)(i % 7 == 0 ? 1e-5 : 1e3);
  fc_tensor *col = fc_select(r, 1, 0), *dense = fc_contiguous(col);
  fc_tensor *soft = fc_to_dtype(col, FC_FLOAT16), *hard = fc_to_dtype(dense, FC_FLOAT16);
  CHECK(soft && hard && memcmp(fc_data_ptr(soft), fc_data_ptr(hard), 2000) == 0);
  fc_tensor *pair = fc_stack(2, (fc_tensor *[]){soft, soft}, 1), *sh = fc_select(pair, 1, 0); /* strided */
  fc_tensor *back_hard = fc_to_dtype(soft, FC_FLOAT32), *back_soft = fc_to_dtype(sh, FC_FLOAT32);
  CHECK(back_hard && back_soft && memcmp(fc_data_ptr(back_hard), fc_data_ptr(back_soft), 4000) == 0);
  const uint16_t *bits = fc_data_ptr(hard);
  CHECK(bits[0] == 0x7c00 && bits[1] == 0x0011 && bits[2] == 0x6800 && bits[3] == 0x8000);
  fc_release(back_hard), fc_release(back_soft), fc_release(sh), fc_release(pair), fc_release(soft), fc_release(hard);
  fc_release(dense), fc_release(col), fc_release(r);
}

TEST(fill_strided_and_types) {
  fc_tensor *t = fc_zeros(2, (int64_t[]){3, 4}, FC_INT32, CPU);
  fc_tensor *col = fc_select(t, 1, 2);
  CHECK(fc_fill_(col, 7) == 0);
  EXPECT(fc_clone(t), FC_INT32, S(3, 4), 0, 0, 0, 7, 0, 0, 0, 7, 0, 0, 0, 7, 0);
  fc_release(col);
  fc_release(t);
  fc_tensor *h = fc_full(1, (int64_t[]){2}, 1.5, FC_BFLOAT16, CPU);
  EXPECT(h, FC_BFLOAT16, S(2), 0, 1.5, 1.5);
}

TEST(free_then_use_errors) {
  fc_tensor *t = fc_ones(1, (int64_t[]){4}, FC_FLOAT32, CPU);
  fc_tensor *v = fc_view(t, 2, (int64_t[]){2, 2});
  int64_t before = fc_live_bytes(FC_CPU);
  fc_free(t); /* the view still holds the storage */
  CHECK(fc_live_bytes(FC_CPU) == before);
  CHECK_ERR(fc_clone(t), "was freed");
  EXPECT(fc_clone(v), FC_FLOAT32, S(2, 2), 0, 1, 1, 1, 1);
  fc_release(v);
  CHECK(fc_live_bytes(FC_CPU) < before);
  fc_release(t);
}

TEST(memory_accounting) {
  int64_t base = fc_live_bytes(FC_CPU);
  fc_mem_mark();
  fc_tensor *t = fc_empty(1, (int64_t[]){1 << 20}, FC_FLOAT32, CPU);
  CHECK(fc_live_bytes(FC_CPU) - base == 4 << 20);
  CHECK(fc_bytes_since_mark() >= 4 << 20);
  fc_release(t);
  CHECK(fc_live_bytes(FC_CPU) == base);
  /* the cached block comes back for the same size */
  fc_tensor *a = fc_empty(1, (int64_t[]){1 << 20}, FC_FLOAT32, CPU);
  CHECK(a != NULL);
  fc_release(a);
  fc_empty_cache();
}

TEST(promotion_rules) {
  CHECK(fc_promote_types(FC_INT32, FC_INT64) == FC_INT64);
  CHECK(fc_promote_types(FC_UINT8, FC_FLOAT16) == FC_FLOAT16);
  CHECK(fc_promote_types(FC_FLOAT16, FC_BFLOAT16) == FC_FLOAT32);
  CHECK(fc_promote_types(FC_BOOL, FC_UINT8) == FC_UINT8);
  CHECK(fc_promote_types(FC_FLOAT32, FC_FLOAT64) == FC_FLOAT64);
  CHECK(fc_promote_types(FC_INT64, FC_FLOAT16) == FC_FLOAT16);
}

int main(void) {
  RUN(creation_fills);
  RUN(arange_and_linspace);
  RUN(creation_errors);
  RUN(from_buffer_converts);
  RUN(get_set_item);
  RUN(views_share_storage);
  RUN(view_errors);
  RUN(squeeze_unsqueeze_expand_flatten);
  RUN(slice_narrow_select);
  RUN(copy_broadcasts_and_converts);
  RUN(dtype_round_trips);
  RUN(half_conversion_exact_cases);
  RUN(half_paths_agree);
  RUN(fill_strided_and_types);
  RUN(free_then_use_errors);
  RUN(memory_accounting);
  RUN(promotion_rules);
  return harness_report();
}
