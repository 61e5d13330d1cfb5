/* ops_embedding.c — embedding lookup: rows of a [V, D] table picked by an
 * index of any shape.
 *
 * Forward copies one row per index (rows in parallel). Backward must add
 * the gradient rows of repeated indices into the same weight row; instead
 * of atomics it lists, per weight row, the positions that picked it (a
 * counting sort), so each weight row is written by one thread, in index
 * order: the result is the same for any thread count. */
#include "internal.h"
#include <stdlib.h>

/* The caller's index as contiguous int64 (the same tensor when it is one). */
static fc_tensor *index_values(const char *op, fc_tensor *idx) {
  if (idx->dtype != FC_INT64 && idx->dtype != FC_INT32)
    FAIL("%s: indices must be int64 (or int32), got %s", op, DTYPE(idx));
  int previous = grad_mode_push(false);
  fc_tensor *i64 = fc_to_dtype(idx, FC_INT64), *c = i64 ? fc_contiguous(i64) : NULL;
  grad_mode_pop(previous);
  fc_release(i64);
  return c;
}

/* Every index in [base, base + V), or an error quoting the first that is not. */
static int check_rows(const char *op, const fc_tensor *iv, int64_t V, int64_t base) {
  const int64_t *v = (const int64_t *)elem_ptr(iv);
  for (int64_t i = 0; i < iv->numel; i++) {
    if (v[i] >= base && v[i] - base < V) continue;
    if (V == 0) FAIL_INT("%s: index %lld out of range for an empty weight", op, (long long)v[i]);
    FAIL_INT("%s: index %lld out of range for a weight of %lld rows (valid %lld..%lld)", op,
             (long long)v[i], (long long)V, (long long)base, (long long)(base + V - 1));
  }
  return 0;
}

/* gw[r] = sum of g's rows at the positions whose index is r (padding: none).
 * g: [n, D] float32 or float64, gw: [V, D] of the same dtype, zeroed. */
static int scatter_rows(char *gw, const char *g, int dtype, const int64_t *v, int64_t n, int64_t D,
                        int64_t V, int64_t base, int64_t padding) {
  int64_t *start = calloc((size_t)V + 2, sizeof(int64_t)), *order = malloc(sizeof(int64_t) * (size_t)(n + 1));
  if (!start || !order) {
    free(start), free(order);
    FAIL_INT("embedding backward: out of memory");
  }
  for (int64_t i = 0; i < n; i++) start[v[i] - base + 2]++;
  for (int64_t r = 0; r < V; r++) start[r + 2] += start[r + 1];
  for (int64_t i = 0; i < n; i++) order[start[v[i] - base + 1]++] = i; /* start[r + 1]: next slot of r */
#pragma omp parallel for if (n * D > PARALLEL_GRAIN) schedule(dynamic, 64)
  for (int64_t r = 0; r < V; r++) {
    if (r == padding) continue;
    for (int64_t k = start[r]; k < start[r + 1]; k++) {
      int64_t i = order[k];
      if (dtype == FC_FLOAT64) {
        double *o = (double *)gw + r * D;
        const double *a = (const double *)g + i * D;
        for (int64_t j = 0; j < D; j++) o[j] += a[j];
      } else {
        float *o = (float *)gw + r * D;
        const float *a = (const float *)g + i * D;
        for (int64_t j = 0; j < D; j++) o[j] += a[j];
      }
    }
  }
  free(start), free(order);
  return 0;
}

/* ---- on a cuda device ------------------------------------------------------------
 * The lookup is index_select along the rows (a gather kernel) and its
 * backward index_select's (a scatter_add with atomics); a padding row is
 * kept out of the gradient by an identity node on the weight that zeroes
 * that row of whatever gradient comes back. */

/* The index bounds by two device reductions; a failure is named from a host copy. */
static int check_rows_device(const char *op, fc_tensor *iv, int64_t V, int64_t base) {
  if (iv->numel == 0) return 0;
  int previous = grad_mode_push(false);
  fc_tensor *lo = fc_amin(iv, 0, NULL, 0), *hi = lo ? fc_amax(iv, 0, NULL, 0) : NULL;
  grad_mode_pop(previous);
  double l = 0, h = 0;
  int rc = hi && fc_item(lo, &l) == 0 && fc_item(hi, &h) == 0 ? 0 : -1;
  fc_release(lo), fc_release(hi);
  if (rc < 0 || (l >= (double)base && h - (double)base < (double)V)) return rc;
  fc_tensor *host = fc_to_device(iv, (fc_device){FC_CPU, 0});
  rc = host ? check_rows(op, host, V, base) : -1;
  fc_release(host);
  return rc;
}

static int padding_row_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  fc_tensor *c = fc_clone(g), *row = c ? fc_select(c, 0, n->iarg[0]) : NULL;
  int rc = row ? fc_fill_(row, 0) : -1;
  fc_release(row);
  if (rc < 0) fc_release(c), c = NULL;
  gi[0] = c;
  return rc;
}

/* weight itself, or (when its gradient is wanted) an alias of it whose
 * backward zeroes row `row` (0-based). */
static fc_tensor *guard_padding(fc_tensor *weight, int64_t row) {
  if (row < 0 || !grad_needed(1, &weight)) return fc_retain(weight);
  fc_tensor *alias = tensor_view_of(weight, weight->ndim, weight->shape, weight->stride, weight->offset);
  fc_node *n = alias ? record("embedding", padding_row_backward, alias, 1, &weight) : NULL;
  if (!n) {
    fc_release(alias);
    return NULL;
  }
  n->iarg[0] = row;
  return alias;
}

static fc_tensor *embedding_device(fc_tensor *weight, fc_tensor *iv, const fc_tensor *indices, int64_t padding,
                                   int64_t base) {
  int64_t n = iv->numel, shape[FC_MAX_DIMS];
  memcpy(shape, indices->shape, sizeof(int64_t) * (size_t)indices->ndim);
  shape[indices->ndim] = weight->shape[1];
  fc_tensor *flat = fc_reshape(iv, 1, &n), *w = flat ? guard_padding(weight, padding) : NULL;
  fc_tensor *rows = w ? fc_index_select(w, 0, flat, base) : NULL;
  fc_tensor *out = rows ? fc_reshape(rows, indices->ndim + 1, shape) : NULL;
  fc_release(flat), fc_release(w), fc_release(rows);
  return out;
}

/* Saved: [0] the int64 indices. iarg[0]: base, iarg[1]: padding row (0-based, or -1). */
static int embedding_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  fc_tensor *iv = n->saved[0];
  int64_t V = n->in_shape[0][0], D = n->in_shape[0][1];
  int dtype = g->dtype == FC_FLOAT64 ? FC_FLOAT64 : FC_FLOAT32;
  int previous = grad_mode_push(false);
  fc_tensor *gt = fc_to_dtype(g, dtype), *gd = gt ? fc_contiguous(gt) : NULL;
  grad_mode_pop(previous);
  fc_release(gt);
  fc_tensor *gw = gd ? fc_zeros(2, n->in_shape[0], dtype, g->device) : NULL;
  int rc = gw ? scatter_rows(elem_ptr(gw), elem_ptr(gd), dtype, (const int64_t *)elem_ptr(iv), iv->numel,
                             D, V, n->iarg[0], n->iarg[1])
              : -1;
  fc_release(gd);
  if (rc < 0) fc_release(gw), gw = NULL;
  gi[0] = gw;
  return rc;
}

fc_tensor *fc_embedding(fc_tensor *weight, fc_tensor *indices, int64_t padding_idx, int64_t base) {
  const char *op = "embedding";
  if (check_defined(op, weight, "weight") < 0 || check_defined(op, indices, "indices") < 0) return NULL;
  if (check_same_device(op, 2, (const fc_tensor *const[]){weight, indices}) < 0) return NULL;
  if (weight->ndim != 2) FAIL("%s: weight must be 2-D [rows, dim], got shape %s", op, SHAPE(weight));
  if (indices->ndim + 1 > FC_MAX_DIMS)
    FAIL("%s: indices of shape %s have too many dims (at most %d)", op, SHAPE(indices), FC_MAX_DIMS - 1);
  int64_t V = weight->shape[0], D = weight->shape[1];
  if (padding_idx != FC_NO_INDEX && (padding_idx < base || padding_idx - base >= V))
    FAIL("%s: padding_idx %lld out of range for a weight of %lld rows (valid %lld..%lld)", op,
         (long long)padding_idx, (long long)V, (long long)base, (long long)(base + V - 1));
  fc_tensor *iv = index_values(op, indices);
  if (!iv) return NULL;
  if (weight->device.type == FC_CUDA) {
    fc_tensor *out = check_rows_device(op, iv, V, base) == 0
                         ? embedding_device(weight, iv, indices, padding_idx == FC_NO_INDEX ? -1 : padding_idx - base, base)
                         : NULL;
    fc_release(iv);
    return out;
  }
  if (check_rows(op, iv, V, base) < 0) {
    fc_release(iv);
    return NULL;
  }
  int64_t shape[FC_MAX_DIMS];
  memcpy(shape, indices->shape, sizeof(int64_t) * (size_t)indices->ndim);
  shape[indices->ndim] = D;
  int previous = grad_mode_push(false);
  fc_tensor *wd = fc_contiguous(weight);
  grad_mode_pop(previous);
  fc_tensor *out = wd ? fc_empty(indices->ndim + 1, shape, weight->dtype, weight->device) : NULL;
  if (out && out->numel) {
    size_t row = (size_t)D * (size_t)fc_dtype_size(weight->dtype);
    const int64_t *v = (const int64_t *)elem_ptr(iv);
    char *o = elem_ptr(out), *w = elem_ptr(wd);
    int64_t n = iv->numel;
#pragma omp parallel for if (n * D > PARALLEL_GRAIN) schedule(static)
    for (int64_t i = 0; i < n; i++) memcpy(o + (size_t)i * row, w + (size_t)(v[i] - base) * row, row);
  }
  fc_release(wd);
  if (out && grad_needed(1, &weight)) {
    fc_node *node = record(op, embedding_backward, out, 1, &weight);
    if (!node) {
      fc_release(out), fc_release(iv);
      return NULL;
    }
    node_save(node, iv);
    node->iarg[0] = base;
    node->iarg[1] = padding_idx == FC_NO_INDEX ? -1 : padding_idx - base;
  }
  fc_release(iv);
  return out;
}
