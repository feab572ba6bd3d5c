"""Critic warm-up: train the projection heads alone on the filled feature bank before the student's first step, so
that the global term's gradient reaches the student from a critic that already tells positives from negatives
(an untrained critic's gradient is plain alignment onto random projections)."""

from __future__ import annotations

import torch
from transformers.utils import logging

from .distiller import WCoRDDistiller, average_diagnostics

logger = logging.get_logger(__name__)


def critic_loss(distiller: WCoRDDistiller, index: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    r"""The global term on the stored features of the examples `index` (positives: each example's teacher and student
    features, both from the bank; negatives: K drawn slots), with today's heads, summed over the pairs with their
    weights, and its diagnostics:

        L = sum_l w_l * L_global(f_T(M_T^l[index]), f_S(M_S^l[index]); negatives f(M^l[slots]))
    """
    first = distiller.teacher_stores[0]
    labels = first.labels.index_select(0, index) if distiller.label_aware else None
    slots, excluded = first.draw(distiller.num_negatives, index, labels)
    total = torch.zeros((), device=index.device)
    diagnostics = []
    for pair in range(len(distiller.teacher_stores)):
        t = distiller.stored_embeddings(pair, "teacher", index)
        s = distiller.stored_embeddings(pair, "student", index)
        term, pair_diagnostics = distiller.global_term(pair, t, s, slots, excluded, index, labels)
        total = total + distiller.layer_weights[pair] * term
        diagnostics.append(pair_diagnostics)
    return total, average_diagnostics(diagnostics)


def can_warm_up_critic(distiller: WCoRDDistiller) -> bool:
    """Whether the critic can be warmed up: a global term over a memory bank of features."""
    return distiller.compute_global and distiller.uses_bank and distiller.stores_features and not distiller.uses_nce


def warm_up_critic(
    distiller: WCoRDDistiller, steps: int, batch_size: int, learning_rate: float, seed: int
) -> dict[str, float]:
    """Train the heads alone for `steps` Adam steps on batches of `batch_size` examples drawn from the bank (with a
    generator seeded by `seed`: every process draws the same batches and ends with the same heads); return the
    critic's diagnostics on the last batch, before its update (see [`WCoRDDistiller`])."""
    bank = distiller.teacher_stores[0]
    device = bank.memory.device
    written = bank.written.nonzero().flatten()
    generator = torch.Generator(device="cpu").manual_seed(seed)
    parameters = [p for p in distiller.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=learning_rate)
    was_training = distiller.training
    distiller.train()
    report: dict[str, torch.Tensor] = {}
    for _ in range(steps):
        draw = torch.randint(0, written.numel(), (batch_size,), generator=generator).to(device)
        loss, report = critic_loss(distiller, written.index_select(0, draw))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    distiller.zero_grad(set_to_none=True)
    distiller.train(was_training)
    return {name: value.item() for name, value in report.items()}
