#!/usr/bin/env bash
# Builds ascend_attn._C and ascend_attn._sim with AddressSanitizer and UndefinedBehaviorSanitizer in a separate tree
# (build/sanitize; the normal build is untouched), runs a fast subset of the test suite against them, and fails on
# any sanitizer report. An optional CI job (see README "Test"); reuses its build tree, so reruns compile only changes.
#
#   scripts/sanitize.sh [--python PY] [PYTEST_ARGS...]     (default PY: .venv/bin/python; default tests: SUBSET below)
#
# Why the flags: Python's compile flags include -fwrapv, which defines signed overflow and so hides it from UBSan;
# -fno-wrapv (after it on the command line) restores the check. The extensions are loaded into an uninstrumented
# python, so libasan must be preloaded (it has to be the first runtime in the process), and libstdc++ with it: ASan's
# __cxa_throw interceptor needs the real one resolvable from the start, or the first C++ exception aborts.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
python=.venv/bin/python
if [ "${1:-}" = --python ]; then
  [ $# -ge 2 ] || { echo "sanitize.sh: --python needs a value" >&2; exit 2; }
  python=$2
  shift 2
fi
"$python" -c "import torch" 2>/dev/null || { echo "sanitize.sh: torch cannot be imported by $python" >&2; exit 1; }

# CPU kernels (forward and backward) on every ISA, the argument checks, the paged cache, the flash-attn and ATB APIs, the tilings and the
# simulator's reference grids: the code that indexes memory. (test_sim_rules is left out: it JIT-compiles its own
# uninstrumented module, and the compiler would run with libasan preloaded.)
SUBSET=(tests/test_flash_attention.py tests/test_flash_attention_backward.py tests/test_paged_attention.py
  tests/test_flash_attn_kvcache.py tests/test_ops.py
  tests/test_kv_cache.py tests/test_atb.py tests/test_tiling.py
  "tests/test_sim_flash_attention.py::test_matches_reference"
  "tests/test_sim_paged_attention.py::test_matches_reference"
  "tests/test_sim_flash_attention_grad.py::test_matches_autograd")

out=$root/build/sanitize
sanitize="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -fno-wrapv -g1"
echo "+ building the extensions with $sanitize into $out"
CFLAGS="$sanitize" LDFLAGS="-fsanitize=address,undefined" \
  "$python" setup.py --quiet build_ext --build-lib "$out/lib" --build-temp "$out/temp"

# A package tree holding the sources' Python files and the sanitized extensions, first on sys.path.
pkg=$out/pkg
rm -rf "$pkg" && mkdir -p "$pkg"
cp -r ascend_attn "$pkg/"
find "$pkg" -name '*.so' -delete
cp "$out"/lib/ascend_attn/*.so "$pkg/ascend_attn/"

libasan=$(g++ -print-file-name=libasan.so)
libstdcxx=$(g++ -print-file-name=libstdc++.so)
[ -f "$libasan" ] || { echo "sanitize.sh: libasan.so not found (install gcc's libasan)" >&2; exit 1; }
log=$out/report
rm -f "$log".*
[ $# -gt 0 ] || set -- "${SUBSET[@]}"
echo "+ pytest $* with $libasan preloaded"
# detect_leaks=0: python itself never frees many of its allocations, and a leak is not what this job is for.
# python -P: the working directory (the source tree, with the normal extensions) must not shadow $pkg.
export PYTHONPATH=$pkg LD_PRELOAD="$libasan $libstdcxx"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:log_path=$log" UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$log"
"$python" -P -c "import ascend_attn; assert ascend_attn.__file__.startswith('$pkg/'), ascend_attn.__file__"
set +e
"$python" -P -m pytest -q -p no:cacheprovider "$@"
status=$?
set -e
if ls "$log".* >/dev/null 2>&1; then
  cat "$log".* >&2
  echo "sanitize.sh: sanitizer reports above (also in $log.*)" >&2
  exit 1
fi
[ "$status" = 0 ] || { echo "sanitize.sh: the tests failed (exit $status)" >&2; exit "$status"; }
echo "sanitize.sh: no sanitizer reports"
