/* idx.c — IDX files (the MNIST format), gzipped or plain, read through zlib.
 *
 * Header: two zero bytes, a type code, the number of dims, then each dim as
 * a big-endian int32; the data follows, big-endian. gzread reads plain files
 * transparently, so one path serves both. */
#include "internal.h"
#include <errno.h>
#include <sys/stat.h>
#include <zlib.h>

typedef struct idx_type { uint8_t code; int dtype; int size; } idx_type;
static const idx_type types[] = {
    {0x08, FC_UINT8, 1}, {0x09, FC_INT32, 1}, {0x0B, FC_INT32, 2},
    {0x0C, FC_INT32, 4}, {0x0D, FC_FLOAT32, 4}, {0x0E, FC_FLOAT64, 8},
};

static int read_all(gzFile f, void *buf, size_t n) {
  char *p = buf;
  while (n > 0) {
    int chunk = n > (1u << 30) ? 1 << 30 : (int)n, got = gzread(f, p, (unsigned)chunk);
    if (got <= 0) return -1;
    p += got;
    n -= (size_t)got;
  }
  return 0;
}

/* Big-endian file values into native elements of the tensor's dtype. */
static void to_native(char *data, int64_t n, const idx_type *t) {
  if (t->code == 0x09) { /* int8, read into the low bytes of int32 slots */
    for (int64_t i = n - 1; i >= 0; i--) ((int32_t *)data)[i] = (int8_t)data[i];
  } else if (t->code == 0x0B) {
    for (int64_t i = n - 1; i >= 0; i--) {
      const uint8_t *b = (const uint8_t *)data + 2 * i;
      ((int32_t *)data)[i] = (int16_t)(b[0] << 8 | b[1]);
    }
  } else if (t->size > 1) {
    for (int64_t i = 0; i < n; i++) {
      uint8_t *b = (uint8_t *)data + i * t->size;
      for (int k = 0; k < t->size / 2; k++) {
        uint8_t tmp = b[k];
        b[k] = b[t->size - 1 - k];
        b[t->size - 1 - k] = tmp;
      }
    }
  }
}

/* The header may claim any size: refuse more data than the file can hold
 * before allocating, so a corrupt header fails at once instead of asking
 * for terabytes. A plain file holds its size minus the header; deflate
 * expands at most 1032:1. */
static int check_claim(const char *path, gzFile f, int ndim, const int64_t *shape, int size) {
  struct stat st;
  if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) return 0; /* a pipe: let the read tell */
  bool gz = !gzdirect(f);
  int64_t avail = gz ? (int64_t)st.st_size * 1032 + 1024 : (int64_t)st.st_size - 4 - 4 * ndim;
  int64_t need = size;
  for (int d = 0; d < ndim; d++)
    if (shape[d] == 0) return 0;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] > avail / need)
      FAIL_INT("read_idx: '%s' is truncated: its header gives shape %s of %d-byte elements, more "
               "than %s %lld bytes%s", path, dims_str(ndim, shape, (char[96]){0}, 96), size,
               gz ? "its" : "the", (long long)(gz ? st.st_size : avail),
               gz ? " can hold compressed" : " of data hold");
    need *= shape[d];
  }
  return 0;
}

fc_tensor *fc_read_idx(const char *path) {
  if (!path) FAIL("read_idx: path is NULL");
  gzFile f = gzopen(path, "rb");
  if (!f) FAIL("read_idx: cannot open '%s': %s", path, strerror(errno ? errno : ENOENT));
  uint8_t head[4];
  fc_tensor *t = NULL;
  const idx_type *type = NULL;
  if (read_all(f, head, 4) < 0 || head[0] != 0 || head[1] != 0) {
    fc_set_error("read_idx: '%s' is not an IDX file (bad magic)", path);
    goto done;
  }
  for (size_t i = 0; i < sizeof types / sizeof *types; i++)
    if (types[i].code == head[2]) type = &types[i];
  if (!type) {
    fc_set_error("read_idx: '%s' has unsupported type code 0x%02x", path, head[2]);
    goto done;
  }
  int ndim = head[3];
  if (ndim < 1 || ndim > FC_MAX_DIMS) {
    fc_set_error("read_idx: '%s' has %d dims (1 to %d supported)", path, ndim, FC_MAX_DIMS);
    goto done;
  }
  int64_t shape[FC_MAX_DIMS];
  for (int d = 0; d < ndim; d++) {
    uint8_t b[4];
    if (read_all(f, b, 4) < 0) {
      fc_set_error("read_idx: '%s' is truncated in its header", path);
      goto done;
    }
    shape[d] = (int64_t)((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]);
  }
  if (check_claim(path, f, ndim, shape, type->size) < 0) goto done;
  t = fc_empty(ndim, shape, type->dtype, (fc_device){FC_CPU, 0});
  if (!t) goto done;
  if (read_all(f, fc_data_ptr(t), (size_t)(t->numel * type->size)) < 0) {
    fc_set_error("read_idx: '%s' is truncated: expected %lld elements of %d bytes", path,
                 (long long)t->numel, type->size);
    fc_release(t);
    t = NULL;
    goto done;
  }
  to_native(fc_data_ptr(t), t->numel, type);
done:
  gzclose(f);
  return t;
}
