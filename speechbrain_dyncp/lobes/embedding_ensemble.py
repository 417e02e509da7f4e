"""Several speaker embedders as one: the cosine of the joint embedding is the mean of the members' cosines.

Score fusion of independently trained systems is the standard way to lower an EER when every
single model has plateaued (every SRE / VoxSRC submission fuses subsystems). Fusing at the
embedding level keeps the rest of a verification pipeline unchanged: each member's embedding
is L2-normalised and the joint embedding is their concatenation divided by ``sqrt(n)``, so it
has unit norm and ``cos(joint_a, joint_b) = mean_i cos(member_i_a, member_i_b)``. A cohort,
AS-norm, a calibrated threshold and SpeechBrain's ``SpeakerRecognition`` then work on the
joint embedding as on any other.

Members that read the waveform with their own features (:class:`WaveformMembers`) join with
weights through :func:`fuse_embeddings`.

Authors
 * speechbrain-dyncp contributors
"""
from typing import Optional, Sequence

import torch
from torch import nn


class EmbeddingEnsemble(nn.Module):
    """Equal-weight embedding-level fusion of speaker embedders sharing one feature input.

    Arguments
    ---------
    members : sequence of nn.Module
        Embedders called as ``member(feats, lengths)`` on the same features ``[B, T, F]``
        (e.g. ``ECAPA_TDNN``s trained with the same Fbank), each returning ``[B, 1, D_i]``
        or ``[B, D_i]``.

    Example
    -------
    >>> from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
    >>> a = ECAPA_TDNN(80, channels=[32, 32, 32, 32, 96], lin_neurons=16)
    >>> b = ECAPA_TDNN(80, channels=[32, 32, 32, 32, 96], lin_neurons=24)
    >>> ens = EmbeddingEnsemble([a, b]).eval()
    >>> x, y = torch.randn(1, 120, 80), torch.randn(1, 120, 80)
    >>> ex, ey = ens(x), ens(y)
    >>> ex.shape
    torch.Size([1, 1, 40])
    >>> cos = lambda u, v: torch.nn.functional.cosine_similarity(u, v, dim=-1)
    >>> mean_of_members = (cos(a(x), a(y)) + cos(b(x), b(y))) / 2
    >>> torch.allclose(cos(ex, ey), mean_of_members, atol=1e-6)
    True
    """

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        if len(members) < 1:
            raise ValueError("EmbeddingEnsemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, feats: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Joint unit-norm embedding ``[B, 1, sum(D_i)]`` of features ``[B, T, F]``."""
        return fuse_embeddings([member(feats, lengths) for member in self.members]).unsqueeze(1)


def fuse_embeddings(parts: Sequence[torch.Tensor], weights: Optional[Sequence[float]] = None) -> torch.Tensor:
    """Joint embedding ``[B, sum(D_i)]`` whose cosine is the weighted mean of the parts' cosines.

    Each part (``[B, D_i]`` or ``[B, 1, D_i]``) is L2-normalised and scaled by ``sqrt(w_i / sum(w))``
    (equal weights by default), so the joint embedding has unit length.

    Example
    -------
    >>> a, b = torch.randn(3, 4), torch.randn(3, 6)
    >>> j = fuse_embeddings([a, b], [0.8, 0.2])
    >>> cos = lambda u: torch.nn.functional.cosine_similarity(u[:1], u[1:2], dim=-1)
    >>> torch.allclose(cos(j), 0.8 * cos(a) + 0.2 * cos(b), atol=1e-6)
    True
    """
    weights = torch.ones(len(parts)) if weights is None else torch.as_tensor(weights, dtype=torch.float)
    if len(weights) != len(parts) or not bool((weights >= 0).all()) or not weights.sum() > 0:
        raise ValueError(f"fusion weights {weights.tolist()} must be one non-negative weight per part, not all 0")
    scale = (weights / weights.sum()).sqrt()
    return torch.cat([nn.functional.normalize(p.reshape(p.shape[0], -1), dim=-1) * s for p, s in zip(parts, scale)],
                     dim=-1)


class WaveformMembers(nn.Module):
    """Speaker embedders that read the waveform themselves, fused with a feature-based embedding.

    A speaker model folder's ``embedding_model`` reads the shared Fbank features; members with
    their own front-end (e.g. :class:`~speechbrain_dyncp.lobes.ge2e.GE2EEncoder`, 40 mel power
    bands) cannot sit in an :class:`EmbeddingEnsemble`. A folder lists them here as the module
    ``waveform_members``; the speaker interfaces
    (:class:`~speechbrain_dyncp.inference.speaker.DynCPSpeakerRecognition`,
    :class:`~speechbrain_dyncp.verification.embedding.SpeakerEmbedder`) call it on the same
    waveforms (after any enhancement front-end) and use the joint embedding, whose cosine is
    ``weights[0] * cos(embedding_model) + sum_i weights[i + 1] * cos(member_i)``.

    Arguments
    ---------
    members : sequence of nn.Module
        ``member(wavs [B, T], lengths [B]) -> [B, D_i]``.
    weights : sequence of float
        One for the feature-based embedding, then one per member (normalised to sum to 1).

    Example
    -------
    >>> class Mean(nn.Module):
    ...     def forward(self, wavs, lengths):
    ...         return wavs.reshape(wavs.shape[0], 4, -1).mean(-1)
    >>> fusion = WaveformMembers([Mean()], weights=[0.6, 0.4])
    >>> wavs, feat_emb = torch.randn(2, 40), torch.randn(2, 1, 8)
    >>> fusion(feat_emb, wavs, torch.ones(2)).shape
    torch.Size([2, 12])
    """

    def __init__(self, members: Sequence[nn.Module], weights: Sequence[float]):
        super().__init__()
        if len(weights) != len(members) + 1:
            raise ValueError(f"WaveformMembers: {len(members)} members need {len(members) + 1} weights "
                             f"(the first for the feature-based embedding), got {len(weights)}")
        self.members = nn.ModuleList(members)
        self.weights = [float(w) for w in weights]

    def forward(self, feat_emb: torch.Tensor, wavs: torch.Tensor, lengths: Optional[torch.Tensor] = None):
        """Joint embedding ``[B, D + sum(D_i)]`` of the feature-based one and the members' on ``wavs``."""
        if lengths is None:
            lengths = torch.ones(wavs.shape[0], device=wavs.device)
        return fuse_embeddings([feat_emb] + [m(wavs, lengths) for m in self.members], self.weights)
