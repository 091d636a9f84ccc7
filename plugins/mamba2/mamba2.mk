# Mamba2 (fla's Mamba2ForCausalLM). libmamba2_kernels.la holds its own
# kernels: the SSD scan (on the CPU step by step with checkpoints and in the
# chunked form, on the GPU in chunks), the gated RMSNorm of its output and the
# Δ of its scan, on both backends.
noinst_LTLIBRARIES += plugins/mamba2/libmamba2_kernels.la
plugins_mamba2_libmamba2_kernels_la_SOURCES = plugins/mamba2/mamba2.h plugins/common/recurrence_tasks.h \
	plugins/mamba2/ssd_scan_cpu.c plugins/mamba2/ssd_chunked_cpu.c \
	plugins/mamba2/gated_norm_cpu.c plugins/mamba2/delta_cpu.c plugins/mamba2/columns_cpu.c
plugins_mamba2_libmamba2_kernels_la_CPPFLAGS = $(AM_CPPFLAGS)
plugins_mamba2_libmamba2_kernels_la_LIBADD = -lm
# the CUDA kernels: cudart and the C++ runtime of nvcc's host code, nothing of libflame
MAMBA2_CUDA_SRCS = plugins/mamba2/ssd_chunk.cu plugins/mamba2/mamba2_pointwise_cuda.cu \
	plugins/mamba2/columns_cuda.cu
if HAVE_CUDA
noinst_LTLIBRARIES += plugins/mamba2/libmamba2_cuda.la
plugins_mamba2_libmamba2_cuda_la_SOURCES = $(MAMBA2_CUDA_SRCS) plugins/mamba2/ssd_cuda.h \
	plugins/mamba2/mamba2_pointwise_cuda.h
plugins_mamba2_libmamba2_cuda_la_LIBADD = $(CUDA_LDFLAGS) -lcudart -lstdc++
plugins_mamba2_libmamba2_kernels_la_LIBADD += plugins/mamba2/libmamba2_cuda.la
endif
$(MAMBA2_CUDA_SRCS:.cu=.lo): $(CUDA_KERNEL_HDRS) plugins/mamba2/mamba2.h plugins/mamba2/ssd_cuda.h \
	plugins/mamba2/mamba2_pointwise_cuda.h plugins/gla/gla.h plugins/gla/chunk_common.cuh \
	plugins/common/dw_partials.cuh plugins/common/row_registers.cuh

# libmamba2.la adds the model; mamba2.so is that library as a module, which the tests link too
noinst_LTLIBRARIES += plugins/mamba2/libmamba2.la
plugins_mamba2_libmamba2_la_SOURCES = plugins/mamba2/mamba2.c plugins/mamba2/mamba2_kernels.c \
	plugins/mamba2/mamba2_kernels.h
plugins_mamba2_libmamba2_la_LIBADD = plugins/mamba2/libmamba2_kernels.la plugins/common/liblm.la -lm

plugin_LTLIBRARIES += plugins/mamba2/mamba2.la
plugins_mamba2_mamba2_la_SOURCES =
plugins_mamba2_mamba2_la_LIBADD = plugins/mamba2/libmamba2.la
plugins_mamba2_mamba2_la_LDFLAGS = -module -avoid-version -shared
dist_configs_DATA += configs/mamba2-tiny.ini configs/mamba2-340M.ini configs/mamba2-1B.ini

# its tests: each kernel against a naive double reference and its finite
# differences, threads against one thread, the chunked scan against the steps;
# the model against a naive double forward and its finite differences, the
# presets against fla-org/flame's JSON, the tiny config learning on the CPU;
# (skipping without a GPU) the CUDA kernels and model against the CPU's
MAMBA2_TEST_CPPFLAGS = $(PLUGIN_TEST_CPPFLAGS) -I$(srcdir)/plugins/mamba2
check_PROGRAMS += tests/test_mamba2_kernels tests/test_mamba2_model tests/test_mamba2_cuda \
	tests/test_mamba2_ssd_cuda
C_TESTS += tests/test_mamba2_kernels tests/test_mamba2_model tests/test_mamba2_cuda \
	tests/test_mamba2_ssd_cuda
SHELL_TESTS += tests/test_mamba2_train.sh
tests_test_mamba2_kernels_SOURCES = tests/test_mamba2_kernels.c tests/reference_testing.h
tests_test_mamba2_kernels_CPPFLAGS = $(MAMBA2_TEST_CPPFLAGS)
tests_test_mamba2_kernels_LDADD = plugins/mamba2/libmamba2_kernels.la -lm
tests_test_mamba2_model_SOURCES = tests/test_mamba2_model.c tests/plugin_testing.h tests/preset_testing.h tests/kv_config.h
tests_test_mamba2_model_CPPFLAGS = $(MAMBA2_TEST_CPPFLAGS) -I$(srcdir)/core -DFLAME_CONFIGS_DIR='"$(abs_srcdir)/configs"'
tests_test_mamba2_model_LDADD = plugins/mamba2/libmamba2.la libflame.la -lm
tests_test_mamba2_cuda_SOURCES = tests/test_mamba2_cuda.c tests/testing.h tests/cuda_testing.h \
	tests/plugin_cuda_testing.h tests/kv_config.h
tests_test_mamba2_cuda_CPPFLAGS = $(MAMBA2_TEST_CPPFLAGS)
tests_test_mamba2_cuda_LDADD = plugins/mamba2/libmamba2.la libflame.la -lm
tests_test_mamba2_ssd_cuda_SOURCES = tests/test_mamba2_ssd_cuda.c tests/testing.h tests/cuda_testing.h
tests_test_mamba2_ssd_cuda_CPPFLAGS = $(MAMBA2_TEST_CPPFLAGS)
tests_test_mamba2_ssd_cuda_LDADD = plugins/mamba2/libmamba2_kernels.la libflame.la -lm
