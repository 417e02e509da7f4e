"""Embedding cost of speaker model folders on one thread, measured in one run.

A fused speaker model (e.g. the default ``speaker_real_fusion``: two ECAPAs + a GE2E LSTM)
costs more per second of audio than its members; how much is only comparable when the
folders alternate on the same audio in the same process. Each folder embeds the same
``--seconds`` of audio (``encode_batch``, one item) ``--repeats`` times, round-robin; the
figures are medians of milliseconds per second of audio, with ratios against the first folder.

Usage::

    python benchmarks/bench_speaker_embed.py speechbrain_dyncp/pretrained/ecapa_real_small_x2 \\
        speechbrain_dyncp/pretrained/speaker_real_fusion --out benchmarks/results/speaker_embed.json

Authors
 * speechbrain-dyncp contributors
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import torch


def time_embeddings(models: dict, wav: torch.Tensor, repeats: int) -> dict:
    """``{name: {"ms_per_audio_s": median, "runs": [...]}}`` of ``encode_batch(wav)`` per model."""
    seconds = wav.shape[-1] / 16000
    runs = {name: [] for name in models}
    with torch.no_grad():
        for model in models.values():  # warm-up: first calls allocate
            model.encode_batch(wav)
        for _ in range(repeats):
            for name, model in models.items():  # alternate: load changes hit every model alike
                t = time.perf_counter()
                model.encode_batch(wav)
                runs[name].append(1000 * (time.perf_counter() - t) / seconds)
    return {name: {"ms_per_audio_s": statistics.median(r), "runs": r} for name, r in runs.items()}


def main(argv=None):
    from speechbrain_dyncp.inference.speaker import load_speaker_model

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folders", nargs="+", help="speaker model folders; ratios are against the first")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--out", default=None, help="JSON file to write")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    wav = 0.1 * torch.randn(1, int(args.seconds * 16000))  # cost does not depend on content (GE2E: no pauses)
    models = {Path(f).name: load_speaker_model(f) for f in args.folders}
    result = time_embeddings(models, wav, args.repeats)
    first = result[Path(args.folders[0]).name]["ms_per_audio_s"]
    for name, r in result.items():
        r["ratio_to_first"] = r["ms_per_audio_s"] / first
        print(f"{name}: {r['ms_per_audio_s']:.1f} ms per second of audio ({r['ratio_to_first']:.2f}x)")
    out = {"threads": 1, "seconds": args.seconds, "repeats": args.repeats, "models": result}
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
