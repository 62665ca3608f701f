"""attn_implementation="ascend_attn" in Hugging Face transformers against the "eager" implementation on the same
weights: tiny random models, fp32, no hub access."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch
from conftest import assert_out_close

from ascend_attn.integrations import transformers as integration  # imports transformers only in register()

transformers = pytest.importorskip("transformers")

SMALL = dict(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=256)  # fmt: skip
CONFIGS = {
    "llama": lambda: transformers.LlamaConfig(**SMALL),
    "qwen2": lambda: transformers.Qwen2Config(**SMALL),
    # Layer 0 has a 4-token sliding window, layer 1 full attention; initializer_range makes the scores large enough
    # for the softcap of 2.0 to change them (the logits tests fail if either is dropped).
    "gemma2": lambda: transformers.Gemma2Config(
        **SMALL,
        head_dim=16,
        sliding_window=4,
        attn_logit_softcapping=2.0,
        query_pre_attn_scalar=16,
        layer_types=["sliding_attention", "full_attention"],
        initializer_range=0.2,
    ),
}


def _models(name: str):
    """(eager, ascend_attn) models of config ``name`` sharing the same random weights, in eval mode."""
    integration.register()
    config = CONFIGS[name]()
    eager = transformers.AutoModelForCausalLM.from_config(copy.deepcopy(config), attn_implementation="eager")
    ours = transformers.AutoModelForCausalLM.from_config(copy.deepcopy(config), attn_implementation="ascend_attn")
    ours.load_state_dict(eager.state_dict())
    assert ours.config._attn_implementation == "ascend_attn"
    return eager.eval(), ours.eval()


def _left_padded_batch():
    ids = torch.randint(0, 128, (3, 13))
    mask = torch.ones_like(ids)
    mask[0, :5] = 0
    mask[2, :1] = 0
    return ids, mask


@pytest.mark.parametrize("name", list(CONFIGS))
@torch.no_grad()
def test_logits_match_eager(name):
    eager, ours = _models(name)
    ids = torch.randint(0, 128, (2, 11))
    assert_out_close(ours(ids).logits, eager(ids).logits)


@pytest.mark.parametrize("name", list(CONFIGS))
@torch.no_grad()
def test_left_padding_matches_eager(name):
    """Logits of the real tokens match; padded positions are unspecified (eager averages, we output 0)."""
    eager, ours = _models(name)
    ids, mask = _left_padded_batch()
    got, want = ours(ids, attention_mask=mask).logits, eager(ids, attention_mask=mask).logits
    valid = mask.bool()
    assert_out_close(got[valid], want[valid])


@pytest.mark.parametrize("padded", [True, False])
@pytest.mark.parametrize("name", list(CONFIGS))
@torch.no_grad()
def test_greedy_generate_matches_eager(name, padded):
    """Prefill then 7 decode steps over the DynamicCache; without padding the attention gets no mask at all."""
    eager, ours = _models(name)
    ids, mask = _left_padded_batch()
    if not padded:
        ids, mask = ids[1:2], mask[1:2]
    kwargs = dict(attention_mask=mask, do_sample=False, max_new_tokens=8, pad_token_id=0)
    want = eager.generate(ids, **kwargs)
    assert want.shape[1] == ids.shape[1] + 8
    assert torch.equal(ours.generate(ids, **kwargs), want)


@torch.no_grad()
def test_sliding_window_and_softcap_reach_the_op(monkeypatch):
    """Gemma2's window and softcap arrive as op arguments (the logits test above shows they are applied)."""
    eager, ours = _models("gemma2")
    seen = []
    flash = integration.ascend_attn.flash_attn_func

    def spy(*args, **kwargs):
        seen.append((kwargs["window_size"], kwargs["softcap"], kwargs["causal"]))
        return flash(*args, **kwargs)

    monkeypatch.setattr(integration.ascend_attn, "flash_attn_func", spy)
    ours(torch.randint(0, 128, (1, 9)))
    assert seen == [((3, 3), 2.0, True), ((-1, -1), 2.0, True)]


@torch.no_grad()
def test_packed_position_ids_keep_sequences_apart():
    """A batch of one holding two sequences (position_ids restart) equals running each sequence alone."""
    eager, ours = _models("llama")
    a, b = torch.randint(0, 128, (1, 7)), torch.randint(0, 128, (1, 5))
    positions = torch.cat([torch.arange(7), torch.arange(5)])[None]
    got = ours(torch.cat([a, b], 1), position_ids=positions, use_cache=False).logits
    want = torch.cat([eager(a).logits, eager(b).logits], 1)
    assert_out_close(got, want)


class _Layer(torch.nn.Module):
    is_causal = True


def _qkv(batch=2, heads=4, kv_heads=2, q_len=6, kv_len=6, head_dim=16):
    q = torch.randn(batch, heads, q_len, head_dim)
    return q, torch.randn(batch, kv_heads, kv_len, head_dim), torch.randn(batch, kv_heads, kv_len, head_dim)


def test_cu_seq_lens_kwargs_keep_sequences_apart():
    q, k, v = _qkv(batch=1, q_len=12, kv_len=12)
    cu = torch.tensor([0, 5, 12])
    got, _ = integration.attention_forward(
        _Layer(), q, k, v, None, cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=7, max_length_k=7
    )
    parts = [integration.attention_forward(_Layer(), q[:, :, s], k[:, :, s], v[:, :, s], None)[0] for s in
             (slice(0, 5), slice(5, 12))]  # fmt: skip
    assert_out_close(got, torch.cat(parts, 1))


@pytest.mark.parametrize("additive", [False, True])
def test_4d_mask_fallback_matches_padding_path(additive):
    q, k, v = _qkv()
    pad = torch.ones(2, 6, dtype=torch.bool)
    pad[1, :2] = False
    want, _ = integration.attention_forward(_Layer(), q, k, v, pad, softcap=3.0)
    visible = torch.ones(6, 6, dtype=torch.bool).tril()[None, None] & pad[:, None, None, :]  # [b, 1, q, k]
    mask = torch.zeros(visible.shape).masked_fill(~visible, torch.finfo(torch.float32).min) if additive else visible
    got, weights = integration.attention_forward(_Layer(), q, k, v, mask, softcap=3.0)
    assert weights is None and got.shape == (2, 6, 4, 16)
    assert_out_close(got[pad], want[pad])
    assert torch.equal(want[~pad], torch.zeros_like(want[~pad]))


def test_decode_step_sees_every_cached_key():
    q, k, v = _qkv(q_len=1, kv_len=9)
    got, _ = integration.attention_forward(_Layer(), q, k, v, None, scaling=0.5)
    scores = (q @ k.repeat_interleave(2, 1).transpose(-1, -2) * 0.5).softmax(-1)
    assert_out_close(got, (scores @ v.repeat_interleave(2, 1)).transpose(1, 2))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(dropout=0.1), NotImplementedError, "dropout=0.1"),
        (dict(s_aux=torch.zeros(4)), NotImplementedError, "s_aux"),
        (dict(cache=object()), NotImplementedError, "PagedAttentionCache"),
        (dict(attention_mask=torch.ones(2, 4, 6)), ValueError, "attention_mask must be"),
        (dict(attention_mask=torch.ones(2, 3)), ValueError, "attention_mask covers 3 positions"),
    ],
)
def test_rejects_unsupported(kwargs, error, match):
    q, k, v = _qkv()
    mask = kwargs.pop("attention_mask", None)
    with pytest.raises(error, match=match):
        integration.attention_forward(_Layer(), q, k, v, mask, **kwargs)


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("name", ["llama", "gemma2"])
def test_training_step_gradients_match_eager(name, padded):
    """One training step (causal LM loss, backward): the loss and every parameter's gradient match "eager". Unpadded
    batches run flash_attn_func, left-padded ones flash_attn_varlen_func. Padded positions' outputs are unspecified
    (eager averages, we output 0), so no label is predicted from one: the loss predicts labels[t + 1] from position
    t, hence the pads and the first real token of each row carry no label."""
    eager, ours = (model.train() for model in _models(name))
    ids = torch.randint(0, 128, (2, 11))
    labels = ids
    mask = None
    if padded:
        ids, mask = _left_padded_batch()
        labels = ids.masked_fill(mask == 0, -100)
        labels[:, 1:] = labels[:, 1:].masked_fill(mask[:, :-1] == 0, -100)
    results = []
    for model in (eager, ours):
        loss = model(ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        results.append((loss.detach(), {n: p.grad for n, p in model.named_parameters()}))
    (want_loss, want), (got_loss, got) = results
    torch.testing.assert_close(got_loss, want_loss, rtol=1e-5, atol=1e-6)
    assert got.keys() == want.keys()
    for param in want:
        assert got[param] is not None, param
        assert_out_close(got[param], want[param])


def test_import_does_not_need_transformers(monkeypatch):
    code = "import sys, ascend_attn, ascend_attn.integrations.transformers; assert 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match=r"pip install 'ascend_attn\[transformers\]'"):
        integration.register()
