/* test_io.c — safetensors save/load: round trips of every dtype and layout,
 * a byte-exact file built by hand, atomic writes, every error path, and
 * hostile files (every truncation, random header corruption); IDX headers
 * that claim more data than their file holds. */
#include "harness.h"
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define SHP(...) (int64_t[]){__VA_ARGS__}
#define NAMES(...) (const char *const[]){__VA_ARGS__}
#define TENSORS(...) (fc_tensor *const[]){__VA_ARGS__}

static char dir[64];

/* A path inside this run's temp dir; 4 rotating buffers. */
static const char *tmp_path(const char *name) {
  static char bufs[4][128];
  static int next;
  char *b = bufs[next++ % 4];
  snprintf(b, 128, "%s/%s", dir, name);
  return b;
}

static void write_bytes(const char *path, const void *bytes, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(bytes, 1, n, f) != n) { perror(path); abort(); }
  fclose(f);
}

/* The whole file, malloc'd; *n its size. NULL if it does not exist. */
static unsigned char *read_bytes(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)size + 1);
  *n = fread(b, 1, (size_t)size, f);
  fclose(f);
  return b;
}

static bool exists(const char *path) { return access(path, F_OK) == 0; }

/* A safetensors file from a header string and raw data bytes. */
static void write_st(const char *path, const char *header, const void *data, size_t ndata) {
  size_t hl = strlen(header), n = 8 + hl + ndata;
  unsigned char *b = malloc(n);
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
  memcpy(b + 8, header, hl);
  if (ndata) memcpy(b + 8 + hl, data, ndata);
  write_bytes(path, b, n);
  free(b);
}

/* fc_load as a status for CHECK_ERR (which takes tensors or ints). */
static int load_rc(const char *path) {
  fc_file *f = fc_load(path);
  if (!f) return -1;
  fc_file_close(f);
  return 0;
}

static bool same_bytes(fc_tensor *a, fc_tensor *b) {
  if (!a || !b || a->dtype != b->dtype || a->ndim != b->ndim) return false;
  for (int d = 0; d < a->ndim; d++)
    if (a->shape[d] != b->shape[d]) return false;
  fc_tensor *ca = fc_contiguous(a), *cb = fc_contiguous(b);
  size_t n = (size_t)(a->numel * fc_dtype_size(a->dtype));
  bool same = n == 0 || memcmp(fc_data_ptr(ca), fc_data_ptr(cb), n) == 0;
  fc_release(ca), fc_release(cb);
  return same;
}

/* Saves n tensors, loads them back and checks names, order and bytes. */
static void round_trip(const char *file, int n, const char *const *names, fc_tensor *const *ts) {
  const char *path = tmp_path(file);
  if (fc_save(path, n, names, ts, 0, NULL, NULL) < 0) {
    harness_fail(__FILE__, __LINE__, "save failed: %s", fc_last_error());
    return;
  }
  fc_file *f = fc_load(path);
  if (!f) {
    harness_fail(__FILE__, __LINE__, "load failed: %s", fc_last_error());
    return;
  }
  CHECK(fc_file_count(f) == n);
  CHECK(fc_file_meta_count(f) == 0);
  for (int i = 0; i < n && i < fc_file_count(f); i++) {
    CHECK(strcmp(fc_file_name(f, i), names[i]) == 0);
    fc_tensor *t = fc_file_tensor(f, i);
    if (!same_bytes(t, ts[i])) harness_fail(__FILE__, __LINE__, "tensor '%s' differs", names[i]);
    CHECK(t && t->device.type == FC_CPU && (t->numel == 0 || fc_is_contiguous(t)));
    fc_release(t);
  }
  fc_file_close(f);
  unlink(path);
}

TEST(every_dtype_round_trips) {
  fc_tensor *ts[FC_NUM_DTYPES];
  const char *names[FC_NUM_DTYPES];
  for (int d = 0; d < FC_NUM_DTYPES; d++) {
    names[d] = fc_dtype_name(d);
    /* values every dtype holds exactly (bool: 0/1) */
    ts[d] = d == FC_BOOL ? MK(d, S(2, 3), 1, 0, 0, 1, 1, 0)
                         : MK(d, S(2, 3), 0, 1, 2.5 * (d < FC_INT64) + 3, 96, 7, 255 - 300 * (d != FC_UINT8));
  }
  int64_t *big = fc_data_ptr(ts[FC_INT64]);
  big[5] = INT64_MIN + 3; /* bits no double holds */
  round_trip("dtypes.safetensors", FC_NUM_DTYPES, names, ts);
  for (int d = 0; d < FC_NUM_DTYPES; d++) fc_release(ts[d]);
}

TEST(scalars_and_empty_tensors) {
  fc_tensor *s = fc_scalar(-1.25, FC_FLOAT64, CPU), *b = fc_scalar(1, FC_BOOL, CPU);
  fc_tensor *e1 = fc_empty(1, SHP(0), FC_FLOAT32, CPU);
  fc_tensor *e2 = fc_empty(3, SHP(2, 0, 4), FC_BFLOAT16, CPU);
  fc_tensor *h = fc_scalar(65504, FC_FLOAT16, CPU);
  round_trip("scalars.safetensors", 5, NAMES("s", "e1", "b", "e2", "h"), TENSORS(s, e1, b, e2, h));
  fc_tensor *one = fc_scalar(3, FC_INT32, CPU);
  round_trip("one.safetensors", 1, NAMES("only"), TENSORS(one));
  round_trip("none.safetensors", 0, NULL, NULL);
  fc_release(s), fc_release(b), fc_release(e1), fc_release(e2), fc_release(h), fc_release(one);
}

TEST(non_contiguous_inputs_are_written_in_logical_order) {
  fc_tensor *m = MK(FC_FLOAT32, S(2, 3), 1, 2, 3, 4, 5, 6);
  fc_tensor *tr = fc_transpose(m, 0, 1);                    /* [[1,4],[2,5],[3,6]] */
  fc_tensor *sl = fc_slice(m, 1, 0, 3, 2);                   /* [[1,3],[4,6]] */
  fc_tensor *row = MK(FC_INT64, S(1, 3), 7, 8, 9);
  fc_tensor *ex = fc_expand(row, 2, SHP(2, 3));              /* stride 0 */
  fc_tensor *sel = fc_select(m, 1, 2);                       /* [3,6], offset 2 */
  CHECK(!fc_is_contiguous(tr) && !fc_is_contiguous(sl) && !fc_is_contiguous(ex));
  const char *path = tmp_path("views.safetensors");
  CHECK(fc_save(path, 4, NAMES("tr", "sl", "ex", "sel"), TENSORS(tr, sl, ex, sel), 0, NULL, NULL) == 0);
  fc_file *f = fc_load(path);
  CHECK(f && fc_file_count(f) == 4);
  if (f) {
    EXPECT(fc_file_tensor(f, 0), FC_FLOAT32, S(3, 2), 0, 1, 4, 2, 5, 3, 6);
    EXPECT(fc_file_tensor(f, 1), FC_FLOAT32, S(2, 2), 0, 1, 3, 4, 6);
    EXPECT(fc_file_tensor(f, 2), FC_INT64, S(2, 3), 0, 7, 8, 9, 7, 8, 9);
    EXPECT(fc_file_tensor(f, 3), FC_FLOAT32, S(2), 0, 3, 6);
  }
  fc_file_close(f);
  unlink(path);
  fc_release(tr), fc_release(sl), fc_release(ex), fc_release(sel), fc_release(row), fc_release(m);
}

TEST(metadata_and_odd_names_round_trip) {
  fc_tensor *a = MK(FC_FLOAT32, S(1), 1), *b = MK(FC_UINT8, S(2), 3, 4);
  const char *names[] = {"layer.0/\"w\"\\x", "caf\xc3\xa9\n\t\x01"};
  const char *keys[] = {"format", "epoch", "quote\"d", "empty"};
  const char *vals[] = {"pt", "12", "line\nbreak \\ \"q\" \xe2\x82\xac", ""};
  const char *path = tmp_path("meta.safetensors");
  CHECK(fc_save(path, 2, names, TENSORS(a, b), 4, keys, vals) == 0);
  fc_file *f = fc_load(path);
  CHECK(f && fc_file_count(f) == 2 && fc_file_meta_count(f) == 4);
  for (int i = 0; f && i < 4; i++) {
    CHECK(strcmp(fc_file_meta_key(f, i), keys[i]) == 0);
    CHECK(strcmp(fc_file_meta_value(f, i), vals[i]) == 0);
  }
  for (int i = 0; f && i < 2; i++) CHECK(strcmp(fc_file_name(f, i), names[i]) == 0);
  if (f) EXPECT(fc_file_tensor(f, 1), FC_UINT8, S(2), 0, 3, 4);
  fc_file_close(f);
  unlink(path);
  fc_release(a), fc_release(b);
}

/* The whole file, byte for byte: the header keeps the caller's order, the
 * data is laid out widest dtype first, the header is space-padded to 8. */
TEST(small_file_is_byte_exact) {
  static const char expected_header[] =
      "{\"__metadata__\":{\"format\":\"pt\"},"
      "\"b\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[8,11]},"
      "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}      ";
  static const unsigned char len8[8] = {144, 0, 0, 0, 0, 0, 0, 0};
  static const unsigned char data[] = {0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, 1, 2, 3};
  unsigned char expected[8 + 144 + 11];
  CHECK(sizeof expected_header - 1 == 144);
  memcpy(expected, len8, 8);
  memcpy(expected + 8, expected_header, 144);
  memcpy(expected + 152, data, 11);

  fc_tensor *b = MK(FC_UINT8, S(3), 1, 2, 3), *a = MK(FC_FLOAT32, S(2), 1, -2);
  const char *path = tmp_path("exact.safetensors");
  CHECK(fc_save(path, 2, NAMES("b", "a"), TENSORS(b, a), 1, NAMES("format"), NAMES("pt")) == 0);
  size_t n = 0;
  unsigned char *got = read_bytes(path, &n);
  CHECK(got && n == sizeof expected);
  if (got && n == sizeof expected && memcmp(got, expected, n) != 0) {
    for (size_t i = 0; i < n; i++)
      if (got[i] != expected[i]) {
        harness_fail(__FILE__, __LINE__, "byte %zu is 0x%02x, expected 0x%02x", i, got[i], expected[i]);
        break;
      }
  }
  free(got);
  /* and a file built by hand loads */
  write_bytes(path, expected, sizeof expected);
  fc_file *f = fc_load(path);
  CHECK(f && fc_file_count(f) == 2 && strcmp(fc_file_name(f, 0), "b") == 0);
  if (f) {
    EXPECT(fc_file_tensor(f, 0), FC_UINT8, S(3), 0, 1, 2, 3);
    EXPECT(fc_file_tensor(f, 1), FC_FLOAT32, S(2), 0, 1, -2);
    CHECK(strcmp(fc_file_meta_key(f, 0), "format") == 0 && strcmp(fc_file_meta_value(f, 0), "pt") == 0);
  }
  fc_file_close(f);
  unlink(path);
  fc_release(a), fc_release(b);
}

/* Every file we write keeps the data 8-aligned and each tensor aligned to
 * its element size, and no gaps (Hugging Face's reader insists on both). */
TEST(layout_is_aligned_and_gapless) {
  fc_tensor *u = MK(FC_UINT8, S(3), 1, 2, 3), *h = MK(FC_FLOAT16, S(1), 1);
  fc_tensor *d = MK(FC_FLOAT64, S(1), 1), *i = MK(FC_INT32, S(1), 1);
  const char *path = tmp_path("aligned.safetensors");
  CHECK(fc_save(path, 4, NAMES("u", "h", "d", "i"), TENSORS(u, h, d, i), 0, NULL, NULL) == 0);
  size_t n = 0;
  unsigned char *b = read_bytes(path, &n);
  uint64_t hl = 0;
  for (int k = 0; k < 8; k++) hl |= (uint64_t)b[k] << (8 * k);
  CHECK(hl % 8 == 0 && n == 8 + hl + 3 + 2 + 8 + 4);
  b[8 + hl] = 0;
  CHECK(strstr((char *)b + 8, "\"d\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}"));
  CHECK(strstr((char *)b + 8, "\"i\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[8,12]}"));
  CHECK(strstr((char *)b + 8, "\"h\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[12,14]}"));
  CHECK(strstr((char *)b + 8, "\"u\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[14,17]}"));
  free(b);
  unlink(path);
  fc_release(u), fc_release(h), fc_release(d), fc_release(i);
}

TEST(overwrites_atomically) {
  fc_tensor *a = MK(FC_FLOAT32, S(2), 1, 2), *b = MK(FC_FLOAT32, S(3), 4, 5, 6);
  const char *path = tmp_path("ckpt.safetensors");
  char tmp[160];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  CHECK(fc_save(path, 1, NAMES("w"), TENSORS(a), 0, NULL, NULL) == 0);
  size_t n0 = 0, n1 = 0;
  unsigned char *before = read_bytes(path, &n0);

  /* a save that fails validation leaves the old file as it was */
  CHECK_ERR(fc_save(path, 2, NAMES("w", "w"), TENSORS(a, b), 0, NULL, NULL),
            "save: tensor name 'w' appears more than once");
  /* a save that fails while writing (file size limit) too, and leaves no temp file */
  struct rlimit old;
  getrlimit(RLIMIT_FSIZE, &old);
  void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
  fc_tensor *big = fc_zeros(1, SHP(100000), FC_FLOAT32, CPU);
  struct rlimit lim = {4096, old.rlim_max};
  CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
  CHECK_ERR(fc_save(path, 1, NAMES("big"), TENSORS(big), 0, NULL, NULL), "File too large");
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, prev);
  CHECK(!exists(tmp));
  unsigned char *after = read_bytes(path, &n1);
  CHECK(after && n1 == n0 && memcmp(before, after, n0) == 0);
  free(after);

  /* a successful save replaces it */
  CHECK(fc_save(path, 1, NAMES("w"), TENSORS(b), 0, NULL, NULL) == 0);
  CHECK(!exists(tmp));
  fc_file *f = fc_load(path);
  if (f) EXPECT(fc_file_tensor(f, 0), FC_FLOAT32, S(3), 0, 4, 5, 6);
  fc_file_close(f);

  /* no directory: fails, creates nothing */
  const char *nodir = tmp_path("missing/ckpt.safetensors");
  CHECK_ERR(fc_save(nodir, 1, NAMES("w"), TENSORS(a), 0, NULL, NULL),
            "No such file or directory");
  CHECK(strstr(fc_last_error(), "save: cannot write '") && strstr(fc_last_error(), "missing/ckpt.safetensors'"));
  CHECK(!exists(tmp_path("missing")));
  /* the target is a directory: the rename fails and the temp file goes */
  const char *sub = tmp_path("adir");
  mkdir(sub, 0700);
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", sub, (long)getpid());
  CHECK_ERR(fc_save(sub, 1, NAMES("w"), TENSORS(a), 0, NULL, NULL), "save: cannot rename");
  CHECK(!exists(tmp));
  rmdir(sub);

  unlink(path);
  free(before);
  fc_release(a), fc_release(b), fc_release(big);
}

TEST(save_errors) {
  fc_tensor *a = MK(FC_FLOAT32, S(2), 1, 2);
  fc_tensor *freed = MK(FC_FLOAT32, S(2), 1, 2);
  fc_free(freed);
  const char *p = tmp_path("err.safetensors");
  CHECK_ERR(fc_save(p, 1, NAMES(""), TENSORS(a), 0, NULL, NULL), "save: tensor 0 has an empty name");
  CHECK_ERR(fc_save(p, 2, NAMES("a", NULL), TENSORS(a, a), 0, NULL, NULL), "save: tensor 1 has an empty name");
  CHECK_ERR(fc_save(p, 1, NAMES("__metadata__"), TENSORS(a), 0, NULL, NULL), "'__metadata__' is reserved");
  CHECK_ERR(fc_save(p, 3, NAMES("x", "y", "x"), TENSORS(a, a, a), 0, NULL, NULL),
            "save: tensor name 'x' appears more than once");
  CHECK_ERR(fc_save(p, 1, NAMES("x"), TENSORS(NULL), 0, NULL, NULL), "save: tensor 'x' is NULL");
  CHECK_ERR(fc_save(p, 1, NAMES("x"), TENSORS(freed), 0, NULL, NULL), "save: tensor 'x' was freed");
  CHECK_ERR(fc_save(p, -1, NULL, NULL, 0, NULL, NULL), "save: negative count");
  CHECK_ERR(fc_save(NULL, 1, NAMES("x"), TENSORS(a), 0, NULL, NULL), "save: path is NULL or empty");
  CHECK_ERR(fc_save("", 1, NAMES("x"), TENSORS(a), 0, NULL, NULL), "save: path is NULL or empty");
  CHECK_ERR(fc_save(p, 1, NAMES("x"), TENSORS(a), 2, NAMES("k", "k"), NAMES("1", "2")),
            "save: metadata key 'k' appears more than once");
  CHECK_ERR(fc_save(p, 1, NAMES("x"), TENSORS(a), 1, NAMES("k"), NAMES(NULL)),
            "save: metadata value for 'k' is NULL");
  CHECK_ERR(fc_save(p, 1, NAMES("x"), TENSORS(a), 1, NAMES(""), NAMES("v")),
            "save: metadata key 0 is NULL or empty");
  CHECK(!exists(p));
  fc_release(a), fc_release(freed);
}

TEST(load_errors) {
  const char *p = tmp_path("bad.safetensors");
  static const float two[2] = {1, 2};
  CHECK_ERR(load_rc(tmp_path("x.safetensors")), "load: cannot open '");
  CHECK(strstr(fc_last_error(), "x.safetensors': No such file or directory"));
  CHECK_ERR(load_rc(dir), "Is a directory");
  CHECK_ERR(load_rc(NULL), "load: path is NULL or empty");
  write_bytes(p, "\x10\0\0", 3);
  CHECK_ERR(load_rc(p), "is 3 bytes, too short for a safetensors file");
  write_bytes(p, "", 0);
  CHECK_ERR(load_rc(p), "is 0 bytes, too short");
  write_bytes(p, "\xff\0\0\0\0\0\0\0{}", 10);
  CHECK_ERR(load_rc(p), "header length 255 is larger than the file (10 bytes");
  write_bytes(p, "\xff\xff\xff\xff\xff\xff\xff\xff{}", 10);
  CHECK_ERR(load_rc(p), "header length 18446744073709551615 is larger than the file");
  write_st(p, "{\"a\":", NULL, 0);
  CHECK_ERR(load_rc(p), "the header is not valid JSON (error at byte");
  write_st(p, "", NULL, 0);
  CHECK_ERR(load_rc(p), "the header is not valid JSON");
  write_st(p, "[1,2]", NULL, 0);
  CHECK_ERR(load_rc(p), "the header is not a JSON object");
  write_st(p, "{}  x", NULL, 0);
  CHECK_ERR(load_rc(p), "unexpected bytes after the JSON header (at byte 2)");
  write_st(p, "{\"w\":{\"dtype\":\"I8\",\"shape\":[2],\"data_offsets\":[0,2]}}", two, 2);
  CHECK_ERR(load_rc(p), "tensor 'w' has unsupported dtype 'I8' (supported: F32, F64, F16, BF16, I64, I32, U8, BOOL)");
  write_st(p, "{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", two, 8);
  CHECK_ERR(load_rc(p), "tensor 'w' has no \"dtype\" string");
  write_st(p, "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", two, 8);
  CHECK_ERR(load_rc(p), "tensor 'w' has no \"shape\" list");
  write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", two, 8);
  CHECK_ERR(load_rc(p), "shape entry that is not a non-negative integer");
  write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", two, 8);
  CHECK_ERR(load_rc(p), "shape entry that is not a non-negative integer");
  write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", two, 8);
  CHECK_ERR(load_rc(p), "tensor 'w' has 9 dims, at most 8 supported");
  write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", two, 8);
  CHECK_ERR(load_rc(p), "load: '");
  CHECK(strstr(fc_last_error(), "bad.safetensors': tensor 'w' of shape [3] and dtype F32 needs 12 bytes but its data_offsets [0,8] hold 8"));
  write_st(p, "{\"w\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", two, 8);
  CHECK_ERR(load_rc(p), "needs more than 4611686018427387904 bytes");
  write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", two, 8);
  CHECK_ERR(load_rc(p), "tensor 'w' needs \"data_offsets\": [begin, end]");
  write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,\"8\"]}}", two, 8);
  CHECK_ERR(load_rc(p), "tensor 'w' needs \"data_offsets\"");
  write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,1e300]}}", two, 8);
  CHECK_ERR(load_rc(p), "tensor 'w' needs \"data_offsets\"");
  write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", two, 8);
  CHECK_ERR(load_rc(p), "data_offsets [8,0] with begin after end");
  write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", two, 8);
  CHECK_ERR(load_rc(p), "tensor 'w' has data_offsets [4,12] past the end of the data (8 bytes; is the file truncated?)");
  write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", two, 6);
  CHECK_ERR(load_rc(p), "past the end of the data (6 bytes");
  write_st(p, "{\"w\":[1]}", two, 8);
  CHECK_ERR(load_rc(p), "entry 'w' is not an object");
  write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
              "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", two, 8);
  CHECK_ERR(load_rc(p), "tensor name 'w' appears more than once");
  write_st(p, "{\"__metadata__\":{\"epoch\":3}}", NULL, 0);
  CHECK_ERR(load_rc(p), "metadata value for 'epoch' is not a string");
  write_st(p, "{\"__metadata__\":{\"a\":\"1\"},\"__metadata__\":{\"b\":\"2\"}}", NULL, 0);
  CHECK_ERR(load_rc(p), "\"__metadata__\" appears more than once");
  write_st(p, "{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}", NULL, 0);
  CHECK_ERR(load_rc(p), "metadata key 'a' appears more than once");
  write_st(p, "{\"__metadata__\":[\"x\"]}", NULL, 0);
  CHECK_ERR(load_rc(p), "\"__metadata__\" is not an object of strings");
  unlink(p);
}

TEST(file_accessor_errors) {
  fc_tensor *a = MK(FC_FLOAT32, S(1), 1);
  const char *p = tmp_path("acc.safetensors");
  CHECK(fc_save(p, 1, NAMES("a"), TENSORS(a), 1, NAMES("k"), NAMES("v")) == 0);
  fc_file *f = fc_load(p);
  CHECK_ERR(fc_file_tensor(f, 1), "file_tensor: index 1 out of range (the file has 1 tensors)");
  CHECK_ERR(fc_file_tensor(f, -1), "file_tensor: index -1 out of range");
  CHECK(fc_file_name(f, 2) == NULL && strstr(fc_last_error(), "file_name: index 2 out of range"));
  CHECK(fc_file_meta_key(f, 1) == NULL && strstr(fc_last_error(), "(the file has 1 metadata entries)"));
  CHECK(fc_file_meta_value(f, -3) == NULL && strstr(fc_last_error(), "file_meta_value: index -3"));
  CHECK_ERR(fc_file_count(NULL), "file_count: file is NULL");
  CHECK_ERR(fc_file_meta_count(NULL), "file_meta_count: file is NULL");
  CHECK_ERR(fc_file_tensor(NULL, 0), "file_tensor: file is NULL");
  /* a tensor outlives its file */
  fc_tensor *t = fc_file_tensor(f, 0);
  fc_file_close(f);
  fc_file_close(NULL);
  EXPECT(t, FC_FLOAT32, S(1), 0, 1);
  unlink(p);
  fc_release(a);
}

/* Files other writers make: no padding, other padding, metadata last,
 * header order unlike data order, non-0/1 bools. */
TEST(load_accepts_other_writers) {
  const char *p = tmp_path("other.safetensors");
  static const unsigned char data[] = {0, 0, 0x80, 0x3f, 7, 0, 2};
  write_st(p, "{\"b\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[4,7]},"
              "\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
              "\"__metadata__\":{\"k\":\"v\"}}\n\t \r\0\0", data, sizeof data);
  fc_file *f = fc_load(p);
  CHECK(f && fc_file_count(f) == 2 && fc_file_meta_count(f) == 1);
  if (f) {
    CHECK(strcmp(fc_file_name(f, 0), "b") == 0 && strcmp(fc_file_name(f, 1), "a") == 0);
    EXPECT(fc_file_tensor(f, 0), FC_BOOL, S(3), 0, 1, 0, 1);
    fc_tensor *b = fc_file_tensor(f, 0);
    CHECK(((uint8_t *)fc_data_ptr(b))[2] == 1);
    fc_release(b);
    EXPECT0(fc_file_tensor(f, 1), FC_FLOAT32, 0, 1);
  }
  fc_file_close(f);
  write_st(p, "{\"__metadata__\":null}", NULL, 0);
  f = fc_load(p);
  CHECK(f && fc_file_count(f) == 0 && fc_file_meta_count(f) == 0);
  fc_file_close(f);
  unlink(p);
}

/* A file with a bit of everything, for the fuzz tests. */
static unsigned char *fuzz_seed(size_t *n) {
  fc_tensor *a = MK(FC_FLOAT32, S(2, 2), 1, 2, 3, 4), *b = MK(FC_BFLOAT16, S(3), 1, 2, 3);
  fc_tensor *c = MK(FC_INT64, S(1), 5), *e = fc_empty(1, SHP(0), FC_UINT8, CPU);
  const char *p = tmp_path("seed.safetensors");
  fc_save(p, 4, NAMES("a", "b", "c", "e"), TENSORS(a, b, c, e), 1, NAMES("format"), NAMES("pt"));
  unsigned char *bytes = read_bytes(p, n);
  unlink(p);
  fc_release(a), fc_release(b), fc_release(c), fc_release(e);
  return bytes;
}

/* A load must fail with a message or give a file whose every part reads. */
static void load_must_not_crash(const char *p, bool must_fail) {
  fc_set_error("%s", "");
  fc_file *f = fc_load(p);
  if (!f) {
    if (strncmp(fc_last_error(), "load: ", 6) != 0)
      harness_fail(__FILE__, __LINE__, "bad error message '%s'", fc_last_error());
    return;
  }
  if (must_fail) harness_fail(__FILE__, __LINE__, "truncated file loaded");
  for (int i = 0; i < fc_file_count(f); i++) {
    fc_tensor *t = fc_file_tensor(f, i);
    double *vals = malloc(sizeof(double) * (size_t)(t->numel + 1));
    CHECK(fc_file_name(f, i) && fc_to_doubles(t, vals) == 0);
    free(vals);
    fc_release(t);
  }
  for (int i = 0; i < fc_file_meta_count(f); i++)
    CHECK(fc_file_meta_key(f, i) && fc_file_meta_value(f, i));
  fc_file_close(f);
}

TEST(every_truncation_fails_cleanly) {
  size_t n = 0;
  unsigned char *seed = fuzz_seed(&n);
  const char *p = tmp_path("trunc.safetensors");
  for (size_t len = 0; len < n; len++) {
    write_bytes(p, seed, len);
    load_must_not_crash(p, true);
  }
  write_bytes(p, seed, n);
  load_must_not_crash(p, false);
  CHECK(load_rc(p) == 0);
  unlink(p);
  free(seed);
}

TEST(corrupt_headers_fail_cleanly) {
  size_t n = 0;
  unsigned char *seed = fuzz_seed(&n);
  unsigned char *buf = malloc(n);
  size_t hl = 8; /* the length bytes plus the header */
  for (int k = 0; k < 8; k++) hl += (size_t)seed[k] << (8 * k);
  const char *p = tmp_path("flip.safetensors");
  uint64_t state = 0x9e3779b97f4a7c15ull;
  int loaded = 0;
  for (int iter = 0; iter < 3000; iter++) {
    memcpy(buf, seed, n);
    int flips = 1 + iter % 3;
    for (int k = 0; k < flips; k++) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      size_t at = (size_t)(state >> 33) % hl;
      /* a random byte, or a JSON character that changes meaning */
      static const char special[] = "{}[]\",:0123456789-e. \\";
      buf[at] = (state >> 20) & 1 ? (unsigned char)(state >> 24)
                                  : (unsigned char)special[(state >> 24) % (sizeof special - 1)];
    }
    write_bytes(p, buf, n);
    fc_file *f = fc_load(p);
    loaded += f != NULL;
    fc_file_close(f);
    load_must_not_crash(p, false);
  }
  CHECK(loaded > 0 && loaded < 3000); /* both outcomes happen */
  unlink(p);
  free(buf);
  free(seed);
}

/* ---- IDX: hostile headers fail before any allocation ------------------- */

static void write_gz(const char *path, const void *bytes, size_t n) {
  gzFile f = gzopen(path, "wb");
  gzwrite(f, bytes, (unsigned)n);
  gzclose(f);
}

TEST(idx_headers_claiming_too_much) {
  const char *p = tmp_path("big.idx"), *pg = tmp_path("big.idx.gz");
  /* [65536,65536,65536] uint8 and [2^31-1]^8 float64 */
  static const unsigned char huge[] = {0, 0, 0x08, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 2, 3};
  unsigned char over[4 + 32 + 8] = {0, 0, 0x0E, 8};
  for (int d = 0; d < 8; d++) over[4 + 4 * d] = 0x7f, over[5 + 4 * d] = over[6 + 4 * d] = over[7 + 4 * d] = 0xff;
  write_bytes(p, huge, sizeof huge);
  CHECK_ERR(fc_read_idx(p), "is truncated: its header gives shape [65536,65536,65536] of 1-byte elements, more than the 3 bytes of data hold");
  write_gz(pg, huge, sizeof huge);
  CHECK_ERR(fc_read_idx(pg), "can hold compressed");
  write_bytes(p, over, sizeof over);
  CHECK_ERR(fc_read_idx(p), "is truncated: its header gives shape [2147483647,");
  write_gz(pg, over, sizeof over);
  CHECK_ERR(fc_read_idx(pg), "is truncated");
  /* a zero dim needs no data at all */
  static const unsigned char empty[] = {0, 0, 0x0D, 2, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff};
  write_bytes(p, empty, sizeof empty);
  fc_tensor *t = fc_read_idx(p);
  CHECK(t && t->numel == 0 && t->shape[1] == 0x7fffffff);
  fc_release(t);
  unlink(p), unlink(pg);
}

TEST(idx_every_truncation_and_flip_fails_cleanly) {
  /* [2,3] int16 */
  static const unsigned char good[] = {0, 0, 0x0B, 2, 0, 0, 0, 2, 0, 0, 0, 3,
                                       0, 1, 0, 2, 0, 3, 0xff, 0xff, 1, 0, 0x80, 0};
  const char *p = tmp_path("t.idx"), *pg = tmp_path("t.idx.gz");
  for (size_t len = 0; len < sizeof good; len++) {
    write_bytes(p, good, len);
    write_gz(pg, good, len);
    CHECK_ERR(fc_read_idx(p), "read_idx: '");
    CHECK_ERR(fc_read_idx(pg), "read_idx: '");
  }
  write_gz(pg, good, sizeof good);
  EXPECT(fc_read_idx(pg), FC_INT32, S(2, 3), 0, 1, 2, 3, -1, 256, -32768);
  /* a gzip stream cut short */
  size_t n = 0;
  unsigned char *gz = read_bytes(pg, &n);
  for (size_t len = 0; len < n; len++) {
    write_bytes(pg, gz, len);
    fc_tensor *t = fc_read_idx(pg);
    CHECK(!t || t->numel == 6); /* the 8-byte trailer may be cut without losing data */
    if (!t) CHECK(strncmp(fc_last_error(), "read_idx: ", 10) == 0);
    fc_release(t);
  }
  free(gz);
  uint64_t state = 12345;
  unsigned char buf[sizeof good];
  for (int iter = 0; iter < 2000; iter++) {
    memcpy(buf, good, sizeof good);
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    buf[(state >> 33) % 12] = (unsigned char)(state >> 24);
    write_bytes(p, buf, sizeof buf);
    fc_tensor *t = fc_read_idx(p);
    if (!t) CHECK(strncmp(fc_last_error(), "read_idx: ", 10) == 0);
    fc_release(t);
  }
  unlink(p), unlink(pg);
}

/* Skipped (counted as a pass) when dataset-fashion-mnist is not installed. */
TEST(idx_fashion_mnist_values) {
  const char *labels = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
  const char *images = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
  if (access(labels, R_OK) != 0 || access(images, R_OK) != 0) return;
  fc_tensor *y = fc_read_idx(labels), *x = fc_read_idx(images);
  CHECK(y && y->dtype == FC_UINT8 && y->ndim == 1 && y->shape[0] == 10000);
  CHECK(x && x->dtype == FC_UINT8 && x->ndim == 3 && x->shape[0] == 10000 && x->shape[1] == 28 &&
        x->shape[2] == 28);
  if (y) {
    int count[10] = {0}, bad = 0;
    const uint8_t *v = fc_data_ptr(y);
    for (int i = 0; i < 10000; i++) v[i] < 10 ? count[v[i]]++ : bad++;
    CHECK(bad == 0);
    for (int c = 0; c < 10; c++) CHECK(count[c] == 1000); /* the test set is balanced */
  }
  if (x) {
    const uint8_t *v = fc_data_ptr(x);
    int mx = 0;
    for (int64_t i = 0; i < x->numel; i++) mx = v[i] > mx ? v[i] : mx;
    CHECK(mx == 255);
  }
  fc_release(x), fc_release(y);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/fastc_io_XXXXXX");
  if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
  RUN(every_dtype_round_trips);
  RUN(scalars_and_empty_tensors);
  RUN(non_contiguous_inputs_are_written_in_logical_order);
  RUN(metadata_and_odd_names_round_trip);
  RUN(small_file_is_byte_exact);
  RUN(layout_is_aligned_and_gapless);
  RUN(overwrites_atomically);
  RUN(save_errors);
  RUN(load_errors);
  RUN(file_accessor_errors);
  RUN(load_accepts_other_writers);
  RUN(every_truncation_fails_cleanly);
  RUN(corrupt_headers_fail_cleanly);
  RUN(idx_headers_claiming_too_much);
  RUN(idx_every_truncation_and_flip_fails_cleanly);
  RUN(idx_fashion_mnist_values);
  rmdir(dir);
  return harness_report();
}
