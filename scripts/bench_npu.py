"""Benchmark of ascend_attn's ops on an Ascend NPU against torch_npu's fused attention on the same shapes.

    python scripts/bench_npu.py [--repeats 20] [--dtype fp16|bf16]

Prefill (TND, causal and not): flash_attention_varlen vs torch_npu.npu_fused_infer_attention_score (TND,
sparse_mode 3 with the 2048x2048 compressed mask for causal) and torch_npu.npu_fusion_attention (TND).
Decode: paged_attention vs torch_npu._npu_paged_attention (ATB PagedAttention) and npu_fused_infer_attention_score
with block_table. Times are medians of events on the current stream; ratios are baseline time / ours (> 1: faster).
Needs an ascend_attn built by scripts/build.sh, torch_npu and a device.
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch

import ascend_attn


def time_ms(repeats: int, fn, *args, **kwargs) -> float:
    """Median time of fn(*args, **kwargs) in ms over `repeats` runs after one warm-up."""
    fn(*args, **kwargs)
    torch.npu.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.npu.Event(enable_timing=True), torch.npu.Event(enable_timing=True)
        start.record()
        fn(*args, **kwargs)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def prefill_rows(torch_npu, dtype, repeats):
    rows = []
    mask = torch.triu(torch.ones(2048, 2048, dtype=torch.bool), diagonal=1).npu()
    for seqlen, heads, kv_heads, d in [(4096, 32, 32, 128), (8192, 32, 8, 128), (2048, 16, 16, 64)]:
        q = torch.randn(seqlen, heads, d, dtype=dtype).npu()
        k = torch.randn(seqlen, kv_heads, d, dtype=dtype).npu()
        v = torch.randn(seqlen, kv_heads, d, dtype=dtype).npu()
        cu = torch.tensor([0, seqlen], dtype=torch.int32).npu()
        scale = d**-0.5
        for causal in (False, True):
            masking = {"atten_mask": mask if causal else None, "sparse_mode": 3 if causal else 0}
            ours = time_ms(repeats, ascend_attn.flash_attention_varlen, q, k, v, cu, cu, seqlen, seqlen, causal=causal)
            fia = time_ms(repeats, torch_npu.npu_fused_infer_attention_score, q, k, v, num_heads=heads,
                          num_key_value_heads=kv_heads, input_layout="TND", scale=scale, actual_seq_lengths=[seqlen],
                          actual_seq_lengths_kv=[seqlen], **masking)  # fmt: skip
            fa = time_ms(repeats, torch_npu.npu_fusion_attention, q, k, v, heads, "TND", scale=scale,
                         actual_seq_qlen=[seqlen], actual_seq_kvlen=[seqlen], **masking)  # fmt: skip
            rows.append((f"prefill S={seqlen} H={heads}/{kv_heads} D={d} causal={causal}", ours, fia, fa))
    return rows


def decode_rows(torch_npu, dtype, repeats):
    rows = []
    heads, kv_heads, d, block = 32, 8, 128, 128
    for seqs, ctx in [(1, 8192), (8, 8192), (64, 4096)]:
        per_seq = -(-ctx // block)
        kc = torch.randn(seqs * per_seq, block, kv_heads, d, dtype=dtype).npu()
        vc = torch.randn_like(kc)
        tables = torch.arange(seqs * per_seq, dtype=torch.int32).view(seqs, per_seq).npu()
        lens = torch.full((seqs,), ctx, dtype=torch.int32)
        q = torch.randn(seqs, heads, d, dtype=dtype).npu()
        out = torch.empty_like(q)
        ours = time_ms(repeats, ascend_attn.paged_attention, q, kc, vc, tables, lens.npu())
        atb = time_ms(repeats, torch_npu._npu_paged_attention, query=q, key_cache=kc, value_cache=vc,
                      num_kv_heads=kv_heads, num_heads=heads, scale_value=d**-0.5, block_table=tables,
                      context_lens=lens, out=out)  # fmt: skip
        fia = time_ms(repeats, torch_npu.npu_fused_infer_attention_score, q.view(seqs, 1, heads * d),
                      kc.view(kc.shape[0], block, -1), vc.view(vc.shape[0], block, -1), num_heads=heads,
                      num_key_value_heads=kv_heads, input_layout="BSH", scale=d**-0.5, block_table=tables,
                      block_size=block, actual_seq_lengths_kv=[ctx] * seqs)  # fmt: skip
        rows.append((f"decode seqs={seqs} ctx={ctx} H={heads}/{kv_heads} D={d}", ours, atb, fia))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--dtype", choices=["fp16", "bf16"], default="fp16")
    args = parser.parse_args()
    try:
        import torch_npu
    except Exception as e:  # ImportError, or CANN's libraries missing when torch_npu loads them
        first_line = (str(e).splitlines() or [type(e).__name__])[0]
        sys.exit(
            f"bench_npu.py: torch_npu cannot be imported ({first_line}); this benchmark needs an Ascend NPU, CANN's "
            "set_env.sh sourced and torch_npu==<your torch version>"
        )
    if not torch._C._dispatch_has_kernel_for_dispatch_key("ascend_attn::paged_attention", "PrivateUse1"):
        sys.exit("bench_npu.py: this ascend_attn build has no NPU kernels; build it with scripts/build.sh")

    dtype = torch.float16 if args.dtype == "fp16" else torch.bfloat16
    print("| case | ours ms | baseline 1 ms | ratio | baseline 2 ms | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    print("| prefill baselines: npu_fused_infer_attention_score, npu_fusion_attention | | | | | |")
    for name, ours, b1, b2 in prefill_rows(torch_npu, dtype, args.repeats):
        print(f"| {name} | {ours:.3f} | {b1:.3f} | {b1 / ours:.2f} | {b2:.3f} | {b2 / ours:.2f} |")
    print("| decode baselines: _npu_paged_attention (ATB), npu_fused_infer_attention_score | | | | | |")
    for name, ours, b1, b2 in decode_rows(torch_npu, dtype, args.repeats):
        print(f"| {name} | {ours:.3f} | {b1:.3f} | {b1 / ours:.2f} | {b2:.3f} | {b2 / ours:.2f} |")


if __name__ == "__main__":
    main()
