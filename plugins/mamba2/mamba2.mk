# Mamba2 (fla's Mamba2ForCausalLM): for now only its own kernels, the SSD
# scan (on the CPU step by step with checkpoints and in the chunked form, on
# the GPU in chunks), the gated RMSNorm of its output and the Δ of its scan.
noinst_LTLIBRARIES += plugins/mamba2/libmamba2_kernels.la
plugins_mamba2_libmamba2_kernels_la_SOURCES = plugins/mamba2/mamba2.h plugins/common/recurrence_tasks.h \
	plugins/mamba2/ssd_scan_cpu.c plugins/mamba2/ssd_chunked_cpu.c \
	plugins/mamba2/gated_norm_cpu.c plugins/mamba2/delta_cpu.c
plugins_mamba2_libmamba2_kernels_la_CPPFLAGS = $(AM_CPPFLAGS)
plugins_mamba2_libmamba2_kernels_la_LIBADD = -lm

# its tests: each kernel against a naive double reference and its finite
# differences, threads against one thread, the chunked scan against the steps
MAMBA2_TEST_CPPFLAGS = $(PLUGIN_TEST_CPPFLAGS) -I$(srcdir)/plugins/mamba2
check_PROGRAMS += tests/test_mamba2_kernels
C_TESTS += tests/test_mamba2_kernels
tests_test_mamba2_kernels_SOURCES = tests/test_mamba2_kernels.c tests/reference_testing.h
tests_test_mamba2_kernels_CPPFLAGS = $(MAMBA2_TEST_CPPFLAGS)
tests_test_mamba2_kernels_LDADD = plugins/mamba2/libmamba2_kernels.la -lm

# the SSD scan on the GPU, in chunks (ssd_chunk.cu): cudart and the C++
# runtime of nvcc's host code, nothing of libflame
MAMBA2_CUDA_SRCS = plugins/mamba2/ssd_chunk.cu
if HAVE_CUDA
noinst_LTLIBRARIES += plugins/mamba2/libmamba2_cuda.la
plugins_mamba2_libmamba2_cuda_la_SOURCES = $(MAMBA2_CUDA_SRCS) plugins/mamba2/ssd_cuda.h
plugins_mamba2_libmamba2_cuda_la_LIBADD = $(CUDA_LDFLAGS) -lcudart -lstdc++
plugins_mamba2_libmamba2_kernels_la_LIBADD += plugins/mamba2/libmamba2_cuda.la
endif
$(MAMBA2_CUDA_SRCS:.cu=.lo): $(CUDA_KERNEL_HDRS) plugins/mamba2/mamba2.h plugins/mamba2/ssd_cuda.h plugins/gla/gla.h plugins/gla/chunk_common.cuh

# (skipping without a GPU) the CUDA scan against the CPU's
check_PROGRAMS += tests/test_mamba2_ssd_cuda
C_TESTS += tests/test_mamba2_ssd_cuda
tests_test_mamba2_ssd_cuda_SOURCES = tests/test_mamba2_ssd_cuda.c tests/testing.h tests/cuda_testing.h
tests_test_mamba2_ssd_cuda_CPPFLAGS = $(MAMBA2_TEST_CPPFLAGS)
tests_test_mamba2_ssd_cuda_LDADD = plugins/mamba2/libmamba2_kernels.la libflame.la -lm
