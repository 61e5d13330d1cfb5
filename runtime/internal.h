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

/* ---- threads ------------------------------------------------------------ */
/* Below this many elements a loop runs on one thread: spawning costs more. */
enum { PARALLEL_GRAIN = 32768 };
int num_threads(void);

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

#endif
