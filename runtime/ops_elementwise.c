/* ops_elementwise.c — unary, binary and ternary elementwise ops on the CPU.
 *
 * Kernels exist for five compute types (float32, float64, int64, int32,
 * uint8); float16/bfloat16 compute in float32 and bool maps onto uint8 or
 * the logical ops. Each kernel has a contiguous loop the compiler vectorises,
 * a scalar-operand loop and a general strided loop. */
#include "backend.h"

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
  backward_fn backward; /* NULL: not differentiable */
  int saves;            /* which of a, b, out the backward reads */
} binary_op;

enum { SAVE_A = 1, SAVE_B = 2, SAVE_OUT = 4 };

static int add_backward(fc_node *n, fc_tensor *g, fc_tensor **gi);
static int sub_backward(fc_node *n, fc_tensor *g, fc_tensor **gi);
static int mul_backward(fc_node *n, fc_tensor *g, fc_tensor **gi);
static int div_backward(fc_node *n, fc_tensor *g, fc_tensor **gi);
static int pow_backward(fc_node *n, fc_tensor *g, fc_tensor **gi);
static int axpy_backward(fc_node *n, fc_tensor *g, fc_tensor **gi);
static int max_backward(fc_node *n, fc_tensor *g, fc_tensor **gi);
static int min_backward(fc_node *n, fc_tensor *g, fc_tensor **gi);

static const binary_op OP_ADD = {"add", ARITH, ALL_CT(add), add_backward, 0};
static const binary_op OP_SUB = {"sub", ARITH, ALL_CT(sub), sub_backward, 0};
static const binary_op OP_MUL = {"mul", ARITH, ALL_CT(mul), mul_backward, SAVE_A | SAVE_B};
static const binary_op OP_DIV = {"div", FLOAT_ONLY, FLOAT_CT(div), div_backward, SAVE_B | SAVE_OUT};
static const binary_op OP_POW = {"pow", ARITH, ALL_CT(pow), pow_backward, SAVE_A | SAVE_B | SAVE_OUT};
static const binary_op OP_AXPY = {"add", ARITH, ALL_CT(axpy), axpy_backward, 0};
static const binary_op OP_MAX = {"maximum", ARITH, ALL_CT(max), max_backward, SAVE_A | SAVE_B};
static const binary_op OP_MIN = {"minimum", ARITH, ALL_CT(min), min_backward, SAVE_A | SAVE_B};
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
    rc = 0;
    if (out->device.type == FC_CUDA)
      rc = backend_iter_run(op == &OP_AXPY ? BK_AXPY : backend_op_code(op->name), &it,
                            (fc_tensor *const[]){out, ca, cb}, &alpha);
    else
      iter_run(&it, op->k[ct_of(compute_dtype)], &alpha);
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

/* Saved tensors sit in fixed slots: 0 = a, 1 = b, 2 = out (NULL if unused). */
static fc_tensor *record_binary(const binary_op *op, fc_tensor *out, fc_tensor *a, fc_tensor *b,
                                double alpha) {
  fc_tensor *ab[2] = {a, b};
  if (!op->backward || !is_float_dtype(out->dtype) || !grad_needed(2, ab)) return out;
  fc_node *n = record(op->name, op->backward, out, 2, ab);
  if (!n) {
    fc_release(out);
    return NULL;
  }
  fc_tensor *slots[3] = {a, b, out};
  for (int i = 0; i < 3; i++)
    if (op->saves & (1 << i)) {
      n->nsaved = i;
      node_save(n, slots[i]);
    }
  n->nsaved = 3;
  n->arg[0] = alpha;
  return out;
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
  if (direct_dtype != out_dtype) {
    fc_tensor *half = fc_to_dtype(out, out_dtype);
    fc_release(out);
    out = half;
  }
  return out ? record_binary(op, out, a, b, alpha) : NULL;
}

/* a op= b: b must broadcast to a's shape and the result must fit a's dtype. */
static int binary_(const binary_op *op, fc_tensor *a, fc_tensor *b, double alpha) {
  char name[64];
  snprintf(name, sizeof name, "%s_", op->name);
  if (check_same_device(name, 2, (const fc_tensor *const[]){a, b}) < 0) return -1;
  if (check_inplace(name, a) < 0) return -1;
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

/* Gradient kernels: x is the saved input (or output), y the incoming grad. */
static inline float silu_grad_f(float x) { float s = sigmoidf(x); return s + x * s * (1 - s); }
static inline double silu_grad_d(double x) { double s = sigmoid(x); return s + x * s * (1 - s); }
#define GRAD_KERNELS(T, SFX, SILU)                                                   \
  BINARY_KERNEL(gexp_##T, T, T, y * x)                                               \
  BINARY_KERNEL(glog_##T, T, T, y / x)                                               \
  BINARY_KERNEL(glog1p_##T, T, T, y / (x + 1))                                       \
  BINARY_KERNEL(gsqrt_##T, T, T, y / (2 * x))                                        \
  BINARY_KERNEL(grsqrt_##T, T, T, (T)-0.5 * y * x * x * x)                           \
  BINARY_KERNEL(gsin_##T, T, T, y * cos##SFX(x))                                     \
  BINARY_KERNEL(gcos_##T, T, T, -y * sin##SFX(x))                                    \
  BINARY_KERNEL(gtanh_##T, T, T, y * (1 - x * x))                                    \
  BINARY_KERNEL(gsigmoid_##T, T, T, y * x * (1 - x))                                 \
  BINARY_KERNEL(ggelu_##T, T, T, y * ((T)0.5 * (1 + erf##SFX(x * (T)0.70710678118654752440)) + \
                                      x * (T)0.39894228040143267794 * exp##SFX((T)-0.5 * x * x))) \
  BINARY_KERNEL(gsilu_##T, T, T, y * SILU(x))                                        \
  BINARY_KERNEL(grelu_##T, T, T, x > 0 ? y : 0)                                      \
  BINARY_KERNEL(gleaky_##T, T, T, x > 0 ? y : y * (T)alpha)                          \
  BINARY_KERNEL(gabs_##T, T, T, x > 0 ? y : x < 0 ? -y : 0)
GRAD_KERNELS(f32, f, silu_grad_f)
GRAD_KERNELS(f64, , silu_grad_d)

#define GRAD_OP(op) static const binary_op G_##op = {#op "_backward", FLOAT_ONLY, FLOAT_CT(g##op), NULL, 0};
GRAD_OP(exp) GRAD_OP(log) GRAD_OP(log1p) GRAD_OP(sqrt) GRAD_OP(rsqrt) GRAD_OP(sin) GRAD_OP(cos)
GRAD_OP(tanh) GRAD_OP(sigmoid) GRAD_OP(gelu) GRAD_OP(silu) GRAD_OP(relu) GRAD_OP(leaky)
GRAD_OP(abs)

typedef struct unary_op {
  const char *name;
  bool float_only;
  iter_kernel k[NUM_CT];
  const binary_op *grad; /* NULL: zero gradient (floor, sign, ...) */
  bool grad_reads_out;   /* the grad kernel takes the output, not the input */
} unary_op;

#define FLOAT_UNARY(op, G, OUT) static const unary_op U_##op = {#op, true, FLOAT_CT(op), G, OUT};
#define ANY_UNARY(op, G, OUT) static const unary_op U_##op = {#op, false, ALL_CT(op), G, OUT};
FLOAT_UNARY(exp, &G_exp, true) FLOAT_UNARY(log, &G_log, false) FLOAT_UNARY(log1p, &G_log1p, false)
FLOAT_UNARY(sqrt, &G_sqrt, true) FLOAT_UNARY(rsqrt, &G_rsqrt, true) FLOAT_UNARY(sin, &G_sin, false)
FLOAT_UNARY(cos, &G_cos, false) FLOAT_UNARY(tanh, &G_tanh, true) FLOAT_UNARY(sigmoid, &G_sigmoid, true)
FLOAT_UNARY(gelu, &G_gelu, false) FLOAT_UNARY(silu, &G_silu, false)
ANY_UNARY(floor, NULL, false) ANY_UNARY(ceil, NULL, false) ANY_UNARY(round, NULL, false)
ANY_UNARY(neg, NULL, false) ANY_UNARY(abs, &G_abs, false) ANY_UNARY(relu, &G_relu, true)
ANY_UNARY(sign, NULL, false) ANY_UNARY(clamp, NULL, false)
static const unary_op U_leaky_relu = {"leaky_relu", true, FLOAT_CT(leaky), &G_leaky, false};

static int unary_backward(fc_node *n, fc_tensor *g, fc_tensor **gi);
static int neg_backward(fc_node *n, fc_tensor *g, fc_tensor **gi);
static int clamp_backward(fc_node *n, fc_tensor *g, fc_tensor **gi);

/* The node keeps the op (for its grad kernel) in iarg[0]. */
static fc_tensor *record_unary(const unary_op *op, fc_tensor *out, fc_tensor *in, const double *args) {
  if (!is_float_dtype(out->dtype) || !grad_needed(1, &in)) return out;
  backward_fn fn = op == &U_neg ? neg_backward : op == &U_clamp ? clamp_backward : unary_backward;
  fc_node *n = record(op->name, fn, out, 1, &in);
  if (!n) {
    fc_release(out);
    return NULL;
  }
  n->iarg[0] = (int64_t)(intptr_t)op;
  if (op->grad || op == &U_clamp) node_save(n, op->grad_reads_out ? out : in);
  if (args) n->arg[0] = args[0], n->arg[1] = op == &U_clamp ? args[1] : 0;
  return out;
}

static int unary_dtype(const unary_op *op, const fc_tensor *t) {
  if (op->float_only && !is_float_dtype(t->dtype)) return FC_FLOAT32;
  if (t->dtype == FC_BOOL && op != &U_abs && op != &U_relu && op != &U_clamp)
    FAIL_INT("%s: not supported for bool tensors", op->name);
  return t->dtype;
}

static int run_unary(const unary_op *op, fc_tensor *out, fc_tensor *in, const double *args) {
  iter it;
  iter_init(&it, 2, (fc_tensor *const[]){out, in});
  if (out->device.type == FC_CUDA)
    return backend_iter_run(backend_op_code(op->name), &it, (fc_tensor *const[]){out, in}, args);
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
  if (out && run_unary(op, out, in, args) < 0) {
    fc_release(out);
    out = NULL;
  }
  fc_release(in);
  if (out && compute != out_dtype) {
    fc_tensor *h = fc_to_dtype(out, out_dtype);
    fc_release(out);
    out = h;
  }
  return out ? record_unary(op, out, t, args) : NULL;
}

static int unary_(const unary_op *op, fc_tensor *t, const double *args) {
  if (check_same_device(op->name, 1, (const fc_tensor *const[]){t}) < 0) return -1;
  if (check_inplace(op->name, t) < 0) return -1;
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
  if (run_unary(op, t, t, args) < 0) return -1;
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
  if (out->device.type == FC_CUDA) {
    if (backend_iter_run(BK_NOT, &it, (fc_tensor *const[]){out, t}, NULL) < 0) {
      fc_release(out);
      return NULL;
    }
    return out;
  }
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

static int where_backward(fc_node *n, fc_tensor *g, fc_tensor **gi);

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
    if (out->device.type != FC_CUDA)
      iter_run(&it, by_size[fc_dtype_size(dtype)], NULL);
    else if (backend_iter_run(BK_WHERE, &it, (fc_tensor *const[]){out, cond, ca, cb}, NULL) < 0)
      fc_release(out), out = NULL;
  }
  fc_release(ca);
  fc_release(cb);
  if (out && is_float_dtype(dtype) && grad_needed(2, (fc_tensor *const[]){a, b})) {
    fc_node *n = record("where", where_backward, out, 2, (fc_tensor *const[]){a, b});
    if (!n) {
      fc_release(out);
      return NULL;
    }
    node_save(n, cond);
  }
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

static int lerp_backward(fc_node *n, fc_tensor *g, fc_tensor **gi);

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
  fc_tensor *abw[3] = {a, b, w};
  if (out && grad_needed(3, abw)) {
    fc_node *n = record("lerp", lerp_backward, out, 3, abw);
    if (!n) {
      fc_release(out);
      return NULL;
    }
    node_save(n, a);
    node_save(n, b);
    node_save(n, w);
  }
  return out;
}

int fc_lerp_(fc_tensor *a, fc_tensor *b, fc_tensor *w) {
  if (check_defined("lerp_", a, "tensor") < 0 || check_inplace("lerp_", a) < 0) return -1;
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

/* ---- gradients --------------------------------------------------------
 * Formulas run with grad mode off and may return any shape that broadcasts
 * to the input's: the engine sums broadcast dims away. */

static bool needs(const fc_node *n, int i) { return n->next[i] || n->leaf[i]; }

static fc_tensor *scaled(fc_tensor *t, double s) {
  fc_tensor *c = fc_scalar(s, t->dtype, t->device);
  fc_tensor *r = c ? fc_mul(t, c) : NULL;
  fc_release(c);
  return r;
}

static int add_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  if (needs(n, 0)) gi[0] = fc_retain(g);
  if (needs(n, 1)) gi[1] = fc_retain(g);
  return 0;
}

static int axpy_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  if (needs(n, 0)) gi[0] = fc_retain(g);
  if (needs(n, 1) && !(gi[1] = scaled(g, n->arg[0]))) return -1;
  return 0;
}

static int sub_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  if (needs(n, 0)) gi[0] = fc_retain(g);
  if (needs(n, 1) && !(gi[1] = fc_neg(g))) return -1;
  return 0;
}

static int mul_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  if (needs(n, 0) && !(gi[0] = fc_mul(g, n->saved[1]))) return -1;
  if (needs(n, 1) && !(gi[1] = fc_mul(g, n->saved[0]))) return -1;
  return 0;
}

/* d(a/b)/da = 1/b; d(a/b)/db = -(a/b)/b */
static int div_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  fc_tensor *g_over_b = fc_div(g, n->saved[1]);
  if (!g_over_b) return -1;
  if (needs(n, 1)) {
    fc_tensor *t = fc_mul(g_over_b, n->saved[2]);
    gi[1] = t ? fc_neg(t) : NULL;
    fc_release(t);
  }
  if (needs(n, 0)) gi[0] = fc_retain(g_over_b);
  fc_release(g_over_b);
  return needs(n, 1) && !gi[1] ? -1 : 0;
}

/* d(a^b)/da = b a^(b-1); d(a^b)/db = a^b log a */
static int pow_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  fc_tensor *a = n->saved[0], *b = n->saved[1], *out = n->saved[2];
  if (needs(n, 0)) {
    fc_tensor *one = fc_scalar(1, b->dtype, b->device);
    fc_tensor *bm1 = one ? fc_sub(b, one) : NULL, *p = bm1 ? fc_pow(a, bm1) : NULL;
    fc_tensor *bp = p ? fc_mul(b, p) : NULL;
    gi[0] = bp ? fc_mul(g, bp) : NULL;
    fc_release(one), fc_release(bm1), fc_release(p), fc_release(bp);
    if (!gi[0]) return -1;
  }
  if (needs(n, 1)) {
    fc_tensor *la = fc_log(a), *ol = la ? fc_mul(out, la) : NULL;
    gi[1] = ol ? fc_mul(g, ol) : NULL;
    fc_release(la), fc_release(ol);
    if (!gi[1]) return -1;
  }
  return 0;
}

/* The winner takes the gradient; a tie splits it, as in PyTorch. */
static fc_tensor *extremum_grad(fc_tensor *g, fc_tensor *self, fc_tensor *other, bool max) {
  fc_tensor *win = max ? fc_gt(self, other) : fc_lt(self, other), *tie = fc_eq(self, other);
  fc_tensor *zero = fc_scalar(0, g->dtype, g->device), *half = scaled(g, 0.5);
  fc_tensor *lose = win && zero ? fc_where(win, g, zero) : NULL;
  fc_tensor *r = lose && tie && half ? fc_where(tie, half, lose) : NULL;
  fc_release(win), fc_release(tie), fc_release(zero), fc_release(half), fc_release(lose);
  return r;
}

static int extremum_backward(fc_node *n, fc_tensor *g, fc_tensor **gi, bool max) {
  if (needs(n, 0) && !(gi[0] = extremum_grad(g, n->saved[0], n->saved[1], max))) return -1;
  if (needs(n, 1) && !(gi[1] = extremum_grad(g, n->saved[1], n->saved[0], max))) return -1;
  return 0;
}
static int max_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) { return extremum_backward(n, g, gi, true); }
static int min_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) { return extremum_backward(n, g, gi, false); }

static int unary_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  const unary_op *op = (const unary_op *)(intptr_t)n->iarg[0];
  gi[0] = op->grad ? binary(op->grad, n->saved[0], g, n->arg[0]) : fc_zeros_like(g);
  return gi[0] ? 0 : -1;
}

static int neg_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  gi[0] = fc_neg(g);
  return gi[0] ? 0 : -1;
}

/* The gradient passes where the input was inside [min, max]. */
static int clamp_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  fc_tensor *x = n->saved[0];
  fc_tensor *lo = fc_scalar(n->arg[0], x->dtype, x->device), *hi = fc_scalar(n->arg[1], x->dtype, x->device);
  fc_tensor *ge = lo ? fc_ge(x, lo) : NULL, *le = hi ? fc_le(x, hi) : NULL;
  fc_tensor *in = ge && le ? fc_logical_and(ge, le) : NULL;
  fc_tensor *zero = fc_scalar(0, g->dtype, g->device);
  gi[0] = in && zero ? fc_where(in, g, zero) : NULL;
  fc_release(lo), fc_release(hi), fc_release(ge), fc_release(le), fc_release(in), fc_release(zero);
  return gi[0] ? 0 : -1;
}

static int where_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  fc_tensor *zero = fc_scalar(0, g->dtype, g->device);
  if (!zero) return -1;
  if (needs(n, 0)) gi[0] = fc_where(n->saved[0], g, zero);
  if (needs(n, 1)) gi[1] = fc_where(n->saved[0], zero, g);
  fc_release(zero);
  return (needs(n, 0) && !gi[0]) || (needs(n, 1) && !gi[1]) ? -1 : 0;
}

/* lerp = a + w (b - a): da = g (1 - w), db = g w, dw = g (b - a) */
static int lerp_backward(fc_node *n, fc_tensor *g, fc_tensor **gi) {
  fc_tensor *a = n->saved[0], *b = n->saved[1], *w = n->saved[2];
  fc_tensor *gw = fc_mul(g, w);
  if (!gw) return -1;
  if (needs(n, 0)) gi[0] = fc_sub(g, gw);
  if (needs(n, 1)) gi[1] = fc_retain(gw);
  if (needs(n, 2)) {
    fc_tensor *d = fc_sub(b, a);
    gi[2] = d ? fc_mul(g, d) : NULL;
    fc_release(d);
  }
  fc_release(gw);
  for (int i = 0; i < 3; i++)
    if (needs(n, i) && !gi[i]) return -1;
  return 0;
}
