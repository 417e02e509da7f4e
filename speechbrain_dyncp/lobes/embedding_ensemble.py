"""Several speaker embedders as one: the cosine of the joint embedding is the mean of the members' cosines.

Score fusion of independently trained systems is the standard way to lower an EER when every
single model has plateaued (every SRE / VoxSRC submission fuses subsystems). Fusing at the
embedding level keeps the rest of a verification pipeline unchanged: each member's embedding
is L2-normalised and the joint embedding is their concatenation divided by ``sqrt(n)``, so it
has unit norm and ``cos(joint_a, joint_b) = mean_i cos(member_i_a, member_i_b)``. A cohort,
AS-norm, a calibrated threshold and SpeechBrain's ``SpeakerRecognition`` then work on the
joint embedding as on any other.

Authors
 * speechbrain-dyncp contributors
"""
import math
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
        parts = []
        for member in self.members:
            emb = member(feats, lengths)
            parts.append(nn.functional.normalize(emb.reshape(emb.shape[0], -1), dim=-1))
        return (torch.cat(parts, dim=-1) / math.sqrt(len(parts))).unsqueeze(1)
