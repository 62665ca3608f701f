"""Mutation study of the Ascend C simulator: plants one realistic bug at a time in the real kernels (op_kernel/),
rebuilds the simulator with it and runs small flash_attention / paged_attention / reshape_and_cache cases, free-running
and under seeded interleavings, then reports which rule caught each bug, in which runs, and whether the runs the
simulator let pass still produced the unmutated kernels' output. Prints a Markdown table.

    python scripts/mutation_study.py [--only ID ...] [--seeds 1 2] [--work DIR] [--check]

The checkout is never modified: mutants are built in a copy of csrc/ and op_kernel/ under --work (default
build/mutation_study), one simulator extension shared by all mutants so that ninja rebuilds only the translation
units a mutation touches (one to a few minutes each on 2 busy cores). Before any build every mutation is checked
against the sources (each text to replace must occur exactly once; --check does only that, in a second, and
tests/test_mutation_study.py runs it so that a kernel change cannot leave a mutant stale), and the unmutated kernels
run first: they must pass every case, and their outputs are the reference the mutants' outputs are compared with (the
simulator is deterministic).

A mutant counts as caught when some case raised in all its runs: a bug shows only on the inputs that reach it (S6
needs a row block with no visible key after one that stored its lse). A case whose runs disagree is reported as
mixed: the simulator promises verdicts that do not depend on the interleaving.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SOFTMAX = "op_kernel/common/online_softmax.h"
FLASH = "op_kernel/flash_attention/flash_attention_kernel.h"
FLASH_ENTRY = "op_kernel/flash_attention/flash_attention.cpp"
PAGED = "op_kernel/paged_attention/paged_attention_kernel.h"
COMBINE = "op_kernel/paged_attention/paged_combine.h"
RESHAPE = "op_kernel/reshape_and_cache/reshape_and_cache.cpp"
GRAD = "op_kernel/flash_attention_grad/flash_attention_grad_kernel.h"

# The cases of WORKER. flash: varlen, GQA, causal, one sequence of 1100 keys (three KV tiles of Bc = 512, so that the
# cube runs a tile ahead of the vector through both slot sets), one with more queries than keys, so that some row
# blocks see no key at all (their AIV runs no KV tile). paged: decode with flash-decoding splits and their combine.
# paged_prefill: multi-token queries over a split context (two splits of 640 keys), where the later split of the first
# 128 tokens (positions 500-627) is fully masked, so that their items run no KV tile; 20 items over 8 AIVs, so such an
# item follows one that stored its lse on the same AIV.
# paged_nosplit: no split (out and lse written directly) and two pages per KV tile (several requests per tile).
# paged_grouped: decode items of 4 kv heads (block-diagonal queries in the Q slot), two items per AIV, so that the
# second item's queries overwrite the slot the first one's requests read.
# grad: flash_attention_grad, causal GQA with three 256-row blocks per q head of the first key tiles (dV and dK over a
# pair of blocks, over a full and a short block, and over single blocks in either slot), by default (dQ by atomic adds:
# dq's last bits follow the interleaving, so only dk and dv are compared) and deterministic (dq, dk and dv).
PAGED_CASES = ["paged", "paged_prefill", "paged_nosplit", "paged_grouped"]
ATTENTION_CASES = ["flash", *PAGED_CASES]
CASES = [*ATTENTION_CASES, "reshape", "grad"]

# The argument line of flash_attention's StoreO copy-out, as clang-format lays it out.
STORE_O_PARAMS = (
    "                         AscendC::DataCopyExtParams(uint16_t(n), dv * sizeof(T), 0, "
    "(row_stride - dv) * sizeof(T), 0))"
)


def flags(event: str, var: str) -> str:
    """The SetFlag/WaitFlag pair of the kernels' hand-ordered copies, as it appears in their source."""
    return (
        f"    AscendC::SetFlag<AscendC::HardEvent::{event}>({var});\n"
        f"    AscendC::WaitFlag<AscendC::HardEvent::{event}>({var});\n"
    )


@dataclass
class Mutant:
    id: str
    what: str
    file: str
    edits: list[tuple[str, str]]  # (old, new), applied in order, each old occurring exactly once when applied
    cases: list[str]
    sync: bool = True  # a synchronisation bug (the rest break other rules, or only the arithmetic)


MUTANTS = [
    Mutant(
        "S1",
        "no MTE3->S wait at the end of Tile: the cube reads P, and S(j + 2) overwrites the S slot, before the "
        "softmax's copies are known done",
        SOFTMAX,
        [
            (
                flags("MTE3_S", "mte3_s").rstrip("\n"),
                "    (void)mte3_s;",
            )
        ],
        ATTENTION_CASES,
    ),  # fmt: skip
    Mutant(
        "S2",
        "S chunk used without DeQue (VECIN EnQue/DeQue removed)",
        SOFTMAX,
        [
            (
                "    in_que_.EnQue(s);\n    s = in_que_.DeQue<float>();\n    AscendC::Muls(s, s, shape_.scale",
                "    AscendC::Muls(s, s, shape_.scale",
            )
        ],
        ATTENTION_CASES,
    ),  # fmt: skip
    Mutant(
        "S3",
        "P copied out without the VECOUT EnQue/DeQue",
        SOFTMAX,
        [
            (
                "    out_que_.EnQue(p);\n    p = out_que_.DeQue<T>();\n    AscendC::DataCopy(slots_[slot].p",
                "    AscendC::DataCopy(slots_[slot].p",
            )
        ],
        ATTENTION_CASES,
    ),  # fmt: skip
    Mutant(
        "S4",
        "S chunk freed before the softmax reads it (use after free)",
        SOFTMAX,
        [
            (
                "    s = in_que_.DeQue<float>();\n    AscendC::Muls",
                "    s = in_que_.DeQue<float>();\n    in_que_.FreeTensor(s);\n    AscendC::Muls",
            ),
            ("    in_que_.FreeTensor(s);\n    out_que_.EnQue(p);", "    out_que_.EnQue(p);"),
        ],
        ATTENTION_CASES,
    ),  # fmt: skip
    Mutant(
        "S5",
        "lse copied out with no V->MTE3 wait (TBuf)",
        SOFTMAX,
        [
            (
                flags("V_MTE3", "v_mte3") + "    // One 4-byte",
                "    (void)v_mte3;\n    // One 4-byte",
            )
        ],
        ATTENTION_CASES,
    ),  # fmt: skip
    Mutant(
        "S6",
        "lse copy-out not waited before the vector rewrites the stats (TBuf)",
        SOFTMAX,
        [
            (
                flags("MTE3_V", "mte3_v") + "  }\n\n  // fp32 rows",
                "    (void)mte3_v;\n  }\n\n  // fp32 rows",
            )
        ],
        ATTENTION_CASES,
    ),  # fmt: skip
    Mutant(
        "S7",
        "O_tmp used without DeQue",
        SOFTMAX,
        [
            (
                "      in_que_.EnQue(o_tmp);\n      o_tmp = in_que_.DeQue<float>();\n",
                "",
            )
        ],
        ATTENTION_CASES,
    ),  # fmt: skip
    Mutant(
        "S8",
        "hard-coded event id 0 instead of FetchEventID",
        SOFTMAX,
        [
            (
                "const AscendC::TEventID mte3_s = GetTPipePtr()->FetchEventID(AscendC::HardEvent::MTE3_S);",
                "const AscendC::TEventID mte3_s = 0;",
            )
        ],
        ATTENTION_CASES,
    ),  # fmt: skip
    Mutant(
        "S9",
        "O_tmp freed before its last read",
        SOFTMAX,
        [
            (
                "      AscendC::Add(o, o, o_tmp, int32_t(n * dv));\n      in_que_.FreeTensor(o_tmp);",
                "      in_que_.FreeTensor(o_tmp);\n      AscendC::Add(o, o, o_tmp, int32_t(n * dv));",
            )
        ],
        ATTENTION_CASES,
    ),  # fmt: skip
    Mutant(
        "S10",
        "output rows copied out without the VECOUT EnQue/DeQue",
        SOFTMAX,
        [
            (
                "    out_que_.EnQue(y);\n    return out_que_.DeQue<T>();",
                "    return y;",
            )
        ],
        ATTENTION_CASES,
    ),  # fmt: skip
    Mutant(
        "S11",
        "Compare over a row count that is not whole 256-byte groups",
        SOFTMAX,
        [
            (
                "const int32_t n = int32_t((rows + 7) / 8 * 8 * kStatLanes);",
                "const int32_t n = int32_t(rows * kStatLanes);",
            )
        ],
        ATTENTION_CASES,
        sync=False,
    ),  # fmt: skip
    Mutant(
        "S12",
        "PipeBarrier<PIPE_MTE3> in place of the MTE3->S wait at the end of Tile (a barrier orders one pipe only)",
        SOFTMAX,
        [
            (
                "    const AscendC::TEventID mte3_s = GetTPipePtr()->FetchEventID(AscendC::HardEvent::MTE3_S);\n"
                + flags("MTE3_S", "mte3_s"),
                "    AscendC::PipeBarrier<PIPE_MTE3>();\n",
            )
        ],
        ATTENTION_CASES,
    ),  # fmt: skip
    Mutant(
        "S13",
        "O rescaled with the other slot's alpha (the next tile's, which its softmax already wrote)",
        SOFTMAX,
        [
            (
                "RowsOp<RowOp::kMul>(o, alpha_[slot][r0 * kStatLanes], n, dv);",
                "RowsOp<RowOp::kMul>(o, alpha_[1 - slot][r0 * kStatLanes], n, dv);",
            )
        ],
        ATTENTION_CASES,
        sync=False,
    ),  # fmt: skip
    Mutant(
        "S14",
        "MTE3->S pair at the end of Tile swapped: WaitFlag before its SetFlag",
        SOFTMAX,
        [
            (
                flags("MTE3_S", "mte3_s"),
                "    AscendC::WaitFlag<AscendC::HardEvent::MTE3_S>(mte3_s);\n"
                "    AscendC::SetFlag<AscendC::HardEvent::MTE3_S>(mte3_s);\n",
            )
        ],
        ATTENTION_CASES,
    ),  # fmt: skip
    Mutant(
        "F1",
        "S = Q K^T issued asynchronously without waitIterateAll = true (its WaitIterateAll has nothing to wait for)",
        FLASH,
        [
            (
                "    mm_qk.template IterateAll<false>(softmax_.Slot(j % 2).s, 0, false, true);",
                "    mm_qk.template IterateAll<false>(softmax_.Slot(j % 2).s);",
            )
        ],
        ["flash"],
    ),  # fmt: skip
    Mutant(
        "F2",
        "workspace slots per core instead of per AIV",
        FLASH,
        [
            (
                "AscendC::GetUserWorkspace(workspace) + AscendC::GetBlockIdx() * t_->ws_per_aiv;",
                "AscendC::GetUserWorkspace(workspace) + AscendC::GetBlockIdx() / 2 * t_->ws_per_aiv;",
            )
        ],
        ["flash"],
    ),  # fmt: skip
    Mutant(
        "F3",
        "End() missing between the two Matmul objects",
        FLASH,
        [
            (
                "    mm.WaitIterateAll();\n    mm.End();\n",
                "    mm.WaitIterateAll();\n",
            )
        ],
        ["flash"],
    ),  # fmt: skip
    Mutant(
        "F4",
        "output rows freed before their copy-out",
        FLASH,
        [
            (
                "    AscendC::DataCopyPad(out_[token * row_stride + uint64_t(b.head) * dv], y,\n"
                + STORE_O_PARAMS
                + ";\n    softmax_.FreeOut(y);",
                "    softmax_.FreeOut(y);\n"
                "    AscendC::DataCopyPad(out_[token * row_stride + uint64_t(b.head) * dv], y,\n"
                + STORE_O_PARAMS
                + ";",
            )
        ],
        ["flash"],
    ),  # fmt: skip
    Mutant(
        "F5",
        "REGIST_MATMUL_OBJ after the kernel's InitBuffer calls",
        FLASH_ENTRY,
        [
            (
                "  REGIST_MATMUL_OBJ(&pipe, GetSysWorkSpacePtr(), op.mm_qk, &tiling.mm1, op.mm_pv, &tiling.mm2);\n"
                "  op.Init(q, k, v, cu_seqlens_q, cu_seqlens_k, out, lse, workspace, &tiling, &pipe);",
                "  if ASCEND_IS_AIV {\n"
                "    op.Init(q, k, v, cu_seqlens_q, cu_seqlens_k, out, lse, workspace, &tiling, &pipe);\n  }\n"
                "  REGIST_MATMUL_OBJ(&pipe, GetSysWorkSpacePtr(), op.mm_qk, &tiling.mm1, op.mm_pv, &tiling.mm2);",
            )
        ],
        ["flash"],
        sync=False,
    ),  # fmt: skip
    Mutant(
        "F6",
        "O_tmp of the wrong slot parity accumulated (the slot P V(j) is still writing)",
        FLASH,
        [
            (
                "if (j > 0) softmax_.AccumulatePV((j - 1) % 2, b.rows);",
                "if (j > 0) softmax_.AccumulatePV(j % 2, b.rows);",
            )
        ],
        ["flash"],
    ),  # fmt: skip
    Mutant(
        "F7",
        "WaitIterateAll dropped before End (End taken for the wait)",
        FLASH,
        [
            (
                "    mm.WaitIterateAll();\n    mm.End();\n",
                "    mm.End();\n",
            )
        ],
        ["flash"],
    ),  # fmt: skip
    Mutant(
        "F8",
        "P V issued without waiting for S(j + 1) (its WaitCube dropped)",
        FLASH,
        [
            (
                "      if (j + 1 < tiles) WaitCube(mm_qk);  // S(j + 1), computed during that softmax\n",
                "",
            )
        ],
        ["flash"],
    ),  # fmt: skip
    Mutant(
        "F9",
        "P V waited only when another tile follows: the last tile's O_tmp is rescaled in before the cube is done",
        FLASH,
        [
            (
                "      WaitCube(mm_pv);\n      if (j + 2 < tiles) IssueScores(b, j + 2);",
                "      if (j + 1 < tiles) WaitCube(mm_pv);\n      if (j + 2 < tiles) IssueScores(b, j + 2);",
            )
        ],
        ["flash"],
    ),  # fmt: skip
    Mutant(
        "P1",
        "partial O copied out with no V->MTE3 wait (TBuf)",
        PAGED,
        [
            (
                flags("V_MTE3", "v_mte3") + "    for (uint32_t r = r0;",
                "    (void)v_mte3;\n    for (uint32_t r = r0;",
            )
        ],
        PAGED_CASES,
    ),  # fmt: skip
    Mutant(
        "P2",
        "partial O copy-out not waited before the next item's Reset (TBuf)",
        PAGED,
        [
            (
                flags("MTE3_V", "mte3_v") + "  }\n\n  // Partial lse",
                "    (void)mte3_v;\n  }\n\n  // Partial lse",
            )
        ],
        PAGED_CASES,
    ),  # fmt: skip
    Mutant(
        "P3",
        "no SyncAll between the partial results and the combine",
        PAGED,
        [
            (
                "      AscendC::SyncAll();  // every split's partial O and lse are in GM\n",
                "",
            )
        ],
        PAGED_CASES,
    ),  # fmt: skip
    Mutant(
        "P4",
        "a worker with no items returns before SyncAll",
        PAGED,
        [
            (
                "    uint32_t item = t_->worker_item_begin[worker];\n",
                "    uint32_t item = t_->worker_item_begin[worker];\n    if (item >= end) return;\n",
            )
        ],
        PAGED_CASES,
    ),  # fmt: skip
    Mutant(
        "P5",
        "End() missing between the two Matmul objects",
        PAGED,
        [
            (
                "    pending = false;\n    mm.End();\n",
                "    pending = false;\n",
            )
        ],
        PAGED_CASES,
    ),  # fmt: skip
    Mutant(
        "P6",
        "S(j + 2) issued into the slot of S(j + 1) (wrong slot parity)",
        PAGED,
        [
            (
                "if (j + 2 < tiles) IssueScores(it, k0 + 2 * bc, j % 2);",
                "if (j + 2 < tiles) IssueScores(it, k0 + 2 * bc, (j + 1) % 2);",
            )
        ],
        PAGED_CASES,
    ),  # fmt: skip
    Mutant(
        "P7",
        "a page's request sent without waiting for the previous request of its Matmul object",
        PAGED,
        [
            (
                "    if (pending) mm.WaitIterateAll();\n    mm.template IterateAll<false>",
                "    mm.template IterateAll<false>",
            )
        ],
        PAGED_CASES,
    ),  # fmt: skip
    Mutant(
        "P8",
        "both slot sets at one workspace address (the second set's offset forgotten)",
        PAGED,
        [
            (
                "Slots(aiv), Slots(aiv + t_->ws_slot_bytes));",
                "Slots(aiv), Slots(aiv));",
            )
        ],
        PAGED_CASES,
    ),  # fmt: skip
    Mutant(
        "P9",
        "partial O copy-out after a MTE3->V pair instead of V->MTE3 (event direction swapped)",
        PAGED,
        [
            (
                flags("V_MTE3", "v_mte3") + "    for (uint32_t r = r0;",
                "    AscendC::SetFlag<AscendC::HardEvent::MTE3_V>(v_mte3);\n"
                "    AscendC::WaitFlag<AscendC::HardEvent::MTE3_V>(v_mte3);\n    for (uint32_t r = r0;",
            )
        ],
        PAGED_CASES,
    ),  # fmt: skip
    Mutant(
        "Q1",
        "the Q slot's zeros never written (only the diagonal blocks of the block-diagonal queries)",
        PAGED,
        [
            (
                "    if (hp > 1 && it.rows > zeroed_rows_) ZeroQueryRows(it.rows);\n",
                "",
            )
        ],
        ["paged_grouped"],
        sync=False,
    ),  # fmt: skip
    Mutant(
        "Q2",
        "no MTE3->S wait after the queries' copy into the Q slot: the cube may read it first",
        PAGED,
        [
            (
                flags("MTE3_S", "mte3_s") + "  }\n\n  // Zeros",
                "    (void)mte3_s;\n  }\n\n  // Zeros",
            )
        ],
        ["paged_grouped"],
    ),  # fmt: skip
    Mutant(
        "Q3",
        "queries copied out of UB into the Q slot with no MTE2->MTE3 wait after their copy in",
        PAGED,
        [
            (
                flags("MTE2_MTE3", "mte2_mte3").replace("    ", "      "),
                "      (void)mte2_mte3;\n",
            )
        ],
        ["paged_grouped", "paged_prefill"],
    ),  # fmt: skip
    Mutant(
        "Q4",
        "the first item's queries copied into UB while the zeros still leave it (no MTE3->MTE2 wait)",
        PAGED,
        [
            (
                flags("MTE3_MTE2", "mte3_mte2") + "    zeroed_rows_ = rows;",
                "    (void)mte3_mte2;\n    zeroed_rows_ = rows;",
            )
        ],
        ["paged_grouped"],
    ),  # fmt: skip
    Mutant(
        "C1",
        "combined lse written with SetValue (neighbouring rows on other cores, never written back)",
        COMBINE,
        [
            (
                "    if (lse != nullptr) {\n"
                "      AscendC::DataCopyPad(*lse, y[lse_out_at_].template ReinterpretCast<float>(),\n"
                "                           AscendC::DataCopyExtParams(1, 4, 0, 0, 0));\n    }",
                "    if (lse != nullptr) {\n      AscendC::GlobalTensor<float> l = *lse;\n"
                "      l.SetValue(0, total);\n    }",
            )
        ],
        PAGED_CASES,
    ),  # fmt: skip
    Mutant(
        "C2",
        "partials used without DeQue",
        COMBINE,
        [
            (
                "    in_que_.EnQue(in);\n    in = in_que_.DeQue<float>();\n",
                "",
            )
        ],
        PAGED_CASES,
    ),  # fmt: skip
    Mutant(
        "C3",
        "partial lse copied over the partial O rows (offset bug: two MTE2 copies into one UB range)",
        COMBINE,
        [
            (
                "    lse_at_ = ub.parts_bytes / 4;",
                "    lse_at_ = 0;",
            )
        ],
        PAGED_CASES,
    ),  # fmt: skip
    Mutant(
        "C4",
        "combined row copied out without the VECOUT EnQue/DeQue",
        COMBINE,
        [
            (
                "    out_que_.EnQue(y);\n    y = out_que_.DeQue<T>();\n",
                "",
            )
        ],
        PAGED_CASES,
    ),  # fmt: skip
    Mutant(
        "R1",
        "rows copied GM -> UB -> GM through a VECIN queue (issue finding 4)",
        RESHAPE,
        [
            (
                "  AscendC::TQueBind<AscendC::TPosition::VECIN, AscendC::TPosition::VECOUT, 1> que_;",
                "  AscendC::TQue<AscendC::TPosition::VECIN, 1> que_;",
            )
        ],
        ["reshape"],
    ),  # fmt: skip
    Mutant(
        "R2",
        "row used without DeQue",
        RESHAPE,
        [
            (
                "    que_.EnQue(row);\n    row = que_.DeQue<uint8_t>();\n",
                "",
            )
        ],
        ["reshape"],
    ),  # fmt: skip
    Mutant("R3", "FreeTensor forgotten", RESHAPE, [("    que_.FreeTensor(row);\n", "")], ["reshape"]),
    Mutant(
        "G1",
        "dK's request sent while dV's (same Matmul object) is unwaited",
        GRAD,
        [
            (
                "        IssueTransposed(seq, pair, slot, true, added);\n        WaitCube(mm_t);\n",
                "        IssueTransposed(seq, pair, slot, true, added);\n",
            )
        ],
        ["grad"],
    ),  # fmt: skip
    Mutant(
        "G2",
        "dP of the next step issued before this step's vector work has read dP (one dP slot), waited after it",
        GRAD,
        [
            (
                "      Vector(seq, cur, i % 2);\n      if (i + 1 < steps) {\n        WaitCube(mm_s);\n"
                "        IssueDp(seq, next);\n        WaitCube(mm_s);\n      }\n",
                "      if (i + 1 < steps) {\n        WaitCube(mm_s);\n        IssueDp(seq, next);\n      }\n"
                "      Vector(seq, cur, i % 2);\n      if (i + 1 < steps) WaitCube(mm_s);\n",
            )
        ],
        ["grad"],
    ),  # fmt: skip
    Mutant(
        "G3",
        "both P slots at one address (slot 1's offset forgotten): a pair's dV reads the second step's P twice",
        GRAD,
        [
            (
                "reinterpret_cast<__gm__ T*>(mine + t_->ws_p_offset) + i * step,",
                "reinterpret_cast<__gm__ T*>(mine + t_->ws_p_offset),",
            )
        ],
        ["grad"],
        sync=False,
    ),  # fmt: skip
    Mutant(
        "G4",
        "no SyncAll after the row pass: tasks read D (and add to dQ) before other cores wrote (zeroed) it",
        GRAD,
        [
            (
                "    AscendC::SyncAll();  // D of every row is in GM (and the dQ accumulator is zero)\n",
                "",
            )
        ],
        ["grad"],
    ),  # fmt: skip
    Mutant(
        "G5",
        "dQ stored instead of atomically added (enAtomic 0): kv tasks on other cores write the same rows",
        GRAD,
        [
            (
                "dq_ws_[row * t_->num_heads * d + cur.head * d], t_->num_heads * d, true);",
                "dq_ws_[row * t_->num_heads * d + cur.head * d], t_->num_heads * d, false);",
            )
        ],
        ["grad"],
    ),  # fmt: skip
    Mutant(
        "G6",
        "no SyncAll before the dQ cast: a core casts rows other cores still add to",
        GRAD,
        [
            (
                "      AscendC::SyncAll();  // every atomic add to the dQ accumulator is done\n",
                "",
            )
        ],
        ["grad"],
    ),  # fmt: skip
]

# Builds the simulator from the tree it is given and runs the named cases once free-running and once per seed. Each
# case draws its inputs from its own generator, so every run of a case sees the same inputs whatever ran before it.
# With a reference file the outputs are compared with it; without one the first run's outputs are saved as it.
WORKER = r"""
import glob, json, os, sys, torch
from torch.utils.cpp_extension import load
root, build, cases, ref_path = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[5]
seeds = json.loads(sys.argv[4])
sources = [f for sub in ("sim", "tiling", "common") for f in sorted(glob.glob(f"{root}/csrc/{sub}/*.cpp"))]
includes = [f"{root}/csrc", f"{root}/csrc/sim"]
sim = load(name="_sim", sources=sources, build_directory=build, extra_include_paths=includes,
           extra_cflags=["-O1", "-std=c++17"], verbose=False)

def flash(g, seed):
    cu_q = torch.tensor([0, 150, 220, 420], dtype=torch.int32)  # the last sequence: 200 queries over 60 keys
    cu_k = torch.tensor([0, 150, 1250, 1310], dtype=torch.int32)
    q = torch.randn(420, 4, 64, generator=g).half()
    k, v = torch.randn(1310, 2, 64, generator=g).half(), torch.randn(1310, 2, 64, generator=g).half()
    out, lse, _ = sim.flash_attention_varlen(q, k, v, cu_q, cu_k, 200, 1100, None, True, [-1, -1], 0.0, True, 3,
                                             False, seed, None)
    return [out, lse]

def paged_call(g, seed, lens, q_lens, heads, kv_heads, bs, cores):
    blocks = [-(-n // bs) for n in lens]
    kc = torch.randn(sum(blocks), bs, kv_heads, 64, generator=g).half()
    vc = torch.randn(sum(blocks), bs, kv_heads, 64, generator=g).half()
    tables = torch.full((len(lens), max(blocks)), -1, dtype=torch.int32)
    at = 0
    for s, b in enumerate(blocks):
        tables[s, :b] = torch.arange(at, at + b, dtype=torch.int32)
        at += b
    cu = torch.tensor([0] + q_lens, dtype=torch.int32).cumsum(0, dtype=torch.int32)
    q = torch.randn(int(cu[-1]), heads, 64, generator=g).half()
    out, lse, stats = sim.paged_attention(q, kc, vc, tables, torch.tensor(lens, dtype=torch.int32), cu, None, True,
                                          [-1, -1], 0.0, True, cores, False, seed, None)
    return [out, lse], stats

def paged(g, seed):
    out, stats = paged_call(g, seed, [2500, 40, 7], [1, 1, 1], 8, 2, 128, 24)
    assert stats["kv_splits"] > 1, "the paged case must split the KV length"
    return out

def paged_prefill(g, seed):
    out, stats = paged_call(g, seed, [1100], [600], 1, 1, 128, 4)
    assert stats["kv_splits"] > 1, "the paged_prefill case must split the KV length"
    return out

def paged_nosplit(g, seed):
    out, stats = paged_call(g, seed, [300, 200], [1, 20], 8, 2, 64, 2)
    assert stats["kv_splits"] == 1, "the paged_nosplit case must not split the KV length"
    return out

def paged_grouped(g, seed):
    out, stats = paged_call(g, seed, [4200, 2100], [1, 1], 32, 8, 128, 1)
    assert stats["heads_per_item"] == 4, "the paged_grouped case must put 4 kv heads in an item"
    return out

def reshape(g, seed):
    key, value = torch.randn(40, 2, 32, generator=g).half(), torch.randn(40, 2, 48, generator=g).half()
    kc, vc = torch.zeros(8, 16, 2, 32).half(), torch.zeros(8, 16, 2, 48).half()
    slots = torch.randperm(128, generator=g)[:40].to(torch.int32)
    sim.reshape_and_cache(key, value, kc, vc, slots, 2, seed, None)
    return [kc, vc]

def grad(g, seed):
    cu_q = torch.tensor([0, 600, 640], dtype=torch.int32)
    cu_k = torch.tensor([0, 520, 560], dtype=torch.int32)
    q, dout, out = (torch.randn(640, 4, 64, generator=g).half() for _ in range(3))
    k, v = torch.randn(560, 2, 64, generator=g).half(), torch.randn(560, 2, 64, generator=g).half()
    lse = torch.randn(4, 640, generator=g) + 5.0  # any lse: the kernel takes it as given
    outputs = []
    for deterministic in (False, True):
        dq, dk, dv, _ = sim.flash_attention_varlen_backward(dout, q, k, v, out, lse, cu_q, cu_k, 600, 520, None, True,
                                                            [-1, -1], 0.0, None, deterministic, 3, False, seed, None)
        outputs += [dq, dk, dv] if deterministic else [dk, dv]
    return outputs

def max_diff(got, want):
    # -inf lse rows compare equal to themselves; a NaN on one side only is an infinite difference.
    worst = 0.0
    for a, b in zip(got, want):
        if a.shape != b.shape:
            return float("inf")
        a, b = a.float(), b.float()
        same = (a == b) | (a.isnan() & b.isnan())
        d = torch.where(same, torch.zeros_like(a), (a - b).abs()).nan_to_num(nan=float("inf"))
        worst = max(worst, d.max().item() if d.numel() else 0.0)
    return worst

ref = torch.load(ref_path) if os.path.exists(ref_path) else {}
record = not ref
result = {}
for case in cases:
    for seed in seeds:
        g = torch.Generator().manual_seed(0)
        try:
            outputs = globals()[case](g, seed)
        except Exception as e:
            result[f"{case} seed={seed}"] = {"error": str(e).splitlines()[0], "diff": None}
            continue
        ref.setdefault(case, outputs)
        result[f"{case} seed={seed}"] = {"error": None, "diff": max_diff(outputs, ref[case])}
if record:
    torch.save(ref, ref_path)
print("RESULT " + json.dumps(result))
"""


def rule_of(message: str) -> str:
    """The rule a message names, without the numbers, threads and lines that vary between runs."""
    text = message.removeprefix("Ascend C simulator: ").split(" (at ")[0]
    text = re.sub(r"\b(AIV|AIC) \d+", r"\1 n", text)
    text = re.sub(r"\[\d+, \d+\)", "[..)", text)
    return re.sub(r"[\w.]+\.(h|cpp):\d+", "<line>", text)


def mutate(text: str, m: Mutant) -> str:
    """The source with m's edits; raises ValueError naming the edit if its text does not occur exactly once, so that
    no mutant can silently test the unmutated kernel."""
    for old, new in m.edits:
        if text.count(old) != 1:
            raise ValueError(f"{m.id}: the text to mutate occurs {text.count(old)} times in {m.file}:\n{old}")
        text = text.replace(old, new)
    return text


def problems(pristine: dict[str, str]) -> list[str]:
    """What is wrong with MUTANTS against these sources: duplicate ids, unknown cases (the worker would raise on them,
    which would count as caught), edits that do not apply."""
    ids = [m.id for m in MUTANTS]
    found = [f"duplicate mutant id {i}" for i in sorted({i for i in ids if ids.count(i) > 1})]
    found += [f"{m.id}: unknown case {c}" for m in MUTANTS for c in m.cases if c not in CASES]
    for m in MUTANTS:
        try:
            mutate(pristine[m.file], m)
        except ValueError as e:
            found.append(str(e))
    return found


def sync_tree(src: str, dst: str) -> None:
    """Makes dst a copy of src, rewriting only the files whose content differs: ninja rebuilds by mtime, so those get
    a fresh one (an earlier study stopped mid-mutant may have left a mutant's objects newer than the pristine file),
    while the rest keep theirs and their objects are reused (a full build takes several minutes)."""
    wanted = set()
    for folder, _, files in os.walk(src):
        for name in files:
            rel = os.path.relpath(os.path.join(folder, name), src)
            wanted.add(rel)
            a, b = os.path.join(src, rel), os.path.join(dst, rel)
            if not os.path.exists(b) or open(a, "rb").read() != open(b, "rb").read():
                os.makedirs(os.path.dirname(b), exist_ok=True)
                shutil.copy(a, b)
    for folder, _, files in os.walk(dst):
        for name in files:
            if os.path.relpath(os.path.join(folder, name), dst) not in wanted:
                os.remove(os.path.join(folder, name))


def run_worker(tree: str, build: str, cases: list[str], seeds: list, ref: str) -> dict | str:
    """The worker's per-run results, or why it produced none."""
    try:
        r = subprocess.run([sys.executable, "-c", WORKER, tree, build, ",".join(cases), json.dumps(seeds), ref],
                           capture_output=True, text=True, timeout=3 * 3600)  # fmt: skip
    except subprocess.TimeoutExpired:
        return "timed out after 3 h"
    line = next((x for x in r.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        return f"did not build or run (exit {r.returncode}): " + (r.stderr.strip().splitlines() or ["?"])[-1][:300]
    return json.loads(line[len("RESULT ") :])


def summarize(results: dict) -> tuple[str, str, str, str]:
    """caught (yes / NO / mixed), the runs that raised per case, the rules with their lines, and the outputs of the
    runs that passed."""
    raised = {}
    for key, r in results.items():
        case = key.split(" ")[0]
        n, k = raised.get(case, (0, 0))
        raised[case] = (n + 1, k + (r["error"] is not None))
    if any(0 < k < n for n, k in raised.values()):
        caught = "mixed"
    else:
        caught = "yes" if any(k == n for n, k in raised.values()) else "NO"
    runs = ", ".join(f"{case} {k}/{n}" for case, (n, k) in raised.items())
    errors = [r["error"] for r in results.values() if r["error"] is not None]
    rules = sorted({rule_of(e) for e in errors})
    where = sorted({re.search(r"\(at ([\w.]+:\d+)", e).group(1) for e in errors if " (at " in e})
    rule = "; ".join(rules) + (f" — at {', '.join(where)}" if where else "")
    diffs = {key.split(" ")[0]: r["diff"] for key, r in results.items() if r["error"] is None}
    differ = {case: d for case, d in diffs.items() if d != 0.0}
    if not diffs:
        output = "—"
    elif not differ:
        output = "same"
    else:
        output = "differs: " + ", ".join(f"{case} max abs diff {d:.3g}" for case, d in differ.items())
    return caught, runs, rule, output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="mutant ids to run (default: all)")
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2], help="seeded interleavings besides free runs")
    parser.add_argument("--work", default=os.path.join(ROOT, "build", "mutation_study"))
    parser.add_argument("--check", action="store_true", help="only check that every mutant applies; build nothing")
    args = parser.parse_args()
    unknown = set(args.only or []) - {m.id for m in MUTANTS}
    if unknown:
        sys.exit(f"unknown mutant ids: {sorted(unknown)}")
    mutants = [m for m in MUTANTS if not args.only or m.id in args.only]
    pristine = {f: open(os.path.join(ROOT, f)).read() for f in {m.file for m in MUTANTS}}
    found = problems(pristine)  # every mutant, not only those of --only, so a stale one fails any run
    if found:
        sys.exit("\n".join(found))
    if args.check:
        print(f"{len(MUTANTS)} mutants: every edit applies exactly once to the current sources")
        return
    mutated = {m.id: mutate(pristine[m.file], m) for m in MUTANTS}
    tree, build = os.path.join(args.work, "tree"), os.path.join(args.work, "ext")
    ref = os.path.join(args.work, "reference.pt")
    os.makedirs(build, exist_ok=True)
    for sub in ("csrc", "op_kernel"):
        sync_tree(os.path.join(ROOT, sub), os.path.join(tree, sub))
    # torch's build lock, left behind when an earlier study was stopped mid-build: the build would wait on it forever.
    for stale in (ref, os.path.join(build, "lock")):
        if os.path.exists(stale):
            os.remove(stale)
    seeds = [None, *args.seeds]
    cases = [c for c in CASES if any(c in m.cases for m in mutants)]
    start = time.monotonic()
    print(f"{len(mutants)} mutants, runs per case: free-running and seeds {args.seeds}", file=sys.stderr)
    print(f"  unmutated kernels: building and running {', '.join(cases)}", file=sys.stderr, flush=True)
    baseline = run_worker(tree, build, cases, seeds, ref)
    if isinstance(baseline, str) or any(r["error"] or r["diff"] != 0.0 for r in baseline.values()):
        sys.exit(f"the unmutated kernels must pass every run with one output per case: {baseline}")
    # Each row is printed as soon as its mutant has run, so that a study stopped part-way still leaves its table.
    print("| id | planted bug | file | caught | runs that raised | rule | output of the runs that passed |")
    print("|---|---|---|:---:|---|---|---|", flush=True)
    rows = []
    for m in mutants:
        path = os.path.join(tree, m.file)
        open(path, "w").write(mutated[m.id])
        began = time.monotonic()
        print(f"  {m.id}: {m.what} ... building and running", file=sys.stderr, flush=True)
        try:
            results = run_worker(tree, build, m.cases, seeds, ref)
        finally:
            open(path, "w").write(pristine[m.file])
        print(f"  {m.id}: {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
        caught, runs, rule, output = ("NO", "", results, "") if isinstance(results, str) else summarize(results)
        rows.append((m, (caught, runs, rule, output)))
        kind = "" if m.sync else " (not a sync bug)"
        print(
            f"| {m.id} | {m.what}{kind} | {os.path.basename(m.file)} | {caught} | {runs} | {rule} | {output} |",
            flush=True,
        )
    missed = [m.id for m, (caught, *_) in rows if caught != "yes"]
    wrong = [m.id for m, (caught, _, _, output) in rows if caught != "yes" and output.startswith("differs")]
    print(
        f"\n{len(rows) - len(missed)} of {len(rows)} caught by a simulator rule"
        + (f"; not caught or mixed: {missed}" if missed else "")
        + (f"; of those, output differs from the unmutated kernels': {wrong}" if wrong else "")
    )
    print(f"total {time.monotonic() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
