# GPT-2 and GPT-3 (flash-attn's GPTLMHeadModel). The model only: LayerNorm,
# GELU and the position table are in the op table and lm_model, attention is
# the transformer's kernels (libtransformer_kernels.la); gpt.so is the model
# as a module, which the tests link as well.
noinst_LTLIBRARIES += plugins/gpt/libgpt.la
plugins_gpt_libgpt_la_SOURCES = plugins/gpt/gpt.c
plugins_gpt_libgpt_la_LIBADD = plugins/transformer/libtransformer_kernels.la plugins/common/liblm.la -lm

plugin_LTLIBRARIES += plugins/gpt/gpt.la
plugins_gpt_gpt_la_SOURCES =
plugins_gpt_gpt_la_LIBADD = plugins/gpt/libgpt.la
plugins_gpt_gpt_la_LDFLAGS = -module -avoid-version -shared
dist_configs_DATA += configs/gpt-tiny.ini configs/gpt2l.ini configs/gpt2m.ini configs/gpt2s.ini \
	configs/gpt2xl.ini configs/gpt3-2.7B-8k.ini configs/gpt3-2.7B-hdim128-rotary-8k.ini \
	configs/gpt3-2.7B-hdim128-rotary.ini configs/gpt3-2.7B-hdim128.ini \
	configs/gpt3-2.7B-rotary-8k.ini configs/gpt3-2.7B-rotary.ini configs/gpt3-2.7B.ini \
	configs/gpt3l-8k.ini configs/gpt3l-rotary-8k.ini configs/gpt3l-rotary.ini \
	configs/gpt3l.ini configs/gpt3m-8k.ini configs/gpt3m-rotary-8k.ini \
	configs/gpt3m-rotary.ini configs/gpt3m.ini configs/gpt3s-8k.ini \
	configs/gpt3s-rotary-8k.ini configs/gpt3s-rotary.ini configs/gpt3s.ini \
	configs/gpt3xl-8k.ini configs/gpt3xl-rotary-8k.ini configs/gpt3xl-rotary.ini \
	configs/gpt3xl.ini

# its tests: the model against a naive double forward and finite differences,
# GPT-2 small's shape, a tiny GPT learning on the CPU; (skipping without a
# GPU) the model on CUDA against the CPU
GPT_TEST_CPPFLAGS = $(PLUGIN_TEST_CPPFLAGS) -I$(srcdir)/plugins/gpt -I$(srcdir)/plugins/transformer
check_PROGRAMS += tests/test_gpt_model tests/test_gpt_cuda
C_TESTS += tests/test_gpt_model tests/test_gpt_cuda
tests_test_gpt_cuda_SOURCES = tests/test_gpt_cuda.c tests/testing.h tests/cuda_testing.h \
	tests/plugin_cuda_testing.h tests/kv_config.h
tests_test_gpt_cuda_CPPFLAGS = $(GPT_TEST_CPPFLAGS)
tests_test_gpt_cuda_LDADD = plugins/gpt/libgpt.la libflame.la -lm
tests_test_gpt_model_SOURCES = tests/test_gpt_model.c tests/testing.h tests/plugin_testing.h \
	tests/kv_config.h
tests_test_gpt_model_CPPFLAGS = $(GPT_TEST_CPPFLAGS) -I$(srcdir)/core -DFLAME_CONFIGS_DIR='"$(abs_srcdir)/configs"'
tests_test_gpt_model_LDADD = plugins/gpt/libgpt.la libflame.la -lm
SHELL_TESTS += tests/test_gpt_train.sh tests/test_gpt_convert.sh
