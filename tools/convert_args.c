/* flame-convert's command lines: --name VALUE or --name=VALUE (convert.h). */
#include <stdio.h>
#include <string.h>

#include "convert.h"
#include "errors.h"

static const convert_option *find_option(const convert_option *opts, const char *arg, size_t len)
{
    for (; opts && opts->name; opts++)
        if (strlen(opts->name) == len && strncmp(opts->name, arg, len) == 0)
            return opts;
    return NULL;
}

int convert_parse(const char *command, const char *help, int argc, char **argv,
                  const convert_option *opts, const char **positional)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(help, stdout);
            return FLAME_EXIT_OK;
        }
        if (a[0] != '-') {
            if (!positional || *positional) {
                fprintf(stderr, "flame-convert %s: unexpected argument %s\n", command, a);
                return FLAME_EXIT_CONFIG;
            }
            *positional = a;
            continue;
        }
        const char *eq = strchr(a, '=');
        const convert_option *o = find_option(opts, a, eq ? (size_t)(eq - a) : strlen(a));
        if (!o || (!eq && i + 1 == argc)) {
            fprintf(stderr, "flame-convert %s: %s %s (flame-convert %s -h for help)\n", command,
                    o ? "no value for" : "unknown option", a, command);
            return FLAME_EXIT_CONFIG;
        }
        *o->value = eq ? eq + 1 : argv[++i];
    }
    return -1;
}

int convert_missing(const char *command, const char *name)
{
    fprintf(stderr, "flame-convert %s: %s is required (flame-convert %s -h for help)\n", command,
            name, command);
    return FLAME_EXIT_CONFIG;
}
