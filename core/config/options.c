/* The core's options: the sections and keys of fla-org/flame's job configs that
 * this trainer understands, plus those it accepts and ignores so that flame
 * command lines run unchanged. Semantic checks (ranges, names) belong to the
 * trainer (train_options.c), not here. */
#include "config.h"

#define N(a) ((int)(sizeof(a) / sizeof *(a)))

#define PY_ONLY "meaningful to the Python stack only"

static const flame_option job_options[] = {
    {"arch", FLAME_TYPE_STRING, NULL,
     "architecture plugin, a NAME or a PATH.so (the same as --arch; a --config file's value "
     "is taken when no --arch is given)",
     0},
    {"config_file", FLAME_TYPE_STRING, NULL, "job INI file (same as --config)", 0},
    {"dump_folder", FLAME_TYPE_STRING, "exp/flame",
     "output folder: config.ini, metrics.jsonl", 0},
    {"description", FLAME_TYPE_STRING, "default job", "a note on the run, kept in config.ini", 0},
    {"print_args", FLAME_TYPE_BOOL, "false", "print the resolved configuration at start", 0},
    {"use_for_integration_test", FLAME_TYPE_BOOL, NULL, "torchtitan's test marker", 1},
};

static const flame_option model_options[] = {
    {"config", FLAME_TYPE_STRING, NULL,
     "model config: fla/Hugging Face JSON (e.g. gla_340M.json) or a flame INI's [model]", 0},
    {"tokenizer_path", FLAME_TYPE_STRING, "byte",
     "tokenizer: \"byte\" (built in), or a Hugging Face tokenizer.json or a local folder "
     "holding one",
     0},
    {"name", FLAME_TYPE_STRING, NULL, "the architecture is --arch", 1},
    {"flavor", FLAME_TYPE_STRING, NULL, PY_ONLY, 1},
    {"norm_type", FLAME_TYPE_STRING, NULL, PY_ONLY, 1},
    {"converters", FLAME_TYPE_STRING, NULL, "torchtitan's model converters (float8)", 1},
    {"print_after_conversion", FLAME_TYPE_BOOL, NULL, PY_ONLY, 1},
};

static const flame_option optimizer_options[] = {
    {"name", FLAME_TYPE_STRING, "AdamW", "optimizer (AdamW)", 0},
    {"lr", FLAME_TYPE_FLOAT, "8e-4", "peak learning rate", 0},
    {"eps", FLAME_TYPE_FLOAT, "1e-8", "AdamW epsilon", 0},
    {"beta1", FLAME_TYPE_FLOAT, "0.9", "AdamW first-moment decay", 0},
    {"beta2", FLAME_TYPE_FLOAT, "0.95", "AdamW second-moment decay", 0},
    {"weight_decay", FLAME_TYPE_FLOAT, "0.1",
     "decoupled weight decay of the matrices (not of norms, biases, embeddings)", 0},
    {"weight_decay_all", FLAME_TYPE_BOOL, "false",
     "decay norms, biases and embeddings too (as torchtitan does)", 0},
    {"implementation", FLAME_TYPE_STRING, NULL, "PyTorch's foreach/fused choice", 1},
    {"fused", FLAME_TYPE_BOOL, NULL, PY_ONLY, 1},
    {"early_step_in_backward", FLAME_TYPE_BOOL, NULL, PY_ONLY, 1},
};

static const flame_option lr_scheduler_options[] = {
    {"warmup_steps", FLAME_TYPE_INT, "200", "steps of linear warmup from 0 to optimizer.lr", 0},
    {"decay_type", FLAME_TYPE_STRING, "linear", "decay after warmup: linear, cosine or sqrt", 0},
    {"lr_min", FLAME_TYPE_FLOAT, "0.0", "final lr as a fraction of optimizer.lr", 0},
    {"decay_ratio", FLAME_TYPE_FLOAT, NULL,
     "fraction of the steps spent decaying (warmup-stable-decay); unset: decay from the end "
     "of warmup",
     0},
};

static const flame_option training_options[] = {
    {"dataset", FLAME_TYPE_STRING, NULL,
     "data: files, folders or globs (comma-separated) of .txt/.jsonl/.parquet/.arrow/.json, "
     "compressed or archived; with data_probs each comma-separated item is one source",
     0},
    {"data_probs", FLAME_TYPE_STRING, NULL,
     "mix the dataset's comma-separated sources: one weight each (e.g. 0.7,0.3), the share "
     "of documents drawn from it; a source that runs out starts over", 0},
    {"text_field", FLAME_TYPE_STRING, "text", "the field of a .jsonl line that holds the text",
     0},
    {"device", FLAME_TYPE_STRING, "auto",
     "where to compute: cpu, cuda, or auto (the GPU when there is one)", 0},
    {"batch_size", FLAME_TYPE_INT, "8", "sequences per micro-batch", 0},
    {"seq_len", FLAME_TYPE_INT, "2048", "tokens per sequence", 0},
    {"context_len", FLAME_TYPE_INT, NULL,
     "varlen: longest piece of a document (unset: seq_len)", 0},
    {"varlen", FLAME_TYPE_BOOL, "false",
     "pass document boundaries to the model (state never crosses a document)", 0},
    {"gradient_accumulation_steps", FLAME_TYPE_INT, "1",
     "micro-batches whose gradients are averaged into one optimizer step", 0},
    {"steps", FLAME_TYPE_INT, "10000", "optimizer steps to train", 0},
    {"max_norm", FLAME_TYPE_FLOAT, "1.0", "global gradient-norm clip; 0 disables", 0},
    {"skip_nan_inf", FLAME_TYPE_BOOL, "false",
     "skip (and count) a step whose gradients are not finite instead of stopping", 0},
    {"seed", FLAME_TYPE_INT, "42", "seed of initialization and data order", 0},
    {"shuffle", FLAME_TYPE_BOOL, "true",
     "read the files in a seeded random order each epoch and their documents shuffled in "
     "blocks of shuffle_buffer; false: in the files' order", 0},
    {"shuffle_buffer", FLAME_TYPE_INT, "1024",
     "documents shuffled together (a block of at most 64 MiB of text)", 0},
    {"num_workers", FLAME_TYPE_INT, "1", "threads tokenizing the data", 0},
    {"prefetch_factor", FLAME_TYPE_INT, "2", "batches prepared ahead of training", 0},
    {"streaming", FLAME_TYPE_BOOL, NULL, "data is always streamed from local files", 1},
    {"compile", FLAME_TYPE_BOOL, NULL, "torch.compile", 1},
    {"dataset_name", FLAME_TYPE_STRING, NULL, "Hugging Face datasets subset", 1},
    {"dataset_split", FLAME_TYPE_STRING, NULL,
     "Hugging Face datasets split: training.dataset names the files", 1},
    {"data_dir", FLAME_TYPE_STRING, NULL, "Hugging Face datasets data_dir", 1},
    {"data_files", FLAME_TYPE_STRING, NULL, "Hugging Face datasets data_files", 1},
    {"data_parallel_replicate_degree", FLAME_TYPE_INT, "1",
     "data-parallel replicas; replicate x shard degree = the ranks (WORLD_SIZE)", 0},
    {"data_parallel_shard_degree", FLAME_TYPE_INT, "-1",
     "data-parallel shards (-1: the ranks the replicas leave)", 0},
    {"tensor_parallel_degree", FLAME_TYPE_INT, "1", "tensor parallelism: 1 only (not built)", 0},
    {"disable_loss_parallel", FLAME_TYPE_BOOL, NULL, "tensor-parallel loss", 1},
    {"enable_cpu_offload", FLAME_TYPE_BOOL, NULL, "FSDP CPU offload", 1},
    {"mixed_precision_param", FLAME_TYPE_STRING, NULL, "FSDP parameter dtype", 1},
    {"mixed_precision_reduce", FLAME_TYPE_STRING, NULL, "FSDP reduction dtype", 1},
    {"gc_freq", FLAME_TYPE_INT, NULL, "Python garbage collection period", 1},
    {"deterministic", FLAME_TYPE_BOOL, NULL, "flame is deterministic on the CPU", 1},
    {"fsdp_reshard_after_forward", FLAME_TYPE_STRING, NULL, "FSDP resharding", 1},
    {"pin_memory", FLAME_TYPE_BOOL, NULL, "PyTorch's data loader", 1},
    {"persistent_workers", FLAME_TYPE_BOOL, NULL, "PyTorch's data loader", 1},
};

static const flame_option checkpoint_options[] = {
    {"enable_checkpoint", FLAME_TYPE_BOOL, "true", "save checkpoints and resume from them", 0},
    {"folder", FLAME_TYPE_STRING, "checkpoint", "checkpoint folder inside job.dump_folder", 0},
    {"interval", FLAME_TYPE_INT, "500", "save every N steps (and at the last step)", 0},
    {"keep_latest_k", FLAME_TYPE_INT, "0", "keep only the newest K checkpoints; 0 keeps all",
     0},
    {"load_step", FLAME_TYPE_INT, "-1",
     "resume from: -1 the newest checkpoint (if any), 0 a seed checkpoint step-0, N step-N", 0},
    {"create_seed_checkpoint", FLAME_TYPE_BOOL, "false",
     "write the initialized model as step-0 and stop", 0},
    {"interval_type", FLAME_TYPE_STRING, NULL, "intervals are in steps", 1},
    {"model_weights_only", FLAME_TYPE_BOOL, NULL, "checkpoints always hold the optimizer", 1},
    {"export_hf", FLAME_TYPE_BOOL, "false",
     "after the last step, also write its checkpoint as a Hugging Face folder, "
     "job.dump_folder/hf (weights, config.json, the tokenizer's files)", 0},
    {"export_dtype", FLAME_TYPE_STRING, "float32",
     "the dtype of export_hf's weights: float32 or bfloat16 (checkpoints stay fp32)", 0},
    {"async_mode", FLAME_TYPE_STRING, NULL, PY_ONLY, 1},
    {"exclude_from_loading", FLAME_TYPE_STRING, NULL, PY_ONLY, 1},
    {"initial_load_path", FLAME_TYPE_STRING, NULL,
     "torchtitan's first load; flame-convert from-hf makes a seed checkpoint", 1},
    {"initial_load_model_weights_only", FLAME_TYPE_BOOL, NULL, PY_ONLY, 1},
    {"no_initial_load_model_weights_only", FLAME_TYPE_BOOL, NULL, PY_ONLY, 1},
    {"last_save_model_weights_only", FLAME_TYPE_BOOL, NULL, "checkpoints always hold the optimizer", 1},
};

static const flame_option metrics_options[] = {
    {"log_freq", FLAME_TYPE_INT, "1",
     "a metrics.jsonl row (and, when stdout is not a terminal, a progress line) every N steps",
     0},
    {"enable_tensorboard", FLAME_TYPE_BOOL, "false",
     "also write every logged value as a TensorBoard scalar (event files in save_tb_folder)", 0},
    {"save_tb_folder", FLAME_TYPE_STRING, "tb", "TensorBoard's folder inside job.dump_folder", 0},
    {"disable_color_printing", FLAME_TYPE_BOOL, NULL, PY_ONLY, 1},
    {"rank_0_only", FLAME_TYPE_BOOL, NULL, "log from rank 0 only", 1},
    {"enable_wandb", FLAME_TYPE_BOOL, NULL,
     "Weights & Biases is not built in: metrics.enable_tensorboard writes TensorBoard's files", 1},
    {"save_for_all_ranks", FLAME_TYPE_BOOL, NULL, "metrics from every rank", 1},
};

static const flame_option validation_options[] = {
    {"enable", FLAME_TYPE_BOOL, "false", "measure the loss on held-out data during training", 0},
    {"dataset", FLAME_TYPE_STRING, NULL,
     "the held-out data, as training.dataset takes it; read in the files' order", 0},
    {"freq", FLAME_TYPE_INT, "500", "validate every N steps (and after the last)", 0},
    {"steps", FLAME_TYPE_INT, "-1", "batches per validation; -1: every whole batch of the data", 0},
    {"seq_len", FLAME_TYPE_INT, NULL, "tokens per sequence (unset: training.seq_len)", 0},
    {"local_batch_size", FLAME_TYPE_INT, NULL,
     "sequences per batch (unset: training.batch_size)", 0},
    {"dataset_path", FLAME_TYPE_STRING, NULL,
     "torchtitan's path of a named dataset: validation.dataset names the files", 1},
};

/* Sections only the Python stack reads (torchtitan's job config, as
 * fla-org/flame's fla.toml and config_manager.py carry it): accepted so that
 * those job files run unchanged, each key given reported once. */
static const flame_option profiling_options[] = {
    {"enable_profiling", FLAME_TYPE_BOOL, NULL, "PyTorch's profiler", 1},
    {"save_traces_folder", FLAME_TYPE_STRING, NULL, "PyTorch's profiler", 1},
    {"profile_freq", FLAME_TYPE_INT, NULL, "PyTorch's profiler", 1},
    {"enable_memory_snapshot", FLAME_TYPE_BOOL, NULL, "PyTorch's memory snapshots", 1},
    {"save_memory_snapshot_folder", FLAME_TYPE_STRING, NULL, "PyTorch's memory snapshots", 1},
};

static const flame_option experimental_options[] = {
    {"context_parallel_degree", FLAME_TYPE_INT, "1", "context parallelism: 1 only (not built)", 0},
    {"context_parallel_rotate_method", FLAME_TYPE_STRING, NULL, "context parallelism", 1},
    {"custom_model_path", FLAME_TYPE_STRING, NULL, "a Python model: flame's are plugins", 1},
    {"enable_async_tensor_parallel", FLAME_TYPE_BOOL, NULL, "tensor parallelism", 1},
    {"enable_compiled_autograd", FLAME_TYPE_BOOL, NULL, "torch.compile", 1},
    {"pipeline_parallel_degree", FLAME_TYPE_INT, "1", "pipeline parallelism: 1 only (not built)", 0},
    {"pipeline_parallel_microbatches", FLAME_TYPE_INT, NULL, "pipeline parallelism", 1},
    {"pipeline_parallel_schedule", FLAME_TYPE_STRING, NULL, "pipeline parallelism", 1},
    {"pipeline_parallel_schedule_csv", FLAME_TYPE_STRING, NULL, "pipeline parallelism", 1},
    {"pipeline_parallel_split_points", FLAME_TYPE_STRING, NULL, "pipeline parallelism", 1},
};

static const flame_option float8_options[] = {
    {"enable_fsdp_float8_all_gather", FLAME_TYPE_BOOL, NULL, "float8 training (torchao)", 1},
    {"precompute_float8_dynamic_scale_for_fsdp", FLAME_TYPE_BOOL, NULL, "float8 training (torchao)", 1},
    {"force_recompute_fp8_weight_in_bwd", FLAME_TYPE_BOOL, NULL, "float8 training (torchao)", 1},
    {"recipe_name", FLAME_TYPE_STRING, NULL, "float8 training (torchao)", 1},
};

static const flame_option activation_checkpoint_options[] = {
    {"mode", FLAME_TYPE_STRING, NULL,
     "flame keeps every activation of the step: it recomputes none, whatever the mode", 1},
    {"selective_ac_option", FLAME_TYPE_STRING, NULL, "flame recomputes no activation", 1},
};

static const flame_option activation_offload_options[] = {
    {"mode", FLAME_TYPE_STRING, NULL, "flame keeps activations on the device", 1},
};

static const flame_option comm_options[] = {
    {"init_timeout_seconds", FLAME_TYPE_INT, "300",
     "seconds the ranks wait for each other to start before failing", 0},
    {"train_timeout_seconds", FLAME_TYPE_INT, "100",
     "seconds a rank waits in a collective (a peer dead or hung) before failing", 0},
    {"bucket_mb", FLAME_TYPE_FLOAT, "25",
     "MiB of gradients summed over the ranks at a time while the backward runs (0: each layer's)", 0},
    {"trace_buf_size", FLAME_TYPE_INT, NULL, "torch.distributed", 1},
};

static const flame_option fault_tolerance_options[] = {
    {"enable", FLAME_TYPE_BOOL, NULL, "torchft", 1},
    {"group_size", FLAME_TYPE_INT, NULL, "torchft", 1},
    {"min_replica_size", FLAME_TYPE_INT, NULL, "torchft", 1},
    {"replica_id", FLAME_TYPE_INT, NULL, "torchft", 1},
};

static const flame_option memory_estimation_options[] = {
    {"enabled", FLAME_TYPE_BOOL, NULL, "torchtitan's memory estimation", 1},
    {"disable_fake_mode", FLAME_TYPE_BOOL, NULL, "torchtitan's memory estimation", 1},
};

const config_section core_sections[] = {
    {"job", "the run: its config file and output folder", job_options, N(job_options)},
    {"model", "the architecture's settings (the plugin declares its own keys too)", model_options,
     N(model_options)},
    {"optimizer", "AdamW", optimizer_options, N(optimizer_options)},
    {"lr_scheduler", "warmup, then decay", lr_scheduler_options, N(lr_scheduler_options)},
    {"training", "data, batch shape, steps, clipping, seed", training_options,
     N(training_options)},
    {"checkpoint", "saving and resuming", checkpoint_options, N(checkpoint_options)},
    {"metrics", "logging to metrics.jsonl", metrics_options, N(metrics_options)},
    {"validation", "the loss on held-out data", validation_options, N(validation_options)},
    {"profiling", "(the Python stack's)", profiling_options, N(profiling_options)},
    {"experimental", "(the Python stack's)", experimental_options, N(experimental_options)},
    {"float8", "(the Python stack's)", float8_options, N(float8_options)},
    {"activation_checkpoint", "(the Python stack's)", activation_checkpoint_options,
     N(activation_checkpoint_options)},
    {"activation_offload", "(the Python stack's)", activation_offload_options,
     N(activation_offload_options)},
    {"comm", "the ranks of a multi-process run", comm_options, N(comm_options)},
    {"fault_tolerance", "(the Python stack's)", fault_tolerance_options,
     N(fault_tolerance_options)},
    {"memory_estimation", "(the Python stack's)", memory_estimation_options,
     N(memory_estimation_options)},
};

const int n_core_sections = N(core_sections);
