"""HazyResearch/based's GPTLMHeadModel on a machine without flash-attn.

Importing based.models.gpt needs the compiled flash-attn package (its modules
import flash_attn.* unguarded), which the machines flame is measured on do not
have. This module registers small stand-ins under those names before the
import, so that HazyResearch's own model code runs unchanged with these paths:

  - Embedding: flash-attn's GPT2Embeddings with max_position_embeddings 0 is a
    word-embedding lookup; the stand-in is that lookup (same parameter name).
  - Sliding-window attention: FlashSelfAttention casts to bf16 and calls
    flash-attn's windowed kernel; the stand-in keeps the input's dtype and runs
    torch's scaled_dot_product_attention with the band mask flash-attn's
    window_size = (w, 0) means: query i sees keys i - w ... i.
  - Rotary: flash-attn's RotaryEmbedding (non-interleaved, cos/sin in fp32 cast
    to the input's dtype) written out in PyTorch.
  - RMSNorm: HazyResearch's Triton kernel, or (pure=True) its own PyTorch
    reference rms_norm_ref, in fp32 as the kernel computes.
  - Taylor linear attention and BaseConv: HazyResearch's code as it is (its
    'quadratic' path is PyTorch; 'fla_parallel' calls fla's Triton kernel).
  - The SwiGLU MLP takes HazyResearch's own PyTorch fallback (flash-attn's
    fused swiglu is absent); torchvision's StochasticDepth at p = 0 (an
    identity) is stood in for when torchvision is missing.

Use: sys.path must hold the based checkout (BASED_PATH) and, for
'fla_parallel', fla; then build_model(config_dict, pure=...)."""
import importlib
import importlib.machinery
import os
import sys
import types


def _module(name, **attrs):
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    # a spec, so that importlib.util.find_spec (transformers asks it whether
    # flash-attn is installed) answers; with no version and no file the
    # stand-in still counts as no flash-attn there
    m.__spec__ = importlib.machinery.ModuleSpec(name, None)
    sys.modules[name] = m
    return m


def _unavailable(name):
    """a flash-attn class or function the Based models here never reach"""
    def fail(*args, **kwargs):
        raise RuntimeError(f"{name}: flash-attn is not installed (stand-in)")
    return type(name, (), {"__init__": fail}) if name[0].isupper() else fail


def _band_attention(torch, q, k, v, window, scale):
    """softmax attention of q [B, S, H, D] over keys j in [i - window, i]"""
    S = q.shape[1]
    i = torch.arange(S, device=q.device)
    mask = (i[None, :] <= i[:, None]) & (i[None, :] >= i[:, None] - window)
    out = torch.nn.functional.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask, scale=scale)
    return out.transpose(1, 2)


def _flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False,
                     window_size=(-1, -1), **kwargs):
    import torch
    assert causal and window_size[1] == 0 and dropout_p == 0.0
    return _band_attention(torch, q, k, v, window_size[0], softmax_scale)


def _qkvpacked(qkv, dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1), **kw):
    return _flash_attn_func(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], dropout_p, softmax_scale,
                            causal, window_size)


def _rotary_class(torch):
    class RotaryEmbedding(torch.nn.Module):
        """rotate-halves rotary over the first `dim` channels of q and k in qkv [B, S, 3, H, D]"""

        def __init__(self, dim, base=10000.0, interleaved=False, scale_base=None, device=None, **kw):
            super().__init__()
            assert not interleaved and scale_base is None
            self.dim, self.base, self.interleaved, self.scale = dim, base, interleaved, None

        def forward(self, qkv, seqlen_offset=0, max_seqlen=None, **kw):
            S, half = qkv.shape[1], self.dim // 2
            inv_freq = 1.0 / self.base ** (torch.arange(0, self.dim, 2, device=qkv.device,
                                                        dtype=torch.float32) / self.dim)
            t = torch.arange(seqlen_offset, seqlen_offset + S, device=qkv.device, dtype=torch.float32)
            angle = torch.outer(t, inv_freq)
            cos = angle.cos().to(qkv.dtype)[None, :, None, :]
            sin = angle.sin().to(qkv.dtype)[None, :, None, :]
            out = qkv.clone()
            for j in (0, 1):
                x1, x2 = qkv[:, :, j, :, :half], qkv[:, :, j, :, half:self.dim]
                out[:, :, j, :, :half] = x1 * cos - x2 * sin
                out[:, :, j, :, half:self.dim] = x2 * cos + x1 * sin
            return out
    return RotaryEmbedding


def _embeddings_class(torch):
    class GPT2Embeddings(torch.nn.Module):
        def __init__(self, embed_dim, vocab_size, max_position_embeddings, padding_idx=None,
                     word_embed_proj_dim=None, device=None, dtype=None):
            super().__init__()
            assert max_position_embeddings == 0 and word_embed_proj_dim is None
            self.word_embeddings = torch.nn.Embedding(vocab_size, embed_dim, padding_idx=padding_idx,
                                                      device=device, dtype=dtype)

        def forward(self, input_ids, position_ids=None):
            return self.word_embeddings(input_ids)
    return GPT2Embeddings


def install_stand_ins(torch):
    """registers the flash-attn modules based.models.gpt imports"""
    if "flash_attn" in sys.modules:
        return
    # transformers decides at import whether flash-attn is there: before the stand-ins
    for name in ("transformers.activations", "transformers.modeling_utils"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    names = ["flash_attn_kvpacked_func", "flash_attn_varlen_kvpacked_func",
             "flash_attn_varlen_qkvpacked_func", "flash_attn_with_kvcache"]
    _module("flash_attn", flash_attn_func=_flash_attn_func, flash_attn_qkvpacked_func=_qkvpacked,
            **{n: _unavailable(n) for n in names})
    _module("flash_attn.modules")
    _module("flash_attn.modules.embedding", GPT2Embeddings=_embeddings_class(torch),
            ParallelGPT2Embeddings=_unavailable("ParallelGPT2Embeddings"))
    _module("flash_attn.modules.mha", MHA=_unavailable("MHA"), ParallelMHA=_unavailable("ParallelMHA"))
    _module("flash_attn.modules.mlp", **{n: _unavailable(n) for n in
                                         ["FusedMLP", "Mlp", "ParallelFusedMLP", "ParallelMLP"]})
    _module("flash_attn.ops")
    _module("flash_attn.ops.activations", sqrelu_fwd=_unavailable("sqrelu_fwd"))
    _module("flash_attn.utils")
    _module("flash_attn.utils.distributed", **{n: _unavailable(n) for n in
                                               ["all_gather_raw", "sync_shared_params"]},
            get_dim_for_local_rank=lambda dim, world_size, local_rank, multiple_of=1: dim)
    _module("flash_attn.utils.pretrained", state_dict_from_pretrained=_unavailable("state_dict_from_pretrained"))
    _module("flash_attn.utils.generation", InferenceParams=_unavailable("InferenceParams"))
    _module("flash_attn.layers")
    _module("flash_attn.layers.rotary", RotaryEmbedding=_rotary_class(torch))
    try:
        import torchvision.ops  # noqa: F401
    except ImportError:
        class StochasticDepth(torch.nn.Module):
            def __init__(self, p, mode):
                super().__init__()
                assert p == 0.0

            def forward(self, x):
                return x
        _module("torchvision")
        _module("torchvision.ops", StochasticDepth=StochasticDepth)
    import transformers.generation as generation  # the names gpt.py's generation module imports
    for old in ("GreedySearchDecoderOnlyOutput", "SampleDecoderOnlyOutput"):
        if not hasattr(generation, old):
            setattr(generation, old, getattr(generation, "GenerateDecoderOnlyOutput"))


def _use_sdpa_window():
    from based.models.mixers import slide_attention

    def self_attention(module, qkv, causal=None, cu_seqlens=None, max_seqlen=None, **kw):
        assert cu_seqlens is None and module.window_size[1] == 0
        return _qkvpacked(qkv, 0.0, module.softmax_scale, True, module.window_size)
    slide_attention.FlashSelfAttention.forward = self_attention


def use_reference_rmsnorm():
    """HazyResearch's RMSNorm through its PyTorch reference, in fp32 as its kernel computes"""
    from based.ops.triton import layer_norm

    def rms_norm(module, x, residual=None, prenorm=False, residual_in_fp32=False):
        assert residual is None and not prenorm
        return layer_norm.rms_norm_ref(x, module.weight, None, eps=module.eps, upcast=True)
    layer_norm.RMSNorm.forward = rms_norm


def build_model(config, pure=True, device="cuda", dtype=None):
    """HazyResearch's GPTLMHeadModel of config (a config.json's dict)"""
    import torch
    based_path = os.environ.get("BASED_PATH")
    if based_path and based_path not in sys.path:
        sys.path.insert(0, based_path)
    try:  # fla first, against the real environment (HazyResearch swallows its import errors)
        import fla.ops.based  # noqa: F401
    except Exception as e:
        print(f"fla's Based kernels are not importable ({type(e).__name__}: {e})", flush=True)
    install_stand_ins(torch)
    from based.models.gpt import GPT2MixerConfig, GPTLMHeadModel
    _use_sdpa_window()
    if pure:
        use_reference_rmsnorm()
    settings = {k: v for k, v in config.items() if k not in ("architectures", "model_type", "torch_dtype")}
    model = GPTLMHeadModel(GPT2MixerConfig(**settings), device=device, dtype=dtype)
    return model.to(device)  # BaseConv leaves its layers on the CPU, as from_pretrained_hf knows
