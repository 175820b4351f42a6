"""A linear probe: what a frozen backbone already says about a step, before any training.

Chapter 5 of the course. A PRM trains its backbone's layers together with the value
head. The baseline that shows what that training buys is a *linear probe*
(Alain and Bengio, "Understanding intermediate layers using linear classifier
probes", arXiv:1610.01644): keep the backbone frozen, read its hidden state at
every step end (exactly what the value head reads) and fit only a logistic
regression on top. If the probe already separated right from wrong steps, training
the layers would be wasted; the gap between the probe and the trained PRM is what
the training learned.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ..batching import BatchPolicy, gather_steps, plan_batches


@torch.no_grad()  # not inference_mode: the features feed a fit that needs autograd
def step_features(model: Any, samples: Sequence[Any], policy: BatchPolicy | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, H) hidden states of ``model``'s backbone at every scored step end of ``samples`` (fp32, CPU), and
    the (N,) step targets in [0, 1], steps in the samples' order. Only the backbone runs: no value head, no reader."""
    encoded = model.encode([s.as_item() for s in samples], labels=[s.targets for s in samples])
    features: list[torch.Tensor | None] = [None] * len(encoded)
    was_training = model.training
    model.eval()
    try:
        for idx in plan_batches([len(e) for e in encoded], policy or BatchPolicy.for_device(model.device)):
            batch = model.collate([encoded[i] for i in idx])
            at_steps = gather_steps(model.hidden_states(batch), batch.step_positions).float().cpu()
            for row, i in enumerate(idx):
                features[i] = at_steps[row, : encoded[i].n_scored]
    finally:
        model.train(was_training)
    targets = [t for e in encoded for t in e.labels]
    return torch.cat([f for f in features if f is not None]), torch.tensor(targets, dtype=torch.float32)


class LinearProbe(nn.Module):
    """Logistic regression on standardised features: P(step correct) = sigmoid(w · (x - mean) / std + b)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.linear = nn.Linear(len(mean), 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits (N,)."""
        return self.linear((features - self.mean) / self.std).squeeze(-1)

    @torch.no_grad()
    def probabilities(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self(features))


def fit_linear_probe(features: torch.Tensor, targets: torch.Tensor, l2: float = 1e-3, max_iter: int = 200) -> LinearProbe:
    """Fit a ``LinearProbe`` by full-batch L-BFGS on BCE plus ``l2`` times the squared weights.

    Full-batch and zero-initialised, so the fit is deterministic: the same features give the same probe.
    """
    if features.ndim != 2 or len(features) != len(targets):
        raise ValueError(f"features must be (N, H) with one target each; got {tuple(features.shape)} and {len(targets)}")
    if len(targets) == 0 or targets.min() == targets.max():
        raise ValueError("a probe needs both right and wrong steps among its targets")
    x, y = features.float(), targets.float()
    probe = LinearProbe(x.mean(dim=0), x.std(dim=0).clamp_min(1e-6))
    optimizer = torch.optim.LBFGS(probe.linear.parameters(), max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(probe(x), y) + l2 * probe.linear.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return probe
