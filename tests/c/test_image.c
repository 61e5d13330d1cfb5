/* test_image.c — decoding every format against pixels this test writes
 * itself (BMP, PNG, TGA by hand, GIF as bytes, JPEG through the encoder),
 * channel conversion, DCT-scaled decode, each item step against hand-worked
 * or PIL-computed pixels, the per-item randomness, every error path, and
 * the CSV reader. */
#include "harness.h"
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

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

/* The test pattern: value of (x, y, channel c). */
static uint8_t pattern(int x, int y, int c) { return (uint8_t)((x * 40 + y * 13 + c * 70) % 256); }

/* A uint8 [c,h,w] tensor holding the pattern. */
static fc_tensor *pattern_image(int c, int h, int w) {
  int64_t shape[3] = {c, h, w};
  fc_tensor *t = fc_empty(3, shape, FC_UINT8, CPU);
  uint8_t *p = fc_data_ptr(t);
  for (int k = 0; k < c; k++)
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++) p[(k * h + y) * w + x] = pattern(x, y, k);
  return t;
}

/* Checks a uint8 image tensor against the pattern, within tol. */
static void expect_pattern(fc_tensor *t, int c, int h, int w, int tol) {
  if (!t) { harness_fail(__FILE__, __LINE__, "NULL: %s", fc_last_error()); return; }
  CHECK(t->dtype == FC_UINT8 && t->ndim == 3 && t->shape[0] == c && t->shape[1] == h && t->shape[2] == w);
  if (t->ndim == 3 && t->shape[0] == c && t->shape[1] == h && t->shape[2] == w) {
    const uint8_t *p = fc_data_ptr(t);
    int worst = 0;
    for (int k = 0; k < c; k++)
      for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
          int d = abs((int)p[(k * h + y) * w + x] - pattern(x, y, k));
          if (d > worst) worst = d;
        }
    if (worst > tol) harness_fail(__FILE__, __LINE__, "pixels differ by up to %d (tol %d)", worst, tol);
  }
  fc_release(t);
}

static void put16(uint8_t *p, unsigned v) { p[0] = v & 255, p[1] = (v >> 8) & 255; }
static void put32(uint8_t *p, unsigned v) { put16(p, v & 0xffff), put16(p + 2, v >> 16); }
static void put32be(uint8_t *p, unsigned v) { p[0] = v >> 24, p[1] = (v >> 16) & 255, p[2] = (v >> 8) & 255, p[3] = v & 255; }

/* 24-bit BMP: BGR, rows bottom-up, each padded to 4 bytes. */
static void write_bmp(const char *path, int w, int h) {
  int row = (w * 3 + 3) / 4 * 4;
  size_t n = 54 + (size_t)row * h;
  uint8_t *b = calloc(n, 1);
  b[0] = 'B', b[1] = 'M';
  put32(b + 2, (unsigned)n), put32(b + 10, 54), put32(b + 14, 40), put32(b + 18, (unsigned)w);
  put32(b + 22, (unsigned)h), put16(b + 26, 1), put16(b + 28, 24);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < 3; c++) b[54 + (size_t)(h - 1 - y) * row + x * 3 + (2 - c)] = pattern(x, y, c);
  write_bytes(path, b, n);
  free(b);
}

/* Uncompressed true-colour TGA, rows top-down (descriptor bit 5). */
static void write_tga(const char *path, int w, int h) {
  size_t n = 18 + (size_t)w * h * 3;
  uint8_t *b = calloc(n, 1);
  b[2] = 2;
  put16(b + 12, (unsigned)w), put16(b + 14, (unsigned)h);
  b[16] = 24, b[17] = 0x20;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < 3; c++) b[18 + ((size_t)y * w + x) * 3 + (2 - c)] = pattern(x, y, c);
  write_bytes(path, b, n);
  free(b);
}

static size_t png_chunk(uint8_t *out, const char *type, const uint8_t *data, size_t n) {
  put32be(out, (unsigned)n);
  memcpy(out + 4, type, 4);
  if (n) memcpy(out + 8, data, n);
  put32be(out + 8 + n, (unsigned)crc32(crc32(0, NULL, 0), out + 4, (uInt)n + 4));
  return n + 12;
}

/* PNG of `c` channels (1 grey, 3 RGB, 4 RGBA with alpha = 255 - x*20):
 * filter 0 rows, zlib-compressed. */
static void write_png(const char *path, int w, int h, int c) {
  size_t raw_n = (size_t)h * (1 + w * c);
  uint8_t *raw = calloc(raw_n, 1);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int k = 0; k < c; k++)
        raw[y * (1 + w * c) + 1 + x * c + k] = k == 3 ? (uint8_t)(255 - x * 20) : pattern(x, y, k);
  uLongf zn = compressBound(raw_n);
  uint8_t *z = malloc(zn), *out = malloc(zn + 100), ihdr[13] = {0};
  compress(z, &zn, raw, raw_n);
  put32be(ihdr, (unsigned)w), put32be(ihdr + 4, (unsigned)h);
  ihdr[8] = 8, ihdr[9] = c == 1 ? 0 : c == 3 ? 2 : 6;
  size_t n = 8;
  memcpy(out, "\x89PNG\r\n\x1a\n", 8);
  n += png_chunk(out + n, "IHDR", ihdr, 13);
  n += png_chunk(out + n, "IDAT", z, zn);
  n += png_chunk(out + n, "IEND", NULL, 0);
  write_bytes(path, out, n);
  free(raw), free(z), free(out);
}

/* A 3x2 GIF written by PIL: palette red, green, blue, white; pixels
 * 0 1 2 / 3 0 1. */
static const uint8_t gif_bytes[] = {
    0x47, 0x49, 0x46, 0x38, 0x37, 0x61, 0x03, 0x00, 0x02, 0x00, 0x81, 0x00, 0x00, 0xff, 0x00, 0x00,
    0x00, 0xff, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00,
    0x02, 0x00, 0x00, 0x08, 0x08, 0x00, 0x01, 0x04, 0x10, 0x30, 0x40, 0x60, 0x40, 0x00, 0x3b};

TEST(decode_bmp_tga_png) {
  write_bmp(tmp_path("p.bmp"), 7, 5);
  expect_pattern(fc_image_read(tmp_path("p.bmp"), 3, 0, 0), 3, 5, 7, 0);
  write_tga(tmp_path("p.tga"), 6, 4);
  expect_pattern(fc_image_read(tmp_path("p.tga"), 3, 0, 0), 3, 4, 6, 0);
  write_png(tmp_path("p.png"), 5, 3, 3);
  expect_pattern(fc_image_read(tmp_path("p.png"), 3, 0, 0), 3, 3, 5, 0);
  expect_pattern(fc_image_read(tmp_path("p.png"), 0, 0, 0), 3, 3, 5, 0); /* the file's own */
  write_png(tmp_path("g.png"), 5, 3, 1);
  expect_pattern(fc_image_read(tmp_path("g.png"), 1, 0, 0), 1, 3, 5, 0);
}

TEST(decode_gif_first_frame) {
  write_bytes(tmp_path("p.gif"), gif_bytes, sizeof gif_bytes);
  EXPECT(fc_image_read(tmp_path("p.gif"), 3, 0, 0), FC_UINT8, S(3, 2, 3), 0,
         255, 0, 0, 255, 255, 0, /* R */
         0, 255, 0, 255, 0, 255, /* G */
         0, 0, 255, 255, 0, 0);  /* B */
}

TEST(channel_conversion) {
  /* grey to RGB repeats the value; RGBA keeps alpha; RGB gets opaque alpha */
  write_png(tmp_path("g.png"), 4, 2, 1);
  fc_tensor *rgb = fc_image_read(tmp_path("g.png"), 3, 0, 0);
  CHECK(rgb && rgb->shape[0] == 3);
  const uint8_t *p = fc_data_ptr(rgb);
  for (int i = 0; i < 8; i++) CHECK(p[i] == p[8 + i] && p[i] == p[16 + i] && p[i] == pattern(i % 4, i / 4, 0));
  fc_release(rgb);
  write_png(tmp_path("a.png"), 4, 2, 4);
  fc_tensor *rgba = fc_image_read(tmp_path("a.png"), 4, 0, 0);
  CHECK(rgba && rgba->shape[0] == 4);
  p = fc_data_ptr(rgba);
  for (int i = 0; i < 8; i++) CHECK(p[24 + i] == 255 - (i % 4) * 20 && p[i] == pattern(i % 4, i / 4, 0));
  fc_release(rgba);
  fc_tensor *drop = fc_image_read(tmp_path("a.png"), 3, 0, 0);
  CHECK(drop && drop->shape[0] == 3);
  fc_release(drop);
  write_png(tmp_path("c.png"), 4, 2, 3);
  fc_tensor *opaque = fc_image_read(tmp_path("c.png"), 4, 0, 0);
  p = fc_data_ptr(opaque);
  for (int i = 0; i < 8; i++) CHECK(p[24 + i] == 255);
  fc_release(opaque);
  /* RGB to grey: ITU-R 601 luma, as both libjpeg and stb_image weigh it */
  fc_tensor *grey = fc_image_read(tmp_path("c.png"), 1, 0, 0);
  CHECK(grey && grey->shape[0] == 1);
  p = fc_data_ptr(grey);
  for (int i = 0; i < 8; i++) {
    double y = 0.299 * pattern(i % 4, i / 4, 0) + 0.587 * pattern(i % 4, i / 4, 1) + 0.114 * pattern(i % 4, i / 4, 2);
    CHECK(fabs(p[i] - y) <= 1.5);
  }
  fc_release(grey);
}

/* A smooth image (JPEG-friendly) of size h x w. */
static fc_tensor *smooth_image(int c, int h, int w) {
  int64_t shape[3] = {c, h, w};
  fc_tensor *t = fc_empty(3, shape, FC_UINT8, CPU);
  uint8_t *p = fc_data_ptr(t);
  for (int k = 0; k < c; k++)
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++) p[(k * h + y) * w + x] = (uint8_t)(40 + x * 150 / w + y * 50 / h + k * 10);
  return t;
}

static double max_abs_diff(fc_tensor *a, fc_tensor *b) {
  if (!a || !b || a->numel != b->numel) return 1e9;
  const uint8_t *p = fc_data_ptr(a), *q = fc_data_ptr(b);
  double worst = 0;
  for (int64_t i = 0; i < a->numel; i++) worst = fmax(worst, abs((int)p[i] - (int)q[i]));
  return worst;
}

TEST(jpeg_round_trip_and_dct_scaling) {
  fc_tensor *img = smooth_image(3, 48, 64);
  CHECK(fc_image_write(tmp_path("s.jpg"), img, 98) == 0);
  fc_tensor *back = fc_image_read(tmp_path("s.jpg"), 3, 0, 0);
  CHECK(back && back->shape[1] == 48 && back->shape[2] == 64);
  CHECK(max_abs_diff(img, back) <= 4); /* JPEG is lossy; a smooth ramp survives well */
  fc_release(back);
  /* at least 20x30 is met by 1/2 scale (24x32); 1/4 would be 12x16 */
  fc_tensor *half = fc_image_read(tmp_path("s.jpg"), 3, 20, 30);
  CHECK(half && half->shape[1] == 24 && half->shape[2] == 32);
  /* the half-size decode is the image at half resolution: compare with the 2x2 means */
  if (half) {
    const uint8_t *p = fc_data_ptr(img), *q = fc_data_ptr(half);
    double worst = 0;
    for (int k = 0; k < 3; k++)
      for (int y = 0; y < 24; y++)
        for (int x = 0; x < 32; x++) {
          const uint8_t *s = p + (k * 48 + 2 * y) * 64 + 2 * x;
          double mean = (s[0] + s[1] + s[64] + s[65]) / 4.0;
          worst = fmax(worst, fabs(q[(k * 24 + y) * 32 + x] - mean));
        }
    CHECK(worst <= 5);
  }
  fc_release(half);
  fc_tensor *eighth = fc_image_read(tmp_path("s.jpg"), 3, 1, 1);
  CHECK(eighth && eighth->shape[1] == 6 && eighth->shape[2] == 8);
  fc_release(eighth);
  /* grey JPEG, and to RGB */
  fc_tensor *g = smooth_image(1, 16, 24);
  CHECK(fc_image_write(tmp_path("g.jpg"), g, 98) == 0);
  fc_tensor *g1 = fc_image_read(tmp_path("g.jpg"), 0, 0, 0), *g3 = fc_image_read(tmp_path("g.jpg"), 3, 0, 0);
  CHECK(g1 && g1->shape[0] == 1 && max_abs_diff(g, g1) <= 3);
  CHECK(g3 && g3->shape[0] == 3);
  if (g1 && g3) CHECK(memcmp(fc_data_ptr(g1), (uint8_t *)fc_data_ptr(g3) + 16 * 24, 16 * 24) == 0);
  fc_release(g1), fc_release(g3), fc_release(g), fc_release(img);
}

TEST(write_png_bmp_tga_round_trip) {
  fc_tensor *img = pattern_image(3, 5, 6);
  const char *names[] = {"w.png", "w.bmp", "w.tga"};
  for (int i = 0; i < 3; i++) {
    CHECK(fc_image_write(tmp_path(names[i]), img, 0) == 0);
    expect_pattern(fc_image_read(tmp_path(names[i]), 3, 0, 0), 3, 5, 6, 0);
  }
  fc_release(img);
}

TEST(decode_errors_name_the_file) {
  CHECK_ERR(fc_image_read(tmp_path("missing.jpg"), 3, 0, 0), "missing.jpg");
  CHECK_ERR(fc_image_read(tmp_path("missing.jpg"), 3, 0, 0), "No such file");
  write_bytes(tmp_path("empty.jpg"), "", 0);
  CHECK_ERR(fc_image_read(tmp_path("empty.jpg"), 3, 0, 0), "empty.jpg' is empty");
  write_bytes(tmp_path("junk.png"), "this is not an image at all", 27);
  CHECK_ERR(fc_image_read(tmp_path("junk.png"), 3, 0, 0), "junk.png");
  /* truncated JPEG: header intact, the entropy-coded data cut */
  fc_tensor *img = pattern_image(3, 120, 120); /* busy: the scan data is most of the file */
  fc_image_write(tmp_path("t.jpg"), img, 90);
  fc_release(img);
  FILE *f = fopen(tmp_path("t.jpg"), "rb");
  uint8_t buf[65536];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  CHECK(n > 4000 && n < sizeof buf);
  write_bytes(tmp_path("cut.jpg"), buf, n / 2);
  CHECK_ERR(fc_image_read(tmp_path("cut.jpg"), 3, 0, 0), "cut.jpg': corrupt or truncated JPEG");
  write_bytes(tmp_path("hdr.jpg"), buf, 40); /* cut inside the header */
  CHECK_ERR(fc_image_read(tmp_path("hdr.jpg"), 3, 0, 0), "hdr.jpg");
  write_png(tmp_path("p.png"), 20, 20, 3);
  f = fopen(tmp_path("p.png"), "rb");
  n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  write_bytes(tmp_path("cut.png"), buf, n - 30);
  CHECK_ERR(fc_image_read(tmp_path("cut.png"), 3, 0, 0), "cut.png");
  CHECK_ERR(fc_image_read(dir, 3, 0, 0), "cannot read");
  CHECK_ERR(fc_image_read(tmp_path("p.png"), 2, 0, 0), "channels must be 1, 3 or 4");
  CHECK_ERR(fc_image_decode(NULL, 0, 3, "x.jpg"), "x.jpg' is empty");
  /* decode from memory works on the same bytes */
  fc_tensor *m = fc_image_decode(buf, n, 3, "mem");
  CHECK(m && m->shape[1] == 20);
  fc_release(m);
}

TEST(write_errors) {
  fc_tensor *img = pattern_image(3, 2, 2), *f32 = fc_zeros(3, (int64_t[]){3, 2, 2}, FC_FLOAT32, CPU);
  fc_tensor *two = fc_zeros(3, (int64_t[]){2, 2, 2}, FC_UINT8, CPU);
  CHECK_ERR(fc_image_write(tmp_path("x.gif"), img, 90), "unknown extension");
  CHECK_ERR(fc_image_write(tmp_path("x.jpg"), img, 0), "quality must be 1..100");
  CHECK_ERR(fc_image_write(tmp_path("x.png"), f32, 0), "must be uint8");
  CHECK_ERR(fc_image_write(tmp_path("x.png"), two, 0), "1, 3 or 4 channels");
  CHECK_ERR(fc_image_write("/nonexistent/dir/x.jpg", img, 90), "/nonexistent/dir/x.jpg");
  fc_release(img), fc_release(f32), fc_release(two);
}

/* ---- item steps ------------------------------------------------------------ */

/* Every element of uint8 image t within `tol` of vals (absolute); releases t. */
static void expect_u8(const char *file, int line, fc_tensor *t, int tol, const double *vals, int64_t n) {
  if (!t) { harness_fail(file, line, "NULL: %s", fc_last_error()); return; }
  if (t->numel != n) harness_fail(file, line, "%lld elements, expected %lld", (long long)t->numel, (long long)n);
  const uint8_t *p = fc_data_ptr(t);
  for (int64_t i = 0; i < n && i < t->numel; i++)
    if (fabs(p[i] - vals[i]) > tol) {
      harness_fail(file, line, "element %lld = %d, expected %g (tol %d)", (long long)i, p[i], vals[i], tol);
      break;
    }
  fc_release(t);
}
#define EXPECT_U8(t, tol, ...) expect_u8(__FILE__, __LINE__, t, tol, (double[]){__VA_ARGS__}, \
                                         sizeof((double[]){__VA_ARGS__}) / sizeof(double))

static fc_tfm step(int kind, int h, int w) {
  return (fc_tfm){.kind = kind, .height = h, .width = w, .scale = {0.08, 1}, .ratio = {3.0 / 4, 4.0 / 3},
                  .val_xtra = 0.14, .p = 0.5};
}

static fc_tensor *run1(fc_tensor *img, fc_tfm t, int64_t item) {
  return fc_image_transform(img, 1, &t, 42, 0, item);
}

/* A 1-channel [1,h,w] image from values. */
static fc_tensor *grey(int h, int w, const double *v) { return mk(FC_UINT8, 3, (int64_t[]){1, h, w}, v); }

TEST(squish_antialiased_down_and_up) {
  /* hand-worked: 4 -> 2 widens the triangle filter to +-2 source pixels;
   * output 0 at 1.0: taps 0,1,2 weigh .75,.75,.25 -> (75 + 50)/1.75 = 71.4;
   * output 1 at 3.0: taps 1,2,3 weigh .25,.75,.75 -> 366.25/1.75 = 209.3 (PIL agrees) */
  fc_tensor *row = grey(1, 4, (double[]){0, 100, 200, 255});
  fc_tfm t = step(FC_TFM_RESIZE, 1, 2);
  t.method = FC_RESIZE_SQUISH;
  EXPECT(run1(row, t, 0), FC_UINT8, S(1, 1, 2), 0, 71, 209);
  /* 4 -> 8 is plain bilinear with the edge pixels held */
  t.width = 8;
  EXPECT(run1(row, t, 0), FC_UINT8, S(1, 1, 8), 0, 0, 25, 75, 125, 175, 214, 241, 255);
  fc_release(row);
  /* RGB 8x8 -> 4x4 against PIL's Image.resize(BILINEAR), within rounding */
  fc_tensor *img = pattern_image(3, 8, 8);
  t = step(FC_TFM_RESIZE, 4, 4);
  t.method = FC_RESIZE_SQUISH;
  EXPECT_U8(run1(img, t, 0), 1, 38, 109, 185, 136, 62, 133, 185, 78, 88, 159, 159, 72, 111,
         182, 134, 77, 108, 175, 118, 74, 132, 175, 71, 98, 158, 185, 81, 124, 181, 137, 80, 147, 178, 121, 73,
         144, 183, 97, 97, 168, 177, 71, 123, 194, 119, 70, 146, 217);
  fc_release(img);
}

TEST(resize_crop_and_pad_valid) {
  fc_tensor *img = pattern_image(3, 4, 6); /* w 6, h 4 */
  /* crop to 2x2: the 4x4 box at column 1 (centred), then 4 -> 2 (PIL: crop((1,0,5,4)).resize) */
  fc_tfm t = step(FC_TFM_RESIZE, 2, 2);
  t.method = FC_RESIZE_CROP, t.valid = 1;
  EXPECT_U8(run1(img, t, 0), 1, 78, 140, 99, 161, 148, 195, 169, 137, 181, 61, 155, 66);
  /* pad to 2x2: the 6x6 box from row -1 (a zero row above and below), then 6 -> 2 */
  t.method = FC_RESIZE_PAD;
  EXPECT_U8(run1(img, t, 0), 1, 44, 119, 60, 135, 97, 112, 113, 80, 125, 56, 117, 60);
  fc_release(img);
}

TEST(resize_crop_train_is_one_of_the_crops) {
  /* a 1x5 row to 1x2 crop: the box is 2 wide (no scaling), at column
   * int(u * (5 - 2)) for a uniform u in [0, 1): 0, 1 or 2 */
  fc_tensor *row = grey(1, 5, (double[]){10, 20, 30, 40, 50});
  fc_tfm t = step(FC_TFM_RESIZE, 1, 2);
  bool seen[3] = {0};
  for (int item = 0; item < 64; item++) {
    fc_tensor *o = run1(row, t, item);
    const uint8_t *p = fc_data_ptr(o);
    int l = p[0] / 10 - 1;
    CHECK(l >= 0 && l <= 2 && p[1] == p[0] + 10);
    if (l >= 0 && l <= 2) seen[l] = true;
    fc_release(o);
  }
  CHECK(seen[0] && seen[1] && seen[2]);
  fc_release(row);
}

TEST(center_crop_and_pad_modes) {
  double v[16];
  for (int i = 0; i < 16; i++) v[i] = 10 * (i / 4) + i % 4; /* value = 10 * row + col */
  fc_tensor *img = grey(4, 4, v);
  EXPECT(run1(img, step(FC_TFM_CENTER_CROP, 2, 2), 0), FC_UINT8, S(1, 2, 2), 0, 11, 12, 21, 22);
  /* odd: (4 - 3) // 2 = 0 */
  EXPECT(run1(img, step(FC_TFM_CENTER_CROP, 3, 3), 0), FC_UINT8, S(1, 3, 3), 0, 0, 1, 2, 10, 11, 12, 20, 21, 22);
  /* pad 4 -> 5: (4 - 5) // 2 = -1, so one row/column before, none after */
  fc_tfm t = step(FC_TFM_PAD, 5, 5);
  EXPECT(run1(img, t, 0), FC_UINT8, S(1, 5, 5), 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 0, 10, 11, 12, 13, 0, 20, 21,
         22, 23, 0, 30, 31, 32, 33);
  t.pad_mode = FC_PAD_BORDER;
  EXPECT(run1(img, t, 0), FC_UINT8, S(1, 5, 5), 0, 0, 0, 1, 2, 3, 0, 0, 1, 2, 3, 10, 10, 11, 12, 13, 20, 20, 21,
         22, 23, 30, 30, 31, 32, 33);
  t.pad_mode = FC_PAD_REFLECTION;
  EXPECT(run1(img, t, 0), FC_UINT8, S(1, 5, 5), 0, 11, 10, 11, 12, 13, 1, 0, 1, 2, 3, 11, 10, 11, 12, 13, 21, 20,
         21, 22, 23, 31, 30, 31, 32, 33);
  /* crop one way, pad the other: 4x4 -> 2 rows x 6 columns */
  EXPECT(run1(img, step(FC_TFM_CENTER_CROP, 2, 6), 0), FC_UINT8, S(1, 2, 6), 0, 0, 10, 11, 12, 13, 0, 0, 20, 21,
         22, 23, 0);
  fc_release(img);
}

TEST(random_resized_crop_valid_and_fallbacks) {
  /* valid: squish 10x10 to 8 + xtra (ceil(8 * .14 / 8) * 8 = 8) = 16, keep the centre 8x8
   * (PIL: resize((16,16)).crop((4,4,12,12))), within rounding */
  fc_tensor *img = pattern_image(3, 10, 10);
  fc_tfm t = step(FC_TFM_RANDOM_RESIZED_CROP, 8, 8);
  t.valid = 1;
  static const double pil[] = {123, 148, 173, 198, 223, 136, 17, 42, 131, 156, 181, 206, 231, 144, 25, 50, 139, 164, 189, 214, 239, 152, 33, 58, 147, 172, 197, 213, 208, 133, 41, 66, 156, 181, 206, 192, 87, 52, 50, 75, 164, 189, 214, 191, 56, 33, 58, 83, 172, 197, 222, 199, 64, 41, 66, 91, 180, 205, 230, 207, 72, 49, 74, 99, 193, 218, 99, 12, 37, 62, 87, 112, 201, 226, 107, 20, 45, 70, 95, 120, 209, 234, 115, 28, 53, 78, 103, 128, 217, 242, 123, 36, 61, 86, 111, 136, 226, 251, 132, 45, 70, 95, 120, 145, 199, 154, 91, 53, 78, 103, 128, 153, 162, 27, 36, 61, 86, 111, 136, 161, 170, 35, 44, 69, 94, 119, 144, 169, 128, 43, 57, 82, 107, 132, 157, 182, 26, 41, 65, 90, 115, 140, 165, 190, 23, 48, 73, 98, 123, 148, 173, 198, 31, 56, 81, 106, 131, 156, 181, 206, 40, 65, 90, 115, 140, 165, 190, 215, 48, 73, 98, 123, 148, 173, 198, 223, 56, 81, 106, 131, 156, 181, 206, 231, 64, 89, 114, 139, 164, 189, 214, 239};
  fc_tensor *o = run1(img, t, 0);
  CHECK(o && o->numel == 192);
  if (o) {
    const uint8_t *p = fc_data_ptr(o);
    int worst = 0;
    for (int i = 0; i < 192; i++) worst = abs(p[i] - (int)pil[i]) > worst ? abs(p[i] - (int)pil[i]) : worst;
    CHECK(worst <= 1);
  }
  fc_release(o);
  fc_release(img);
  /* scale {1,1} and ratio {1,1} on a square: the crop is the whole image, i.e. squish */
  img = pattern_image(3, 8, 8);
  t = step(FC_TFM_RANDOM_RESIZED_CROP, 4, 4);
  t.scale[0] = t.scale[1] = 1, t.ratio[0] = t.ratio[1] = 1;
  fc_tfm sq = step(FC_TFM_RESIZE, 4, 4);
  sq.method = FC_RESIZE_SQUISH;
  fc_tensor *a = run1(img, t, 3), *b = run1(img, sq, 3);
  CHECK(max_abs_diff(a, b) == 0);
  fc_release(a), fc_release(b), fc_release(img);
  /* 20 wide x 10 high with area 1 and ratio 1: sqrt(200) = 14 > 10 on every
   * attempt, so the fallback centre crop 10x10 at column 5 */
  img = pattern_image(1, 10, 20);
  t = step(FC_TFM_RANDOM_RESIZED_CROP, 10, 10);
  t.scale[0] = t.scale[1] = 1, t.ratio[0] = t.ratio[1] = 1;
  a = run1(img, t, 0);
  b = run1(img, step(FC_TFM_CENTER_CROP, 10, 10), 0);
  CHECK(max_abs_diff(a, b) == 0);
  fc_release(a), fc_release(b), fc_release(img);
}

TEST(random_resized_crop_train_draws_per_item) {
  fc_tensor *img = pattern_image(3, 40, 50);
  fc_tfm t = step(FC_TFM_RANDOM_RESIZED_CROP, 16, 16);
  fc_tensor *a = fc_image_transform(img, 1, &t, 7, 2, 5), *b = fc_image_transform(img, 1, &t, 7, 2, 5);
  fc_tensor *c = fc_image_transform(img, 1, &t, 7, 2, 6), *d = fc_image_transform(img, 1, &t, 7, 3, 5);
  fc_tensor *e = fc_image_transform(img, 1, &t, 8, 2, 5);
  CHECK(a && a->shape[0] == 3 && a->shape[1] == 16 && a->shape[2] == 16);
  CHECK(max_abs_diff(a, b) == 0);                                       /* same (seed, epoch, item) */
  CHECK(max_abs_diff(a, c) > 0 && max_abs_diff(a, d) > 0 && max_abs_diff(a, e) > 0); /* any key changes it */
  fc_release(a), fc_release(b), fc_release(c), fc_release(d), fc_release(e), fc_release(img);
}

TEST(flip_probability) {
  fc_tensor *row = grey(1, 3, (double[]){1, 2, 3});
  fc_tfm t = {.kind = FC_TFM_FLIP, .p = 1};
  EXPECT(run1(row, t, 0), FC_UINT8, S(1, 1, 3), 0, 3, 2, 1);
  t.p = 0;
  EXPECT(run1(row, t, 0), FC_UINT8, S(1, 1, 3), 0, 1, 2, 3);
  t.p = 0.5;
  int flipped = 0;
  for (int item = 0; item < 400; item++) {
    fc_tensor *o = run1(row, t, item);
    flipped += ((uint8_t *)fc_data_ptr(o))[0] == 3;
    fc_release(o);
  }
  CHECK(flipped > 160 && flipped < 240); /* binomial(400, .5): 200 +- 40 is 4 sigma */
  /* RGB: channels flip together */
  fc_tensor *img = pattern_image(3, 2, 3);
  t.p = 1;
  fc_tensor *o = run1(img, t, 0);
  const uint8_t *p = fc_data_ptr(o);
  for (int k = 0; k < 3; k++)
    for (int y = 0; y < 2; y++)
      for (int x = 0; x < 3; x++) CHECK(p[(k * 2 + y) * 3 + x] == pattern(2 - x, y, k));
  fc_release(o), fc_release(img), fc_release(row);
}

TEST(steps_compose_in_order) {
  /* pad 4 -> 6 (zeros), then centre crop back to 4: the original again */
  fc_tensor *img = pattern_image(3, 4, 4);
  fc_tfm ts[2] = {step(FC_TFM_PAD, 6, 6), step(FC_TFM_CENTER_CROP, 4, 4)};
  expect_pattern(fc_image_transform(img, 2, ts, 0, 0, 0), 3, 4, 4, 0);
  fc_release(img);
}

TEST(step_errors) {
  fc_tensor *img = pattern_image(3, 4, 4);
  fc_tfm t = step(FC_TFM_RESIZE, 0, 4);
  CHECK_ERR(fc_image_transform(img, 1, &t, 0, 0, 0), "1st step has size 0x4");
  t = step(99, 4, 4);
  CHECK_ERR(fc_image_transform(img, 1, &t, 0, 0, 0), "unknown kind 99");
  t = step(FC_TFM_RESIZE, 4, 4);
  t.method = 7;
  CHECK_ERR(fc_image_transform(img, 1, &t, 0, 0, 0), "unknown resize method 7");
  t = step(FC_TFM_RANDOM_RESIZED_CROP, 4, 4);
  t.scale[0] = 0;
  CHECK_ERR(fc_image_transform(img, 1, &t, 0, 0, 0), "scale {0, 1}");
  t = (fc_tfm){.kind = FC_TFM_FLIP, .p = 2};
  CHECK_ERR(fc_image_transform(img, 1, &t, 0, 0, 0), "flip p must be in [0, 1]");
  fc_tensor *f32 = fc_zeros(3, (int64_t[]){3, 2, 2}, FC_FLOAT32, CPU);
  t = step(FC_TFM_PAD, 4, 4);
  CHECK_ERR(fc_image_transform(f32, 1, &t, 0, 0, 0), "image must be uint8");
  fc_release(f32), fc_release(img);
}

/* ---- CSV ------------------------------------------------------------------- */

TEST(csv_columns_quotes_and_types) {
  const char *text = "name,label,score\r\n"
                     "a.jpg,cat,1.5\r\n"
                     "\"b, c.jpg\",\"say \"\"hi\"\"\",2\n"
                     "\n"
                     "\"multi\nline\",dog,\n";
  write_bytes(tmp_path("t.csv"), text, strlen(text));
  fc_csv *csv = fc_csv_read(tmp_path("t.csv"), 1, ',');
  CHECK(csv);
  if (!csv) return;
  CHECK(fc_csv_rows(csv) == 3 && fc_csv_cols(csv) == 3);
  CHECK(strcmp(fc_csv_name(csv, 0), "name") == 0 && strcmp(fc_csv_name(csv, 2), "score") == 0);
  CHECK(strcmp(fc_csv_string(csv, 0, 1), "b, c.jpg") == 0);
  CHECK(strcmp(fc_csv_string(csv, 1, 1), "say \"hi\"") == 0);
  CHECK(strcmp(fc_csv_string(csv, 0, 2), "multi\nline") == 0);
  CHECK(!fc_csv_is_numeric(csv, 0) && !fc_csv_is_numeric(csv, 1) && fc_csv_is_numeric(csv, 2));
  CHECK(fc_csv_number(csv, 2, 0) == 1.5 && fc_csv_number(csv, 2, 1) == 2 && isnan(fc_csv_number(csv, 2, 2)));
  CHECK(fc_csv_string(csv, 3, 0) == NULL && fc_csv_string(csv, 0, 3) == NULL);
  fc_csv_free(csv);
  /* no header, another separator, no final newline */
  write_bytes(tmp_path("s.csv"), "1;x\n2;y", 7);
  csv = fc_csv_read(tmp_path("s.csv"), 0, ';');
  CHECK(csv && fc_csv_rows(csv) == 2 && fc_csv_name(csv, 0) == NULL && fc_csv_number(csv, 0, 1) == 2);
  CHECK(csv && strcmp(fc_csv_string(csv, 1, 1), "y") == 0);
  fc_csv_free(csv);
}

TEST(csv_errors) {
  CHECK(fc_csv_read(tmp_path("nope.csv"), 1, ',') == NULL && strstr(fc_last_error(), "nope.csv"));
  write_bytes(tmp_path("ragged.csv"), "a,b\n1,2\n3\n", 10);
  CHECK(fc_csv_read(tmp_path("ragged.csv"), 1, ',') == NULL && strstr(fc_last_error(), "row 3 has 1 fields, expected 2"));
  write_bytes(tmp_path("open.csv"), "a,b\n\"1,2\n", 9);
  CHECK(fc_csv_read(tmp_path("open.csv"), 1, ',') == NULL && strstr(fc_last_error(), "never closed"));
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/fastc_test_image_XXXXXX");
  if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
  RUN(decode_bmp_tga_png);
  RUN(decode_gif_first_frame);
  RUN(channel_conversion);
  RUN(jpeg_round_trip_and_dct_scaling);
  RUN(write_png_bmp_tga_round_trip);
  RUN(decode_errors_name_the_file);
  RUN(write_errors);
  RUN(squish_antialiased_down_and_up);
  RUN(resize_crop_and_pad_valid);
  RUN(resize_crop_train_is_one_of_the_crops);
  RUN(center_crop_and_pad_modes);
  RUN(random_resized_crop_valid_and_fallbacks);
  RUN(random_resized_crop_train_draws_per_item);
  RUN(flip_probability);
  RUN(steps_compose_in_order);
  RUN(step_errors);
  RUN(csv_columns_quotes_and_types);
  RUN(csv_errors);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return harness_report();
}
