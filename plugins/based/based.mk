# Based (HazyResearch/based's GPTLMHeadModel). libbased_kernels.la holds its
# Taylor linear attention: the CPU reference, and on CUDA the same attention
# run through GLA's chunked kernels (libgla_kernels.la) as plain linear
# attention. libbased.la adds the model and its kernel tables, with the
# transformer's rotary and attention kernels for the sliding-window layers;
# based.so is that library as a module, which the tests link as well.
noinst_LTLIBRARIES += plugins/based/libbased_kernels.la plugins/based/libbased.la
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

plugins_based_libbased_la_SOURCES = plugins/based/based.c plugins/based/based_kernels.c \
	plugins/based/based_kernels.h
plugins_based_libbased_la_LIBADD = plugins/based/libbased_kernels.la \
	plugins/transformer/libtransformer_kernels.la plugins/common/liblm.la -lm

plugin_LTLIBRARIES += plugins/based/based.la
plugins_based_based_la_SOURCES =
plugins_based_based_la_LIBADD = plugins/based/libbased.la
plugins_based_based_la_LDFLAGS = -module -avoid-version -shared

# its tests: the Taylor attention's forward against the quadratic form in
# double, its backward against that form's finite differences, threads
# against one thread; (skipping without a GPU) the CUDA attention against the
# CPU's, and the whole model on both; the model against a naive double forward and its finite differences,
# the presets' parameter counts, the tiny config learning on the CPU
BASED_TEST_CPPFLAGS = $(PLUGIN_TEST_CPPFLAGS) -I$(srcdir)/plugins/based
check_PROGRAMS += tests/test_based_kernels tests/test_based_cuda tests/test_based_model
C_TESTS += tests/test_based_kernels tests/test_based_cuda tests/test_based_model
SHELL_TESTS += tests/test_based_train.sh tests/test_based_convert.sh
tests_test_based_kernels_SOURCES = tests/test_based_kernels.c tests/reference_testing.h
tests_test_based_kernels_CPPFLAGS = $(BASED_TEST_CPPFLAGS)
tests_test_based_kernels_LDADD = plugins/based/libbased_kernels.la -lm
tests_test_based_cuda_SOURCES = tests/test_based_cuda.c tests/testing.h tests/cuda_testing.h \
	tests/plugin_cuda_testing.h tests/kv_config.h
tests_test_based_cuda_CPPFLAGS = $(BASED_TEST_CPPFLAGS)
tests_test_based_cuda_LDADD = plugins/based/libbased.la libflame.la -lm
tests_test_based_model_SOURCES = tests/test_based_model.c tests/plugin_testing.h tests/preset_testing.h \
	tests/kv_config.h
tests_test_based_model_CPPFLAGS = $(BASED_TEST_CPPFLAGS) -I$(srcdir)/core -DFLAME_CONFIGS_DIR='"$(abs_srcdir)/configs"'
tests_test_based_model_LDADD = plugins/based/libbased.la libflame.la -lm
dist_configs_DATA += configs/based-tiny.ini configs/based-360m.ini configs/based-1b.ini
# (skipping without torch and a HazyResearch/based checkout in BASED_PATH)
# logits parity with HazyResearch's GPTLMHeadModel; its model in PyTorch for
# the side-by-side benchmark, both through the flash-attn stand-ins
PYTHON_TESTS += tests/based_logits_parity.py
EXTRA_DIST += tools/hazy_based.py tools/bench_based_torch.py
