/* image.c — decoding, writing and the item steps of the data loader.
 *
 * An item goes: file bytes -> header (size only) -> the first geometric step
 * planned in the original image's coordinates -> decode, for a JPEG at the
 * smallest DCT scale that still gives the step all the pixels it uses, and
 * only the rows and columns the step reads -> each step as one resampling of
 * a source box into the output size -> the last step's rows straight into
 * the caller's [C,H,W] planes (uint8, or normalised float).
 *
 * Every geometric step (fastai's Resize, RandomResizedCrop, CropPad) is "crop
 * a box, padding where it leaves the image, then resize the box to the output
 * size". The resampler does that in one pass per axis, across then down (as
 * PIL): output pixel i takes the bilinear filter, widened by the downscale
 * factor (antialiasing, as PIL), centred at box_x0 + (i + 0.5) * scale, over
 * source pixels clipped to the box; pixels of the box outside the image come
 * from the pad mode. The weights are PIL's 22-bit fixed point, so a pass
 * gives PIL's pixels.
 *
 * Randomness: each item draws from its own Philox stream keyed by (seed,
 * epoch, item), so the result does not depend on which thread runs it. */
#include "internal.h"
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jpeglib.h>
#include <turbojpeg.h>
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

/* ---- per-item random stream ---------------------------------------------- */

typedef struct item_rng {
  uint32_t key[2], ctr[4], buf[4];
  int left;
} item_rng;

static void rng_init(item_rng *r, uint64_t seed, int64_t epoch, int64_t item) {
  *r = (item_rng){.key = {(uint32_t)seed, (uint32_t)(seed >> 32)},
                  .ctr = {0, (uint32_t)item, (uint32_t)((uint64_t)item >> 32), (uint32_t)epoch}};
}

static uint32_t rng_u32(item_rng *r) {
  if (r->left == 0) {
    philox4x32_10(r->ctr, r->key, r->buf);
    r->ctr[0]++;
    r->left = 4;
  }
  return r->buf[4 - r->left--];
}

/* [0, 1) with 53 random bits. */
static double rng_unit(item_rng *r) {
  uint64_t hi = rng_u32(r), lo = rng_u32(r);
  return (double)((hi << 21) ^ (lo >> 11)) * (1.0 / 9007199254740992.0);
}

static double rng_uniform(item_rng *r, double a, double b) { return a + (b - a) * rng_unit(r); }

/* An integer in [lo, hi], both included (Python's random.randint). */
static int rng_int(item_rng *r, int lo, int hi) {
  if (hi <= lo) return lo;
  return lo + (int)(rng_unit(r) * (double)(hi - lo + 1));
}


/* ---- image buffers ------------------------------------------------------- */

enum { SLACK = 32 }; /* bytes past the pixels that vector loads and stores may touch */

static void *grow(uint8_t **buf, size_t *cap, size_t n) {
  if (n + SLACK > *cap) {
    uint8_t *p = realloc(*buf, n + SLACK);
    if (!p) return NULL;
    memset(p + n, 0, SLACK);
    *buf = p;
    *cap = n + SLACK;
  }
  return *buf;
}

static int image_alloc(image *im, int h, int w, int c) {
  if (!grow(&im->px, &im->cap, (size_t)h * (size_t)w * (size_t)c))
    FAIL_INT("image: out of memory for a %dx%dx%d image", h, w, c);
  im->h = h, im->w = w, im->c = c, im->x0 = im->y0 = 0;
  return 0;
}

static void jpeg_dec_free(void *jpeg);
static void plan_free(void *plan);

void image_ctx_free(image_ctx *ctx) {
  jpeg_dec_free(ctx->jpeg);
  plan_free(ctx->plan);
  free(ctx->file);
  free(ctx->img[0].px);
  free(ctx->img[1].px);
  free(ctx->tmp);
  free(ctx->row);
  memset(ctx, 0, sizeof *ctx);
}

/* ---- files --------------------------------------------------------------- */

static int read_file(image_ctx *ctx, const char *path, size_t *n) {
  char eb[128];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) FAIL_INT("cannot open '%s': %s", path, strerror_r(errno, eb, sizeof eb));
  struct stat st;
  size_t len = 0;
  bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  if (ok && st.st_size > 0 && !grow(&ctx->file, &ctx->file_cap, (size_t)st.st_size)) {
    close(fd);
    FAIL_INT("'%s': out of memory reading %lld bytes", path, (long long)st.st_size);
  }
  while (ok && len < (size_t)st.st_size) {
    ssize_t got = read(fd, ctx->file + len, (size_t)st.st_size - len);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) ok = false;
    else len += (size_t)got;
  }
  close(fd);
  if (!ok) FAIL_INT("cannot read '%s' (not a regular file, or a read error)", path);
  if (len == 0) FAIL_INT("'%s' is empty (0 bytes)", path);
  *n = len;
  return 0;
}

/* ---- decoding ------------------------------------------------------------ */

typedef enum { FMT_JPEG, FMT_OTHER } img_format;

/* What the header says, before any pixel is decoded. */
typedef struct source {
  const uint8_t *buf;
  size_t n;
  const char *name;
  img_format fmt;
  int w, h, file_channels;
} source;

/* The part of the (DCT-scaled) image to decode: columns [x0, x1), rows [y0, y1). */
typedef struct window { int x0, x1, y0, y1; } window;

static bool is_jpeg(const uint8_t *b, size_t n) { return n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF; }

/* JPEGs go through libjpeg's own API rather than TurboJPEG's: only it can
 * skip the rows (jpeg_skip_scanlines) and columns (jpeg_crop_scanline) that
 * a crop does not read. Errors longjmp back to the setjmp of the call that
 * drove the decoder, with libjpeg's message in msg. */
typedef struct jpeg_dec {
  struct jpeg_decompress_struct ci; /* first: libjpeg's callbacks get its address */
  struct jpeg_error_mgr err;
  jmp_buf jb;
  char msg[JMSG_LENGTH_MAX];
} jpeg_dec;

static void jpeg_fail(j_common_ptr ci) {
  jpeg_dec *d = (jpeg_dec *)ci;
  ci->err->format_message(ci, d->msg);
  longjmp(d->jb, 1);
}

/* A warning means corrupt data libjpeg would paper over (a file cut short
 * comes out grey at the bottom): an error here, as TurboJPEG's
 * TJFLAG_STOPONWARNING made it before. */
static void jpeg_message(j_common_ptr ci, int level) {
  if (level < 0) jpeg_fail(ci);
}

static void jpeg_dec_free(void *jpeg) {
  jpeg_dec *d = jpeg;
  if (!d) return;
  jpeg_destroy_decompress(&d->ci);
  free(d);
}

static jpeg_dec *ctx_jpeg(image_ctx *ctx) {
  if (ctx->jpeg) return ctx->jpeg;
  jpeg_dec *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  d->ci.err = jpeg_std_error(&d->err);
  d->err.error_exit = jpeg_fail;
  d->err.emit_message = jpeg_message;
  if (setjmp(d->jb)) {
    free(d);
    return NULL;
  }
  jpeg_create_decompress(&d->ci);
  return ctx->jpeg = d;
}

/* Reads the header; the decoder stays parked after it for decode_jpeg. */
static int probe_jpeg(image_ctx *ctx, source *s) {
  jpeg_dec *d = ctx_jpeg(ctx);
  if (!d) FAIL_INT("'%s': cannot start the JPEG decoder", s->name);
  struct jpeg_decompress_struct *ci = &d->ci;
  if (setjmp(d->jb)) {
    jpeg_abort_decompress(ci);
    FAIL_INT("'%s': corrupt or truncated JPEG (%s)", s->name, d->msg);
  }
  jpeg_abort_decompress(ci); /* whatever the last file left */
  jpeg_mem_src(ci, s->buf, (unsigned long)s->n);
  jpeg_read_header(ci, TRUE);
  if (ci->jpeg_color_space == JCS_CMYK || ci->jpeg_color_space == JCS_YCCK) {
    jpeg_abort_decompress(ci);
    FAIL_INT("'%s': CMYK JPEGs are not supported", s->name);
  }
  s->fmt = FMT_JPEG, s->w = (int)ci->image_width, s->h = (int)ci->image_height;
  s->file_channels = ci->jpeg_color_space == JCS_GRAYSCALE ? 1 : 3;
  return 0;
}

static int probe(image_ctx *ctx, source *s) {
  if (is_jpeg(s->buf, s->n)) return probe_jpeg(ctx, s);
  if (s->n > INT32_MAX) FAIL_INT("'%s': file too large to decode", s->name);
  int w, h, c;
  if (!stbi_info_from_memory(s->buf, (int)s->n, &w, &h, &c))
    FAIL_INT("'%s': not a supported image or corrupt (%s)", s->name, stbi_failure_reason());
  s->fmt = FMT_OTHER, s->w = w, s->h = h, s->file_channels = c;
  return 0;
}

static int out_channels(const source *s, int channels) { return channels ? channels : s->file_channels; }

/* The largest DCT downscale 1/denom (1/2, 1/4 or 1/8: libjpeg-turbo has SIMD
 * inverse DCTs for those; 7/8 or 3/4 decode slower than full size) that
 * keeps at least `need` times the original resolution. */
static int pick_denom(double need) {
  for (int d = 8; d > 1; d /= 2)
    if (1.0 / d >= need) return d;
  return 1;
}

static int ceil_div(int a, int b) { return (a + b - 1) / b; }

static window whole(int w, int h) { return (window){0, w, 0, h}; }

/* True when the bytes after the decoder's read position hold an end-of-image
 * marker. Entropy-coded data cannot contain FF D9 (a data FF is stuffed as
 * FF 00), so this tells a complete file from one cut short without decoding
 * the rows after the crop. A file cut inside the rows read fails earlier:
 * libjpeg warns that the data ended. */
static bool jpeg_has_end(j_decompress_ptr ci) {
  /* the whole input read already, or the entropy decoder's read-ahead met the marker */
  if (jpeg_input_complete(ci) || ci->unread_marker == JPEG_EOI) return true;
  const uint8_t *p = ci->src->next_input_byte;
  size_t left = ci->src->bytes_in_buffer;
  return left >= 2 && memmem(p, left, "\xFF\xD9", 2) != NULL;
}

/* The rows of the window, at 1/denom scale. libjpeg decodes the iMCU
 * columns the window touches (its left edge moves left to an iMCU boundary:
 * out->x0 says where it landed), skips the inverse DCT and colour conversion
 * of the rows above, and stops reading at the window's bottom. */
static int jpeg_read_window(jpeg_dec *d, const source *s, int c, int denom, window win, image *out) {
  struct jpeg_decompress_struct *ci = &d->ci;
  ci->out_color_space = c == 1 ? JCS_GRAYSCALE : c == 3 ? JCS_EXT_RGB : JCS_EXT_RGBA;
  ci->scale_num = 1, ci->scale_denom = (unsigned)denom;
  jpeg_start_decompress(ci);
  if ((int)ci->output_width != ceil_div(s->w, denom) || (int)ci->output_height != ceil_div(s->h, denom)) {
    snprintf(d->msg, sizeof d->msg, "decoded size %ux%u at 1/%d scale", ci->output_width, ci->output_height, denom);
    return -1;
  }
  JDIMENSION x0 = (JDIMENSION)win.x0, w = (JDIMENSION)(win.x1 - win.x0);
  if (w < ci->output_width) jpeg_crop_scanline(ci, &x0, &w);
  if (image_alloc(out, win.y1 - win.y0, (int)w, c) < 0) return -2;
  out->x0 = (int)x0, out->y0 = win.y0;
  if (win.y0 > 0) jpeg_skip_scanlines(ci, (JDIMENSION)win.y0);
  size_t stride = (size_t)w * (size_t)c;
  while (ci->output_scanline < (JDIMENSION)win.y1) {
    JSAMPROW rows[8];
    int n = 0, at = (int)ci->output_scanline;
    for (; n < 8 && at + n < win.y1; n++) rows[n] = out->px + (size_t)(at + n - win.y0) * stride;
    jpeg_read_scanlines(ci, rows, (JDIMENSION)n);
  }
  if (ci->output_scanline < ci->output_height) {
    if (!jpeg_has_end(ci)) {
      snprintf(d->msg, sizeof d->msg, "no end-of-image marker after the image data");
      return -1;
    }
    jpeg_abort_decompress(ci);
  } else {
    jpeg_finish_decompress(ci);
  }
  return 0;
}

static int decode_jpeg(image_ctx *ctx, const source *s, int channels, int denom, window win, image *out) {
  jpeg_dec *volatile d = ctx->jpeg; /* probe_jpeg made it and parked it after the header */
  const source *volatile src = s;
  volatile int c = out_channels(s, channels);
  if (setjmp(d->jb)) {
    jpeg_abort_decompress(&d->ci);
    FAIL_INT("'%s': corrupt or truncated JPEG (%s)", src->name, d->msg);
  }
  int rc = jpeg_read_window(d, src, c, denom, win, out);
  if (rc < 0) jpeg_abort_decompress(&d->ci);
  if (rc == -1) FAIL_INT("'%s': corrupt or truncated JPEG (%s)", src->name, d->msg);
  return rc;
}

static int decode_other(const source *s, int channels, image *out) {
  int w, h, c;
  uint8_t *px = stbi_load_from_memory(s->buf, (int)s->n, &w, &h, &c, channels);
  if (!px) FAIL_INT("'%s': corrupt or truncated image (%s)", s->name, stbi_failure_reason());
  c = channels ? channels : c;
  if (image_alloc(out, h, w, c) < 0) {
    stbi_image_free(px);
    return -1;
  }
  memcpy(out->px, px, (size_t)w * (size_t)h * (size_t)c);
  stbi_image_free(px);
  return 0;
}

/* Decodes the window of the image at 1/denom scale (JPEG; other formats
 * decode whole at full size and ignore both). */
static int decode(image_ctx *ctx, const source *s, int channels, int denom, window win, image *out) {
  if (channels != 0 && channels != 1 && channels != 3 && channels != 4) {
    if (s->fmt == FMT_JPEG) jpeg_abort_decompress(&((jpeg_dec *)ctx->jpeg)->ci);
    FAIL_INT("'%s': channels must be 1, 3 or 4 (or 0 for the file's own), got %d", s->name, channels);
  }
  return s->fmt == FMT_JPEG ? decode_jpeg(ctx, s, channels, denom, win, out) : decode_other(s, channels, out);
}

static int decode_whole(image_ctx *ctx, const source *s, int channels, int denom, image *out) {
  return decode(ctx, s, channels, denom, whole(ceil_div(s->w, denom), ceil_div(s->h, denom)), out);
}

/* ---- resampling ---------------------------------------------------------- */

enum { PRECISION = 22 }; /* fixed-point bits of the filter weights, as PIL */
#define HALF (1 << (PRECISION - 1))

/* The kernels below have an AVX2 form (the build's -march=x86-64-v3) and a
 * plain one for other targets (and the sanitizer builds); both give the
 * same bytes. */
#ifdef __AVX2__
#include <immintrin.h>
#endif

/* One axis: for each output pixel k taps (source index, weight). Every
 * output has the same k, so the inner loops have no ragged ends: taps that
 * fall on zero padding or weigh nothing get weight 0 and repeat an index in
 * use. */
typedef struct axis {
  int n, k;     /* outputs, taps each */
  int *idx;     /* n x k source indices */
  int32_t *wt;  /* n x k */
  int lo, hi;   /* source indices read, both included; lo > hi: none */
  int *cnt;     /* taps in use per output, while planning */
  size_t cap, cnt_cap;
} axis;

/* Both axes, and the x axis laid out for the across pass: outputs in
 * pairs (an odd count gets a dummy last output), per pair and tap the two
 * byte offsets and the two weights each repeated in four lanes, so one
 * 256-bit multiply does two output pixels. */
typedef struct plan {
  axis x, y;
  int32_t *off2, *wt8;
  size_t pair_cap;
  /* When every output's taps are consecutive source pixels within 16 bytes
   * (the usual case: only pad modes that mirror or repeat break it), one
   * 16-byte load per output holds all its taps: off1 is its first byte, and
   * shuffle mask t picks tap t's four bytes into four lanes. */
  bool contig;
  int32_t *off1;
  size_t off1_cap;
  uint8_t mask[5][32];
} plan;

static void plan_free(void *p) {
  plan *pl = p;
  if (!pl) return;
  free(pl->x.idx), free(pl->x.wt), free(pl->x.cnt), free(pl->y.idx), free(pl->y.wt), free(pl->y.cnt);
  free(pl->off2), free(pl->wt8), free(pl->off1);
  free(pl);
}

static plan *ctx_plan(image_ctx *ctx) {
  if (!ctx->plan) ctx->plan = calloc(1, sizeof(plan));
  return ctx->plan;
}

/* The box along one axis: output i is centred at x0 + (i + 0.5) * scale and
 * sees source pixels in [lo, hi). */
typedef struct span { double x0, scale, lo, hi; } span;

static double triangle(double x) {
  x = fabs(x);
  return x < 1 ? 1 - x : 0;
}

static int pad_index(int j, int n, int pad_mode) {
  if (j >= 0 && j < n) return j;
  if (pad_mode == FC_PAD_ZEROS) return -1;
  if (pad_mode == FC_PAD_BORDER || n == 1) return j < 0 ? 0 : n - 1;
  int period = 2 * (n - 1); /* reflection without repeating the edge */
  j %= period;
  if (j < 0) j += period;
  return j < n ? j : period - j;
}

/* The taps of output i into idx/wt (room for `room`); returns how many. */
static int output_taps(span sp, int i, double support, int clo, int chi, int src_n, int pad_mode, int room,
                       int *idx, int32_t *wt) {
  double center = sp.x0 + (i + 0.5) * sp.scale, inv = 1 / support, total = 0, w[room];
  int lo = (int)floor(center - support + 0.5), hi = (int)floor(center + support + 0.5), k = 0;
  if (lo < clo) lo = clo;
  if (hi > chi) hi = chi;
  if (hi > lo + room) hi = lo + room;
  for (int j = lo; j < hi; j++) total += w[j - lo] = triangle((j - center + 0.5) * inv);
  for (int j = lo; j < hi; j++) {
    int src = pad_index(j, src_n, pad_mode);
    int32_t fixed = total > 0 ? (int32_t)lround(w[j - lo] / total * (1 << PRECISION)) : 0;
    if (src < 0 || fixed == 0) continue;
    idx[k] = src, wt[k++] = fixed;
  }
  return k;
}

static int axis_reserve(axis *a, int n, int room) {
  size_t need = (size_t)n * (size_t)room;
  if (need > a->cap) {
    int *idx = realloc(a->idx, sizeof(int) * need);
    if (idx) a->idx = idx;
    int32_t *wt = idx ? realloc(a->wt, sizeof(int32_t) * need) : NULL;
    if (!wt) return -1;
    a->wt = wt, a->cap = need;
  }
  if ((size_t)n > a->cnt_cap) {
    int *cnt = realloc(a->cnt, sizeof(int) * (size_t)n);
    if (!cnt) return -1;
    a->cnt = cnt, a->cnt_cap = (size_t)n;
  }
  return 0;
}

/* Plans the axis, then packs every output's taps to the widest output's
 * count (k), padding with weight-0 taps on an index in use. */
static int axis_plan(axis *a, int n, span sp, int src_n, int pad_mode) {
  double support = sp.scale > 1 ? sp.scale : 1;
  int clo = (int)floor(sp.lo + 1e-9), chi = (int)ceil(sp.hi - 1e-9);
  int room = (int)ceil(2 * support) + 1;
  if (axis_reserve(a, n, room) < 0) FAIL_INT("image: out of memory planning a resize");
  a->n = n, a->k = 0, a->lo = INT32_MAX, a->hi = -1;
  for (int i = 0; i < n; i++) {
    int *idx = a->idx + (size_t)i * room;
    int k = output_taps(sp, i, support, clo, chi, src_n, pad_mode, room, idx, a->wt + (size_t)i * room);
    for (int t = 0; t < k; t++) {
      if (idx[t] < a->lo) a->lo = idx[t];
      if (idx[t] > a->hi) a->hi = idx[t];
    }
    if (k > a->k) a->k = k;
    a->cnt[i] = k;
  }
  int k = a->k > 0 ? a->k : 1;
  for (int i = 0; i < n; i++) { /* in place: output i moves down from i * room to i * k */
    int *idx = a->idx + (size_t)i * k;
    int32_t *wt = a->wt + (size_t)i * k;
    int used = a->cnt[i];
    memmove(idx, a->idx + (size_t)i * room, sizeof(int) * (size_t)used);
    memmove(wt, a->wt + (size_t)i * room, sizeof(int32_t) * (size_t)used);
    /* weight-0 taps carry on past the last real one, consecutive while they
     * stay on pixels in use (the passes read them) */
    for (int t = used; t < k; t++) {
      idx[t] = used == 0 ? (a->lo <= a->hi ? a->lo : 0) : idx[0] + t < a->hi ? idx[0] + t : a->hi;
      wt[t] = 0;
    }
  }
  a->k = k;
  return 0;
}

/* The x plan against a source window: byte offsets within its rows, in
 * pairs of outputs (see plan). */
#ifdef __AVX2__
/* Whether output x's taps are consecutive source pixels. */
static bool taps_consecutive(const axis *ax, int x) {
  const int *idx = ax->idx + (size_t)x * ax->k;
  for (int t = 1; t < ax->cnt[x]; t++)
    if (idx[t] != idx[0] + t) return false;
  return true;
}

/* The contiguous layout (see plan), or contig = false. */
static int plan_contig(plan *pl, const image *src) {
  const axis *ax = &pl->x;
  int k = ax->k, c = src->c, n2 = (ax->n + 1) / 2 * 2;
  pl->contig = false;
  if ((c != 3 && c != 4) || (k - 1) * c + 4 > 16) return 0;
  for (int x = 0; x < ax->n; x++)
    if (!taps_consecutive(ax, x)) return 0;
  if ((size_t)n2 > pl->off1_cap) {
    int32_t *off1 = realloc(pl->off1, sizeof(int32_t) * (size_t)n2);
    if (!off1) FAIL_INT("image: out of memory planning a resize");
    pl->off1 = off1, pl->off1_cap = (size_t)n2;
  }
  for (int x = 0; x < n2; x++) pl->off1[x] = (ax->idx[(size_t)(x < ax->n ? x : x - 1) * k] - src->x0) * c;
  for (int t = 0; t < k; t++)
    for (int b = 0; b < 32; b++) pl->mask[t][b] = b % 4 ? 0x80 : (uint8_t)(t * c + b % 16 / 4);
  pl->contig = true;
  return 0;
}
#endif

static int plan_pairs(plan *pl, const image *src) {
  const axis *ax = &pl->x;
  int k = ax->k, pairs = (ax->n + 1) / 2;
  size_t need = (size_t)pairs * k;
  if (need > pl->pair_cap) {
    int32_t *off2 = realloc(pl->off2, sizeof(int32_t) * 2 * need);
    if (off2) pl->off2 = off2;
    int32_t *wt8 = off2 ? realloc(pl->wt8, sizeof(int32_t) * 8 * need) : NULL;
    if (!wt8) FAIL_INT("image: out of memory planning a resize");
    pl->wt8 = wt8, pl->pair_cap = need;
  }
  for (int p = 0; p < pairs; p++)
    for (int t = 0; t < k; t++)
      for (int h = 0; h < 2; h++) {
        int x = 2 * p + h < ax->n ? 2 * p + h : 2 * p; /* the dummy repeats its partner's taps */
        int32_t w = 2 * p + h < ax->n ? ax->wt[(size_t)x * k + t] : 0;
        size_t at = (size_t)p * k + t;
        pl->off2[2 * at + h] = (ax->idx[(size_t)x * k + t] - src->x0) * src->c;
        for (int lane = 0; lane < 4; lane++) pl->wt8[8 * at + 4 * h + lane] = w;
      }
#ifdef __AVX2__
  return plan_contig(pl, src);
#else
  return 0;
#endif
}

/* The weights are >= 0 and sum to 1 (to 2^-22), so every sum below is
 * within 0..255 after the shift: no clamping. */

#ifdef __AVX2__
static inline __m128i load4(const uint8_t *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return _mm_cvtsi32_si128(v);
}

/* One row across, 3 or 4 channels, two output pixels a step. Each pixel is
 * read and written as four bytes (an RGB pixel's fourth is the next one's
 * red: ignored, then overwritten; the buffers' slack covers the ends). */
static inline void hpass_px(const uint8_t *row, const plan *pl, int c, const int k, uint8_t *out) {
  const int32_t *off = pl->off2, *wt = pl->wt8;
  for (int x = 0; x < pl->x.n; x += 2, off += 2 * k, wt += 8 * k) {
    __m256i acc = _mm256_set1_epi32(HALF);
    for (int t = 0; t < k; t++) {
      __m128i two = _mm_unpacklo_epi32(load4(row + off[2 * t]), load4(row + off[2 * t + 1]));
      __m256i w = _mm256_loadu_si256((const __m256i *)(wt + 8 * t));
      acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(two), w));
    }
    acc = _mm256_srai_epi32(acc, PRECISION);
    acc = _mm256_packus_epi16(_mm256_packs_epi32(acc, acc), acc); /* each lane's low 4 bytes: a pixel */
    int32_t a = _mm256_cvtsi256_si32(acc), b = _mm_cvtsi128_si32(_mm256_extracti128_si256(acc, 1));
    memcpy(out + (size_t)x * c, &a, 4);
    memcpy(out + (size_t)(x + 1) * c, &b, 4); /* x + 1 == n: the dummy, into the next row or slack */
  }
}

/* The same with the contiguous layout: one 16-byte load per output (up to
 * 13 bytes past the row's last pixel: the next row or the slack). */
static inline void hpass_contig(const uint8_t *row, const plan *pl, int c, const int k, uint8_t *out) {
  const int32_t *off = pl->off1, *wt = pl->wt8;
  __m256i mask[5];
  for (int t = 0; t < k; t++) mask[t] = _mm256_loadu_si256((const __m256i *)pl->mask[t]);
  for (int x = 0; x < pl->x.n; x += 2, wt += 8 * k) {
    __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(row + off[x]))),
                                        _mm_loadu_si128((const __m128i *)(row + off[x + 1])), 1);
    __m256i acc = _mm256_set1_epi32(HALF);
    for (int t = 0; t < k; t++) {
      __m256i w = _mm256_loadu_si256((const __m256i *)(wt + 8 * t));
      acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(_mm256_shuffle_epi8(v, mask[t]), w));
    }
    acc = _mm256_srai_epi32(acc, PRECISION);
    acc = _mm256_packus_epi16(_mm256_packs_epi32(acc, acc), acc);
    int32_t a = _mm256_cvtsi256_si32(acc), b = _mm_cvtsi128_si32(_mm256_extracti128_si256(acc, 1));
    memcpy(out + (size_t)x * c, &a, 4);
    memcpy(out + (size_t)(x + 1) * c, &b, 4);
  }
}

/* One output row down, 16 bytes a step (len rounds up into the slack). */
static void vpass(const uint8_t *const *rows, const int32_t *wt, int k, size_t len, uint8_t *out) {
  for (size_t i = 0; i < len; i += 16) {
    __m256i lo = _mm256_set1_epi32(HALF), hi = lo;
    for (int t = 0; t < k; t++) {
      __m128i v = _mm_loadu_si128((const __m128i *)(rows[t] + i));
      __m256i w = _mm256_set1_epi32(wt[t]);
      lo = _mm256_add_epi32(lo, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(v), w));
      hi = _mm256_add_epi32(hi, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(v, 8)), w));
    }
    __m256i p16 = _mm256_packs_epi32(_mm256_srai_epi32(lo, PRECISION), _mm256_srai_epi32(hi, PRECISION));
    p16 = _mm256_permute4x64_epi64(p16, 0xD8); /* packs works per 128-bit lane: restore the order */
    __m128i p8 = _mm_packus_epi16(_mm256_castsi256_si128(p16), _mm256_extracti128_si256(p16, 1));
    _mm_storeu_si128((__m128i *)(out + i), p8);
  }
}
#else
static inline void hpass_px(const uint8_t *row, const plan *pl, int c, const int k, uint8_t *out) {
  const int32_t *off = pl->off2, *wt = pl->wt8;
  for (int x = 0; x < pl->x.n; x++) {
    size_t at = (size_t)(x / 2) * k, h = (size_t)(x & 1);
    for (int ch = 0; ch < c; ch++) {
      int32_t acc = HALF;
      for (int t = 0; t < k; t++) acc += wt[8 * (at + t) + 4 * h] * row[off[2 * (at + t) + h] + ch];
      out[(size_t)x * c + ch] = (uint8_t)(acc >> PRECISION);
    }
  }
}

static void vpass(const uint8_t *const *rows, const int32_t *wt, int k, size_t len, uint8_t *out) {
  for (size_t i = 0; i < len; i++) {
    int32_t acc = HALF;
    for (int t = 0; t < k; t++) acc += wt[t] * rows[t][i];
    out[i] = (uint8_t)(acc >> PRECISION);
  }
}
#endif

static void hpass_grey(const uint8_t *row, const plan *pl, int k, uint8_t *out) {
  const int32_t *off = pl->off2, *wt = pl->wt8;
  for (int x = 0; x < pl->x.n; x++) {
    size_t at = (size_t)(x / 2) * k, h = (size_t)(x & 1);
    int32_t acc = HALF;
    for (int t = 0; t < k; t++) acc += wt[8 * (at + t) + 4 * h] * row[off[2 * (at + t) + h]];
    out[x] = (uint8_t)(acc >> PRECISION);
  }
}

/* The tap count as a constant for the common small filters, so the tap
 * loop unrolls. */
static void hpass(const uint8_t *row, const plan *pl, int c, uint8_t *out) {
  int k = pl->x.k;
#ifdef __AVX2__
  if (pl->contig) {
    if (k == 2) hpass_contig(row, pl, c, 2, out);
    else if (k == 3) hpass_contig(row, pl, c, 3, out);
    else if (k == 4) hpass_contig(row, pl, c, 4, out);
    else hpass_contig(row, pl, c, k, out);
    return;
  }
#endif
  if (c == 1) hpass_grey(row, pl, k, out);
  else if (k == 2) hpass_px(row, pl, c, 2, out);
  else if (k == 3) hpass_px(row, pl, c, 3, out);
  else if (k == 4) hpass_px(row, pl, c, 4, out);
  else hpass_px(row, pl, c, k, out);
}

/* ---- writing rows out ---------------------------------------------------- */

/* An open sink: where row y of a c x h x w image goes, mirrored or not. */
typedef struct dest {
  image_sink *s;
  int c, h, w;
  bool mirror;
} dest;

#ifdef __AVX2__
/* Pixels 0..7 of an RGB row as the low 8 bytes of r, g and b (reads 28
 * bytes: 4 past the 8 pixels, within the row after or the slack). */
static inline void split_rgb8(const uint8_t *p, __m128i *r, __m128i *g, __m128i *b) {
  const __m128i planar = _mm_setr_epi8(0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11, -1, -1, -1, -1);
  __m128i lo = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)p), planar);
  __m128i hi = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 12)), planar);
  __m128i rg = _mm_unpacklo_epi32(lo, hi);
  *r = rg, *g = _mm_srli_si128(rg, 8), *b = _mm_unpackhi_epi32(lo, hi);
}

/* RGB rows eight pixels a step; returns how many pixels it did. */
static int put_rgb_u8(uint8_t *const o[3], int w, bool mirror, const uint8_t *row) {
  const __m128i rev = _mm_setr_epi8(7, 6, 5, 4, 3, 2, 1, 0, 8, 9, 10, 11, 12, 13, 14, 15);
  int x = 0;
  for (; x + 8 <= w; x += 8) {
    __m128i v[3];
    split_rgb8(row + 3 * x, &v[0], &v[1], &v[2]);
    for (int k = 0; k < 3; k++) {
      if (mirror) _mm_storel_epi64((__m128i *)(o[k] + w - 8 - x), _mm_shuffle_epi8(v[k], rev));
      else _mm_storel_epi64((__m128i *)(o[k] + x), v[k]);
    }
  }
  return x;
}

static int put_rgb_f32(float *const o[3], int w, bool mirror, const float *scale, const float *bias,
                       const uint8_t *row) {
  const __m256i rev = _mm256_setr_epi32(7, 6, 5, 4, 3, 2, 1, 0);
  int x = 0;
  for (; x + 8 <= w; x += 8) {
    __m128i v[3];
    split_rgb8(row + 3 * x, &v[0], &v[1], &v[2]);
    for (int k = 0; k < 3; k++) {
      __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v[k]));
      f = _mm256_add_ps(_mm256_mul_ps(f, _mm256_set1_ps(scale[k])), _mm256_set1_ps(bias[k])); /* as the tail: no FMA */
      if (mirror) _mm256_storeu_ps(o[k] + w - 8 - x, _mm256_permutevar8x32_ps(f, rev));
      else _mm256_storeu_ps(o[k] + x, f);
    }
  }
  return x;
}
#endif

/* Row y into the CHW planes; `from` pixels already done. */
static void put_row_u8(const dest *d, int y, const uint8_t *row) {
  size_t plane = (size_t)d->h * (size_t)d->w;
  int c = d->c, w = d->w, from = 0;
  uint8_t *o[4];
  for (int k = 0; k < c; k++) o[k] = d->s->u8 + k * plane + (size_t)y * w;
#ifdef __AVX2__
  if (c == 3) from = put_rgb_u8(o, w, d->mirror, row);
#endif
  for (int k = 0; k < c; k++)
    for (int x = from; x < w; x++) o[k][d->mirror ? w - 1 - x : x] = row[x * c + k];
}

static void put_row_f32(const dest *d, int y, const uint8_t *row) {
  size_t plane = (size_t)d->h * (size_t)d->w;
  int c = d->c, w = d->w, from = 0;
  const float *scale = d->s->scale, *bias = d->s->bias;
  float *o[4];
  for (int k = 0; k < c; k++) o[k] = d->s->f32 + k * plane + (size_t)y * w;
#ifdef __AVX2__
  if (c == 3) from = put_rgb_f32(o, w, d->mirror, scale, bias, row);
#endif
  for (int k = 0; k < c; k++)
    for (int x = from; x < w; x++) o[k][d->mirror ? w - 1 - x : x] = (float)row[x * c + k] * scale[k] + bias[k];
}

static void put_row(const dest *d, int y, const uint8_t *row) {
  if (d->s->f32) put_row_f32(d, y, row);
  else put_row_u8(d, y, row);
}

static int dest_open(dest *d, image_sink *s, int c, int h, int w, bool mirror) {
  *d = (dest){s, c, h, w, mirror};
  s->u8 = NULL, s->f32 = NULL;
  return s->open(s, c, h, w);
}

/* A sink into an HWC image (the next step's input). */
static int open_image(image_sink *s, int c, int h, int w) {
  image *im = s->arg;
  if (image_alloc(im, h, w, c) < 0) return -1;
  s->u8 = im->px;
  return 0;
}

static void put(const dest *d, int y, const uint8_t *row) {
  if (d->s->open == open_image) memcpy(d->s->u8 + (size_t)y * d->w * d->c, row, (size_t)d->w * d->c);
  else put_row(d, y, row);
}

/* Separable resampling, across then down: the source rows in use go across
 * into ctx->tmp, then each output row comes down from those into ctx->row
 * and out to the sink. */
static int resample(image_ctx *ctx, const image *src, plan *pl, const dest *out) {
  const axis *ax = &pl->x, *ay = &pl->y;
  int c = src->c;
  size_t out_row = (size_t)ax->n * c;
  if (!grow(&ctx->row, &ctx->row_cap, out_row + 16)) FAIL_INT("image: out of memory resizing");
  if (ay->lo > ay->hi || ax->lo > ax->hi) { /* all padding */
    memset(ctx->row, 0, out_row);
    for (int y = 0; y < ay->n; y++) put(out, y, ctx->row);
    return 0;
  }
  if (plan_pairs(pl, src) < 0) return -1;
  int rows = ay->hi - ay->lo + 1;
  if (!grow(&ctx->tmp, &ctx->tmp_cap, (size_t)rows * out_row + 16)) FAIL_INT("image: out of memory resizing");
  size_t src_row = (size_t)src->w * c;
  for (int r = 0; r < rows; r++) hpass(src->px + (size_t)(ay->lo - src->y0 + r) * src_row, pl, c, ctx->tmp + r * out_row);
  const uint8_t *taps[ay->k];
  for (int y = 0; y < ay->n; y++) {
    const int *idx = ay->idx + (size_t)y * ay->k;
    for (int t = 0; t < ay->k; t++) taps[t] = ctx->tmp + (size_t)(idx[t] - ay->lo) * out_row;
    vpass(taps, ay->wt + (size_t)y * ay->k, ay->k, out_row, ctx->row);
    put(out, y, ctx->row);
  }
  return 0;
}

static void flip_horizontal(image *im) {
  int c = im->c;
  for (int y = 0; y < im->h; y++) {
    uint8_t *row = im->px + (size_t)y * im->w * c;
    for (int a = 0, b = im->w - 1; a < b; a++, b--)
      for (int k = 0; k < c; k++) {
        uint8_t t = row[a * c + k];
        row[a * c + k] = row[b * c + k];
        row[b * c + k] = t;
      }
  }
}

/* The whole image out to the sink (no geometric step ran). */
static int emit_image(const image *im, image_sink *s, bool mirror) {
  dest d;
  if (dest_open(&d, s, im->c, im->h, im->w, mirror) < 0) return -1;
  for (int y = 0; y < im->h; y++) put(&d, y, im->px + (size_t)y * im->w * im->c);
  return 0;
}

typedef struct box {
  span x, y;
  int out_w, out_h, pad_mode;
} box;

/* ---- the steps as boxes -------------------------------------------------- */

/* fastai's crop_pad: the integer box [l, l + size) of the image, padded
 * where it leaves it, resized to out. */
static span crop_span(int l, int size, int out) {
  return (span){l, (double)size / out, l, l + size};
}

static int floor_div2(int a) { return a >= 0 ? a / 2 : -((-a + 1) / 2); }

/* fastai's Resize: crop keeps the side that fits, pad the side that
 * overflows; the box sits at a random position while training. */
static box resize_box(const fc_tfm *t, int w, int h, item_rng *r) {
  int W = t->width, H = t->height;
  box b = {.out_w = W, .out_h = H, .pad_mode = t->pad_mode};
  if (t->method == FC_RESIZE_SQUISH) {
    b.x = crop_span(0, w, W), b.y = crop_span(0, h, H);
    return b;
  }
  double rw = (double)w / W, rh = (double)h / H;
  bool pick_w = t->method == FC_RESIZE_PAD ? rw > rh : rw < rh;
  double m = pick_w ? rw : rh;
  int cw = (int)(m * W), ch = (int)(m * H);
  double px = 0.5, py = 0.5;
  if (!t->valid) px = rng_unit(r), py = rng_unit(r);
  int l = (int)(px * (w - cw)), top = (int)(py * (h - ch));
  b.x = crop_span(l, cw, W), b.y = crop_span(top, ch, H);
  return b;
}

/* fastai's RandomResizedCrop. */
static box rrc_box(const fc_tfm *t, int w, int h, item_rng *r) {
  int W = t->width, H = t->height;
  box b = {.out_w = W, .out_h = H, .pad_mode = FC_PAD_ZEROS};
  if (t->valid) { /* squish to size + xtra, keep the centre */
    int big = W > H ? W : H, xtra = (int)ceil(big * t->val_xtra / 8) * 8;
    double sx = (double)w / (W + xtra), sy = (double)h / (H + xtra);
    b.x = (span){xtra / 2 * sx, sx, 0, w};
    b.y = (span){xtra / 2 * sy, sy, 0, h};
    return b;
  }
  double lr0 = log(t->ratio[0]), lr1 = log(t->ratio[1]);
  for (int attempt = 0; attempt < 10; attempt++) {
    double area = rng_uniform(r, t->scale[0], t->scale[1]) * w * h;
    double ratio = exp(rng_uniform(r, lr0, lr1));
    int nw = (int)lround(sqrt(area * ratio)), nh = (int)lround(sqrt(area / ratio));
    if (nw <= w && nh <= h && nw > 0 && nh > 0) {
      int l = rng_int(r, 0, w - nw), top = rng_int(r, 0, h - nh);
      b.x = crop_span(l, nw, W), b.y = crop_span(top, nh, H);
      return b;
    }
  }
  int cw = w, ch = h;
  if ((double)w / h < t->ratio[0]) ch = (int)(w / t->ratio[0]);
  else if ((double)w / h > t->ratio[1]) cw = (int)(h * t->ratio[1]);
  b.x = crop_span((w - cw) / 2, cw, W), b.y = crop_span((h - ch) / 2, ch, H);
  return b;
}

static box crop_pad_box(const fc_tfm *t, int w, int h) {
  int W = t->width, H = t->height;
  box b = {.out_w = W, .out_h = H, .pad_mode = t->pad_mode};
  b.x = crop_span(floor_div2(w - W), W, W), b.y = crop_span(floor_div2(h - H), H, H);
  return b;
}

static box step_box(const fc_tfm *t, int w, int h, item_rng *r) {
  switch (t->kind) {
  case FC_TFM_RESIZE: return resize_box(t, w, h, r);
  case FC_TFM_RANDOM_RESIZED_CROP: return rrc_box(t, w, h, r);
  default: return crop_pad_box(t, w, h);
  }
}

static span scale_span(span s, double f) { return (span){s.x0 * f, s.scale * f, s.lo * f, s.hi * f}; }

int check_pipeline(const char *op, int ntfms, const fc_tfm *tfms) {
  if (ntfms < 0 || (ntfms > 0 && !tfms)) FAIL_INT("%s: no steps given", op);
  for (int i = 0; i < ntfms; i++) {
    const fc_tfm *t = &tfms[i];
    char nb[16];
    const char *nth = ordinal(i, nb, sizeof nb);
    if (t->kind < FC_TFM_RESIZE || t->kind > FC_TFM_FLIP)
      FAIL_INT("%s: %s step has unknown kind %d", op, nth, t->kind);
    if (t->kind == FC_TFM_FLIP) {
      if (!(t->p >= 0 && t->p <= 1)) FAIL_INT("%s: flip p must be in [0, 1], got %g", op, t->p);
      continue;
    }
    if (t->height < 1 || t->width < 1 || t->height > 65536 || t->width > 65536)
      FAIL_INT("%s: %s step has size %dx%d (height and width must be 1..65536)", op, nth, t->height, t->width);
    if (t->pad_mode < FC_PAD_ZEROS || t->pad_mode > FC_PAD_REFLECTION)
      FAIL_INT("%s: %s step has unknown pad mode %d", op, nth, t->pad_mode);
    if (t->kind == FC_TFM_RESIZE && (t->method < FC_RESIZE_CROP || t->method > FC_RESIZE_PAD))
      FAIL_INT("%s: %s step has unknown resize method %d", op, nth, t->method);
    if (t->kind == FC_TFM_RANDOM_RESIZED_CROP) {
      if (!(t->scale[0] > 0 && t->scale[0] <= t->scale[1] && t->scale[1] <= 1))
        FAIL_INT("%s: random_resized_crop scale {%g, %g} must satisfy 0 < min <= max <= 1", op,
                 t->scale[0], t->scale[1]);
      if (!(t->ratio[0] > 0 && t->ratio[0] <= t->ratio[1]))
        FAIL_INT("%s: random_resized_crop ratio {%g, %g} must satisfy 0 < min <= max", op,
                 t->ratio[0], t->ratio[1]);
      if (!(t->val_xtra >= 0)) FAIL_INT("%s: random_resized_crop val_xtra must be >= 0", op);
    }
  }
  return 0;
}

void pipeline_out_size(int ntfms, const fc_tfm *tfms, int *height, int *width) {
  *height = *width = 0;
  for (int i = 0; i < ntfms; i++)
    if (tfms[i].kind != FC_TFM_FLIP) *height = tfms[i].height, *width = tfms[i].width;
}

/* ---- running the steps --------------------------------------------------- */

enum { WINDOW_MARGIN = 2 };

/* The part of a W x H image the plans read, widened by a margin: libjpeg's
 * fancy (smooth) chroma upsampling treats the edge of a partial decode as the
 * image's edge, which changes the outermost row or column of the window; with
 * the margin every pixel the plans read is the full decode's. */
static window plan_window(const axis *ax, const axis *ay, int W, int H) {
  if (ax->lo > ax->hi || ay->lo > ay->hi) return whole(W, H);
  window w = {ax->lo - WINDOW_MARGIN, ax->hi + 1 + WINDOW_MARGIN, ay->lo - WINDOW_MARGIN, ay->hi + 1 + WINDOW_MARGIN};
  if (w.x0 < 0) w.x0 = 0;
  if (w.y0 < 0) w.y0 = 0;
  if (w.x1 > W) w.x1 = W;
  if (w.y1 > H) w.y1 = H;
  return w;
}

/* The first geometric step on an image not decoded yet: the box is planned
 * on the header's size, then the JPEG decodes at the smallest DCT scale that
 * keeps the resolution the box uses, and only the window its taps read. */
static int plan_and_decode(image_ctx *ctx, plan *pl, const source *src, int channels, box b, image *im) {
  int denom = src->fmt == FMT_JPEG ? pick_denom(fmax(1 / b.x.scale, 1 / b.y.scale)) : 1;
  int W = ceil_div(src->w, denom), H = ceil_div(src->h, denom);
  b.x = scale_span(b.x, (double)W / src->w);
  b.y = scale_span(b.y, (double)H / src->h);
  if (axis_plan(&pl->x, b.out_w, b.x, W, b.pad_mode) < 0 || axis_plan(&pl->y, b.out_h, b.y, H, b.pad_mode) < 0)
    return -1;
  window win = src->fmt == FMT_JPEG ? plan_window(&pl->x, &pl->y, W, H) : whole(W, H);
  return decode(ctx, src, channels, denom, win, im);
}

static int last_geometric(int ntfms, const fc_tfm *tfms) {
  int last = -1;
  for (int i = 0; i < ntfms; i++)
    if (tfms[i].kind != FC_TFM_FLIP) last = i;
  return last;
}

/* Runs the steps into the sink. With `src` the image is not decoded yet
 * (see plan_and_decode); without, ctx->img[0] holds it. The last geometric
 * step resamples straight into the sink; flips after it mirror the rows as
 * they are written. */
static int run_steps(image_ctx *ctx, const source *src, int channels, int ntfms, const fc_tfm *tfms,
                     item_rng *r, image_sink *out) {
  plan *pl = ctx_plan(ctx);
  if (!pl) FAIL_INT("image: out of memory");
  int cur = 0, last = last_geometric(ntfms, tfms);
  bool decoded = src == NULL, mirror = false;
  for (int i = 0; i < ntfms; i++) {
    const fc_tfm *t = &tfms[i];
    image *im = &ctx->img[cur];
    if (t->kind == FC_TFM_FLIP) {
      bool flip = rng_unit(r) < t->p;
      if (i > last) {
        mirror ^= flip;
        continue;
      }
      if (!decoded && decode_whole(ctx, src, channels, 1, im) < 0) return -1;
      decoded = true;
      if (flip) flip_horizontal(im);
      continue;
    }
    box b = step_box(t, decoded ? im->w : src->w, decoded ? im->h : src->h, r);
    if (!decoded) {
      if (plan_and_decode(ctx, pl, src, channels, b, im) < 0) return -1;
      decoded = true;
    } else if (axis_plan(&pl->x, b.out_w, b.x, im->w, b.pad_mode) < 0 ||
               axis_plan(&pl->y, b.out_h, b.y, im->h, b.pad_mode) < 0) {
      return -1;
    }
    image_sink next = {.open = open_image, .arg = &ctx->img[1 - cur]};
    dest d;
    if (dest_open(&d, i == last ? out : &next, im->c, b.out_h, b.out_w, i == last && mirror) < 0) return -1;
    if (resample(ctx, im, pl, &d) < 0) return -1;
    cur = 1 - cur;
  }
  if (last >= 0) return 0;
  if (!decoded && decode_whole(ctx, src, channels, 1, &ctx->img[cur]) < 0) return -1;
  return emit_image(&ctx->img[cur], out, mirror);
}

int image_load_item(image_ctx *ctx, const char *path, int channels, int ntfms, const fc_tfm *tfms,
                    uint64_t seed, int64_t epoch, int64_t item, image_sink *out) {
  size_t n;
  if (read_file(ctx, path, &n) < 0) return -1;
  source s = {.buf = ctx->file, .n = n, .name = path};
  if (probe(ctx, &s) < 0) return -1;
  item_rng r;
  rng_init(&r, seed, epoch, item);
  return run_steps(ctx, &s, channels, ntfms, tfms, &r, out);
}

/* ---- public API ---------------------------------------------------------- */

int image_decode_jpeg_window(image_ctx *ctx, const void *data, size_t nbytes, int channels, int denom,
                             int x0, int x1, int y0, int y1, image *out) {
  source s = {.buf = data, .n = nbytes, .name = "<memory>"};
  if (!data || !is_jpeg(data, nbytes)) FAIL_INT("decode_jpeg_window: not a JPEG");
  if (probe(ctx, &s) < 0) return -1;
  int W = ceil_div(s.w, denom), H = ceil_div(s.h, denom);
  if (denom < 1 || denom > 8 || (denom & (denom - 1)) || x0 < 0 || x0 >= x1 || x1 > W || y0 < 0 || y0 >= y1 || y1 > H) {
    jpeg_abort_decompress(&((jpeg_dec *)ctx->jpeg)->ci);
    FAIL_INT("decode_jpeg_window: window [%d,%d)x[%d,%d) outside the %dx%d image at 1/%d", x0, x1, y0, y1, W, H, denom);
  }
  return decode(ctx, &s, channels, denom, (window){x0, x1, y0, y1}, out);
}

/* A sink that makes a uint8 [C,H,W] tensor. */
static int open_tensor(image_sink *s, int c, int h, int w) {
  int64_t shape[3] = {c, h, w};
  fc_tensor *t = fc_empty(3, shape, FC_UINT8, (fc_device){FC_CPU, 0});
  if (!t) return -1;
  *(fc_tensor **)s->arg = t;
  s->u8 = fc_data_ptr(t);
  return 0;
}

static fc_tensor *decode_to_tensor(image_ctx *ctx, source *s, int channels, int min_h, int min_w) {
  if (probe(ctx, s) < 0) return NULL;
  double need = 1;
  if (min_h > 0 && min_w > 0) need = fmax((double)min_h / s->h, (double)min_w / s->w);
  int denom = s->fmt == FMT_JPEG ? pick_denom(need) : 1;
  if (decode_whole(ctx, s, channels, denom, &ctx->img[0]) < 0) return NULL;
  fc_tensor *t = NULL;
  image_sink sink = {.open = open_tensor, .arg = &t};
  if (emit_image(&ctx->img[0], &sink, false) < 0) return NULL;
  return t;
}

fc_tensor *fc_image_read(const char *path, int channels, int min_height, int min_width) {
  if (!path) FAIL("image_read: path is NULL");
  image_ctx ctx = {0};
  size_t n;
  fc_tensor *t = NULL;
  if (read_file(&ctx, path, &n) == 0) {
    source s = {.buf = ctx.file, .n = n, .name = path};
    t = decode_to_tensor(&ctx, &s, channels, min_height, min_width);
  }
  image_ctx_free(&ctx);
  return t;
}

fc_tensor *fc_image_decode(const void *data, size_t nbytes, int channels, const char *name) {
  name = name ? name : "<memory>";
  if (!data || nbytes == 0) FAIL("'%s' is empty (0 bytes)", name);
  image_ctx ctx = {0};
  source s = {.buf = data, .n = nbytes, .name = name};
  fc_tensor *t = decode_to_tensor(&ctx, &s, channels, 0, 0);
  image_ctx_free(&ctx);
  return t;
}

/* A uint8 [C,H,W] or [H,W] tensor into an HWC image. */
static int image_from_tensor(const char *op, fc_tensor *t, image *im) {
  if (check_defined(op, t, "image") < 0) return -1;
  if (t->dtype != FC_UINT8) FAIL_INT("%s: image must be uint8, got %s", op, DTYPE(t));
  if (t->ndim != 2 && t->ndim != 3) FAIL_INT("%s: image must be [C,H,W] or [H,W], got %s", op, SHAPE(t));
  int c = t->ndim == 3 ? (int)t->shape[0] : 1;
  int64_t h = t->shape[t->ndim - 2], w = t->shape[t->ndim - 1];
  if (c != 1 && c != 3 && c != 4) FAIL_INT("%s: image must have 1, 3 or 4 channels, got %s", op, SHAPE(t));
  if (h < 1 || w < 1 || h > 65536 || w > 65536) FAIL_INT("%s: image size %s out of range", op, SHAPE(t));
  fc_tensor *ct = fc_contiguous(t);
  if (!ct) return -1;
  int rc = image_alloc(im, (int)h, (int)w, c);
  if (rc == 0) {
    const uint8_t *p = fc_data_ptr(ct);
    size_t plane = (size_t)h * (size_t)w;
    for (size_t i = 0; i < plane; i++)
      for (int k = 0; k < c; k++) im->px[i * c + k] = p[k * plane + i];
  }
  fc_release(ct);
  return rc;
}

fc_tensor *fc_image_transform(fc_tensor *img, int ntfms, const fc_tfm *tfms, uint64_t seed,
                              int64_t epoch, int64_t item) {
  if (check_pipeline("image_transform", ntfms, tfms) < 0) return NULL;
  image_ctx ctx = {0};
  fc_tensor *out = NULL;
  if (image_from_tensor("image_transform", img, &ctx.img[0]) == 0) {
    item_rng r;
    rng_init(&r, seed, epoch, item);
    image_sink sink = {.open = open_tensor, .arg = &out};
    if (run_steps(&ctx, NULL, 0, ntfms, tfms, &r, &sink) < 0) {
      fc_release(out);
      out = NULL;
    }
  }
  image_ctx_free(&ctx);
  return out;
}
static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

static int write_jpeg(const char *path, const image *im, int quality) {
  tjhandle tj = tjInitCompress();
  if (!tj) FAIL_INT("image_write: cannot start the JPEG encoder");
  unsigned char *jpeg = NULL;
  unsigned long size = 0;
  int pf = im->c == 1 ? TJPF_GRAY : im->c == 3 ? TJPF_RGB : TJPF_RGBA;
  int samp = im->c == 1 ? TJSAMP_GRAY : TJSAMP_420;
  int rc = tjCompress2(tj, im->px, im->w, 0, im->h, pf, &jpeg, &size, samp, quality, 0);
  if (rc < 0) fc_set_error("image_write: '%s': %s", path, tjGetErrorStr2(tj));
  tjDestroy(tj);
  if (rc < 0) return -1;
  FILE *f = fopen(path, "wb");
  char eb[128];
  if (!f) {
    tjFree(jpeg);
    FAIL_INT("image_write: cannot create '%s': %s", path, strerror_r(errno, eb, sizeof eb));
  }
  bool ok = fwrite(jpeg, 1, size, f) == size;
  ok = fclose(f) == 0 && ok;
  tjFree(jpeg);
  if (!ok) FAIL_INT("image_write: cannot write '%s'", path);
  return 0;
}

int fc_image_write(const char *path, fc_tensor *img, int quality) {
  if (!path) FAIL_INT("image_write: path is NULL");
  bool jpeg = ends_with(path, ".jpg") || ends_with(path, ".jpeg");
  if (jpeg && (quality < 1 || quality > 100)) FAIL_INT("image_write: quality must be 1..100, got %d", quality);
  if (!jpeg && !ends_with(path, ".png") && !ends_with(path, ".bmp") && !ends_with(path, ".tga"))
    FAIL_INT("image_write: '%s': unknown extension (expected .jpg, .jpeg, .png, .bmp or .tga)", path);
  image im = {0};
  if (image_from_tensor("image_write", img, &im) < 0) return -1;
  int rc = 0;
  if (jpeg) {
    rc = write_jpeg(path, &im, quality);
  } else {
    int ok = ends_with(path, ".png") ? stbi_write_png(path, im.w, im.h, im.c, im.px, im.w * im.c)
             : ends_with(path, ".bmp") ? stbi_write_bmp(path, im.w, im.h, im.c, im.px)
                                       : stbi_write_tga(path, im.w, im.h, im.c, im.px);
    if (!ok) {
      fc_set_error("image_write: cannot write '%s'", path);
      rc = -1;
    }
  }
  free(im.px);
  return rc;
}
