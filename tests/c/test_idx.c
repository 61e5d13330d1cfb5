/* test_idx.c — IDX reading: files this test writes (plain and gzipped, every
 * type code), malformed files, and Fashion-MNIST when the package is there. */
#include "harness.h"
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

static char path[64];

static void write_file(const void *bytes, size_t n, int gz) {
  snprintf(path, sizeof path, "/tmp/fastc_idx_%d%s", (int)getpid(), gz ? ".gz" : "");
  if (gz) {
    gzFile f = gzopen(path, "wb");
    gzwrite(f, bytes, (unsigned)n);
    gzclose(f);
  } else {
    FILE *f = fopen(path, "wb");
    fwrite(bytes, 1, n, f);
    fclose(f);
  }
}

TEST(every_type_plain_and_gzipped) {
  /* [2,3] uint8 */
  const uint8_t u8[] = {0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 250, 5, 6};
  /* [2] int16, big endian: -2, 300 */
  const uint8_t i16[] = {0, 0, 0x0B, 1, 0, 0, 0, 2, 0xff, 0xfe, 0x01, 0x2c};
  /* [2] int8: -5, 7 */
  const uint8_t i8[] = {0, 0, 0x09, 1, 0, 0, 0, 2, 0xfb, 0x07};
  /* [1] float32 1.5 = 0x3fc00000; [1] float64 -2.25 = 0xc002000000000000; [1] int32 70000 */
  const uint8_t f32[] = {0, 0, 0x0D, 1, 0, 0, 0, 1, 0x3f, 0xc0, 0, 0};
  const uint8_t f64[] = {0, 0, 0x0E, 1, 0, 0, 0, 1, 0xc0, 0x02, 0, 0, 0, 0, 0, 0};
  const uint8_t i32[] = {0, 0, 0x0C, 1, 0, 0, 0, 1, 0, 0x01, 0x11, 0x70};
  for (int gz = 0; gz < 2; gz++) {
    write_file(u8, sizeof u8, gz);
    EXPECT(fc_read_idx(path), FC_UINT8, S(2, 3), 0, 1, 2, 3, 250, 5, 6);
    write_file(i16, sizeof i16, gz);
    EXPECT(fc_read_idx(path), FC_INT32, S(2), 0, -2, 300);
    write_file(i8, sizeof i8, gz);
    EXPECT(fc_read_idx(path), FC_INT32, S(2), 0, -5, 7);
    write_file(f32, sizeof f32, gz);
    EXPECT(fc_read_idx(path), FC_FLOAT32, S(1), 0, 1.5);
    write_file(f64, sizeof f64, gz);
    EXPECT(fc_read_idx(path), FC_FLOAT64, S(1), 0, -2.25);
    write_file(i32, sizeof i32, gz);
    EXPECT(fc_read_idx(path), FC_INT32, S(1), 0, 70000);
    unlink(path);
  }
}

TEST(malformed_files) {
  const uint8_t truncated[] = {0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2};
  const uint8_t bad_magic[] = {1, 0, 0x08, 1, 0, 0, 0, 1, 5};
  const uint8_t bad_type[] = {0, 0, 0x42, 1, 0, 0, 0, 1, 5};
  const uint8_t short_head[] = {0, 0, 0x08, 3, 0, 0};
  write_file(truncated, sizeof truncated, 1);
  CHECK_ERR(fc_read_idx(path), "is truncated: expected 6 elements of 1 bytes");
  write_file(bad_magic, sizeof bad_magic, 0);
  CHECK_ERR(fc_read_idx(path), "is not an IDX file (bad magic)");
  write_file(bad_type, sizeof bad_type, 0);
  CHECK_ERR(fc_read_idx(path), "unsupported type code 0x42");
  write_file(short_head, sizeof short_head, 0);
  CHECK_ERR(fc_read_idx(path), "truncated in its header");
  unlink(path);
  CHECK_ERR(fc_read_idx("/nonexistent/x.idx"), "read_idx: cannot open '/nonexistent/x.idx'");
}

/* Skipped (counted as a pass) when dataset-fashion-mnist is not installed. */
TEST(fashion_mnist_when_present) {
  const char *labels = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
  if (access(labels, R_OK) != 0) return;
  fc_tensor *y = fc_read_idx(labels);
  CHECK(y && y->dtype == FC_UINT8 && y->ndim == 1 && y->shape[0] == 10000);
  fc_tensor *mx = y ? fc_amax(y, 0, NULL, 0) : NULL;
  double m = -1;
  if (mx) fc_item(mx, &m);
  CHECK(m == 9);
  fc_tensor *x = fc_read_idx("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
  CHECK(x && x->ndim == 3 && x->shape[0] == 10000 && x->shape[1] == 28 && x->shape[2] == 28);
  fc_release(mx), fc_release(y), fc_release(x);
}

int main(void) {
  RUN(every_type_plain_and_gzipped);
  RUN(malformed_files);
  RUN(fashion_mnist_when_present);
  return harness_report();
}
