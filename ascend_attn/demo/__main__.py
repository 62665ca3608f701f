"""Serve a batch of prompts with a Llama-shaped model on the paged KV cache, and check it against plain PyTorch.

    python -m ascend_attn.demo [--device cpu|npu] [--dtype fp32|bf16|fp16] [--batch N] [--requests N]
                               [--max-new-tokens N] [--model HF_DIR] [--block-size N] [--seed N] [--sim]

Prefill of a shared system prompt uses flash_attn_varlen_func, every request forks it (prefix sharing), requests are
admitted and retired continuously (different prompt lengths and output lengths), decode uses paged_attention, and
new K/V go through reshape_and_cache. The greedy tokens are then recomputed with torch SDPA on the same weights.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

import ascend_attn
from ascend_attn.demo.engine import PagedEngine, Request
from ascend_attn.demo.model import LlamaConfig, LlamaModel, sdpa_generate, sdpa_logits

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# --sim: a tiny model, as every attention call runs the Ascend C kernels instruction by instruction on the CPU.
SIM_CONFIG = LlamaConfig(vocab_size=256, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=32)  # fmt: skip
SIM_CORES = 4
# Two greedy runs that differ only by rounding may pick different tokens where the top two logits are this close
# (in units of the dtype's epsilon times the largest logit); anything wider is a real mismatch.
TIE_ULPS = 4


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        sys.exit(f"ascend_attn.demo: error: {message}")


def _positive(value: str) -> int:
    # argparse words a ValueError as "invalid _positive value", so every rejection is an ArgumentTypeError.
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def _npu_ready() -> bool:
    return torch._C._dispatch_has_kernel_for_dispatch_key("ascend_attn::paged_attention", "PrivateUse1")


def parse_args(argv):
    p = _Parser(prog="python -m ascend_attn.demo", description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cpu", "npu"], help="default: npu when this build supports it, else cpu")
    p.add_argument("--sim", action="store_true", help="run the attention through the Ascend C kernels in the simulator")
    p.add_argument("--dtype", choices=list(DTYPES), help="default: fp32, or fp16 with --sim")
    p.add_argument("--batch", type=_positive, default=4, help="concurrent sequences (continuous batching)")
    p.add_argument("--requests", type=_positive, default=8, help="number of prompts to serve")
    p.add_argument("--max-new-tokens", type=_positive, default=24)
    p.add_argument("--block-size", type=_positive, default=16)
    p.add_argument("--model", help="local Hugging Face Llama directory (config.json + *.safetensors)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.sim and args.dtype == "fp32":
        p.error("--sim runs the Ascend C kernels, which take fp16 or bf16: use --dtype fp16 or bf16")
    if args.sim and args.block_size % 16:
        p.error(f"--sim: the Ascend C kernels take block sizes that are multiples of 16, got {args.block_size}")
    if args.sim and args.device == "npu":
        p.error("--sim runs on CPU tensors; drop --device npu")
    args.dtype = args.dtype or ("fp16" if args.sim else "fp32")
    if args.device == "npu" and not _npu_ready():
        p.error("--device npu needs ascend_attn built with NPU support (torch_npu + CANN); this build is CPU-only")
    args.device = "cpu" if args.sim else args.device or ("npu" if _npu_ready() else "cpu")
    return args


def make_requests(args, vocab: int) -> tuple[list[int], list[Request]]:
    gen = torch.Generator().manual_seed(args.seed)
    system = torch.randint(0, vocab, (37,), generator=gen).tolist()
    requests = []
    for rid in range(args.requests):
        prompt_len = int(torch.randint(1, 60, (1,), generator=gen))
        new = max(1, args.max_new_tokens - int(torch.randint(0, args.max_new_tokens // 2 + 1, (1,), generator=gen)))
        requests.append(Request(rid, torch.randint(0, vocab, (prompt_len,), generator=gen).tolist(), new))
    return system, requests


def main(argv=None) -> int:
    args = parse_args(argv)
    dtype = DTYPES[args.dtype]
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    if args.model:
        try:
            model = LlamaModel.from_pretrained(args.model, dtype)
        except (RuntimeError, OSError, KeyError) as e:
            sys.exit(f"ascend_attn.demo: error: cannot load --model {args.model}: {e}")
    else:
        model = LlamaModel.random(SIM_CONFIG if args.sim else LlamaConfig(), seed=args.seed, dtype=dtype)
    model.to(args.device)
    c = model.config
    log(
        f"model: {c.num_hidden_layers} layers, hidden {c.hidden_size}, heads {c.num_attention_heads}/"
        f"{c.num_key_value_heads} (q/kv), head_dim {c.head_dim}, {args.dtype}, device {args.device}, "
        + (
            f"attention: Ascend C kernels in the simulator ({SIM_CORES} cores)"
            if args.sim
            else f"CPU kernels {ascend_attn.cpu_isa()}"
        )
    )
    system, requests = make_requests(args, c.vocab_size)
    blocks = 2 * args.batch * (-(-(len(system) + 60 + args.max_new_tokens) // args.block_size) + 1)
    engine = PagedEngine(
        model,
        num_blocks=blocks,
        block_size=args.block_size,
        max_batch=args.batch,
        sim_cores=SIM_CORES if args.sim else 0,
    )
    log(
        f"serving {len(requests)} requests (shared system prompt {len(system)} tokens, prompts "
        f"{min(len(r.prompt) for r in requests)}-{max(len(r.prompt) for r in requests)} tokens, up to "
        f"{args.max_new_tokens} new tokens each), batch {args.batch}, {blocks} blocks of {args.block_size}"
    )
    start = time.perf_counter()
    engine.run(system, requests, log)
    s = engine.stats
    log(f"served in {time.perf_counter() - start:.2f} s over {s.steps} steps")
    log(f"prefill: {s.prefill_tokens} tokens, {s.prefill_tokens / s.prefill_seconds:.0f} tokens/s")
    log(f"decode:  {s.decode_tokens} tokens, {s.decode_tokens / s.decode_seconds:.0f} tokens/s")
    log(f"cache blocks in use: peak {s.peak_blocks}/{blocks}, after serving {engine.cache.blocks_in_use}")

    log("checking greedy tokens against plain PyTorch SDPA (full recompute per token) ...")
    equal, ties, mismatches = 0, 0, 0
    for r in requests:
        ref = sdpa_generate(model, system + r.prompt, r.max_new_tokens)
        if ref == r.output:
            equal += 1
            continue
        first = next(i for i, (a, b) in enumerate(zip(ref, r.output, strict=True)) if a != b)
        # Same prefix on both sides up to `first`: is the SDPA run's own choice there a tie at this precision?
        logits = sdpa_logits(model, system + r.prompt + r.output[:first]).float()
        margin = float(logits[ref[first]] - logits[r.output[first]])
        tie = margin <= TIE_ULPS * torch.finfo(dtype).eps * float(logits.abs().max())
        ties += tie
        mismatches += not tie
        log(f"  request {r.rid}: differs from token {first} ({'a near-tie' if tie else 'NOT a tie'}: SDPA logit "
            f"margin {margin:.2e} of max {float(logits.abs().max()):.1f}): ours {r.output[first:first + 5]}, "
            f"SDPA {ref[first:first + 5]}")  # fmt: skip
    log(f"greedy tokens equal to the SDPA reference: {equal}/{len(requests)} requests"
        + (f"; {ties} diverge first where SDPA's top two logits tie within {TIE_ULPS} {args.dtype} ulps of the "
           "largest logit" if ties else ""))  # fmt: skip
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
