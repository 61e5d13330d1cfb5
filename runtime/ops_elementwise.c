/* ops_elementwise.c — unary, binary and ternary elementwise ops on the CPU.
 *
 * Kernels exist for five compute types (float32, float64, int64, int32,
 * uint8); float16/bfloat16 compute in float32 and bool maps onto uint8 or
 * the logical ops. Each kernel has a contiguous loop the compiler vectorises,
 * a scalar-operand loop and a general strided loop. */
#include "internal.h"

typedef float f32;
typedef double f64;
typedef int64_t i64;
typedef int32_t i32;
typedef uint8_t u8;

enum { T_F32, T_F64, T_I64, T_I32, T_U8, NUM_CT };

/* Compute type slot for a dtype, or -1 where the op computes in float32. */
static int ct_of(int dtype) {
  switch (dtype) {
  case FC_FLOAT32: return T_F32;
  case FC_FLOAT64: return T_F64;
  case FC_INT64: return T_I64;
  case FC_INT32: return T_I32;
  case FC_UINT8: case FC_BOOL: return T_U8;
  }
  return -1;
}

/* ---- kernel generators ------------------------------------------------ */

#define BINARY_KERNEL(name, T, OT, EXPR)                                            \
  static void name(char **p, const int64_t *s, int64_t n, void *ctx) {              \
    const double alpha = ctx ? *(const double *)ctx : 0;                             \
    (void)alpha;                                                                     \
    if (s[0] == sizeof(OT) && s[1] == sizeof(T) && s[2] == sizeof(T)) {             \
      OT *o = (OT *)p[0];                                                            \
      const T *a = (const T *)p[1], *b = (const T *)p[2];                            \
      for (int64_t i = 0; i < n; i++) { T x = a[i], y = b[i]; o[i] = (EXPR); }       \
    } else if (s[0] == sizeof(OT) && s[1] == sizeof(T) && s[2] == 0) {              \
      OT *o = (OT *)p[0];                                                            \
      const T *a = (const T *)p[1];                                                  \
      const T y = *(const T *)p[2];                                                  \
      for (int64_t i = 0; i < n; i++) { T x = a[i]; o[i] = (EXPR); }                 \
    } else {                                                                         \
      for (int64_t i = 0; i < n; i++) {                                              \
        T x = AT(p[1], s[1], i, T), y = AT(p[2], s[2], i, T);                        \
        AT(p[0], s[0], i, OT) = (EXPR);                                              \
      }                                                                              \
    }                                                                                \
  }

#define UNARY_KERNEL(name, T, EXPR)                                                  \
  static void name(char **p, const int64_t *s, int64_t n, void *ctx) {              \
    const double *arg = ctx;                                                         \
    (void)arg;                                                                       \
    if (s[0] == sizeof(T) && s[1] == sizeof(T)) {                                    \
      T *o = (T *)p[0];                                                              \
      const T *a = (const T *)p[1];                                                  \
      for (int64_t i = 0; i < n; i++) { T x = a[i]; o[i] = (EXPR); }                 \
    } else {                                                                         \
      for (int64_t i = 0; i < n; i++) {                                              \
        T x = AT(p[1], s[1], i, T);                                                  \
        AT(p[0], s[0], i, T) = (EXPR);                                               \
      }                                                                              \
    }                                                                                \
  }

/* Integer arithmetic wraps like PyTorch's instead of being undefined. */
#define WRAP(T, e) ((T)(uint64_t)(e))
static inline int64_t ipow(int64_t x, int64_t y) {
  if (y < 0) return x == 1 ? 1 : x == -1 ? (y & 1 ? -1 : 1) : 0;
  uint64_t r = 1, b = (uint64_t)x;
  for (; y; y >>= 1, b *= b)
    if (y & 1) r *= b;
  return (int64_t)r;
}

/* Float binary ops: max/min propagate NaN as torch.maximum does. */
#define FLOAT_BINARIES(T, POW)                                                     \
  BINARY_KERNEL(add_##T, T, T, x + y)                                              \
  BINARY_KERNEL(sub_##T, T, T, x - y)                                              \
  BINARY_KERNEL(mul_##T, T, T, x * y)                                              \
  BINARY_KERNEL(div_##T, T, T, x / y)                                              \
  BINARY_KERNEL(pow_##T, T, T, POW(x, y))                                          \
  BINARY_KERNEL(axpy_##T, T, T, x + (T)alpha * y)                                  \
  BINARY_KERNEL(max_##T, T, T, (x != x || x > y) ? x : y)                          \
  BINARY_KERNEL(min_##T, T, T, (x != x || x < y) ? x : y)
FLOAT_BINARIES(f32, powf)
FLOAT_BINARIES(f64, pow)

#define INT_BINARIES(T)                                                            \
  BINARY_KERNEL(add_##T, T, T, WRAP(T, (uint64_t)x + (uint64_t)y))                 \
  BINARY_KERNEL(sub_##T, T, T, WRAP(T, (uint64_t)x - (uint64_t)y))                 \
  BINARY_KERNEL(mul_##T, T, T, WRAP(T, (uint64_t)x * (uint64_t)y))                 \
  BINARY_KERNEL(pow_##T, T, T, (T)ipow(x, y))                                      \
  BINARY_KERNEL(axpy_##T, T, T, WRAP(T, (uint64_t)x + (uint64_t)(int64_t)alpha * (uint64_t)y)) \
  BINARY_KERNEL(max_##T, T, T, x > y ? x : y)                                      \
  BINARY_KERNEL(min_##T, T, T, x < y ? x : y)
INT_BINARIES(i64)
INT_BINARIES(i32)
INT_BINARIES(u8)

#define COMPARISONS(T)                                                             \
  BINARY_KERNEL(eq_##T, T, u8, x == y)                                             \
  BINARY_KERNEL(ne_##T, T, u8, x != y)                                             \
  BINARY_KERNEL(lt_##T, T, u8, x < y)                                              \
  BINARY_KERNEL(le_##T, T, u8, x <= y)                                             \
  BINARY_KERNEL(gt_##T, T, u8, x > y)                                              \
  BINARY_KERNEL(ge_##T, T, u8, x >= y)
COMPARISONS(f32)
COMPARISONS(f64)
COMPARISONS(i64)
COMPARISONS(i32)
COMPARISONS(u8)

BINARY_KERNEL(and_u8, u8, u8, (x != 0) & (y != 0))
BINARY_KERNEL(or_u8, u8, u8, (x != 0) | (y != 0))

#define ALL_CT(op) {op##_f32, op##_f64, op##_i64, op##_i32, op##_u8}
#define FLOAT_CT(op) {op##_f32, op##_f64, 0, 0, 0}

/* ---- binary ops ------------------------------------------------------- */

typedef enum { ARITH, FLOAT_ONLY, COMPARE, LOGICAL } binary_kind;

typedef struct binary_op {
  const char *name;
  binary_kind kind;
  iter_kernel k[NUM_CT];
} binary_op;

static const binary_op OP_ADD = {"add", ARITH, ALL_CT(add)};
static const binary_op OP_SUB = {"sub", ARITH, ALL_CT(sub)};
static const binary_op OP_MUL = {"mul", ARITH, ALL_CT(mul)};
static const binary_op OP_DIV = {"div", FLOAT_ONLY, FLOAT_CT(div)};
static const binary_op OP_POW = {"pow", ARITH, ALL_CT(pow)};
static const binary_op OP_AXPY = {"add", ARITH, ALL_CT(axpy)};
static const binary_op OP_MAX = {"maximum", ARITH, ALL_CT(max)};
static const binary_op OP_MIN = {"minimum", ARITH, ALL_CT(min)};
static const binary_op OP_EQ = {"eq", COMPARE, ALL_CT(eq)};
static const binary_op OP_NE = {"ne", COMPARE, ALL_CT(ne)};
static const binary_op OP_LT = {"lt", COMPARE, ALL_CT(lt)};
static const binary_op OP_LE = {"le", COMPARE, ALL_CT(le)};
static const binary_op OP_GT = {"gt", COMPARE, ALL_CT(gt)};
static const binary_op OP_GE = {"ge", COMPARE, ALL_CT(ge)};
static const binary_op OP_AND = {"logical_and", LOGICAL, {0, 0, 0, 0, and_u8}};
static const binary_op OP_OR = {"logical_or", LOGICAL, {0, 0, 0, 0, or_u8}};

/* bool arithmetic follows PyTorch: add is or, mul is and, sub is an error. */
static const binary_op *bool_arith(const binary_op *op) {
  if (op == &OP_ADD || op == &OP_MAX) return &OP_OR;
  if (op == &OP_MUL || op == &OP_MIN) return &OP_AND;
  return NULL;
}

static fc_tensor *converted(fc_tensor *t, int dtype) { return fc_to_dtype(t, dtype); }

/* Computes op(a, b) into `out` (fresh, or `a` itself for the in-place form). */
static int run_binary(const binary_op *op, fc_tensor *out, fc_tensor *a, fc_tensor *b,
                      int compute_dtype, double alpha) {
  fc_tensor *ca = converted(a, compute_dtype), *cb = ca ? converted(b, compute_dtype) : NULL;
  int rc = -1;
  if (cb) {
    iter it;
    iter_init(&it, 3, (fc_tensor *const[]){out, ca, cb});
    iter_run(&it, op->k[ct_of(compute_dtype)], &alpha);
    rc = 0;
  }
  fc_release(ca);
  fc_release(cb);
  return rc;
}

/* Works out the compute and output dtypes; -1 with an error if none fits. */
static int binary_dtypes(const binary_op **op, const fc_tensor *a, const fc_tensor *b,
                         int *compute, int *out) {
  int rt = result_type(a, b);
  switch ((*op)->kind) {
  case FLOAT_ONLY: *compute = *out = is_float_dtype(rt) ? rt : FC_FLOAT32; break;
  case COMPARE: *compute = rt; *out = FC_BOOL; break;
  case LOGICAL: *compute = *out = FC_BOOL; break;
  case ARITH:
    *compute = *out = rt;
    if (rt == FC_BOOL) {
      const binary_op *b_op = bool_arith(*op);
      if (!b_op) FAIL_INT("%s: not supported for bool tensors; use logical ops", (*op)->name);
      *op = b_op;
    }
    break;
  }
  if (is_half_dtype(*compute)) *compute = FC_FLOAT32;
  return 0;
}

static fc_tensor *binary(const binary_op *op, fc_tensor *a, fc_tensor *b, double alpha) {
  if (check_same_device(op->name, 2, (const fc_tensor *const[]){a, b}) < 0) return NULL;
  int nd, compute, out_dtype;
  int64_t shape[FC_MAX_DIMS];
  if (broadcast_shapes(op->name, a->ndim, a->shape, b->ndim, b->shape, &nd, shape) < 0) return NULL;
  if (binary_dtypes(&op, a, b, &compute, &out_dtype) < 0) return NULL;
  int direct_dtype = out_dtype == FC_BOOL || !is_half_dtype(out_dtype) ? out_dtype : compute;
  fc_tensor *out = fc_empty(nd, shape, direct_dtype, a->device);
  if (!out) return NULL;
  if (run_binary(op, out, a, b, compute, alpha) < 0) {
    fc_release(out);
    return NULL;
  }
  if (direct_dtype == out_dtype) return out;
  fc_tensor *half = fc_to_dtype(out, out_dtype);
  fc_release(out);
  return half;
}

/* a op= b: b must broadcast to a's shape and the result must fit a's dtype. */
static int binary_(const binary_op *op, fc_tensor *a, fc_tensor *b, double alpha) {
  char name[64];
  snprintf(name, sizeof name, "%s_", op->name);
  if (check_same_device(name, 2, (const fc_tensor *const[]){a, b}) < 0) return -1;
  int nd, compute, out_dtype;
  int64_t shape[FC_MAX_DIMS];
  if (broadcast_shapes(name, a->ndim, a->shape, b->ndim, b->shape, &nd, shape) < 0) return -1;
  if (nd != a->ndim || shape_numel(nd, shape) != a->numel)
    FAIL_INT("%s: shape %s cannot broadcast into the in-place target of shape %s", name,
             SHAPE(b), SHAPE(a));
  if (binary_dtypes(&op, a, b, &compute, &out_dtype) < 0) return -1;
  if (fc_promote_types(out_dtype, a->dtype) != a->dtype)
    FAIL_INT("%s: result type %s cannot be stored in a %s tensor", name,
             fc_dtype_name(out_dtype), DTYPE(a));
  int rc;
  if (a->dtype == compute) {
    rc = run_binary(op, a, a, b, compute, alpha);
  } else { /* a half or narrower int target: compute aside, then store */
    fc_tensor *tmp = fc_empty(a->ndim, a->shape, compute, a->device);
    rc = tmp ? run_binary(op, tmp, a, b, compute, alpha) : -1;
    if (rc == 0) rc = fc_copy_(a, tmp);
    fc_release(tmp);
  }
  if (rc == 0) bump_version(a);
  return rc;
}

#define BINARY_API(fn, OP)                                                   \
  fc_tensor *fc_##fn(fc_tensor *a, fc_tensor *b) { return binary(&OP, a, b, 0); }
#define BINARY_API_(fn, OP)                                                  \
  int fc_##fn##_(fc_tensor *a, fc_tensor *b) { return binary_(&OP, a, b, 0); }
BINARY_API(add, OP_ADD) BINARY_API(sub, OP_SUB) BINARY_API(mul, OP_MUL)
BINARY_API(div, OP_DIV) BINARY_API(pow, OP_POW)
BINARY_API(maximum, OP_MAX) BINARY_API(minimum, OP_MIN)
BINARY_API(eq, OP_EQ) BINARY_API(ne, OP_NE) BINARY_API(lt, OP_LT)
BINARY_API(le, OP_LE) BINARY_API(gt, OP_GT) BINARY_API(ge, OP_GE)
BINARY_API(logical_and, OP_AND) BINARY_API(logical_or, OP_OR)
BINARY_API_(add, OP_ADD) BINARY_API_(sub, OP_SUB) BINARY_API_(mul, OP_MUL)
BINARY_API_(div, OP_DIV) BINARY_API_(pow, OP_POW)

fc_tensor *fc_add_scaled(fc_tensor *a, fc_tensor *b, double alpha) {
  return binary(&OP_AXPY, a, b, alpha);
}
int fc_add_scaled_(fc_tensor *a, fc_tensor *b, double alpha) {
  return binary_(&OP_AXPY, a, b, alpha);
}

/* ---- unary ops -------------------------------------------------------- */

static inline float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }
static inline double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

#define FLOAT_UNARIES(T, F, SFX)                                                     \
  UNARY_KERNEL(exp_##T, T, exp##SFX(x))                                              \
  UNARY_KERNEL(log_##T, T, log##SFX(x))                                              \
  UNARY_KERNEL(log1p_##T, T, log1p##SFX(x))                                          \
  UNARY_KERNEL(sqrt_##T, T, sqrt##SFX(x))                                            \
  UNARY_KERNEL(rsqrt_##T, T, (T)1 / sqrt##SFX(x))                                    \
  UNARY_KERNEL(sin_##T, T, sin##SFX(x))                                              \
  UNARY_KERNEL(cos_##T, T, cos##SFX(x))                                              \
  UNARY_KERNEL(tanh_##T, T, tanh##SFX(x))                                            \
  UNARY_KERNEL(sigmoid_##T, T, F(x))                                                 \
  UNARY_KERNEL(gelu_##T, T, (T)0.5 * x * ((T)1 + erf##SFX(x * (T)0.70710678118654752440))) \
  UNARY_KERNEL(silu_##T, T, x * F(x))                                                \
  UNARY_KERNEL(leaky_##T, T, x > 0 ? x : x * (T)arg[0])                              \
  UNARY_KERNEL(floor_##T, T, floor##SFX(x))                                          \
  UNARY_KERNEL(ceil_##T, T, ceil##SFX(x))                                            \
  UNARY_KERNEL(round_##T, T, nearbyint##SFX(x))                                      \
  UNARY_KERNEL(neg_##T, T, -x)                                                       \
  UNARY_KERNEL(abs_##T, T, fabs##SFX(x))                                             \
  UNARY_KERNEL(relu_##T, T, x > 0 ? x : (x != x ? x : 0))                            \
  UNARY_KERNEL(sign_##T, T, x != x ? x : (T)((x > 0) - (x < 0)))                     \
  UNARY_KERNEL(clamp_##T, T, x < (T)arg[0] ? (T)arg[0] : x > (T)arg[1] ? (T)arg[1] : x)
FLOAT_UNARIES(f32, sigmoidf, f)
FLOAT_UNARIES(f64, sigmoid, )

#define INT_UNARIES(T)                                                              \
  UNARY_KERNEL(floor_##T, T, x)                                                     \
  UNARY_KERNEL(ceil_##T, T, x)                                                      \
  UNARY_KERNEL(round_##T, T, x)                                                     \
  UNARY_KERNEL(neg_##T, T, WRAP(T, -(uint64_t)x))                                   \
  UNARY_KERNEL(abs_##T, T, x < 0 ? WRAP(T, -(uint64_t)x) : x)                       \
  UNARY_KERNEL(relu_##T, T, x > 0 ? x : 0)                                          \
  UNARY_KERNEL(sign_##T, T, (T)((x > 0) - (x < 0)))                                 \
  UNARY_KERNEL(clamp_##T, T, (double)x < arg[0] ? (T)arg[0] : (double)x > arg[1] ? (T)arg[1] : x)
INT_UNARIES(i64)
INT_UNARIES(i32)
INT_UNARIES(u8)

static void not_kernel(char **p, const int64_t *s, int64_t n, void *ctx) {
  int dtype = *(const int *)ctx;
  for (int64_t i = 0; i < n; i++) AT(p[0], s[0], i, u8) = load_as_double(p[1] + i * s[1], dtype) == 0;
}

typedef struct unary_op {
  const char *name;
  bool float_only;
  iter_kernel k[NUM_CT];
} unary_op;

#define FLOAT_UNARY(op) static const unary_op U_##op = {#op, true, FLOAT_CT(op)};
#define ANY_UNARY(op) static const unary_op U_##op = {#op, false, ALL_CT(op)};
FLOAT_UNARY(exp) FLOAT_UNARY(log) FLOAT_UNARY(log1p) FLOAT_UNARY(sqrt) FLOAT_UNARY(rsqrt)
FLOAT_UNARY(sin) FLOAT_UNARY(cos) FLOAT_UNARY(tanh) FLOAT_UNARY(sigmoid) FLOAT_UNARY(gelu)
FLOAT_UNARY(silu)
ANY_UNARY(floor) ANY_UNARY(ceil) ANY_UNARY(round) ANY_UNARY(neg) ANY_UNARY(abs)
ANY_UNARY(relu) ANY_UNARY(sign) ANY_UNARY(clamp)
static const unary_op U_leaky_relu = {"leaky_relu", true, FLOAT_CT(leaky)};

static int unary_dtype(const unary_op *op, const fc_tensor *t) {
  if (op->float_only && !is_float_dtype(t->dtype)) return FC_FLOAT32;
  if (t->dtype == FC_BOOL && op != &U_abs && op != &U_relu && op != &U_clamp)
    FAIL_INT("%s: not supported for bool tensors", op->name);
  return t->dtype;
}

static int run_unary(const unary_op *op, fc_tensor *out, fc_tensor *in, const double *args) {
  iter it;
  iter_init(&it, 2, (fc_tensor *const[]){out, in});
  iter_run(&it, op->k[ct_of(in->dtype)], (void *)args);
  return 0;
}

/* Half inputs compute in float32: this converts in, runs, converts back. */
static fc_tensor *unary(const unary_op *op, fc_tensor *t, const double *args) {
  if (check_same_device(op->name, 1, (const fc_tensor *const[]){t}) < 0) return NULL;
  int out_dtype = unary_dtype(op, t);
  if (out_dtype < 0) return NULL;
  int compute = is_half_dtype(out_dtype) ? FC_FLOAT32 : out_dtype;
  fc_tensor *in = fc_to_dtype(t, compute);
  fc_tensor *out = in ? empty_dtype_like(t, compute) : NULL;
  if (out) run_unary(op, out, in, args);
  fc_release(in);
  if (out && compute != out_dtype) {
    fc_tensor *h = fc_to_dtype(out, out_dtype);
    fc_release(out);
    out = h;
  }
  return out;
}

static int unary_(const unary_op *op, fc_tensor *t, const double *args) {
  if (check_same_device(op->name, 1, (const fc_tensor *const[]){t}) < 0) return -1;
  int out_dtype = unary_dtype(op, t);
  if (out_dtype < 0) return -1;
  if (out_dtype != t->dtype)
    FAIL_INT("%s_: result type %s cannot be stored in a %s tensor", op->name,
             fc_dtype_name(out_dtype), DTYPE(t));
  if (is_half_dtype(t->dtype)) {
    fc_tensor *r = unary(op, t, args);
    int rc = r ? fc_copy_(t, r) : -1;
    fc_release(r);
    return rc;
  }
  run_unary(op, t, t, args);
  bump_version(t);
  return 0;
}

#define UNARY_API(op)                                                  \
  fc_tensor *fc_##op(fc_tensor *t) { return unary(&U_##op, t, NULL); } \
  int fc_##op##_(fc_tensor *t) { return unary_(&U_##op, t, NULL); }
UNARY_API(exp) UNARY_API(log) UNARY_API(log1p) UNARY_API(sqrt) UNARY_API(rsqrt)
UNARY_API(sin) UNARY_API(cos) UNARY_API(tanh) UNARY_API(sigmoid) UNARY_API(gelu)
UNARY_API(silu) UNARY_API(floor) UNARY_API(ceil) UNARY_API(round) UNARY_API(neg)
UNARY_API(abs) UNARY_API(relu) UNARY_API(sign)

fc_tensor *fc_leaky_relu(fc_tensor *t, double slope) {
  return unary(&U_leaky_relu, t, (double[]){slope});
}
int fc_leaky_relu_(fc_tensor *t, double slope) {
  return unary_(&U_leaky_relu, t, (double[]){slope});
}

static int check_clamp(double lo, double hi) {
  if (lo != lo || hi != hi) FAIL_INT("clamp: bounds must not be NaN");
  if (lo > hi) FAIL_INT("clamp: min %g is greater than max %g", lo, hi);
  return 0;
}
fc_tensor *fc_clamp(fc_tensor *t, double lo, double hi) {
  return check_clamp(lo, hi) < 0 ? NULL : unary(&U_clamp, t, (double[]){lo, hi});
}
int fc_clamp_(fc_tensor *t, double lo, double hi) {
  return check_clamp(lo, hi) < 0 ? -1 : unary_(&U_clamp, t, (double[]){lo, hi});
}

fc_tensor *fc_logical_not(fc_tensor *t) {
  if (check_same_device("logical_not", 1, (const fc_tensor *const[]){t}) < 0) return NULL;
  fc_tensor *out = empty_dtype_like(t, FC_BOOL);
  if (!out) return NULL;
  iter it;
  iter_init(&it, 2, (fc_tensor *const[]){out, t});
  iter_run(&it, not_kernel, &t->dtype);
  return out;
}

/* ---- ternary ops ------------------------------------------------------ */

#define WHERE_KERNEL(name, T)                                                        \
  static void name(char **p, const int64_t *s, int64_t n, void *ctx) {              \
    (void)ctx;                                                                       \
    for (int64_t i = 0; i < n; i++)                                                  \
      AT(p[0], s[0], i, T) = AT(p[1], s[1], i, u8) ? AT(p[2], s[2], i, T) : AT(p[3], s[3], i, T); \
  }
WHERE_KERNEL(where1, uint8_t)
WHERE_KERNEL(where2, uint16_t)
WHERE_KERNEL(where4, uint32_t)
WHERE_KERNEL(where8, uint64_t)

static int broadcast3(const char *op, fc_tensor *a, fc_tensor *b, fc_tensor *c, int *nd,
                      int64_t *shape) {
  int n1;
  int64_t s1[FC_MAX_DIMS];
  if (broadcast_shapes(op, a->ndim, a->shape, b->ndim, b->shape, &n1, s1) < 0) return -1;
  return broadcast_shapes(op, n1, s1, c->ndim, c->shape, nd, shape);
}

fc_tensor *fc_where(fc_tensor *cond, fc_tensor *a, fc_tensor *b) {
  if (check_same_device("where", 3, (const fc_tensor *const[]){cond, a, b}) < 0) return NULL;
  if (cond->dtype != FC_BOOL && cond->dtype != FC_UINT8)
    FAIL("where: condition must be a bool tensor, got %s", DTYPE(cond));
  int nd, dtype = result_type(a, b);
  int64_t shape[FC_MAX_DIMS];
  if (broadcast3("where", cond, a, b, &nd, shape) < 0) return NULL;
  fc_tensor *ca = fc_to_dtype(a, dtype), *cb = ca ? fc_to_dtype(b, dtype) : NULL;
  fc_tensor *out = cb ? fc_empty(nd, shape, dtype, a->device) : NULL;
  if (out) {
    static const iter_kernel by_size[9] = {0, where1, where2, 0, where4, 0, 0, 0, where8};
    iter it;
    iter_init(&it, 4, (fc_tensor *const[]){out, cond, ca, cb});
    iter_run(&it, by_size[fc_dtype_size(dtype)], NULL);
  }
  fc_release(ca);
  fc_release(cb);
  return out;
}

/* PyTorch's two-sided form keeps lerp exact at both ends. */
#define LERP_KERNEL(name, T)                                                         \
  static void name(char **p, const int64_t *s, int64_t n, void *ctx) {              \
    (void)ctx;                                                                       \
    for (int64_t i = 0; i < n; i++) {                                                \
      T a = AT(p[1], s[1], i, T), b = AT(p[2], s[2], i, T), w = AT(p[3], s[3], i, T); \
      AT(p[0], s[0], i, T) = w < (T)0.5 ? a + w * (b - a) : b - (b - a) * ((T)1 - w); \
    }                                                                                \
  }
LERP_KERNEL(lerp_f32, f32)
LERP_KERNEL(lerp_f64, f64)

static int lerp_into(fc_tensor *out, fc_tensor *a, fc_tensor *b, fc_tensor *w, int compute) {
  fc_tensor *ca = fc_to_dtype(a, compute), *cb = ca ? fc_to_dtype(b, compute) : NULL;
  fc_tensor *cw = cb ? fc_to_dtype(w, compute) : NULL;
  if (cw) {
    iter it;
    iter_init(&it, 4, (fc_tensor *const[]){out, ca, cb, cw});
    iter_run(&it, compute == FC_FLOAT64 ? lerp_f64 : lerp_f32, NULL);
  }
  fc_release(ca);
  fc_release(cb);
  fc_release(cw);
  return cw ? 0 : -1;
}

static int lerp_dtype(const char *op, fc_tensor *a, fc_tensor *b, fc_tensor *w) {
  if (check_same_device(op, 3, (const fc_tensor *const[]){a, b, w}) < 0) return -1;
  if (!is_float_dtype(a->dtype) || a->dtype != b->dtype)
    FAIL_INT("%s: start and end must be float tensors of one dtype, got %s and %s", op,
             DTYPE(a), DTYPE(b));
  return a->dtype == FC_FLOAT64 ? FC_FLOAT64 : FC_FLOAT32;
}

fc_tensor *fc_lerp(fc_tensor *a, fc_tensor *b, fc_tensor *w) {
  int compute = lerp_dtype("lerp", a, b, w), nd;
  int64_t shape[FC_MAX_DIMS];
  if (compute < 0 || broadcast3("lerp", a, b, w, &nd, shape) < 0) return NULL;
  fc_tensor *out = fc_empty(nd, shape, compute, a->device);
  if (out && lerp_into(out, a, b, w, compute) < 0) {
    fc_release(out);
    return NULL;
  }
  if (out && compute != a->dtype) {
    fc_tensor *h = fc_to_dtype(out, a->dtype);
    fc_release(out);
    out = h;
  }
  return out;
}

int fc_lerp_(fc_tensor *a, fc_tensor *b, fc_tensor *w) {
  fc_tensor *r = fc_lerp(a, b, w);
  if (!r) return -1;
  int rc = 0;
  if (r->ndim != a->ndim || r->numel != a->numel) {
    fc_set_error("lerp_: result of shape %s does not fit the in-place target of shape %s",
                 SHAPE(r), SHAPE(a));
    rc = -1;
  }
  if (rc == 0) rc = fc_copy_(a, r);
  fc_release(r);
  return rc;
}
