"""Mutation study of the Ascend C simulator: plants one realistic bug at a time in the real kernels (op_kernel/),
rebuilds the simulator with it and runs small flash_attention / paged_attention / reshape_and_cache cases, free-running
and under seeded interleavings, then reports which rule caught each bug and whether every run caught it the same way.

    python scripts/mutation_study.py [--only ID ...] [--seeds 1 2] [--work DIR]

The checkout is never modified: mutants are built in a copy of csrc/ and op_kernel/ under --work (default
build/mutation_study), one simulator extension shared by all mutants so that ninja rebuilds only the translation
units a mutation touches (about 1-3 minutes each on 2 cores). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SOFTMAX = "op_kernel/common/online_softmax.h"
FLASH = "op_kernel/flash_attention/flash_attention_kernel.h"
FLASH_ENTRY = "op_kernel/flash_attention/flash_attention.cpp"
PAGED = "op_kernel/paged_attention/paged_attention_kernel.h"
COMBINE = "op_kernel/paged_attention/paged_combine.h"
RESHAPE = "op_kernel/reshape_and_cache/reshape_and_cache.cpp"


# The argument line of flash_attention's StoreO copy-out, as clang-format lays it out.
STORE_O_PARAMS = (
    "                         AscendC::DataCopyExtParams(uint16_t(n), dv * sizeof(T), 0, "
    "(row_stride - dv) * sizeof(T), 0))"
)


def flags(event: str, var: str) -> str:
    """The SetFlag/WaitFlag pair of the kernels' hand-ordered TBuf copies, as it appears in their source."""
    return (
        f"    AscendC::SetFlag<AscendC::HardEvent::{event}>({var});\n"
        f"    AscendC::WaitFlag<AscendC::HardEvent::{event}>({var});\n"
    )


@dataclass
class Mutant:
    id: str
    what: str
    file: str
    edits: list[tuple[str, str]]  # (old, new), each old occurring exactly once
    cases: list[str]  # flash, paged, reshape
    sync: bool = True  # a synchronisation bug (the rest break other rules)


MUTANTS = [
    Mutant(
        "S1",
        "no MTE3->S wait before the cube reads P",
        SOFTMAX,
        [
            (
                flags("MTE3_S", "mte3_s").rstrip("\n"),
                "    (void)mte3_s;",
            )
        ],
        ["flash", "paged"],
    ),  # fmt: skip
    Mutant(
        "S2",
        "S tile used without DeQue (VECIN EnQue/DeQue removed)",
        SOFTMAX,
        [
            (
                "    in_que_.EnQue(s);\n    s = in_que_.DeQue<float>();\n    AscendC::LocalTensor<T> p",
                "    AscendC::LocalTensor<T> p",
            )
        ],
        ["flash"],
    ),  # fmt: skip
    Mutant(
        "S3",
        "P copied out without the VECOUT EnQue/DeQue",
        SOFTMAX,
        [
            (
                "    out_que_.EnQue(p);\n    p = out_que_.DeQue<T>();\n    const uint16_t gap",
                "    const uint16_t gap",
            )
        ],
        ["flash"],
    ),  # fmt: skip
    Mutant(
        "S4",
        "S tile freed before the softmax reads it (use after free)",
        SOFTMAX,
        [
            (
                "    s = in_que_.DeQue<float>();\n    AscendC::LocalTensor<T> p = out_que_.AllocTensor<T>();",
                "    s = in_que_.DeQue<float>();\n    in_que_.FreeTensor(s);\n"
                "    AscendC::LocalTensor<T> p = out_que_.AllocTensor<T>();",
            ),
            ("    in_que_.FreeTensor(s);\n    out_que_.EnQue(p);", "    out_que_.EnQue(p);"),
        ],
        ["flash"],
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
        ["flash", "paged"],
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
        ["flash", "paged"],
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
        ["flash"],
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
        ["flash"],
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
        ["flash"],
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
        ["flash"],
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
        ["flash"],
        sync=False,
    ),  # fmt: skip
    Mutant(
        "F1",
        "S = Q K^T issued asynchronously and never waited",
        FLASH,
        [
            (
                "    mm_qk.IterateAll(ws_s_);",
                "    mm_qk.template IterateAll<false>(ws_s_);",
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
                "    mm_qk.IterateAll(ws_s_);\n    mm_qk.End();",
                "    mm_qk.IterateAll(ws_s_);",
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
        "P1",
        "partial O copied out with no V->MTE3 wait (TBuf)",
        PAGED,
        [
            (
                flags("V_MTE3", "v_mte3") + "    for (uint32_t r = r0;",
                "    (void)v_mte3;\n    for (uint32_t r = r0;",
            )
        ],
        ["paged"],
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
        ["paged"],
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
        ["paged"],
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
        ["paged"],
    ),  # fmt: skip
    Mutant(
        "P5",
        "End() missing between the two Matmul objects",
        PAGED,
        [
            (
                "    mm_qk.End();\n  }\n\n  // O_tmp[rows, dv]",
                "  }\n\n  // O_tmp[rows, dv]",
            )
        ],
        ["paged"],
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
        ["paged"],
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
        ["paged"],
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
        ["paged"],
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
        ["paged"],
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
]

WORKER = r"""
import json, sys, torch
from torch.utils.cpp_extension import load
root, build, cases, seeds = sys.argv[1], sys.argv[2], sys.argv[3].split(","), json.loads(sys.argv[4])
import glob, os
sources = sorted(glob.glob(f"{root}/csrc/sim/*.cpp")) + sorted(glob.glob(f"{root}/csrc/tiling/*.cpp"))
sources += [f"{root}/csrc/common/{f}" for f in ("attention_args.cpp", "paged_args.cpp", "flash_attention_launch.cpp",
                                               "paged_attention_launch.cpp")]
includes = [f"{root}/csrc", f"{root}/csrc/sim"]
sim = load(name="_sim", sources=sources, build_directory=build, extra_include_paths=includes,
           extra_cflags=["-O1", "-std=c++17"], verbose=False)
torch.manual_seed(0)

def flash(seed):
    q = torch.randn(220, 4, 64).half(); k = torch.randn(450, 2, 64).half(); v = torch.randn(450, 2, 64).half()
    cu_q = torch.tensor([0, 150, 220], dtype=torch.int32); cu_k = torch.tensor([0, 150, 450], dtype=torch.int32)
    sim.flash_attention_varlen(q, k, v, cu_q, cu_k, 150, 300, None, True, [-1, -1], 0.0, True, 3, False, seed)

def paged(seed):
    lens, bs = [2500, 40, 7], 128
    blocks = [-(-n // bs) for n in lens]
    kc = torch.randn(sum(blocks), bs, 2, 64).half(); vc = torch.randn(sum(blocks), bs, 2, 64).half()
    tables = torch.full((3, max(blocks)), -1, dtype=torch.int32); at = 0
    for s, b in enumerate(blocks):
        tables[s, :b] = torch.arange(at, at + b, dtype=torch.int32); at += b
    ctx = torch.tensor(lens, dtype=torch.int32); q = torch.randn(3, 8, 64).half()
    sim.paged_attention(q, kc, vc, tables, ctx, None, None, True, [-1, -1], 0.0, True, 24, False, seed)

def reshape(seed):
    key, value = torch.randn(40, 2, 32).half(), torch.randn(40, 2, 48).half()
    kc, vc = torch.zeros(8, 16, 2, 32).half(), torch.zeros(8, 16, 2, 48).half()
    slots = torch.randperm(128)[:40].to(torch.int32)
    sim.reshape_and_cache(key, value, kc, vc, slots, 2, seed)

out = {}
for case in cases:
    for seed in seeds:
        try:
            globals()[case](seed)
            out[f"{case} seed={seed}"] = None
        except Exception as e:
            out[f"{case} seed={seed}"] = str(e).splitlines()[0]
print("RESULT " + json.dumps(out))
"""


def rule_of(message: str) -> str:
    """The rule a message names, without the numbers, threads and lines that vary between runs."""
    text = message.removeprefix("Ascend C simulator: ").split(" (at ")[0]
    text = re.sub(r"\b(AIV|AIC) \d+", r"\1 n", text)
    text = re.sub(r"\[\d+, \d+\)", "[..)", text)
    return re.sub(r"[\w.]+\.(h|cpp):\d+", "<line>", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="mutant ids to run (default: all)")
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2], help="seeded interleavings besides free runs")
    parser.add_argument("--work", default=os.path.join(ROOT, "build", "mutation_study"))
    args = parser.parse_args()
    tree, build = os.path.join(args.work, "tree"), os.path.join(args.work, "ext")
    os.makedirs(build, exist_ok=True)
    for sub in ("csrc", "op_kernel"):
        shutil.rmtree(os.path.join(tree, sub), ignore_errors=True)
        shutil.copytree(os.path.join(ROOT, sub), os.path.join(tree, sub))
    seeds = [None, *args.seeds]
    mutants = [m for m in MUTANTS if not args.only or m.id in args.only]
    print(f"{len(mutants)} mutants, runs per case: free-running and seeds {args.seeds}", file=sys.stderr)
    rows = []
    for m in mutants:
        path = os.path.join(tree, m.file)
        pristine = open(path).read()
        text = pristine
        for old, new in m.edits:
            assert text.count(old) == 1, f"{m.id}: the text to mutate occurs {text.count(old)} times in {m.file}"
            text = text.replace(old, new)
        open(path, "w").write(text)
        print(f"  {m.id}: {m.what} ... building and running", file=sys.stderr, flush=True)
        try:
            r = subprocess.run([sys.executable, "-c", WORKER, tree, build, ",".join(m.cases), json.dumps(seeds)],
                               capture_output=True, text=True)  # fmt: skip
        finally:
            open(path, "w").write(pristine)
        line = next((x for x in r.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            rows.append((m, "did not build or run: " + (r.stderr.strip().splitlines() or ["?"])[-1][:200], False))
            continue
        results = json.loads(line[len("RESULT ") :])
        caught = all(v is not None for v in results.values())
        rules = sorted({rule_of(v) for v in results.values() if v is not None})
        where = sorted({re.search(r"\(at ([\w.]+:\d+)", v).group(1) for v in results.values() if v and " (at " in v})
        rows.append((m, "; ".join(rules) + (f" — at {', '.join(where)}" if where else ""), caught))
    print("| id | planted bug | file | caught in every run | rule |")
    print("|---|---|---|:---:|---|")
    for m, rule, caught in rows:
        kind = "" if m.sync else " (not a sync bug)"
        print(f"| {m.id} | {m.what}{kind} | {os.path.basename(m.file)} | {'yes' if caught else 'NO'} | {rule} |")
    missed = [m.id for m, _, caught in rows if not caught]
    print(f"\n{len(rows) - len(missed)} of {len(rows)} caught in every run" + (f"; missed: {missed}" if missed else ""))


if __name__ == "__main__":
    main()
