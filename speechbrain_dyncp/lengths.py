"""Relative lengths (SpeechBrain's ``[B]`` floats in (0, 1]) to frame masks.

SpeechBrain's ``length_to_mask(lengths * T)`` does not round, so in float32 a
relative length like 7/13 can come out one frame short. Every lobe of this
package goes through :func:`frame_lengths`, which rounds.

Authors
 * speechbrain-dyncp contributors
"""

from typing import Optional

import torch


def frame_lengths(lengths: Optional[torch.Tensor], n_frames: int, batch: int) -> torch.Tensor:
    """Absolute number of valid frames per item, rounded and clamped to ``[1, n_frames]``.

    Arguments
    ---------
    lengths : torch.Tensor or None
        Relative lengths ``[B]`` in (0, 1]; None means every item is full length.
    n_frames : int
        Padded length T of the time axis.
    batch : int
        Batch size B (used when ``lengths`` is None).

    Returns
    -------
    torch.Tensor
        Long tensor ``[B]``.

    Example
    -------
    >>> frame_lengths(torch.tensor([7 / 13, 1.0]), 13, 2)
    tensor([ 7, 13])
    """
    if lengths is None:
        return torch.full((batch,), n_frames, dtype=torch.long)
    n = torch.round(lengths.detach().double().cpu() * n_frames).long()
    return n.clamp(1, n_frames)


def length_mask(lengths: Optional[torch.Tensor], n_frames: int, batch: int, device=None) -> torch.Tensor:
    """Boolean mask ``[B, T]``, True on valid (non-padded) frames.

    Arguments
    ---------
    lengths : torch.Tensor or None
        Relative lengths ``[B]``.
    n_frames : int
        Padded length T.
    batch : int
        Batch size B.
    device : torch.device, optional
        Device of the returned mask.

    Returns
    -------
    torch.Tensor
        Bool tensor ``[B, T]``.

    Example
    -------
    >>> length_mask(torch.tensor([0.5, 1.0]), 4, 2).int()
    tensor([[1, 1, 0, 0],
            [1, 1, 1, 1]], dtype=torch.int32)
    """
    n = frame_lengths(lengths, n_frames, batch).to(device)
    return torch.arange(n_frames, device=device).unsqueeze(0) < n.unsqueeze(1)
