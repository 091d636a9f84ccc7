/* Paths as users write them in configs and on command lines: a leading ~
 * (the shell expands it only when it starts a word, not in --key=~/x or in a
 * config file), and a Hugging Face hub name given where flame wants a local
 * path (fla-org/flame's job files name the hub: flame does not download). */
#ifndef FLAME_USER_PATH_H
#define FLAME_USER_PATH_H

#include <stddef.h>

/* path with a leading "~" or "~/" replaced by $HOME (a new string the caller
 * frees; a copy when there is nothing to expand or HOME is unset); NULL when
 * out of memory */
char *user_path_expand(const char *path);

/* whether s reads as a hub name, "owner/name" (one slash, neither part empty,
 * letters, digits and -_. only, not ending in .json) */
int user_path_is_hub_name(const char *s);

#endif
