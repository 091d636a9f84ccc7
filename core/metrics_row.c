#include "metrics_row.h"

#include <math.h>
#include <stdio.h>

#include <jansson.h>

static double number(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

int metrics_row_parse(const char *line, size_t len, metrics_row *row, char *err, size_t err_len)
{
    json_error_t jerr;
    json_t *o = json_loadb(line, len, 0, &jerr);
    if (!json_is_object(o)) {
        snprintf(err, err_len, "not a metrics row (%s)", o ? "not a JSON object" : jerr.text);
        json_decref(o);
        return -1;
    }
    *row = (metrics_row){number(o, "step"),      number(o, "tokens"), number(o, "loss"),
                         number(o, "lr"),        number(o, "grad_norm"),
                         number(o, "val_loss")};
    json_decref(o);
    if (isnan(row->step)) {
        snprintf(err, err_len, "not a metrics row (no number under \"step\")");
        return -1;
    }
    return 0;
}
