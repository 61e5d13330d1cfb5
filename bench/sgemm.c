/* Build: cc -O2 -Iruntime bench/sgemm.c build/libfastc.a -L/usr/lib/x86_64-linux-gnu/openblas-openmp -Wl,-rpath,/usr/lib/x86_64-linux-gnu/openblas-openmp -lopenblas -lz -lm -fopenmp -o build/bench_sgemm
 *
 * bench/sgemm.c — fc_matmul against cblas_sgemm called directly, and
 * torch.matmul (bench/sgemm.py, run with /usr/bin/python3) on the same square
 * float32 sizes. Prints a Markdown table of GFLOP/s and the ratios; run by
 * bench/run.sh (`make bench`).
 *
 * Each size is warmed up, then direct and fastc calls alternate so that
 * noise from other processes hits both alike; the figure is the median. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "fastc.h"

enum { NSIZES = 3, MAX_REPS = 64 };

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *t, int n) {
  qsort(t, (size_t)n, sizeof(double), by_value);
  return t[n / 2];
}

/* PyTorch's GFLOP/s per size from bench/sgemm.py; 0 where it did not run. */
static void torch_figures(const int *sizes, double *gflops) {
  FILE *py = popen("/usr/bin/python3 bench/sgemm.py 2>/dev/null", "r");
  if (!py) return;
  int n;
  double g;
  while (fscanf(py, "%d %lf", &n, &g) == 2)
    for (int i = 0; i < NSIZES; i++)
      if (sizes[i] == n) gflops[i] = g;
  pclose(py);
}

static void direct_sgemm(int n, const float *a, const float *b, float *c) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
}

int main(void) {
  const fc_device cpu = {FC_CPU, 0};
  const int sizes[NSIZES] = {256, 1024, 2048};
  double torch[NSIZES] = {0};
  torch_figures(sizes, torch);
  printf("| N | OpenBLAS direct | fastc matmul | fastc / direct | PyTorch | fastc / PyTorch |\n");
  printf("|---|---|---|---|---|---|\n");
  fc_manual_seed(0);
  for (int i = 0; i < NSIZES; i++) {
    int n = sizes[i], reps = n <= 256 ? 61 : n <= 1024 ? 21 : 9;
    int64_t shape[2] = {n, n};
    fc_tensor *a = fc_randn(2, shape, FC_FLOAT32, cpu), *b = fc_randn(2, shape, FC_FLOAT32, cpu);
    float *c = malloc(sizeof(float) * (size_t)n * (size_t)n);
    const float *pa = fc_data_ptr(a), *pb = fc_data_ptr(b);
    double td[MAX_REPS], to[MAX_REPS];
    for (int w = 0; w < 3; w++) {
      direct_sgemm(n, pa, pb, c);
      fc_release(fc_matmul(a, b));
    }
    for (int r = 0; r < reps; r++) {
      double t0 = now();
      direct_sgemm(n, pa, pb, c);
      double t1 = now();
      fc_release(fc_matmul(a, b));
      double t2 = now();
      td[r] = t1 - t0;
      to[r] = t2 - t1;
    }
    double flops = 2.0 * n * n * n;
    double gd = flops / median(td, reps) / 1e9, go = flops / median(to, reps) / 1e9;
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
