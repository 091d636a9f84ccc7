/* config_load_job_file (the job INI) and config_peek_job_file on arbitrary bytes. */
#define _POSIX_C_SOURCE 200809L
#include "fuzz_config.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char err[512], peek[256];
    const char *path = fuzz_file(".ini", data, size);
    config_peek_job_file(path, "job", "arch", peek, sizeof peek);
    flame_config *cfg = fake_model_config();
    if (config_load_job_file(cfg, path, err, sizeof err) == 0)
        fuzz_config_use(cfg);
    config_destroy(cfg);
    return 0;
}
