"""Shared fixtures and the tolerance policy.

Tolerance policy (flash-attn's): for fp16/bf16 inputs, the max abs error of our output against the fp32 reference
must be at most twice the max abs error of the same computation done by PyTorch in that dtype, plus a small
absolute floor for cases where PyTorch happens to be exact. fp32 outputs must match the fp32 reference closely.
"""

from __future__ import annotations

import pytest
import torch

import ascend_attn

FP32_ATOL = 2e-5  # fp32 reordering of sums over up to ~1K keys, measured max ~3e-6
LOWP_FLOOR = 1e-4  # below one bf16/fp16 ulp at the output magnitudes used here


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _describe(diff: torch.Tensor) -> str:
    return f"max diff {diff.max().item():.3e}, mean diff {diff.mean().item():.3e}"


def assert_out_close(out: torch.Tensor, ref_fp32: torch.Tensor, ref_lowp: torch.Tensor | None = None) -> None:
    """Checks ``out`` (any dtype) against the fp32 reference, applying the tolerance policy."""
    assert out.shape == ref_fp32.shape, (out.shape, ref_fp32.shape)
    assert torch.isfinite(out).all(), "output has NaN/inf"
    diff = (out.float() - ref_fp32.float()).abs()
    if out.dtype == torch.float32:
        assert diff.max().item() <= FP32_ATOL, _describe(diff)
        return
    assert ref_lowp is not None, "low-precision outputs need the same-dtype reference"
    torch_err = (ref_lowp.float() - ref_fp32.float()).abs().max().item()
    bound = 2 * torch_err + LOWP_FLOOR
    assert diff.max().item() <= bound, f"{_describe(diff)}; bound {bound:.3e} (torch {out.dtype} error {torch_err:.3e})"


def assert_lse_close(lse: torch.Tensor, ref: torch.Tensor, atol: float = 1e-4) -> None:
    """-inf exactly where the reference is -inf (rows that see no key), close elsewhere."""
    assert lse.dtype == torch.float32 and lse.shape == ref.shape, (lse.dtype, lse.shape, ref.shape)
    empty = ref == float("-inf")
    assert torch.equal(lse == float("-inf"), empty), "lse is -inf in different places than the reference"
    if (~empty).any():
        diff = (lse[~empty] - ref[~empty]).abs()
        assert diff.max().item() <= atol, _describe(diff)


def supported_isas() -> list[str]:
    """ISAs this CPU can run: always portable, plus what the automatic choice reports."""
    best = ascend_attn.cpu_isa()
    return ["portable"] + (["avx2"] if best in ("avx2", "avx512") else []) + (["avx512"] if best == "avx512" else [])
