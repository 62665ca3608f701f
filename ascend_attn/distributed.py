"""Context-parallel (ring) attention across processes on torch.distributed: HCCL on NPU, gloo on CPU.

A sequence too long for one device is split along its tokens over the ``W`` ranks of a process group. Every rank
keeps its query shard; the K/V shards travel around the ring (rank r sends to r + 1 and receives from r - 1 with
``batch_isend_irecv``), and each rank attends its queries to every K/V shard it sees with the ``flash_attention_varlen``
op, merging the partial results by their log-sum-exp with ``merge_attn_states`` in fp32. While a rank attends to the
shard it holds, the next shard is already on its way into a second buffer, so communication overlaps computation.
Memory per rank is O(S/W · d): the query shard, one fp32 accumulator, two K/V buffers; never the gathered K/V.

Layouts (how the global sequence of length S is split; every rank holds S / W tokens):

- ``"zigzag"`` (the default with ``causal=True``): the sequence is cut into 2W chunks of c = S / (2W) tokens and
  rank r holds chunks r and 2W - 1 - r, in that order. Under a causal mask every rank then has the same work::

      S = 8 tokens, W = 2:   chunks  0 1 2 3     rank 0: tokens 0-1 + 6-7    rank 1: tokens 2-3 + 4-5

  At ring step i rank r holds the K/V of rank s = r - i (mod W). Step 0 is plain causal attention over the local
  shard (the two chunks keep their order, so the causal mask of the concatenation is exact). For s < r both query
  chunks see only the first K/V chunk, in full; for s > r only the second query chunk sees anything, all of the K/V
  shard in full. So every step after the first costs half a local attention and nothing fully masked is computed.
- ``"contiguous"`` (the default with ``causal=False``): rank r holds tokens ``[r·S/W, (r+1)·S/W)``. Without a window
  a non-causal attention does not depend on positions, so any equal split works; with a window the positions are
  those of this layout.

Positions are exact across shards: every (query chunk, K/V chunk) pair is attended with the window shifted to the
chunks' real distance, trimmed to the rows and keys that can see each other, so ``window_size`` and ``causal`` give
the single-device result. Pairs no query can see are skipped, and when a window is short the ring stops early
(every rank computes the same number of steps from the shapes, so no rank waits for a shard nobody needs).

Backward (both entry points differentiate in q, k and v): the K/V shards travel the ring again in the same order,
and with each one a fp32 dK/dV accumulator. At every step a rank runs the attention backward op on exactly the op
calls of its forward step (same rows, keys and windows; fully masked pairs skipped), with its final out and lse:
P = exp(S - lse) recomputed from the merged lse is that block's exact share of the row's softmax, and
D = rowsum(dO * O) is the whole row's, so the blocks' gradients add up to the single-device ones. dQ stays on the
rank, summed in fp32; the rank adds its dK/dV contributions to the visiting accumulator and passes it on, and after
the last step each accumulator is sent to the rank that owns its shard. The next K/V shard arrives while a step
computes and the previous rank's accumulator is awaited only after the step's backward calls, so both transfers
overlap computation. Memory per rank stays O(S/W · d): two K/V buffers and two fp32 dK/dV buffers.

Not supported: ALiBi (its bias depends on absolute distances the per-step op calls do not see) and gradients
through the returned lse (a non-differentiable output, as in flash-attn).
"""

from __future__ import annotations

import itertools
import time
import zlib
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor
from torch.autograd.function import once_differentiable

from ascend_attn import ops
from ascend_attn.autograd import needs_grad

__all__ = [
    "RingPeerError",
    "SequenceShardError",
    "ShardMismatchError",
    "ring_flash_attn_func",
    "ring_flash_attn_varlen_func",
    "varlen_merge",
    "varlen_split",
    "zigzag_merge",
    "zigzag_split",
]

LAYOUTS = ("zigzag", "contiguous")


class SequenceShardError(ValueError):
    """A sequence length the rank count does not divide (2W for the zig-zag layout, W for the contiguous one)."""


class RingPeerError(RuntimeError):
    """A K/V exchange with a neighbouring rank failed: the peer died, or did not answer within the process group's
    timeout (``init_process_group(timeout=...)``). The ring cannot continue; the process group is unusable."""


class ShardMismatchError(ValueError):
    """The ranks of the group called with shards of different shapes or dtypes, or with different options."""


# ----------------------------------------------------------------------------------------------------------------
# Sharding helpers


def _chunks_per_sequence(layout: str, world_size: int) -> int:
    return 2 * world_size if layout == "zigzag" else world_size


def _rank_chunks(layout: str, world_size: int, rank: int) -> tuple[int, ...]:
    """Chunk indices (in the global sequence) rank ``rank`` holds, in local order."""
    return (rank, 2 * world_size - 1 - rank) if layout == "zigzag" else (rank,)


def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")


def _check_world_size(world_size: int) -> None:
    if not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be a positive int, got {world_size!r}")


def zigzag_split(x: Tensor, world_size: int, dim: int = 1) -> list[Tensor]:
    """Splits a full sequence into the zig-zag shards of :func:`ring_flash_attn_func` (``causal=True``).

    Args:
        x: any tensor whose ``dim`` is the sequence axis of length S, e.g. BSND ``[batch, S, heads, head_dim]``
            (``dim=1``) or an lse ``[batch, heads, S]`` (``dim=2``).
        world_size: W, the number of ranks; 2W must divide S.

    Returns:
        W tensors (copies); shard r holds chunks r and 2W - 1 - r of the 2W equal chunks of ``x`` along ``dim``.

    Raises:
        SequenceShardError: S is not divisible by 2W.
    """
    _check_world_size(world_size)
    length = x.shape[dim]
    if length % (2 * world_size) != 0:
        raise SequenceShardError(
            f"x.shape[{dim}] = {length} must be divisible by 2 * world_size = {2 * world_size} for the zig-zag split "
            "(every rank holds two equal chunks)"
        )
    chunks = x.chunk(2 * world_size, dim=dim)
    return [torch.cat([chunks[r], chunks[2 * world_size - 1 - r]], dim=dim) for r in range(world_size)]


def zigzag_merge(shards: list[Tensor] | tuple[Tensor, ...], dim: int = 1) -> Tensor:
    """Inverse of :func:`zigzag_split`: the W shards (e.g. every rank's output, gathered) back in sequence order.

    Args:
        shards: W tensors of equal shape, each holding two equal chunks along ``dim``.

    Returns:
        One tensor with ``W * shards[0].shape[dim]`` entries along ``dim``.
    """
    world_size = len(shards)
    if world_size == 0:
        raise ValueError("shards must not be empty")
    length = shards[0].shape[dim]
    if length % 2 != 0 or any(s.shape != shards[0].shape for s in shards):
        raise SequenceShardError(
            f"shards must have equal shapes with an even length along dim {dim}, got {[tuple(s.shape) for s in shards]}"
        )
    halves = [s.chunk(2, dim=dim) for s in shards]
    return torch.cat([h[0] for h in halves] + [h[1] for h in reversed(halves)], dim=dim)


def _host_lengths(cu_seqlens: Tensor, name: str) -> list[int]:
    if cu_seqlens.dim() != 1 or cu_seqlens.dtype != torch.int32 or cu_seqlens.numel() < 2:
        raise ValueError(
            f"{name} must be a 1-D int32 tensor with batch + 1 >= 2 entries, got {cu_seqlens.dtype} "
            f"{tuple(cu_seqlens.shape)}"
        )
    cu = cu_seqlens.tolist()
    if cu[0] != 0:
        raise ValueError(f"{name}[0] must be 0, got {cu[0]}")
    lengths = [b - a for a, b in zip(cu[:-1], cu[1:], strict=True)]
    if any(n < 0 for n in lengths):
        raise ValueError(f"{name} must be non-decreasing, got {cu}")
    return lengths


def _varlen_index(lengths: list[int], layout: str, world_size: int, rank: int, device) -> Tensor:
    """Rows of the global packed sequence that form rank ``rank``'s shard, in local order (int64)."""
    parts, start = [], 0
    n_chunks = _chunks_per_sequence(layout, world_size)
    for n in lengths:
        c = n // n_chunks
        parts += [torch.arange(start + j * c, start + (j + 1) * c) for j in _rank_chunks(layout, world_size, rank)]
        start += n
    return torch.cat(parts).to(device) if parts else torch.zeros(0, dtype=torch.long, device=device)


def _check_varlen_divisible(lengths: list[int], layout: str, world_size: int, name: str) -> None:
    n_chunks = _chunks_per_sequence(layout, world_size)
    for b, n in enumerate(lengths):
        if n % n_chunks != 0:
            rule = "2 * world_size" if layout == "zigzag" else "world_size"
            raise SequenceShardError(
                f"sequence {b} of {name} has length {n}, which is not divisible by {rule} = {n_chunks} "
                f"(the {layout} layout splits every sequence into {n_chunks} equal chunks); pad it"
            )


def varlen_split(
    x: Tensor, cu_seqlens: Tensor, world_size: int, layout: str = "zigzag", dim: int = 0
) -> tuple[list[Tensor], Tensor]:
    """Splits packed variable-length sequences into the per-rank shards of :func:`ring_flash_attn_varlen_func`.

    Every sequence is split on its own: with ``layout="zigzag"`` sequence b of length L_b is cut into 2W chunks of
    L_b / (2W) tokens and rank r takes chunks r and 2W - 1 - r; with ``"contiguous"`` it is cut into W chunks and
    rank r takes chunk r. A rank's shard packs its pieces in sequence order, so sequence b occupies
    ``L_b / W`` consecutive rows of every shard and all ranks share one local ``cu_seqlens = cu_seqlens / W``::

        lengths [8, 4], W = 2, zigzag:   seq 0 chunks a0 a1 a2 a3, seq 1 chunks b0 b1 b2 b3 (a: 2, b: 1 token)
        rank 0: a0 a3 b0 b3      rank 1: a1 a2 b1 b2      local cu_seqlens [0, 4, 6]

    Args:
        x: packed tensor whose ``dim`` is the token axis of length ``cu_seqlens[-1]``, e.g. TND
            ``[total, heads, head_dim]`` (``dim=0``) or an lse ``[heads, total]`` (``dim=1``).
        cu_seqlens: int32 ``[batch + 1]``, the global cumulative sequence lengths (0 first, non-decreasing).
        world_size: W.
        layout: ``"zigzag"`` (for causal attention) or ``"contiguous"``.

    Returns:
        ``(shards, local_cu_seqlens)``: W tensors with ``cu_seqlens[-1] / W`` entries along ``dim`` and the int32
        ``[batch + 1]`` cu_seqlens of every shard (on cu_seqlens' device).

    Raises:
        SequenceShardError: a sequence length is not divisible by 2W (zigzag) or W (contiguous).
    """
    _check_world_size(world_size)
    _check_layout(layout)
    lengths = _host_lengths(cu_seqlens, "cu_seqlens")
    if x.shape[dim] != sum(lengths):
        raise ValueError(f"x.shape[{dim}] = {x.shape[dim]} must equal cu_seqlens[-1] = {sum(lengths)}")
    _check_varlen_divisible(lengths, layout, world_size, "cu_seqlens")
    shards = [x.index_select(dim, _varlen_index(lengths, layout, world_size, r, x.device)) for r in range(world_size)]
    return shards, torch.div(cu_seqlens, world_size, rounding_mode="floor")


def varlen_merge(
    shards: list[Tensor] | tuple[Tensor, ...], cu_seqlens: Tensor, layout: str = "zigzag", dim: int = 0
) -> Tensor:
    """Inverse of :func:`varlen_split`: the W shards back into the global packed order.

    Args:
        shards: W tensors (every rank's shard, e.g. its output ``[total / W, heads, head_dim_v]`` or lse
            ``[heads, total / W]``), in rank order.
        cu_seqlens: int32 ``[batch + 1]``, the *global* cumulative sequence lengths given to :func:`varlen_split`.
        layout: the layout the shards were made with.

    Returns:
        One tensor with ``cu_seqlens[-1]`` entries along ``dim``.
    """
    _check_layout(layout)
    world_size = len(shards)
    _check_world_size(world_size)
    lengths = _host_lengths(cu_seqlens, "cu_seqlens")
    _check_varlen_divisible(lengths, layout, world_size, "cu_seqlens")
    total = sum(lengths)
    if any(s.shape[dim] * world_size != total for s in shards):
        raise ValueError(f"every shard must have cu_seqlens[-1] / W = {total // world_size} entries along dim {dim}")
    device = shards[0].device
    index = torch.cat([_varlen_index(lengths, layout, world_size, r, device) for r in range(world_size)])
    gathered = torch.cat(list(shards), dim=dim)
    out = torch.empty_like(gathered)
    return out.index_copy_(dim, index, gathered)


# ----------------------------------------------------------------------------------------------------------------
# Planning: which (query rows, key rows, window) op calls one ring step needs. Pure functions of the shapes.


def _band_block(lq: int, lk: int, lo: int | None, hi: int | None) -> tuple[int, int, int, int, int, int] | None:
    """The op call that computes a band-masked block exactly.

    Query i (of lq) sees key j (of lk) iff ``lo <= j - i <= hi`` (None = unbounded). Returns None when no pair is
    visible, else ``(i0, i1, j0, j1, left, right)``: rows ``[i0, i1)`` and keys ``[j0, j1)`` are the ones that see
    anything, and the op's bottom-right aligned ``window_size=(left, right)`` on that sub-block (-1 = unbounded)
    is exactly the band. Every row in ``[i0, i1)`` sees at least one key; rows outside see none.
    """
    i0 = 0 if hi is None else max(0, -hi)
    i1 = lq if lo is None else min(lq, lk - lo)
    j0 = 0 if lo is None else max(0, lo)
    j1 = lk if hi is None else min(lk, lq + hi)
    if i0 >= i1 or j0 >= j1:
        return None
    rows, keys = i1 - i0, j1 - j0
    shift, diag = i0 - j0, keys - rows  # band in trimmed indices: lo + shift <= j' - i' <= hi + shift
    left = -1 if lo is None or lo + shift <= -(rows - 1) else diag - (lo + shift)
    right = -1 if hi is None or hi + shift >= keys - 1 else (hi + shift) - diag
    # Trimming to the visible rows and keys always puts the op's diagonal inside the band (see the tests).
    assert left >= -1 and right >= -1, (lq, lk, lo, hi)
    return i0, i1, j0, j1, left, right


@dataclass(frozen=True)
class _Task:
    """One op call: query rows and key rows of the local shards (one ``(start, length)`` run per sequence)."""

    q_runs: tuple[tuple[int, int], ...]
    k_runs: tuple[tuple[int, int], ...]
    window: tuple[int, int]


@dataclass(frozen=True)
class _Plan:
    """Shapes and options every rank shares; the ring's schedule is a pure function of them."""

    layout: str
    world_size: int
    starts: tuple[int, ...]  # row of every local sequence in the packed shard
    chunk_lens: tuple[int, ...]  # chunk length of every sequence (its local length / chunks per rank)
    left: int  # -1 = unbounded
    right: int  # -1 = unbounded; 0 with causal

    @property
    def no_window(self) -> bool:
        """Only the causal mask or none: the block structure is the same for every chunk length."""
        return self.left < 0 and self.right <= 0

    def _bounds(self, delta: int) -> tuple[int | None, int | None]:
        """Band of ``j - i`` for a query chunk ``delta`` tokens after the key chunk."""
        return (None if self.left < 0 else delta - self.left), (None if self.right < 0 else delta + self.right)

    def pair(self, q_chunk: int, k_chunk: int, c: int):
        return _band_block(c, c, *self._bounds((q_chunk - k_chunk) * c))

    def steps(self) -> int:
        """Ring steps (K/V shards visited, including the local one) after which no rank has visible keys left."""
        if self.no_window:
            return self.world_size
        # Smaller chunks put every pair of chunks closer, so the shortest chunk decides which pairs are visible.
        c = min((c for c in self.chunk_lens if c > 0), default=0)
        if c == 0:
            return 1
        w = self.world_size
        for i in range(w - 1, 0, -1):
            for r in range(w):
                s = (r - i) % w
                qc, kc = _rank_chunks(self.layout, w, r), _rank_chunks(self.layout, w, s)
                if any(self.pair(a, b, c) is not None for a in qc for b in kc):
                    return i + 1
        return 1

    def tasks(self, rank: int, src: int) -> list[_Task]:
        """Op calls of ``rank`` for the K/V shard of rank ``src``."""
        w = self.world_size
        q_chunks, k_chunks = _rank_chunks(self.layout, w, rank), _rank_chunks(self.layout, w, src)
        live = [b for b, c in enumerate(self.chunk_lens) if c > 0]
        if self.no_window:
            # One group: which pairs are full, causal-diagonal or empty does not depend on the chunk length.
            groups = [live] if live else []
        else:
            by_len: dict[int, list[int]] = {}
            for b in live:
                by_len.setdefault(self.chunk_lens[b], []).append(b)
            groups = list(by_len.values())
        tasks = []
        for seqs in groups:
            tasks += self._group_tasks(seqs, rank, src, q_chunks, k_chunks)
        return tasks

    def _runs(self, seqs, first: int, count: int, trim: tuple[int, int] | None = None) -> tuple:
        """Rows of segments ``first .. first + count - 1`` of every sequence, optionally trimmed to [a, b)."""
        runs = []
        for b in seqs:
            c, start = self.chunk_lens[b], self.starts[b] + first * self.chunk_lens[b]
            runs.append((start + trim[0], trim[1] - trim[0]) if trim else (start, count * c))
        return tuple(runs)

    def _group_tasks(self, seqs, rank, src, q_chunks, k_chunks) -> list[_Task]:
        n_q, n_k = len(q_chunks), len(k_chunks)
        if self.no_window and self.right == 0 and rank == src:
            # The causal diagonal step: the local chunks are in position order, so one causal call is exact.
            return [_Task(self._runs(seqs, 0, n_q), self._runs(seqs, 0, n_k), (-1, 0))]
        c = 2 if self.no_window else self.chunk_lens[seqs[0]]  # any c >= 2 classifies the no-window pairs
        blocks = {(a, b): self.pair(q_chunks[a], k_chunks[b], c) for a in range(n_q) for b in range(n_k)}
        visible = {key: blk for key, blk in blocks.items() if blk is not None}
        if not visible:
            return []
        rows = sorted({a for a, _ in visible})
        cols = sorted({b for _, b in visible})
        full = (0, c, 0, c, -1, -1)
        if len(visible) == len(rows) * len(cols) and all(blk == full for blk in visible.values()):
            # A rectangle of unmasked pairs (segments 0..1 are adjacent rows): one call without a mask.
            return [
                _Task(
                    self._runs(seqs, rows[0], len(rows)),
                    self._runs(seqs, cols[0], len(cols)),
                    (-1, -1),
                )
            ]
        tasks = []
        for (a, b), (i0, i1, j0, j1, left, right) in visible.items():
            if self.no_window:  # c was symbolic: the block is the whole pair of chunks
                tasks.append(_Task(self._runs(seqs, a, 1), self._runs(seqs, b, 1), (left, right)))
            else:
                tasks.append(_Task(self._runs(seqs, a, 1, (i0, i1)), self._runs(seqs, b, 1, (j0, j1)), (left, right)))
        return tasks


# ----------------------------------------------------------------------------------------------------------------
# Communication


def _peer_error(caller: str, rank: int, world: int, what: str, err: Exception) -> RingPeerError:
    return RingPeerError(
        f"{caller} on rank {rank} of {world}: {what} failed. A peer process died or did not answer within the "
        f"process group's timeout (init_process_group(timeout=...)); the process group cannot be used further. "
        f"Cause: {type(err).__name__}: {err}"
    )


class _RingComm:
    """Exchanges ``what`` (e.g. the K/V shards) with the ranks ``hops`` away on ``group``: sends to rank + hops and
    receives from rank - hops (1 by default: the ring's next and previous). Errors become :class:`RingPeerError`.

    Messages of different kinds (``tag``) match only each other, so the backward's K/V and dK/dV exchanges between
    the same two ranks cannot be paired with one another whatever order the backend delivers them in.
    """

    def __init__(self, group, caller: str, what: str = "K/V", tag: int = 0):
        self.group = group
        self.caller = caller
        self.what = what
        self.tag = tag
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)

    def _peers(self, hops: int) -> tuple[int, int]:
        """(source, destination) of an exchange ``hops`` ranks along the ring."""
        return (self.rank - hops) % self.world_size, (self.rank + hops) % self.world_size

    def _fail(self, step: int, hops: int, err: Exception) -> RingPeerError:
        src, dst = self._peers(hops)
        return _peer_error(
            self.caller,
            self.rank,
            self.world_size,
            f"the {self.what} exchange of ring step {step} (receive from rank {src}, send to rank {dst})",
            err,
        )

    def start(self, send: Tensor, recv: Tensor, step: int, hops: int = 1) -> list:
        src, dst = self._peers(hops)
        ops_ = [
            dist.P2POp(dist.isend, send, group=self.group, group_peer=dst, tag=self.tag),
            dist.P2POp(dist.irecv, recv, group=self.group, group_peer=src, tag=self.tag),
        ]
        try:
            return dist.batch_isend_irecv(ops_)
        except RuntimeError as err:
            raise self._fail(step, hops, err) from err

    def wait(self, works: list, step: int, hops: int = 1) -> None:
        try:
            for work in works:
                work.wait()
        except RuntimeError as err:
            raise self._fail(step, hops, err) from err


# ----------------------------------------------------------------------------------------------------------------
# The ring forward and backward


def _resolve_group(group, caller: str):
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError(
            f"{caller} needs torch.distributed: call torch.distributed.init_process_group (e.g. under torchrun) "
            "first, or pass the process group as group="
        )
    return group if group is not None else dist.group.WORLD


def _check_window(window_size) -> tuple[int, int]:
    if len(window_size) != 2 or any(int(w) != w or w < -1 for w in window_size):
        raise ValueError(f"window_size must be (left, right) with entries >= 0, or -1 for unbounded, got {window_size}")
    return int(window_size[0]), int(window_size[1])


class _Rows:
    """The rows of a task's runs in a packed shard: a view when the runs are consecutive, an index (built once per
    distinct set of runs) else; and the cu_seqlens of the runs (built once per distinct set of lengths)."""

    def __init__(self, device):
        self.device = device
        self._rows: dict[tuple, slice | Tensor] = {}
        self._cu: dict[tuple, Tensor] = {}

    def _select(self, runs: tuple) -> slice | Tensor:
        if runs not in self._rows:
            if all(runs[i][0] + runs[i][1] == runs[i + 1][0] for i in range(len(runs) - 1)):
                self._rows[runs] = slice(runs[0][0], runs[-1][0] + runs[-1][1])
            else:
                self._rows[runs] = torch.cat([torch.arange(s, s + n) for s, n in runs]).to(self.device)
        return self._rows[runs]

    def _cu_seqlens(self, runs: tuple) -> Tensor:
        lengths = tuple(n for _, n in runs)
        if lengths not in self._cu:
            self._cu[lengths] = torch.tensor([0, *itertools.accumulate(lengths)], dtype=torch.int32, device=self.device)
        return self._cu[lengths]

    @staticmethod
    def _take(x: Tensor, sel: slice | Tensor, dim: int = 0) -> Tensor:
        if isinstance(sel, slice):
            return x[sel] if dim == 0 else x[:, sel]
        return x.index_select(dim, sel)


def _add_rows(acc: Tensor, sel: slice | Tensor, grad: Tensor) -> None:
    """``acc[sel] += grad`` along the token axis, in acc's dtype (fp32: the per-step gradients are summed there)."""
    if isinstance(sel, slice):
        acc[sel] += grad
    else:
        acc.index_add_(0, sel, grad.to(acc.dtype))


class _Accumulator(_Rows):
    """This rank's output rows, merged in fp32 from the op calls of every step (out ``[T, H, Dv]``, lse ``[H, T]``)."""

    def __init__(self, total: int, heads: int, head_dim_v: int, device, softmax_scale, softcap: float):
        super().__init__(device)
        self.total = total
        self.softmax_scale, self.softcap = softmax_scale, softcap
        self.out = torch.zeros(total, heads, head_dim_v, dtype=torch.float32, device=device)
        self.lse = torch.full((heads, total), float("-inf"), dtype=torch.float32, device=device)
        self.untouched = True  # still zeros / -inf

    def attend(self, task: _Task, q: Tensor, k: Tensor, v: Tensor) -> None:
        """Runs one op call of q's task rows over k/v's task rows and merges it into the accumulator."""
        q_sel, k_sel = self._select(task.q_runs), self._select(task.k_runs)
        out, lse = ops.flash_attention_varlen(
            self._take(q, q_sel),
            self._take(k, k_sel),
            self._take(v, k_sel),
            self._cu_seqlens(task.q_runs),
            self._cu_seqlens(task.k_runs),
            max(n for _, n in task.q_runs),
            max(n for _, n in task.k_runs),
            self.softmax_scale,
            False,
            task.window,
            self.softcap,
            None,
            return_lse=True,
        )
        if self.untouched and isinstance(q_sel, slice) and q_sel == slice(0, self.total):
            self.out, self.lse = out.float(), lse
        else:
            out, lse = ops.merge_attn_states(
                self._take(self.out, q_sel), self._take(self.lse, q_sel, dim=1), out.float(), lse
            )
            if isinstance(q_sel, slice):
                self.out[q_sel] = out
                self.lse[:, q_sel] = lse
            else:
                self.out.index_copy_(0, q_sel, out)
                self.lse.index_copy_(1, q_sel, lse)
        self.untouched = False


class _GradAccumulator(_Rows):
    """The backward of one rank's queries: dQ accumulated in fp32 ``[T, H, D]`` over the steps, and per op call the
    dK/dV contributions to the visiting K/V shard.

    Every call is the backward op on the task's (query rows, key rows, window) of the forward with this rank's
    *final* out and lse: the op recomputes P = exp(S - lse) and D = rowsum(dO * O), which with the merged lse are the
    block's exact share of the whole row's softmax and its gradient, so the calls' gradients sum to the full one.
    """

    def __init__(self, dout, q, out, lse, softmax_scale, softcap: float, deterministic: bool):
        super().__init__(q.device)
        self.dout, self.q, self.out, self.lse = dout, q, out, lse
        self.softmax_scale, self.softcap, self.deterministic = softmax_scale, softcap, deterministic
        self.dq = torch.zeros(q.shape, dtype=torch.float32, device=q.device)

    def attend(self, task: _Task, k: Tensor, v: Tensor) -> tuple[slice | Tensor, Tensor, Tensor]:
        """Runs one backward op call and adds its dQ; returns ``(key rows, dk, dv)`` (in k's and v's dtypes)."""
        q_sel, k_sel = self._select(task.q_runs), self._select(task.k_runs)
        dq, dk, dv = ops.flash_attention_varlen_backward(
            self._take(self.dout, q_sel),
            self._take(self.q, q_sel),
            self._take(k, k_sel),
            self._take(v, k_sel),
            self._take(self.out, q_sel),
            self._take(self.lse, q_sel, dim=1),
            self._cu_seqlens(task.q_runs),
            self._cu_seqlens(task.k_runs),
            max(n for _, n in task.q_runs),
            max(n for _, n in task.k_runs),
            self.softmax_scale,
            False,
            task.window,
            self.softcap,
            None,
            self.deterministic,
        )
        _add_rows(self.dq, q_sel, dq)
        return k_sel, dk, dv


def _ring_forward(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    plan: _Plan,
    group,
    softmax_scale: float | None,
    softcap: float,
    caller: str,
    timings: list | None = None,
) -> tuple[Tensor, Tensor]:
    """The ring on packed local shards: q ``[T, H, D]``, k ``[T, Hk, D]``, v ``[T, Hk, Dv]``.

    Returns ``(out [T, H, Dv] in q's dtype, lse fp32 [H, T])``. ``timings`` (CPU benchmarking only; NPU ops are
    asynchronous) receives one ``(compute_s, exposed_wait_s)`` per ring step.
    """
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    steps = plan.steps()
    acc = _Accumulator(q.shape[0], q.shape[1], v.shape[-1], q.device, softmax_scale, softcap)
    buffers, comm, nk = [], None, k.numel()
    if steps > 1:
        # K and V travel as one message; two buffers alternate between "attending" and "receiving".
        buffers = [torch.empty(nk + v.numel(), dtype=k.dtype, device=k.device) for _ in range(2)]
        buffers[0][:nk].view(k.shape).copy_(k)
        buffers[0][nk:].view(v.shape).copy_(v)
        comm = _RingComm(group, caller)
    for step in range(steps):
        works = comm.start(buffers[step % 2], buffers[(step + 1) % 2], step) if step + 1 < steps else []
        start = time.perf_counter()
        if step == 0:
            ks, vs = k, v
        else:
            ks, vs = buffers[step % 2][:nk].view(k.shape), buffers[step % 2][nk:].view(v.shape)
        for task in plan.tasks(rank, (rank - step) % world):
            acc.attend(task, q, ks, vs)
        computed = time.perf_counter()
        if works:
            comm.wait(works, step)
        if timings is not None:
            timings.append((computed - start, time.perf_counter() - computed))
    return acc.out.to(q.dtype), acc.lse


def _ring_backward(
    dout: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    out: Tensor,
    lse: Tensor,
    plan: _Plan,
    group,
    softmax_scale: float | None,
    softcap: float,
    caller: str,
    deterministic: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of :func:`_ring_forward` (same packed shards; ``out`` and ``lse`` are what it returned).

    The K/V shards visit the ranks in the forward's order, and with each shard travels a fp32 dK/dV accumulator:
    at step i rank r holds the K/V of rank s = r - i and the sum of the contributions ranks s .. r - 1 made to it,
    adds its own (the same tasks as the forward's step) and passes it on. After the last step every accumulator
    goes straight to the shard's owner (the next rank when the ring ran all W steps; when a short window ended it
    early, the rank ``steps - 1`` back). The next K/V shard is received while a step computes, as in the forward;
    the accumulator from the previous rank is awaited only after this step's backward calls, so its transfer
    overlaps them too.

    Returns ``(dq, dk, dv)`` in q's, k's and v's dtype, summed in fp32.
    """
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    steps = plan.steps()
    grads = _GradAccumulator(dout, q, out, lse, softmax_scale, softcap, deterministic)
    nk, nv = k.numel(), v.numel()
    # acc: the dK/dV of the shard this rank is visited by; spare: receives the previous rank's accumulator.
    acc = torch.zeros(nk + nv, dtype=torch.float32, device=k.device)
    kv_buffers, spare, kv_comm, dkv_comm = [], None, None, None
    if steps > 1:
        kv_buffers = [torch.empty(nk + nv, dtype=k.dtype, device=k.device) for _ in range(2)]
        kv_buffers[0][:nk].view(k.shape).copy_(k)
        kv_buffers[0][nk:].view(v.shape).copy_(v)
        spare = torch.empty_like(acc)
        kv_comm = _RingComm(group, caller, "K/V", tag=0)
        dkv_comm = _RingComm(group, caller, "dK/dV", tag=1)
    dkv_works, hops = [], 1
    for step in range(steps):
        kv_works = kv_comm.start(kv_buffers[step % 2], kv_buffers[(step + 1) % 2], step) if step + 1 < steps else []
        if step == 0:
            ks, vs = k, v
        else:
            ks, vs = kv_buffers[step % 2][:nk].view(k.shape), kv_buffers[step % 2][nk:].view(v.shape)
        contributions = [grads.attend(task, ks, vs) for task in plan.tasks(rank, (rank - step) % world)]
        if dkv_works:
            dkv_comm.wait(dkv_works, step - 1, hops)
            acc, spare = spare, acc  # the received accumulator is this step's; the sent one is free again
        for k_sel, dk, dv in contributions:
            _add_rows(acc[:nk].view(k.shape), k_sel, dk)
            _add_rows(acc[nk:].view(v.shape), k_sel, dv)
        if steps > 1:
            # After the last step the accumulator holds every contribution to shard rank - (steps - 1): its owner.
            hops = 1 if step + 1 < steps else -(steps - 1)
            dkv_works = dkv_comm.start(acc, spare, step, hops)
        if kv_works:
            kv_comm.wait(kv_works, step)
    if dkv_works:
        dkv_comm.wait(dkv_works, steps - 1, hops)
        acc = spare
    dk, dv = acc[:nk].view(k.shape), acc[nk:].view(v.shape)
    return grads.dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype)


class _RingAttention(torch.autograd.Function):
    """The ring over packed local shards with its backward: ``apply(q, k, v, plan, group, softmax_scale, softcap,
    caller) -> (out, lse)``; lse is not differentiable (as in flash-attn)."""

    @staticmethod
    def forward(ctx, q, k, v, plan, group, softmax_scale, softcap, caller):
        out, lse = _ring_forward(q, k, v, plan, group, softmax_scale, softcap, caller)
        ctx.mark_non_differentiable(lse)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.ring = (plan, group, softmax_scale, softcap, f"{caller} backward")
        ctx.deterministic = torch.are_deterministic_algorithms_enabled()
        return out, lse

    @staticmethod
    @once_differentiable
    def backward(ctx, dout, _dlse):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = _ring_backward(dout.contiguous(), q, k, v, out, lse, *ctx.ring, ctx.deterministic)
        return dq, dk, dv, None, None, None, None, None


def _ring(q, k, v, plan, group, softmax_scale, softcap, caller, timings=None) -> tuple[Tensor, Tensor]:
    """The ring forward, recorded for autograd when q, k or v require grad (``timings``: no-grad benchmarking)."""
    if needs_grad(q, k, v):
        return _RingAttention.apply(q, k, v, plan, group, softmax_scale, softcap, caller)
    return _ring_forward(q, k, v, plan, group, softmax_scale, softcap, caller, timings)


def _validate_with_op(q: Tensor, k: Tensor, v: Tensor, softmax_scale, window, softcap) -> None:
    """The op's own argument checks (dtype, heads, head dims, scale, softcap) on zero tokens, before any rank sends."""
    cu = torch.zeros(2, dtype=torch.int32, device=q.device)
    ops.flash_attention_varlen(q[:0], k[:0], v[:0], cu, cu, 0, 0, softmax_scale, False, window, softcap, None)


def _options(caller, q, k, v, group, causal, window_size, layout, dims: int):
    """Checks shared by both entry points. Returns ``(group, world size, layout, left, right)``."""
    group = _resolve_group(group, caller)
    layout = layout if layout is not None else ("zigzag" if causal else "contiguous")
    _check_layout(layout)
    left, right = _check_window(window_size)
    what = "a BSND shard [batch, seqlen, heads, head_dim]" if dims == 4 else "a TND shard [total, heads, head_dim]"
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != dims:
            raise ValueError(f"{name} must be {what}, got shape {tuple(t.shape)}")
    for name, t in (("k", k), ("v", v)):
        if t.shape[: dims - 2] != q.shape[: dims - 2]:
            raise ValueError(
                f"{name} must have q's leading shape {tuple(q.shape[: dims - 2])} (the same tokens), got "
                f"{tuple(t.shape)}"
            )
    return group, dist.get_world_size(group), layout, left, 0 if causal else right


_DTYPE_CODES = {torch.float32: 1, torch.float16: 2, torch.bfloat16: 3}


def _check_ranks_agree(group, caller: str, tensors: dict[str, Tensor], options: tuple) -> None:
    """One small all_reduce before anything else is sent: every rank must pass shards of one shape and dtype and the
    same options, or every rank raises :class:`ShardMismatchError` (rather than exchanging buffers of different
    sizes, which aborts a gloo process, or computing with schedules that differ)."""
    if dist.get_world_size(group) == 1:
        return
    fields = [(f"{name}.shape[{i}]", n) for name, t in tensors.items() for i, n in enumerate(t.shape)]
    fields.append(("dtype", _DTYPE_CODES.get(next(iter(tensors.values())).dtype, 0)))
    fields.append(("options (causal, window_size, layout, softcap, softmax_scale, lengths)", _digest(options)))
    values = [v for _, v in fields]
    device = next(iter(tensors.values())).device
    both = torch.tensor(values + [-v for v in values], dtype=torch.int32, device=device)
    try:
        dist.all_reduce(both, op=dist.ReduceOp.MAX, group=group)
    except RuntimeError as err:
        rank, world = dist.get_rank(group), dist.get_world_size(group)
        raise _peer_error(caller, rank, world, "the shape agreement (all_reduce) before the ring", err) from err
    high, low = both[: len(values)].tolist(), [-x for x in both[len(values) :].tolist()]
    differ = [f"{name} from {lo} to {hi}" for (name, _), lo, hi in zip(fields, low, high, strict=True) if lo != hi]
    if differ:
        raise ShardMismatchError(
            f"{caller}: the ranks of the group disagree on {'; '.join(differ)}. Every rank must pass shards of one "
            "shape and dtype (split the sequence with zigzag_split / varlen_split) and the same options."
        )


def _digest(options: tuple) -> int:
    """A 31-bit digest of the options, the same in every process (unlike hash() of strings)."""
    return zlib.crc32(repr(options).encode()) & 0x7FFFFFFF


def _bsnd_plan(q: Tensor, world: int, layout: str, left: int, right: int) -> _Plan:
    """The plan of a BSND shard: ``batch`` sequences of ``seqlen`` local tokens each."""
    batch, seqlen = q.shape[0], q.shape[1]
    segments = len(_rank_chunks(layout, world, 0))
    if seqlen % segments != 0:
        raise SequenceShardError(
            f"q.shape[1] = {seqlen} must be even for the zig-zag layout: 2 * world_size = {2 * world} "
            f"must divide the global length W * seqlen = {world * seqlen} (shard with zigzag_split)"
        )
    return _Plan(layout, world, tuple(b * seqlen for b in range(batch)), (seqlen // segments,) * batch, left, right)


def _tokens_first(x: Tensor) -> Tensor:
    """BSND -> TND: ``[batch * seqlen, heads, dim]`` (a view for contiguous input)."""
    return x.reshape(x.shape[0] * x.shape[1], x.shape[2], x.shape[3])


def ring_flash_attn_func(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    group=None,
    causal: bool = False,
    softmax_scale: float | None = None,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    return_lse: bool = False,
    *,
    layout: str | None = None,
):
    """Attention over a sequence sharded along its tokens across the ranks of ``group`` (context parallelism).

    Every rank calls it with its own shard; the result on each rank is its rows of ``flash_attn_func`` over the
    whole sequence (queries and keys are the same tokens: S_q = S_k = S = W · seqlen). K/V travel the ring with
    ``torch.distributed.batch_isend_irecv``, overlapped with the local attention; see the module docstring.

    Args:
        q: this rank's shard ``[batch, seqlen, heads, head_dim]``, float32 / float16 / bfloat16, on the device of
            the group's backend (CPU for gloo, NPU for HCCL).
        k: ``[batch, seqlen, kv_heads, head_dim]``, the same tokens as q; kv_heads divides heads (GQA / MQA).
        v: ``[batch, seqlen, kv_heads, head_dim_v]``.
        group: the process group (default: the world). Its size is W; its timeout bounds every wait.
        causal: causal mask over the global positions. **Expects zig-zag shards** (:func:`zigzag_split`): rank r
            holds chunks r and 2W - 1 - r of the 2W equal chunks of the sequence, so seqlen must be even.
        softmax_scale: default ``1 / sqrt(head_dim)``.
        window_size: ``(left, right)`` over global positions, -1 = unbounded: query p sees key t iff
            ``p - left <= t <= p + right`` (right is 0 with causal). Exact for every window and layout.
        softcap: > 0 applies ``softcap * tanh(score / softcap)``.
        return_lse: also return the log-sum-exp.
        layout: ``"zigzag"`` (default with causal) or ``"contiguous"`` (default without: rank r holds tokens
            ``[r·seqlen, (r+1)·seqlen)``; correct but unbalanced with causal). Without causal and window any equal
            split works.

    Returns:
        out ``[batch, seqlen, heads, head_dim_v]`` in q's dtype (this rank's rows, merged in fp32), or
        ``(out, lse)`` with lse float32 ``[batch, heads, seqlen]`` when ``return_lse``.

    Raises:
        SequenceShardError: causal / zig-zag shards with an odd seqlen (2W does not divide S).
        ValueError: k or v not of q's batch and seqlen, a bad window_size or layout; the op's checks (dtype, heads,
            head dims) run before any communication.
        ShardMismatchError: the ranks passed shards of different shapes or dtypes, or different options (checked
            by one small all_reduce before the ring; every rank raises).
        RingPeerError: a neighbouring rank died or did not answer within the process group's timeout (gloo raises
            from the wait; HCCL, like NCCL, may enforce its timeout from a watchdog instead).

    Differentiable in q, k and v (the ring backward; see the module docstring): a backward through out (e.g.
    ``loss.backward()``) gives every rank ``q.grad``, ``k.grad`` and ``v.grad`` of its own shards, with their shapes
    and dtypes, summed in fp32 (for GQA / MQA dk and dv per kv head). The backward is a collective: every rank of the
    group must run it, or the others wait until the group's timeout and raise :class:`RingPeerError`. lse is not
    differentiable. ``torch.use_deterministic_algorithms(True)`` is passed to the backward op, like
    flash-attn's ``deterministic`` (the CPU backward always is); a backward that fails on a peer raises
    :class:`RingPeerError` naming the K/V or dK/dV exchange and the step.
    """
    out, lse = _ring_bsnd(q, k, v, group, causal, softmax_scale, window_size, softcap, layout)
    return (out, lse) if return_lse else out


def _ring_bsnd(q, k, v, group, causal, softmax_scale, window_size, softcap, layout, timings=None):
    """:func:`ring_flash_attn_func` with the lse always returned (``timings`` as in :func:`_ring_forward`)."""
    caller = "ring_flash_attn_func"
    group, world, layout, left, right = _options(caller, q, k, v, group, causal, window_size, layout, dims=4)
    _check_ranks_agree(group, caller, {"q": q, "k": k, "v": v}, (right, left, layout, softcap, softmax_scale))
    plan = _bsnd_plan(q, world, layout, left, right)
    flat = [_tokens_first(x) for x in (q, k, v)]
    _validate_with_op(*flat, softmax_scale, (left, right), softcap)
    out, lse = _ring(*flat, plan, group, softmax_scale, softcap, caller, timings)
    batch, seqlen, heads = q.shape[:3]
    return out.view(batch, seqlen, heads, out.shape[-1]), lse.view(heads, batch, seqlen).transpose(0, 1).contiguous()


def ring_flash_attn_varlen_func(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    cu_seqlens: Tensor,
    max_seqlen: int,
    group=None,
    causal: bool = False,
    softmax_scale: float | None = None,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    return_lse: bool = False,
    *,
    layout: str | None = None,
):
    """Ring attention over packed variable-length sequences, each sequence sharded across the ranks of ``group``.

    Sharding (:func:`varlen_split` makes it, :func:`varlen_merge` undoes it): every sequence is split on its own,
    into 2W equal chunks with ``layout="zigzag"`` (rank r keeps chunks r and 2W - 1 - r) or W chunks with
    ``"contiguous"`` (rank r keeps chunk r); each rank packs its pieces in sequence order. So sequence b has
    ``L_b / W`` rows on every rank and all ranks pass the same local ``cu_seqlens`` (the global one divided by W).

    Args:
        q: this rank's packed shard ``[total, heads, head_dim]`` (total = global tokens / W).
        k: ``[total, kv_heads, head_dim]``, the same tokens; v: ``[total, kv_heads, head_dim_v]``.
        cu_seqlens: int32 ``[batch + 1]``, the *local* cumulative lengths, identical on every rank; with the
            zig-zag layout every local length must be even (2W divides every global length).
        max_seqlen: an upper bound of the local lengths (as in ``flash_attn_varlen_func``).
        group, causal, softmax_scale, window_size, softcap, return_lse, layout: as in :func:`ring_flash_attn_func`,
            masks applied per sequence over its global positions; causal expects zig-zag shards.

    Returns:
        out ``[total, heads, head_dim_v]`` in q's dtype, or ``(out, lse)`` with lse float32 ``[heads, total]``.

    Raises:
        The errors of :func:`ring_flash_attn_func`; SequenceShardError names the sequence whose local length is odd.

    Differentiable in q, k and v, as :func:`ring_flash_attn_func`: every rank gets the gradients of its packed shards.
    """
    caller = "ring_flash_attn_varlen_func"
    group, world, layout, left, right = _options(caller, q, k, v, group, causal, window_size, layout, dims=3)
    lengths = _host_lengths(cu_seqlens, "cu_seqlens")
    options = (right, left, layout, softcap, softmax_scale, lengths)
    _check_ranks_agree(group, caller, {"q": q, "k": k, "v": v}, options)
    if sum(lengths) != q.shape[0]:
        raise ValueError(
            f"cu_seqlens[-1] = {sum(lengths)} must equal the number of local tokens q.shape[0] = {q.shape[0]}"
        )
    if max_seqlen < max(lengths):
        raise ValueError(f"max_seqlen must be >= the longest local sequence ({max(lengths)}), got {max_seqlen}")
    segments = len(_rank_chunks(layout, world, 0))
    for b, n in enumerate(lengths):
        if n % segments != 0:
            raise SequenceShardError(
                f"sequence {b} has local length {n} (cu_seqlens), which must be even for the zig-zag layout: "
                f"2 * world_size = {2 * world} must divide its global length {world * n} (shard with varlen_split)"
            )
    _validate_with_op(q, k, v, softmax_scale, (left, right), softcap)
    starts = tuple(itertools.accumulate([0, *lengths[:-1]]))
    plan = _Plan(layout, world, starts, tuple(n // segments for n in lengths), left, right)
    out, lse = _ring(q, k, v, plan, group, softmax_scale, softcap, caller)
    return (out, lse) if return_lse else out
