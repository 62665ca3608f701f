"""Builds ascend_attn._C: schemas, CPU kernels (and, later, the simulator and NPU glue).

Environment knobs:
  ASCEND_ATTN_DEBUG=1   -O0 -g build
"""

import glob
import os

from setuptools import find_packages, setup
from torch.utils.cpp_extension import BuildExtension, CppExtension

ROOT = os.path.dirname(os.path.abspath(__file__))
DEBUG = os.environ.get("ASCEND_ATTN_DEBUG", "0") == "1"


def sources():
    found = ["csrc/ops.cpp"]
    for sub in ("common", "cpu"):
        found += sorted(glob.glob(f"csrc/{sub}/*.cpp"))
    return found


cxx_flags = ["-std=c++17", "-fopenmp", "-ffp-contract=fast", "-Wall", "-Wno-unknown-pragmas"]
cxx_flags += ["-O0", "-g"] if DEBUG else ["-O3"]

setup(
    name="ascend_attn",
    version="0.1.0",
    description="Tiled FlashAttention and PagedAttention for Huawei Ascend NPUs, with a fast CPU path",
    packages=find_packages(include=["ascend_attn", "ascend_attn.*"]),
    ext_modules=[
        CppExtension(
            "ascend_attn._C",
            sources(),
            include_dirs=[os.path.join(ROOT, "csrc")],
            extra_compile_args={"cxx": cxx_flags},
            extra_link_args=["-fopenmp"],
        )
    ],
    cmdclass={"build_ext": BuildExtension},
    python_requires=">=3.10",
    install_requires=["torch>=2.13"],
    extras_require={
        "test": ["pytest", "hypothesis", "numpy", "expecttest"],
        "demo": ["safetensors"],
        "transformers": ["transformers"],
        "bench": ["matplotlib"],
    },
)
