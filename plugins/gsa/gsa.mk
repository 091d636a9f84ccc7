# GSA (fla's GSAForCausalLM). libgsa_kernels.la holds GSA's kernels for both
# backends, with GLA's for its second pass.
noinst_LTLIBRARIES += plugins/gsa/libgsa_kernels.la
plugins_gsa_libgsa_kernels_la_SOURCES = plugins/gsa/gsa.h \
	plugins/gsa/gsa_slots_cpu.c plugins/gsa/gsa_pointwise_cpu.c plugins/gsa/gsa_softmax_cpu.c \
	plugins/gsa/gsa_output_norm_cpu.c plugins/gsa/gsa_kernels.c plugins/gsa/gsa_kernels.h
plugins_gsa_libgsa_kernels_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(srcdir)/plugins/gla
plugins_gsa_libgsa_kernels_la_LIBADD = plugins/gla/libgla_kernels.la -lm
GSA_TEST_CPPFLAGS = $(PLUGIN_TEST_CPPFLAGS) -I$(srcdir)/plugins/gsa -I$(srcdir)/plugins/gla

# the first pass on the GPU (gsa_slots_chunk.cu): cudart and the C++ runtime of
# nvcc's host code; it calls GLA's walks (libgla_cuda.la, in libgla_kernels.la)
GSA_SLOTS_CUDA_SRCS = plugins/gsa/gsa_slots_chunk.cu
if HAVE_CUDA
noinst_LTLIBRARIES += plugins/gsa/libgsa_slots_cuda.la
plugins_gsa_libgsa_slots_cuda_la_SOURCES = $(GSA_SLOTS_CUDA_SRCS) plugins/gsa/gsa_cuda.h
plugins_gsa_libgsa_slots_cuda_la_LIBADD = $(CUDA_LDFLAGS) -lcudart -lstdc++
endif
$(GSA_SLOTS_CUDA_SRCS:.cu=.lo): $(CUDA_KERNEL_HDRS) plugins/gsa/gsa.h plugins/gsa/gsa_cuda.h plugins/gla/gla_cuda.h

# its test: CUDA against the CPU reference (skips without CUDA or a GPU)
check_PROGRAMS += tests/test_gsa_slots_cuda
C_TESTS += tests/test_gsa_slots_cuda
tests_test_gsa_slots_cuda_SOURCES = tests/test_gsa_slots_cuda.c tests/testing.h tests/cuda_testing.h
tests_test_gsa_slots_cuda_CPPFLAGS = $(GSA_TEST_CPPFLAGS)
tests_test_gsa_slots_cuda_LDADD =
if HAVE_CUDA
tests_test_gsa_slots_cuda_LDADD += plugins/gsa/libgsa_slots_cuda.la
endif
tests_test_gsa_slots_cuda_LDADD += plugins/gsa/libgsa_kernels.la libflame.la -lm
