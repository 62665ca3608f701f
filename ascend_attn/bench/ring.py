"""Ring attention benchmark: ascend_attn.distributed vs all-gather-then-attend, W gloo processes on this CPU.

Each rank holds S / W tokens (zig-zag shards with causal, contiguous without). Ring: K/V shards travel the ring
while each rank attends to the shard it holds. Baseline: all-gather K and V (torch.distributed.all_gather), then
one attention of the local queries over the whole sequence (the causal zig-zag shard as two bottom-right aligned
calls). Both run in the same processes, back to back, on the same shards, and their outputs are compared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
SEQLENS = [4096, 8192, 16384]
QUICK_SEQLENS = [1024]

HEADER = [
    "dtype",
    "S",
    "causal",
    "ring ms",
    "all-gather ms",
    "all-gather / ring",
    "max abs diff",
    "ring comm alone ms",
    "ring exposed wait ms",
    "comm hidden",
    "all-gather comm ms",
    "K/V MB in per rank: ring",
    "all-gather",
    "K/V MB held per rank: ring",
    "all-gather",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--world-size", type=int, choices=[2, 4], default=2, help="gloo processes (ranks)")
    parser.add_argument("--quick", action="store_true", help=f"S = {QUICK_SEQLENS} and 2 heads only")
    parser.add_argument("--seqlens", type=int, nargs="+", help=f"global sequence lengths (default {SEQLENS})")
    parser.add_argument("--causal", choices=["both", "yes", "no"], default="both")
    parser.add_argument("--heads", type=int, default=8, help="query heads (kv heads = heads / 4, GQA)")
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument("--threads", type=int, help="torch threads per rank (default: CPU cores / world size)")


def _shard_inputs(seqlen, world, rank, heads, head_dim, dtype):
    """This rank's q/k/v shard [1, S / W, heads, head_dim] (random; timing does not depend on the values)."""
    g = torch.Generator().manual_seed(1000 + rank)
    local = seqlen // world
    q = torch.randn(1, local, heads, head_dim, generator=g).to(dtype)
    k = torch.randn(1, local, max(1, heads // 4), head_dim, generator=g).to(dtype)
    v = torch.randn(1, local, max(1, heads // 4), head_dim, generator=g).to(dtype)
    return q, k, v


def _allgather_attention(q, k, v, causal, world, rank):
    """Baseline: gather the whole K/V on every rank, then attend the local queries to it.

    Returns ``(out, (total_s, all_gather_s))``.
    """
    import ascend_attn
    from ascend_attn.distributed import zigzag_merge

    start = time.perf_counter()
    ks, vs = [torch.empty_like(k) for _ in range(world)], [torch.empty_like(v) for _ in range(world)]
    dist.all_gather(ks, k)
    dist.all_gather(vs, v)
    gathered = time.perf_counter()
    if not causal:
        out = ascend_attn.flash_attn_func(q, torch.cat(ks, dim=1), torch.cat(vs, dim=1))
    else:
        k_all, v_all = zigzag_merge(ks), zigzag_merge(vs)
        c = q.shape[1] // 2
        ends = [(rank + 1) * c, (2 * world - rank) * c]  # each query chunk sees the keys up to its own end
        out = torch.cat(
            [
                ascend_attn.flash_attn_func(q[:, i * c : (i + 1) * c], k_all[:, :end], v_all[:, :end], causal=True)
                for i, end in enumerate(ends)
            ],
            dim=1,
        )
    return out, (time.perf_counter() - start, gathered - start)


def _ring_attention(q, k, v, causal, group):
    """ring_flash_attn_func (all of it) with per-step timings. Returns ``(out, (total_s, compute_s, wait_s))``."""
    from ascend_attn import distributed as ring

    steps = []
    start = time.perf_counter()
    out, _ = ring._ring_bsnd(q, k, v, group, causal, None, (-1, -1), 0.0, None, timings=steps)
    total = time.perf_counter() - start
    return out, (total, sum(s[0] for s in steps), sum(s[1] for s in steps))


def _comm_alone(k, v, group):
    """The ring's K/V exchanges with nothing to overlap: W - 1 send/receive pairs of the packed K/V shard."""
    from ascend_attn import distributed as ring

    comm = ring._RingComm(group, "bench")
    buffers = [torch.cat([k.reshape(-1), v.reshape(-1)]) for _ in range(2)]
    start = time.perf_counter()
    for step in range(comm.world_size - 1):
        comm.wait(comm.start(buffers[step % 2], buffers[(step + 1) % 2], step), step)
    return None, (time.perf_counter() - start,)


def _max_over_ranks(values) -> list[float]:
    t = torch.tensor(list(values), dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()


def _median_ms(samples: list[list[float]], i: int) -> float:
    return statistics.median(s[i] for s in samples) * 1e3


def _rank_main(rank, world, store, out_file, config):
    from ascend_attn.bench.common import progress

    torch.set_num_threads(config["threads"])
    dist.init_process_group(
        "gloo", init_method=f"file://{store}", rank=rank, world_size=world, timeout=timedelta(minutes=10)
    )
    group = dist.group.WORLD
    rows = []
    with torch.no_grad():
        for dname, seqlen, causal in config["cases"]:
            q, k, v = _shard_inputs(seqlen, world, rank, config["heads"], config["head_dim"], DTYPES[dname])
            runs = {
                "ring": lambda: _ring_attention(q, k, v, causal, group),  # noqa: B023  (called in this iteration)
                "base": lambda: _allgather_attention(q, k, v, causal, world, rank),  # noqa: B023
                "comm": lambda: _comm_alone(k, v, group),  # noqa: B023
            }
            samples = {name: [] for name in runs}
            outs = {}
            for i in range(config["warmup"] + config["repeats"]):
                for name, fn in runs.items():  # interleaved, so drifts of the machine hit both alike
                    dist.barrier()
                    outs[name], times = fn()
                    if i >= config["warmup"]:
                        samples[name].append(_max_over_ranks(times))  # the slowest rank decides
            diff = _max_over_ranks([(outs["ring"].float() - outs["base"].float()).abs().max().item()])[0]
            rows.append(
                {
                    "dtype": dname,
                    "seqlen": seqlen,
                    "causal": causal,
                    "ring": [_median_ms(samples["ring"], i) for i in range(3)],
                    "ring_range": (min(s[0] for s in samples["ring"]) * 1e3, max(s[0] for s in samples["ring"]) * 1e3),
                    "base": [_median_ms(samples["base"], i) for i in range(2)],
                    "base_range": (min(s[0] for s in samples["base"]) * 1e3, max(s[0] for s in samples["base"]) * 1e3),
                    "comm": _median_ms(samples["comm"], 0),
                    "kv_shard": (k.numel() + v.numel()) * k.element_size(),
                    "max_diff": diff,
                }
            )
            if rank == 0:
                progress(f"  {dname} S={seqlen} causal={causal}: max |ring - all-gather| = {diff:.2e}")
    if rank == 0:
        torch.save(rows, out_file)
    dist.destroy_process_group()


def run(args: argparse.Namespace) -> str:
    """Measures and returns the Markdown report (also written to ``args.out`` if set)."""
    from ascend_attn.bench.common import report

    return report(args, measure(args))


def measure(args: argparse.Namespace):
    from ascend_attn.bench.common import BenchResult, progress

    world = args.world_size
    cores = os.cpu_count() or 1
    threads = args.threads or max(1, cores // world)
    seqlens = args.seqlens or (QUICK_SEQLENS if args.quick else SEQLENS)
    heads = 2 if args.quick else args.heads
    for s in seqlens:
        if s % (2 * world) != 0:
            raise SystemExit(f"--seqlens: {s} is not divisible by 2 * world size = {2 * world}")
    causals = {"both": [False, True], "yes": [True], "no": [False]}[args.causal]
    dtypes = [args.dtype] if args.dtype else ["bf16"]
    cases = [(d, s, c) for d in dtypes for c in causals for s in seqlens]
    config = {
        "threads": threads,
        "heads": heads,
        "head_dim": args.head_dim,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "cases": cases,
    }
    progress(f"ring benchmark: {world} gloo ranks x {threads} torch threads on {cores} CPU cores, {len(cases)} cases")
    with tempfile.TemporaryDirectory() as tmp:
        out_file = Path(tmp, "rows.pt")
        # Ranks fork from a server that imported torch once (spawned ranks would each import it again).
        mp.set_forkserver_preload(["torch", "torch.distributed", "ascend_attn"])
        mp.start_processes(
            _rank_main,
            args=(world, str(Path(tmp, "store")), str(out_file), config),
            nprocs=world,
            join=True,
            start_method="forkserver",
        )
        measured = torch.load(out_file)

    mb = 1 / 2**20
    rows, speedups = [], []
    for r in measured:
        ring_ms, ring_compute, ring_wait = r["ring"]
        base_ms, base_comm = r["base"]
        hidden = max(0.0, 1.0 - ring_wait / r["comm"]) if r["comm"] > 0 else 1.0
        steps = world  # without a window every step is needed
        shard = r["kv_shard"]
        rows.append(
            [
                r["dtype"],
                r["seqlen"],
                r["causal"],
                f"{ring_ms:.1f} ({r['ring_range'][0]:.1f}-{r['ring_range'][1]:.1f})",
                f"{base_ms:.1f} ({r['base_range'][0]:.1f}-{r['base_range'][1]:.1f})",
                f"{base_ms / ring_ms:.2f}",
                f"{r['max_diff']:.1e}",
                f"{r['comm']:.1f}",
                f"{ring_wait:.1f}",
                f"{100 * hidden:.0f}%",
                f"{base_comm:.1f}",
                f"{(steps - 1) * shard * mb:.1f}",
                f"{(world - 1) * shard * mb:.1f}",
                f"{3 * shard * mb:.1f}",
                f"{(2 * world + 1) * shard * mb:.1f}",
            ]
        )
        speedups.append((f"{r['dtype']} S={r['seqlen']}{' causal' if r['causal'] else ''}", base_ms / ring_ms))
    kv_heads = max(1, heads // 4)
    notes = [
        f"{world} gloo ranks (processes) on one machine with {cores} CPU cores, {threads} torch thread(s) per rank"
        + (" (more ranks than cores: they share cores)" if world * threads > cores else ""),
        f"batch 1, {heads} q heads / {kv_heads} kv heads, head_dim {args.head_dim}; each rank holds S / {world} "
        "tokens (zig-zag shards with causal, contiguous without)",
        f"times: median (min-max) over {args.repeats} runs of the slowest rank, after {args.warmup} warm-up run(s); "
        "ratio > 1: the ring is faster; max abs diff: between the ring's and the baseline's outputs",
        "ring comm alone: the ring's K/V exchanges run without attention; exposed wait: time the ring spent waiting "
        "for K/V after its attention step (summed over steps); comm hidden = 1 - exposed / alone. The wait also "
        "counts waiting for a slower neighbour to post its send, so with more ranks than cores it mostly measures "
        "how unevenly the ranks got CPU time, not communication",
        "K/V MB in per rank: bytes received (counted from the shapes); held: K/V resident at once (ring: the local "
        "shard and two ring buffers; all-gather: the local shard, the gathered list and its merged copy)",
    ]
    return BenchResult("ring", notes, HEADER, rows, speedups)
