# fastc — one make builds the library, fastlua and the Lua FFI declarations.
#   make            libfastc.so, libfastc.a, fastlua
#   make test       C tests then busted specs; ends with "N passed, N failed"
#   make asan       the same suite under AddressSanitizer + UBSan
#   make bench      fastc against PyTorch, ratios into bench/RESULTS.md
#   make install PREFIX=/usr/local
PREFIX ?= /usr/local
BUILD ?= build
CC ?= cc
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
BLAS_DIR ?= /usr/lib/$(MULTIARCH)/openblas-openmp
OPT ?= -O3 -march=x86-64-v3
SAN ?=
# -fno-trapping-math: fastc never reads the FP exception flags, and with trapping
# math GCC will not if-convert float compares, so loops like exp_f32 stay scalar.
CFLAGS_BASE = -std=c11 -D_GNU_SOURCE -fPIC -fopenmp -fno-math-errno -fno-trapping-math -Wall -Wextra -Werror \
  -Wno-unused-parameter -Wno-type-limits -Wno-missing-field-initializers -Iruntime -I/usr/include/luajit-2.1 $(OPT) $(SAN)
LIBS = -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR) -lopenblas -ldnnl -lcjson -lz -lturbojpeg -ljpeg -lstb -lm -lpthread -ldl
LUAJIT_A ?= /usr/lib/$(MULTIARCH)/libluajit-5.1.a

SRCS := $(filter-out runtime/fastlua.c,$(wildcard runtime/*.c))
OBJS := $(SRCS:runtime/%.c=$(BUILD)/obj/%.o)
TESTS := $(patsubst tests/c/%.c,$(BUILD)/tests/%,$(filter-out tests/c/harness.c,$(wildcard tests/c/test_*.c)))
CDEF := lua/fastc/cdef.lua

.PHONY: all deps test asan tsan bench install clean cuda test-gpu
all: deps $(BUILD)/libfastc.so $(BUILD)/libfastc.a $(BUILD)/fastlua $(CDEF)

deps:
	@sh tools/deps.sh

$(BUILD)/obj/%.o: runtime/%.c $(wildcard runtime/*.h)
	@mkdir -p $(dir $@)
	@echo '  CC      $<'
	@$(CC) $(CFLAGS_BASE) -c $< -o $@

# Where backend.c looks for libfastc_cuda.so after its own directory.
$(BUILD)/obj/backend.o: CFLAGS_BASE += -DFASTC_BUILD_DIR='"$(abspath $(BUILD))"' -DFASTC_LIB_DIR='"$(PREFIX)/lib"'

$(BUILD)/libfastc.a: $(OBJS)
	@rm -f $@
	@ar rcs $@ $^

# -z nodelete: LuaJIT unloads ffi.load()ed libraries at exit while OpenMP
# worker threads still run in them; keeping the library mapped avoids a crash.
$(BUILD)/libfastc.so: $(OBJS)
	@echo '  LD      $@'
	@$(CC) -shared -fopenmp $(SAN) -Wl,-z,nodelete -o $@ $^ $(LIBS)

# fastlua carries LuaJIT and all of libfastc; -rdynamic lets ffi.C see fc_*.
LINK_FASTLUA = $(CC) $(CFLAGS_BASE) -DFASTC_LUA_DIR='"$(PREFIX)/share/fastc/lua"' -rdynamic \
  runtime/fastlua.c -Wl,--whole-archive $(BUILD)/libfastc.a -Wl,--no-whole-archive $(LUAJIT_A) -ledit $(LIBS)
$(BUILD)/fastlua: runtime/fastlua.c $(BUILD)/libfastc.a
	@echo '  LD      $@'
	@$(LINK_FASTLUA) -o $@

# The FFI declarations are the public header itself, preprocessed.
$(CDEF): runtime/fastc.h tools/gen_cdef.sh
	@sh tools/gen_cdef.sh runtime/fastc.h > $@.tmp && mv $@.tmp $@

$(BUILD)/tests/%: tests/c/%.c tests/c/harness.c tests/c/harness.h $(BUILD)/libfastc.a
	@mkdir -p $(dir $@)
	@echo '  LD      $@'
	@$(CC) $(CFLAGS_BASE) -Itests/c -o $@ $< tests/c/harness.c $(BUILD)/libfastc.a $(LIBS)

# A host-memory stand-in for the CUDA plugin, so the core's CUDA paths are
# tested without a GPU (test_cuda_dispatch, cuda_spec.lua).
FAKE_CUDA := $(BUILD)/tests/libfake_cuda.so
$(FAKE_CUDA): tests/c/fake_cuda_plugin.c runtime/cuda/caching_alloc.c runtime/cuda/caching_alloc.h \
  runtime/backend.h runtime/fastc.h
	@mkdir -p $(dir $@)
	@echo '  LD      $@'
	@$(CC) $(CFLAGS_BASE) -shared -fvisibility=hidden -o $@ tests/c/fake_cuda_plugin.c \
	  runtime/cuda/caching_alloc.c -lm -lpthread

test: all $(TESTS) $(FAKE_CUDA)
	@sh tools/run_tests.sh $(BUILD)

# ---- the CUDA plugin ---------------------------------------------------------
# libfastc_cuda.so, built only where nvcc is on PATH (make NVCC= skips it).
# The core never links it: backend.c dlopens it on first use of a cuda device.
NVCC ?= $(shell command -v nvcc 2>/dev/null)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(realpath $(NVCC)))
CUDA_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_89,code=sm_89 \
  -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
NVCCFLAGS ?= -std=c++17 -O3 $(CUDA_ARCH) -Xcompiler -fPIC,-fvisibility=hidden,-Wall -Iruntime -Iruntime/cuda
CUDA_OBJS := $(patsubst runtime/cuda/%.cu,$(BUILD)/cuda/%.o,$(wildcard runtime/cuda/*.cu)) $(BUILD)/cuda/caching_alloc.o
CUDA_LIB := $(BUILD)/libfastc_cuda.so

ifneq ($(NVCC),)
all: cuda
endif

cuda: $(CUDA_LIB)

$(BUILD)/cuda/%.o: runtime/cuda/%.cu runtime/cuda/common.cuh runtime/cuda/caching_alloc.h runtime/backend.h runtime/fastc.h
	@mkdir -p $(dir $@)
	@echo '  NVCC    $<'
	@$(NVCC) $(NVCCFLAGS) -c $< -o $@

# the allocator's bookkeeping is plain C, shared with tests/c/test_cuda_alloc.c
$(BUILD)/cuda/caching_alloc.o: runtime/cuda/caching_alloc.c runtime/cuda/caching_alloc.h runtime/fastc.h
	@mkdir -p $(dir $@)
	@echo '  CC      $<'
	@$(CC) -std=c11 -D_GNU_SOURCE -fPIC -fvisibility=hidden -O2 -Wall -Wextra -Werror -Iruntime -c $< -o $@

# cudart is linked statically and every library symbol hidden: the plugin
# exports fastc_cuda_plugin_init only, and needs cuBLAS, cuDNN and a driver.
$(CUDA_LIB): $(CUDA_OBJS)
	@if [ -z "$(NVCC)" ]; then echo "cuda: nvcc not found on PATH; install the CUDA toolkit" >&2; exit 1; fi
	@echo '  LD      $@'
	@$(NVCC) -shared $(CUDA_ARCH) -o $@ $(CUDA_OBJS) -Xlinker --exclude-libs,ALL \
	  -L$(CUDA_HOME)/lib64 -Xlinker -rpath,$(CUDA_HOME)/lib64 -lcublas -lcudnn -lpthread

# Every op on the GPU against the CPU. Without a usable GPU the device cases
# print "skipped" with the reason; FASTC_REQUIRE_GPU=1 makes that a failure.
test-gpu: all $(CUDA_LIB)
	@FASTC_REQUIRE_GPU=$${FASTC_REQUIRE_GPU:-0} FASTC_IN_TEST_GPU=1 $(BUILD)/fastlua tools/busted.lua \
	  -o tools/busted_summary.lua tests/lua/cuda_spec.lua

# fastc on the GPU against cuBLAS and PyTorch eager (bench/gpu.sh); exits 2
# with the reason where there is no GPU or no PyTorch with CUDA.
.PHONY: bench-gpu
bench-gpu: all $(CUDA_LIB)
	@sh bench/gpu.sh

asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" test

# The data loader's tests under ThreadSanitizer (in build-tsan/).
TSAN_TESTS = test_loader test_image
tsan:
	$(MAKE) BUILD=build-tsan OPT="-O1 -g -fno-omit-frame-pointer" SAN="-fsanitize=thread" \
	  $(TSAN_TESTS:%=build-tsan/tests/%)
	@for t in $(TSAN_TESTS); do TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
	  build-tsan/tests/$$t || exit 1; done

bench: all
	@sh bench/run.sh

install: all
	install -d $(PREFIX)/lib $(PREFIX)/include $(PREFIX)/bin $(PREFIX)/lib/pkgconfig \
	  $(PREFIX)/share/fastc/lua/fastc $(PREFIX)/share/fastc/lua/fastc/callback
	install -m 644 $(BUILD)/libfastc.a $(PREFIX)/lib/
	install -m 755 $(BUILD)/libfastc.so $(PREFIX)/lib/
	install -m 644 runtime/fastc.h $(PREFIX)/include/
	@# fastlua knows where its Lua package lives: rebuilt for this PREFIX
	$(LINK_FASTLUA) -o $(BUILD)/fastlua.install
	install -m 755 $(BUILD)/fastlua.install $(PREFIX)/bin/fastlua
	@# the whole Lua package, subfolders (data/, callback/, vision/ ...) included
	cd lua && find fastc -name '*.lua' -exec install -D -m 644 {} $(PREFIX)/share/fastc/lua/{} \;
	if [ -f $(CUDA_LIB) ]; then install -m 755 $(CUDA_LIB) $(PREFIX)/lib/; fi
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@BLAS_DIR@|$(BLAS_DIR)|' tools/fastc.pc.in \
	  > $(PREFIX)/lib/pkgconfig/fastc.pc

clean:
	rm -rf build build-asan build-tsan $(CDEF)
