"""Where a speaker model folder comes from, and the calibrated verdict of ``dyncp verify``.

* :func:`hub_layout_overrides`: folders laid out like SpeechBrain's published speaker
  models (``speechbrain/spkrec-ecapa-voxceleb``) load offline;
* :func:`resolve_speaker_source`: ``--model`` may be a folder or a hub id;
* :func:`speaker_model_folder`: the bundled default speaker model when ``--model`` is not given (with the
  bundled SV front-end, the speaker model trained on that front-end's output);
* :func:`published_ge2e`: Resemblyzer's published GE2E encoder, from a ``pretrained.pt`` or, by
  default, the bundled speaker model that holds it unchanged (no Resemblyzer install needed);
* :func:`calibrated_verdict`: the calibrated LLR of a trial when the folder has
  ``calibration.json`` (:mod:`speechbrain_dyncp.verification.calibration`).

Authors
 * speechbrain-dyncp contributors
"""

from pathlib import Path

def hub_layout_overrides(model_dir) -> dict:
    """Overrides that make a folder laid out like SpeechBrain's published speaker models load offline.

    Their ``hyperparams.yaml`` (e.g. ``speechbrain/spkrec-ecapa-voxceleb``) points the
    pretrainer's ``paths`` at ``<pretrained_path>/embedding_model.ckpt`` with
    ``pretrained_path`` a hub id; copied into a local folder, that id would be fetched.
    When ``pretrained_path`` is not an existing folder, it is pointed at ``model_dir``.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> _ = (folder / "hyperparams.yaml").write_text("pretrained_path: speechbrain/spkrec-ecapa-voxceleb\\n")
    >>> hub_layout_overrides(folder) == {"pretrained_path": str(folder.resolve())}
    True
    """
    import re

    folder = Path(model_dir)
    text = (folder / "hyperparams.yaml").read_text(errors="replace")
    m = re.search(r"^pretrained_path:[ \t]*([^#\n]*)", text, re.M)
    if m is None or Path(m.group(1).strip().strip("'\"")).is_dir():
        return {}
    return {"pretrained_path": str(folder.resolve())}


def resolve_speaker_source(model) -> Path:
    """A local speaker model folder for ``model``: a folder, or a hub id (``owner/name``) already in the
    Hugging Face cache or downloadable (not offline, ``HF_HUB_OFFLINE`` unset); errors name it."""
    folder = Path(model)
    if folder.is_dir() or folder.exists() or model.count("/") != 1 or model.startswith((".", "/")):
        return folder  # load_model_folder reports a missing folder / hyperparams.yaml
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=model, allow_patterns=["*.yaml", "*.ckpt", "*.txt"]))
    except Exception as exc:  # offline, unknown id, no network: one line naming it
        raise FileNotFoundError(f"speaker model {model!r}: no such folder, and the hub id could not be fetched "
                                f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from exc


# speechbrain_dyncp/pretrained/<this>, when bundled: two small ECAPAs trained on the real speech of
# ../shared/data fused with Resemblyzer's published GE2E encoder (session 14; its model card)
DEFAULT_SPEAKER_MODEL = "speaker_real_fusion"
# the same with ECAPA member 1 trained on the bundled SV front-end's output (docs/speaker_real.md): what
# ``--front-end`` (that front-end) embeds with when no --model is given
FRONT_END_SPEAKER_MODEL = "speaker_real_fusion_fe"


def speaker_model_folder(model=None, front_end=None) -> Path:
    """The folder ``--model`` names (a hub id is fetched, see :func:`resolve_speaker_source`), or, when
    ``model`` is None, the bundled default speaker model; with ``front_end`` the bundled SV front-end
    (``dyncp_sv_frontend``), the bundled speaker model matched to its output when it is there."""
    if model:
        return resolve_speaker_source(str(model))
    from speechbrain_dyncp.inference.bundled import SV_FRONT_END, bundled_model_dir

    if front_end == SV_FRONT_END:
        try:
            return bundled_model_dir(FRONT_END_SPEAKER_MODEL)
        except FileNotFoundError:  # a checkout without it: the default speaker model
            pass
    try:
        return bundled_model_dir(DEFAULT_SPEAKER_MODEL)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"no --model given and {exc}; pass --model <speaker model folder>") from None


def published_ge2e(weights=None):
    """Resemblyzer's GE2E encoder with its published weights, in eval mode: from ``weights`` (a
    Resemblyzer ``pretrained.pt``) or, when None, from the GE2E member of the bundled
    ``speaker_real_fusion``, which holds those weights unchanged (``speaker_real_fusion_fe``'s is
    distilled). One default for every recipe that needs the teacher, and no Resemblyzer install."""
    from speechbrain_dyncp.lobes.ge2e import GE2EEncoder

    if weights is not None:
        return GE2EEncoder().load_resemblyzer(weights).eval()
    from speechbrain_dyncp.inference.bundled import bundled_model_dir
    from speechbrain_dyncp.verification.embedding import load_speaker_embedder

    members = load_speaker_embedder(bundled_model_dir(DEFAULT_SPEAKER_MODEL)).waveform_members.members
    return members[0].eval()


def calibrated_verdict(folder, model, enrol, test, score: float):
    """``(llr, text)`` from the folder's ``calibration.json`` (None, None without one); the quality
    measures of both files come from the DynCP probes (bundled enhancer unless the file names one)."""
    from speechbrain_dyncp.verification.calibration import QualityCalibrator, model_fingerprint, probe_quality

    cal = QualityCalibrator.load(folder)
    if cal is None:
        return None, None
    q, stale = [None, None], False
    if cal.measures:
        from speechbrain_dyncp.inference.loading import bundled_model_dir, load_enhancer

        # the probes the calibration was fitted with: a bundled model by name, else the folder it names
        bundled = cal.info.get("quality_model_bundled")
        probe_dir = bundled_model_dir(bundled) if bundled else Path(cal.info.get("quality_model"))
        enh = load_enhancer(str(probe_dir))
        stale = cal.info.get("quality_model_sha256") not in (None, model_fingerprint(probe_dir))
        q = [[probe_quality(enh.analyze_file(p))[m] for m in cal.measures] for p in (enrol, test)]
    llr, text = calibrated_text(cal, score, q, (enrol, test))
    if stale:  # the probes changed since fitting: their SNR / speech fraction may be on another scale
        text += (f"\nwarning: the probe model {probe_dir.name} changed since {folder}/calibration.json was "
                 "fitted; re-run recipes/VoxCeleb/calibrate_quality.py --store (LLRs may be off)")
    return llr, text


def calibrated_text(cal, score: float, q=(None, None), files=(None, None), tag: str = ""):
    """``(llr, text)`` of one trial under a fitted calibrator (``q``: both sides' quality measures
    in ``cal.measures`` order; ``files``: their names, for a warning when the VAD probe hears no speech
    in one; ``tag``: appended to the verdict line, before any warning); the LLR is None when it is not finite."""
    import math

    from speechbrain_dyncp.verification.calibration import posterior

    llr = float(cal.llr([score], *([x] for x in q) if cal.measures else ())[0])
    text = (f"score {score:.4f}  calibrated LLR {llr:+.2f} (natural log)  P(same) {float(posterior(llr)):.3f} "
            f"at prior 0.5  {'same speaker' if llr > 0 else 'different speakers'}")
    if cal.measures:
        text += "  [quality " + ", ".join(f"{m} {a:.2f}/{b:.2f}" for m, a, b in zip(cal.measures, *q)) + "]"
    text += tag
    if "speech_frac" in cal.measures:
        for name, side in zip(files, q):
            if side[cal.measures.index("speech_frac")] == 0:  # e.g. noise alone: its LLR is no speaker evidence
                text += (f"\nwarning: the VAD probe hears no speech in {name or 'one side'}; the score compares "
                         "whatever the recording holds, not voices")
    return (llr if math.isfinite(llr) else None), text
