"""Conservation diagnostics: how much relevance each layer passes on and what it absorbs.

With conservative rules, Σ_i R_i = Σ_j R_j at every layer (Bach et al. 2015, Eq. 2); biases,
stabilisers and the β-term of αβ make layers absorb (or inject) relevance. The report lists,
per layer that applies a rule, the relevance it received and passed on, summed per sample
and target. A layer fed by a DenseNet threshold ReLU counts the off units' constant as part of
its bias (see :class:`~chexplain.lrp.ops.core.ThresholdReLUOp`), so what that constant is worth is in
the layer's ``absorbed``, and the input relevance plus all layers' ``absorbed`` is the logit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LayerRelevance:
    """Relevance sums (N, T) at one layer: ``relevance_out`` reached its outputs, ``relevance_in``
    went on to its inputs; ``absorbed`` is the difference (biases, stabilisers)."""

    name: str
    path: str
    kind: str
    rule: str
    relevance_out: torch.Tensor
    relevance_in: torch.Tensor

    @property
    def absorbed(self) -> torch.Tensor:
        return self.relevance_out - self.relevance_in


@dataclass
class ConservationReport:
    """Per-layer sums, the explained logits (N, T) and the input relevance sums (N, T)."""

    layers: list[LayerRelevance]
    logits: torch.Tensor
    input_relevance: torch.Tensor

    @property
    def absorbed(self) -> torch.Tensor:
        """Total relevance absorbed by all layers, (N, T): logits − input relevance."""
        return self.logits - self.input_relevance

    def table(self, sample: int = 0, target: int = 0) -> str:
        """A text table of one sample and target, from the output layer down to the input."""
        lines = [f"{'layer':48s} {'rule':34s} {'R out':>12s} {'R in':>12s} {'absorbed':>12s}"]
        for rec in self.layers:
            o, i = float(rec.relevance_out[sample, target]), float(rec.relevance_in[sample, target])
            lines.append(f"{(rec.path or rec.name)[:48]:48s} {rec.rule[:34]:34s} {o:12.5g} {i:12.5g} {o - i:12.5g}")
        lo, ri = float(self.logits[sample, target]), float(self.input_relevance[sample, target])
        lines.append(f"{'logit -> input':48s} {'':34s} {lo:12.5g} {ri:12.5g} {lo - ri:12.5g}")
        return "\n".join(lines)
