# GSA (fla's GSAForCausalLM). libgsa_kernels.la holds GSA's kernels for both
# backends, with GLA's for its second pass (and, on the GPU, the walks over
# the states that its first pass shares with GLA).
noinst_LTLIBRARIES += plugins/gsa/libgsa_kernels.la
plugins_gsa_libgsa_kernels_la_SOURCES = plugins/gsa/gsa.h plugins/common/recurrence_tasks.h \
	plugins/gsa/gsa_slots_cpu.c plugins/gsa/gsa_pointwise_cpu.c plugins/gsa/gsa_softmax_cpu.c \
	plugins/gsa/gsa_output_norm_cpu.c plugins/gsa/gsa_kernels.c plugins/gsa/gsa_kernels.h
plugins_gsa_libgsa_kernels_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(srcdir)/plugins/gla
plugins_gsa_libgsa_kernels_la_LIBADD = plugins/gla/libgla_kernels.la -lm
# the CUDA kernels: cudart and the C++ runtime of nvcc's host code, nothing of libflame
GSA_CUDA_SRCS = plugins/gsa/gsa_slots_chunk.cu plugins/gsa/gsa_slots_step.cu \
	plugins/gsa/gsa_pointwise_cuda.cu plugins/gsa/gsa_softmax_cuda.cu plugins/gsa/gsa_output_norm_cuda.cu
if HAVE_CUDA
noinst_LTLIBRARIES += plugins/gsa/libgsa_cuda.la
plugins_gsa_libgsa_cuda_la_SOURCES = $(GSA_CUDA_SRCS) plugins/gsa/gsa_cuda.h
plugins_gsa_libgsa_cuda_la_LIBADD = $(CUDA_LDFLAGS) -lcudart -lstdc++
plugins_gsa_libgsa_kernels_la_LIBADD += plugins/gsa/libgsa_cuda.la
endif
$(GSA_CUDA_SRCS:.cu=.lo): $(CUDA_KERNEL_HDRS) plugins/gsa/gsa.h plugins/gsa/gsa_cuda.h plugins/gla/gla_cuda.h plugins/gla/chunk_common.cuh plugins/common/dw_partials.cuh plugins/common/row_registers.cuh

# libgsa.la adds the model; gsa.so is that library as a module, which the tests link too
noinst_LTLIBRARIES += plugins/gsa/libgsa.la
plugins_gsa_libgsa_la_SOURCES = plugins/gsa/gsa.c
plugins_gsa_libgsa_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(srcdir)/plugins/gla
plugins_gsa_libgsa_la_LIBADD = plugins/gsa/libgsa_kernels.la plugins/common/liblm.la -lm

plugin_LTLIBRARIES += plugins/gsa/gsa.la
plugins_gsa_gsa_la_SOURCES =
plugins_gsa_gsa_la_LIBADD = plugins/gsa/libgsa.la
plugins_gsa_gsa_la_LDFLAGS = -module -avoid-version -shared
dist_configs_DATA += configs/gsa-tiny.ini configs/gsa-340M.ini configs/gsa-1B.ini

# its tests: the kernels and the model against naive double references and
# their finite differences, the tiny config learning on the CPU, and
# (skipping without a GPU) the CUDA kernels and model against the CPU's
GSA_TEST_CPPFLAGS = $(PLUGIN_TEST_CPPFLAGS) -I$(srcdir)/plugins/gsa -I$(srcdir)/plugins/gla
check_PROGRAMS += tests/test_gsa_kernels tests/test_gsa_model tests/test_gsa_cuda tests/test_gsa_slots_cuda
C_TESTS += tests/test_gsa_kernels tests/test_gsa_model tests/test_gsa_cuda tests/test_gsa_slots_cuda
SHELL_TESTS += tests/test_gsa_train.sh
tests_test_gsa_kernels_SOURCES = tests/test_gsa_kernels.c tests/reference_testing.h
tests_test_gsa_kernels_CPPFLAGS = $(GSA_TEST_CPPFLAGS)
tests_test_gsa_kernels_LDADD = plugins/gsa/libgsa_kernels.la -lm
tests_test_gsa_model_SOURCES = tests/test_gsa_model.c tests/plugin_testing.h tests/preset_testing.h tests/kv_config.h
tests_test_gsa_model_CPPFLAGS = $(GSA_TEST_CPPFLAGS) -I$(srcdir)/core -DFLAME_CONFIGS_DIR='"$(abs_srcdir)/configs"'
tests_test_gsa_model_LDADD = plugins/gsa/libgsa.la libflame.la -lm
tests_test_gsa_cuda_SOURCES = tests/test_gsa_cuda.c tests/testing.h tests/cuda_testing.h \
	tests/plugin_cuda_testing.h tests/kv_config.h
tests_test_gsa_cuda_CPPFLAGS = $(GSA_TEST_CPPFLAGS)
tests_test_gsa_cuda_LDADD = plugins/gsa/libgsa.la libflame.la -lm
tests_test_gsa_slots_cuda_SOURCES = tests/test_gsa_slots_cuda.c tests/testing.h tests/cuda_testing.h
tests_test_gsa_slots_cuda_CPPFLAGS = $(GSA_TEST_CPPFLAGS)
tests_test_gsa_slots_cuda_LDADD = plugins/gsa/libgsa_kernels.la libflame.la -lm
