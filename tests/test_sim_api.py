"""The simulator's declarations are the Ascend C API's: uses that compile with CANN compile against csrc/sim, and uses
CANN rejects are rejected here too (csrc/sim/README.md maps each declaration to its devkit header). Each snippet is a
kernel fragment compiled with g++ -fsyntax-only against the simulator headers."""

from __future__ import annotations

import os
import re
import subprocess
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIM = os.path.join(ROOT, "csrc", "sim")

PRELUDE = """
#include "kernel_operator.h"
#include "lib/matmul_intf.h"
using namespace AscendC;
using HalfType = MatmulType<TPosition::GM, CubeFormat::ND, half>;
using FloatType = MatmulType<TPosition::GM, CubeFormat::ND, float>;
"""

VALID = {
    "sys_workspace_global": "void k(TPipe* p) { GM_ADDR ws = GetSysWorkSpacePtr(); (void)ws; (void)p; }",
    "free_tensor_lvalue": """
        void k() {
          TPipe pipe; TQue<TPosition::VECOUT, 1> q; pipe.InitBuffer(q, 1, 256);
          LocalTensor<float> y = q.AllocTensor<float>(); q.EnQue(y); y = q.DeQue<float>(); q.FreeTensor(y);
        }""",
    "sync_templates": """
        void k() {
          SyncAll(); SyncAll<true>(); CrossCoreSetFlag<2, PIPE_FIX>(1); CrossCoreWaitFlag(1);
          CrossCoreWaitFlag<2, PIPE_FIX>(1); PipeBarrier<PIPE_V>(); PipeBarrier<PIPE_ALL>();
        }""",
    "event_ids_from_the_pipe": """
        void k() {
          TPipe pipe;
          TEventID id = GetTPipePtr()->FetchEventID(HardEvent::V_MTE3);
          SetFlag<HardEvent::V_MTE3>(id); WaitFlag<HardEvent::V_MTE3>(id);
          TEventID a = pipe.AllocEventID<HardEvent::MTE2_V>(); pipe.ReleaseEventID<HardEvent::MTE2_V>(a);
        }""",
    "dcci_enums": """
        void k(GlobalTensor<float> g) {
          DataCacheCleanAndInvalid<float, CacheLine::SINGLE_CACHE_LINE, DcciDst::CACHELINE_OUT>(g);
          DataCacheCleanAndInvalid<float, CacheLine::ENTIRE_DATA_CACHE>(g);
        }""",
    "if_ascend_is": "void k() { if ASCEND_IS_AIV { return; } if ASCEND_IS_AIC { return; } }",
    "matmul_names": """
        Matmul<HalfType, HalfType, FloatType> a;
        matmul::Matmul<HalfType, HalfType, FloatType, FloatType, CFG_NORM> b;
        constexpr const MatmulConfig& cfg = CFG_MDL;
        TCubeTiling t; AscendC::tiling::TCubeTiling u;""",
    "data_copy_params_gaps": "void k() { DataCopyParams p(1, 2, 0, 0); p.srcGap = 1; p.dstStride = 2; }",
}

INVALID = {  # name: (code, what g++ reports)
    # issue 11, finding 1: the devkit declares GetSysWorkSpacePtr at global scope only
    "sys_workspace_in_ascendc": (
        "void k() { GM_ADDR ws = AscendC::GetSysWorkSpacePtr(); (void)ws; }",
        "is not a member of .AscendC.",
    ),
    # FreeTensor takes LocalTensor<T>&: a const reference (or a temporary) does not bind
    "free_tensor_const": (
        "void k(TQue<TPosition::VECOUT, 1>& q, const LocalTensor<float>& y) { q.FreeTensor(y); }",
        "no matching function for call to .*FreeTensor",
    ),
    "tque_without_depth": ("TQue<TPosition::VECIN> q;", "wrong number of template arguments"),
    "ascend_is_as_a_value": ("bool k() { bool b = ASCEND_IS_AIV; return b; }", "cannot convert"),
    "matmul_config_in_matmul": ("const matmul::MatmulConfig* c = nullptr;", "does not name a type"),
    "dcci_without_cache_line": (
        "void k(GlobalTensor<float> g) { DataCacheCleanAndInvalid<float>(g); }",
        "no matching function for call to .DataCacheCleanAndInvalid",
    ),
    "cross_core_set_on_scalar_pipe": ("void k() { CrossCoreSetFlag<0, PIPE_S>(1); }", "other than PIPE_S and PIPE_ALL"),
    "phy_addr_not_offered": (
        "void k(GlobalTensor<float> g) { float* p = g.GetPhyAddr(); (void)p; }",
        "has no member named .GetPhyAddr.",
    ),
    "two_regist_in_one_scope": (
        """
        void k(TPipe* pipe, Matmul<HalfType, HalfType, FloatType>& mm, TCubeTiling* t) {
          REGIST_MATMUL_OBJ(pipe, GetSysWorkSpacePtr(), mm, t);
          REGIST_MATMUL_OBJ(pipe, GetSysWorkSpacePtr(), mm, t);
        }""",
        "redeclaration",
    ),
}


@pytest.fixture(scope="module")
def prelude(tmp_path_factory) -> str:
    """The simulator headers precompiled once (g++ picks up prelude.h.gch), so each snippet compiles in a second."""
    path = tmp_path_factory.mktemp("sim_api") / "prelude.h"
    path.write_text(PRELUDE)
    subprocess.run(["g++", "-std=c++17", "-x", "c++-header", "-I", SIM, str(path), "-o", f"{path}.gch"], check=True)
    return str(path)


def compile_snippet(prelude: str, code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["g++", "-std=c++17", "-fsyntax-only", "-x", "c++", "-I", SIM, "-include", prelude, "-"],
        input=textwrap.dedent(code) + "\n",
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("name", sorted(VALID))
def test_real_api_uses_compile(prelude, name):
    r = compile_snippet(prelude, VALID[name])
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.parametrize("name", sorted(INVALID))
def test_uses_cann_rejects_do_not_compile(prelude, name):
    code, reason = INVALID[name]
    r = compile_snippet(prelude, code)
    assert r.returncode != 0, f"{name} compiled against the simulator; CANN rejects it"
    assert re.search(reason, r.stderr), r.stderr[-2000:]


def test_a_literal_zero_never_becomes_the_call_site(prelude):
    """The real level-0 ReduceMax(dst, src, tmp, mask, repeatTime, srcRepStride) is not simulated; called with
    srcRepStride 0 it must fail to compile rather than bind the level-2 form with 0 as the extra call-site argument."""
    r = compile_snippet(
        prelude,
        """
        void k(LocalTensor<float> d, LocalTensor<float> s, LocalTensor<float> t) { ReduceMax(d, s, t, 64, 1, 0); }""",
    )
    assert r.returncode != 0 and "error" in r.stderr
