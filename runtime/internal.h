/* internal.h — helpers shared by the runtime's .c files; never installed. */
#ifndef FASTC_INTERNAL_H
#define FASTC_INTERNAL_H

#include "fastc.h"
#include <math.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* ---- errors --------------------------------------------------------------
 * fc_set_error formats into a thread-local buffer. FAIL(...) sets it and
 * returns NULL; FAIL_INT(...) returns -1. */
#define FAIL(...) do { fc_set_error(__VA_ARGS__); return NULL; } while (0)
#define FAIL_INT(...) do { fc_set_error(__VA_ARGS__); return -1; } while (0)

/* "[2,3,4]" into buf; returns buf. Several may be live in one message. */
const char *shape_str(const fc_tensor *t, char *buf, size_t n);
const char *dims_str(int ndim, const int64_t *shape, char *buf, size_t n);
/* "1st", "2nd", ... for a 0-based position. */
const char *ordinal(int64_t i, char *buf, size_t size);
#define SHAPE(t) shape_str((t), (char[96]){0}, 96)
#define DTYPE(t) fc_dtype_name((t)->dtype)

/* ---- dtypes -------------------------------------------------------------- */
float half_to_float(uint16_t h);
uint16_t float_to_half(float f);
float bf16_to_float(uint16_t h);
uint16_t float_to_bf16(float f);
/* Reads/writes one element of any dtype as double (slow path, any dtype). */
double load_as_double(const void *p, int dtype);
void store_from_double(void *p, int dtype, double v);
static inline bool is_float_dtype(int d) {
  return d == FC_FLOAT32 || d == FC_FLOAT64 || d == FC_FLOAT16 || d == FC_BFLOAT16;
}
static inline bool is_half_dtype(int d) { return d == FC_FLOAT16 || d == FC_BFLOAT16; }
static inline bool valid_dtype(int d) { return d >= 0 && d < FC_NUM_DTYPES; }
/* PyTorch's result_type: a 0-dim operand only decides the dtype when its
 * category (bool < integer < float) is higher than the other's. */
int result_type(const fc_tensor *a, const fc_tensor *b);

/* ---- memory ------------------------------------------------------------- */
void *cpu_alloc(size_t nbytes);
void cpu_free(void *p, size_t nbytes);
fc_storage *storage_new(size_t nbytes, fc_device dev);
void storage_release(fc_storage *s);
fc_tensor *header_alloc(void); /* zeroed */
void header_free(fc_tensor *t);

/* A tensor header over an existing storage (which it retains). */
fc_tensor *tensor_view_of(fc_tensor *base, int ndim, const int64_t *shape,
                          const int64_t *stride, int64_t offset);
/* A fresh contiguous tensor like the shape of `t` but with `dtype`. */
fc_tensor *empty_dtype_like(const fc_tensor *t, int dtype);
void contiguous_strides(int ndim, const int64_t *shape, int64_t *stride);
int64_t shape_numel(int ndim, const int64_t *shape);
static inline char *elem_ptr(const fc_tensor *t) {
  return (char *)t->storage->data + t->offset * fc_dtype_size(t->dtype);
}
static inline void bump_version(fc_tensor *t) { t->storage->version++; }

/* ---- checks ------------------------------------------------------------- */
/* Normalises a possibly negative dim into [0, ndim); -1 and an error if bad. */
int wrap_dim(const char *op, int dim, int ndim);
/* Every tensor on one device, and that device's backend available. */
int check_same_device(const char *op, int n, const fc_tensor *const *ts);
int check_defined(const char *op, const fc_tensor *t, const char *what);
/* Broadcast two shapes NumPy-style into out; -1 with an error naming both. */
int broadcast_shapes(const char *op, int na, const int64_t *sa, int nb, const int64_t *sb,
                     int *nout, int64_t *out);

/* ---- randomness ------------------------------------------------------- */
void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);
/* For kernels that draw their own numbers from the global generator:
 * reserves `blocks` counters (4 words each) and returns the first, with the
 * seed; philox_words gives the 4 words of one counter. */
uint64_t philox_take(uint64_t blocks, uint64_t *seed);
void philox_words(uint64_t seed, uint64_t counter, uint32_t out[4]);

/* ---- autograd ------------------------------------------------------------
 * A node is the backward of one op. Its edges lead to the nodes of the
 * inputs (or to the leaf tensors whose .grad it feeds); it keeps the input
 * shapes (to undo broadcasting) and the tensors its formula needs. */
enum { NODE_MAX_INPUTS = 4, NODE_MAX_SAVED = 4 };
typedef struct fc_node fc_node;
/* Given the output's gradient, sets grads[i] for each input i that needs one
 * (new references, any broadcast-compatible shape); returns 0 or -1. */
typedef int (*backward_fn)(fc_node *n, fc_tensor *grad, fc_tensor **grads);
struct fc_node {
  const char *op;
  int64_t refcount;
  backward_fn backward;
  int ninputs;
  fc_node *next[NODE_MAX_INPUTS];   /* input's grad_fn (retained) */
  fc_tensor *leaf[NODE_MAX_INPUTS]; /* or the leaf to accumulate into (retained) */
  int in_ndim[NODE_MAX_INPUTS], in_dtype[NODE_MAX_INPUTS];
  int64_t in_shape[NODE_MAX_INPUTS][FC_MAX_DIMS];
  int nsaved;
  fc_tensor *saved[NODE_MAX_SAVED];
  int64_t saved_version[NODE_MAX_SAVED];
  double arg[4];
  int64_t iarg[FC_MAX_DIMS];
  bool released;
  /* backward engine scratch */
  fc_tensor *grad;
  int pending;
  uint64_t mark; /* the backward pass that last visited it */
};
/* True when grad mode is on and one of the tensors requires grad. */
bool grad_needed(int n, fc_tensor *const *ts);
/* Records a node for `out` computed from `inputs`; returns it so the op can
 * save tensors and arguments, or NULL (with an error) if out of memory. */
fc_node *record(const char *op, backward_fn fn, fc_tensor *out, int n, fc_tensor *const *inputs);
void node_save(fc_node *n, fc_tensor *t);
void node_release(fc_node *n);
/* The checks every in-place op runs before writing into t. */
int check_inplace(const char *op, fc_tensor *t);
/* Sums grad over broadcast dims so it has `ndim`/`shape` again. */
fc_tensor *sum_to_shape(fc_tensor *grad, int ndim, const int64_t *shape);
/* RAII-free no-grad scope for backward formulas. */
int grad_mode_push(bool enabled);
void grad_mode_pop(int previous);

/* ---- kernel operands ------------------------------------------------------ */
/* The float dtype a kernel computes in: float64 stays, the rest (halves,
 * float32) use float32. */
static inline int kernel_dtype(int dtype) { return dtype == FC_FLOAT64 ? FC_FLOAT64 : FC_FLOAT32; }
/* t as a contiguous tensor of `dtype` (t itself, retained, when it already
 * is one), made outside autograd: what kernels read and backward saves. */
fc_tensor *dense_in(fc_tensor *t, int dtype);

/* ---- threads ------------------------------------------------------------ */
/* Below this many elements a loop runs on one thread: spawning costs more. */
enum { PARALLEL_GRAIN = 32768 };
int num_threads(void);

/* ---- convolution kernels (conv.c dispatches between the two) -------------
 * One geometry for conv2d and its transpose: x [N,C,H,W] convolved with
 * w [Co,C/groups,kh,kw] gives y [N,Co,Ho,Wo]. ph/pw pad the top/left; Ho/Wo
 * are given, so the bottom/right padding is whatever makes them fit (it is
 * smaller than ph/pw when a transpose has output_padding). Pointers are to
 * contiguous data; outputs are overwritten; b, gb may be NULL. */
typedef struct conv_geom {
  int64_t N, C, H, W, Co, kh, kw, Ho, Wo;
  int sh, sw, ph, pw, dh, dw, groups;
} conv_geom;
/* im2col + BLAS, float32 (f64 false) or float64: the path for any case. */
int im2col_conv_forward(const conv_geom *g, bool f64, const void *x, const void *w, const void *b, void *y);
int im2col_conv_backward_data(const conv_geom *g, bool f64, const void *w, const void *gy, void *gx);
int im2col_conv_backward_weights(const conv_geom *g, bool f64, const void *x, const void *gy, void *gw, void *gb);
/* oneDNN, float32 only: 0 done, 1 oneDNN cannot take this case (use im2col),
 * -1 error (set). */
int dnnl_conv_forward(const conv_geom *g, const float *x, const float *w, const float *b, float *y);
int dnnl_conv_backward_data(const conv_geom *g, const float *w, const float *gy, float *gx);
int dnnl_conv_backward_weights(const conv_geom *g, const float *x, const float *gy, float *gw, float *gb);
/* Which kernels float32 takes; the default is CONV_DNNL, or what the
 * environment says (FASTC_CONV_BACKEND=im2col, FASTC_DNNL_LAYOUT=nchw).
 * Tests switch it to reach every path. */
enum { CONV_DNNL, CONV_DNNL_PLAIN, CONV_IM2COL };
void conv_set_backend(int backend);
/* The backend that ran this thread's last convolution kernel (tests check
 * that oneDNN really took the cases it should). */
int conv_last_backend(void);

/* ---- elementwise iteration -----------------------------------------------
 * An iterator walks up to 4 operands (operand 0 is the output) over one
 * broadcast shape, calling a kernel on runs of the innermost dim with byte
 * strides. Dims are coalesced so contiguous data is a single run. */
enum { ITER_MAX_OPS = 4 };
typedef struct iter {
  int nops, ndim;
  int64_t numel;
  int64_t shape[FC_MAX_DIMS];
  int64_t stride[ITER_MAX_OPS][FC_MAX_DIMS]; /* bytes; 0 where broadcast */
  char *data[ITER_MAX_OPS];
} iter;
typedef void (*iter_kernel)(char **ptrs, const int64_t *strides, int64_t n, void *ctx);
/* ops[0] has the full shape; the others broadcast to it. */
void iter_init(iter *it, int nops, fc_tensor *const *ops);
void iter_run(const iter *it, iter_kernel k, void *ctx);
/* Per-element access for kernels that don't care about runs. */
#define AT(p, s, i, T) (*(T *)((p) + (i) * (s)))

/* ---- images (image.c) as the loader (loader.c) uses them ---------------
 * An image in flight is interleaved HWC uint8; a JPEG decoded only where a
 * crop reads is a window whose top-left pixel is (x0, y0) of the whole.
 * Buffers keep a few bytes of slack past the pixels: the resampler moves
 * pixels four bytes at a time. Each thread owns an image_ctx: its JPEG
 * decoder and every buffer the item steps need, reused from item to item. */
typedef struct image { uint8_t *px; int h, w, c, x0, y0; size_t cap; } image;
typedef struct image_ctx {
  void *jpeg;          /* libjpeg decompressor, made on first use */
  uint8_t *file;       /* the file's bytes */
  size_t file_cap;
  image img[2];        /* current and next while running the steps */
  uint8_t *tmp;        /* resampling's intermediate rows */
  size_t tmp_cap;
  uint8_t *row;        /* one output row before it is written out */
  size_t row_cap;
  void *plan;          /* the resampling plans of both axes */
} image_ctx;
void image_ctx_free(image_ctx *ctx);
/* Where the steps' final image goes, a row at a time. open() is called once
 * the final size is known and points u8 (uint8) or f32 (px * scale[k] +
 * bias[k]) at [C,H,W] planes, or fails with the error set. */
typedef struct image_sink {
  int (*open)(struct image_sink *s, int c, int h, int w);
  void *arg;
  uint8_t *u8;
  float *f32;
  float scale[4], bias[4];
} image_sink;
/* Reads, decodes and runs the steps on one file into the sink. */
int image_load_item(image_ctx *ctx, const char *path, int channels, int ntfms, const fc_tfm *tfms,
                    uint64_t seed, int64_t epoch, int64_t item, image_sink *out);
/* Decodes columns [x0, x1) and rows [y0, y1) of a JPEG at 1/denom scale
 * into out, as the item steps do (out->x0 says where the columns start:
 * libjpeg widens the window left to an iMCU boundary). For the tests. */
int image_decode_jpeg_window(image_ctx *ctx, const void *data, size_t nbytes, int channels, int denom,
                             int x0, int x1, int y0, int y1, image *out);
/* The size the steps end on, or 0x0 when it depends on the image. */
void pipeline_out_size(int ntfms, const fc_tfm *tfms, int *height, int *width);
int check_pipeline(const char *op, int ntfms, const fc_tfm *tfms);

#endif
