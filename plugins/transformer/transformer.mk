# The transformer (fla's TransformerForCausalLM, Llama-style).
# libtransformer_kernels.la holds its rotary and softmax attention for both
# backends (Based's sliding-window layers link them too); libtransformer.la
# adds the model, and transformer.so is that library as a module, which the
# tests link as well.
noinst_LTLIBRARIES += plugins/transformer/libtransformer_kernels.la plugins/transformer/libtransformer.la
plugins_transformer_libtransformer_kernels_la_SOURCES = plugins/transformer/transformer.h \
	plugins/transformer/rotary_cpu.c plugins/transformer/attention_cpu.c \
	plugins/transformer/attention_decode_cpu.c \
	plugins/transformer/transformer_kernels.c plugins/transformer/transformer_kernels.h
plugins_transformer_libtransformer_kernels_la_LIBADD = -lm
plugins_transformer_libtransformer_la_SOURCES = plugins/transformer/transformer.c
plugins_transformer_libtransformer_la_LIBADD = plugins/transformer/libtransformer_kernels.la \
	plugins/common/liblm.la -lm
# the CUDA kernels: cudart and the C++ runtime of nvcc's host code, nothing of libflame
TRANSFORMER_CUDA_SRCS = plugins/transformer/rotary_cuda.cu plugins/transformer/attention_cuda.cu \
	plugins/transformer/attention_hopper.cu plugins/transformer/attention_decode_cuda.cu
TRANSFORMER_CUDA_HDRS = plugins/transformer/transformer.h plugins/transformer/transformer_cuda.h \
	plugins/transformer/attention_mma.cuh plugins/transformer/attention_math.cuh \
	plugins/transformer/attention_hopper.h
if HAVE_CUDA
noinst_LTLIBRARIES += plugins/transformer/libtransformer_cuda.la
plugins_transformer_libtransformer_cuda_la_SOURCES = $(TRANSFORMER_CUDA_SRCS) $(TRANSFORMER_CUDA_HDRS)
plugins_transformer_libtransformer_cuda_la_LIBADD = $(CUDA_LDFLAGS) -lcudart -lstdc++
plugins_transformer_libtransformer_kernels_la_LIBADD += plugins/transformer/libtransformer_cuda.la
endif
$(TRANSFORMER_CUDA_SRCS:.cu=.lo): $(CUDA_KERNEL_HDRS) $(TRANSFORMER_CUDA_HDRS)

plugin_LTLIBRARIES += plugins/transformer/transformer.la
plugins_transformer_transformer_la_SOURCES =
plugins_transformer_transformer_la_LIBADD = plugins/transformer/libtransformer.la
plugins_transformer_transformer_la_LDFLAGS = -module -avoid-version -shared
dist_configs_DATA += configs/transformer-tiny.ini configs/transformer-340M.ini \
	configs/transformer-1B.ini

# its tests: kernels and model against finite differences and a naive model, a
# tiny one trains, and (skipping without a GPU) CUDA against the CPU
TRANSFORMER_TEST_CPPFLAGS = $(PLUGIN_TEST_CPPFLAGS) -I$(srcdir)/plugins/transformer
check_PROGRAMS += tests/test_transformer_model tests/test_transformer_cuda
C_TESTS += tests/test_transformer_model tests/test_transformer_cuda
tests_test_transformer_model_SOURCES = tests/test_transformer_model.c tests/testing.h \
	tests/plugin_testing.h tests/kv_config.h
tests_test_transformer_model_CPPFLAGS = $(TRANSFORMER_TEST_CPPFLAGS)
tests_test_transformer_model_LDADD = plugins/transformer/libtransformer.la libflame.la -lm
tests_test_transformer_cuda_SOURCES = tests/test_transformer_cuda.c tests/testing.h \
	tests/cuda_testing.h tests/plugin_cuda_testing.h tests/kv_config.h
tests_test_transformer_cuda_CPPFLAGS = $(TRANSFORMER_TEST_CPPFLAGS)
tests_test_transformer_cuda_LDADD = plugins/transformer/libtransformer.la libflame.la -lm
SHELL_TESTS += tests/test_transformer_train.sh
