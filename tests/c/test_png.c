/* test_png.c — PNG write/read round trips, the atomic write, text drawing,
 * and the errors. */
#include "harness.h"
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

static char path[256];

static void temp_path(const char *name) {
  snprintf(path, sizeof path, "/tmp/fastc_test_png_%ld_%s.png", (long)getpid(), name);
}

/* Writes w x h x c bytes 0, 7, 14, ... and checks the file reads back the same. */
static void round_trip(int w, int h, int c) {
  temp_path("rt");
  uint8_t *px = malloc((size_t)w * h * c);
  for (int i = 0; i < w * h * c; i++) px[i] = (uint8_t)(i * 7);
  CHECK(fc_write_png(path, w, h, c, px) == 0);
  fc_tensor *t = fc_read_png(path);
  CHECK(t != NULL);
  if (t) {
    CHECK(t->dtype == FC_UINT8 && t->ndim == 3);
    CHECK(t->shape[0] == h && t->shape[1] == w && t->shape[2] == c);
    const uint8_t *got = fc_data_ptr(t);
    int bad = 0;
    for (int i = 0; i < w * h * c; i++) bad += got[i] != px[i];
    CHECK(bad == 0);
    fc_release(t);
  }
  unlink(path);
  free(px);
}

TEST(round_trips) {
  round_trip(3, 2, 3);
  round_trip(1, 1, 1);
  round_trip(17, 5, 4);
  round_trip(64, 33, 2);
}

/* The temp file is gone after the rename, and writing over an existing
 * file replaces it. */
TEST(atomic_replace) {
  temp_path("atomic");
  uint8_t a[4] = {1, 2, 3, 4}, b[4] = {9, 9, 9, 9};
  CHECK(fc_write_png(path, 2, 2, 1, a) == 0);
  CHECK(fc_write_png(path, 2, 2, 1, b) == 0);
  char tmp[300];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  CHECK(access(tmp, F_OK) != 0);
  fc_tensor *t = fc_read_png(path);
  CHECK(t && ((uint8_t *)fc_data_ptr(t))[3] == 9);
  fc_release(t);
  unlink(path);
}

TEST(errors) {
  uint8_t px[12] = {0};
  CHECK_ERR(fc_write_png("/tmp/x.png", 0, 2, 3, px), "write_png: image size 0x2 must be positive");
  CHECK_ERR(fc_write_png("/tmp/x.png", 2, 2, 5, px), "channels must be 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA), got 5");
  CHECK_ERR(fc_write_png("/tmp/x.png", 2, 2, 3, NULL), "write_png: pixels is NULL");
  CHECK_ERR(fc_write_png("", 2, 2, 3, px), "write_png: path is empty");
  CHECK_ERR(fc_write_png("/nonexistent_dir_fastc/x.png", 2, 2, 3, px),
            "write_png: cannot write '/nonexistent_dir_fastc/x.png'");
  CHECK_ERR(fc_read_png("/nonexistent_dir_fastc/x.png"), "read_png: cannot read '/nonexistent_dir_fastc/x.png'");
  /* a file that is not a PNG */
  temp_path("notpng");
  FILE *f = fopen(path, "wb");
  fputs("hello, not an image", f);
  fclose(f);
  CHECK_ERR(fc_read_png(path), "read_png: cannot read");
  unlink(path);
}

/* Text lands inside its box (width x height from fc_text_width/height),
 * scales, clips at the borders, and never writes outside the image. */
TEST(text) {
  enum { W = 80, H = 40 };
  uint8_t px[W * H * 3];
  memset(px, 255, sizeof px);
  const uint8_t red[3] = {200, 0, 0};
  int tw = fc_text_width("Hi 1.5"), th = fc_text_height("Hi 1.5");
  CHECK(tw > 20 && tw < 50 && th >= 7 && th <= 12);
  CHECK(fc_draw_text(px, W, H, 3, 10, 5, "Hi 1.5", red, 1) > 0);
  int inside = 0, outside = 0;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      int drawn = px[(y * W + x) * 3] == 200 && px[(y * W + x) * 3 + 1] == 0;
      if (!drawn) continue;
      if (x >= 10 && x < 10 + tw && y >= 5 && y < 5 + th + 1) inside++;
      else outside++;
    }
  CHECK(inside > 20);
  CHECK(outside == 0);
  /* scale 2 covers about four times the pixels */
  uint8_t big[W * H * 3];
  memset(big, 255, sizeof big);
  CHECK(fc_draw_text(big, W, H, 3, 0, 0, "Hi 1.5", red, 2) > 0);
  int count2 = 0;
  for (int i = 0; i < W * H; i++) count2 += big[i * 3] == 200;
  CHECK(count2 > 3 * inside && count2 <= 4 * inside);
  /* clipped at every border, non-ASCII replaced, no crash */
  CHECK(fc_draw_text(px, W, H, 3, -30, -4, "clip \xc3\xa9 me", red, 3) > 0);
  CHECK(fc_draw_text(px, W, H, 3, W - 3, H - 3, "edge", red, 1) > 0);
  CHECK_ERR(fc_draw_text(px, W, H, 3, 0, 0, "x", red, 0), "draw_text: scale must be 1..16, got 0");
  CHECK_ERR(fc_draw_text(px, W, H, 3, 0, 0, NULL, red, 1), "draw_text: text and color must not be NULL");
}

int main(void) {
  RUN(round_trips);
  RUN(atomic_replace);
  RUN(errors);
  RUN(text);
  return harness_report();
}
