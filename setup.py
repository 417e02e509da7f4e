"""speechbrain-dyncp: dynamic channel pruning speech enhancement for SpeechBrain."""

import hashlib
import os
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent
KERNEL = "speechbrain_dyncp/streaming/dyncp_frame.c"
# Not -ffast-math: gcc then links crtfastmath.o, whose constructor sets flush-to-zero /
# denormals-are-zero for the whole process when the kernel is loaded, silently changing
# every later torch/numpy result. The individual flags below still let gcc vectorise the
# dot-product reductions (reassociation), without touching the FPU state. -march=native:
# the kernel is built on the machine that runs it (an editable or sdist install).
KERNEL_CFLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fassociative-math",
                 "-fno-signed-zeros", "-freciprocal-math"]


def kernel_extension(real):
    """The C frame kernel for ``real`` = float / double: a plain shared library loaded with ctypes
    (speechbrain_dyncp/streaming/kernel.py), optional: without a compiler the NumPy path is used."""
    sha1 = hashlib.sha1((HERE / KERNEL).read_bytes()).hexdigest()
    return Extension(f"speechbrain_dyncp.streaming._dyncp_frame_{real}", sources=[KERNEL],
                     define_macros=[("REAL", real), ("DYNCP_SOURCE_SHA1", f'"{sha1}"')],
                     extra_compile_args=KERNEL_CFLAGS, libraries=["m"], optional=True)


class BuildKernels(build_ext):
    """Each kernel in its own temporary folder (both compile the same source file), and no
    Python module entry point to export (ctypes loads them, ``import`` never does)."""

    def build_extension(self, ext):
        temp = self.build_temp
        self.build_temp = os.path.join(temp, ext.name)
        try:
            super().build_extension(ext)
        finally:
            self.build_temp = temp

    def get_export_symbols(self, ext):
        return []

# torch / torchaudio are pinned as a pair: torchaudio 2.11 from PyPI is a
# CUDA-linked wheel whose compiled ops (lfilter, resample, kaldi fbank) load on
# a CPU-only machine with torch 2.14.1 but not with the 2.13 CPU build.
INSTALL_REQUIRES = [
    "torch==2.14.1",
    "torchaudio==2.11.0",
    "speechbrain==1.1.2",
    "hyperpyyaml>=1.2.3",
    "scikit-learn>=1.3",
    "soundfile>=0.12",
    "numpy>=1.24",
    "scipy>=1.10",
    "tqdm>=4.60",
    "matplotlib>=3.7",
    # the WebRTC VAD that the bundled speaker models' GE2E member trims pauses with (lobes/ge2e.py)
    "webrtcvad-wheels>=2.0.14",
]

# speechmos declares no requirements, but its dnsmos module imports librosa, onnxruntime and requests
SPEECHMOS = ["speechmos>=0.0.1", "librosa>=0.10", "onnxruntime>=1.18", "requests>=2"]

EXTRAS = {
    "ssl": ["transformers>=4.57,<6"],
    "metrics": ["pesq==0.0.4", "pystoi>=0.4"],
    "export": ["onnx>=1.16", "onnxruntime>=1.18"],
    "shards": ["webdataset>=0.2.86"],
    # DNSMOS P.835's ONNX model as a differentiable training term (losses/dnsmos.py)
    "perceptual": [*SPEECHMOS, "onnx>=1.16"],
    "test": ["pytest>=7", "pytest-timeout>=2.2", "hypothesis>=6.100"],
    # the tools the enhancer and probes are compared with (benchmarks/bench_probes.py, bench_real.py)
    "bench": ["silero-vad>=5.1", "torchcrepe>=0.0.23", "pyrnnoise>=0.4", *SPEECHMOS],
}
EXTRAS["all"] = sorted({r for rs in EXTRAS.values() for r in rs})

setup(
    name="speechbrain-dyncp",
    version="0.1.0",
    description=(
        "Dynamic channel pruning speech enhancement, mask probes, Grad-W and "
        "layer-attentive pooling as SpeechBrain lobes and recipes"
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8")
    if (HERE / "README.md").exists()
    else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["speechbrain_dyncp", "speechbrain_dyncp.*"]),
    package_data={"speechbrain_dyncp": ["pretrained/*/*", "streaming/*.c"]},
    ext_modules=[kernel_extension("float"), kernel_extension("double")],
    cmdclass={"build_ext": BuildKernels},
    include_package_data=True,
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["dyncp=speechbrain_dyncp.cli:main"]},
)
