"""ascend_attn: tiled FlashAttention and PagedAttention for Huawei Ascend NPUs, with a fast CPU path.

Importing the package loads ``ascend_attn._C``, which registers the ``torch.ops.ascend_attn.*`` operators, and, in a
build made by ``scripts/build.sh``, ``ascend_attn._npu`` (their NPU kernels; it imports torch_npu first).
"""

import importlib.util

import torch  # noqa: F401  (loads libtorch, which _C links against)

from ascend_attn import _C  # noqa: F401  (registers torch.ops.ascend_attn)

if importlib.util.find_spec("ascend_attn._npu") is not None:
    import torch_npu  # noqa: F401  (the NPU build links against it)

    from ascend_attn import _npu  # noqa: F401  (registers the PrivateUse1 kernels)

from ascend_attn import autograd  # noqa: F401  (registers the ops' autograd)
from ascend_attn.flash_attn_interface import flash_attn_func, flash_attn_varlen_func, flash_attn_with_kvcache
from ascend_attn.kv_cache import CacheBatch, OutOfBlocksError, PagedKVCache
from ascend_attn.ops import (
    cpu_isa,
    flash_attention,
    flash_attention_varlen,
    merge_attn_states,
    paged_attention,
    reshape_and_cache,
)

__all__ = [
    "CacheBatch",
    "OutOfBlocksError",
    "PagedKVCache",
    "cpu_isa",
    "flash_attention",
    "flash_attention_varlen",
    "flash_attn_func",
    "flash_attn_varlen_func",
    "flash_attn_with_kvcache",
    "merge_attn_states",
    "paged_attention",
    "reshape_and_cache",
]
