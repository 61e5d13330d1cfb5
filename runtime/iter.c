/* iter.c — the elementwise iterator: broadcast, coalesce, split across threads.
 *
 * Every elementwise kernel sees runs: a pointer per operand, a byte stride per
 * operand and a length. Contiguous operands collapse into one long run, which
 * the kernels detect and turn into plain vectorisable loops. */
#include "internal.h"

void iter_init(iter *it, int nops, fc_tensor *const *ops) {
  const fc_tensor *out = ops[0];
  it->nops = nops;
  it->ndim = out->ndim;
  it->numel = out->numel;
  for (int d = 0; d < out->ndim; d++) it->shape[d] = out->shape[d];
  for (int k = 0; k < nops; k++) {
    const fc_tensor *t = ops[k];
    int es = fc_dtype_size(t->dtype), lead = out->ndim - t->ndim;
    it->data[k] = t->numel ? elem_ptr(t) : NULL;
    for (int d = 0; d < out->ndim; d++) {
      int td = d - lead;
      bool broadcast = td < 0 || t->shape[td] == 1;
      it->stride[k][d] = broadcast ? 0 : t->stride[td] * es;
    }
  }
  /* Merge dim d into d-1 when every operand steps through them as one. */
  int nd = 0;
  for (int d = 0; d < it->ndim; d++) {
    if (it->shape[d] == 1 && it->ndim > 1) continue;
    bool merge = nd > 0;
    for (int k = 0; merge && k < nops; k++)
      merge = it->stride[k][nd - 1] == it->stride[k][d] * it->shape[d];
    if (merge) {
      it->shape[nd - 1] *= it->shape[d];
      for (int k = 0; k < nops; k++) it->stride[k][nd - 1] = it->stride[k][d];
    } else {
      it->shape[nd] = it->shape[d];
      for (int k = 0; k < nops; k++) it->stride[k][nd] = it->stride[k][d];
      nd++;
    }
  }
  if (nd == 0) { /* a scalar, or every dim of size 1 */
    it->shape[0] = it->numel ? 1 : 0;
    for (int k = 0; k < nops; k++) it->stride[k][0] = 0;
    nd = 1;
  }
  it->ndim = nd;
}

/* Runs the logical elements [begin, end) of the iteration space. */
static void run_range(const iter *it, iter_kernel k, void *ctx, int64_t begin, int64_t end) {
  int nd = it->ndim, inner = nd - 1;
  int64_t idx[FC_MAX_DIMS];
  int64_t rest = begin;
  for (int d = inner; d >= 0; d--) {
    idx[d] = rest % it->shape[d];
    rest /= it->shape[d];
  }
  char *ptrs[ITER_MAX_OPS];
  int64_t inner_stride[ITER_MAX_OPS];
  for (int op = 0; op < it->nops; op++) inner_stride[op] = it->stride[op][inner];
  int64_t pos = begin;
  while (pos < end) {
    for (int op = 0; op < it->nops; op++) {
      char *p = it->data[op];
      for (int d = 0; d < nd; d++) p += idx[d] * it->stride[op][d];
      ptrs[op] = p;
    }
    int64_t n = it->shape[inner] - idx[inner];
    if (n > end - pos) n = end - pos;
    k(ptrs, inner_stride, n, ctx);
    pos += n;
    idx[inner] += n;
    for (int d = inner; d > 0 && idx[d] >= it->shape[d]; d--) {
      idx[d] = 0;
      idx[d - 1]++;
    }
  }
}

void iter_run(const iter *it, iter_kernel k, void *ctx) {
  int64_t n = it->numel;
  if (n == 0) return;
  int nt = num_threads();
  if (nt <= 1 || n < 2 * PARALLEL_GRAIN) {
    run_range(it, k, ctx, 0, n);
    return;
  }
  int64_t chunks = n / PARALLEL_GRAIN;
  if (chunks > nt) chunks = nt;
#pragma omp parallel for num_threads(chunks) schedule(static)
  for (int64_t c = 0; c < chunks; c++) {
    /* Chunk edges rounded to 16 elements keep each thread's stores aligned. */
    int64_t b = (n * c / chunks) & ~(int64_t)15, e = c + 1 == chunks ? n : (n * (c + 1) / chunks) & ~(int64_t)15;
    run_range(it, k, ctx, b, e);
  }
}
