/* Checkpoints: ROOT/step-N/ (ROOT is job.dump_folder/checkpoint.folder) holding model.safetensors (fp32 weights
 * under the Hugging Face / fla names), optimizer.safetensors (the AdamW moments,
 * NAME.exp_avg and NAME.exp_avg_sq) and trainer.json (step, data cursor, RNG
 * state, counters, config hash). A checkpoint is written into a temporary
 * folder that is renamed when complete, so a crash leaves the previous one whole. */
#ifndef FLAME_CHECKPOINT_H
#define FLAME_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "params.h"

typedef struct trainer_state {
    int step;               /* optimizer steps done */
    uint64_t rng_state;
    int skipped;            /* steps skipped for non-finite gradients */
    char config_hash[17];   /* of the [model] section: hex */
    json_t *data_cursor;    /* owned: the data pipeline's position */
} trainer_state;

/* Writes step-N and then removes all but the newest keep_latest_k (0 keeps all).
 * Returns 0, or -1 with err. */
int checkpoint_save(const char *root, const param_store *ps, const trainer_state *st,
                    int keep_latest_k, char *err, size_t err_len);

/* The step to resume from: load_step -1 the newest whole checkpoint (or none:
 * folders not named step-N exactly or lacking a file are passed over, each with
 * a note on stderr prefixed by who), N step-N whatever it holds. Returns the
 * step, -1 when there is none to load (load_step -1), or -2 with err when the
 * folder step-N does not exist. */
int checkpoint_find(const char *root, int load_step, const char *who, char *err, size_t err_len);

/* Loads step-N into ps (values and moments) and st. A tensor missing or of
 * another shape, or a damaged file, is refused naming the file and tensor.
 * Returns 0; -1 with err when a tensor is missing, extra or of another shape
 * (the checkpoint is of another model); -2 with err when a file is damaged: its
 * data section is not exactly the tensors' bytes, a value is not finite, or a
 * field of trainer.json is missing, malformed or out of range (step other than N). */
int checkpoint_load(const char *root, int step, param_store *ps, trainer_state *st,
                    char *err, size_t err_len);

#endif
