# plugins/common: what every decoder-LM plugin links in (a plugin loads alone,
# needing nothing of libflame): the shared [model] options, the arena and batch
# intake (lm_parts.c), the norms and the MLP (lm_block.c), the LM head
# (lm_head.c) and the model base with its one path from tokens to loss (lm_model.c)
noinst_LTLIBRARIES += plugins/common/liblm.la
plugins_common_liblm_la_SOURCES = plugins/common/lm_parts.c plugins/common/lm_parts.h plugins/common/cpu_pointwise.h \
	plugins/common/lm_block.c plugins/common/lm_head.c plugins/common/lm_model.c plugins/common/lm_model.h
plugins_common_liblm_la_LIBADD = -lm
# the model tests of every plugin see the shared parts' headers
PLUGIN_TEST_CPPFLAGS = $(TEST_CPPFLAGS) -I$(srcdir)/plugins/common
