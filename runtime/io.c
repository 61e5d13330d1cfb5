/* io.c — safetensors files: fc_save writes one atomically, fc_load reads
 * one back onto the CPU.
 *
 * Layout (Hugging Face's format): an 8-byte little-endian header length N,
 * N bytes of JSON
 *   {"__metadata__":{"k":"v"},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}
 * padded with spaces so the data starts 8-byte aligned, then the data
 * buffer: each tensor's elements contiguous, little-endian, row-major, at
 * offsets counted from the buffer's start.
 *
 * Loading treats the file as hostile: every length, offset and shape is
 * checked against the file before anything is allocated or read, and every
 * failure names the file. */
#include "internal.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "io.c writes tensors' bytes as they lie in memory: safetensors needs a little-endian host"
#endif

/* safetensors dtype codes, indexed by fc_dtype. */
static const char *const st_dtypes[FC_NUM_DTYPES] = {"F32", "F64", "F16", "BF16",
                                                     "I64", "I32", "U8", "BOOL"};
#define ST_DTYPE_LIST "F32, F64, F16, BF16, I64, I32, U8, BOOL"

/* Offsets and sizes read from JSON are doubles: integers are exact up to 2^53. */
#define MAX_JSON_INT 9007199254740992.0

static int st_dtype_of(const char *code) {
  for (int d = 0; d < FC_NUM_DTYPES; d++)
    if (strcmp(code, st_dtypes[d]) == 0) return d;
  return -1;
}

static int cmp_strptr(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first name that appears twice among n, or NULL. */
static const char *find_duplicate(int n, const char *const *names) {
  if (n < 2) return NULL;
  const char **sorted = malloc(sizeof *sorted * (size_t)n);
  if (!sorted) return NULL;
  memcpy(sorted, names, sizeof *sorted * (size_t)n);
  qsort(sorted, (size_t)n, sizeof *sorted, cmp_strptr);
  const char *dup = NULL;
  for (int i = 1; i < n && !dup; i++)
    if (strcmp(sorted[i - 1], sorted[i]) == 0) dup = sorted[i];
  free(sorted);
  return dup;
}

/* ======================================================================
 * Writing
 * ====================================================================== */

/* A growable string for the JSON header; `failed` latches out-of-memory. */
typedef struct strbuf {
  char *s;
  size_t len, cap;
  bool failed;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t n) {
  if (b->failed) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    char *s2 = realloc(b->s, cap);
    if (!s2) {
      b->failed = true;
      return;
    }
    b->s = s2;
    b->cap = cap;
  }
  memcpy(b->s + b->len, s, n);
  b->len += n;
  b->s[b->len] = '\0';
}

static void sb_puts(strbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_printf(strbuf *b, const char *fmt, ...) {
  char tmp[64];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  sb_put(b, tmp, (size_t)n); /* only used for numbers: always fits */
}

/* A JSON string literal. Bytes >= 0x80 pass through: names are UTF-8. */
static void sb_json_string(strbuf *b, const char *s) {
  sb_put(b, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') {
      char esc[2] = {'\\', (char)*p};
      sb_put(b, esc, 2);
    } else if (*p < 0x20) {
      sb_printf(b, "\\u%04x", *p);
    } else {
      sb_put(b, (const char *)p, 1);
    }
  }
  sb_put(b, "\"", 1);
}

/* Checks names, tensors and metadata before anything touches the disk. */
static int check_save_args(const char *path, int n, const char *const *names,
                           fc_tensor *const *tensors, int nmeta, const char *const *keys,
                           const char *const *values) {
  if (!path || !*path) FAIL_INT("save: path is NULL or empty");
  if (n < 0 || nmeta < 0) FAIL_INT("save: negative count (%d tensors, %d metadata entries)", n, nmeta);
  if (n > 0 && (!names || !tensors)) FAIL_INT("save: names or tensors is NULL");
  if (nmeta > 0 && (!keys || !values)) FAIL_INT("save: metadata keys or values is NULL");
  for (int i = 0; i < n; i++) {
    if (!names[i] || !names[i][0]) FAIL_INT("save: tensor %d has an empty name", i);
    if (strcmp(names[i], "__metadata__") == 0)
      FAIL_INT("save: '__metadata__' is reserved and cannot name a tensor");
    if (!tensors[i]) FAIL_INT("save: tensor '%s' is NULL", names[i]);
    if (!tensors[i]->storage) FAIL_INT("save: tensor '%s' was freed", names[i]);
    if (!valid_dtype(tensors[i]->dtype))
      FAIL_INT("save: tensor '%s' has an invalid dtype %d", names[i], tensors[i]->dtype);
  }
  const char *dup = find_duplicate(n, names);
  if (dup) FAIL_INT("save: tensor name '%s' appears more than once", dup);
  for (int i = 0; i < nmeta; i++) {
    if (!keys[i] || !keys[i][0]) FAIL_INT("save: metadata key %d is NULL or empty", i);
    if (!values[i]) FAIL_INT("save: metadata value for '%s' is NULL", keys[i]);
  }
  dup = find_duplicate(nmeta, keys);
  if (dup) FAIL_INT("save: metadata key '%s' appears more than once", dup);
  return 0;
}

static int64_t tensor_nbytes(const fc_tensor *t) {
  return t->numel * fc_dtype_size(t->dtype);
}

/* The order tensors' data is laid out in: widest dtype first (stable), so
 * every tensor starts aligned to its element size, as in Hugging Face's own
 * writer, and a reader that maps the file can use the data in place. The
 * header keeps the caller's order, which is what fc_load gives back. */
static void data_order(int n, fc_tensor *const *tensors, int *order) {
  int k = 0;
  for (int size = 8; size >= 1; size /= 2)
    for (int i = 0; i < n; i++)
      if (fc_dtype_size(tensors[i]->dtype) == size) order[k++] = i;
}

/* The JSON header, space-padded so 8 + its length is a multiple of 8. */
static char *build_header(int n, const char *const *names, fc_tensor *const *tensors,
                          const int64_t *offsets, int nmeta, const char *const *keys,
                          const char *const *values, size_t *len) {
  strbuf b = {0};
  sb_puts(&b, "{");
  if (nmeta > 0) {
    sb_puts(&b, "\"__metadata__\":{");
    for (int i = 0; i < nmeta; i++) {
      if (i) sb_puts(&b, ",");
      sb_json_string(&b, keys[i]);
      sb_puts(&b, ":");
      sb_json_string(&b, values[i]);
    }
    sb_puts(&b, "}");
  }
  for (int i = 0; i < n; i++) {
    const fc_tensor *t = tensors[i];
    if (i || nmeta > 0) sb_puts(&b, ",");
    sb_json_string(&b, names[i]);
    sb_printf(&b, ":{\"dtype\":\"%s\",\"shape\":[", st_dtypes[t->dtype]);
    for (int d = 0; d < t->ndim; d++) sb_printf(&b, d ? ",%lld" : "%lld", (long long)t->shape[d]);
    sb_printf(&b, "],\"data_offsets\":[%lld,%lld]}", (long long)offsets[i],
              (long long)(offsets[i] + tensor_nbytes(t)));
  }
  sb_puts(&b, "}");
  while ((b.len + 8) % 8) sb_puts(&b, " ");
  if (b.failed) {
    free(b.s);
    fc_set_error("save: out of memory building the header");
    return NULL;
  }
  *len = b.len;
  return b.s;
}

static int write_all(int fd, const void *data, size_t n) {
  const char *p = data;
  while (n > 0) {
    ssize_t w = write(fd, p, n < ((size_t)1 << 30) ? n : ((size_t)1 << 30));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -1;
    if (w == 0) {
      errno = EIO;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* One tensor's elements in logical order, from whatever device and layout. */
static int write_tensor(int fd, fc_tensor *t, const char *path, const char *name) {
  if (t->numel == 0) return 0;
  fc_device cpu = {FC_CPU, 0};
  fc_tensor *host = fc_to_device(t, cpu);
  fc_tensor *c = host ? fc_contiguous(host) : NULL;
  fc_release(host);
  if (!c) {
    char why[256];
    snprintf(why, sizeof why, "%s", fc_last_error());
    fc_set_error("save: tensor '%s': %s", name, why);
    return -1;
  }
  int rc = write_all(fd, elem_ptr(c), (size_t)tensor_nbytes(c));
  if (rc < 0) fc_set_error("save: writing '%s' failed: %s", path, strerror(errno));
  fc_release(c);
  return rc;
}

/* Makes the rename itself durable; not every file system can, so errors
 * are ignored (the data is already fsynced). */
static void sync_parent_dir(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
  if (!dir) return;
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
  free(dir);
}

static int write_file(int fd, const char *path, const char *header, size_t hlen, int n,
                      const char *const *names, fc_tensor *const *tensors, const int *order) {
  unsigned char len8[8];
  for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
  if (write_all(fd, len8, 8) < 0 || write_all(fd, header, hlen) < 0)
    FAIL_INT("save: writing '%s' failed: %s", path, strerror(errno));
  for (int k = 0; k < n; k++)
    if (write_tensor(fd, tensors[order[k]], path, names[order[k]]) < 0) return -1;
  if (fsync(fd) < 0) FAIL_INT("save: fsync of '%s' failed: %s", path, strerror(errno));
  return 0;
}

/* Writes the file to `tmp` and renames it over `path`; on any failure the
 * temp file is removed and whatever was at `path` stays as it was. */
static int write_atomically(const char *path, const char *tmp, const char *header, size_t hlen,
                            int n, const char *const *names, fc_tensor *const *tensors,
                            const int *order) {
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0)
    FAIL_INT("save: cannot write '%s' (temp file '%s'): %s", path, tmp, strerror(errno));
  int rc = write_file(fd, path, header, hlen, n, names, tensors, order);
  if (close(fd) < 0 && rc == 0) {
    fc_set_error("save: writing '%s' failed: %s", path, strerror(errno));
    rc = -1;
  }
  if (rc == 0 && rename(tmp, path) < 0) {
    fc_set_error("save: cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
    rc = -1;
  }
  if (rc < 0) unlink(tmp);
  else sync_parent_dir(path);
  return rc;
}

int fc_save(const char *path, int n, const char *const *names, fc_tensor *const *tensors,
            int nmeta, const char *const *meta_keys, const char *const *meta_values) {
  if (check_save_args(path, n, names, tensors, nmeta, meta_keys, meta_values) < 0) return -1;
  int *order = malloc(sizeof *order * (size_t)(n + 1));
  int64_t *offsets = malloc(sizeof *offsets * (size_t)(n + 1));
  size_t tmp_len = strlen(path) + 32;
  char *tmp = malloc(tmp_len);
  char *header = NULL;
  size_t hlen = 0;
  int rc = -1;
  if (!order || !offsets || !tmp) {
    fc_set_error("save: out of memory");
  } else {
    data_order(n, tensors, order);
    int64_t pos = 0;
    for (int k = 0; k < n; k++) {
      offsets[order[k]] = pos;
      pos += tensor_nbytes(tensors[order[k]]);
    }
    header = build_header(n, names, tensors, offsets, nmeta, meta_keys, meta_values, &hlen);
    snprintf(tmp, tmp_len, "%s.tmp.%ld", path, (long)getpid());
    if (header) rc = write_atomically(path, tmp, header, hlen, n, names, tensors, order);
  }
  free(header);
  free(tmp);
  free(offsets);
  free(order);
  return rc;
}

/* ======================================================================
 * Reading
 * ====================================================================== */

struct fc_file {
  int count, meta_count;
  char **names;
  fc_tensor **tensors;
  char **meta_keys, **meta_values;
};

void fc_file_close(fc_file *f) {
  if (!f) return;
  for (int i = 0; i < f->count; i++) {
    free(f->names[i]);
    fc_release(f->tensors[i]);
  }
  for (int i = 0; i < f->meta_count; i++) {
    free(f->meta_keys[i]);
    free(f->meta_values[i]);
  }
  free(f->names);
  free(f->tensors);
  free(f->meta_keys);
  free(f->meta_values);
  free(f);
}

static int read_at(int fd, void *buf, size_t n, int64_t off) {
  char *p = buf;
  while (n > 0) {
    ssize_t r = pread(fd, p, n < ((size_t)1 << 30) ? n : ((size_t)1 << 30), (off_t)off);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) {
      errno = EIO; /* the file shrank under us */
      return -1;
    }
    p += r;
    off += r;
    n -= (size_t)r;
  }
  return 0;
}

/* What one header entry says about a tensor, checked against the data size. */
typedef struct entry {
  const char *name;
  int dtype, ndim;
  int64_t shape[FC_MAX_DIMS];
  int64_t begin, end;
} entry;

static bool json_int(const cJSON *x, int64_t *out) {
  if (!cJSON_IsNumber(x)) return false;
  double v = x->valuedouble;
  if (!(v >= 0 && v <= MAX_JSON_INT) || v != floor(v)) return false;
  *out = (int64_t)v;
  return true;
}

/* Fills e from one header entry; -1 with an error naming path and tensor. */
static int parse_entry(const char *path, const cJSON *item, int64_t data_size, entry *e) {
  const char *name = item->string;
  e->name = name;
  if (!cJSON_IsObject(item)) FAIL_INT("load: '%s': entry '%s' is not an object", path, name);
  const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
  const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
  const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
  if (!cJSON_IsString(dtype))
    FAIL_INT("load: '%s': tensor '%s' has no \"dtype\" string", path, name);
  e->dtype = st_dtype_of(dtype->valuestring);
  if (e->dtype < 0)
    FAIL_INT("load: '%s': tensor '%s' has unsupported dtype '%s' (supported: " ST_DTYPE_LIST ")",
             path, name, dtype->valuestring);

  if (!cJSON_IsArray(shape))
    FAIL_INT("load: '%s': tensor '%s' has no \"shape\" list", path, name);
  e->ndim = cJSON_GetArraySize(shape);
  if (e->ndim > FC_MAX_DIMS)
    FAIL_INT("load: '%s': tensor '%s' has %d dims, at most %d supported", path, name, e->ndim,
             FC_MAX_DIMS);
  int d = 0;
  bool has_zero = false;
  for (const cJSON *s = shape->child; s; s = s->next, d++) {
    if (!json_int(s, &e->shape[d]))
      FAIL_INT("load: '%s': tensor '%s' has a shape entry that is not a non-negative integer",
               path, name);
    has_zero |= e->shape[d] == 0;
  }

  int64_t off[2];
  if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || !json_int(offs->child, &off[0]) ||
      !json_int(offs->child->next, &off[1]))
    FAIL_INT("load: '%s': tensor '%s' needs \"data_offsets\": [begin, end] of non-negative "
             "integers", path, name);
  e->begin = off[0];
  e->end = off[1];
  if (e->begin > e->end)
    FAIL_INT("load: '%s': tensor '%s' has data_offsets [%lld,%lld] with begin after end", path,
             name, (long long)e->begin, (long long)e->end);

  /* Bytes the shape needs, without overflowing on absurd shapes. */
  int64_t need = has_zero ? 0 : fc_dtype_size(e->dtype);
  bool huge = false;
  for (int i = 0; i < e->ndim && !has_zero; i++) {
    if (e->shape[i] > ((int64_t)1 << 62) / need) huge = true;
    else need *= e->shape[i];
  }
  if (huge || need != e->end - e->begin) {
    char sb[96];
    FAIL_INT("load: '%s': tensor '%s' of shape %s and dtype %s needs %s%lld bytes but its "
             "data_offsets [%lld,%lld] hold %lld", path, name,
             dims_str(e->ndim, e->shape, sb, sizeof sb), st_dtypes[e->dtype],
             huge ? "more than " : "", huge ? (long long)1 << 62 : (long long)need,
             (long long)e->begin, (long long)e->end, (long long)(e->end - e->begin));
  }
  if (e->end > data_size)
    FAIL_INT("load: '%s': tensor '%s' has data_offsets [%lld,%lld] past the end of the data "
             "(%lld bytes; is the file truncated?)", path, name, (long long)e->begin,
             (long long)e->end, (long long)data_size);
  return 0;
}

static int parse_metadata(const char *path, const cJSON *meta, fc_file *f) {
  if (f->meta_keys) FAIL_INT("load: '%s': \"__metadata__\" appears more than once", path);
  if (cJSON_IsNull(meta)) return 0;
  if (!cJSON_IsObject(meta))
    FAIL_INT("load: '%s': \"__metadata__\" is not an object of strings", path);
  int n = cJSON_GetArraySize(meta);
  f->meta_keys = calloc((size_t)n + 1, sizeof(char *));
  f->meta_values = calloc((size_t)n + 1, sizeof(char *));
  if (!f->meta_keys || !f->meta_values) FAIL_INT("load: '%s': out of memory", path);
  for (const cJSON *m = meta->child; m; m = m->next) {
    if (!cJSON_IsString(m))
      FAIL_INT("load: '%s': metadata value for '%s' is not a string", path, m->string);
    int i = f->meta_count;
    f->meta_keys[i] = strdup(m->string);
    f->meta_values[i] = strdup(m->valuestring);
    if (f->meta_keys[i] || f->meta_values[i]) f->meta_count++;
    if (!f->meta_keys[i] || !f->meta_values[i]) FAIL_INT("load: '%s': out of memory", path);
  }
  const char *dup = find_duplicate(f->meta_count, (const char *const *)f->meta_keys);
  if (dup) FAIL_INT("load: '%s': metadata key '%s' appears more than once", path, dup);
  return 0;
}

/* Builds the file's tensors from a parsed header. */
static int load_entries(const char *path, int fd, const cJSON *root, int64_t data_start,
                        int64_t data_size, fc_file *f) {
  int n = cJSON_GetArraySize(root);
  entry *es = calloc((size_t)n + 1, sizeof *es);
  const char **names = calloc((size_t)n + 1, sizeof *names);
  f->names = calloc((size_t)n + 1, sizeof *f->names);
  f->tensors = calloc((size_t)n + 1, sizeof *f->tensors);
  int rc = -1, ne = 0;
  if (!es || !names || !f->names || !f->tensors) {
    fc_set_error("load: '%s': out of memory", path);
    goto done;
  }
  for (const cJSON *item = root->child; item; item = item->next) {
    if (strcmp(item->string, "__metadata__") == 0) {
      if (parse_metadata(path, item, f) < 0) goto done;
      continue;
    }
    if (parse_entry(path, item, data_size, &es[ne]) < 0) goto done;
    names[ne] = es[ne].name;
    ne++;
  }
  const char *dup = find_duplicate(ne, names);
  if (dup) {
    fc_set_error("load: '%s': tensor name '%s' appears more than once", path, dup);
    goto done;
  }
  fc_device cpu = {FC_CPU, 0};
  for (int i = 0; i < ne; i++) {
    const entry *e = &es[i];
    fc_tensor *t = fc_empty(e->ndim, e->shape, e->dtype, cpu);
    char *name = t ? strdup(e->name) : NULL;
    if (!t || !name) {
      char why[256];
      snprintf(why, sizeof why, "%s", t ? "out of memory" : fc_last_error());
      fc_set_error("load: '%s': tensor '%s': %s", path, e->name, why);
      fc_release(t);
      goto done;
    }
    f->names[f->count] = name;
    f->tensors[f->count++] = t;
    size_t nbytes = (size_t)(e->end - e->begin);
    if (nbytes && read_at(fd, elem_ptr(t), nbytes, data_start + e->begin) < 0) {
      fc_set_error("load: '%s': reading tensor '%s' failed: %s", path, e->name, strerror(errno));
      goto done;
    }
    if (e->dtype == FC_BOOL) { /* any non-zero byte is true; keep ours 0/1 */
      uint8_t *b = (uint8_t *)elem_ptr(t);
      for (int64_t k = 0; k < t->numel; k++) b[k] = b[k] != 0;
    }
  }
  rc = 0;
done:
  free(names);
  free(es);
  return rc;
}

/* True when only whitespace (or NUL padding) follows the JSON value. */
static bool only_padding(const char *p, const char *end) {
  for (; p < end; p++)
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '\0') return false;
  return true;
}

static fc_file *load_fd(const char *path, int fd) {
  struct stat st;
  if (fstat(fd, &st) < 0) FAIL("load: cannot open '%s': %s", path, strerror(errno));
  if (S_ISDIR(st.st_mode)) FAIL("load: cannot open '%s': %s", path, strerror(EISDIR));
  int64_t size = (int64_t)st.st_size;
  unsigned char len8[8];
  if (size < 8 || read_at(fd, len8, 8, 0) < 0)
    FAIL("load: '%s' is %lld bytes, too short for a safetensors file (at least 8)", path,
         (long long)size);
  uint64_t hlen = 0;
  for (int i = 0; i < 8; i++) hlen |= (uint64_t)len8[i] << (8 * i);
  if (hlen > (uint64_t)(size - 8))
    FAIL("load: '%s': header length %llu is larger than the file (%lld bytes; truncated or not "
         "a safetensors file?)", path, (unsigned long long)hlen, (long long)size);

  char *header = malloc((size_t)hlen + 1);
  if (!header) FAIL("load: '%s': out of memory for a %llu-byte header", path,
                    (unsigned long long)hlen);
  if (read_at(fd, header, (size_t)hlen, 8) < 0) {
    free(header);
    FAIL("load: '%s': reading the header failed: %s", path, strerror(errno));
  }
  header[hlen] = '\0';
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(header, (size_t)hlen, &end, 0);
  fc_file *f = NULL;
  if (!root) {
    fc_set_error("load: '%s': the header is not valid JSON (error at byte %lld of %llu)", path,
                 end ? (long long)(end - header) : -1LL, (unsigned long long)hlen);
  } else if (!cJSON_IsObject(root)) {
    fc_set_error("load: '%s': the header is not a JSON object", path);
  } else if (!only_padding(end, header + hlen)) {
    fc_set_error("load: '%s': unexpected bytes after the JSON header (at byte %lld)", path,
                 (long long)(end - header));
  } else if (!(f = calloc(1, sizeof *f))) {
    fc_set_error("load: '%s': out of memory", path);
  } else if (load_entries(path, fd, root, 8 + (int64_t)hlen, size - 8 - (int64_t)hlen, f) < 0) {
    fc_file_close(f);
    f = NULL;
  }
  cJSON_Delete(root);
  free(header);
  return f;
}

fc_file *fc_load(const char *path) {
  if (!path || !*path) FAIL("load: path is NULL or empty");
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) FAIL("load: cannot open '%s': %s", path, strerror(errno));
  fc_file *f = load_fd(path, fd);
  close(fd);
  return f;
}

/* ---- accessors --------------------------------------------------------- */

static int check_index(const char *op, const fc_file *f, int i, int n, const char *what) {
  if (!f) FAIL_INT("%s: file is NULL", op);
  if (i < 0 || i >= n) FAIL_INT("%s: index %d out of range (the file has %d %s)", op, i, n, what);
  return 0;
}

int fc_file_count(const fc_file *f) {
  if (!f) FAIL_INT("file_count: file is NULL");
  return f->count;
}

int fc_file_meta_count(const fc_file *f) {
  if (!f) FAIL_INT("file_meta_count: file is NULL");
  return f->meta_count;
}

const char *fc_file_name(const fc_file *f, int i) {
  if (check_index("file_name", f, i, f ? f->count : 0, "tensors") < 0) return NULL;
  return f->names[i];
}

fc_tensor *fc_file_tensor(const fc_file *f, int i) {
  if (check_index("file_tensor", f, i, f ? f->count : 0, "tensors") < 0) return NULL;
  return fc_retain(f->tensors[i]);
}

const char *fc_file_meta_key(const fc_file *f, int i) {
  if (check_index("file_meta_key", f, i, f ? f->meta_count : 0, "metadata entries") < 0)
    return NULL;
  return f->meta_keys[i];
}

const char *fc_file_meta_value(const fc_file *f, int i) {
  if (check_index("file_meta_value", f, i, f ? f->meta_count : 0, "metadata entries") < 0)
    return NULL;
  return f->meta_values[i];
}
