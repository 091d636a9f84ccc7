#include "user_path.h"

#include <stdlib.h>
#include <string.h>

char *user_path_expand(const char *path)
{
    const char *home = getenv("HOME");
    int tilde = path[0] == '~' && (path[1] == '\0' || path[1] == '/');
    if (!tilde || !home || !*home)
        return strdup(path);
    char *out = malloc(strlen(home) + strlen(path));
    if (out) {
        strcpy(out, home);
        strcat(out, path + 1);
    }
    return out;
}

static int hub_char(char c)
{
    return c == '-' || c == '_' || c == '.' || (c >= '0' && c <= '9') ||
           ((c | 32) >= 'a' && (c | 32) <= 'z');
}

int user_path_is_hub_name(const char *s)
{
    const char *slash = strchr(s, '/');
    if (!slash || slash == s || !slash[1] || strchr(slash + 1, '/') || s[0] == '.')
        return 0;
    for (const char *p = s; *p; p++)
        if (p != slash && !hub_char(*p))
            return 0;
    size_t n = strlen(s);
    return !(n > 5 && strcmp(s + n - 5, ".json") == 0);
}
