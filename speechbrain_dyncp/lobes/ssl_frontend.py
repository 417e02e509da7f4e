"""SSL front-end that returns every hidden state, with a fixed layer count.

:class:`SSLFrontEnd` wraps SpeechBrain's Hugging Face integrations
(``speechbrain.integrations.huggingface``: WavLM, HuBERT, wav2vec 2.0; the
model class follows the checkpoint's ``model_type``, so HuBERT loads as
``HubertModel``) with ``output_all_hiddens=True`` and returns ``[B, L, T, D]``
for :mod:`speechbrain_dyncp.lobes.layer_pooling`.

* LayerDrop is switched off (``config.layerdrop = 0``): in transformers 5 a
  dropped layer is missing from ``hidden_states``, which would silently
  misalign any per-layer weighting. The layer count is asserted on every call.
* SpecAugment-style time masking is off unless ``apply_spec_augment=True``.
* ``freeze=True`` keeps the encoder in eval mode even when the Brain calls
  ``.train()`` (the paper's frozen phase), with no gradients.
* ``source`` is a hub id (``"microsoft/wavlm-base-plus"``) or a local folder.
  Anything that looks like a path must exist, so a typo raises here instead
  of becoming a network request.

Any other multi-layer encoder: pass an ``nn.Module`` as ``source``. It is
called as ``module(wav, wav_lens)`` and must return a list/tuple of L tensors
``[B, T, D]`` or one stacked tensor ``[L, B, T, D]``; a transformers
``PreTrainedModel`` is also accepted as is (called with
``output_hidden_states=True``). E.g. torchaudio's wav2vec2 models:
``lambda`` -> ``model.extract_features(wav)[0]`` in a small ``nn.Module``.

Authors
 * speechbrain-dyncp contributors
"""

import json
import os
import re
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from speechbrain_dyncp.lobes.layer_pooling import to_batch_first

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
SB_WRAPPERS = {"wavlm": "WavLM", "hubert": "HuBERT", "wav2vec2": "Wav2Vec2"}


def resolve_source(source: Union[str, os.PathLike]) -> str:
    """Return an absolute local folder, or a hub id; raise on a missing path.

    Arguments
    ---------
    source : str or path-like
        Hub id ``"org/name"`` or a local model folder.

    Returns
    -------
    str
        Absolute folder path, or the hub id unchanged.

    Example
    -------
    >>> resolve_source("microsoft/wavlm-base-plus")
    'microsoft/wavlm-base-plus'
    >>> resolve_source("/no/such/folder")
    Traceback (most recent call last):
    ...
    FileNotFoundError: SSL model folder not found: /no/such/folder ...
    """
    text = os.fspath(source)
    path = Path(text).expanduser()
    if path.is_dir():
        return str(path.resolve())
    looks_local = isinstance(source, os.PathLike) or text.startswith(("/", ".", "~")) or text.count("/") > 1
    if looks_local or not _HUB_ID.match(text):
        raise FileNotFoundError(
            f"SSL model folder not found: {text} (give an existing folder, or a hub id like "
            "'microsoft/wavlm-base-plus')"
        )
    return text


def _load_sb_wrapper(source: str, save_path: str, freeze: bool, **kwargs) -> nn.Module:
    """Build SpeechBrain's wrapper that matches the checkpoint's ``model_type``."""
    from transformers import AutoConfig

    import speechbrain.integrations.huggingface as sb_hf

    model_type = AutoConfig.from_pretrained(source, cache_dir=save_path).model_type
    if model_type not in SB_WRAPPERS:
        raise ValueError(f"Unsupported SSL model_type {model_type!r} in {source}; choose from {sorted(SB_WRAPPERS)}")
    cls = getattr(sb_hf, SB_WRAPPERS[model_type])
    return cls(source, save_path=save_path, freeze=freeze, output_all_hiddens=True, **kwargs)


class SSLFrontEnd(nn.Module):
    """All hidden states of a pre-trained speech encoder as ``[B, L, T, D]``.

    Arguments
    ---------
    source : str, path-like or torch.nn.Module
        Hub id, local model folder, or any encoder (see the module docstring).
    save_path : str, optional
        Download cache for hub ids (SpeechBrain's ``save_path``).
    freeze : bool
        Frozen: no gradients and always in eval mode. Otherwise fine-tuned.
    freeze_feature_extractor : bool
        Fine-tune the transformer only (HF models).
    apply_spec_augment : bool
        Keep the HF model's own time/feature masking in training.
    n_layers : int, optional
        Expected hidden-state count L; read from the HF config when None, or
        measured on a short dummy input for a generic encoder.

    Example
    -------
    >>> folder = make_tiny_ssl_model(getfixture("tmp_path") / "tiny")
    >>> fe = SSLFrontEnd(folder, freeze=False).train()
    >>> hs = fe(torch.randn(2, 8000), torch.tensor([1.0, 0.6]))
    >>> hs.shape, fe.n_layers, fe.hidden_size
    (torch.Size([2, 3, 99, 32]), 3, 32)
    """

    def __init__(
        self,
        source: Union[str, os.PathLike, nn.Module],
        save_path: Optional[str] = None,
        freeze: bool = True,
        freeze_feature_extractor: bool = False,
        apply_spec_augment: bool = False,
        n_layers: Optional[int] = None,
    ):
        super().__init__()
        self.freeze = freeze
        if isinstance(source, nn.Module):
            self.encoder, self.hf_model = source, None
            if hasattr(source, "config") and hasattr(source.config, "output_hidden_states"):
                self.hf_model = source
        else:
            src = resolve_source(source)
            save_path = str(save_path or Path("pretrained_models") / src.replace("/", "--"))
            self.encoder = _load_sb_wrapper(
                src, save_path, freeze,
                freeze_feature_extractor=freeze_feature_extractor,
                apply_spec_augment=apply_spec_augment,
            )
            self.hf_model = self.encoder.model
        if self.hf_model is not None:
            self.hf_model.config.layerdrop = 0.0  # a fixed layer count for layer pooling
            if not apply_spec_augment:
                self.hf_model.config.apply_spec_augment = False
            n_layers = n_layers or self.hf_model.config.num_hidden_layers + 1
            self.hidden_size = self.hf_model.config.hidden_size
        if freeze:
            for p in self.encoder.parameters():
                p.requires_grad_(False)
        self.train(self.training)
        if n_layers is None or self.hf_model is None:
            with torch.no_grad():
                probe = self._run(torch.zeros(1, 4000), None)
            n_layers, self.hidden_size = n_layers or probe.shape[1], probe.shape[-1]
        self.n_layers = int(n_layers)

    def train(self, mode: bool = True):
        """Set train/eval mode; a frozen encoder always stays in eval mode.

        Arguments
        ---------
        mode : bool
            Train mode for the non-frozen parts.

        Returns
        -------
        SSLFrontEnd
        """
        super().train(mode)
        if self.freeze:
            self.encoder.eval()
        return self

    def _run(self, wav: torch.Tensor, wav_lens: Optional[torch.Tensor]) -> torch.Tensor:
        """Call the encoder and return ``[B, L, T, D]``."""
        if self.hf_model is not None and self.encoder is self.hf_model:
            mask = None
            if wav_lens is not None:
                n = torch.round(wav_lens * wav.shape[1]).long()
                mask = (torch.arange(wav.shape[1], device=wav.device)[None] < n[:, None]).long()
            out = self.encoder(wav, attention_mask=mask, output_hidden_states=True).hidden_states
        else:
            out = self.encoder(wav, wav_lens)
        return to_batch_first(out)

    def forward(self, wav: torch.Tensor, wav_lens: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Hidden states of every layer.

        Arguments
        ---------
        wav : torch.Tensor
            Waveforms ``[B, samples]`` at the model's rate (16 kHz).
        wav_lens : torch.Tensor, optional
            Relative lengths ``[B]``.

        Returns
        -------
        torch.Tensor
            ``[B, L, T, D]``; relative lengths carry over to the frames.
        """
        if wav.ndim != 2:
            raise ValueError(f"SSLFrontEnd expects waveforms [batch, time], got {tuple(wav.shape)}")
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            hs = self._run(wav, wav_lens)
        if hs.shape[1] != self.n_layers:
            raise RuntimeError(
                f"The SSL encoder returned {hs.shape[1]} hidden states, expected {self.n_layers}; "
                "LayerDrop must be off (config.layerdrop = 0)"
            )
        return hs


TINY_CONFIGS = {
    "wavlm": ("WavLMConfig", "WavLMModel"),
    "hubert": ("HubertConfig", "HubertModel"),
    "wav2vec2": ("Wav2Vec2Config", "Wav2Vec2Model"),
}


def make_tiny_ssl_model(
    folder: Union[str, os.PathLike],
    kind: str = "wavlm",
    hidden_size: int = 32,
    num_layers: int = 2,
    seed: int = 0,
    overwrite: bool = False,
) -> str:
    """Write a tiny randomly initialised SSL model folder (no download).

    The folder holds ``config.json``, the weights (``save_pretrained``) and a
    ``preprocessor_config.json``, so :class:`SSLFrontEnd` and SpeechBrain's
    wrappers load it offline. The CNN has strides 5*4*4 (80 samples, 200
    frames per second at 16 kHz). An existing model folder is reused unless
    ``overwrite`` is set.

    Arguments
    ---------
    folder : str or path-like
        Where to write.
    kind : {"wavlm", "hubert", "wav2vec2"}
        Architecture.
    hidden_size : int
        Transformer width D (divisible by 2 attention heads and 4 conv groups).
    num_layers : int
        Transformer layers (the front-end returns ``num_layers + 1`` states).
    seed : int
        Seed of the random weights.
    overwrite : bool
        Rewrite an existing model folder.

    Returns
    -------
    str
        The absolute folder path.

    Example
    -------
    >>> folder = make_tiny_ssl_model(getfixture("tmp_path") / "m", kind="hubert")
    >>> sorted(p.name for p in Path(folder).iterdir())
    ['config.json', 'model.safetensors', 'preprocessor_config.json']
    """
    import transformers

    if kind not in TINY_CONFIGS:
        raise ValueError(f"Unknown SSL kind {kind!r}; choose from {sorted(TINY_CONFIGS)}")
    folder = Path(folder).expanduser().resolve()
    if (folder / "config.json").is_file() and not overwrite:
        if json.loads((folder / "config.json").read_text()).get("model_type") != kind:
            raise FileExistsError(f"{folder} holds another model type than {kind!r}; pass overwrite=True")
        return str(folder)
    cfg_cls, model_cls = (getattr(transformers, n) for n in TINY_CONFIGS[kind])
    cfg = cfg_cls(
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        conv_dim=(16, 16, 16),
        conv_stride=(5, 4, 4),
        conv_kernel=(10, 8, 4),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        layerdrop=0.0,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = model_cls(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    transformers.Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, do_normalize=True, return_attention_mask=True
    ).save_pretrained(str(folder))
    return str(folder)
