# Based (HazyResearch/based): so far its Taylor linear attention, in
# libbased_kernels.la: the CPU reference, and on CUDA the same attention run
# through GLA's chunked kernels (libgla_kernels.la) as plain linear attention.
noinst_LTLIBRARIES += plugins/based/libbased_kernels.la
plugins_based_libbased_kernels_la_SOURCES = plugins/based/based.h plugins/common/recurrence_tasks.h \
	plugins/based/taylor_attention_cpu.c
plugins_based_libbased_kernels_la_CPPFLAGS = $(AM_CPPFLAGS)
plugins_based_libbased_kernels_la_LIBADD = -lm
BASED_CUDA_SRCS = plugins/based/taylor_attention_cuda.cu
if HAVE_CUDA
noinst_LTLIBRARIES += plugins/based/libbased_cuda.la
plugins_based_libbased_cuda_la_SOURCES = $(BASED_CUDA_SRCS) plugins/based/based_cuda.h
plugins_based_libbased_cuda_la_LIBADD = $(CUDA_LDFLAGS) -lcudart -lstdc++
plugins_based_libbased_kernels_la_LIBADD += plugins/based/libbased_cuda.la plugins/gla/libgla_kernels.la
endif
$(BASED_CUDA_SRCS:.cu=.lo): $(CUDA_KERNEL_HDRS) plugins/based/based.h plugins/based/based_cuda.h \
	plugins/gla/gla.h plugins/gla/gla_cuda.h

# its tests: forward against the quadratic form in double, backward against
# that form's finite differences, threads against one thread; (skipping
# without a GPU) the CUDA attention against the CPU's
BASED_TEST_CPPFLAGS = $(PLUGIN_TEST_CPPFLAGS) -I$(srcdir)/plugins/based
check_PROGRAMS += tests/test_based_kernels tests/test_based_cuda
C_TESTS += tests/test_based_kernels tests/test_based_cuda
tests_test_based_kernels_SOURCES = tests/test_based_kernels.c tests/reference_testing.h
tests_test_based_kernels_CPPFLAGS = $(BASED_TEST_CPPFLAGS)
tests_test_based_kernels_LDADD = plugins/based/libbased_kernels.la -lm
tests_test_based_cuda_SOURCES = tests/test_based_cuda.c tests/testing.h tests/cuda_testing.h
tests_test_based_cuda_CPPFLAGS = $(BASED_TEST_CPPFLAGS)
tests_test_based_cuda_LDADD = plugins/based/libbased_kernels.la libflame.la -lm
