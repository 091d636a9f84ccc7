/* TOML job files (fla-org/flame's and torchtitan's --job.config_file) read
 * through toml++, handed on as the INI reader hands its lines: one
 * (section, key, value text, line) at a time, in the order of the file.
 *
 * A value's text is what an INI line would hold: a string as it is, a number
 * in decimal (a float in its shortest exact form), a boolean true/false, a
 * date or time as TOML writes it, and an array of such values as its items
 * separated by commas ("a.jsonl,b.jsonl"; [] is ""). A key outside every
 * table, a table inside a table ([a.b], an inline table as a value) and an
 * array holding arrays or tables name no flame setting: refused. */
#ifndef FLAME_TOML_READER_H
#define FLAME_TOML_READER_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Called for each key; nonzero stops the reading (the visitor wrote err). */
typedef int (*toml_visit)(void *ctx, const char *section, const char *key, const char *text,
                          int line);

/* Returns 0; -1 with err "PATH:LINE:COLUMN: what" for a file that cannot be
 * read or is no TOML, "PATH:LINE: what" for a value no setting takes, or
 * the visitor's err when it stopped. */
int toml_read_file(const char *path, toml_visit visit, void *ctx, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif

#endif
