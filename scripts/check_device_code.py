#!/usr/bin/env python3
"""Device-code check for the Ascend C kernels: what bisheng enforces and g++ ignores.

In CI the kernels build with g++ against the simulator headers, where ``__aicore__`` and friends are empty macros,
so nothing there notices device code that bisheng would reject. This script parses every kernel entry translation
unit with libclang, with the qualifiers defined as ``annotate`` attributes, walks the call graph from each
``__global__`` function and reports, for code under the kernel root (op_kernel/):

1. a function, method, constructor, destructor, operator or lambda reachable from a kernel that is neither
   ``__aicore__`` nor ``__host_aicore__`` (constexpr ones included). A lambda is reported where it is written, in
   any reachable function, whether or not it is called: bisheng needs the qualifier on its call operator, and a
   named functor with an ``__aicore__ operator()`` says so plainly;
2. a reachable use of what only the host has: names from namespace std (but the compile-time traits in STD_ALLOWED
   and aliases of built-in types), throw/try/catch, new/delete, typeid/dynamic_cast, calls into any other library
   or host code, and the simulator's own namespace ``ascend_sim`` (kernels use the real API: AscendC::, matmul::
   and the documented macros, whose expansions may use it).

The API headers (csrc/sim, standing in for CANN's) are leaves: the simulator's implementation is host code by
design. Calls resolve through the template instantiations libclang shows (the instantiated bodies, so a kernel class
template is walked as FlashAttentionKernel<half>); where it shows only a template's pattern, every overload a
dependent call may pick is followed.

Usage: check_device_code.py [--root DIR] [FILE.cpp ...]
  --root  directory of the device code (default op_kernel); the __global__ functions of its */*.cpp files are the
          kernel entries unless FILEs are given.
Prints one line per problem and a summary; exits 1 on any problem or parse error, 0 when clean.
"""

from __future__ import annotations

import argparse
import functools
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

try:
    from clang import cindex
    from clang.cindex import Cursor, CursorKind
except ImportError:
    sys.exit(
        "check_device_code: the libclang Python package is missing; install the pinned one with "
        "`.venv/bin/pip install -r requirements-dev.txt`"
    )

REPO = Path(__file__).resolve().parents[1]
SIM = REPO / "csrc" / "sim"
QUALIFIERS = {"aicore", "host_aicore"}
API_INCLUDES = '#include "kernel_operator.h"\n#include "lib/matmul_intf.h"\n'  # what kernels include from csrc/sim
DEFINES = [f'-D__{q}__=__attribute__((annotate("{q}")))' for q in ("aicore", "global", "host_aicore")]

# Compile-time std type traits: no code is generated for them (static_assert, enable_if, tag dispatch). A member of
# one (``::value``, ``::type``) counts as the trait.
STD_ALLOWED = {
    "conditional", "conditional_t", "decay_t", "enable_if", "enable_if_t", "false_type", "integral_constant",
    "is_floating_point", "is_floating_point_v", "is_integral", "is_integral_v", "is_same", "is_same_v",
    "is_trivially_copyable", "is_trivially_copyable_v", "remove_cv_t", "remove_reference_t", "true_type",
}  # fmt: skip

FUNCTION_KINDS = {
    CursorKind.FUNCTION_DECL,
    CursorKind.CXX_METHOD,
    CursorKind.CONSTRUCTOR,
    CursorKind.DESTRUCTOR,
    CursorKind.CONVERSION_FUNCTION,
    CursorKind.FUNCTION_TEMPLATE,
}
CLASS_KINDS = {CursorKind.STRUCT_DECL, CursorKind.CLASS_DECL, CursorKind.CLASS_TEMPLATE}
SPECIAL_MEMBER_KINDS = {CursorKind.CONSTRUCTOR, CursorKind.DESTRUCTOR, CursorKind.CXX_METHOD}
REFERENCE_KINDS = {
    CursorKind.CALL_EXPR,
    CursorKind.DECL_REF_EXPR,
    CursorKind.MEMBER_REF_EXPR,
    CursorKind.TYPE_REF,
    CursorKind.TEMPLATE_REF,
}
LEAF_KINDS = {  # no children worth a visit
    CursorKind.TYPE_REF,
    CursorKind.TEMPLATE_REF,
    CursorKind.NAMESPACE_REF,
    CursorKind.MEMBER_REF,
    CursorKind.INTEGER_LITERAL,
    CursorKind.FLOATING_LITERAL,
    CursorKind.CXX_BOOL_LITERAL_EXPR,
    CursorKind.CXX_NULL_PTR_LITERAL_EXPR,
    CursorKind.ANNOTATE_ATTR,
}
HOST_ONLY_EXPRS = {
    CursorKind.CXX_NEW_EXPR: "a new expression",
    CursorKind.CXX_DELETE_EXPR: "a delete expression",
    CursorKind.CXX_THROW_EXPR: "throw",
    CursorKind.CXX_TRY_STMT: "try",
    CursorKind.CXX_CATCH_STMT: "catch",
    CursorKind.CXX_TYPEID_EXPR: "typeid",
    CursorKind.CXX_DYNAMIC_CAST_EXPR: "dynamic_cast",
}


@functools.cache
def _resolved(name: str) -> Path:
    return Path(name).resolve()


def _file(cursor: Cursor) -> Path | None:
    f = cursor.location.file
    return _resolved(f.name) if f else None


@functools.cache
def _under(path: Path | None, root: Path) -> bool:
    return path is not None and path.is_relative_to(root)


def _shown(path: Path | None) -> str:
    if path is None:
        return "<no file>"
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


@functools.cache
def _api_macros() -> frozenset[str]:
    """Macros the API headers define (ASCEND_IS_AIV, KERNEL_TASK_TYPE_DEFAULT, REGIST_MATMUL_OBJ, ...)."""
    define = re.compile(r"^\s*#\s*define\s+(\w+)", re.MULTILINE)
    return frozenset(m for h in SIM.rglob("*.h") for m in define.findall(h.read_text()))


@functools.cache
def _source(path: Path) -> bytes:
    return path.read_bytes()  # libclang's offsets count bytes


def _in_api_macro(cursor: Cursor) -> bool:
    """True for code of an API macro's body, which libclang places at the macro's name in the kernel file (macro
    arguments keep their own places): ASCEND_IS_AIV may call ascend_sim::ctx(), the kernel's own code may not."""
    path = _file(cursor)
    if path is None:
        return False
    name = re.match(rb"\w*", _source(path)[cursor.location.offset :])
    return name is not None and name.group().decode() in _api_macros()


def _namespace(cursor: Cursor) -> str:
    """Outermost namespace of a declaration ('' for the global one)."""
    outer, c = "", cursor.semantic_parent
    while c is not None and c.kind != CursorKind.TRANSLATION_UNIT:
        if c.kind == CursorKind.NAMESPACE:
            outer = c.spelling
        c = c.semantic_parent
    return outer


def _top_entity(cursor: Cursor) -> Cursor:
    """The declaration directly in a namespace that `cursor` belongs to (the class of a member, ...)."""
    while cursor.semantic_parent is not None and cursor.semantic_parent.kind not in (
        CursorKind.NAMESPACE,
        CursorKind.TRANSLATION_UNIT,
    ):
        cursor = cursor.semantic_parent
    return cursor


def _std_allowed(ref: Cursor) -> bool:
    top = _top_entity(ref)
    builtin_alias = top.kind == CursorKind.TYPEDEF_DECL and top.underlying_typedef_type.get_canonical().kind in (
        cindex.TypeKind.INT, cindex.TypeKind.UINT, cindex.TypeKind.LONG, cindex.TypeKind.ULONG,
        cindex.TypeKind.LONGLONG, cindex.TypeKind.ULONGLONG, cindex.TypeKind.SHORT, cindex.TypeKind.USHORT,
        cindex.TypeKind.SCHAR, cindex.TypeKind.UCHAR, cindex.TypeKind.CHAR_S, cindex.TypeKind.CHAR_U,
    )  # fmt: skip
    return builtin_alias or top.spelling in STD_ALLOWED  # std::uint32_t, std::size_t are the built-in types


def _annotations(cursor: Cursor) -> set[str]:
    return {c.spelling for c in cursor.get_children() if c.kind == CursorKind.ANNOTATE_ATTR}


def _is_lambda_class(cursor: Cursor | None) -> bool:
    return cursor is not None and cursor.kind in CLASS_KINDS and cursor.spelling.startswith("(lambda")


def _lambda_qualified(lambda_expr: Cursor) -> bool:
    """Whether the lambda's call operator (on its closure class, which libclang shows) carries a qualifier."""
    closure = lambda_expr.type.get_declaration()
    return any(_annotations(m) & QUALIFIERS for m in closure.get_children() if m.spelling == "operator()")


def _is_implicit(cursor: Cursor) -> bool:
    """Compiler-generated or defaulted special members, which bisheng compiles for wherever their class is used."""
    parent = cursor.semantic_parent
    if cursor.kind not in SPECIAL_MEMBER_KINDS or parent is None:
        return False
    # libclang has no "is implicit"; an implicit member sits at its class's name.
    return cursor.location.offset == parent.location.offset or cursor.is_default_method()


def _describe(cursor: Cursor) -> str:
    """Kind and name for messages, with the class of a member: method 'OnlineSoftmaxRows::Tile'."""
    parent = cursor.semantic_parent
    member = parent is not None and parent.kind in CLASS_KINDS
    kind = {CursorKind.CONSTRUCTOR: "constructor", CursorKind.DESTRUCTOR: "destructor"}.get(
        cursor.kind, "method" if member else "function"
    )
    if cursor.kind == CursorKind.CONVERSION_FUNCTION or cursor.spelling.startswith("operator"):
        kind = "operator"
    # A template's pattern spells its constructor Worker<T>, the instantiation Worker: one name for both.
    name = cursor.spelling if kind == "operator" else re.sub(r"<.*>$", "", cursor.spelling)
    return f"{kind} '{parent.spelling}::{name}'" if member else f"{kind} '{name}'"


def _key(cursor: Cursor) -> tuple[int, str, int]:
    # Instantiations share their pattern's location; the hash tells them apart.
    return (cursor.hash, cursor.location.file.name if cursor.location.file else "", cursor.location.offset)


def _definition(ref: Cursor) -> Cursor | None:
    d = ref.get_definition()
    return d if d is not None else (ref if ref.is_definition() else None)


@dataclass
class Checker:
    root: Path
    # (file, line, message with a {reach} slot) -> kernels that reach it: the common/ headers serve several kernels.
    problems: dict[tuple[str, int, str], set[str]] = field(default_factory=dict)
    visited: set[tuple[int, str, int]] = field(default_factory=set)
    kernels: list[str] = field(default_factory=list)

    def report(self, cursor: Cursor, message: str, kernel: str) -> None:
        self.problems.setdefault((_shown(_file(cursor)), cursor.location.line, message), set()).add(kernel)

    def ours(self, cursor: Cursor) -> bool:
        """Code written in the device sources (not an API macro's expansion)."""
        return _under(_file(cursor), self.root) and not _in_api_macro(cursor)

    def check_tu(self, tu: cindex.TranslationUnit) -> None:
        for d in tu.diagnostics:
            if d.severity >= cindex.Diagnostic.Error:
                path = _resolved(d.location.file.name) if d.location.file else None
                self.problems.setdefault((_shown(path), d.location.line, f"parse error: {d.spelling}"), set())
        for entry in self._entries(tu.cursor, _resolved(tu.spelling)):
            self.kernels.append(entry.spelling)
            self._walk_kernel(entry)

    def _entries(self, cursor: Cursor, main: Path) -> list[Cursor]:
        found = []
        for c in cursor.get_children():
            # The entry is in the .cpp itself: skipping the headers' declarations early keeps this fast. An extern "C"
            # spelt by a macro (op_kernel/common/kernel_entry.h) is not written in the .cpp, but expanded there.
            kind = c.kind
            if not cindex.conf.lib.clang_Location_isFromMainFile(c.location) and not (
                kind == CursorKind.LINKAGE_SPEC and _file(c) == main
            ):
                continue
            if kind in (CursorKind.NAMESPACE, CursorKind.LINKAGE_SPEC, CursorKind.UNEXPOSED_DECL):
                found += self._entries(c, main)
            elif kind == CursorKind.FUNCTION_DECL and c.is_definition() and "global" in _annotations(c):
                found.append(c)
        return found

    def _walk_kernel(self, entry: Cursor) -> None:
        seen: set[tuple[int, str, int]] = set()  # per kernel, so each kernel reports all it reaches
        work = [entry]
        while work:
            fn = work.pop()
            if _key(fn) in seen:
                continue
            seen.add(_key(fn))
            if fn.kind in CLASS_KINDS:
                work += self._walk_class(fn, entry.spelling)
            else:
                self.visited.add(_key(fn))
                work += self._walk_function(fn, entry.spelling)

    def _walk_function(self, fn: Cursor, kernel: str) -> list[Cursor]:
        """Checks one reachable definition; returns the definitions it reaches."""
        if not _is_lambda_class(fn.semantic_parent) and not _is_implicit(fn):  # lambdas: reported where written
            if not (_annotations(fn) | _annotations(fn.canonical)) & QUALIFIERS:
                self.report(fn, f"{_describe(fn)} {{reach}} is not __aicore__", kernel)
        reached = self._walk_body(fn, _describe(fn), kernel)
        if fn.semantic_parent.kind in CLASS_KINDS:
            reached.append(fn.semantic_parent)  # its field initializers and destructor run on the device too
        return reached

    def _walk_class(self, cls: Cursor, kernel: str) -> list[Cursor]:
        # libclang shows no members of an implicit instantiation; its template's members are the same code.
        if next(iter(cls.get_children()), None) is None:
            pattern = cindex.conf.lib.clang_getSpecializedCursorTemplate(cls)
            cls = pattern if pattern is not None else cls
        reached: list[Cursor] = []
        for c in cls.get_children():
            if c.kind == CursorKind.FIELD_DECL:
                reached += self._walk_body(c, f"class '{cls.spelling}'", kernel)
                reached += self._class_of(c.type)
            elif c.kind == CursorKind.CXX_BASE_SPECIFIER:
                reached += self._class_of(c.type)
            elif c.kind == CursorKind.DESTRUCTOR and not _is_implicit(c):
                reached.append(c)
            elif c.kind == CursorKind.CONSTRUCTOR and not _is_implicit(c) and c.is_default_constructor():
                reached.append(c)  # runs, unseen, wherever the class is a member
        return reached

    def _class_of(self, type_: cindex.Type) -> list[Cursor]:
        decl = type_.get_canonical().get_declaration()
        return [decl] if decl.kind in CLASS_KINDS and _under(_file(decl), self.root) else []

    def _walk_body(self, top: Cursor, where: str, kernel: str) -> list[Cursor]:
        reached: list[Cursor] = []
        stack = list(top.get_children())
        while stack:
            c = stack.pop()
            kind = c.kind  # each .kind is a call into libclang: read it once
            if kind == CursorKind.STATIC_ASSERT:
                continue  # evaluated by the compiler, never run
            if kind not in LEAF_KINDS:
                stack += c.get_children()
            if kind == CursorKind.LAMBDA_EXPR and self.ours(c) and not _lambda_qualified(c):
                self.report(
                    c,
                    f"lambda in {where} {{reach}} is not __aicore__ "
                    "(bisheng needs the qualifier: use a named functor with an __aicore__ operator())",
                    kernel,
                )
            elif kind in HOST_ONLY_EXPRS and self.ours(c):
                self.report(c, f"{where} {{reach}} uses {HOST_ONLY_EXPRS[kind]}", kernel)
            elif kind == CursorKind.VAR_DECL:
                reached += self._class_of(c.type)
            elif kind == CursorKind.OVERLOADED_DECL_REF:
                # A dependent call in a template pattern: follow every overload it may pick.
                for i in range(cindex.conf.lib.clang_getNumOverloadedDecls(c)):
                    reached += self._follow(c, cindex.conf.lib.clang_getOverloadedDecl(c, i), where, kernel)
            elif kind in REFERENCE_KINDS:
                ref = c.referenced
                if ref is not None:
                    reached += self._follow(c, ref, where, kernel)
        return reached

    def _follow(self, use: Cursor, ref: Cursor, where: str, kernel: str) -> list[Cursor]:
        """Checks one reference from device code; returns the definition to walk if it is device code too."""
        namespace = _namespace(ref)
        if namespace == "std":
            if not _std_allowed(ref) and self.ours(use):
                self.report(use, f"{where} {{reach}} uses host-only std::{_top_entity(ref).spelling}", kernel)
            return []
        if namespace == "ascend_sim":
            if self.ours(use):
                self.report(
                    use,
                    f"{where} {{reach}} uses simulator-internal ascend_sim::{_top_entity(ref).spelling} "
                    "(kernels may use only the AscendC/matmul API and its macros)",
                    kernel,
                )
            return []
        if ref.kind not in FUNCTION_KINDS:
            return []
        definition = _definition(ref)
        path = _file(definition if definition is not None else ref)
        if _under(path, self.root):
            return [definition if definition is not None else ref]  # a declaration alone still needs its qualifier
        if path is not None and not _under(path, SIM) and self.ours(use):
            self.report(use, f"{where} {{reach}} calls host function '{ref.spelling}' ({_shown(path)})", kernel)
        return []

    def lines(self) -> list[str]:
        out = []
        for (path, line, message), kernels in sorted(self.problems.items()):
            names = ", ".join(f"'{k}'" for k in sorted(kernels))
            reach = f"reachable from kernel{'s' if len(kernels) > 1 else ''} {names}"
            out.append(f"{path}:{line}: {message.replace('{reach}', reach)}")
        return out


def builtin_include_dir() -> list[str]:
    """The libclang wheel has no clang resource headers (stddef.h, ...); the C++ compiler's own serve instead."""
    try:
        out = subprocess.run(["c++", "-print-file-name=include"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return []
    path = Path(out.stdout.strip())
    return ["-isystem", str(path)] if path.is_dir() else []


def kernel_entries(root: Path) -> list[Path]:
    """Candidate kernel entry units: one directory per op. Which hold a __global__ function is decided by parsing them,
    since entries may be spelt through a macro (op_kernel/common/kernel_entry.h)."""
    return sorted(root.glob("*/*.cpp"))


_TEMP_DIRS: list[tempfile.TemporaryDirectory[str]] = []  # the precompiled headers, removed at exit


@functools.cache
def _precompiled_api(args: tuple[str, ...]) -> tuple[str, ...]:
    """Arguments that use a precompiled header of the API headers, or none if they do not parse.

    The API headers (and the std headers they pull in) are most of every translation unit: parsed once, each kernel
    then parses in a fraction of the time. Only a speed-up: without it, every unit parses them itself and reports
    their errors. Cached for the process (the tests check several sets of files).
    """
    tmp = tempfile.TemporaryDirectory()
    _TEMP_DIRS.append(tmp)
    api = Path(tmp.name) / "api.h"
    api.write_text(API_INCLUDES)
    header = cindex.Index.create().parse(str(api), args=["-x", "c++-header", *args])
    if any(d.severity >= cindex.Diagnostic.Error for d in header.diagnostics):
        return ()
    header.save(f"{api}.pch")
    return ("-include-pch", f"{api}.pch")


def check(root: Path, files: list[Path]) -> Checker:
    """Parses `files` (kernel entry translation units) and checks the device code under `root`."""
    root = root.resolve()
    api_args = ("-std=c++17", f"-I{SIM}", *DEFINES, *builtin_include_dir())
    args = ["-x", "c++", *api_args, f"-I{root}", *_precompiled_api(api_args)]

    def parse(path: Path) -> cindex.TranslationUnit:
        # An index per thread: parsing runs in C without the GIL, so the translation units parse in parallel.
        return cindex.Index.create().parse(str(path), args=args)

    checker = Checker(root)
    with ThreadPoolExecutor(max_workers=max(len(files), 1)) as pool:
        for tu in pool.map(parse, files):
            checker.check_tu(tu)
    return checker


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=REPO / "op_kernel", help="device code directory (default op_kernel)")
    ap.add_argument("files", nargs="*", type=Path, help="kernel entry .cpp files (default: found under --root)")
    ns = ap.parse_args(argv)
    checker = check(ns.root, ns.files or kernel_entries(ns.root))
    for line in checker.lines():
        print(line)
    print(
        f"check_device_code: {len(checker.kernels)} kernels checked ({', '.join(sorted(checker.kernels))}), "
        f"{len(checker.visited)} functions visited, {len(checker.problems)} problems"
    )
    if not checker.kernels:
        print(f"check_device_code: no __global__ kernel entry found under {_shown(ns.root.resolve())}")
    return 1 if checker.problems or not checker.kernels else 0


if __name__ == "__main__":
    sys.exit(main())
