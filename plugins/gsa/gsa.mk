# GSA (fla's GSAForCausalLM). libgsa_kernels.la holds GSA's kernels for both
# backends, with GLA's for its second pass.
noinst_LTLIBRARIES += plugins/gsa/libgsa_kernels.la
plugins_gsa_libgsa_kernels_la_SOURCES = plugins/gsa/gsa.h \
	plugins/gsa/gsa_slots_cpu.c plugins/gsa/gsa_pointwise_cpu.c plugins/gsa/gsa_softmax_cpu.c \
	plugins/gsa/gsa_output_norm_cpu.c plugins/gsa/gsa_kernels.c plugins/gsa/gsa_kernels.h
plugins_gsa_libgsa_kernels_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(srcdir)/plugins/gla
plugins_gsa_libgsa_kernels_la_LIBADD = plugins/gla/libgla_kernels.la -lm
GSA_TEST_CPPFLAGS = $(PLUGIN_TEST_CPPFLAGS) -I$(srcdir)/plugins/gsa -I$(srcdir)/plugins/gla
