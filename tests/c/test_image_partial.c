/* test_image_partial.c — the loader decodes only the part of a JPEG a step
 * reads (libjpeg's jpeg_crop_scanline / jpeg_skip_scanlines, at the DCT
 * scale the crop allows). Checked here against decoding the whole file:
 * windows against the full decode at every scale and chroma layout, whole
 * item pipelines against fc_image_transform of the full decode (exactly
 * equal for JPEG at full scale and for PNG, close at reduced DCT scale),
 * and files cut short after the rows a crop reads. */
#include "harness.h"
#include "internal.h"
#include <stdlib.h>
#include <turbojpeg.h>
#include <unistd.h>

static char dir[64];

static const char *tmp_path(const char *name) {
  static char bufs[4][160];
  static int next;
  char *b = bufs[next++ % 4];
  snprintf(b, 160, "%s/%s", dir, name);
  return b;
}

static void write_bytes(const char *path, const void *bytes, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(bytes, 1, n, f) != n) { perror(path); abort(); }
  fclose(f);
}

/* A deterministic stream for window positions. */
static uint32_t lcg(uint32_t *s) { return *s = *s * 1664525u + 1013904223u, *s >> 8; }

/* Busy content (ramps, a ring, fine stripes), HWC: every chroma block
 * differs from its neighbours, so a wrong edge shows. With `smooth` only
 * low frequencies, for comparing DCT-scaled decodes with resampling. */
static uint8_t *textured(int h, int w, int c, bool smooth) {
  uint8_t *p = malloc((size_t)h * w * c);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      double r = sqrt((x - w / 3.0) * (x - w / 3.0) + (y - h / 2.0) * (y - h / 2.0));
      for (int k = 0; k < c; k++) {
        double v = 128 + 60 * sin(x / 17.0 + k) + 40 * cos(y / 23.0 - 2 * k) + 20 * sin(r / 9.0);
        if (!smooth) v += ((x / 3 + y / 5 + k) % 3 - 1) * 25.0;
        p[((size_t)y * w + x) * c + k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
      }
    }
  return p;
}

typedef struct jpeg_file { unsigned char *data; unsigned long n; const char *what; } jpeg_file;

/* Through TurboJPEG's encoder: chroma layout (TJSAMP_*) and progressive or not. */
static jpeg_file encode(const uint8_t *px, int h, int w, int c, int samp, bool progressive, const char *what) {
  tjhandle tj = tjInitCompress();
  jpeg_file f = {NULL, 0, what};
  int pf = c == 1 ? TJPF_GRAY : TJPF_RGB;
  if (tjCompress2(tj, px, w, 0, h, pf, &f.data, &f.n, samp, 90, progressive ? TJFLAG_PROGRESSIVE : 0) < 0) {
    fprintf(stderr, "encode: %s\n", tjGetErrorStr2(tj));
    abort();
  }
  tjDestroy(tj);
  return f;
}

enum { H = 157, W = 203 }; /* neither a multiple of the 16-pixel MCU */

/* Every pixel of a window at least one pixel inside its cut edges (edges
 * on the image's border are not cuts) equals the full decode's; only the
 * outermost cut row or column may differ, which the loader's 2-pixel margin
 * around what its taps read keeps out of use. */
TEST(window_decode_equals_full_decode_inside) {
  uint8_t *rgb = textured(H, W, 3, false), *grey = textured(H, W, 1, false);
  jpeg_file files[5] = {encode(rgb, H, W, 3, TJSAMP_420, false, "4:2:0"), encode(rgb, H, W, 3, TJSAMP_422, false, "4:2:2"),
                        encode(rgb, H, W, 3, TJSAMP_444, false, "4:4:4"), encode(grey, H, W, 1, TJSAMP_GRAY, false, "grey"),
                        encode(rgb, H, W, 3, TJSAMP_420, true, "progressive 4:2:0")};
  image_ctx ctx = {0};
  image full = {0}, part = {0};
  uint32_t seed = 7;
  int windows = 0, narrowed = 0;
  for (int f = 0; f < 5; f++)
    for (int denom = 1; denom <= 8; denom *= 2) {
      int w = (W + denom - 1) / denom, h = (H + denom - 1) / denom, c = f == 3 ? 1 : 3;
      CHECK(image_decode_jpeg_window(&ctx, files[f].data, files[f].n, 0, denom, 0, w, 0, h, &full) == 0);
      CHECK(full.w == w && full.h == h && full.c == c && full.x0 == 0 && full.y0 == 0);
      for (int trial = 0; trial < 40; trial++) {
        int x0 = (int)(lcg(&seed) % (uint32_t)w), y0 = (int)(lcg(&seed) % (uint32_t)h);
        int x1 = x0 + 1 + (int)(lcg(&seed) % (uint32_t)(w - x0)), y1 = y0 + 1 + (int)(lcg(&seed) % (uint32_t)(h - y0));
        if (image_decode_jpeg_window(&ctx, files[f].data, files[f].n, 0, denom, x0, x1, y0, y1, &part) < 0) {
          harness_fail(__FILE__, __LINE__, "%s 1/%d: %s", files[f].what, denom, fc_last_error());
          continue;
        }
        windows++;
        narrowed += part.w < w || part.h < h;
        CHECK(part.x0 <= x0 && part.x0 + part.w == x1 && part.y0 == y0 && part.h == y1 - y0 && part.c == c);
        int bad = 0;
        for (int y = y0; y < y1; y++)
          for (int x = x0; x < x1; x++) {
            bool edge = (part.x0 > 0 && x == part.x0) || (x1 < w && x == x1 - 1) || (y0 > 0 && y == y0) ||
                        (y1 < h && y == y1 - 1);
            if (edge) continue;
            const uint8_t *a = part.px + ((size_t)(y - y0) * part.w + (x - part.x0)) * c;
            bad += memcmp(a, full.px + ((size_t)y * w + x) * c, (size_t)c) != 0;
          }
        if (bad) harness_fail(__FILE__, __LINE__, "%s 1/%d window [%d,%d)x[%d,%d): %d pixels differ", files[f].what,
                              denom, x0, x1, y0, y1, bad);
      }
    }
  CHECK(windows == 5 * 4 * 40 && narrowed > windows / 2);
  /* windows outside the image are refused */
  CHECK_ERR(image_decode_jpeg_window(&ctx, files[0].data, files[0].n, 3, 1, 0, W + 1, 0, H, &part), "outside");
  CHECK_ERR(image_decode_jpeg_window(&ctx, files[0].data, files[0].n, 3, 3, 0, 10, 0, 10, &part), "outside");
  for (int f = 0; f < 5; f++) tjFree(files[f].data);
  free(full.px), free(part.px), free(rgb), free(grey);
  image_ctx_free(&ctx);
}

/* A uint8 sink into a caller's buffer. */
typedef struct u8_out { uint8_t *px; int c, h, w; } u8_out;

static int open_u8(image_sink *s, int c, int h, int w) {
  u8_out *o = s->arg;
  o->px = realloc(o->px, (size_t)c * h * w);
  o->c = c, o->h = h, o->w = w;
  s->u8 = o->px;
  return 0;
}

static fc_tfm step(int kind, int h, int w) {
  return (fc_tfm){.kind = kind, .height = h, .width = w, .scale = {0.08, 1}, .ratio = {3.0 / 4, 4.0 / 3},
                  .val_xtra = 0.14, .p = 0.5};
}

/* The loader's path for `path` (header, plan, partial decode) against
 * fc_image_transform of its full decode, item by item: the largest
 * difference over `items` items; *narrowed counts the items decoded in
 * part. */
static int worst_item_diff(const char *path, int ntfms, const fc_tfm *tfms, int items, int *narrowed) {
  image_ctx ctx = {0};
  u8_out got = {0};
  fc_tensor *full = fc_image_read(path, 3, 0, 0);
  int worst = 0;
  *narrowed = 0;
  for (int item = 0; item < items && full; item++) {
    image_sink sink = {.open = open_u8, .arg = &got};
    fc_tensor *want = fc_image_transform(full, ntfms, tfms, 9, 1, item);
    if (image_load_item(&ctx, path, 3, ntfms, tfms, 9, 1, item, &sink) < 0 || !want) {
      harness_fail(__FILE__, __LINE__, "%s item %d: %s", path, item, fc_last_error());
      fc_release(want);
      break;
    }
    *narrowed += ctx.img[0].w < full->shape[2] || ctx.img[0].h < full->shape[1];
    CHECK(got.c * got.h * got.w == want->numel);
    const uint8_t *a = got.px, *b = fc_data_ptr(want);
    for (int64_t i = 0; i < want->numel; i++) worst = abs(a[i] - b[i]) > worst ? abs(a[i] - b[i]) : worst;
    fc_release(want);
  }
  fc_release(full);
  free(got.px);
  image_ctx_free(&ctx);
  return worst;
}

/* Pipelines whose crops keep at least half the resolution, so the JPEG
 * decodes at full scale: the loader's pixels are exactly those of the
 * full decode run through the same steps. The same holds for PNG, which
 * always decodes whole. */
TEST(item_path_equals_full_decode_then_steps) {
  uint8_t *rgb = textured(H, W, 3, false);
  jpeg_file files[3] = {encode(rgb, H, W, 3, TJSAMP_420, false, "4:2:0"), encode(rgb, H, W, 3, TJSAMP_444, true, "prog"),
                        encode(rgb, H, W, 3, TJSAMP_GRAY, false, "grey")};
  const char *names[3] = {"a420.jpg", "prog.jpg", "grey.jpg"};
  fc_tfm rrc_flip[2] = {step(FC_TFM_RANDOM_RESIZED_CROP, 112, 120), step(FC_TFM_FLIP, 0, 0)};
  fc_tfm rrc_valid = step(FC_TFM_RANDOM_RESIZED_CROP, 112, 120);
  rrc_valid.valid = 1;
  fc_tfm resize_crop = step(FC_TFM_RESIZE, 100, 120);
  fc_tfm resize_pad = step(FC_TFM_RESIZE, 100, 120);
  resize_pad.method = FC_RESIZE_PAD, resize_pad.pad_mode = FC_PAD_REFLECTION;
  fc_tfm center[2] = {step(FC_TFM_CENTER_CROP, 64, 48), step(FC_TFM_FLIP, 0, 0)};
  center[1].p = 1;
  struct { int n; const fc_tfm *t; int items; bool partial; } pipes[] = {
      {2, rrc_flip, 60, true}, {1, &rrc_valid, 2, true}, {1, &resize_crop, 20, true},
      {1, &resize_pad, 2, false}, {2, center, 2, true}};
  for (int f = 0; f < 3; f++) {
    write_bytes(tmp_path(names[f]), files[f].data, files[f].n);
    for (size_t p = 0; p < sizeof pipes / sizeof *pipes; p++) {
      int narrowed;
      int worst = worst_item_diff(tmp_path(names[f]), pipes[p].n, pipes[p].t, pipes[p].items, &narrowed);
      if (worst != 0) harness_fail(__FILE__, __LINE__, "%s pipeline %zu: differs by up to %d", names[f], p, worst);
      if (pipes[p].partial && narrowed < pipes[p].items * 3 / 4)
        harness_fail(__FILE__, __LINE__, "%s pipeline %zu: only %d of %d items decoded in part", names[f], p,
                     narrowed, pipes[p].items);
    }
    tjFree(files[f].data);
  }
  /* PNG: decoded whole, the same pixels */
  int64_t shape[3] = {3, H, W};
  fc_tensor *t = fc_empty(3, shape, FC_UINT8, CPU);
  uint8_t *q = fc_data_ptr(t);
  for (int k = 0; k < 3; k++)
    for (int i = 0; i < H * W; i++) q[k * H * W + i] = rgb[i * 3 + k];
  CHECK(fc_image_write(tmp_path("a.png"), t, 0) == 0);
  fc_release(t);
  for (size_t p = 0; p < sizeof pipes / sizeof *pipes; p++) {
    int narrowed;
    CHECK(worst_item_diff(tmp_path("a.png"), pipes[p].n, pipes[p].t, pipes[p].items, &narrowed) == 0);
    CHECK(narrowed == 0);
  }
  free(rgb);
}

/* Small outputs from large crops decode at 1/2 to 1/8 scale and in part:
 * close to the full-size decode resampled with antialiasing (DCT scaling
 * averages 2x2 to 8x8 blocks where the resampler weighs a triangle); the
 * partial decode adds nothing to the difference (the window test). */
TEST(scaled_partial_decode_close_to_full) {
  enum { BH = 480, BW = 640 };
  uint8_t *rgb = textured(BH, BW, 3, true);
  jpeg_file f = encode(rgb, BH, BW, 3, TJSAMP_420, false, "big");
  write_bytes(tmp_path("big.jpg"), f.data, f.n);
  tjFree(f.data), free(rgb);
  fc_tfm rrc = step(FC_TFM_RANDOM_RESIZED_CROP, 32, 32);
  rrc.scale[0] = 0.3;
  image_ctx ctx = {0};
  u8_out got = {0};
  fc_tensor *full = fc_image_read(tmp_path("big.jpg"), 3, 0, 0);
  double worst_mean = 0;
  int worst = 0, smaller = 0;
  for (int item = 0; item < 20; item++) {
    image_sink sink = {.open = open_u8, .arg = &got};
    fc_tensor *want = fc_image_transform(full, 1, &rrc, 3, 0, item);
    CHECK(image_load_item(&ctx, tmp_path("big.jpg"), 3, 1, &rrc, 3, 0, item, &sink) == 0);
    smaller += ctx.img[0].w * 2 <= BW && ctx.img[0].h * 2 <= BH; /* at 1/2 scale or less */
    const uint8_t *a = got.px, *b = fc_data_ptr(want);
    double sum = 0;
    for (int64_t i = 0; i < want->numel; i++) {
      int d = abs(a[i] - b[i]);
      sum += d;
      worst = d > worst ? d : worst;
    }
    worst_mean = fmax(worst_mean, sum / (double)want->numel);
    fc_release(want);
  }
  CHECK(smaller == 20);
  CHECK(worst_mean < 2); /* measured: 1.33 */
  CHECK(worst <= 12); /* measured: 10, and the same with the whole file decoded at that scale */
  fc_release(full), free(got.px);
  image_ctx_free(&ctx);
}

/* A file cut short below the rows a crop reads is still an error: the
 * decoder stops at the crop, but the end-of-image marker must be there.
 * Bytes after the marker do not matter. */
TEST(cut_files_fail_even_when_the_crop_stops_early) {
  uint8_t *rgb = textured(160, 160, 3, false);
  jpeg_file f = encode(rgb, 160, 160, 3, TJSAMP_420, false, "cut");
  free(rgb);
  fc_tfm top = step(FC_TFM_RESIZE, 16, 160); /* crop method, valid: rows 72..88 */
  top.valid = 1;
  fc_tfm centre = step(FC_TFM_CENTER_CROP, 16, 16);
  image_ctx ctx = {0};
  u8_out got = {0};
  image_sink sink = {.open = open_u8, .arg = &got};
  write_bytes(tmp_path("whole.jpg"), f.data, f.n);
  CHECK(image_load_item(&ctx, tmp_path("whole.jpg"), 3, 1, &centre, 0, 0, 0, &sink) == 0);
  CHECK(ctx.img[0].h < 160); /* it did stop early */
  write_bytes(tmp_path("cut.jpg"), f.data, f.n * 9 / 10);
  CHECK_ERR(image_load_item(&ctx, tmp_path("cut.jpg"), 3, 1, &centre, 0, 0, 0, &sink), "cut.jpg': corrupt or truncated JPEG (no end-of-image marker");
  CHECK_ERR(image_load_item(&ctx, tmp_path("cut.jpg"), 3, 1, &top, 0, 0, 0, &sink), "no end-of-image marker");
  /* cut above the crop's rows: libjpeg's own warning, also an error */
  write_bytes(tmp_path("cut2.jpg"), f.data, f.n / 4);
  CHECK_ERR(image_load_item(&ctx, tmp_path("cut2.jpg"), 3, 1, &centre, 0, 0, 0, &sink), "cut2.jpg': corrupt or truncated JPEG");
  /* the decoder is fine after errors, and trailing bytes after the marker are ignored */
  unsigned char *tail = malloc(f.n + 100);
  memcpy(tail, f.data, f.n);
  memset(tail + f.n, 0x5A, 100);
  write_bytes(tmp_path("tail.jpg"), tail, f.n + 100);
  CHECK(image_load_item(&ctx, tmp_path("tail.jpg"), 3, 1, &centre, 0, 0, 0, &sink) == 0);
  free(tail), tjFree(f.data), free(got.px);
  image_ctx_free(&ctx);
}

/* The resampler's weights sum to one whatever the scale, so a flat image
 * stays flat: 1 to 4 channels, odd sizes, downscales of up to 40x (many
 * taps, fewer at the edges), upscales, border padding. Under the sanitizers
 * this also checks that no tap, weighted or not, reads outside the image. */
TEST(flat_images_stay_flat_at_any_scale) {
  int sizes[][2] = {{1, 1}, {3, 7}, {17, 5}, {40, 33}, {9, 200}, {257, 3}};
  int outs[][2] = {{1, 1}, {2, 3}, {5, 5}, {16, 9}, {31, 64}};
  for (int c = 1; c <= 4; c++) {
    if (c == 2) continue;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
      int h = sizes[i][0], w = sizes[i][1];
      fc_tensor *img = fc_full(3, (int64_t[]){c, h, w}, 77, FC_UINT8, CPU);
      for (size_t j = 0; j < sizeof outs / sizeof *outs; j++) {
        fc_tfm t = step(FC_TFM_RESIZE, outs[j][0], outs[j][1]);
        for (int m = h * w > 1 ? FC_RESIZE_CROP : FC_RESIZE_SQUISH; m <= FC_RESIZE_PAD; m++) { /* 1x1: no crop box */
          t.method = m, t.pad_mode = FC_PAD_BORDER;
          fc_tensor *o = fc_image_transform(img, 1, &t, 1, 0, (int64_t)j);
          bool flat = o != NULL;
          for (int64_t e = 0; o && e < o->numel; e++) flat = flat && ((uint8_t *)fc_data_ptr(o))[e] == 77;
          if (!flat) harness_fail(__FILE__, __LINE__, "%dx%dx%d -> %dx%d method %d: not flat", c, h, w, outs[j][0],
                                  outs[j][1], m);
          fc_release(o);
        }
      }
      fc_release(img);
    }
  }
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/fastc_partial_XXXXXX");
  if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
  RUN(window_decode_equals_full_decode_inside);
  RUN(item_path_equals_full_decode_then_steps);
  RUN(scaled_partial_decode_close_to_full);
  RUN(cut_files_fail_even_when_the_crop_stops_early);
  RUN(flat_images_stay_flat_at_any_scale);
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return harness_report();
}
