/* config_load_job_file and config_peek_job_file on arbitrary bytes, in a file
 * named with JOB_FILE_SUFFIX, which picks the reader (INI or TOML). */
#include "fuzz_config.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char err[512], peek[256];
    const char *path = fuzz_file(JOB_FILE_SUFFIX, data, size);
    config_peek_job_file(path, "job", "arch", peek, sizeof peek);
    flame_config *cfg = fake_model_config();
    if (config_load_job_file(cfg, path, err, sizeof err) == 0)
        fuzz_config_use(cfg);
    config_destroy(cfg);
    return 0;
}
