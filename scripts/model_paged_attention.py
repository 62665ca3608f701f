"""Modelled Atlas 910B2 decode bandwidth of op_kernel/paged_attention (simulator counters -> per-core roofline).

    python scripts/model_paged_attention.py [--seqs 1 8 64] [--contexts 1024 8192 32768] [--cores 24]

One query token per sequence, 32 q heads / 8 kv heads, head_dim 128, block 128, fp16 by default. Runs the kernel in
the simulator in dry-run mode (exact counters, no arithmetic) and prints the modelled time, the fraction of the
modelled GM bandwidth spent on the K/V bytes decode must read (K and V of every context token once), the KV split
factor and the bound of the slowest core. All times are MODELLED estimates, not NPU measurements.
"""

from __future__ import annotations

import argparse

import torch

from ascend_attn import _sim, sim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seqs", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--contexts", type=int, nargs="+", default=[1024, 8192, 32768])
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--kv-heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument("--block-size", type=int, default=128)
    parser.add_argument("--cores", type=int, default=24)
    args = parser.parse_args()
    bw = _sim.model_gm_bytes_per_second
    print(f"modelled Atlas 910B2, {args.cores} cores, GM {bw / 1e12:.1f} TB/s, launch overhead "
          f"{_sim.model_launch_overhead_us} us assumed; estimates, not measurements")  # fmt: skip
    print("| seqs | context | modelled us | K/V GB/s | fraction of GM BW | KV splits | GM bytes / K/V bytes | bound |")
    print("|---:|---:|---:|---:|---:|---:|---:|:---|")
    h, hk, d, bs = args.heads, args.kv_heads, args.head_dim, args.block_size
    for n in args.seqs:
        for ctx in args.contexts:
            print(f"  simulating {n} x {ctx} ...", flush=True)
            per_seq = -(-ctx // bs)
            # Never touched in a dry run: only the block tables and lengths are read.
            cache = torch.empty(n * per_seq, bs, hk, d, dtype=torch.float16)
            tables = torch.arange(n * per_seq, dtype=torch.int32).view(n, per_seq)
            lens = torch.full((n,), ctx, dtype=torch.int32)
            q = torch.zeros(n, h, d, dtype=torch.float16)
            st = sim.paged_attention(q, cache, cache, tables, lens, num_cores=args.cores, dry_run=True).stats
            kv = 2 * n * ctx * hk * d * 2
            moved = sum(c["gm_read_bytes"] + c["gm_write_bytes"] for c in st.per_core)
            slowest = max(range(len(st.modelled_core_us)), key=st.modelled_core_us.__getitem__)
            rate = kv / (st.modelled_us * 1e-6)
            print(f"| {n} | {ctx} | {st.modelled_us:.1f} | {rate / 1e9:.0f} | {rate / bw:.2f} | {st.kv_splits} | "
                  f"{moved / kv:.2f} | {st.modelled_bound[slowest]} |")  # fmt: skip


if __name__ == "__main__":
    main()
