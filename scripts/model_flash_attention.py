"""Modelled Atlas 910B2 performance of op_kernel/flash_attention (simulator counters -> per-core roofline model).

    python scripts/model_flash_attention.py [--seqlens 4096 8192] [--heads 32] [--head-dim 128] [--cores 24]

Runs the kernel in the simulator in dry-run mode (exact counters, no arithmetic) and prints, per shape: the modelled
TFLOPS and its fraction of the cube peak, GM bytes over the ideal minimum (Q read once, K and V read once per q tile
of 128 rows, O written once) and the share of them that is workspace traffic (S, P and O_tmp between the
cube and the vector cores), the max/mean cube work per core, and which roofline term bounds the slowest core.
All times are MODELLED estimates, not NPU measurements.
"""

from __future__ import annotations

import argparse

import torch

from ascend_attn import _sim, sim


def ideal_bytes(seqlen: int, heads: int, d: int, causal: bool) -> int:
    tiles = (seqlen + 127) // 128
    keys = sum(min(seqlen, (t + 1) * 128) if causal else seqlen for t in range(tiles))  # keys per q tile
    return 2 * (seqlen * heads * d + heads * keys * 2 * d + seqlen * heads * d)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seqlens", type=int, nargs="+", default=[4096, 8192])
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument("--cores", type=int, default=24)
    args = parser.parse_args()
    peak = _sim.model_cube_tflops_per_core * args.cores
    print(f"modelled Atlas 910B2, {args.cores} cores (cube peak {peak:.0f} TFLOPS fp16, GM "
          f"{_sim.model_gm_bytes_per_second / 1e12:.1f} TB/s, launch overhead {_sim.model_launch_overhead_us} us "
          "assumed); estimates, not measurements")  # fmt: skip
    print("| seqlen | causal | modelled us | modelled TFLOPS | % cube peak | GM bytes / ideal | workspace share "
          "| cube max/mean | bound |")  # fmt: skip
    print("|---:|:---:|---:|---:|---:|---:|---:|---:|:---|")
    h, d = args.heads, args.head_dim
    for s in args.seqlens:
        q = torch.empty(s, h, d, dtype=torch.float16)
        cu = torch.tensor([0, s], dtype=torch.int32)
        for causal in (False, True):
            print(f"  simulating seqlen {s}, causal {causal} ...", flush=True)
            st = sim.flash_attn_varlen_func(q, q, q, cu, cu, s, s, causal=causal, num_cores=args.cores,
                                            dry_run=True).stats  # fmt: skip
            moved = sum(c["gm_read_bytes"] + c["gm_write_bytes"] for c in st.per_core)
            workspace = sum(c["gm_workspace_bytes"] for c in st.per_core)
            macs = [c["cube_macs"] for c in st.per_core]
            slowest = max(range(len(st.modelled_core_us)), key=st.modelled_core_us.__getitem__)
            print(f"| {s} | {'yes' if causal else 'no'} | {st.modelled_us:.0f} | {st.modelled_tflops:.1f} | "
                  f"{100 * st.modelled_tflops / peak:.1f}% | {moved / ideal_bytes(s, h, d, causal):.2f} | "
                  f"{100 * workspace / moved:.0f}% | "
                  f"{max(macs) / (sum(macs) / len(macs)):.3f} | {st.modelled_bound[slowest]} |")  # fmt: skip


if __name__ == "__main__":
    main()
