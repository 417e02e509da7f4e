"""Sub-centre additive angular margin softmax with an inter-top-k penalty.

Split the SpeechBrain way: :class:`SubCenterClassifier` is a module that
outputs cosine logits ``[B, 1, n_classes]`` (the max over K sub-centres per
class), and :class:`SubCenterAAMLoss` is the ``compute_cost`` that turns them
into ArcFace logits and a cross-entropy (``loss(outputs, targets, length)``,
as ``LogSoftmaxWrapper(AdditiveAngularMargin)``). SpeechBrain's own
``AdditiveAngularMargin`` has neither sub-centres nor the top-k penalty.

* target: ``cos(theta + m)``; where ``cos <= cos(pi - m)`` (theta + m would
  pass pi) it falls back to ``cos - m * sin(pi - m)`` so the logit keeps
  decreasing with theta;
* the k hardest non-target classes: ``cos(theta - m')`` (inter-top-k
  penalty, m' = ``topk_margin``);
* everything times ``scale``, then cross-entropy.

:class:`MarginScheduler` ramps the margin along the log-shaped curve of the
LAP code and scales the top-k margin with it; it is a checkpoint recoverable.

Authors
 * speechbrain-dyncp contributors
"""

import math
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from speechbrain.utils.checkpoints import mark_as_loader, mark_as_saver, register_checkpoint_hooks
from torch import nn


class SubCenterClassifier(nn.Module):
    """Cosine similarity to the closest of K sub-centres of each class.

    Arguments
    ---------
    input_size : int
        Embedding size.
    out_neurons : int
        Number of classes.
    n_subcenters : int
        Sub-centres K per class (3 in LAP).

    Example
    -------
    >>> clf = SubCenterClassifier(input_size=8, out_neurons=5, n_subcenters=3)
    >>> cos = clf(torch.randn(4, 1, 8))
    >>> cos.shape, bool((cos.abs() <= 1).all())
    (torch.Size([4, 1, 5]), True)
    """

    def __init__(self, input_size: int, out_neurons: int, n_subcenters: int = 3):
        super().__init__()
        self.n_subcenters = n_subcenters
        self.weight = nn.Parameter(torch.empty(out_neurons, n_subcenters, input_size))
        nn.init.xavier_uniform_(self.weight.view(out_neurons * n_subcenters, input_size))

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        """Cosine logits.

        Arguments
        ---------
        emb : torch.Tensor
            Embeddings ``[B, 1, E]`` or ``[B, E]``.

        Returns
        -------
        torch.Tensor
            ``[B, 1, n_classes]`` in [-1, 1].
        """
        x = F.normalize(emb.reshape(emb.shape[0], -1), dim=-1)
        w = F.normalize(self.weight, dim=-1)
        cos = torch.einsum("be,cke->bck", x, w).amax(dim=-1)
        return cos.unsqueeze(1)


class SubCenterAAMLoss(nn.Module):
    """ArcFace loss on cosine logits with an optional inter-top-k penalty.

    Arguments
    ---------
    margin : float
        Additive angular margin m (radians); changed by :class:`MarginScheduler`.
    scale : float
        Logit scale s.
    topk : int
        Hardest non-target classes penalised (0 disables).
    topk_margin : float
        Their angular margin m'.

    Example
    -------
    >>> loss = SubCenterAAMLoss(margin=0.2, scale=30.0, topk=2, topk_margin=0.06)
    >>> cos = torch.tensor([[[0.9, 0.1, 0.3, -0.2]]])
    >>> logits = loss.logits(cos, torch.tensor([[0]]))
    >>> round(float(logits[0, 0]), 3) == round(30 * math.cos(math.acos(0.9) + 0.2), 3)
    True
    >>> float(loss(cos, torch.tensor([[0]]))) > 0
    True
    """

    def __init__(self, margin: float = 0.2, scale: float = 30.0, topk: int = 5, topk_margin: float = 0.06):
        super().__init__()
        self.margin, self.scale, self.topk, self.topk_margin = margin, scale, topk, topk_margin

    def logits(self, cosines: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Scaled margin logits ``[B, n_classes]``.

        Arguments
        ---------
        cosines : torch.Tensor
            ``[B, 1, C]`` or ``[B, C]``.
        targets : torch.Tensor
            Class indices ``[B, 1]`` or ``[B]``.

        Returns
        -------
        torch.Tensor
            ``[B, C]``.
        """
        cos = cosines.reshape(cosines.shape[0], -1).clamp(-1.0, 1.0)
        tgt = targets.reshape(-1).long()
        onehot = F.one_hot(tgt, cos.shape[-1]).bool()
        sin = (1.0 - cos**2).clamp(min=0.0).sqrt()
        m = self.margin
        phi = cos * math.cos(m) - sin * math.sin(m)  # cos(theta + m)
        phi = torch.where(cos > math.cos(math.pi - m), phi, cos - m * math.sin(math.pi - m))
        out = torch.where(onehot, phi, cos)
        if self.topk > 0 and self.topk_margin != 0:
            k = min(self.topk, cos.shape[-1] - 1)
            hard = cos.masked_fill(onehot, float("-inf")).topk(k, dim=-1).indices
            mp = self.topk_margin
            pen = cos * math.cos(mp) + sin * math.sin(mp)  # cos(theta - m')
            out = out.scatter(1, hard, pen.gather(1, hard))
        return self.scale * out

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor, length: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Mean cross-entropy over the batch (``length`` is accepted and unused).

        Arguments
        ---------
        outputs : torch.Tensor
            Cosine logits ``[B, 1, C]``.
        targets : torch.Tensor
            ``[B, 1]`` class indices.
        length : torch.Tensor, optional
            SpeechBrain's relative lengths (one label per utterance: unused).

        Returns
        -------
        torch.Tensor
            Scalar loss.
        """
        return F.cross_entropy(self.logits(outputs, targets), targets.reshape(-1).long())


@register_checkpoint_hooks
class MarginScheduler:
    """Per-iteration margin ramp of the LAP code, saved with the checkpoints.

    ``m_i = max_margin * (log u_i - log u_0) / (log u_{N-1} - log u_0)`` with
    ``u`` linearly spaced over ``[start, 1]`` across ``ramp_steps`` steps, then
    ``max_margin``. The top-k margin follows ``topk_margin * m_i / max_margin``.

    Arguments
    ---------
    loss : SubCenterAAMLoss
        Loss whose ``margin``/``topk_margin`` are set.
    max_margin : float
        Margin at the end of the ramp.
    ramp_steps : int
        Steps of the ramp (e.g. 20 epochs x iterations per epoch); 0 = constant.
    topk_margin : float, optional
        Top-k margin at ``max_margin`` (default: the loss's current value).
    start : float
        First point of the linear grid ``u``.

    Example
    -------
    >>> loss = SubCenterAAMLoss(margin=0.0, topk_margin=0.06)
    >>> sched = MarginScheduler(loss, max_margin=0.3, ramp_steps=5)
    >>> [round(sched.step(), 3) for _ in range(7)]
    [0.0, 0.222, 0.261, 0.284, 0.3, 0.3, 0.3]
    >>> round(loss.topk_margin, 3)
    0.06
    """

    def __init__(self, loss: SubCenterAAMLoss, max_margin: float = 0.3, ramp_steps: int = 0, topk_margin: Optional[float] = None, start: float = 5e-3):
        self.loss, self.max_margin, self.ramp_steps, self.start = loss, max_margin, int(ramp_steps), start
        self.max_topk_margin = loss.topk_margin if topk_margin is None else topk_margin
        self.n_steps = 0
        self._apply(self.margin_at(0) if self.ramp_steps > 0 else max_margin)

    def margin_at(self, i: int) -> float:
        """Margin of step ``i`` (0-based).

        Arguments
        ---------
        i : int
            Step index.

        Returns
        -------
        float
        """
        if self.ramp_steps <= 1 or i >= self.ramp_steps - 1:
            return self.max_margin
        lo = np.log(self.start)
        u = self.start + (1.0 - self.start) * i / (self.ramp_steps - 1)
        return float(self.max_margin * (np.log(u) - lo) / (0.0 - lo))

    def _apply(self, m: float):
        self.loss.margin = m
        scale = m / self.max_margin if self.max_margin else 0.0
        self.loss.topk_margin = self.max_topk_margin * scale

    def step(self) -> float:
        """Set the margin of the current step, advance, and return it.

        Returns
        -------
        float
        """
        m = self.margin_at(self.n_steps)
        self._apply(m)
        self.n_steps += 1
        return m

    @mark_as_saver
    def _save(self, path):
        torch.save({"n_steps": self.n_steps, "ramp_steps": self.ramp_steps}, path)

    @mark_as_loader
    def _load(self, path, end_of_epoch):
        state = torch.load(path, weights_only=True)
        self.n_steps, self.ramp_steps = int(state["n_steps"]), int(state["ramp_steps"])
        self._apply(self.margin_at(max(0, self.n_steps - 1)))
