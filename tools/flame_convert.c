/* flame-convert: weights in and out of flame.
 *   inspect  lists the tensors of a safetensors file, a checkpoint or an HF folder
 *   to-hf    a flame checkpoint into a Hugging Face / fla folder
 *   from-hf  a Hugging Face / fla folder into a flame seed checkpoint
 * Exit statuses as every flame tool's (core/errors.h). */
#include <stdio.h>
#include <string.h>

#include "convert.h"
#include "errors.h"

static const char USAGE[] =
    "usage: flame-convert inspect FILE_OR_DIR\n"
    "       flame-convert to-hf --checkpoint DIR/checkpoint/step-N --output HF_DIR\n"
    "                           [--dtype float32|bfloat16] [--config MODEL_CONFIG]\n"
    "                           [--arch NAME|PATH.so]\n"
    "       flame-convert from-hf --model HF_DIR --output DIR [--arch NAME|PATH.so]\n"
    "                             [--config MODEL_CONFIG [--seed N]]\n"
    "       flame-convert COMMAND -h   (the options of a command)\n";

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } commands[] = {{"inspect", convert_inspect}, {"to-hf", convert_to_hf},
                    {"from-hf", convert_from_hf}};
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        fputs(USAGE, stdout);
        return FLAME_EXIT_OK;
    }
    for (size_t i = 0; argc >= 2 && i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 2, argv + 2);
    fprintf(stderr, "flame-convert: %s%s: inspect, to-hf or from-hf (flame-convert -h for help)\n",
            argc < 2 ? "no command" : "unknown command ", argc < 2 ? "" : argv[1]);
    return FLAME_EXIT_CONFIG;
}
