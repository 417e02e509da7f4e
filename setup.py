"""speechbrain-dyncp: dynamic channel pruning speech enhancement for SpeechBrain."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

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
]

EXTRAS = {
    "ssl": ["transformers>=4.57,<6"],
    "metrics": ["pesq==0.0.4", "pystoi>=0.4"],
    "export": ["onnx>=1.16", "onnxruntime>=1.18"],
    "shards": ["webdataset>=0.2.86"],
    "test": ["pytest>=7", "pytest-timeout>=2.2", "hypothesis>=6.100"],
    # the tools the enhancer and probes are compared with (benchmarks/bench_probes.py, bench_real.py)
    "bench": ["librosa>=0.10", "webrtcvad-wheels>=2.0.14", "silero-vad>=5.1", "torchcrepe>=0.0.23",
              "pyrnnoise>=0.4", "speechmos>=0.0.1"],
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
    package_data={"speechbrain_dyncp": ["pretrained/*/*", "*.c"]},
    include_package_data=True,
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["dyncp=speechbrain_dyncp.cli:main"]},
)
