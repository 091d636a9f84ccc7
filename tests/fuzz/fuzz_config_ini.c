/* The job INI through config_load_job_file. */
#define _POSIX_C_SOURCE 200809L
#define JOB_FILE_SUFFIX ".ini"
#include "fuzz_job_file.h"
