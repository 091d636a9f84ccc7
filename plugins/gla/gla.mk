# GLA (fla's GLAForCausalLM). libgla_kernels.la holds GLA's kernels for both
# backends (GSA's second pass is the same recurrence and links them too);
# libgla.la adds the model, and gla.so is that library as a module, which the
# tests link as well.
noinst_LTLIBRARIES += plugins/gla/libgla_kernels.la plugins/gla/libgla.la
plugins_gla_libgla_kernels_la_SOURCES = plugins/gla/gla.h plugins/common/recurrence_tasks.h \
	plugins/gla/gla_recurrence_cpu.c plugins/gla/gla_gate_norm_cpu.c plugins/gla/gla_gates_cpu.c \
	plugins/gla/gla_kernels.c plugins/gla/gla_kernels.h
plugins_gla_libgla_kernels_la_LIBADD = -lm
plugins_gla_libgla_la_SOURCES = plugins/gla/gla.c
plugins_gla_libgla_la_LIBADD = plugins/gla/libgla_kernels.la plugins/common/liblm.la -lm
# the CUDA kernels: cudart and the C++ runtime of nvcc's host code, nothing of libflame
GLA_CUDA_SRCS = plugins/gla/gla_chunk.cu plugins/gla/gla_step_cuda.cu plugins/gla/gla_gate_norm_cuda.cu plugins/gla/gla_gates_cuda.cu
if HAVE_CUDA
noinst_LTLIBRARIES += plugins/gla/libgla_cuda.la
plugins_gla_libgla_cuda_la_SOURCES = $(GLA_CUDA_SRCS) plugins/gla/gla_cuda.h plugins/gla/chunk_common.cuh plugins/common/dw_partials.cuh
plugins_gla_libgla_cuda_la_LIBADD = $(CUDA_LDFLAGS) -lcudart -lstdc++
plugins_gla_libgla_kernels_la_LIBADD += plugins/gla/libgla_cuda.la
endif
$(GLA_CUDA_SRCS:.cu=.lo): $(CUDA_KERNEL_HDRS) plugins/gla/gla.h plugins/gla/gla_cuda.h plugins/gla/chunk_common.cuh plugins/common/dw_partials.cuh

plugin_LTLIBRARIES += plugins/gla/gla.la
plugins_gla_gla_la_SOURCES =
plugins_gla_gla_la_LIBADD = plugins/gla/libgla.la
plugins_gla_gla_la_LDFLAGS = -module -avoid-version -shared
dist_configs_DATA += configs/gla-tiny.ini configs/gla-340M.ini

# its tests: the kernels against finite differences and a naive recurrence, the
# model against a naive forward, and (skipping without a GPU) CUDA against the CPU
GLA_TEST_CPPFLAGS = $(PLUGIN_TEST_CPPFLAGS) -I$(srcdir)/plugins/gla
check_PROGRAMS += tests/test_gla_recurrence tests/test_gla_model tests/test_gla_cuda
C_TESTS += tests/test_gla_recurrence tests/test_gla_model tests/test_gla_cuda
tests_test_gla_recurrence_SOURCES = tests/test_gla_recurrence.c tests/reference_testing.h
tests_test_gla_recurrence_CPPFLAGS = $(GLA_TEST_CPPFLAGS)
tests_test_gla_recurrence_LDADD = plugins/gla/libgla.la -lm
tests_test_gla_model_SOURCES = tests/test_gla_model.c tests/plugin_testing.h tests/kv_config.h
tests_test_gla_model_CPPFLAGS = $(GLA_TEST_CPPFLAGS)
tests_test_gla_model_LDADD = plugins/gla/libgla.la libflame.la -lm
tests_test_gla_cuda_SOURCES = tests/test_gla_cuda.c tests/testing.h tests/cuda_testing.h \
	tests/plugin_cuda_testing.h tests/kv_config.h
tests_test_gla_cuda_CPPFLAGS = $(GLA_TEST_CPPFLAGS)
tests_test_gla_cuda_LDADD = plugins/gla/libgla.la libflame.la -lm
