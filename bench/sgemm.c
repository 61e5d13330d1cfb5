/* bench/sgemm.c — fc_matmul against cblas_sgemm called directly, and
 * torch.matmul (bench/sgemm.py) on the same square sizes.
 * Built and run by bench/run.sh (`make bench`). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "fastc.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median seconds of `reps` runs after two warm-ups. */
#define MEDIAN(reps, stmt)                                   \
  ({                                                         \
    double t_[64];                                           \
    for (int w_ = 0; w_ < 2; w_++) { stmt; }                 \
    for (int r_ = 0; r_ < (reps); r_++) {                    \
      double s_ = now();                                     \
      stmt;                                                  \
      t_[r_] = now() - s_;                                   \
    }                                                        \
    qsort(t_, (size_t)(reps), sizeof(double), cmp);          \
    t_[(reps) / 2];                                          \
  })

int main(void) {
  const fc_device cpu = {FC_CPU, 0};
  const int sizes[3] = {256, 1024, 2048};
  double torch[3] = {0};
  FILE *py = popen("/usr/bin/python3 bench/sgemm.py 2>/dev/null", "r");
  if (py) {
    int n;
    double g;
    while (fscanf(py, "%d %lf", &n, &g) == 2)
      for (int i = 0; i < 3; i++)
        if (sizes[i] == n) torch[i] = g;
    pclose(py);
  }
  printf("| N | OpenBLAS direct | fastc matmul | fastc / direct | PyTorch | fastc / PyTorch |\n");
  printf("|---|---|---|---|---|---|\n");
  fc_manual_seed(0);
  for (int i = 0; i < 3; i++) {
    int n = sizes[i], reps = n <= 256 ? 51 : n <= 1024 ? 15 : 7;
    int64_t shape[2] = {n, n};
    fc_tensor *a = fc_randn(2, shape, FC_FLOAT32, cpu), *b = fc_randn(2, shape, FC_FLOAT32, cpu);
    float *c = malloc(sizeof(float) * (size_t)n * (size_t)n);
    const float *pa = fc_data_ptr(a), *pb = fc_data_ptr(b);
    double flops = 2.0 * n * n * n;
    double direct = MEDIAN(reps, cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f,
                                              pa, n, pb, n, 0.0f, c, n));
    double ours = MEDIAN(reps, fc_release(fc_matmul(a, b)));
    double gd = flops / direct / 1e9, go = flops / ours / 1e9;
    if (torch[i] > 0)
      printf("| %d | %.1f GFLOP/s | %.1f GFLOP/s | %.2f | %.1f GFLOP/s | %.2f |\n", n, gd, go, go / gd,
             torch[i], go / torch[i]);
    else
      printf("| %d | %.1f GFLOP/s | %.1f GFLOP/s | %.2f | n/a | n/a |\n", n, gd, go, go / gd);
    free(c);
    fc_release(a), fc_release(b);
  }
  return 0;
}
