"""Modelled Atlas 910B2 figures of op_kernel/flash_attention: simulator timeline beside its roofline.

    python scripts/model_flash_attention.py [--seqlens 1024 8192] [--heads 32] [--head-dim 128] [--cores 24]

fp16 self-attention, batch 1, non-causal and causal. Dry-run simulation (exact instruction stream and timing, no
arithmetic); progress on stderr, the Markdown table on stdout. The same table is part of
``python -m ascend_attn.bench model`` and ``bench all``. All times are MODELLED estimates, never NPU measurements.
"""

from __future__ import annotations

import argparse

from ascend_attn.bench import model
from ascend_attn.bench.common import markdown_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seqlens", type=int, nargs="+", default=[1024, 8192])
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument("--cores", type=int, default=24)
    args = parser.parse_args()
    rows = model.flash_rows(args.seqlens, args.heads, args.head_dim, args.cores)
    print("\n".join(model.notes(args.cores)))
    print()
    print(markdown_table(model.FLASH_HEADER, rows))


if __name__ == "__main__":
    main()
