# Based (HazyResearch/based): so far only the CPU reference of its Taylor
# linear attention, in libbased_kernels.la, and its test.
noinst_LTLIBRARIES += plugins/based/libbased_kernels.la
plugins_based_libbased_kernels_la_SOURCES = plugins/based/based.h plugins/common/recurrence_tasks.h \
	plugins/based/taylor_attention_cpu.c
plugins_based_libbased_kernels_la_CPPFLAGS = $(AM_CPPFLAGS)
plugins_based_libbased_kernels_la_LIBADD = -lm

# its test: forward against the quadratic form in double, backward against
# that form's finite differences, threads against one thread
BASED_TEST_CPPFLAGS = $(PLUGIN_TEST_CPPFLAGS) -I$(srcdir)/plugins/based
check_PROGRAMS += tests/test_based_kernels
C_TESTS += tests/test_based_kernels
tests_test_based_kernels_SOURCES = tests/test_based_kernels.c tests/reference_testing.h
tests_test_based_kernels_CPPFLAGS = $(BASED_TEST_CPPFLAGS)
tests_test_based_kernels_LDADD = plugins/based/libbased_kernels.la -lm
