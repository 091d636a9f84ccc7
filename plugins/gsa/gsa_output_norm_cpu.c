/* fla's output norm of GSA on the CPU (gsa.h): RMSNorm of swish(o) over a
 * token's whole value width, with or without a weight.
 *
 * Backward, per row with x = swish(o), x̂ = x·rstd and gy = dy ⊙ w (dy without w):
 *     dx = rstd · (gy − x̂ · mean(gy ⊙ x̂)),   d_o = dx ⊙ swish'(o),   dw += dy ⊙ x̂ */
#include <math.h>

#include "../common/cpu_pointwise.h"
#include "gsa.h"

void gsa_output_norm_forward_cpu(float *y, float *rstd, const float *o, const float *w, int rows,
                                 int C, float eps)
{
    for (int r = 0; r < rows; r++) {
        const float *orow = o + (size_t)r * C;
        float *yrow = y + (size_t)r * C;
        float sq = 0.0f;
        for (int c = 0; c < C; c++) {
            yrow[c] = orow[c] * sigmoid(orow[c]);
            sq += yrow[c] * yrow[c];
        }
        float rs = 1.0f / sqrtf(sq / (float)C + eps);
        rstd[r] = rs;
        for (int c = 0; c < C; c++)
            yrow[c] *= rs * (w ? w[c] : 1.0f);
    }
}

void gsa_output_norm_backward_cpu(float *d_o, float *dw, const float *dy, const float *o,
                                  const float *w, const float *rstd, int rows, int C)
{
    for (int r = 0; r < rows; r++) {
        size_t at = (size_t)r * C;
        float rs = rstd[r], mean = 0.0f;
        for (int c = 0; c < C; c++) {
            float x = o[at + c] * sigmoid(o[at + c]);
            mean += dy[at + c] * (w ? w[c] : 1.0f) * x * rs;
        }
        mean /= (float)C;
        for (int c = 0; c < C; c++) {
            float oc = o[at + c], sg = sigmoid(oc), xhat = oc * sg * rs;
            float gy = dy[at + c] * (w ? w[c] : 1.0f);
            if (w && dw)
                dw[c] += dy[at + c] * xhat;
            d_o[at + c] = rs * (gy - xhat * mean) * sg * (1.0f + oc * (1.0f - sg));
        }
    }
}
