"""The ``dyncp`` command line.

``dyncp demo``      the main job end to end (real recordings where present, else the embedded corpus)
``dyncp enhance``   enhance files / folders (+ ``--probes`` CSV/JSON, ``--plot`` figures)
``dyncp verify``    score two recordings with a speaker model folder
``dyncp embed``     speaker embeddings of every file in a folder
``dyncp export``    recipe checkpoint -> self-contained model folder (``--onnx`` too)
``dyncp corpus``    build the embedded synthetic corpus

Every command is ``main(argv) -> exit status`` so tests call it in-process.

Authors
 * speechbrain-dyncp contributors
"""

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import List, Optional

logger = logging.getLogger("dyncp")

from speechbrain_dyncp.data.audio import SILENCE_PEAK  # noqa: E402 (digital silence, shared with the speaker models)
# Model loading lives in the library (inference/loading.py); re-exported for callers of the CLI module.
from speechbrain_dyncp.inference.loading import DEFAULT_ENHANCER, bundled_model_dir, load_enhancer  # noqa: E402,F401
# The --probes files are written per probe head (probes/outputs.py); re-exported for callers of the CLI module.
from speechbrain_dyncp.probes.outputs import (  # noqa: E402,F401
    NOISE_MIN_PROB, drop_signal_estimates, write_probe_outputs)


# ---------------------------------------------------------------- enhance
def output_name(src: Path) -> str:
    """Name of the enhanced wav of ``src``: ``a.wav`` -> ``a.wav``, ``a.flac`` -> ``a.flac.wav``.

    Only a ``.wav`` input keeps its name: dropping any other extension would
    give ``a.flac`` the output name of a sibling ``a.wav`` (one result lost,
    or an input overwritten when ``-o`` is the input folder).

    Example
    -------
    >>> output_name(Path("a.WAV")), output_name(Path("a.flac"))
    ('a.wav', 'a.flac.wav')
    """
    return f"{src.stem}.wav" if src.suffix.lower() == ".wav" else f"{src.name}.wav"


def side_output(dst: Path, suffix: str) -> Path:
    """``<dst without .wav><suffix>``: ``out/a.flac.wav`` -> ``out/a.flac.json``."""
    return dst.with_name(dst.name[: -len(".wav")] + suffix)


def _inside(path: Path, folder: Path) -> bool:
    return folder in path.parents


def _output_paths(inputs: List[Path], out_dir: Path, sides=()):
    """(input, output wav) pairs mirroring each input folder's tree under ``out_dir``.

    Files under ``out_dir`` are not inputs when ``out_dir`` lies inside an input
    folder: they are earlier outputs. Raises ``ValueError`` before any work when
    two inputs map to one output (wav or a side file of ``sides`` suffixes).
    """
    from speechbrain_dyncp.data.audio import list_audio_files

    out_res = out_dir.resolve()
    pairs, seen = [], set()
    for item in inputs:
        files = list_audio_files(item)
        base = item if item.is_dir() else item.parent
        if item.is_dir() and not files:
            raise FileNotFoundError(f"no audio files found under {item}")
        if item.is_dir() and _inside(out_res, item.resolve()):  # -o inside the input tree
            files = [f for f in files if not _inside(f.resolve(), out_res)]
        for f in files:
            dst = out_dir / f.relative_to(base).parent / output_name(f)
            if (f.resolve(), dst.resolve()) not in seen:  # the same file named twice
                seen.add((f.resolve(), dst.resolve()))
                pairs.append((f, dst))
    owners = {}
    for src, dst in pairs:
        for path in (dst, *(side_output(dst, s) for s in sides)):
            owners.setdefault(path.resolve(), []).append(src)
    clashes = [(path, srcs) for path, srcs in owners.items() if len(srcs) > 1]
    if clashes:
        path, srcs = clashes[0]
        raise ValueError(f"{len(clashes)} output name(s) shared by several inputs, e.g. "
                         f"{' and '.join(map(str, srcs))} have the same output {path}; "
                         "rename one or enhance them into separate -o folders")
    return pairs


PLOT_MIN_SAMPLES = 512 // 2 + 1  # the figure's centred spectrogram (n_fft 512) pads by 256 on each side
CLIPPED_FRACTION = 0.01  # share of samples at full scale that marks an input as clipped


def check_level(wav):
    """``(wav, warnings)``: an input over full scale scaled to peak 1, and ``{code: message}``
    for inputs whose enhancement or estimates would otherwise be garbage presented as answers.

    Example
    -------
    >>> import torch
    >>> wav, warnings = check_level(torch.tensor([0.0, 2500.0, -5000.0]))
    >>> float(wav.abs().max()), sorted(warnings)
    (1.0, ['over_full_scale'])
    >>> sorted(check_level(torch.zeros(100))[1])
    ['silence']
    """
    peak = float(wav.abs().max())
    if peak < SILENCE_PEAK:
        return wav, {"silence": f"the input is digital silence (peak {peak:.1e}): no noise class or SNR estimate"}
    if peak > 1.0:  # a float file; 16-bit output would clip nearly every sample
        return wav / peak, {"over_full_scale": f"the input peaks at {peak:.6g}, over full scale: scaled by "
                                               f"1/{peak:.6g} before enhancing; the output is at that level"}
    clipped = float((wav.abs() >= 0.999).float().mean())
    if clipped > CLIPPED_FRACTION:
        return wav, {"clipped": f"{100 * clipped:.1f}% of the input samples are at full scale (clipped input)"}
    return wav, {}


def cmd_enhance(args) -> int:
    from tqdm import tqdm

    from speechbrain_dyncp.data.audio import AudioError, audio_info, write_audio
    from speechbrain_dyncp.inference.chunking import enhance_file_chunked
    from speechbrain_dyncp.plots import plot_analysis

    out_dir = Path(args.output)
    sides = [".json", ".probes.csv"] * bool(args.probes) + [".png"] * bool(args.plot)
    try:
        pairs = _output_paths([Path(p) for p in args.inputs], out_dir, sides)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    inputs = {src.resolve() for src, _ in pairs}
    model = load_enhancer(args.model, trust_code=args.trust_model_code)
    if args.attenuation_limit_db is not None:  # the model folder's own limit otherwise; 0 = none
        model.enhancer.attenuation_limit_db = args.attenuation_limit_db
    failed, done, skipped = [], 0, 0
    for src, dst in tqdm(pairs, desc="enhancing", unit="file", disable=args.quiet):
        stem = side_output(dst, "")
        clobbered = [p for p in (dst, *(side_output(dst, s) for s in sides)) if p.resolve() in inputs]
        if clobbered:  # any input, not only its own: a.flac's output may be the input a.flac.wav
            failed.append((src, f"output would overwrite the input file {clobbered[0]}; choose another -o folder"))
            continue
        if dst.exists() and not args.overwrite:
            skipped += 1  # done on an earlier run: the wav is written last
            continue
        try:
            frames, rate, _ = audio_info(src)
            if frames / rate > args.chunk_over:  # long file: bounded memory, audio only
                info = enhance_file_chunked(model.enhancer, src, dst, sample_rate=model.hparams.sample_rate,
                                            overwrite=args.overwrite)
                if info["clipped"]:  # not scaled like short files: the peak is known only at the end
                    print(f"warning: {src}: {info['clipped']} of {info['samples']} output samples were beyond "
                          "full scale and written clipped; scale the input down and rerun", file=sys.stderr)
                if args.probes or args.plot:
                    print(f"note: {src} is longer than {args.chunk_over:.0f} s: enhanced in chunks, "
                          "no probes/plot written", file=sys.stderr)
                done += 1
                continue
            wav, warnings = check_level(model.load_checked_audio(src))
            for message in warnings.values():
                print(f"warning: {src}: {message}", file=sys.stderr)
            if args.plot and wav.numel() < PLOT_MIN_SAMPLES:  # before any output of this file is written
                raise AudioError(f"{src} is {1000 * wav.numel() / model.hparams.sample_rate:.0f} ms long: too "
                                 f"short for --plot (at least {PLOT_MIN_SAMPLES} samples); rerun without --plot")
            analysis = model.analyze_batch(wav.unsqueeze(0)) if (args.probes or args.plot) else None
            if analysis is not None and "silence" in warnings:  # estimates of nothing: not reported
                drop_signal_estimates(analysis)
            enhanced = analysis.wav[0] if analysis is not None else model.enhance_signal_fast(wav)
            dst.parent.mkdir(parents=True, exist_ok=True)
            if args.probes:
                write_probe_outputs(stem, analysis)
                if warnings:
                    summary = json.loads(Path(f"{stem}.json").read_text())
                    Path(f"{stem}.json").write_text(json.dumps({**summary, "warnings": warnings}, indent=2))
            if args.plot:
                plot_analysis(side_output(dst, ".png"), wav, analysis, title=src.name)
            # the wav marks the file as done, so it comes last: a failed plot is redone next run
            write_audio(dst, enhanced.cpu(), model.hparams.sample_rate, overwrite=args.overwrite)
            done += 1
        except (OSError, ValueError, RuntimeError) as exc:  # AudioError is a ValueError
            failed.append((src, str(exc)))
    for src, why in failed:
        print(f"error: {src}: {why}", file=sys.stderr)
    print(f"enhanced {done}, skipped {skipped} already done, failed {len(failed)} -> {out_dir}")
    return 1 if failed else 0


# ---------------------------------------------------------------- others
def cmd_corpus(args) -> int:
    from speechbrain_dyncp.data.synth import build_corpus

    corpus = build_corpus(Path(args.output), preset=args.preset, seed=args.seed,
                          shared_data=Path(args.shared_data) if args.shared_data else None)
    print(f"corpus written to {corpus.root}")
    return 0


def cmd_demo(args) -> int:
    from speechbrain_dyncp.demo import run_demo

    return run_demo(Path(args.output), model=args.model, n_files=args.n_files, data=args.data)


def cmd_export(args) -> int:
    from speechbrain_dyncp.export import export_from_cli

    return export_from_cli(args)


def cmd_verify(args) -> int:
    from speechbrain_dyncp.inference.speaker import verify_from_cli

    return verify_from_cli(args)


def cmd_embed(args) -> int:
    from speechbrain_dyncp.inference.speaker import embed_from_cli

    return embed_from_cli(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``dyncp``."""
    from speechbrain_dyncp.inference.loading import SV_FRONT_END

    p = argparse.ArgumentParser(prog="dyncp", description=__doc__.split("\n\n")[0])
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True)
    trust = argparse.ArgumentParser(add_help=False)
    trust.add_argument("--trust-model-code", action="store_true",
                       help="a model folder's hyperparams.yaml is code that loading runs; by default only "
                            "objects of speechbrain, speechbrain_dyncp and torch may be built from it (safe "
                            "mode); this flag turns that check off: use it only for folders you trust")
    front = argparse.ArgumentParser(add_help=False)
    front.add_argument("--front-end", nargs="?", const=SV_FRONT_END, metavar="MODEL",
                       help="embed each recording's enhanced output: the bundled SV-aware front-end (Grad-W "
                            "fine-tuned) without MODEL, with the speaker model trained on its output unless "
                            "--model is given; else that enhancer folder; scores calibrated with the speaker "
                            "folder's calibration_front_end.json when it was fitted for this front-end")

    d = sub.add_parser("demo", help="the main job end to end (real recordings where found, else the embedded corpus)")
    d.add_argument("--data", default="auto", choices=["auto", "real", "embedded"],
                   help="test mixtures: the real test split where ../shared/data (or $DYNCP_SHARED_DATA) is found "
                        "(auto), or forced")
    d.add_argument("-o", "--output", default="results/demo", help="output folder (default results/demo)")
    d.add_argument("--model", help="enhancer model folder or bundled name (default: dyncp_real_base)")
    d.add_argument("--n-files", type=int, default=24, help="test mixtures to analyse")
    d.set_defaults(func=cmd_demo)

    e = sub.add_parser("enhance", help="enhance audio files or folders (recursive)", parents=[trust])
    e.add_argument("inputs", nargs="+", help="audio files and/or folders")
    e.add_argument("-o", "--output", required=True,
                   help="output folder (input trees are mirrored; a.wav -> a.wav, other formats keep their "
                        "extension: a.flac -> a.flac.wav; an output never replaces an input)")
    e.add_argument("--model", help="enhancer model folder or bundled name (default: dyncp_real_base)")
    e.add_argument("--probes", action="store_true", help="write the probe heads' per-frame CSV and per-file JSON")
    e.add_argument("--plot", action="store_true", help="write a figure per file")
    e.add_argument("--attenuation-limit-db", type=float, metavar="DB",
                   help="largest attenuation in dB (default: the model folder's, 20 for the bundled model; "
                        "0 = no limit, the most noise removed and the most harm to clean speech)")
    e.add_argument("--overwrite", action="store_true", help="redo files whose output exists")
    e.add_argument("--chunk-over", type=float, default=600.0, metavar="SECONDS",
                   help="files longer than this are enhanced in bounded memory, block by block (default 600)")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    e.set_defaults(func=cmd_enhance)

    v = sub.add_parser("verify", help="speaker verification score of two recordings", parents=[trust, front])
    v.add_argument("enrol")
    v.add_argument("test")
    v.add_argument("--model", help="speaker model folder or hub id, e.g. a folder laid out like "
                   "speechbrain/spkrec-ecapa-voxceleb (default: the bundled speaker model)")
    v.set_defaults(func=cmd_verify)

    m = sub.add_parser("embed", help="speaker embeddings of every audio file in a folder", parents=[trust, front])
    m.add_argument("folder")
    m.add_argument("-o", "--output", required=True, help="output .npz (id -> embedding)")
    m.add_argument("--model", help="speaker model folder or hub id (default: the bundled speaker model)")
    m.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    m.set_defaults(func=cmd_embed)

    x = sub.add_parser("export", help="recipe checkpoint -> model folder loadable with from_hparams")
    x.add_argument("experiment", help="recipe output folder (holds hyperparams.yaml and save/CKPT+*)")
    x.add_argument("-o", "--output", required=True, help="model folder to write")
    x.add_argument("--probes", help="probes checkpoint (.ckpt) from recipes/DynCP/fit_probes.py")
    x.add_argument("--onnx", action="store_true", help="also write ONNX graphs (offline + streaming step)")
    x.add_argument("--attenuation-limit-db", type=float, metavar="DB",
                   help="attenuation limit stored in the model folder (DynCPEnhancer.attenuation_limit_db)")
    x.set_defaults(func=cmd_export)

    c = sub.add_parser("corpus", help="build the embedded synthetic corpus")
    c.add_argument("-o", "--output", required=True)
    c.add_argument("--preset", default="small", choices=["tiny", "small", "demo"])
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--shared-data", help="folder of real recordings to mix in (optional)")
    c.set_defaults(func=cmd_corpus)
    return p


def user_errors() -> tuple:
    """Exceptions that mean bad input, not a bug: ``main`` reports them in one line."""
    from speechbrain_dyncp.data.audio import AudioError
    from speechbrain_dyncp.inference.strict import ModelFolderError

    # FileExistsError, PermissionError, IsADirectoryError ... are OSErrors naming the path
    return (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError,
            ModelFolderError, AudioError)


def bare_front_end_first(argv: List[str]) -> List[str]:
    """``verify --front-end a.wav b.wav``: argparse would take ``a.wav`` as the enhancer (``nargs="?"``) and
    then miss a recording; a value that is an existing file or folder without ``hyperparams.yaml`` is an input,
    so the bare flag is spelled out as the bundled front-end."""
    from speechbrain_dyncp.inference.loading import SV_FRONT_END

    is_input = lambda t: Path(t).exists() and not (Path(t) / "hyperparams.yaml").is_file()  # noqa: E731
    return [f"--front-end={SV_FRONT_END}" if tok == "--front-end" and nxt is not None and is_input(nxt) else tok
            for tok, nxt in zip(argv, argv[1:] + [None])]


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``dyncp``; returns the exit status.

    A user error (missing or damaged file, refused model folder, existing output)
    ends in one line ``error: <file>: <problem>`` and exit status 2; ``-v`` adds
    the traceback.
    """
    args = build_parser().parse_args(bare_front_end_first(sys.argv[1:] if argv is None else list(argv)))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return int(args.func(args) or 0)
    except user_errors() as exc:
        if args.verbose:
            import traceback

            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
