"""Shared fixtures, the tolerance policy and the ISA helpers.

Tolerance policy (flash-attn's): fp32 outputs must match the fp32 reference to ``FP32_ATOL + FP32_RTOL * |ref|``.
For fp16/bf16 inputs, the max abs error of our output against the fp32 reference must be at most twice the max abs
error of the same computation done by PyTorch in that dtype (``attention_ref(..., upcast=False)``), plus a tiny
absolute floor for cases where PyTorch happens to be exact (e.g. a window of one key, where out = v).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch

import ascend_attn

# Measured over this suite: fp32 max abs error 2.1e-6 (head_dim 512, 1025 keys); 10x margin.
FP32_ATOL = 2e-5
FP32_RTOL = 1e-5
LOWP_FLOOR = 1e-5
# lse is accumulated in fp32 from the same (widened) inputs as the reference: measured max error 2e-6 at |lse| ~ 10.
LSE_ATOL = 5e-5
LSE_RTOL = 1e-5
# Gradients: PyTorch's fp32 autograd can be nearly exact where ours sums in another order; floor relative to the
# reference's largest entry.
GRAD_FLOOR = 1e-5

ISA_ENV = "ASCEND_ATTN_CPU_ISA"


SIM_DIR = Path(__file__).resolve().parent.parent / "csrc" / "sim"


@pytest.fixture(scope="session")
def kernels():
    """tests/sim/rule_kernels.cpp built against the simulator: purpose-built kernels for the rule and timeline tests.

    torch's JIT build tracks only the listed sources, so a hash of the simulator's headers rides in the flags.
    """
    from torch.utils.cpp_extension import load

    headers = hashlib.sha1(b"".join(p.read_bytes() for p in sorted(SIM_DIR.rglob("*.h")))).hexdigest()[:12]
    sim = ("sim_runtime.cpp", "sim_sync.cpp", "sim_cache.cpp", "sim_events.cpp", "sim_timeline.cpp")
    return load(
        name="ascend_attn_sim_rule_kernels",
        sources=[str(SIM_DIR.parent.parent / "tests" / "sim" / "rule_kernels.cpp")] + [str(SIM_DIR / f) for f in sim],
        extra_include_paths=[str(SIM_DIR)],
        extra_cflags=["-O1", "-std=c++17", f"-DASCEND_SIM_HEADERS_{headers}"],
    )


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _describe(diff: torch.Tensor) -> str:
    return f"max diff {diff.max().item():.3e}, mean diff {diff.mean().item():.3e}"


def assert_out_close(out: torch.Tensor, ref_fp32: torch.Tensor, ref_lowp: torch.Tensor | None = None) -> None:
    """Checks ``out`` against the fp32 reference; fp16/bf16 outputs also need ``ref_lowp`` (same-dtype PyTorch)."""
    assert out.shape == ref_fp32.shape, (out.shape, ref_fp32.shape)
    if out.numel() == 0:
        return
    assert not torch.isnan(out).any(), "output has NaN"
    diff = (out.float() - ref_fp32.float()).abs()
    if out.dtype == torch.float32:
        bound = FP32_ATOL + FP32_RTOL * ref_fp32.float().abs()
        worst = (diff - bound).argmax()
        assert (diff <= bound).all(), f"{_describe(diff)}; worst at flat index {worst.item()} (bound {FP32_ATOL:.0e})"
        return
    assert ref_lowp is not None, "fp16/bf16 outputs need the same-dtype reference"
    assert ref_lowp.dtype == out.dtype, (ref_lowp.dtype, out.dtype)
    torch_err = (ref_lowp.float() - ref_fp32.float()).abs().max().item()
    bound = 2 * torch_err + LOWP_FLOOR
    assert diff.max().item() <= bound, f"{_describe(diff)}; bound {bound:.3e} (torch {out.dtype} error {torch_err:.3e})"


def assert_grad_close(grad: torch.Tensor, ref: torch.Tensor, ref_same: torch.Tensor, name: str = "grad") -> None:
    """A gradient against the fp64 autograd reference ``ref``, by the policy above applied to every dtype: the max abs
    error must be at most twice that of PyTorch's own autograd in the gradient's dtype (``ref_same``) plus a floor
    (GRAD_FLOOR of the reference's scale, for cases where PyTorch happens to be exact)."""
    assert grad.shape == ref.shape and grad.dtype == ref_same.dtype, (name, grad.shape, ref.shape, grad.dtype)
    if grad.numel() == 0:
        return
    assert not torch.isnan(grad).any(), f"{name} has NaN"
    err = (grad.double() - ref).abs().max().item()
    torch_err = (ref_same.double() - ref).abs().max().item()
    bound = 2 * torch_err + GRAD_FLOOR * max(1.0, ref.abs().max().item())
    assert err <= bound, f"{name}: max diff {err:.3e}, bound {bound:.3e} (torch {grad.dtype} error {torch_err:.3e})"


def assert_lse_close(lse: torch.Tensor, ref: torch.Tensor, atol: float = LSE_ATOL) -> None:
    """lse is fp32, -inf exactly where the reference is -inf (rows that see no key), and close elsewhere."""
    assert lse.dtype == torch.float32 and lse.shape == ref.shape, (lse.dtype, lse.shape, ref.shape)
    assert not torch.isnan(lse).any(), "lse has NaN"
    empty = ref == float("-inf")
    assert torch.equal(lse == float("-inf"), empty), (
        f"lse is -inf at {(lse == float('-inf')).sum().item()} places, the reference at {empty.sum().item()}"
    )
    if (~empty).any():
        diff = (lse[~empty] - ref[~empty]).abs()
        bound = atol + LSE_RTOL * ref[~empty].abs()
        assert (diff <= bound).all(), _describe(diff)


def detected_isa() -> str:
    """The ISA the CPU kernels pick with no override (ignores an ASCEND_ATTN_CPU_ISA set for the whole run)."""
    saved = os.environ.pop(ISA_ENV, None)
    try:
        return ascend_attn.cpu_isa()
    finally:
        if saved is not None:
            os.environ[ISA_ENV] = saved


def supported_isas() -> list[str]:
    """ISAs this CPU can run: portable always, avx2 below avx512."""
    best = detected_isa()
    return ["portable"] + (["avx2"] if best in ("avx2", "avx512") else []) + (["avx512"] if best == "avx512" else [])


@pytest.fixture(params=["portable", "avx2", "avx512"])
def isa(request, monkeypatch) -> str:
    """Runs the test once per ISA this CPU supports (the override is read on every op call)."""
    if request.param not in supported_isas():
        pytest.skip(f"this CPU lacks {request.param} (detected: {detected_isa()})")
    monkeypatch.setenv(ISA_ENV, request.param)
    assert ascend_attn.cpu_isa() == request.param
    return request.param
