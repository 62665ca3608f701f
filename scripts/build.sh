#!/usr/bin/env bash
# Builds ascend_attn for Ascend NPUs: the Ascend C kernels with CANN, then the extension with the NPU glue linked to
# them and torch_npu. `--cpu` builds the CPU executor and the simulator only (what CI does).
#
#   scripts/build.sh [--soc Ascend910B1|Ascend910B2|Ascend910B3|Ascend910B4|Ascend910_9391] [--cpu] [--python PY]
#
# PY defaults to the project's .venv/bin/python when it exists (README's setup), else python3.
# Needs: CANN 8.x or >= 9 (toolkit), torch and torch_npu of the same version (e.g. 2.13.0), cmake for CANN 8.x.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
python=""
soc=""
cpu_only=0
die() { echo "build.sh: $*" >&2; exit 1; }
usage_error() { echo "build.sh: $* (see the header of scripts/build.sh)" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --soc|--python)
      [ $# -ge 2 ] && [ -n "$2" ] && [ "${2#--}" = "$2" ] || usage_error "$1 needs a value"
      if [ "$1" = --soc ]; then soc="$2"; else python="$2"; fi
      shift 2 ;;
    --cpu) cpu_only=1; shift ;;
    *) usage_error "unknown option $1" ;;
  esac
done
if [ -z "$python" ]; then
  if [ -x "$root/.venv/bin/python" ]; then python=$root/.venv/bin/python; else python=python3; fi
fi

if ! "$python" -c "import torch" 2>/dev/null; then
  if [ "$cpu_only" = 1 ]; then
    die "torch cannot be imported by $python: create the project's environment first (README: python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 -r requirements-dev.txt), or pass --python"
  fi
  die "torch cannot be imported by $python: pip install torch==2.13.0 torch_npu==2.13.0 into it, or pass --python"
fi
if [ "$cpu_only" = 1 ]; then
  exec "$python" -m pip install --no-build-isolation -e .
fi

# 1. CANN: an environment set up by set_env.sh, or the usual install prefixes.
if [ -z "${ASCEND_HOME_PATH:-}" ] && [ -n "${ASCEND_TOOLKIT_HOME:-}" ]; then export ASCEND_HOME_PATH=$ASCEND_TOOLKIT_HOME; fi
if [ -z "${ASCEND_HOME_PATH:-}" ]; then
  for env in /usr/local/Ascend/ascend-toolkit/set_env.sh "$HOME/Ascend/ascend-toolkit/set_env.sh" \
             /usr/local/Ascend/cann/set_env.sh "$HOME/Ascend/cann/set_env.sh"; do
    # shellcheck disable=SC1090
    if [ -f "$env" ]; then set +u; source "$env"; set -u; break; fi
  done
fi
[ -n "${ASCEND_HOME_PATH:-}" ] && [ -d "$ASCEND_HOME_PATH" ] ||
  die "CANN not found: install the CANN toolkit (8.x or 9.x) and run 'source <prefix>/ascend-toolkit/set_env.sh'"
cann_version=$(grep -hoE '^(version|Version)=[0-9][0-9A-Za-z.]*' "$ASCEND_HOME_PATH"/*/ascend_*install.info \
  "$ASCEND_HOME_PATH"/ascend_*install.info "$ASCEND_HOME_PATH"/version.cfg 2>/dev/null | head -1 | cut -d= -f2 || true)
[ -n "$cann_version" ] || die "cannot read the CANN version under $ASCEND_HOME_PATH (ascend_toolkit_install.info)"
cann_major=${cann_version%%.*}
echo "CANN $cann_version at $ASCEND_HOME_PATH"

# 2. torch_npu, and a torch/torch_npu pair of the same version.
versions=$("$python" -c "import torch, torch_npu; print(torch.__version__.split('+')[0], torch_npu.__version__.split('+')[0].split('.post')[0])" 2>/dev/null) ||
  die "torch_npu cannot be imported: pip install torch_npu==<your torch version> (needs CANN's set_env.sh sourced)"
read -r torch_v npu_v <<<"$versions"
[ "$torch_v" = "$npu_v" ] || die "torch $torch_v and torch_npu $npu_v do not pair: install torch_npu==$torch_v"

# 3. SoC: --soc, else npu-smi.
if [ -z "$soc" ] && command -v npu-smi >/dev/null; then
  chip=$(npu-smi info 2>/dev/null | grep -oE '910B[1-4]|910_93[0-9]+' | head -1 || true)
  [ -n "$chip" ] && soc="Ascend$chip"
fi
[ -n "$soc" ] || die "cannot detect the SoC (no npu-smi): pass --soc Ascend910B1..B4 or Ascend910_9391"
echo "SoC $soc"

# 4. Kernels.
build=$root/build/npu_kernels
mkdir -p "$build"
if [ "$cann_major" -lt 9 ]; then
  command -v cmake >/dev/null || die "cmake not found: install cmake >= 3.16 (CANN 8.x builds kernels with it)"
  cmake -S op_kernel -B "$build" -DSOC_VERSION="$soc" -DASCEND_CANN_PACKAGE_PATH="$ASCEND_HOME_PATH" \
    -DCMAKE_INSTALL_PREFIX="$build/out"
  cmake --build "$build" -j
  cmake --install "$build"
  kernel_include=$(dirname "$(find "$build" -name 'aclrtlaunch_flash_attention.h' | head -1)")
  [ -n "$kernel_include" ] || die "ascendc_library did not generate aclrtlaunch_flash_attention.h"
  launcher=cann8
else
  command -v bisheng >/dev/null || die "bisheng not found: source CANN's set_env.sh (CANN >= 9 compiles kernels with it)"
  mkdir -p "$build/out/lib"
  # ASCEND_ATTN_ASC_FLOW: kernel types as __mix__(1, 2) / __vector__ and the workspace marked __kfc_workspace__
  # (op_kernel/common/kernel_entry.h). --cce-auto-sync: the kernels rely on the compiler ordering scalar <-> vector/DMA
  # accesses (the default for kernel direct launch; said here so no configuration turns it off).
  # CANN's own kernel builds force-include the devkit's version header; bisheng alone does not. Its
  # ASC_DEVKIT_VERSION_NUM tells op_kernel/common/row_ops.h whether the reductions have 9.1's names.
  version_h=$(ls "$ASCEND_HOME_PATH"/include/version/asc_devkit_version.h \
    "$ASCEND_HOME_PATH"/*-linux/include/version/asc_devkit_version.h 2>/dev/null | head -1 || true)
  bisheng -x asc --npu-arch=dav-2201 -O2 -std=c++17 -fPIC -shared --cce-auto-sync -DASCEND_ATTN_ASC_FLOW \
    ${version_h:+-include "$version_h"} -I op_kernel op_kernel/launch_bisheng.cpp \
    -o "$build/out/lib/libascend_attn_kernels.so"
  kernel_include=""
  launcher=bisheng
fi

# 5. The extension with the NPU glue.
ASCEND_ATTN_NPU=1 ASCEND_ATTN_NPU_LAUNCHER=$launcher ASCEND_ATTN_KERNEL_LIB_DIR=$build/out/lib \
  ASCEND_ATTN_KERNEL_INCLUDE=$kernel_include "$python" -m pip install --no-build-isolation -e .
echo "built with NPU support; verify with: $python -m pytest -q tests/npu"
