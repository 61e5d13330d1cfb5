/* image.c — decoding, writing and the item steps of the data loader.
 *
 * An item goes: file bytes -> header (size only) -> the first geometric step
 * planned in the original image's coordinates -> decode, for a JPEG at the
 * smallest DCT scale that still gives the step all the pixels it uses ->
 * each step as one resampling of a source box into the output size -> CHW.
 *
 * Every geometric step (fastai's Resize, RandomResizedCrop, CropPad) is "crop
 * a box, padding where it leaves the image, then resize the box to the output
 * size". The resampler does that in one pass per axis: output pixel i takes
 * the bilinear filter, widened by the downscale factor (antialiasing, as
 * PIL), centred at box_x0 + (i + 0.5) * scale, over source pixels clipped to
 * the box; pixels of the box outside the image come from the pad mode.
 *
 * Randomness: each item draws from its own Philox stream keyed by (seed,
 * epoch, item), so the result does not depend on which thread runs it. */
#include "internal.h"
#include <errno.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/stat.h>
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

static int image_alloc(image *im, int h, int w, int c) {
  size_t n = (size_t)h * (size_t)w * (size_t)c;
  if (n > im->cap) {
    uint8_t *p = realloc(im->px, n);
    if (!p) FAIL_INT("image: out of memory for a %dx%dx%d image", h, w, c);
    im->px = p;
    im->cap = n;
  }
  im->h = h, im->w = w, im->c = c;
  return 0;
}

static void *grow(uint8_t **buf, size_t *cap, size_t n) {
  if (n > *cap) {
    uint8_t *p = realloc(*buf, n);
    if (!p) return NULL;
    *buf = p;
    *cap = n;
  }
  return *buf;
}

void image_ctx_free(image_ctx *ctx) {
  if (ctx->tj) tjDestroy(ctx->tj);
  free(ctx->file);
  free(ctx->img[0].px);
  free(ctx->img[1].px);
  free(ctx->tmp);
  memset(ctx, 0, sizeof *ctx);
}

void image_to_chw(const image *im, uint8_t *dst) {
  size_t plane = (size_t)im->h * (size_t)im->w;
  int c = im->c;
  const uint8_t *src = im->px;
  if (c == 1) {
    memcpy(dst, src, plane);
  } else if (c == 3) {
    uint8_t *r = dst, *g = dst + plane, *b = dst + 2 * plane;
    for (size_t i = 0; i < plane; i++) {
      r[i] = src[3 * i], g[i] = src[3 * i + 1], b[i] = src[3 * i + 2];
    }
  } else {
    for (size_t i = 0; i < plane; i++)
      for (int k = 0; k < c; k++) dst[k * plane + i] = src[i * c + k];
  }
}

void image_to_chw_normalized(const image *im, float *dst, const float *mean, const float *std) {
  size_t plane = (size_t)im->h * (size_t)im->w;
  int c = im->c;
  const uint8_t *src = im->px;
  for (int k = 0; k < c; k++) {
    float scale = 1.0f / (255.0f * std[k]), bias = -mean[k] / std[k];
    float *out = dst + k * plane;
    for (size_t i = 0; i < plane; i++) out[i] = (float)src[i * c + k] * scale + bias;
  }
}

/* ---- files --------------------------------------------------------------- */

static int read_file(image_ctx *ctx, const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  char eb[128];
  if (!f) FAIL_INT("cannot open '%s': %s", path, strerror_r(errno, eb, sizeof eb));
  size_t len = 0;
  int rc = 0;
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    rc = -1;
  } else if (fseek(f, 0, SEEK_END) == 0) {
    long size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
      rc = -1;
    } else if (size > 0) {
      if (!grow(&ctx->file, &ctx->file_cap, (size_t)size)) {
        fclose(f);
        FAIL_INT("'%s': out of memory reading %ld bytes", path, size);
      }
      len = fread(ctx->file, 1, (size_t)size, f);
      if (len != (size_t)size) rc = -1;
    }
  } else {
    rc = -1;
  }
  fclose(f);
  if (rc < 0) FAIL_INT("cannot read '%s' (not a regular file, or a read error)", path);
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

static bool is_jpeg(const uint8_t *b, size_t n) { return n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF; }

static tjhandle ctx_tj(image_ctx *ctx) {
  if (!ctx->tj) ctx->tj = tjInitDecompress();
  return ctx->tj;
}

static int probe(image_ctx *ctx, source *s) {
  if (is_jpeg(s->buf, s->n)) {
    tjhandle tj = ctx_tj(ctx);
    if (!tj) FAIL_INT("'%s': cannot start the JPEG decoder", s->name);
    int w = 0, h = 0, subsamp = 0, colorspace = 0;
    if (tjDecompressHeader3(tj, s->buf, (unsigned long)s->n, &w, &h, &subsamp, &colorspace) < 0)
      FAIL_INT("'%s': corrupt or truncated JPEG (%s)", s->name, tjGetErrorStr2(tj));
    if (w < 1 || h < 1 || w > 65535 || h > 65535)
      FAIL_INT("'%s': corrupt or truncated JPEG (header gives size %dx%d)", s->name, w, h);
    if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK)
      FAIL_INT("'%s': CMYK JPEGs are not supported", s->name);
    s->fmt = FMT_JPEG, s->w = w, s->h = h, s->file_channels = colorspace == TJCS_GRAY ? 1 : 3;
    return 0;
  }
  if (s->n > INT32_MAX) FAIL_INT("'%s': file too large to decode", s->name);
  int w, h, c;
  if (!stbi_info_from_memory(s->buf, (int)s->n, &w, &h, &c))
    FAIL_INT("'%s': not a supported image or corrupt (%s)", s->name, stbi_failure_reason());
  s->fmt = FMT_OTHER, s->w = w, s->h = h, s->file_channels = c;
  return 0;
}

static int out_channels(const source *s, int channels) { return channels ? channels : s->file_channels; }

/* The smallest DCT scale that keeps the decoded image at least `need` times
 * the original along both axes. Only 1/1, 1/2, 1/4 and 1/8: libjpeg-turbo
 * has fast (SIMD) inverse DCTs for those; 7/8 or 3/4 decode slower than the
 * full size does. */
static tjscalingfactor pick_scale(double need) {
  tjscalingfactor best = {1, 1};
  int n = 0;
  tjscalingfactor *sf = tjGetScalingFactors(&n);
  for (int i = 0; sf && i < n; i++) {
    double s = (double)sf[i].num / sf[i].denom;
    if (sf[i].num == 1 && s >= need && s < (double)best.num / best.denom) best = sf[i];
  }
  return best;
}

static int decode_jpeg(image_ctx *ctx, const source *s, int channels, double need, image *out) {
  tjhandle tj = ctx_tj(ctx);
  tjscalingfactor sf = need < 1 ? pick_scale(need) : (tjscalingfactor){1, 1};
  int w = TJSCALED(s->w, sf), h = TJSCALED(s->h, sf), c = out_channels(s, channels);
  int pf = c == 1 ? TJPF_GRAY : c == 3 ? TJPF_RGB : TJPF_RGBA;
  if (c != 1 && c != 3 && c != 4) FAIL_INT("'%s': cannot decode a JPEG to %d channels", s->name, c);
  if (image_alloc(out, h, w, c) < 0) return -1;
  if (tjDecompress2(tj, s->buf, (unsigned long)s->n, out->px, w, 0, h, pf, TJFLAG_STOPONWARNING) < 0)
    FAIL_INT("'%s': corrupt or truncated JPEG (%s)", s->name, tjGetErrorStr2(tj));
  return 0;
}

static int decode_other(const source *s, int channels, image *out) {
  int w, h, c;
  uint8_t *px = stbi_load_from_memory(s->buf, (int)s->n, &w, &h, &c, channels);
  if (!px) FAIL_INT("'%s': corrupt or truncated image (%s)", s->name, stbi_failure_reason());
  c = channels ? channels : c;
  size_t n = (size_t)w * (size_t)h * (size_t)c;
  if (image_alloc(out, h, w, c) < 0) {
    stbi_image_free(px);
    return -1;
  }
  memcpy(out->px, px, n);
  stbi_image_free(px);
  return 0;
}

/* need: the fraction of the original resolution the next step uses (JPEG
 * only; 1 or more decodes at full size). */
static int decode(image_ctx *ctx, const source *s, int channels, double need, image *out) {
  if (channels != 0 && channels != 1 && channels != 3 && channels != 4)
    FAIL_INT("'%s': channels must be 1, 3 or 4 (or 0 for the file's own), got %d", s->name, channels);
  return s->fmt == FMT_JPEG ? decode_jpeg(ctx, s, channels, need, out) : decode_other(s, channels, out);
}

/* ---- resampling ---------------------------------------------------------- */

enum { PRECISION = 22 }; /* fixed-point bits of the filter weights, as PIL */

/* One axis: for each output pixel its taps (source index, weight), the
 * zero-weight ones dropped (padding with zeros is a missing tap). */
typedef struct axis {
  int n, ntaps;   /* outputs, tap slots per output */
  int *idx;       /* n x ntaps */
  int32_t *wt;    /* n x ntaps */
  int *cnt;       /* taps in use per output */
  int lo, hi;     /* source indices read, both included; lo > hi: none */
  bool copy;      /* at most one full-weight tap each: a plain crop */
} axis;

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

static void axis_free(axis *a) {
  free(a->idx);
  free(a->wt);
  free(a->cnt);
}

static int axis_plan(axis *a, int n, span sp, int src_n, int pad_mode) {
  double support = sp.scale > 1 ? sp.scale : 1, inv = 1 / support;
  int clo = (int)floor(sp.lo + 1e-9), chi = (int)ceil(sp.hi - 1e-9);
  a->n = n;
  a->ntaps = (int)ceil(2 * support) + 1;
  a->idx = malloc(sizeof(int) * (size_t)n * (size_t)a->ntaps);
  a->wt = malloc(sizeof(int32_t) * (size_t)n * (size_t)a->ntaps);
  a->cnt = malloc(sizeof(int) * (size_t)n);
  if (!a->idx || !a->wt || !a->cnt) {
    axis_free(a);
    FAIL_INT("image: out of memory planning a resize");
  }
  a->copy = sp.scale == 1 && sp.x0 == floor(sp.x0);
  a->lo = INT32_MAX, a->hi = -1;
  double w[a->ntaps];
  for (int i = 0; i < n; i++) {
    double center = sp.x0 + (i + 0.5) * sp.scale, total = 0;
    int lo = (int)floor(center - support + 0.5), hi = (int)floor(center + support + 0.5);
    if (lo < clo) lo = clo;
    if (hi > chi) hi = chi;
    if (hi > lo + a->ntaps) hi = lo + a->ntaps;
    for (int j = lo; j < hi; j++) total += w[j - lo] = triangle((j - center + 0.5) * inv);
    int *idx = a->idx + (size_t)i * a->ntaps, k = 0;
    int32_t *wt = a->wt + (size_t)i * a->ntaps;
    for (int j = lo; j < hi; j++) {
      int src = pad_index(j, src_n, pad_mode);
      int32_t fixed = total > 0 ? (int32_t)lround(w[j - lo] / total * (1 << PRECISION)) : 0;
      if (src < 0 || fixed == 0) continue;
      idx[k] = src, wt[k++] = fixed;
      if (src < a->lo) a->lo = src;
      if (src > a->hi) a->hi = src;
    }
    a->cnt[i] = k;
  }
  return 0;
}

static inline uint8_t clip8(int32_t acc) {
  acc >>= PRECISION;
  return (uint8_t)(acc < 0 ? 0 : acc > 255 ? 255 : acc);
}

/* One row across: out[x] = sum of taps of row (source index - shift).
 * 255 * 2^22 fits an int32 and the weights are non-negative. */
static void hpass(const uint8_t *row, int c, const axis *ax, int shift, uint8_t *out) {
  const int half = 1 << (PRECISION - 1);
  for (int x = 0; x < ax->n; x++) {
    const int *idx = ax->idx + (size_t)x * ax->ntaps;
    const int32_t *wt = ax->wt + (size_t)x * ax->ntaps;
    int cnt = ax->cnt[x];
    if (c == 3) {
      int32_t a0 = half, a1 = half, a2 = half;
      for (int t = 0; t < cnt; t++) {
        const uint8_t *p = row + (idx[t] - shift) * 3;
        int32_t w = wt[t];
        a0 += w * p[0], a1 += w * p[1], a2 += w * p[2];
      }
      out[3 * x] = clip8(a0), out[3 * x + 1] = clip8(a1), out[3 * x + 2] = clip8(a2);
    } else {
      for (int k = 0; k < c; k++) {
        int32_t acc = half;
        for (int t = 0; t < cnt; t++) acc += wt[t] * row[(idx[t] - shift) * c + k];
        out[x * c + k] = clip8(acc);
      }
    }
  }
}

/* One output row down: out[i] = sum of taps of rows base + (index - shift) * stride. */
static void vpass(const uint8_t *base, size_t stride, int shift, const axis *ay, int y, int len,
                  int32_t *acc, uint8_t *out) {
  const int *idx = ay->idx + (size_t)y * ay->ntaps;
  const int32_t *wt = ay->wt + (size_t)y * ay->ntaps;
  for (int i = 0; i < len; i++) acc[i] = 1 << (PRECISION - 1);
  for (int t = 0; t < ay->cnt[y]; t++) {
    const uint8_t *row = base + (size_t)(idx[t] - shift) * stride;
    int32_t w = wt[t];
    for (int i = 0; i < len; i++) acc[i] += w * row[i];
  }
  for (int i = 0; i < len; i++) out[i] = clip8(acc[i]);
}

/* Crop-copy fast path: every output pixel is one source pixel or padding. */
static void copy_box(const image *src, const axis *ax, const axis *ay, image *dst) {
  int c = src->c;
  for (int y = 0; y < ay->n; y++) {
    uint8_t *out = dst->px + (size_t)y * dst->w * c;
    if (ay->cnt[y] == 0) {
      memset(out, 0, (size_t)dst->w * c);
      continue;
    }
    const uint8_t *row = src->px + (size_t)ay->idx[(size_t)y * ay->ntaps] * src->w * c;
    for (int x = 0; x < ax->n; x++) {
      if (ax->cnt[x] == 0) memset(out + x * c, 0, (size_t)c);
      else memcpy(out + x * c, row + ax->idx[(size_t)x * ax->ntaps] * c, (size_t)c);
    }
  }
}

typedef struct box {
  span x, y;
  int out_w, out_h, pad_mode;
} box;

/* Separable resampling, in the order that runs the scalar horizontal pass
 * over fewer rows: across first over the source rows in use when the output
 * has more rows than that, else down first over the source columns in use. */
static int resample_planned(image_ctx *ctx, const image *src, const axis *ax, const axis *ay, image *dst) {
  int c = src->c;
  size_t out_row = (size_t)dst->w * c, src_row = (size_t)src->w * c;
  if (ay->lo > ay->hi || ax->lo > ax->hi) {
    memset(dst->px, 0, out_row * dst->h); /* all padding */
    return 0;
  }
  int rows = ay->hi - ay->lo + 1, cols = ax->hi - ax->lo + 1;
  bool across_first = dst->h >= rows;
  size_t tmp_bytes = across_first ? (size_t)rows * out_row : (size_t)cols * c;
  size_t acc_len = across_first ? out_row : (size_t)cols * c;
  int32_t *acc = malloc(sizeof(int32_t) * acc_len);
  if (!acc || !grow(&ctx->tmp, &ctx->tmp_cap, tmp_bytes)) {
    free(acc);
    FAIL_INT("image: out of memory resizing");
  }
  if (across_first) {
    for (int r = 0; r < rows; r++) hpass(src->px + (size_t)(ay->lo + r) * src_row, c, ax, 0, ctx->tmp + r * out_row);
    for (int y = 0; y < dst->h; y++) vpass(ctx->tmp, out_row, ay->lo, ay, y, (int)out_row, acc, dst->px + y * out_row);
  } else {
    const uint8_t *base = src->px + (size_t)ax->lo * c;
    for (int y = 0; y < dst->h; y++) {
      vpass(base, src_row, 0, ay, y, cols * c, acc, ctx->tmp);
      hpass(ctx->tmp, c, ax, ax->lo, dst->px + y * out_row);
    }
  }
  free(acc);
  return 0;
}

static int resample(image_ctx *ctx, const image *src, const box *b, image *dst) {
  axis ax = {0}, ay = {0};
  if (axis_plan(&ax, b->out_w, b->x, src->w, b->pad_mode) < 0) return -1;
  if (axis_plan(&ay, b->out_h, b->y, src->h, b->pad_mode) < 0) {
    axis_free(&ax);
    return -1;
  }
  int rc = image_alloc(dst, b->out_h, b->out_w, src->c);
  if (rc == 0 && ax.copy && ay.copy) copy_box(src, &ax, &ay, dst);
  else if (rc == 0) rc = resample_planned(ctx, src, &ax, &ay, dst);
  axis_free(&ax);
  axis_free(&ay);
  return rc;
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

/* Runs the steps. With `src` the image is not decoded yet: the first step is
 * planned on the header's size, and decoding then keeps only the resolution
 * that step uses. Returns the index of ctx->img holding the result. */
static int run_steps(image_ctx *ctx, const source *src, int channels, int ntfms, const fc_tfm *tfms,
                     item_rng *r) {
  int cur = 0;
  bool decoded = src == NULL;
  for (int i = 0; i < ntfms; i++) {
    const fc_tfm *t = &tfms[i];
    if (t->kind == FC_TFM_FLIP) {
      if (!decoded && decode(ctx, src, channels, 1, &ctx->img[cur]) < 0) return -1;
      decoded = true;
      if (rng_unit(r) < t->p) flip_horizontal(&ctx->img[cur]);
      continue;
    }
    int w = decoded ? ctx->img[cur].w : src->w, h = decoded ? ctx->img[cur].h : src->h;
    box b = step_box(t, w, h, r);
    if (!decoded) {
      double need = fmax(1 / b.x.scale, 1 / b.y.scale);
      if (decode(ctx, src, channels, need, &ctx->img[cur]) < 0) return -1;
      decoded = true;
      b.x = scale_span(b.x, (double)ctx->img[cur].w / w);
      b.y = scale_span(b.y, (double)ctx->img[cur].h / h);
    }
    if (resample(ctx, &ctx->img[cur], &b, &ctx->img[1 - cur]) < 0) return -1;
    cur = 1 - cur;
  }
  if (!decoded && decode(ctx, src, channels, 1, &ctx->img[cur]) < 0) return -1;
  return cur;
}

int image_load_item(image_ctx *ctx, const char *path, int channels, int ntfms, const fc_tfm *tfms,
                    uint64_t seed, int64_t epoch, int64_t item, const image **out) {
  size_t n;
  if (read_file(ctx, path, &n) < 0) return -1;
  source s = {.buf = ctx->file, .n = n, .name = path};
  if (probe(ctx, &s) < 0) return -1;
  item_rng r;
  rng_init(&r, seed, epoch, item);
  int cur = run_steps(ctx, &s, channels, ntfms, tfms, &r);
  if (cur < 0) return -1;
  *out = &ctx->img[cur];
  return 0;
}

/* ---- public API ---------------------------------------------------------- */

static fc_tensor *chw_tensor(const image *im) {
  int64_t shape[3] = {im->c, im->h, im->w};
  fc_tensor *t = fc_empty(3, shape, FC_UINT8, (fc_device){FC_CPU, 0});
  if (t) image_to_chw(im, (uint8_t *)fc_data_ptr(t));
  return t;
}

static fc_tensor *decode_to_tensor(image_ctx *ctx, source *s, int channels, int min_h, int min_w) {
  if (probe(ctx, s) < 0) return NULL;
  double need = 1;
  if (min_h > 0 && min_w > 0) need = fmax((double)min_h / s->h, (double)min_w / s->w);
  if (decode(ctx, s, channels, need, &ctx->img[0]) < 0) return NULL;
  return chw_tensor(&ctx->img[0]);
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
    int cur = run_steps(&ctx, NULL, 0, ntfms, tfms, &r);
    if (cur >= 0) out = chw_tensor(&ctx.img[cur]);
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
