"""ascend_attn: tiled FlashAttention and PagedAttention for Huawei Ascend NPUs, with a fast CPU path.

Importing the package loads ``ascend_attn._C``, which registers the ``torch.ops.ascend_attn.*`` operators.
"""

import torch  # noqa: F401  (loads libtorch, which _C links against)

from ascend_attn import _C  # noqa: F401  (registers torch.ops.ascend_attn)
from ascend_attn.flash_attn_interface import flash_attn_func, flash_attn_varlen_func
from ascend_attn.ops import cpu_isa, flash_attention, flash_attention_varlen

__all__ = [
    "cpu_isa",
    "flash_attention",
    "flash_attention_varlen",
    "flash_attn_func",
    "flash_attn_varlen_func",
]
