#!/usr/bin/env bash
# Compiles the NPU glue (csrc/npu/*.cpp) with g++ -fsyntax-only against torch's headers and the headers shipped in
# the torch-npu wheel (torch_npu and ACL), without installing torch_npu (it cannot be imported without CANN).
# Usage: scripts/check_npu_glue.sh [python]   (default: .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-.venv/bin/python}
version=2.13.0
cache=${XDG_CACHE_HOME:-$HOME/.cache}/ascend_attn/torch_npu-$version
if [ ! -f "$cache/include/torch_npu/csrc/framework/OpCommand.h" ]; then
  tmp=$(mktemp -d)
  "$python" -m pip download --quiet --no-deps "torch-npu==$version" -d "$tmp"
  mkdir -p "$cache"
  "$python" - "$tmp"/torch_npu-*.whl "$cache" <<'PY'
import sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith("torch_npu/include/")]
    for n in names:
        z.extract(n, dest + "/unpacked")
PY
  mv "$cache/unpacked/torch_npu/include" "$cache/include"
  rm -rf "$cache/unpacked" "$tmp"
fi
# ascendc_library generates aclrtlaunch_<kernel>.h on a CANN 8.x build; here they are declared in the documented
# form (block dim, stream, one void* per kernel argument) so launch_cann8.cpp is checked against it.
launchers=$(mktemp -d)
trap 'rm -rf "$launchers"' EXIT
declare_launcher() {  # kernel, number of GM_ADDR arguments
  local args
  args=$(printf ', void*%.0s' $(seq "$2"))
  printf '#pragma once\n#include <acl/acl.h>\nuint32_t aclrtlaunch_%s(uint32_t blockDim, aclrtStream stream%s);\n' \
    "$1" "$args" >"$launchers/aclrtlaunch_$1.h"
}
declare_launcher flash_attention 9
declare_launcher flash_attention_grad 13
declare_launcher paged_attention 10
declare_launcher reshape_and_cache 7
torch_includes=$("$python" -c "import torch.utils.cpp_extension as c; print(' '.join('-isystem' + p for p in c.include_paths()))")
for f in csrc/npu/*.cpp; do
  echo "  g++ -fsyntax-only $f"
  # shellcheck disable=SC2086
  g++ -std=c++17 -fsyntax-only $torch_includes -I"$cache/include" -I"$cache/include/third_party/acl/inc" -Icsrc \
    -Iop_kernel -I"$launchers" "$f"
done
