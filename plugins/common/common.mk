# plugins/common: what every decoder-LM plugin links in (a plugin loads alone,
# needing nothing of libflame): the shared [model] options, batch intake, the
# SwiGLU MLP, the LM head and the model base with its one path from tokens to loss
noinst_LTLIBRARIES += plugins/common/liblm.la
plugins_common_liblm_la_SOURCES = plugins/common/lm_parts.c plugins/common/lm_parts.h plugins/common/cpu_pointwise.h \
	plugins/common/lm_model.c plugins/common/lm_model.h
plugins_common_liblm_la_LIBADD = -lm
# the model tests of every plugin see the shared parts' headers
PLUGIN_TEST_CPPFLAGS = $(TEST_CPPFLAGS) -I$(srcdir)/plugins/common
