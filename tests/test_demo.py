"""The serving demo: paged engine vs the plain-SDPA model, checkpoint loading, and the command line."""

from __future__ import annotations

import json

import pytest
import torch

from ascend_attn.demo.__main__ import main
from ascend_attn.demo.engine import PagedEngine, Request
from ascend_attn.demo.model import LlamaConfig, LlamaModel, sdpa_generate

TINY = LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, head_dim=16)  # fmt: skip


def test_engine_matches_sdpa_with_continuous_batching():
    """5 requests through 2 slots: forks of a shared prefix, admissions as others finish, blocks all returned."""
    model = LlamaModel.random(TINY, seed=1)
    gen = torch.Generator().manual_seed(0)
    system = torch.randint(0, 97, (21,), generator=gen).tolist()
    requests = [Request(i, torch.randint(0, 97, (n,), generator=gen).tolist(), m)
                for i, (n, m) in enumerate([(1, 6), (9, 2), (16, 7), (3, 1), (5, 4)])]  # fmt: skip
    engine = PagedEngine(model, num_blocks=16, block_size=4, max_batch=2)
    lines = []
    engine.run(system, requests, lines.append)
    for r in requests:
        assert r.output == sdpa_generate(model, system + r.prompt, r.max_new_tokens), f"request {r.rid}"
    assert engine.cache.blocks_in_use == 0 and engine.cache.num_free_blocks == 16
    assert engine.stats.peak_blocks > 6  # the prefix (6 blocks) plus the requests' own
    assert engine.stats.prefill_tokens == 21 + 1 + 9 + 16 + 3 + 5
    assert engine.stats.decode_tokens == sum(m - 1 for m in (6, 2, 7, 1, 4))
    assert "running 0, waiting 0, done 5" in lines[-1]


def test_engine_rejects_request_larger_than_cache():
    engine = PagedEngine(LlamaModel.random(TINY), num_blocks=4, block_size=4, max_batch=2)
    with pytest.raises(RuntimeError, match="needs more KV blocks than the cache has"):
        engine.run([1, 2, 3], [Request(0, [5] * 20, 4)], lambda _: None)


def test_from_pretrained_round_trip(tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    model = LlamaModel.random(TINY, seed=3)
    fields = {k: getattr(TINY, k) for k in TINY.__dataclass_fields__}
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", **fields}))
    safetensors.save_file({k: v.contiguous() for k, v in model.w.items()}, str(tmp_path / "model.safetensors"))
    loaded = LlamaModel.from_pretrained(tmp_path)
    assert loaded.config == TINY
    prompt = [3, 1, 4, 1, 5]
    assert sdpa_generate(loaded, prompt, 5) == sdpa_generate(model, prompt, 5)


def test_main_runs_and_checks(capsys):
    assert main(["--requests", "3", "--batch", "2", "--max-new-tokens", "4", "--block-size", "8"]) == 0
    out = capsys.readouterr().out
    assert "greedy tokens equal to the SDPA reference: 3/3 requests" in out
    assert "tokens/s" in out and "cache blocks in use" in out


def test_main_sim_runs_the_ascend_c_kernels(capsys):
    assert main(["--sim", "--requests", "2", "--max-new-tokens", "3"]) == 0
    out = capsys.readouterr().out
    assert "attention: Ascend C kernels in the simulator" in out and "fp16" in out
    assert "greedy tokens equal to the SDPA reference: 2/2 requests" in out


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--batch", "0"], "--batch: must be >= 1"),
        (["--requests", "two"], "--requests: must be a positive integer, got 'two'"),
        (["--dtype", "fp64"], "invalid choice"),
        (["--device", "gpu"], "invalid choice"),
        (["--sim", "--dtype", "fp32"], "--sim runs the Ascend C kernels, which take fp16 or bf16"),
        (["--sim", "--block-size", "8"], "--sim: the Ascend C kernels take block sizes that are multiples of 16"),
        (["--model", "/nonexistent-dir"], "cannot load --model /nonexistent-dir"),
    ],
)
def test_bad_options_one_line_error(argv, match, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    message = str(exc.value.code) + capsys.readouterr().err
    assert match in message and message.strip().count("\n") == 0
    assert "_positive" not in message  # argparse must not show the helper's name
