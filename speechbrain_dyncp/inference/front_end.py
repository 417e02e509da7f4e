"""Speaker verification through an SV-aware DynCP front-end, calibrated with its own probes.

``dyncp verify --front-end`` (and ``dyncp embed --front-end``) pass each recording
through a DynCP enhancer, embed the enhanced output, and read the recording's
quality measures (SNR, speech fraction, seconds of speech:
:func:`~speechbrain_dyncp.verification.calibration.probe_quality`) off the probes of
the same pass, at almost no extra cost. The bundled front-end, ``dyncp_sv_frontend``,
is the default enhancer fine-tuned with Grad-W through the frozen bundled speaker
model (``recipes/VoxCeleb/train_gradw.py``; figures in docs/speaker_real.md).

Scores of enhanced recordings are distributed differently from those of raw ones,
so they get their own calibration: ``calibration_front_end.json`` in the speaker
model folder, fitted on the dev trials by ``recipes/VoxCeleb/calibrate_quality.py
--front_end --store``. It records the front-end it was fitted for (name and
fingerprint of its weights); any other front-end gets the uncalibrated fallback,
and says so.

Authors
 * speechbrain-dyncp contributors
"""

from pathlib import Path
from typing import Optional, Tuple

FRONT_END_CALIBRATION_FILE = "calibration_front_end.json"


def front_end_embedding(speaker, enhancer, path) -> Tuple["torch.Tensor", dict]:  # noqa: F821
    """``(embedding [D], quality measures)`` of one audio file: the speaker model embeds the front-end's
    output; the measures come from the front-end's probes on the input (one pass)."""
    import torch

    from speechbrain_dyncp.verification.calibration import probe_quality

    with torch.no_grad():
        analysis = enhancer.analyze_file(str(path))
    return speaker.embed_waveform(analysis.wav[0].cpu(), path), probe_quality(analysis)


def front_end_calibration(speaker_folder, front_end_folder):
    """``(calibrator, None)`` fitted for this front-end, or ``(None, why not)``."""
    from speechbrain_dyncp.verification.calibration import QualityCalibrator, model_fingerprint

    path = Path(speaker_folder) / FRONT_END_CALIBRATION_FILE
    cal = QualityCalibrator.load(path)
    if cal is None:
        return None, f"{Path(speaker_folder).name} has no {FRONT_END_CALIBRATION_FILE}"
    fitted_for = cal.info.get("front_end_sha256")
    if fitted_for != model_fingerprint(front_end_folder):
        name = cal.info.get("front_end_bundled") or cal.info.get("front_end")
        return None, f"{path} was fitted for another front-end ({name}), not {front_end_folder}"
    return cal, None


def verify_with_front_end(speaker_folder, speaker, enrol, test, front_end: Optional[str],
                          trust_code: bool = False) -> str:
    """The text ``dyncp verify --front-end`` prints for one trial (``front_end``: a bundled name or a folder,
    loaded in safe mode unless ``trust_code``)."""
    from speechbrain_dyncp.inference.loading import enhancer_folder, load_enhancer
    from speechbrain_dyncp.inference.speaker_folders import calibrated_text

    fe_folder = enhancer_folder(front_end)
    enhancer = load_enhancer(front_end, trust_code=trust_code)
    (e1, q1), (e2, q2) = (front_end_embedding(speaker, enhancer, p) for p in (enrol, test))
    score = float(speaker.score_embeddings(e1[None], e2[None])[0][0])
    cal, why_not = front_end_calibration(speaker_folder, fe_folder)
    if cal is not None:
        q = [[side[m] for m in cal.measures] for side in (q1, q2)]
        return calibrated_text(cal, score, q, (enrol, test), tag=f"  [front-end {fe_folder.name}]")[1]
    decision = "same speaker" if score > speaker.threshold else "different speakers"
    return (f"score {score:.4f}  threshold {speaker.threshold:.4f} (UNCALIBRATED FALLBACK: {why_not}; the "
            f"threshold was fitted without a front-end, so the decision may be wrong for any pair)  {decision}")


def embed_files_with_front_end(speaker, front_end: Optional[str], trust_code: bool = False):
    """A ``path -> embedding`` function for ``dyncp embed --front-end``."""
    from speechbrain_dyncp.inference.loading import load_enhancer

    enhancer = load_enhancer(front_end, trust_code=trust_code)
    return lambda path: front_end_embedding(speaker, enhancer, path)[0]
