/* test_random.c — Philox known answers, reproducibility and distributions. */
#include "harness.h"
#include <stdlib.h>

void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* Known-answer vectors published with Random123 for philox4x32-10. */
TEST(philox_known_answers) {
  static const uint32_t ctr[3][4] = {{0, 0, 0, 0},
                                     {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
                                     {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}};
  static const uint32_t key[3][2] = {{0, 0}, {0xffffffff, 0xffffffff}, {0xa4093822, 0x299f31d0}};
  static const uint32_t want[3][4] = {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
                                      {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
                                      {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}};
  for (int i = 0; i < 3; i++) {
    uint32_t out[4];
    philox4x32_10(ctr[i], key[i], out);
    for (int j = 0; j < 4; j++) CHECK(out[j] == want[i][j]);
  }
}

static double *values(fc_tensor *t) {
  double *v = malloc(sizeof(double) * (size_t)t->numel);
  fc_to_doubles(t, v);
  return v;
}

TEST(seed_reproduces) {
  int64_t n = 100000;
  fc_manual_seed(42);
  fc_tensor *a = fc_randn(1, &n, FC_FLOAT32, CPU);
  fc_manual_seed(42);
  fc_tensor *b = fc_randn(1, &n, FC_FLOAT32, CPU);
  fc_tensor *c = fc_randn(1, &n, FC_FLOAT32, CPU);
  double *va = values(a), *vb = values(b), *vc = values(c);
  int same = 1, differ = 0;
  for (int64_t i = 0; i < n; i++) {
    same &= va[i] == vb[i];
    differ += va[i] != vc[i];
  }
  CHECK(same);
  CHECK(differ > n - 10);
  /* one thread or many: the same numbers */
  int threads = fc_get_num_threads();
  fc_set_num_threads(1);
  fc_manual_seed(42);
  fc_tensor *d = fc_randn(1, &n, FC_FLOAT32, CPU);
  fc_set_num_threads(threads);
  double *vd = values(d);
  for (int64_t i = 0; i < n; i++) same &= va[i] == vd[i];
  CHECK(same);
  free(va), free(vb), free(vc), free(vd);
  fc_release(a), fc_release(b), fc_release(c), fc_release(d);
}

/* Mean and variance within 5 standard errors of the true moments. */
static void check_moments(fc_tensor *t, double mean, double var) {
  double *v = values(t), s = 0, s2 = 0;
  int64_t n = t->numel;
  for (int64_t i = 0; i < n; i++) s += v[i];
  double m = s / (double)n;
  for (int64_t i = 0; i < n; i++) s2 += (v[i] - m) * (v[i] - m);
  double vr = s2 / (double)(n - 1);
  CHECK_NEAR(m, mean, 5 * sqrt(var / (double)n) / (1 + fabs(mean)));
  CHECK(fabs(vr - var) < 0.03 * var);
  free(v);
  fc_release(t);
}

TEST(distributions) {
  int64_t n = 200000;
  fc_manual_seed(7);
  check_moments(fc_rand(1, &n, FC_FLOAT32, CPU), 0.5, 1.0 / 12);
  check_moments(fc_randn(1, &n, FC_FLOAT64, CPU), 0, 1);
  fc_tensor *t = fc_empty(1, &n, FC_FLOAT32, CPU);
  CHECK(fc_normal_(t, 3, 2) == 0);
  check_moments(fc_retain(t), 3, 4);
  CHECK(fc_uniform_(t, -1, 3) == 0);
  check_moments(fc_retain(t), 1, 16.0 / 12);
  CHECK(fc_bernoulli_(t, 0.3) == 0);
  check_moments(t, 0.3, 0.21);
  fc_tensor *u = fc_rand(1, &n, FC_FLOAT32, CPU);
  double *v = values(u);
  int in_range = 1;
  for (int64_t i = 0; i < n; i++) in_range &= v[i] >= 0 && v[i] < 1;
  CHECK(in_range);
  free(v);
  fc_release(u);
}

TEST(randint_and_randperm) {
  int64_t n = 10000;
  fc_tensor *t = fc_randint(-3, 4, 1, &n, FC_INT64, CPU);
  double *v = values(t);
  int counts[7] = {0}, ok = 1;
  for (int64_t i = 0; i < n; i++) {
    ok &= v[i] >= -3 && v[i] < 4 && v[i] == floor(v[i]);
    if (ok) counts[(int)v[i] + 3]++;
  }
  CHECK(ok);
  for (int k = 0; k < 7; k++) CHECK(counts[k] > 1200 && counts[k] < 1700);
  free(v);
  fc_release(t);
  fc_tensor *p = fc_randperm(1000, FC_INT64, CPU);
  const int64_t *pv = fc_data_ptr(p);
  char seen[1000] = {0};
  int perm = 1, moved = 0;
  for (int i = 0; i < 1000; i++) {
    perm &= pv[i] >= 0 && pv[i] < 1000 && !seen[pv[i]];
    if (perm) seen[pv[i]] = 1;
    moved += pv[i] != i;
  }
  CHECK(perm && moved > 900);
  fc_release(p);
  CHECK_ERR(fc_randint(3, 3, 1, &n, FC_INT64, CPU), "high 3 must be greater than low 3");
  CHECK_ERR(fc_rand(1, &n, FC_INT64, CPU), "rand: dtype must be a float type, got int64");
  CHECK_ERR(fc_randperm(-1, FC_INT64, CPU), "non-negative");
  fc_tensor *x = fc_empty(1, &n, FC_FLOAT32, CPU);
  CHECK_ERR(fc_normal_(x, 0, -1), "std must be non-negative");
  CHECK_ERR(fc_bernoulli_(x, 1.5), "p must be in [0, 1]");
  fc_release(x);
}

/* A strided target gets the same numbers as a contiguous one would. */
TEST(noncontiguous_fill) {
  fc_tensor *a = fc_zeros(2, (int64_t[]){4, 3}, FC_FLOAT32, CPU);
  fc_tensor *col = fc_select(a, 1, 1);
  fc_manual_seed(5);
  CHECK(fc_uniform_(col, 1, 2) == 0);
  fc_manual_seed(5);
  fc_tensor *ref = fc_rand(1, (int64_t[]){4}, FC_FLOAT32, CPU);
  double got[4], want[4];
  fc_to_doubles(col, got);
  fc_to_doubles(ref, want);
  for (int i = 0; i < 4; i++) CHECK_NEAR(got[i], want[i] + 1, 1e-6);
  double zero;
  CHECK(fc_get(a, (int64_t[]){0, 0}, &zero) == 0 && zero == 0);
  fc_release(ref), fc_release(col), fc_release(a);
}

int main(void) {
  RUN(philox_known_answers);
  RUN(seed_reproduces);
  RUN(distributions);
  RUN(randint_and_randperm);
  RUN(noncontiguous_fill);
  return harness_report();
}
