"""Grad-W: gradient-weighted deep-feature loss from a frozen speaker network E.

Ma et al., "Gradient weighting for speaker verification in extremely low
Signal-to-Noise Ratio", ICASSP 2024 (arXiv:2401.02626). Only the enhancer G is
trained; E is frozen (eval mode, no parameter gradients) and says *where* the
enhanced input differs from the clean one in a way that matters to it.

For clean features R and enhanced features E(G(noisy)) the loss taps E's
activation map ``A`` at a named submodule (a forward hook) and computes

* ``G_u = d y_u / d A_u``, where ``y_u = s * cos(e_u, w_label)`` is the *true*
  speaker's scaled cosine logit from E's classifier head, without margin;
* ``D = sum_c (G_enh - G_ref)`` (signed) at every position;
* ``P = softmax(D)`` over all valid positions of each utterance, detached;
* ``L = (1/B) sum_b sum_{c, pos} P * |A_ref - A_enh|`` with ``A_ref`` detached.

Positions are whatever follows the channel axis of the tapped map: frames for
ECAPA-TDNN (``[B, C, T]``; P is a softmax over time, one weight per 10 ms
frame shared by all channels) and (frequency, time) cells for a 2-D ResNet
(``[B, C, F', T']``, as in the paper). Padded frames (from ``lengths``) get
``P = 0`` and never enter the L1.

``weighting="equal"`` (Equal-W) uses ``P = 1 / n_b`` on the ``n_b`` valid
positions of utterance b, so the loss is the per-utterance *mean over
positions* of the *channel-summed* absolute difference, averaged over the
batch: ``L = (1/B) sum_b (1/n_b) sum_{pos valid} sum_c |A_ref - A_enh|``.

Validation: SpeechBrain evaluates under ``torch.no_grad``. The
gradient part always runs under ``torch.enable_grad``: the tapped activation
is replaced, for the layers above the tap, by a detached leaf copy, and
``autograd.grad`` differentiates y with respect to that leaf. This needs no
graph to the input or to E's parameters, costs no extra forward pass, and
gives the same ``dy/dA`` as re-running E on a detached input.

Authors
 * speechbrain-dyncp contributors
"""

from typing import Optional, Tuple

import torch
from speechbrain.processing.features import InputNormalization
from torch import Tensor, nn

from speechbrain_dyncp.lengths import length_mask

WEIGHTINGS = ("grad", "equal")


class SpeakerScorer(nn.Module):
    """E as the loss sees it: mean normalisation -> embedding net -> cosine head.

    Arguments
    ---------
    embedding_model : nn.Module
        ``forward(feats [B, T, F], lengths) -> [B, 1, D]`` (SpeechBrain
        ``ECAPA_TDNN`` or :class:`~speechbrain_dyncp.lobes.resnet.ResNetSpeaker`).
    classifier : nn.Module
        Cosine head ``[B, 1, D] -> [B, 1, n_spk]`` (SpeechBrain ECAPA ``Classifier``).
    normalizer : nn.Module, optional
        Feature normalisation with lengths; default per-utterance mean
        subtraction (``InputNormalization(norm_type="sentence", std_norm=False)``),
        as in the ECAPA recipe.

    Example
    -------
    >>> from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN, Classifier
    >>> emb = ECAPA_TDNN(16, channels=[8, 8, 8, 8, 24], attention_channels=4, se_channels=4, lin_neurons=6)
    >>> e = SpeakerScorer(emb, Classifier(6, out_neurons=3)).eval()
    >>> cos = e(torch.randn(2, 30, 16))
    >>> cos.shape, bool((cos.abs() <= 1 + 1e-6).all())
    (torch.Size([2, 3]), True)
    """

    def __init__(self, embedding_model: nn.Module, classifier: nn.Module, normalizer: Optional[nn.Module] = None):
        super().__init__()
        self.normalizer = normalizer if normalizer is not None else InputNormalization(norm_type="sentence", std_norm=False)
        self.embedding_model = embedding_model
        self.classifier = classifier

    def embed(self, feats: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        """Speaker embedding ``[B, 1, D]`` of log-Mel ``feats [B, T, F]``."""
        feats = self.normalizer(feats, lengths)
        # Zero padded frames (as the verification pipeline does): padding content never matters.
        feats = feats * length_mask(lengths, feats.shape[1], feats.shape[0], feats.device).unsqueeze(-1)
        return self.embedding_model(feats, lengths)

    def forward(self, feats: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        """Cosine logits ``[B, n_spk]`` (no margin, no scale)."""
        return self.classifier(self.embed(feats, lengths)).reshape(feats.shape[0], -1)


def position_mask(act: Tensor, lengths: Optional[Tensor]) -> Tensor:
    """Bool ``[B, *positions]``: True where the time index (last axis) is valid.

    Example
    -------
    >>> position_mask(torch.zeros(2, 5, 3, 4), torch.tensor([0.5, 1.0]))[0].int()
    tensor([[1, 1, 0, 0],
            [1, 1, 0, 0],
            [1, 1, 0, 0]], dtype=torch.int32)
    """
    b, n_t = act.shape[0], act.shape[-1]
    m = length_mask(lengths, n_t, b, act.device)  # B, T
    return m.view(b, *([1] * (act.ndim - 3)), n_t).expand(b, *act.shape[2:])


def gradw_weights(g_ref: Tensor, g_enh: Tensor, mask: Tensor) -> Tensor:
    """Grad-W position weights ``P = softmax(sum_c (G_enh - G_ref))`` per utterance.

    Arguments
    ---------
    g_ref, g_enh : torch.Tensor
        ``dy/dA`` on clean and enhanced input, ``[B, C, *positions]``.
    mask : torch.Tensor
        Bool ``[B, *positions]``, True on valid positions.

    Returns
    -------
    torch.Tensor
        ``[B, *positions]``, detached, zero on padding, summing to 1 per item.

    Example
    -------
    >>> g = torch.zeros(1, 2, 3)
    >>> gradw_weights(g, g, torch.tensor([[True, True, False]]))
    tensor([[0.5000, 0.5000, 0.0000]])
    """
    d = (g_enh - g_ref).detach().sum(dim=1)  # signed: B, *positions
    d = d.masked_fill(~mask, float("-inf"))
    return torch.softmax(d.flatten(1), dim=1).view_as(d)


def equal_weights(mask: Tensor) -> Tensor:
    """Equal-W weights: ``1 / n_b`` on the ``n_b`` valid positions of each utterance.

    Example
    -------
    >>> equal_weights(torch.tensor([[True, True, False, False]]))
    tensor([[0.5000, 0.5000, 0.0000, 0.0000]])
    """
    m = mask.float()
    return m / m.flatten(1).sum(1).view(-1, *([1] * (m.ndim - 1)))


def weighted_l1(a_ref: Tensor, a_enh: Tensor, weights: Tensor) -> Tensor:
    """``(1/B) sum_b sum_{c,pos} P |A_ref - A_enh|``; zero weights drop padding.

    Example
    -------
    >>> a = torch.zeros(1, 2, 3)
    >>> weighted_l1(a, a + 1.0, torch.tensor([[0.5, 0.5, 0.0]]))
    tensor(2.)
    """
    diff = (a_ref - a_enh).abs() * weights.unsqueeze(1)
    # masked_fill rather than relying on 0 * x: padded activations may be huge.
    diff = diff.masked_fill(weights.unsqueeze(1) == 0, 0.0)
    return diff.flatten(1).sum(1).mean()


class GradWLoss(nn.Module):
    """Gradient-weighted (Grad-W) or equal-weighted (Equal-W) activation L1 loss.

    Arguments
    ---------
    speaker_model : nn.Module
        E, ``forward(feats [B, T, F], lengths) -> cosine logits [B, n_spk]``
        (e.g. :class:`SpeakerScorer`). It is frozen and kept in eval mode.
    layer : str, optional
        Dotted name (in ``speaker_model.named_modules()``) of the submodule whose
        output ``[B, C, *positions]`` is A. Default: ``embedding_model.mfa`` for
        ECAPA-TDNN (the layer before pooling), ``embedding_model.trunk.layer4``
        for :class:`~speechbrain_dyncp.lobes.resnet.ResNetSpeaker`.
    weighting : {"grad", "equal"}
        Grad-W softmax weights or uniform Equal-W weights.
    scale : float
        s in ``y = s * cos`` (the AAM scale E was trained with; 30 in
        SpeechBrain's ECAPA recipe, 32 in Grad-W's code). It sets the softmax
        temperature of P.
    temperature : float
        Extension, not in the paper (1 = Grad-W): ``P = softmax(D / temperature)``.
        Per-position gradients shrink with the number of positions, so on
        long frame-level maps P is close to uniform; a temperature below 1
        sharpens it.

    Example
    -------
    >>> from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN, Classifier
    >>> emb = ECAPA_TDNN(16, channels=[8, 8, 8, 8, 24], attention_channels=4, se_channels=4, lin_neurons=6)
    >>> loss_fn = GradWLoss(SpeakerScorer(emb, Classifier(6, out_neurons=3)))
    >>> clean, enh = torch.randn(2, 30, 16), torch.randn(2, 30, 16, requires_grad=True)
    >>> with torch.no_grad():  # validation
    ...     val = loss_fn(clean, enh, torch.tensor([0, 2]), torch.tensor([1.0, 0.6]))
    >>> bool(val > 0), val.requires_grad
    (True, False)
    """

    def __init__(
        self,
        speaker_model: nn.Module,
        layer: Optional[str] = None,
        weighting: str = "grad",
        scale: float = 30.0,
        temperature: float = 1.0,
    ):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        if weighting not in WEIGHTINGS:
            raise ValueError(f"Unknown weighting {weighting!r}; choose from {list(WEIGHTINGS)}.")
        self.speaker_model = speaker_model.eval().requires_grad_(False)
        self.weighting = weighting
        self.scale = float(scale)
        self.layer = layer or self._default_layer(speaker_model)
        modules = dict(speaker_model.named_modules())
        if self.layer not in modules:
            raise ValueError(
                f"GradWLoss: no submodule {self.layer!r} in the speaker model; "
                f"some candidates: {[n for n in modules if n][-8:]}."
            )
        self._tap = None  # per-call state of the forward hook
        modules[self.layer].register_forward_hook(self._hook)

    @staticmethod
    def _default_layer(model: nn.Module) -> str:
        emb = getattr(model, "embedding_model", None)
        if hasattr(emb, "mfa"):
            return "embedding_model.mfa"
        if hasattr(emb, "trunk"):
            return "embedding_model.trunk.layer4"
        raise ValueError("GradWLoss: cannot guess the activation layer of this speaker model; pass layer=.")

    def train(self, mode: bool = True):
        """Keep E in eval mode whatever the Brain asks (BatchNorm stats stay frozen)."""
        super().train(mode)
        self.speaker_model.eval()
        return self

    def _hook(self, module, inputs, output):
        if self._tap is None:
            return None
        if not isinstance(output, Tensor):
            raise TypeError(f"GradWLoss: layer {self.layer!r} must output a tensor, got {type(output).__name__}.")
        self._tap["act"] = output
        # Layers above the tap see a leaf copy, so dy/dA needs no graph below it.
        leaf = output.detach().requires_grad_(True)
        self._tap["leaf"] = leaf
        return leaf

    def activations_and_grads(
        self, feats: Tensor, labels: Tensor, lengths: Optional[Tensor] = None, need_grad: bool = True
    ) -> Tuple[Tensor, Optional[Tensor]]:
        """Tapped map ``A`` (keeps the graph to ``feats``) and detached ``dy/dA``.

        Arguments
        ---------
        feats : torch.Tensor
            Log-Mel features ``[B, T, F]`` (before E's normalisation).
        labels : torch.Tensor
            True speaker class indices ``[B]`` (or ``[B, 1]``) of E's classifier.
        lengths : torch.Tensor, optional
            Relative lengths ``[B]``.
        need_grad : bool
            False skips ``dy/dA`` (Equal-W) and returns None for it.

        Returns
        -------
        tuple of torch.Tensor
            ``A`` and ``G``, both ``[B, C, *positions]``.
        """
        labels = labels.reshape(-1, 1).long().to(feats.device)
        self._tap = {}
        try:
            with torch.enable_grad():
                cos = self.speaker_model(feats, lengths)
                y = self.scale * cos.gather(1, labels)  # true-class score, no margin
                # Items are independent in eval mode, so d(sum y)/dA is per item.
                grad = torch.autograd.grad(y.sum(), self._tap["leaf"])[0].detach() if need_grad else None
            act = self._tap["act"]
        finally:
            self._tap = None
        return act, grad

    def weights(self, clean: Tensor, enhanced: Tensor, labels: Tensor, lengths: Optional[Tensor] = None):
        """``(P, A_ref, A_enh)``: position weights and the two activation maps."""
        need = self.weighting == "grad"
        a_ref, g_ref = self.activations_and_grads(clean.detach(), labels, lengths, need)
        a_enh, g_enh = self.activations_and_grads(enhanced, labels, lengths, need)
        mask = position_mask(a_enh, lengths)
        if need:
            p = gradw_weights(g_ref / self.temperature, g_enh / self.temperature, mask)
        else:
            p = equal_weights(mask)
        return p, a_ref.detach(), a_enh

    def forward(self, clean: Tensor, enhanced: Tensor, labels: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        """Scalar loss; the gradient reaches ``enhanced`` only through ``A_enh``.

        Arguments
        ---------
        clean : torch.Tensor
            Clean log-Mel ``[B, T, F]`` (the reference R).
        enhanced : torch.Tensor
            Enhanced log-Mel ``[B, T, F]`` from the same feature pipeline.
        labels : torch.Tensor
            True speaker indices ``[B]`` in E's classifier.
        lengths : torch.Tensor, optional
            Relative lengths ``[B]``.

        Returns
        -------
        torch.Tensor
            Scalar; detached when called under ``torch.no_grad``.
        """
        if clean.shape != enhanced.shape:
            raise ValueError(f"GradWLoss: clean {tuple(clean.shape)} and enhanced {tuple(enhanced.shape)} differ.")
        grad_enabled = torch.is_grad_enabled()
        p, a_ref, a_enh = self.weights(clean, enhanced, labels, lengths)
        loss = weighted_l1(a_ref, a_enh, p)
        return loss if grad_enabled else loss.detach()
