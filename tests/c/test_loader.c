/* test_loader.c — the threaded loader: batches identical for 0/1/2/4
 * workers, order and shuffling, drop_last, labels carried, each item equal to
 * fc_image_transform of its image, missing/zero-byte/corrupt/truncated files
 * (raise and skip), restarting and abandoning epochs, freeing mid-epoch,
 * many epochs without a leak, option errors. Built under ThreadSanitizer by
 * `make tsan`. */
#include "harness.h"
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[64];
enum { NITEMS = 37 };
static char *paths[NITEMS], *png_paths[NITEMS];

static char *path_of(const char *name) {
  char *p = malloc(strlen(dir) + strlen(name) + 2);
  sprintf(p, "%s/%s", dir, name);
  return p;
}

static void write_bytes(const char *path, const void *bytes, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f || (n && fwrite(bytes, 1, n, f) != n)) { perror(path); abort(); }
  fclose(f);
}

/* Image i: h x w from 30 to 60 a side, a gradient plus a square. */
static fc_tensor *item_image(int i) {
  int h = 30 + (i * 7) % 31, w = 30 + (i * 13) % 31;
  int64_t shape[3] = {3, h, w};
  fc_tensor *t = fc_empty(3, shape, FC_UINT8, CPU);
  uint8_t *p = fc_data_ptr(t);
  for (int k = 0; k < 3; k++)
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++) {
        bool sq = x > w / 4 && x < w / 2 && y > h / 3 && y < 2 * h / 3;
        p[(k * h + y) * w + x] = (uint8_t)(sq ? 200 - 40 * k : (x * 5 + y * 3 + i * 17 + k * 60) % 256);
      }
  return t;
}

static void make_items(void) {
  for (int i = 0; i < NITEMS; i++) {
    char name[32];
    fc_tensor *img = item_image(i);
    snprintf(name, sizeof name, "img%02d.jpg", i);
    paths[i] = path_of(name);
    snprintf(name, sizeof name, "img%02d.png", i);
    png_paths[i] = path_of(name);
    if (fc_image_write(paths[i], img, 90) < 0 || fc_image_write(png_paths[i], img, 0) < 0) {
      fprintf(stderr, "%s\n", fc_last_error());
      abort();
    }
    fc_release(img);
  }
}

static fc_tfm steps[2];

static fc_loader_opts opts_for(int workers) {
  steps[0] = (fc_tfm){.kind = FC_TFM_RANDOM_RESIZED_CROP, .height = 24, .width = 20, .scale = {0.2, 1},
                      .ratio = {0.75, 1.333}, .val_xtra = 0.14};
  steps[1] = (fc_tfm){.kind = FC_TFM_FLIP, .p = 0.5};
  return (fc_loader_opts){.batch_size = 8, .shuffle = 1, .seed = 1234, .num_workers = workers,
                          .prefetch = 3, .channels = 3, .index_base = 1, .ntfms = 2, .tfms = steps};
}

/* One epoch's batches concatenated: pixels, labels, indices. */
typedef struct epoch_out {
  uint8_t *x;
  int64_t *y, *idx;
  int64_t nbytes, nitems, nbatches;
} epoch_out;

static void epoch_free(epoch_out *e) { free(e->x), free(e->y), free(e->idx); }

static epoch_out run_epoch(fc_loader *l, int64_t epoch) {
  epoch_out e = {0};
  CHECK(fc_loader_start_epoch(l, epoch) == 0);
  fc_tensor *x, *y, *idx;
  int rc;
  while ((rc = fc_loader_next(l, &x, &y, &idx)) == 1) {
    CHECK(x->dtype == FC_UINT8 && x->ndim == 4 && idx->dtype == FC_INT64 && idx->shape[0] == x->shape[0]);
    CHECK(fc_is_contiguous(x));
    int64_t n = x->shape[0];
    e.x = realloc(e.x, (size_t)(e.nbytes + x->numel));
    memcpy(e.x + e.nbytes, fc_data_ptr(x), (size_t)x->numel);
    e.idx = realloc(e.idx, sizeof(int64_t) * (size_t)(e.nitems + n));
    memcpy(e.idx + e.nitems, fc_data_ptr(idx), sizeof(int64_t) * (size_t)n);
    if (y) {
      e.y = realloc(e.y, sizeof(int64_t) * (size_t)(e.nitems + n));
      memcpy(e.y + e.nitems, fc_data_ptr(y), sizeof(int64_t) * (size_t)n);
    }
    e.nbytes += x->numel, e.nitems += n, e.nbatches++;
    fc_release(x), fc_release(y), fc_release(idx);
  }
  CHECK(rc == 0);
  return e;
}

static bool same_epoch(const epoch_out *a, const epoch_out *b) {
  return a->nbytes == b->nbytes && a->nitems == b->nitems &&
         memcmp(a->x, b->x, (size_t)a->nbytes) == 0 &&
         memcmp(a->idx, b->idx, sizeof(int64_t) * (size_t)a->nitems) == 0;
}

TEST(same_batches_for_any_worker_count) {
  epoch_out ref[2];
  for (int w = 0; w < 4; w++) {
    int workers = (int[]){0, 1, 2, 4}[w];
    fc_loader_opts o = opts_for(workers);
    fc_loader *l = fc_loader_new(NITEMS, (const char *const *)paths, NULL, &o);
    CHECK(l && fc_loader_len(l) == 5); /* ceil(37 / 8) */
    for (int e = 0; e < 2; e++) {
      epoch_out got = run_epoch(l, e);
      CHECK(got.nitems == NITEMS && got.nbatches == 5 && got.nbytes == (int64_t)NITEMS * 3 * 24 * 20);
      if (w == 0) ref[e] = got;
      else {
        if (!same_epoch(&ref[e], &got)) harness_fail(__FILE__, __LINE__, "%d workers, epoch %d differs", workers, e);
        epoch_free(&got);
      }
    }
    fc_loader_free(l);
  }
  /* epochs differ in order and augmentation */
  CHECK(memcmp(ref[0].idx, ref[1].idx, sizeof(int64_t) * NITEMS) != 0);
  epoch_free(&ref[0]), epoch_free(&ref[1]);
}

TEST(order_shuffle_drop_last_labels) {
  int64_t labels[NITEMS];
  for (int i = 0; i < NITEMS; i++) labels[i] = 100 + i;
  fc_loader_opts o = opts_for(2);
  o.shuffle = 0;
  fc_loader *l = fc_loader_new(NITEMS, (const char *const *)paths, labels, &o);
  epoch_out e = run_epoch(l, 0);
  for (int i = 0; i < NITEMS; i++) CHECK(e.idx[i] == i + 1 && e.y[i] == 100 + i);
  epoch_free(&e);
  fc_loader_free(l);
  /* shuffled: each epoch a permutation, labels follow their items */
  o = opts_for(2);
  o.drop_last = 1;
  l = fc_loader_new(NITEMS, (const char *const *)paths, labels, &o);
  CHECK(fc_loader_len(l) == 4);
  for (int ep = 0; ep < 3; ep++) {
    e = run_epoch(l, ep);
    CHECK(e.nitems == 32 && e.nbatches == 4);
    bool seen[NITEMS + 1] = {0};
    int in_order = 0;
    for (int i = 0; i < e.nitems; i++) {
      CHECK(e.idx[i] >= 1 && e.idx[i] <= NITEMS && !seen[e.idx[i]]);
      if (e.idx[i] >= 1 && e.idx[i] <= NITEMS) seen[e.idx[i]] = true;
      CHECK(e.y[i] == 100 + e.idx[i] - 1);
      in_order += e.idx[i] == i + 1;
    }
    CHECK(in_order < 10);
    epoch_free(&e);
  }
  fc_loader_free(l);
}

TEST(items_equal_image_transform) {
  /* PNGs (no DCT scaling), so the loader's pixels are fc_image_transform's */
  fc_loader_opts o = opts_for(2);
  o.index_base = 0;
  fc_loader *l = fc_loader_new(NITEMS, (const char *const *)png_paths, NULL, &o);
  CHECK(fc_loader_start_epoch(l, 3) == 0);
  fc_tensor *x, *y, *idx;
  int checked = 0;
  while (fc_loader_next(l, &x, &y, &idx) == 1) {
    CHECK(y == NULL);
    for (int64_t r = 0; r < x->shape[0]; r++) {
      int64_t item = ((int64_t *)fc_data_ptr(idx))[r];
      fc_tensor *img = fc_image_read(png_paths[item], 3, 0, 0);
      fc_tensor *want = fc_image_transform(img, o.ntfms, o.tfms, o.seed, 3, item);
      CHECK(want && memcmp(fc_data_ptr(want), (uint8_t *)fc_data_ptr(x) + r * want->numel, (size_t)want->numel) == 0);
      fc_release(img), fc_release(want);
      checked++;
    }
    fc_release(x), fc_release(idx);
  }
  CHECK(checked == NITEMS);
  fc_loader_free(l);
}

TEST(jpeg_decode_scaled_when_the_step_allows) {
  /* a 200x160 JPEG squished to 40x50 decodes at 1/2 or 1/4 scale; the result
   * stays close to the full decode resized the same way */
  int64_t shape[3] = {3, 160, 200};
  fc_tensor *big = fc_empty(3, shape, FC_UINT8, CPU);
  uint8_t *p = fc_data_ptr(big);
  for (int64_t i = 0; i < big->numel; i++) p[i] = (uint8_t)(60 + (i % 200) / 2 + (i / 200 % 160) / 3);
  char *jpg = path_of("big.jpg");
  fc_image_write(jpg, big, 95);
  fc_tfm t = {.kind = FC_TFM_RESIZE, .height = 40, .width = 50, .method = FC_RESIZE_SQUISH};
  fc_loader_opts o = {.batch_size = 1, .num_workers = 1, .prefetch = 1, .channels = 3, .ntfms = 1, .tfms = &t};
  fc_loader *l = fc_loader_new(1, (const char *const *)&jpg, NULL, &o);
  fc_loader_start_epoch(l, 0);
  fc_tensor *x, *idx, *full = fc_image_read(jpg, 3, 0, 0), *want = fc_image_transform(full, 1, &t, 0, 0, 0);
  CHECK(fc_loader_next(l, &x, NULL, &idx) == 1);
  const uint8_t *a = fc_data_ptr(x), *b = fc_data_ptr(want);
  int worst = 0;
  for (int64_t i = 0; i < want->numel; i++) worst = abs(a[i] - b[i]) > worst ? abs(a[i] - b[i]) : worst;
  CHECK(worst <= 4);
  fc_release(x), fc_release(idx), fc_release(full), fc_release(want), fc_release(big);
  fc_loader_free(l);
  free(jpg);
}

/* Paths with bad files at positions 3 (missing), 9 (zero bytes), 10
 * (corrupt) and 17 (truncated JPEG). */
static char *bad_paths[NITEMS];
static void make_bad_paths(void) {
  for (int i = 0; i < NITEMS; i++) bad_paths[i] = strdup(paths[i]);
  free(bad_paths[3]), bad_paths[3] = path_of("missing.jpg");
  free(bad_paths[9]), bad_paths[9] = path_of("zero.jpg");
  write_bytes(bad_paths[9], "", 0);
  free(bad_paths[10]), bad_paths[10] = path_of("corrupt.png");
  write_bytes(bad_paths[10], "\x89PNG\r\n\x1a\nnot really", 18);
  FILE *f = fopen(paths[17], "rb");
  uint8_t buf[65536];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  free(bad_paths[17]), bad_paths[17] = path_of("truncated.jpg");
  write_bytes(bad_paths[17], buf, n * 3 / 4);
}

TEST(bad_files_raise_naming_the_file) {
  for (int workers = 0; workers <= 2; workers += 2) {
    fc_loader_opts o = opts_for(workers);
    o.shuffle = 0;
    fc_loader *l = fc_loader_new(NITEMS, (const char *const *)bad_paths, NULL, &o);
    fc_loader_start_epoch(l, 0);
    fc_tensor *x, *idx;
    const char *want[5] = {"missing.jpg", "zero.jpg' is empty", "corrupt.png", "truncated.jpg", NULL};
    int nerr = 0, nok = 0;
    for (;;) {
      int rc = fc_loader_next(l, &x, NULL, &idx);
      if (rc == 0) break;
      if (rc == 1) {
        nok++;
        fc_release(x), fc_release(idx);
        continue;
      }
      /* batch 1 has items 9 and 10: the first bad one is reported */
      const char *e = fc_last_error();
      if (nerr < 4 && !strstr(e, want[nerr == 2 ? 3 : nerr]))
        harness_fail(__FILE__, __LINE__, "error %d '%s' lacks '%s'", nerr, e, want[nerr == 2 ? 3 : nerr]);
      nerr++;
    }
    CHECK(nerr == 3 && nok == 2); /* batches 0, 1, 2 fail; 3 and 4 load */
    fc_loader_free(l);
  }
}

TEST(bad_files_skipped_with_warnings) {
  fc_loader_opts o = opts_for(2);
  o.shuffle = 0;
  o.on_error = FC_ON_ERROR_SKIP;
  fc_loader *l = fc_loader_new(NITEMS, (const char *const *)bad_paths, NULL, &o);
  fc_loader_start_epoch(l, 0);
  fc_tensor *x, *idx;
  int64_t rows[5] = {0}, total = 0;
  int k = 0;
  char warnings[4096] = "";
  while (fc_loader_next(l, &x, NULL, &idx) == 1) {
    strncat(warnings, fc_loader_warnings(l), sizeof warnings - strlen(warnings) - 1);
    const int64_t *ix = fc_data_ptr(idx);
    for (int64_t r = 0; r < x->shape[0]; r++) CHECK(ix[r] != 4 && ix[r] != 10 && ix[r] != 11 && ix[r] != 18);
    rows[k++] = x->shape[0], total += x->shape[0];
    fc_release(x), fc_release(idx);
  }
  CHECK(k == 5 && rows[0] == 7 && rows[1] == 6 && rows[2] == 7 && rows[3] == 8 && rows[4] == 5);
  CHECK(total == NITEMS - 4);
  CHECK(strstr(warnings, "skipped item 4: cannot open") && strstr(warnings, "missing.jpg"));
  CHECK(strstr(warnings, "skipped item 10:") && strstr(warnings, "zero.jpg"));
  CHECK(strstr(warnings, "skipped item 11:") && strstr(warnings, "corrupt.png"));
  CHECK(strstr(warnings, "skipped item 18:") && strstr(warnings, "truncated.jpg"));
  fc_loader_free(l);
  /* a batch whose items all fail is passed over */
  const char *all_bad[3] = {bad_paths[3], bad_paths[9], paths[0]};
  o.batch_size = 2;
  l = fc_loader_new(3, all_bad, NULL, &o);
  fc_loader_start_epoch(l, 0);
  CHECK(fc_loader_next(l, &x, NULL, &idx) == 1);
  CHECK(x->shape[0] == 1 && ((int64_t *)fc_data_ptr(idx))[0] == 3);
  CHECK(strstr(fc_loader_warnings(l), "missing.jpg") && strstr(fc_loader_warnings(l), "zero.jpg"));
  fc_release(x), fc_release(idx);
  CHECK(fc_loader_next(l, &x, NULL, &idx) == 0);
  fc_loader_free(l);
}

TEST(restart_and_free_mid_epoch) {
  fc_loader_opts o = opts_for(2);
  fc_loader *l = fc_loader_new(NITEMS, (const char *const *)paths, NULL, &o);
  epoch_out whole = run_epoch(l, 5);
  /* take one batch of epoch 5, then restart it: the same epoch from the start */
  fc_loader_start_epoch(l, 5);
  fc_tensor *x, *idx;
  CHECK(fc_loader_next(l, &x, NULL, &idx) == 1);
  fc_release(x), fc_release(idx);
  epoch_out again = run_epoch(l, 5);
  CHECK(same_epoch(&whole, &again));
  epoch_free(&whole), epoch_free(&again);
  /* abandon mid-epoch, workers busy: freeing joins them */
  for (int i = 0; i < 20; i++) {
    fc_loader *m = fc_loader_new(NITEMS, (const char *const *)paths, NULL, &o);
    fc_loader_start_epoch(m, i);
    if (i % 2 && fc_loader_next(m, &x, NULL, &idx) == 1) fc_release(x), fc_release(idx);
    fc_loader_free(m);
  }
  /* a loader never started, and one freed straight after starting */
  fc_loader_free(fc_loader_new(NITEMS, (const char *const *)paths, NULL, &o));
  fc_loader_free(l);
  fc_loader_free(NULL);
}

TEST(many_epochs_hold_no_memory) {
  fc_loader_opts o = opts_for(2);
  fc_loader *l = fc_loader_new(NITEMS, (const char *const *)paths, NULL, &o);
  epoch_out e = run_epoch(l, 0);
  epoch_free(&e);
  int64_t before = fc_live_bytes(FC_CPU);
  for (int ep = 1; ep <= 25; ep++) {
    e = run_epoch(l, ep);
    CHECK(e.nitems == NITEMS);
    epoch_free(&e);
    if (ep % 5 == 0) { /* abandon one half-way too */
      fc_tensor *x, *idx;
      fc_loader_start_epoch(l, 100 + ep);
      if (fc_loader_next(l, &x, NULL, &idx) == 1) fc_release(x), fc_release(idx);
    }
  }
  fc_loader_start_epoch(l, 0); /* drops any prefetched batch */
  fc_loader_free(l);
  CHECK(fc_live_bytes(FC_CPU) <= before);
}

TEST(sizes_must_agree_without_a_size_step) {
  fc_tfm flip = {.kind = FC_TFM_FLIP, .p = 0.5};
  fc_loader_opts o = {.batch_size = 4, .num_workers = 1, .prefetch = 2, .channels = 3, .ntfms = 1, .tfms = &flip};
  fc_loader *l = fc_loader_new(NITEMS, (const char *const *)paths, NULL, &o);
  fc_loader_start_epoch(l, 0);
  fc_tensor *x, *idx;
  CHECK_ERR(fc_loader_next(l, &x, NULL, &idx), "add a resize or crop step");
  fc_loader_free(l);
  /* one item per batch is fine: the batch takes its size */
  o.batch_size = 1;
  l = fc_loader_new(2, (const char *const *)paths, NULL, &o);
  fc_loader_start_epoch(l, 0);
  CHECK(fc_loader_next(l, &x, NULL, &idx) == 1);
  CHECK(x->shape[2] == 30 && x->shape[3] == 30);
  fc_release(x), fc_release(idx);
  fc_loader_free(l);
}

TEST(normalize_in_the_workers) {
  fc_loader_opts o = opts_for(2);
  fc_loader *u8 = fc_loader_new(NITEMS, (const char *const *)paths, NULL, &o);
  o.normalize = 1;
  const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
  memcpy(o.mean, mean, sizeof mean), memcpy(o.std, std, sizeof std);
  fc_loader *f32 = fc_loader_new(NITEMS, (const char *const *)paths, NULL, &o);
  fc_loader_start_epoch(u8, 1), fc_loader_start_epoch(f32, 1);
  fc_tensor *a, *b, *ia, *ib;
  int batches = 0;
  while (fc_loader_next(u8, &a, NULL, &ia) == 1) {
    CHECK(fc_loader_next(f32, &b, NULL, &ib) == 1);
    CHECK(b->dtype == FC_FLOAT32 && b->numel == a->numel);
    const uint8_t *p = fc_data_ptr(a);
    const float *q = fc_data_ptr(b);
    int64_t plane = a->shape[2] * a->shape[3];
    double worst = 0;
    for (int64_t i = 0; i < a->numel; i++) {
      int k = (int)(i / plane % 3);
      worst = fmax(worst, fabs(q[i] - (p[i] / 255.0 - mean[k]) / std[k]));
    }
    CHECK(worst < 1e-5);
    fc_release(a), fc_release(b), fc_release(ia), fc_release(ib);
    batches++;
  }
  CHECK(batches == 5);
  fc_loader_free(u8), fc_loader_free(f32);
  o.std[1] = 0;
  CHECK(!fc_loader_new(NITEMS, (const char *const *)paths, NULL, &o) && strstr(fc_last_error(), "channel 2: mean"));
}

TEST(option_errors) {
  fc_loader_opts o = opts_for(1);
  const char *const *p = (const char *const *)paths;
  o.batch_size = 0;
  CHECK(!fc_loader_new(NITEMS, p, NULL, &o) && strstr(fc_last_error(), "batch_size must be >= 1"));
  o = opts_for(1), o.channels = 2;
  CHECK(!fc_loader_new(NITEMS, p, NULL, &o) && strstr(fc_last_error(), "channels must be 1, 3 or 4"));
  o = opts_for(1), o.prefetch = 0;
  CHECK(!fc_loader_new(NITEMS, p, NULL, &o) && strstr(fc_last_error(), "prefetch must be"));
  o = opts_for(1), o.num_workers = -1;
  CHECK(!fc_loader_new(NITEMS, p, NULL, &o) && strstr(fc_last_error(), "num_workers must be"));
  o = opts_for(1), o.on_error = 5;
  CHECK(!fc_loader_new(NITEMS, p, NULL, &o) && strstr(fc_last_error(), "on_error"));
  o = opts_for(1), steps[0].height = -3;
  CHECK(!fc_loader_new(NITEMS, p, NULL, &o) && strstr(fc_last_error(), "1st step has size -3x20"));
  o = opts_for(1);
  const char *with_null[2] = {paths[0], NULL};
  CHECK(!fc_loader_new(2, with_null, NULL, &o) && strstr(fc_last_error(), "path of item 2 is NULL"));
  fc_loader *l = fc_loader_new(NITEMS, p, NULL, &o);
  fc_tensor *x, *idx;
  CHECK_ERR(fc_loader_next(l, &x, NULL, &idx), "no epoch started");
  fc_loader_free(l);
  /* no items: an empty epoch */
  l = fc_loader_new(0, NULL, NULL, &o);
  CHECK(l && fc_loader_len(l) == 0 && fc_loader_start_epoch(l, 0) == 0 && fc_loader_next(l, &x, NULL, &idx) == 0);
  fc_loader_free(l);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/fastc_test_loader_XXXXXX");
  if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
  make_items();
  make_bad_paths();
  RUN(same_batches_for_any_worker_count);
  RUN(order_shuffle_drop_last_labels);
  RUN(items_equal_image_transform);
  RUN(jpeg_decode_scaled_when_the_step_allows);
  RUN(bad_files_raise_naming_the_file);
  RUN(bad_files_skipped_with_warnings);
  RUN(restart_and_free_mid_epoch);
  RUN(many_epochs_hold_no_memory);
  RUN(sizes_must_agree_without_a_size_step);
  RUN(normalize_in_the_workers);
  RUN(option_errors);
  for (int i = 0; i < NITEMS; i++) free(paths[i]), free(png_paths[i]), free(bad_paths[i]);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return harness_report();
}
