/* config_load_model_file on a .json (a Hugging Face config.json) of arbitrary
 * bytes, through the fake plugin's key maps. */
#define _POSIX_C_SOURCE 200809L
#include "fuzz_config.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char err[512];
    const char *path = fuzz_file(".json", data, size);
    flame_config *cfg = fake_model_config();
    if (config_load_model_file(cfg, path, FAKE_FORMATS, N_FAKE_FORMATS, err, sizeof err) == 0)
        fuzz_config_use(cfg);
    config_destroy(cfg);
    return 0;
}
