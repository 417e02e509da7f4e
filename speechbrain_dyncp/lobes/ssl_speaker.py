"""Speaker embedder over an SSL model: front-end -> layer pooling -> backend.

``SSLSpeakerModel(frontend, pooling, backend)`` chains
:class:`~speechbrain_dyncp.lobes.ssl_frontend.SSLFrontEnd` (``[B, L, T, D]``),
a layer pooling of :mod:`~speechbrain_dyncp.lobes.layer_pooling`
(``[B, T, C]``) and any SpeechBrain-style backend ``(x [B, T, C], lengths) ->
[B, 1, E]`` (ASTP for LAP, SpeechBrain's ``ECAPA_TDNN`` for the SUPERB
baseline). It is an embedding function for
``speechbrain_dyncp.verification.pipeline.run_verification``.

Authors
 * speechbrain-dyncp contributors
"""

from typing import Callable, Optional

import torch
from torch import nn


class SSLSpeakerModel(nn.Module):
    """Waveforms ``[B, samples]`` -> speaker embeddings ``[B, 1, E]``.

    Arguments
    ---------
    frontend : torch.nn.Module
        ``(wav, lens) -> [B, L, T, D]`` with ``n_layers`` / ``hidden_size``.
    pooling : torch.nn.Module
        ``(hidden_states, lens) -> [B, T, C]`` with ``layer_scores``.
    backend : torch.nn.Module
        ``(x, lens) -> [B, 1, E]``.

    Example
    -------
    >>> from speechbrain_dyncp.lobes.layer_pooling import LayerAttentivePooling as LAP
    >>> from speechbrain_dyncp.lobes.temporal_pooling import AttentiveStatisticsTemporalPooling as ASTP
    >>> from speechbrain_dyncp.lobes.ssl_frontend import SSLFrontEnd, make_tiny_ssl_model
    >>> fe = SSLFrontEnd(make_tiny_ssl_model(getfixture("tmp_path") / "m"))
    >>> model = SSLSpeakerModel.build(fe, LAP, ASTP, pooling_kwargs={"out_channels": 16, "n_heads": 4},
    ...                               backend_kwargs={"lin_neurons": 8}).eval()
    >>> model(torch.randn(2, 8000), torch.tensor([1.0, 0.5])).shape
    torch.Size([2, 1, 8])
    """

    def __init__(self, frontend: nn.Module, pooling: nn.Module, backend: nn.Module):
        super().__init__()
        self.frontend, self.pooling, self.backend = frontend, pooling, backend

    @classmethod
    def build(cls, frontend: nn.Module, pooling: Callable, backend: Callable,
              pooling_kwargs: Optional[dict] = None, backend_kwargs: Optional[dict] = None) -> "SSLSpeakerModel":
        """Size the pooling from the front-end and the backend from the pooling.

        Arguments
        ---------
        frontend : torch.nn.Module
            Has ``n_layers`` and ``hidden_size``.
        pooling : callable
            ``pooling(n_layers=, input_size=, **pooling_kwargs)``.
        backend : callable
            ``backend(input_size=, **backend_kwargs)``.
        pooling_kwargs, backend_kwargs : dict, optional
            Extra constructor arguments.

        Returns
        -------
        SSLSpeakerModel
        """
        pool = pooling(n_layers=frontend.n_layers, input_size=frontend.hidden_size, **(pooling_kwargs or {}))
        return cls(frontend, pool, backend(input_size=pool.get_out_dim(), **(backend_kwargs or {})))

    def forward(self, wav: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Embed waveforms.

        Arguments
        ---------
        wav : torch.Tensor
            ``[B, samples]``.
        lengths : torch.Tensor, optional
            Relative lengths ``[B]``.

        Returns
        -------
        torch.Tensor
            ``[B, 1, E]``.
        """
        feats = self.pooling(self.frontend(wav, lengths), lengths)
        return self.backend(feats, lengths)

    @torch.no_grad()
    def layer_scores(self, wav: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Per-frame layer scores of the pooling, ``[B, T, heads, L]``.

        Arguments
        ---------
        wav : torch.Tensor
            ``[B, samples]``.
        lengths : torch.Tensor, optional
            Relative lengths ``[B]``.

        Returns
        -------
        torch.Tensor
        """
        return self.pooling.layer_scores(self.frontend(wav, lengths), lengths)
