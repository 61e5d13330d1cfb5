/* autograd.c — grad mode, graph recording and the backward engine.
 *
 * Ops call record() after computing their output; the node keeps edges to
 * the inputs' nodes (or leaves), their shapes, and whatever its formula
 * saved. fc_backward walks the graph from the root in topological order,
 * summing gradients that meet at a node before running its formula. */
#include "internal.h"
#include <stdlib.h>

static _Thread_local bool grad_enabled = true;

void fc_set_grad_enabled(int enabled) { grad_enabled = enabled != 0; }
int fc_is_grad_enabled(void) { return grad_enabled; }

int grad_mode_push(bool enabled) {
  int previous = grad_enabled;
  grad_enabled = enabled;
  return previous;
}
void grad_mode_pop(int previous) { grad_enabled = previous != 0; }

bool grad_needed(int n, fc_tensor *const *ts) {
  if (!grad_enabled) return false;
  for (int i = 0; i < n; i++)
    if (ts[i] && ts[i]->requires_grad) return true;
  return false;
}

int check_inplace(const char *op, fc_tensor *t) {
  if (grad_enabled && t->requires_grad)
    FAIL_INT("%s: in-place op on a tensor that requires grad; use the out-of-place form, "
             "or run it under no_grad", op);
  return 0;
}

/* ---- nodes -------------------------------------------------------------- */

static void node_retain(fc_node *n) {
  if (n) __atomic_add_fetch(&n->refcount, 1, __ATOMIC_RELAXED);
}

static void release_saved(fc_node *n) {
  for (int i = 0; i < n->nsaved; i++) {
    fc_release(n->saved[i]);
    n->saved[i] = NULL;
  }
}

/* Releasing a long chain recursively could overflow the C stack, so nodes
 * whose count drops to zero go on an explicit work list. */
void node_release(fc_node *n) {
  fc_node *stack_small[64], **stack = stack_small;
  int top = 0, cap = 64;
  if (n) stack[top++] = n;
  while (top > 0) {
    fc_node *x = stack[--top];
    if (__atomic_sub_fetch(&x->refcount, 1, __ATOMIC_ACQ_REL) > 0) continue;
    release_saved(x);
    fc_release(x->grad);
    for (int i = 0; i < x->ninputs; i++) {
      fc_release(x->leaf[i]);
      if (!x->next[i]) continue;
      if (top == cap) {
        fc_node **bigger = malloc(sizeof *bigger * (size_t)cap * 2);
        if (!bigger) break; /* leak rather than crash on exhaustion */
        memcpy(bigger, stack, sizeof *stack * (size_t)top);
        if (stack != stack_small) free(stack);
        stack = bigger;
        cap *= 2;
      }
      stack[top++] = x->next[i];
    }
    free(x);
  }
  if (stack != stack_small) free(stack);
}

fc_node *record(const char *op, backward_fn fn, fc_tensor *out, int n, fc_tensor *const *inputs) {
  fc_node *node = calloc(1, sizeof *node);
  if (!node) FAIL("%s: out of memory recording autograd", op);
  node->op = op;
  node->refcount = 1;
  node->backward = fn;
  node->ninputs = n;
  for (int i = 0; i < n; i++) {
    const fc_tensor *in = inputs[i];
    node->in_ndim[i] = in->ndim;
    node->in_dtype[i] = in->dtype;
    memcpy(node->in_shape[i], in->shape, sizeof(int64_t) * (size_t)in->ndim);
    if (in->grad_fn) {
      node->next[i] = in->grad_fn;
      node_retain(in->grad_fn);
    } else if (in->requires_grad) {
      node->leaf[i] = fc_retain((fc_tensor *)in);
    }
  }
  out->grad_fn = node;
  out->requires_grad = 1;
  return node;
}

/* Saved tensors are detached views: an op that saves its own output must
 * not make output -> node -> output a reference cycle. */
void node_save(fc_node *n, fc_tensor *t) {
  fc_tensor *d = fc_detach(t);
  n->saved[n->nsaved] = d;
  n->saved_version[n->nsaved++] = d ? d->storage->version : 0;
}

/* ---- tensor-level API --------------------------------------------------- */

int fc_set_requires_grad(fc_tensor *t, int requires_grad) {
  if (check_defined("requires_grad", t, "tensor") < 0) return -1;
  if (t->grad_fn)
    FAIL_INT("requires_grad: only leaf tensors can change it; this one comes from %s "
             "(use detach())", ((fc_node *)t->grad_fn)->op);
  if (requires_grad && !is_float_dtype(t->dtype))
    FAIL_INT("requires_grad: only floating point tensors can require grad, got %s", DTYPE(t));
  t->requires_grad = requires_grad != 0;
  return 0;
}

int fc_is_leaf(const fc_tensor *t) { return t->grad_fn == NULL; }

const char *fc_grad_fn_name(const fc_tensor *t) {
  return t->grad_fn ? ((fc_node *)t->grad_fn)->op : NULL;
}

fc_tensor *fc_get_grad(const fc_tensor *t) { return t ? fc_retain(t->grad) : NULL; }

int fc_set_grad(fc_tensor *t, fc_tensor *grad) {
  if (check_defined("set_grad", t, "tensor") < 0) return -1;
  if (grad && (grad->numel != t->numel || grad->ndim != t->ndim))
    FAIL_INT("set_grad: gradient of shape %s does not match tensor of shape %s", SHAPE(grad),
             SHAPE(t));
  fc_retain(grad);
  fc_release(t->grad);
  t->grad = grad;
  return 0;
}

fc_tensor *fc_detach(fc_tensor *t) {
  if (check_defined("detach", t, "tensor") < 0) return NULL;
  return tensor_view_of(t, t->ndim, t->shape, t->stride, t->offset);
}

/* ---- broadcasting undone ------------------------------------------------ */

/* Sums grad over the dims it broadcast along, then expands it over dims a
 * formula left at size 1, so it ends with exactly `shape`. */
fc_tensor *sum_to_shape(fc_tensor *grad, int ndim, const int64_t *shape) {
  int lead = grad->ndim - ndim, dims[FC_MAX_DIMS], nd = 0;
  for (int d = 0; d < grad->ndim; d++) {
    int sd = d - lead;
    if (sd < 0 || (shape[sd] == 1 && grad->shape[d] != 1)) dims[nd++] = d;
  }
  fc_tensor *s = nd ? fc_sum(grad, nd, dims, 1) : fc_retain(grad);
  if (!s) return NULL;
  int64_t kept[FC_MAX_DIMS];
  bool same = true;
  for (int d = 0; d < ndim; d++) {
    kept[d] = d + lead >= 0 ? s->shape[d + lead] : 1;
    same &= kept[d] == shape[d];
  }
  if (same && s->ndim == ndim) return s;
  fc_tensor *r = fc_reshape(s, ndim, kept);
  fc_release(s);
  if (!r || same) return r;
  fc_tensor *e = fc_expand(r, ndim, shape);
  fc_release(r);
  return e;
}

/* ---- the engine --------------------------------------------------------- */

typedef struct node_list { fc_node **items; int n, cap; } node_list;

static int list_push(node_list *l, fc_node *n) {
  if (l->n == l->cap) {
    int cap = l->cap ? l->cap * 2 : 64;
    fc_node **items = realloc(l->items, sizeof *items * (size_t)cap);
    if (!items) FAIL_INT("backward: out of memory");
    l->items = items;
    l->cap = cap;
  }
  l->items[l->n++] = n;
  return 0;
}

/* Every node reachable from root, each once; `pending` counts the edges
 * into it so a node runs only after all its consumers have. */
static int collect(fc_node *root, node_list *all) {
  static uint64_t pass;
  uint64_t mark = __atomic_add_fetch(&pass, 1, __ATOMIC_RELAXED);
  node_list stack = {0};
  root->pending = 0;
  root->mark = mark;
  int rc = list_push(&stack, root);
  if (rc == 0) rc = list_push(all, root);
  while (rc == 0 && stack.n > 0) {
    fc_node *n = stack.items[--stack.n];
    for (int i = 0; i < n->ninputs && rc == 0; i++) {
      fc_node *m = n->next[i];
      if (!m) continue;
      if (m->mark != mark) {
        m->mark = mark;
        m->pending = 0;
        rc = list_push(all, m);
        if (rc == 0) rc = list_push(&stack, m);
      }
      m->pending++;
    }
  }
  free(stack.items);
  return rc;
}

/* *slot += g, creating it on first use; g is converted to dtype/shape. */
/* A gradient can become the accumulation slot itself, with no copy, only
 * when nothing else sees its memory: the header's references are exactly the
 * ones held here and its storage has no other header. Otherwise a later
 * in-place add into the slot would change another tensor too. */
static bool exclusively_held(const fc_tensor *t, int64_t refs_held) {
  return fc_is_contiguous(t) && t->refcount == refs_held && t->storage->refcount == 1;
}

/* Adds g (the caller holds one reference to it) into *slot. */
static int accumulate(fc_tensor **slot, fc_tensor *g, int dtype, int ndim, const int64_t *shape) {
  fc_tensor *shaped = sum_to_shape(g, ndim, shape);
  fc_tensor *typed = shaped ? fc_to_dtype(shaped, dtype) : NULL;
  fc_release(shaped);
  if (!typed) return -1;
  int rc = 0;
  if (!*slot) {
    *slot = exclusively_held(typed, typed == g ? 2 : 1) ? fc_retain(typed) : fc_clone(typed);
    rc = *slot ? 0 : -1;
  } else {
    rc = fc_add_(*slot, typed);
  }
  fc_release(typed);
  return rc;
}

static int check_saved(const fc_node *n) {
  for (int i = 0; i < n->nsaved; i++)
    if (n->saved[i] && n->saved[i]->storage->version != n->saved_version[i])
      FAIL_INT("backward: a tensor saved by %s was modified in place after it was used "
               "(version %lld, saved at %lld)", n->op,
               (long long)n->saved[i]->storage->version, (long long)n->saved_version[i]);
  return 0;
}

static int run_node(fc_node *n, bool retain_graph) {
  if (n->released)
    FAIL_INT("backward: trying to go through the graph of %s a second time; "
             "pass retain_graph the first time", n->op);
  if (check_saved(n) < 0) return -1;
  fc_tensor *grads[NODE_MAX_INPUTS] = {0};
  int rc = n->backward(n, n->grad, grads);
  fc_release(n->grad); /* before accumulating: a grad passed through can then move, not copy */
  n->grad = NULL;
  for (int i = 0; i < n->ninputs; i++) {
    if (rc == 0 && grads[i]) {
      if (n->next[i])
        rc = accumulate(&n->next[i]->grad, grads[i], n->in_dtype[i], n->in_ndim[i], n->in_shape[i]);
      else if (n->leaf[i])
        rc = accumulate(&n->leaf[i]->grad, grads[i], n->in_dtype[i], n->in_ndim[i], n->in_shape[i]);
    }
    fc_release(grads[i]);
  }
  if (!retain_graph) {
    release_saved(n);
    n->released = true;
  }
  return rc;
}

static fc_tensor *root_grad(fc_tensor *root, fc_tensor *grad) {
  if (!grad) {
    if (root->numel != 1)
      FAIL("backward: grad can be implicit only for a single-element output, got shape %s; "
           "pass a gradient", SHAPE(root));
    return fc_ones(root->ndim, root->shape, root->dtype, root->device);
  }
  if (grad->numel != root->numel)
    FAIL("backward: gradient of shape %s does not match output of shape %s", SHAPE(grad), SHAPE(root));
  return fc_retain(grad);
}

int fc_backward(fc_tensor *root, fc_tensor *grad, int retain_graph) {
  if (check_defined("backward", root, "tensor") < 0) return -1;
  if (!root->requires_grad)
    FAIL_INT("backward: tensor does not require grad and has no grad_fn");
  int previous = grad_mode_push(false);
  fc_tensor *g = root_grad(root, grad);
  int rc = g ? 0 : -1;
  if (rc == 0 && !root->grad_fn) { /* a leaf: its own gradient */
    rc = accumulate(&root->grad, g, root->dtype, root->ndim, root->shape);
  } else if (rc == 0) {
    fc_node *top = root->grad_fn;
    node_list all = {0}, ready = {0};
    rc = collect(top, &all);
    if (rc == 0) rc = accumulate(&top->grad, g, root->dtype, root->ndim, root->shape);
    if (rc == 0) rc = list_push(&ready, top);
    while (rc == 0 && ready.n > 0) {
      fc_node *n = ready.items[--ready.n];
      rc = run_node(n, retain_graph);
      for (int i = 0; i < n->ninputs && rc == 0; i++)
        if (n->next[i] && --n->next[i]->pending == 0) rc = list_push(&ready, n->next[i]);
    }
    for (int i = 0; i < all.n; i++) { /* after an error, drop partial sums */
      fc_release(all.items[i]->grad);
      all.items[i]->grad = NULL;
    }
    free(all.items);
    free(ready.items);
  }
  fc_release(g);
  grad_mode_pop(previous);
  return rc;
}
