"""Builds ascend_attn._C (schemas, CPU kernels) and ascend_attn._sim (the Ascend C kernels in the simulator).

Environment knobs:
  ASCEND_ATTN_DEBUG=1   -O0 -g build
  ASCEND_ATTN_NPU=1     also build ascend_attn._npu (the PrivateUse1 kernels); set by scripts/build.sh, which first
                        builds the Ascend C kernels with CANN and passes ASCEND_ATTN_NPU_LAUNCHER (cann8 | bisheng),
                        ASCEND_ATTN_KERNEL_LIB_DIR and ASCEND_ATTN_KERNEL_INCLUDE
"""

import glob
import os
import sys
import sysconfig

from setuptools import find_packages, setup
from torch.utils.cpp_extension import BuildExtension, CppExtension

ROOT = os.path.dirname(os.path.abspath(__file__))
DEBUG = os.environ.get("ASCEND_ATTN_DEBUG", "0") == "1"
NPU = os.environ.get("ASCEND_ATTN_NPU", "0") == "1"


def sources(*subdirs, kernel_host=True):
    """C++ sources of csrc/<subdir>; kernel_host=False leaves out the Ascend C host flows (*_launch.cpp), which
    need a definition of op_kernel/launch.h (simulator or NPU)."""
    found = []
    for sub in subdirs:
        found += sorted(glob.glob(f"csrc/{sub}/*.cpp"))
    return [f for f in found if kernel_host or not f.endswith("_launch.cpp")]


def npu_extension():
    """ascend_attn._npu: the NPU glue and the shared host flows, compiled against CANN's tiling headers (so the
    tiling structs match the kernels'), linked to the kernel library, torch_npu and ACL."""
    import torch_npu

    npu = os.path.dirname(torch_npu.__file__)
    cann = os.environ["ASCEND_HOME_PATH"]
    kernels = os.environ["ASCEND_ATTN_KERNEL_LIB_DIR"]
    srcs = sources("common", "tiling") + ["csrc/npu/npu_device.cpp", "csrc/npu/npu_ops.cpp"]
    includes = [os.path.join(ROOT, "csrc"), os.path.join(ROOT, "op_kernel"), os.path.join(npu, "include")]
    includes += [os.path.join(npu, "include", "third_party", "acl", "inc"), os.path.join(cann, "include")]
    includes += [os.path.join(cann, "compiler", "tikcpp", "tikcfw")]  # kernel_tiling/kernel_tiling.h
    if os.environ.get("ASCEND_ATTN_NPU_LAUNCHER", "cann8") == "cann8":
        srcs.append("csrc/npu/launch_cann8.cpp")
        includes.append(os.environ["ASCEND_ATTN_KERNEL_INCLUDE"])
    lib_dirs = [os.path.join(cann, "lib64"), os.path.join(npu, "lib"), kernels]
    return CppExtension(
        "ascend_attn._npu",
        srcs,
        include_dirs=includes,
        library_dirs=lib_dirs,
        # tiling_api + platform: CANN's host matmul tiling fills the TCubeTiling the kernels' Matmul objects read
        libraries=["ascend_attn_kernels", "ascendcl", "torch_npu", "tiling_api", "platform"],
        extra_compile_args={"cxx": cxx_flags + ["-DASCEND_ATTN_CANN_MATMUL_TILING"]},
        extra_link_args=[f"-Wl,-rpath,{d}" for d in lib_dirs],
    )


class BuildExt(BuildExtension):
    """torch's BuildExtension, with the object files kept in build/ of the checkout: `pip install -e .` would
    otherwise compile in a fresh temporary directory every time, so a second install (README's test command after
    its run command, .ci/run after a manual install) rebuilt everything; here ninja recompiles only the translation
    units whose sources or flags changed. An explicit --build-temp (scripts/sanitize.sh) still wins."""

    def finalize_options(self):
        if self.build_temp is None:
            tag = f"{sysconfig.get_platform()}-{sys.implementation.cache_tag}"
            self.build_temp = os.path.join(ROOT, "build", f"temp.{tag}")
        super().finalize_options()

    def build_extension(self, ext):
        # One object directory per extension: csrc/common is compiled into both with different flags, and in a shared
        # directory each extension's build would overwrite the other's objects and recompile them every time.
        base = self.build_temp
        self.build_temp = os.path.join(base, ext.name.rsplit(".", 1)[-1])
        try:
            super().build_extension(ext)
        finally:
            self.build_temp = base

    def run(self):
        # pip shows this only with -v; README's commands echo the same note before pip runs.
        print(
            "building the C++ extensions: about 4 minutes on 2 cores the first time, later only what changed",
            file=sys.stderr,
        )
        super().run()


cxx_flags = ["-std=c++17", "-fopenmp", "-ffp-contract=fast", "-Wall", "-Wno-unknown-pragmas"]
cxx_flags += ["-O0", "-g"] if DEBUG else ["-O3"]
# Python's own compile flags carry -g, and debug info for torch's headers costs up to as much again as parsing them
# (a file that only includes <ATen/ATen.h>: 33 CPU-seconds with -g, 15 without); -g0 drops it, unless CFLAGS asks
# for debug info (scripts/sanitize.sh: -g1, for its reports' line numbers). ASCEND_ATTN_DEBUG=1 builds with -g.
if not DEBUG and not any(f.startswith("-g") for f in os.environ.get("CFLAGS", "").split()):
    cxx_flags.append("-g0")
# Each translation unit includes the ATen headers of the operators it calls (<ATen/ops/empty.h>, ...), never all of
# them (<ATen/ATen.h>, <torch/extension.h>: 15 and 50 CPU-seconds to compile on their own); with this macro torch's
# headers turn a stray include of those into an error, as in torch's own sources. (Not for ascend_attn._npu, whose
# npu_ops.cpp calls many operators through <ATen/ATen.h>.)
narrow_aten = [("TORCH_ASSERT_ONLY_METHOD_OPERATORS", None)]

setup(
    name="ascend_attn",
    version="0.1.0",
    description="Tiled FlashAttention and PagedAttention for Huawei Ascend NPUs, with a fast CPU path",
    packages=find_packages(include=["ascend_attn", "ascend_attn.*"]),
    ext_modules=[
        CppExtension(
            "ascend_attn._C",
            ["csrc/ops.cpp"] + sources("common", "cpu", kernel_host=False),
            include_dirs=[os.path.join(ROOT, "csrc")],
            define_macros=narrow_aten,
            extra_compile_args={"cxx": cxx_flags},
            extra_link_args=["-fopenmp"],
        ),
        # The Ascend C kernels (op_kernel/) compiled against the simulator's headers (csrc/sim/).
        CppExtension(
            "ascend_attn._sim",
            sources("common", "tiling", "sim"),
            include_dirs=[os.path.join(ROOT, "csrc"), os.path.join(ROOT, "csrc", "sim")],
            define_macros=narrow_aten,
            extra_compile_args={"cxx": cxx_flags},
        ),
    ]
    + ([npu_extension()] if NPU else []),
    cmdclass={"build_ext": BuildExt},
    python_requires=">=3.10",
    install_requires=["torch>=2.13"],
    extras_require={
        "test": ["pytest", "hypothesis", "numpy", "expecttest"],
        "demo": ["safetensors"],
        "transformers": ["transformers"],
        "bench": ["matplotlib"],
    },
)
