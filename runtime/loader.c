/* loader.c — worker threads that turn item indices into finished batches.
 *
 * Work is handed out a batch at a time: a worker claims the next batch
 * number, builds the whole batch (read, decode, steps, collate) into a fresh
 * uint8 [B,C,H,W] tensor and parks it in slot (batch % prefetch). Workers may
 * run at most `prefetch` batches ahead of the consumer, so the queue is
 * bounded and a slot is always free when its batch is claimed. The consumer
 * takes batches strictly in order, so the output is the same whatever the
 * number of workers: order comes from the per-epoch shuffle and every
 * item's randomness from its own (seed, epoch, item) stream.
 *
 * Restarting an epoch or freeing the loader bumps `generation`: workers drop
 * what they were building for the old one (they check between items), and
 * the consumer waits for them to go idle before it touches the slots. Errors
 * travel inside the slot as text and become fc_last_error on the consumer's
 * thread; nothing here prints, exits or calls back into the caller. */
#include "internal.h"
#include <pthread.h>
#include <stdlib.h>

typedef struct slot {
  int64_t batch; /* -1: empty */
  bool ready;
  fc_tensor *x, *y, *idx;
  char *error;    /* NULL or the message of a failed batch */
  char *warnings; /* NULL or skipped items, one per line */
} slot;

typedef struct worker {
  fc_loader *l;
  pthread_t thread;
  image_ctx ctx;
} worker;

struct fc_loader {
  /* what to load (immutable after fc_loader_new) */
  int64_t n;
  char **paths;
  int64_t *labels;
  fc_tfm *tfms;
  fc_loader_opts opts;
  int out_h, out_w; /* 0: taken from the first item of each batch */
  int64_t nbatches;
  /* the epoch in progress */
  int64_t epoch;
  int64_t *order;     /* item positions in this epoch's order */
  int64_t next_claim; /* next batch a worker takes */
  int64_t next_take;  /* next batch the consumer gets */
  bool active;
  uint64_t generation;
  int busy; /* workers building a batch */
  bool shutdown;
  slot *slots;
  pthread_mutex_t lock;
  pthread_cond_t work_cv, ready_cv, idle_cv;
  int nworkers;
  worker *workers;
  image_ctx inline_ctx; /* num_workers == 0 */
  char *warnings;       /* handed out by fc_loader_warnings */
};

/* ---- shuffling ----------------------------------------------------------- */

/* Fisher-Yates driven by Philox keyed by the seed (with a tag, so it never
 * shares a stream with the items') and counted by (epoch, position). */
static void shuffle_order(int64_t *order, int64_t n, uint64_t seed, int64_t epoch) {
  const uint32_t key[2] = {(uint32_t)seed ^ 0x5EED5EEDu, (uint32_t)(seed >> 32) ^ 0x0DE12u};
  for (int64_t i = n - 1; i > 0; i--) {
    const uint32_t ctr[4] = {(uint32_t)i, (uint32_t)((uint64_t)i >> 32), (uint32_t)epoch,
                             (uint32_t)((uint64_t)epoch >> 32)};
    uint32_t out[4];
    philox4x32_10(ctr, key, out);
    int64_t j = (int64_t)((((uint64_t)out[0] << 32) | out[1]) % (uint64_t)(i + 1));
    int64_t t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
}

/* ---- building one batch -------------------------------------------------- */

typedef struct batch {
  fc_tensor *x, *y, *idx;
  char *error, *warnings;
} batch;

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

/* Appends `more` to the malloc'd *text (out of memory: dropped). */
static void append_text(char **text, const char *more, const char *end) {
  size_t old = *text ? strlen(*text) : 0, n = strlen(more), m = strlen(end);
  char *t = realloc(*text, old + n + m + 1);
  if (!t) return;
  memcpy(t + old, more, n);
  memcpy(t + old + n, end, m + 1);
  *text = t;
}

static void batch_clear(batch *b) {
  fc_release(b->x);
  fc_release(b->y);
  fc_release(b->idx);
  free(b->error);
  free(b->warnings);
  memset(b, 0, sizeof *b);
}

static bool stale(fc_loader *l, uint64_t gen) {
  return __atomic_load_n(&l->generation, __ATOMIC_ACQUIRE) != gen;
}

/* Makes the batch tensors once the item size is known. */
static int batch_alloc(fc_loader *l, batch *b, int64_t rows, int c, int h, int w) {
  fc_device cpu = {FC_CPU, 0};
  int64_t xs[4] = {rows, c, h, w}, ys[1] = {rows};
  b->x = fc_empty(4, xs, l->opts.normalize ? FC_FLOAT32 : FC_UINT8, cpu);
  b->idx = fc_empty(1, ys, FC_INT64, cpu);
  if (l->labels) b->y = fc_empty(1, ys, FC_INT64, cpu);
  return b->x && b->idx && (b->y || !l->labels) ? 0 : -1;
}

/* Narrows the batch to the rows that made it (skipped items leave gaps at
 * the end after compaction). */
static int batch_trim(batch *b, int64_t rows) {
  fc_tensor **ts[3] = {&b->x, &b->y, &b->idx};
  for (int i = 0; i < 3; i++) {
    if (!*ts[i] || (*ts[i])->shape[0] == rows) continue;
    fc_tensor *v = fc_narrow(*ts[i], 0, 0, rows);
    if (!v) return -1;
    fc_release(*ts[i]);
    *ts[i] = v;
  }
  return 0;
}

/* Where one item's pixels go: row `row` of the batch, whose tensors are
 * made when the first item that loads tells the size. */
typedef struct row_dest {
  fc_loader *l;
  batch *b;
  int64_t count, row, item;
} row_dest;

static int open_row(image_sink *s, int c, int h, int w) {
  row_dest *d = s->arg;
  const fc_loader_opts *o = &d->l->opts;
  batch *b = d->b;
  if (!b->x && batch_alloc(d->l, b, d->count, c, h, w) < 0) return -1;
  if (b->x->shape[2] != h || b->x->shape[3] != w)
    FAIL_INT("'%s' is %dx%d after its steps but its batch is %lldx%lld: add a resize or crop "
             "step so every item has one size", d->l->paths[d->item], h, w,
             (long long)b->x->shape[2], (long long)b->x->shape[3]);
  size_t item_size = (size_t)c * h * w;
  if (o->normalize) {
    s->f32 = (float *)fc_data_ptr(b->x) + d->row * item_size;
    for (int k = 0; k < c; k++) s->scale[k] = 1.0f / (255.0f * o->std[k]), s->bias[k] = -o->mean[k] / o->std[k];
  } else {
    s->u8 = (uint8_t *)fc_data_ptr(b->x) + d->row * item_size;
  }
  return 0;
}

/* One item into row `row`. -1 with the error set. */
static int load_row(fc_loader *l, image_ctx *ctx, batch *b, int64_t count, int64_t row, int64_t item) {
  const fc_loader_opts *o = &l->opts;
  row_dest d = {l, b, count, row, item};
  image_sink sink = {.open = open_row, .arg = &d};
  if (image_load_item(ctx, l->paths[item], o->channels, o->ntfms, l->tfms, o->seed, l->epoch, item, &sink) < 0)
    return -1;
  ((int64_t *)fc_data_ptr(b->idx))[row] = item + o->index_base;
  if (b->y) ((int64_t *)fc_data_ptr(b->y))[row] = l->labels[item];
  return 0;
}

/* Builds batch k of the current epoch into b. Returns false when abandoned
 * because the generation moved on. Skipped items leave no gap: the rows
 * that loaded are packed and the batch comes out shorter. */
static bool build_batch(fc_loader *l, image_ctx *ctx, int64_t k, uint64_t gen, batch *b) {
  const fc_loader_opts *o = &l->opts;
  int64_t first = k * o->batch_size, count = o->batch_size, rows = 0;
  if (first + count > l->n) count = l->n - first;
  for (int64_t i = 0; i < count; i++) {
    if (stale(l, gen)) return false;
    int64_t item = l->order[first + i];
    if (load_row(l, ctx, b, count, rows, item) == 0) {
      rows++;
      continue;
    }
    if (o->on_error != FC_ON_ERROR_SKIP) {
      b->error = dup_str(fc_last_error());
      return true;
    }
    char line[1200];
    snprintf(line, sizeof line, "skipped item %lld: %s", (long long)(item + o->index_base), fc_last_error());
    append_text(&b->warnings, line, "\n");
  }
  if (b->x && batch_trim(b, rows) < 0) b->error = dup_str(fc_last_error());
  return true;
}

/* ---- workers ------------------------------------------------------------- */

static bool can_claim(const fc_loader *l) {
  return l->active && l->next_claim < l->nbatches && l->next_claim < l->next_take + l->opts.prefetch;
}

static void *worker_main(void *arg) {
  worker *w = arg;
  fc_loader *l = w->l;
  pthread_mutex_lock(&l->lock);
  while (!l->shutdown) {
    if (!can_claim(l)) {
      pthread_cond_wait(&l->work_cv, &l->lock);
      continue;
    }
    int64_t k = l->next_claim++;
    uint64_t gen = l->generation;
    l->busy++;
    pthread_mutex_unlock(&l->lock);
    batch b = {0};
    bool done = build_batch(l, &w->ctx, k, gen, &b);
    pthread_mutex_lock(&l->lock);
    l->busy--;
    if (done && gen == l->generation) {
      slot *s = &l->slots[k % l->opts.prefetch];
      *s = (slot){.batch = k, .ready = true, .x = b.x, .y = b.y, .idx = b.idx, .error = b.error, .warnings = b.warnings};
      pthread_cond_broadcast(&l->ready_cv);
    } else {
      batch_clear(&b);
    }
    if (l->busy == 0) pthread_cond_broadcast(&l->idle_cv);
  }
  pthread_mutex_unlock(&l->lock);
  return NULL;
}

static void slot_clear(slot *s) {
  batch b = {s->x, s->y, s->idx, s->error, s->warnings};
  batch_clear(&b);
  *s = (slot){.batch = -1};
}

/* Abandons the epoch in flight and waits until no worker holds a batch.
 * Called with the lock held. */
static void stop_epoch(fc_loader *l) {
  __atomic_add_fetch(&l->generation, 1, __ATOMIC_RELEASE);
  l->active = false;
  while (l->busy > 0) pthread_cond_wait(&l->idle_cv, &l->lock);
  for (int i = 0; l->slots && i < l->opts.prefetch; i++) slot_clear(&l->slots[i]);
}

/* ---- public API ---------------------------------------------------------- */

static int check_opts(int64_t n, const char *const *paths, const fc_loader_opts *o) {
  if (!o) FAIL_INT("loader: options are NULL");
  if (n < 0) FAIL_INT("loader: item count must be >= 0, got %lld", (long long)n);
  if (n > 0 && !paths) FAIL_INT("loader: paths are NULL");
  for (int64_t i = 0; i < n; i++)
    if (!paths[i]) FAIL_INT("loader: path of item %lld is NULL", (long long)(i + o->index_base));
  if (o->batch_size < 1) FAIL_INT("loader: batch_size must be >= 1, got %lld", (long long)o->batch_size);
  if (o->num_workers < 0 || o->num_workers > 256)
    FAIL_INT("loader: num_workers must be 0..256, got %d", o->num_workers);
  if (o->prefetch < 1 || o->prefetch > 1024) FAIL_INT("loader: prefetch must be 1..1024, got %d", o->prefetch);
  if (o->channels != 1 && o->channels != 3 && o->channels != 4)
    FAIL_INT("loader: channels must be 1, 3 or 4, got %d", o->channels);
  if (o->on_error != FC_ON_ERROR_RAISE && o->on_error != FC_ON_ERROR_SKIP)
    FAIL_INT("loader: on_error must be FC_ON_ERROR_RAISE or FC_ON_ERROR_SKIP, got %d", o->on_error);
  for (int k = 0; o->normalize && k < o->channels; k++)
    if (!(o->std[k] > 0) || !isfinite(o->mean[k]))
      FAIL_INT("loader: normalize needs a finite mean and a positive std per channel (channel %d: mean %g, std %g)",
               k + 1, o->mean[k], o->std[k]);
  return check_pipeline("loader", o->ntfms, o->tfms);
}

static int copy_inputs(fc_loader *l, const char *const *paths, const int64_t *labels) {
  int64_t n = l->n;
  l->paths = calloc((size_t)n + 1, sizeof *l->paths);
  l->order = malloc(sizeof *l->order * ((size_t)n + 1));
  l->tfms = malloc(sizeof *l->tfms * ((size_t)l->opts.ntfms + 1));
  l->slots = calloc((size_t)l->opts.prefetch, sizeof *l->slots);
  if (!l->paths || !l->order || !l->tfms || !l->slots) return -1;
  for (int64_t i = 0; i < n; i++)
    if (!(l->paths[i] = dup_str(paths[i]))) return -1;
  if (labels) {
    if (!(l->labels = malloc(sizeof *l->labels * ((size_t)n + 1)))) return -1;
    memcpy(l->labels, labels, sizeof *l->labels * (size_t)n);
  }
  if (l->opts.ntfms) memcpy(l->tfms, l->opts.tfms, sizeof *l->tfms * (size_t)l->opts.ntfms);
  l->opts.tfms = l->tfms;
  for (int i = 0; i < l->opts.prefetch; i++) l->slots[i].batch = -1;
  return 0;
}

static int start_workers(fc_loader *l) {
  l->workers = calloc((size_t)l->opts.num_workers + 1, sizeof *l->workers);
  if (!l->workers) FAIL_INT("loader: out of memory");
  for (int i = 0; i < l->opts.num_workers; i++) {
    l->workers[i].l = l;
    if (pthread_create(&l->workers[i].thread, NULL, worker_main, &l->workers[i]) != 0)
      FAIL_INT("loader: cannot start worker thread %d of %d", i + 1, l->opts.num_workers);
    l->nworkers++;
  }
  return 0;
}

fc_loader *fc_loader_new(int64_t n, const char *const *paths, const int64_t *labels,
                         const fc_loader_opts *opts) {
  if (check_opts(n, paths, opts) < 0) return NULL;
  fc_loader *l = calloc(1, sizeof *l);
  if (!l) FAIL("loader: out of memory");
  l->n = n;
  l->opts = *opts;
  l->nbatches = opts->drop_last ? n / opts->batch_size : (n + opts->batch_size - 1) / opts->batch_size;
  pipeline_out_size(opts->ntfms, opts->tfms, &l->out_h, &l->out_w);
  pthread_mutex_init(&l->lock, NULL);
  pthread_cond_init(&l->work_cv, NULL);
  pthread_cond_init(&l->ready_cv, NULL);
  pthread_cond_init(&l->idle_cv, NULL);
  if (copy_inputs(l, paths, labels) < 0) {
    fc_loader_free(l);
    FAIL("loader: out of memory copying %lld items", (long long)n);
  }
  if (start_workers(l) < 0) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s", fc_last_error());
    fc_loader_free(l);
    FAIL("%s", msg);
  }
  return l;
}

int64_t fc_loader_len(const fc_loader *l) { return l ? l->nbatches : 0; }

int fc_loader_start_epoch(fc_loader *l, int64_t epoch) {
  if (!l) FAIL_INT("loader: NULL loader");
  pthread_mutex_lock(&l->lock);
  stop_epoch(l);
  l->epoch = epoch;
  for (int64_t i = 0; i < l->n; i++) l->order[i] = i;
  if (l->opts.shuffle) shuffle_order(l->order, l->n, l->opts.seed, epoch);
  l->next_claim = l->next_take = 0;
  l->active = true;
  pthread_cond_broadcast(&l->work_cv);
  pthread_mutex_unlock(&l->lock);
  return 0;
}

/* Waits for batch k and moves it out of its slot. */
static void take_batch(fc_loader *l, int64_t k, batch *b) {
  pthread_mutex_lock(&l->lock);
  slot *s = &l->slots[k % l->opts.prefetch];
  while (!(s->ready && s->batch == k)) pthread_cond_wait(&l->ready_cv, &l->lock);
  *b = (batch){s->x, s->y, s->idx, s->error, s->warnings};
  *s = (slot){.batch = -1};
  l->next_take = k + 1;
  pthread_cond_broadcast(&l->work_cv);
  pthread_mutex_unlock(&l->lock);
}

int fc_loader_next(fc_loader *l, fc_tensor **images, fc_tensor **labels, fc_tensor **indices) {
  if (!l || !images || !indices) FAIL_INT("loader_next: NULL loader or output");
  *images = *indices = NULL;
  if (labels) *labels = NULL;
  free(l->warnings);
  l->warnings = NULL;
  if (!l->active) FAIL_INT("loader_next: no epoch started (call fc_loader_start_epoch)");
  for (;;) { /* batches whose items were all skipped are passed over */
    int64_t k = l->next_take;
    if (k >= l->nbatches) return 0;
    batch b = {0};
    if (l->nworkers == 0) {
      build_batch(l, &l->inline_ctx, k, l->generation, &b);
      l->next_take = k + 1;
    } else {
      take_batch(l, k, &b);
    }
    if (b.warnings) append_text(&l->warnings, b.warnings, "");
    if (b.error) {
      fc_set_error("%s", b.error);
      batch_clear(&b);
      return -1;
    }
    if (!b.x) {
      batch_clear(&b);
      continue;
    }
    *images = b.x, *indices = b.idx;
    if (labels) *labels = b.y;
    else fc_release(b.y);
    free(b.warnings);
    return 1;
  }
}

const char *fc_loader_warnings(const fc_loader *l) { return l && l->warnings ? l->warnings : ""; }

void fc_loader_free(fc_loader *l) {
  if (!l) return;
  pthread_mutex_lock(&l->lock);
  stop_epoch(l);
  l->shutdown = true;
  pthread_cond_broadcast(&l->work_cv);
  pthread_mutex_unlock(&l->lock);
  for (int i = 0; i < l->nworkers; i++) {
    pthread_join(l->workers[i].thread, NULL);
    image_ctx_free(&l->workers[i].ctx);
  }
  image_ctx_free(&l->inline_ctx);
  for (int64_t i = 0; l->paths && i < l->n; i++) free(l->paths[i]);
  free(l->paths);
  free(l->labels);
  free(l->order);
  free(l->tfms);
  free(l->slots);
  free(l->workers);
  free(l->warnings);
  pthread_mutex_destroy(&l->lock);
  pthread_cond_destroy(&l->work_cv);
  pthread_cond_destroy(&l->ready_cv);
  pthread_cond_destroy(&l->idle_cv);
  free(l);
}
