"""Modelled Atlas 910B2 decode figures of op_kernel/paged_attention: simulator timeline beside its roofline.

    python scripts/model_paged_attention.py [--seqs 1 8 64] [--contexts 1024 8192] [--cores 24]

One query token per sequence, 32 q heads / 8 kv heads, head_dim 128, block 128, fp16 by default. Dry-run simulation
(exact instruction stream and timing, no arithmetic); progress on stderr, the Markdown table on stdout. The fraction
of GM bandwidth counts the K/V bytes decode must read (K and V of every context token once). The same table is part
of ``python -m ascend_attn.bench model`` and ``bench all``. All times are MODELLED estimates, never NPU measurements.
"""

from __future__ import annotations

import argparse

from ascend_attn.bench import model
from ascend_attn.bench.common import markdown_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seqs", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--contexts", type=int, nargs="+", default=[1024, 8192])
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--kv-heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument("--block-size", type=int, default=128)
    parser.add_argument("--cores", type=int, default=24)
    args = parser.parse_args()
    rows = model.paged_rows(args.seqs, args.contexts, args.heads, args.kv_heads, args.head_dim, args.block_size,
                            args.cores)  # fmt: skip
    print("\n".join(model.notes(args.cores)))
    print()
    print(markdown_table(model.PAGED_HEADER, rows))


if __name__ == "__main__":
    main()
