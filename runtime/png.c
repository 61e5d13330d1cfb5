/* png.c — PNG files and text for the plots the training layer draws.
 *
 * Encoding and decoding are stb_image_write and stb_image (Debian's
 * libstb-dev), compiled here with static linkage so no other file that
 * includes them can clash. The text is stb_easy_font: each glyph is a few
 * axis-aligned quads, which we fill into the pixel buffer. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

/* static stb: the functions we do not call are reported at the end of the
 * file, so this one warning stays off for the whole file */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#include <stb/stb_image.h>
#include <stb/stb_easy_font.h>
#pragma GCC diagnostic pop

static int check_image(const char *op, int w, int h, int channels, const void *pixels) {
  if (w <= 0 || h <= 0) FAIL_INT("%s: image size %dx%d must be positive", op, w, h);
  if (channels < 1 || channels > 4)
    FAIL_INT("%s: channels must be 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA), got %d", op, channels);
  if (!pixels) FAIL_INT("%s: pixels is NULL", op);
  return 0;
}

/* Writes all of data to fd, retrying short writes. */
static int write_all(int fd, const unsigned char *data, size_t n) {
  while (n > 0) {
    ssize_t k = write(fd, data, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    data += k;
    n -= (size_t)k;
  }
  return 0;
}

/* The encoded file goes to path.tmp.<pid>, is fsynced and renamed over
 * path: a reader never sees half a PNG. */
static int write_atomically(const char *path, const unsigned char *data, size_t n) {
  size_t len = strlen(path) + 32;
  char *tmp = malloc(len);
  if (!tmp) FAIL_INT("write_png: out of memory");
  snprintf(tmp, len, "%s.tmp.%ld", path, (long)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) {
    fc_set_error("write_png: cannot write '%s' (temp file '%s'): %s", path, tmp, strerror(errno));
    free(tmp);
    return -1;
  }
  int rc = 0;
  if (write_all(fd, data, n) < 0 || fsync(fd) < 0) {
    fc_set_error("write_png: writing '%s' failed: %s", tmp, strerror(errno));
    rc = -1;
  }
  if (close(fd) < 0 && rc == 0) {
    fc_set_error("write_png: closing '%s' failed: %s", tmp, strerror(errno));
    rc = -1;
  }
  if (rc == 0 && rename(tmp, path) < 0) {
    fc_set_error("write_png: cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
    rc = -1;
  }
  if (rc < 0) unlink(tmp);
  free(tmp);
  return rc;
}

int fc_write_png(const char *path, int w, int h, int channels, const uint8_t *pixels) {
  if (!path || !*path) FAIL_INT("write_png: path is empty");
  if (check_image("write_png", w, h, channels, pixels) < 0) return -1;
  int n = 0;
  unsigned char *png = stbi_write_png_to_mem(pixels, w * channels, w, h, channels, &n);
  if (!png) FAIL_INT("write_png: encoding a %dx%dx%d image failed (out of memory)", w, h, channels);
  int rc = write_atomically(path, png, (size_t)n);
  STBIW_FREE(png);
  return rc;
}

fc_tensor *fc_read_png(const char *path) {
  if (!path) FAIL("read_png: path is NULL");
  int w, h, channels;
  unsigned char *data = stbi_load(path, &w, &h, &channels, 0);
  if (!data) FAIL("read_png: cannot read '%s': %s", path, stbi_failure_reason());
  fc_tensor *t = fc_from_buffer(data, FC_UINT8, 3, (int64_t[]){h, w, channels}, FC_UINT8,
                                (fc_device){FC_CPU, 0});
  stbi_image_free(data);
  return t;
}

/* ---- text ---------------------------------------------------------------- */

enum { TEXT_MAX = 1024, QUAD_BYTES = 64 }; /* 4 vertices of x, y, z, rgba */

/* stb_easy_font indexes its tables by (char - 32): anything outside
 * printable ASCII becomes '?'. */
static void printable(const char *text, char *out) {
  size_t i = 0;
  for (; text[i] && i < TEXT_MAX - 1; i++) {
    unsigned char c = (unsigned char)text[i];
    out[i] = (c == '\n' || (c >= 32 && c < 127)) ? (char)c : '?';
  }
  out[i] = 0;
}

int fc_text_width(const char *text) {
  if (!text) return 0;
  char buf[TEXT_MAX];
  printable(text, buf);
  return stb_easy_font_width(buf);
}

int fc_text_height(const char *text) {
  if (!text) return 0;
  char buf[TEXT_MAX];
  printable(text, buf);
  return stb_easy_font_height(buf);
}

/* Fills [x0, x1) x [y0, y1) with color, clipped to the image. */
static void fill_rect(uint8_t *pixels, int w, int h, int channels, int x0, int y0, int x1, int y1,
                      const uint8_t *color) {
  if (x0 < 0) x0 = 0;
  if (y0 < 0) y0 = 0;
  if (x1 > w) x1 = w;
  if (y1 > h) y1 = h;
  for (int y = y0; y < y1; y++)
    for (int x = x0; x < x1; x++) memcpy(pixels + ((size_t)y * w + x) * channels, color, channels);
}

int fc_draw_text(uint8_t *pixels, int w, int h, int channels, int x, int y, const char *text,
                 const uint8_t *color, int scale) {
  if (check_image("draw_text", w, h, channels, pixels) < 0) return -1;
  if (!text || !color) FAIL_INT("draw_text: text and color must not be NULL");
  if (scale < 1 || scale > 16) FAIL_INT("draw_text: scale must be 1..16, got %d", scale);
  char buf[TEXT_MAX];
  printable(text, buf);
  size_t cap = (strlen(buf) + 1) * 300 + QUAD_BYTES; /* stb's estimate: ~270 bytes a character */
  char *quads = malloc(cap);
  if (!quads) FAIL_INT("draw_text: out of memory");
  int n = stb_easy_font_print(0, 0, buf, NULL, quads, (int)cap);
  for (int q = 0; q < n; q++) {
    const float *v0 = (const float *)(quads + (size_t)q * QUAD_BYTES);      /* top-left */
    const float *v2 = (const float *)(quads + (size_t)q * QUAD_BYTES + 32); /* bottom-right */
    fill_rect(pixels, w, h, channels, x + (int)lrintf(v0[0]) * scale, y + (int)lrintf(v0[1]) * scale,
              x + (int)lrintf(v2[0]) * scale, y + (int)lrintf(v2[1]) * scale, color);
  }
  free(quads);
  return n;
}
