# Based (HazyResearch/based): so far only the CPU reference of its Taylor
# linear attention, in libbased_kernels.la.
noinst_LTLIBRARIES += plugins/based/libbased_kernels.la
plugins_based_libbased_kernels_la_SOURCES = plugins/based/based.h plugins/common/recurrence_tasks.h \
	plugins/based/taylor_attention_cpu.c
plugins_based_libbased_kernels_la_CPPFLAGS = $(AM_CPPFLAGS)
plugins_based_libbased_kernels_la_LIBADD = -lm
