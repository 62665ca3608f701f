"""Rotary position embedding as flash-attn's ``flash_attn_with_kvcache`` applies it.

Of each head's first ``rotary_dim = 2 * rotary_cos.shape[1]`` features, pairs are rotated by the angle of the token's
position ``p``: ``(x1, x2) -> (x1 cos[p, k] - x2 sin[p, k], x1 sin[p, k] + x2 cos[p, k])`` for pair ``k``. Interleaved
(GPT-J style) pairs are features ``(2k, 2k + 1)``; otherwise (GPT-NeoX style) ``(k, k + rotary_dim / 2)``. Features
past ``rotary_dim`` pass through unchanged. The rotation is computed in fp32 and rounded once to the input dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["apply_rotary"]


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor, positions: Tensor, interleaved: bool) -> Tensor:
    """Rotates ``x`` ``[batch, seqlen, heads, head_dim]`` by the angles of ``positions``.

    Args:
        x: ``[batch, seqlen, heads, head_dim]``, float32 / float16 / bfloat16.
        cos, sin: ``[seqlen_ro, rotary_dim / 2]``, any float dtype; ``rotary_dim <= head_dim``.
        positions: int64 ``[batch, seqlen]``, each in ``[0, seqlen_ro)``: the row of cos / sin of each token.
        interleaved: GPT-J pairs ``(2k, 2k + 1)`` when True, GPT-NeoX pairs ``(k, k + rotary_dim / 2)`` when False.

    Returns:
        A new tensor shaped and typed like ``x``.
    """
    half = cos.shape[1]
    c = cos[positions].float()[:, :, None, :]  # [batch, seqlen, 1, half]: one angle per pair, shared by the heads
    s = sin[positions].float()[:, :, None, :]
    rot = x[..., : 2 * half].float()
    if interleaved:
        x1, x2 = rot[..., 0::2], rot[..., 1::2]
        rotated = torch.stack((x1 * c - x2 * s, x1 * s + x2 * c), dim=-1).flatten(-2)
    else:
        x1, x2 = rot[..., :half], rot[..., half:]
        rotated = torch.cat((x1 * c - x2 * s, x1 * s + x2 * c), dim=-1)
    return torch.cat((rotated.to(x.dtype), x[..., 2 * half :]), dim=-1)
