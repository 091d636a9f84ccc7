/* The gpt plugin on the CUDA op table against the same plugin on the CPU one
 * (plugin_cuda_testing.h): the same bf16-exact random weights (biases and the
 * position table never zero), a batch of rows and one with cu_seqlens, so
 * positions restart inside a row; the loss, the logits and every parameter's
 * gradient (model_case's tolerances). Head dims 64 (Hopper's attention kernels
 * where they apply) and 32 (the portable ones), with the attention scaled by
 * the inverse layer index, the vocabulary padded, untied, and without a
 * position table but with rotary on half of each head (GPT-3's -rotary), and
 * with the residual stream in fp32 (flash-attn's residual_in_fp32); and
 * generation on CUDA, 1 and 4 rows of 100 tokens through the key and value
 * cache, against the CUDA forward (test_decode_on_gpu). Without CUDA in the build, or without a usable GPU, it
 * prints "SKIP: <reason>" and exits 77. */
#include <stdio.h>

#ifdef FLAME_HAVE_CUDA
#include <string.h>

#include <flame/plugin.h>

#include "plugin_cuda_testing.h"
#include "testing.h"

static kv_config gpt_config(int D, int H, int positions, const char *tie, const char *rotary_fraction,
                            const char *fp32_stream)
{
    kv_config cfg = {.n = 0};
    kv_set_int(&cfg, "n_embd", D);
    kv_set_int(&cfg, "n_layer", 2);
    kv_set_int(&cfg, "n_head", H);
    kv_set_int(&cfg, "n_positions", positions);
    kv_set(&cfg, "vocab_size", "97");
    kv_set(&cfg, "pad_vocab_size_multiple", "8");
    kv_set(&cfg, "scale_attn_by_inverse_layer_idx", "true");
    kv_set(&cfg, "tie_word_embeddings", tie);
    kv_set(&cfg, "rotary_emb_fraction", rotary_fraction);
    kv_set(&cfg, "residual_in_fp32", fp32_stream);
    return cfg;
}

int main(void)
{
    if (!cuda_testing_device())
        return 77;
    testing_seed(20261204);
    printf("error: ||gpu - cpu|| / ||cpu|| over each output\n");
    printf("model: D=128, 2 heads of 64, 128 positions, tied\n");
    kv_config cfg = gpt_config(128, 2, 128, "true", "0", "false");
    test_model_on_both(&cfg);
    test_decode_on_gpu(&cfg, 1, 100);
    test_decode_on_gpu(&cfg, 4, 100);
    printf("model: the same, the residual stream in fp32\n");
    cfg = gpt_config(128, 2, 128, "true", "0", "true");
    test_model_on_both(&cfg);
    test_decode_on_gpu(&cfg, 4, 100);
    printf("model: D=128, 4 heads of 32, no position table, untied, the residual stream in fp32\n");
    cfg = gpt_config(128, 4, 0, "false", "0", "true");
    test_model_on_both(&cfg);
    printf("model: D=128, 2 heads of 64, rotary on 32 of each, no position table\n");
    cfg = gpt_config(128, 2, 0, "true", "0.5", "false");
    test_model_on_both(&cfg);
    test_decode_on_gpu(&cfg, 4, 100);
    return testing_result("test_gpt_cuda");
}

#else

int main(void)
{
    printf("SKIP: flame was configured without CUDA (see configure's last line)\n");
    return 77;
}

#endif
