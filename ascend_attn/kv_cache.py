"""A paged KV cache for serving: block allocator, per-sequence block lists, prefix sharing with copy-on-write.

Layout (README "KV cache layout"): per layer a key cache ``[num_blocks, block_size, num_kv_heads, head_dim]`` and a
value cache ``[num_blocks, block_size, num_kv_heads, head_dim_v]``. Token t of a sequence lives in block
``block_tables[s][t // block_size]`` at offset ``t % block_size``, i.e. slot ``block * block_size + offset``.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor

from ascend_attn import ops

__all__ = ["CacheBatch", "OutOfBlocksError", "PagedKVCache"]


_INT32_MAX = 2**31 - 1  # block tables, context lengths and int32 slot mappings hold int32 values
_CACHE_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _integer(value, name: str) -> int:
    """An integer argument: int, numpy integer or integer 0-d tensor; not bool or float."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}") from None


def _count(value, name: str, minimum: int) -> int:
    """An integer argument that is >= minimum."""
    n = _integer(value, name)
    if n < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {n}")
    return n


class OutOfBlocksError(RuntimeError):
    """Raised when an append needs more free blocks than the cache has; the cache is left unchanged."""


class CacheBatch(NamedTuple):
    """Batch tensors for :func:`ascend_attn.paged_attention` (all int32, on the cache's device)."""

    block_tables: Tensor  # [num_seqs, max_blocks_per_seq], padded with -1
    context_lens: Tensor  # [num_seqs]
    cu_seqlens_q: Tensor  # [num_seqs + 1]


@dataclass
class _Sequence:
    blocks: list[int] = field(default_factory=list)
    length: int = 0


class PagedKVCache:
    """Key/value caches for ``num_layers`` layers plus the block bookkeeping of the sequences using them.

    Example::

        >>> import torch, ascend_attn
        >>> cache = ascend_attn.PagedKVCache(num_layers=1, num_blocks=8, block_size=4, num_kv_heads=2, head_dim=8,
        ...                                  dtype=torch.float32)
        >>> cache.add_sequence("prompt")
        >>> cache.append("prompt", 6).tolist()          # 6 tokens: block 0 fully, block 1 in part
        [0, 1, 2, 3, 4, 5]
        >>> cache.fork("prompt", "reply")              # shares both blocks
        >>> cache.append("reply", 1).tolist()           # the shared partial block is copied first
        [10]
        >>> cache.batch(["prompt", "reply"]).context_lens.tolist()
        [6, 7]
        >>> cache.free("prompt"); cache.free("reply"); cache.num_free_blocks
        8

    New K/V rows go to the returned slots with :meth:`write` (or :func:`ascend_attn.reshape_and_cache`).
    """

    def __init__(
        self,
        num_layers: int,
        num_blocks: int,
        block_size: int,
        num_kv_heads: int,
        head_dim: int,
        head_dim_v: int | None = None,
        dtype: torch.dtype = torch.float16,
        device: str | torch.device = "cpu",
        fill_value: float = 0.0,
    ):
        num_layers = _count(num_layers, "num_layers", 1)
        num_blocks = _count(num_blocks, "num_blocks", 1)
        block_size = _count(block_size, "block_size", 1)
        num_kv_heads = _count(num_kv_heads, "num_kv_heads", 1)
        head_dim = _count(head_dim, "head_dim", 1)
        head_dim_v = head_dim if head_dim_v is None else _count(head_dim_v, "head_dim_v", 1)
        if num_blocks > _INT32_MAX:
            raise ValueError(f"num_blocks must be at most 2^31 - 1 (block tables are int32), got {num_blocks}")
        if dtype not in _CACHE_DTYPES:
            raise TypeError(f"dtype must be torch.float32, torch.float16 or torch.bfloat16, got {dtype!r}")
        self.num_layers = num_layers
        self.block_size = block_size
        self.num_blocks = num_blocks
        k_shape = (num_blocks, block_size, num_kv_heads, head_dim)
        v_shape = (num_blocks, block_size, num_kv_heads, head_dim_v)
        self.key_caches = [torch.full(k_shape, fill_value, dtype=dtype, device=device) for _ in range(num_layers)]
        self.value_caches = [torch.full(v_shape, fill_value, dtype=dtype, device=device) for _ in range(num_layers)]
        self._free = list(range(num_blocks - 1, -1, -1))  # a stack: block 0 is handed out first
        self._refs = [0] * num_blocks
        self._seqs: dict[object, _Sequence] = {}

    # ---- queries ----

    @property
    def num_free_blocks(self) -> int:
        return len(self._free)

    @property
    def blocks_in_use(self) -> int:
        return self.num_blocks - len(self._free)

    def seq_len(self, seq_id) -> int:
        return self._get(seq_id).length

    def block_list(self, seq_id) -> list[int]:
        """The blocks of a sequence, in token order (a copy)."""
        return list(self._get(seq_id).blocks)

    def ref_count(self, block: int) -> int:
        return self._refs[block]

    def blocks_needed(self, seq_id, num_tokens: int) -> int:
        """Free blocks an :meth:`append` of ``num_tokens`` would take, counting a copy-on-write of the last block."""
        seq = self._get(seq_id)
        num_tokens = _count(num_tokens, "num_tokens", 0)
        room = len(seq.blocks) * self.block_size - seq.length
        fresh = -(-max(0, num_tokens - room) // self.block_size)
        return fresh + int(self._needs_copy(seq, num_tokens))

    def can_append(self, seq_id, num_tokens: int) -> bool:
        return self.blocks_needed(seq_id, num_tokens) <= len(self._free)

    # ---- updates ----

    def add_sequence(self, seq_id) -> None:
        if seq_id in self._seqs:
            raise KeyError(f"sequence {seq_id!r} already exists")
        self._seqs[seq_id] = _Sequence()

    def append(self, seq_id, num_tokens: int, dtype: torch.dtype = torch.int32) -> Tensor:
        """Reserves ``num_tokens`` new positions and returns their slot_mapping ``[num_tokens]`` (int32 by default).

        Raises OutOfBlocksError, leaving every sequence and block untouched, when the free blocks do not suffice;
        every other error (bad arguments) also leaves the cache untouched.
        """
        seq = self._get(seq_id)
        num_tokens = _count(num_tokens, "num_tokens", 0)
        if dtype not in (torch.int32, torch.int64):
            raise TypeError(f"dtype must be torch.int32 or torch.int64 (a slot_mapping dtype), got {dtype!r}")
        if dtype == torch.int32 and self.num_blocks * self.block_size - 1 > _INT32_MAX:
            raise ValueError(
                f"dtype=torch.int32 cannot hold the slots of a cache of {self.num_blocks * self.block_size} slots; use "
                "torch.int64"
            )
        need = self.blocks_needed(seq_id, num_tokens)
        if need > len(self._free):
            raise OutOfBlocksError(
                f"append of {num_tokens} tokens to sequence {seq_id!r} needs {need} free blocks, "
                f"only {len(self._free)} of {self.num_blocks} are free"
            )
        if self._needs_copy(seq, num_tokens):
            self._copy_on_write(seq)
        while len(seq.blocks) * self.block_size < seq.length + num_tokens:
            block = self._free.pop()
            self._refs[block] = 1
            seq.blocks.append(block)
        positions = torch.arange(seq.length, seq.length + num_tokens)
        table = torch.tensor(seq.blocks, dtype=torch.int64)
        seq.length += num_tokens
        slots = table[positions // self.block_size] * self.block_size + positions % self.block_size
        return slots.to(dtype=dtype, device=self.key_caches[0].device)

    def fork(self, parent_id, child_id) -> None:
        """Creates ``child_id`` sharing all of the parent's blocks (prefix sharing); no data is copied."""
        parent = self._get(parent_id)
        if child_id in self._seqs:
            raise KeyError(f"sequence {child_id!r} already exists")
        for block in parent.blocks:
            self._refs[block] += 1
        self._seqs[child_id] = _Sequence(list(parent.blocks), parent.length)

    def free(self, seq_id) -> None:
        """Drops a sequence; blocks nobody else holds return to the free list."""
        seq = self._seqs.pop(self._check(seq_id))
        for block in reversed(seq.blocks):
            self._refs[block] -= 1
            if self._refs[block] == 0:
                self._free.append(block)

    def write(self, layer: int, slot_mapping: Tensor, key: Tensor, value: Tensor) -> None:
        """Stores key ``[n, kv_heads, head_dim]`` / value rows of layer ``layer`` (in ``[0, num_layers)``) at
        ``slot_mapping`` (from append)."""
        layer = _integer(layer, "layer")
        if not 0 <= layer < self.num_layers:  # a negative layer would silently index from the end
            raise IndexError(f"layer must be in [0, {self.num_layers}), got {layer}")
        ops.reshape_and_cache(key, value, self.key_caches[layer], self.value_caches[layer], slot_mapping)

    def batch(self, seq_ids, num_new_tokens: list[int] | None = None) -> CacheBatch:
        """block_tables, context_lens and cu_seqlens_q for these sequences, in this order.

        ``num_new_tokens[i]`` is how many of sequence i's last positions are queried this step (default 1 each).
        """
        seqs = [self._get(s) for s in seq_ids]
        news = num_new_tokens if num_new_tokens is not None else [1] * len(seqs)
        if len(news) != len(seqs):
            raise ValueError(f"num_new_tokens has {len(news)} entries for {len(seqs)} sequences")
        news = [_count(n, f"num_new_tokens[{i}]", 0) for i, n in enumerate(news)]
        width = max([len(s.blocks) for s in seqs] + [1])
        tables = torch.full((len(seqs), width), -1, dtype=torch.int32)
        for i, s in enumerate(seqs):
            tables[i, : len(s.blocks)] = torch.tensor(s.blocks, dtype=torch.int32)
        lens = torch.tensor([s.length for s in seqs], dtype=torch.int32)
        cu = torch.tensor([0, *torch.tensor(news, dtype=torch.int64).cumsum(0).tolist()], dtype=torch.int32)
        device = self.key_caches[0].device
        return CacheBatch(tables.to(device), lens.to(device), cu.to(device))

    # ---- internals ----

    def _check(self, seq_id):
        if seq_id not in self._seqs:
            raise KeyError(f"unknown sequence {seq_id!r}")
        return seq_id

    def _get(self, seq_id) -> _Sequence:
        return self._seqs[self._check(seq_id)]

    def _needs_copy(self, seq: _Sequence, num_tokens: int) -> bool:
        # Writing into a partially filled block that another sequence also holds would change its tokens.
        return num_tokens > 0 and seq.length % self.block_size != 0 and self._refs[seq.blocks[-1]] > 1

    def _copy_on_write(self, seq: _Sequence) -> None:
        old, new = seq.blocks[-1], self._free.pop()
        used = seq.length % self.block_size
        for cache in (*self.key_caches, *self.value_caches):
            cache[new, :used] = cache[old, :used]
        self._refs[old] -= 1
        self._refs[new] = 1
        seq.blocks[-1] = new
