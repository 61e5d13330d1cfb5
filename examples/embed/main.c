/* examples/embed/main.c — fastc from a C host, no Lua: y = relu(x W + b).
 *
 *   make install PREFIX=$HOME/.local
 *   cc examples/embed/main.c $(PKG_CONFIG_PATH=$HOME/.local/lib/pkgconfig \
 *      pkg-config --cflags --libs fastc) -Wl,-rpath,$HOME/.local/lib -o embed && ./embed
 */
#include <fastc.h>
#include <stdio.h>

/* Every fastc call that fails returns NULL (or -1) and leaves a message. */
static fc_tensor *must(fc_tensor *t) {
  if (!t) fprintf(stderr, "fastc: %s\n", fc_last_error());
  return t;
}

int main(void) {
  const fc_device cpu = {FC_CPU, 0};
  fc_manual_seed(0);
  fc_tensor *x = must(fc_randn(2, (int64_t[]){4, 3}, FC_FLOAT32, cpu));
  fc_tensor *w = must(fc_randn(2, (int64_t[]){3, 2}, FC_FLOAT32, cpu));
  fc_tensor *b = must(fc_full(1, (int64_t[]){2}, 0.1, FC_FLOAT32, cpu));
  fc_tensor *xw = must(fc_matmul(x, w));
  fc_tensor *z = must(fc_add(xw, b));
  fc_tensor *y = must(fc_relu(z));
  if (!y) return 1;
  double v[8];
  fc_to_doubles(y, v);
  for (int i = 0; i < 4; i++) printf("%8.4f %8.4f\n", v[2 * i], v[2 * i + 1]);

  /* errors are values, not crashes */
  fc_tensor *bad = fc_matmul(x, x);
  printf("expected error: %s\n", bad ? "none" : fc_last_error());

  fc_release(y), fc_release(z), fc_release(xw), fc_release(b), fc_release(w), fc_release(x);
  return 0;
}
