"""An utterance SNR read off the enhancer's own time-frequency mask, with a monotone calibration.

The gate-probe SNR head (a linear read-out of channel firing rates) regresses to the middle of
the range: 4.6 dB MAE on the real test split. The T-F mask says more directly how much of the
input the model keeps: with the un-floored mask ``m`` and input power ``|X|^2``,

    ratio_db = 10 log10( sum m^2 |X|^2 / sum (1 - m)^2 |X|^2 )

over the utterance's valid frames is the model's own speech-to-removed-noise energy ratio. It is
biased (the mask removes speech at low SNR and keeps noise at high SNR), so a monotone
(isotonic) map fitted on the fitting mixtures turns it into an SNR in dB
(``recipes/DynCP/fit_snr_calibration.py``; the knots live in the model folder's
``hyperparams.yaml`` under ``snr_mask_calibration``). It costs one extra pass over the spectrum
(no MACs of the network) and is an utterance-level estimate, not a per-frame one.

Authors
 * speechbrain-dyncp contributors
"""

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from speechbrain_dyncp.lobes.stft_masking import kept_removed_energy, unfloored


def mask_energy_ratio_db(spec: Tensor, mask: Tensor, frame_mask: Tensor, floor: float = 0.0) -> Tensor:
    """Kept-over-removed energy ratio (dB) per item of the un-floored T-F mask.

    Arguments
    ---------
    spec : torch.Tensor
        Complex input STFT ``[B, F, N]``.
    mask : torch.Tensor
        The enhancer's mask ``[B, N, F]`` (``EnhancerOutput.mask``, attenuation floor included).
    frame_mask : torch.Tensor
        ``[B, N]`` valid frames.
    floor : float or torch.Tensor
        The model's mask floor (``DynCPEnhancer.mask_floor``, or per frame ``[B, N, 1]`` with a pause
        floor), undone here so the ratio does not depend on the attenuation limits a user picks.

    Returns
    -------
    torch.Tensor
        ``[B]`` ratios in dB.

    Example
    -------
    >>> spec = torch.ones(1, 3, 4, dtype=torch.complex64)
    >>> mask = torch.full((1, 4, 3), 0.5); mask[..., 0] = 1.0  # one bin kept, two halved
    >>> round(float(mask_energy_ratio_db(spec, mask, torch.ones(1, 4, dtype=torch.bool))), 2)  # (1 + .5) / .5
    4.77
    """
    n = min(spec.shape[-1], mask.shape[1])
    if torch.is_tensor(floor):  # per frame [B, N, 1] (a pause floor: DynCPEnhancer.frame_floors)
        floor = floor[:, :n]
    raw = unfloored(mask[:, :n], floor)  # B, N, F
    power = spec[..., :n].abs().pow(2).transpose(1, 2) * frame_mask[:, :n, None].to(raw.dtype)
    kept, removed = kept_removed_energy(raw.flatten(1), power.flatten(1))
    return 10.0 * torch.log10((kept + 1e-12) / (removed + 1e-12))


def enhancer_mask_ratio_db(enhancer, noisy: Tensor, out, spec: Optional[Tensor] = None) -> Tensor:
    """:func:`mask_energy_ratio_db` of a ``DynCPEnhancer`` forward ``out`` on ``noisy`` ``[B, T]`` (same STFT;
    ``spec``: ``enhancer.spectrum(noisy)`` where the caller already has it)."""
    spec = enhancer.spectrum(noisy) if spec is None else spec
    floors = out.floors
    return mask_energy_ratio_db(spec, out.mask, out.frame_mask, enhancer.mask_floor if floors is None else floors)


@dataclass
class MaskSNRCalibration:
    """Monotone map from :func:`mask_energy_ratio_db` to SNR (dB): knots, linear in between, flat outside.

    Example
    -------
    >>> cal = MaskSNRCalibration.fit([0.0, 10.0, 20.0, 30.0], [-5.0, 5.0, 10.0, 20.0])
    >>> cal.predict([5.0, 100.0]).tolist()
    [0.0, 20.0]
    >>> MaskSNRCalibration.from_dict(cal.to_dict()) == cal
    True
    """

    ratio_db: List[float]
    snr_db: List[float]

    @classmethod
    def fit(cls, ratio_db: Sequence[float], snr_db: Sequence[float]) -> "MaskSNRCalibration":
        """Isotonic (non-decreasing) regression of the true SNR on the ratio (scikit-learn)."""
        from sklearn.isotonic import IsotonicRegression

        x, y = np.asarray(ratio_db, float), np.asarray(snr_db, float)
        if x.size < 2 or not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise ValueError("MaskSNRCalibration.fit needs >= 2 finite (ratio, SNR) pairs")
        iso = IsotonicRegression(out_of_bounds="clip").fit(x, y)
        return cls([float(v) for v in iso.X_thresholds_], [float(v) for v in iso.y_thresholds_])

    def predict(self, ratio_db) -> np.ndarray:
        """SNR estimates (dB) for ratios (dB)."""
        return np.interp(np.asarray(ratio_db, float), self.ratio_db, self.snr_db)

    def reach_db(self) -> Tuple[float, float]:
        """``(low, high)``: the values of the fit's bottom and top plateaus (isotonic regression keeps both
        ends of a flat segment, so a plateau is a repeated value; the extremes where there is none). An
        estimate at or beyond them is a bound: every ratio past the last fitting mixture maps there.

        Example
        -------
        >>> MaskSNRCalibration([0.0, 1.0, 2.0, 3.0, 4.0], [-5.0, -4.0, -4.0, 20.0, 20.0]).reach_db()
        (-4.0, 20.0)
        """
        v = self.snr_db
        low = next((a for a, b in zip(v, v[1:]) if a == b), v[0])
        high = next((a for a, b in zip(v[::-1], v[-2::-1]) if a == b), v[-1])
        return low, high

    def to_dict(self) -> dict:
        """Plain lists (for ``hyperparams.yaml``)."""
        return {"ratio_db": list(self.ratio_db), "snr_db": list(self.snr_db)}

    @classmethod
    def from_dict(cls, d: Optional[dict]) -> Optional["MaskSNRCalibration"]:
        """From :meth:`to_dict`'s form; None stays None."""
        if not d:
            return None
        if len(d["ratio_db"]) != len(d["snr_db"]) or len(d["ratio_db"]) < 2:
            raise ValueError("snr_mask_calibration needs ratio_db and snr_db lists of one length >= 2")
        return cls([float(v) for v in d["ratio_db"]], [float(v) for v in d["snr_db"]])
