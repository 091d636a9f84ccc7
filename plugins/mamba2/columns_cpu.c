/* Column blocks of a row-major array as arrays of their own, and back
 * (mamba2.h): in_proj's narrow slices come out of one product and go back
 * into one. */
#include <string.h>

#include "mamba2.h"

/* part i ↔ whole's columns from the sum of the widths before it */
static void copy_columns(float *whole, float *const *parts, const int *widths, int n_parts, int n,
                         int to_whole)
{
    int total = 0;
    for (int i = 0; i < n_parts; i++)
        total += widths[i];
    for (size_t t = 0; t < (size_t)n; t++) {
        float *row = whole + t * total;
        for (int i = 0; i < n_parts; i++) {
            float *part = parts[i] + t * widths[i];
            if (to_whole)
                memcpy(row, part, sizeof *row * widths[i]);
            else
                memcpy(part, row, sizeof *row * widths[i]);
            row += widths[i];
        }
    }
}

void mamba2_split_columns_cpu(float *const *parts, const int *widths, int n_parts,
                              const float *whole, int n)
{
    copy_columns((float *)whole, parts, widths, n_parts, n, 0);
}

void mamba2_join_columns_cpu(float *whole, const float *const *parts, const int *widths,
                             int n_parts, int n)
{
    copy_columns(whole, (float *const *)parts, widths, n_parts, n, 1);
}
