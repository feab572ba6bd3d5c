"""`WCoRDDistiller`: the training-time module that holds the heads and negative stores and computes the WCoRD terms.

It lives beside the student, never inside it: nothing here reaches `save_pretrained` or `push_to_hub`, but its
state dict goes into every checkpoint so that a resumed run continues exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from .config import DEFAULT_NUM_NEGATIVES, WCoRDConfig
from .critic_gate import CriticGate
from .heads import ProjectionHead, critic_gradient_penalty, critic_lipschitz_constant
from .losses.contrastive import WassersteinContrastiveLoss, contrastive_diagnostics
from .losses.crd import CRDNCELoss
from .losses.memory import FeatureQueue, MemoryBank, negatives_mask
from .losses.sinkhorn import SinkhornLoss, plan_diagnostics

GatherFn = Callable[[torch.Tensor], torch.Tensor]


class WCoRDDistiller(nn.Module):
    r"""Projection heads, negative stores and the two representation terms, for every mapped layer pair l:

        t_l = f_T^l(h_T^l),  s_l = f_S^l(h_S^l)   (embeddings of norm <= 1 in R^feat_dim)
        global = sum_l w_l * L_global(t_l, s_l; negatives from the store of pair l)
        local  = sum_l w_l * L_local(sg(t_l), s_l)
        gradient_penalty = sum_l GP(critic_l)   (only with lipschitz='gradient_penalty')

    In the local term the teacher embeddings are targets (sg = stop-gradient): the teacher heads learn from the
    global term only, so they cannot lower the transport cost by collapsing both point clouds onto one point.

    With `critic_gate`, the global term takes the student's features through a [`CriticGate`]: the student's gradient
    from the term is scaled by a running mean g of the critic's contrastive accuracy, the heads' is not.

    With `bank_content='features'` the stores hold pooled features, and each step's negatives are today's heads
    applied to them: the positive and the negatives come from the same critic (and the teacher's negatives are exact,
    the teacher being frozen). `student_negatives` chooses the teacher-anchored direction's negatives: the bank's
    student side, the batch's other students (fresh), or none (that direction is dropped). With
    `global_objective='nce'` the global term is CRD's ([`CRDNCELoss`], bank positives).

    After each training forward, `diagnostics` holds what the critic knows on that batch (detached, averaged over the
    pairs): per direction the contrastive accuracy and the positive's probability, the measured Lipschitz ratio of
    the critic on the batch (its largest difference quotient over the stated bound), the staleness of the bank (the
    cosine between the batch's stored student embeddings and their fresh ones), the Sinkhorn plan's entropy and
    marginal error, and, with the gate, the g the batch's gradient was scaled by (`critic_gate`).

    Args:
        teacher_dims: width of each pooled teacher feature, one per layer pair.
        student_dims: width of each pooled student feature, one per layer pair.
        config: the [`WCoRDConfig`] with the head, loss and negative settings.
        num_slots: number of memory-bank slots (the dataset size) for `negatives_source='bank'`; None for a queue.
        num_examples: the training set's size when known; caps the queue's length at N - 1.
    """

    def __init__(
        self,
        teacher_dims: Sequence[int],
        student_dims: Sequence[int],
        config: WCoRDConfig,
        num_slots: int | None = None,
        num_examples: int | None = None,
    ) -> None:
        super().__init__()
        if len(teacher_dims) != len(student_dims) or not teacher_dims:
            raise ValueError("Need one teacher and one student feature width per layer pair.")
        num_pairs = len(teacher_dims)
        weights = config.layer_weights or [1.0 / num_pairs] * num_pairs
        if len(weights) != num_pairs:
            raise ValueError(
                f"`layer_weights` has {len(weights)} entries but the layer map has {num_pairs} pairs: give one "
                "weight per pair."
            )
        self.register_buffer("layer_weights", torch.tensor(weights, dtype=torch.float32), persistent=False)
        available = num_slots if num_slots is not None else num_examples
        default_negatives = DEFAULT_NUM_NEGATIVES if available is None else min(DEFAULT_NUM_NEGATIVES, available - 1)
        self.num_negatives = config.num_negatives or max(default_negatives, 1)
        self.compute_global = config.lambda_global > 0
        self.compute_local = config.lambda_local > 0
        self.use_gradient_penalty = config.lipschitz == "gradient_penalty"
        self.label_aware = config.label_aware_negatives
        self.student_negatives = config.student_negatives

        def head(dim: int) -> ProjectionHead:
            return ProjectionHead(
                dim,
                config.feat_dim,
                config.head_type,
                config.lipschitz,
                config.standardize_features,
                config.standardize_statistics,
            )

        self.teacher_heads = nn.ModuleList(head(dim) for dim in teacher_dims)
        self.student_heads = nn.ModuleList(head(dim) for dim in student_dims)
        sphere = config.lipschitz == "none"
        self.stores_features = config.bank_content == "features"
        cold_start = not config.warm_negatives and not self.stores_features
        dtype = getattr(torch, config.bank_dtype)

        def store(feature_dim: int) -> nn.Module:
            dim = feature_dim if self.stores_features else config.feat_dim
            if num_slots is not None:
                return MemoryBank(
                    num_slots, dim, config.bank_momentum, sphere, cold_start, dtype, raw=self.stores_features
                )
            return FeatureQueue(self.num_negatives, dim, sphere, cold_start, dtype)

        self.teacher_stores = nn.ModuleList(store(dim) for dim in teacher_dims)
        self.student_stores = nn.ModuleList(store(dim) for dim in student_dims)
        self.temperature = config.contrast_temperature
        self.uses_nce = config.global_objective == "nce"
        if self.uses_nce and num_slots is None:
            raise ValueError(
                "`global_objective='nce'` (CRD) takes its positives from the memory bank, but the negatives come from "
                "a queue: keep the index column in the dataset, or use `global_objective='infonce'`."
            )
        objective = "infonce" if self.uses_nce else config.global_objective
        self.global_loss = WassersteinContrastiveLoss(config.contrast_temperature, objective)
        self.crd_loss = CRDNCELoss(num_slots, config.contrast_temperature) if self.uses_nce else None
        self.local_loss = SinkhornLoss(
            config.sinkhorn_eps,
            config.sinkhorn_iters,
            config.sinkhorn_tol,
            config.sinkhorn_backend,
            config.sinkhorn_detach_plan,
        )
        self.critic_gate = (
            CriticGate(config.critic_gate_momentum) if config.critic_gate and self.compute_global else None
        )
        self.gather: GatherFn | None = None
        self.gather_local_batch: GatherFn | None = None
        self.diagnostics: dict[str, torch.Tensor] = {}

    @property
    def store_bytes(self) -> int:
        """Memory held by the negative stores (every pair, teacher and student side)."""
        stores = [*self.teacher_stores, *self.student_stores]
        return sum(buffer.numel() * buffer.element_size() for store in stores for buffer in store.buffers())

    @property
    def uses_bank(self) -> bool:
        return isinstance(self.teacher_stores[0], MemoryBank)

    def forward(
        self,
        teacher_features: Sequence[torch.Tensor],
        student_features: Sequence[torch.Tensor],
        index: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Compute the enabled terms and, in training mode, push this batch into the negative stores."""
        if self.uses_bank and index is None:
            raise ValueError(
                "The memory bank needs each example's dataset index, but the batch has none: keep the index column "
                "in the dataset (see `index_column`) or set `negatives_source='queue'`."
            )
        if self.label_aware and labels is None:
            raise ValueError(
                "`label_aware_negatives=True` needs each example's label, but the batch has no `labels`: keep the "
                "label column, or set `label_aware_negatives=False`."
            )
        labels = labels if self.label_aware else None
        device = self.layer_weights.device
        terms: dict[str, torch.Tensor] = {}
        zero = torch.zeros((), device=device)
        global_term, local_term, penalty = zero, zero, zero
        updates = []
        local_pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
        diagnostics: list[dict[str, torch.Tensor]] = []
        if self.compute_global:
            # One draw of K slots per step, shared by every pair's stores (each pair has its own bank).
            slots, excluded = self.teacher_stores[0].draw(self.num_negatives, index, labels)
        with torch.autocast(device_type=device.type, enabled=False):
            for pair, (teacher_feature, student_feature) in enumerate(
                zip(teacher_features, student_features, strict=True)
            ):
                weight = self.layer_weights[pair]
                teacher_feature, student_feature = teacher_feature.detach().float(), student_feature.float()
                teacher_head, student_head = self.teacher_heads[pair], self.student_heads[pair]
                teacher_standardized = teacher_head.standardize(teacher_feature)
                student_standardized = student_head.standardize(student_feature)
                t = teacher_head.embed(teacher_standardized)
                s = student_head.embed(student_standardized)
                pair_diagnostics = {}
                if self.compute_global:
                    gated = (
                        s
                        if self.critic_gate is None
                        else student_head.embed(self.critic_gate.scale(student_standardized))
                    )
                    term, pair_diagnostics = self.global_term(pair, t, gated, slots, excluded, index, labels)
                    global_term = global_term + weight * term
                    if self.training and self.uses_bank and not self.uses_nce:
                        pair_diagnostics.update(self.bank_staleness(pair, s.detach(), index))
                if self.compute_local:
                    local_pairs.append((t.detach(), s))
                if self.use_gradient_penalty and self.training:
                    penalty = penalty + critic_gradient_penalty(
                        teacher_head, student_head, teacher_standardized, student_standardized
                    )
                if self.training:
                    bound = critic_lipschitz_constant(teacher_head, student_head, self.temperature)
                    pair_diagnostics.update(
                        critic_diagnostics(
                            teacher_feature, student_feature.detach(), t.detach(), s.detach(), self.temperature, bound
                        )
                    )
                    diagnostics.append(pair_diagnostics)
                if self.stores_features:
                    updates.append((teacher_feature, student_feature.detach()))
                else:
                    updates.append((t.detach(), s.detach()))
            if self.compute_local:
                local_term, plan_stats = self._local_term(local_pairs)
                if self.training:
                    diagnostics.append(plan_stats)
        if self.compute_global:
            terms["global"] = global_term
        if self.compute_local:
            terms["local"] = local_term
        if self.use_gradient_penalty and self.training:
            terms["gradient_penalty"] = penalty
        if self.training:
            self.diagnostics = average_diagnostics(diagnostics)
            if self.critic_gate is not None:
                self.diagnostics["critic_gate"] = self.critic_gate.value.clone()
                self.critic_gate.update(self.diagnostics, self.gather)
        if self.training and self.compute_global:
            self._update_stores(updates, index, labels)
        return terms

    def global_term(
        self,
        pair: int,
        t: torch.Tensor,
        s: torch.Tensor,
        slots: torch.Tensor | None,
        excluded: torch.Tensor,
        index: torch.Tensor | None,
        labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One pair's global term and its diagnostics (per direction: accuracy and positive probability)."""
        teacher_store, student_store = self.teacher_stores[pair], self.student_stores[pair]
        teacher_negatives = self.stored_embeddings(pair, "teacher", slots)
        diagnostics: dict[str, torch.Tensor] = {}
        if self.uses_nce:
            student_negatives = self.stored_embeddings(pair, "student", slots)
            index = index.to(teacher_store.memory.device).long()
            term, (teacher_scores, student_scores) = self.crd_loss(
                t,
                s,
                (student_store.negatives(index), student_negatives),
                (teacher_store.negatives(index), teacher_negatives),
                excluded if excluded.shape[0] == t.shape[0] else None,
            )
            directions = {
                "teacher": (teacher_scores[:, 0], teacher_scores[:, 1:]),
                "student": (student_scores[:, 0], student_scores[:, 1:]),
            }
        else:
            directions = {}
            if self.student_negatives == "bank":
                student_negatives = self.stored_embeddings(pair, "student", slots)
                directions["teacher"] = self.global_loss.scores(t, s, student_negatives, excluded)
            elif self.student_negatives == "batch":
                in_batch = in_batch_excluded(index, labels, len(s), s.device)
                directions["teacher"] = self.global_loss.scores(t, s, s, in_batch)
            directions["student"] = self.global_loss.scores(s, t, teacher_negatives, excluded)
            term = sum(self.global_loss.loss_from_scores(*scores) for scores in directions.values()) / len(directions)
        if self.training:
            for side, (positive, negative) in directions.items():
                for name, value in contrastive_diagnostics(positive.detach(), negative.detach()).items():
                    diagnostics[f"{side}_anchored_{name}"] = value
        return term, diagnostics

    @torch.no_grad()
    def bank_staleness(self, pair: int, s: torch.Tensor, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """The cosine between the batch's student embeddings and those of the same examples in the bank (as the
        critic sees them today), over the slots already written."""
        student_store = self.student_stores[pair]
        index = index.to(student_store.memory.device).long()
        written = student_store.written.index_select(0, index)
        if not written.any():
            return {}
        own = self.stored_embeddings(pair, "student", index).to(s.device)
        written = written.to(s.device)
        cosine = nn.functional.cosine_similarity(own[written], s[written], dim=1)
        return {"bank_staleness_cosine": cosine.mean()}

    def stored_embeddings(self, pair: int, side: str, slots: torch.Tensor | None) -> torch.Tensor:
        """The vectors stored at `slots` of one side's store, as the critic's embeddings: today's heads applied to
        stored features, or the stored embeddings as they are."""
        heads, stores = (
            (self.teacher_heads, self.teacher_stores)
            if side == "teacher"
            else (self.student_heads, self.student_stores)
        )
        stored = stores[pair].negatives(slots)
        if not self.stores_features:
            return stored
        return heads[pair].embed_stored(stored)

    @torch.no_grad()
    def fit_standardizers(self) -> None:
        """Set every standardiser's statistics to those of the stored features of the whole training set (after
        the warm fill of a feature bank)."""
        if not self.stores_features:
            return
        for heads, stores in ((self.teacher_heads, self.teacher_stores), (self.student_heads, self.student_stores)):
            for head, store in zip(heads, stores, strict=True):
                stored = store.stored()
                if hasattr(head.standardize, "fit") and stored.shape[0] > 1:
                    head.standardize.fit(stored)

    @torch.no_grad()
    def fill(
        self,
        teacher_features: Sequence[torch.Tensor],
        student_features: Sequence[torch.Tensor],
        index: torch.Tensor | None,
        labels: torch.Tensor | None = None,
    ) -> None:
        """Write one batch's embeddings into the negative stores without computing a loss (the warm-up pass that
        gives every memory-bank slot a real embedding before the first step)."""
        updates = []
        with torch.autocast(device_type=self.layer_weights.device.type, enabled=False):
            for pair, (teacher_feature, student_feature) in enumerate(
                zip(teacher_features, student_features, strict=True)
            ):
                if self.stores_features:
                    updates.append((teacher_feature.float(), student_feature.float()))
                    continue
                t = self.teacher_heads[pair](teacher_feature.float())
                updates.append((t, self.student_heads[pair](student_feature.float())))
        self._update_stores(updates, index, labels if self.label_aware else None)

    def _local_term(
        self, pairs: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """sum_l w_l * L_local(sg(t_l), s_l), every pair's Sinkhorn problem solved in one batched call, and the
        plans' diagnostics."""
        if self.gather_local_batch is not None:
            pairs = [(self.gather_local_batch(t), self.gather_local_batch(s)) for t, s in pairs]
        teacher = torch.stack([t for t, _ in pairs])
        student = torch.stack([s for _, s in pairs])
        values, plan = self.local_loss.solve(teacher, student)
        return (self.layer_weights * values).sum(), plan_diagnostics(plan) if plan is not None else {}

    def _update_stores(
        self,
        updates: list[tuple[torch.Tensor, torch.Tensor]],
        index: torch.Tensor | None,
        labels: torch.Tensor | None,
    ) -> None:
        gather = self.gather or (lambda tensor: tensor)
        device = self.layer_weights.device
        if index is not None:
            index = gather(index.to(device))
        if labels is not None:
            labels = gather(labels.to(device))
        for pair, (t, s) in enumerate(updates):
            self.teacher_stores[pair].update(index, gather(t), labels)
            self.student_stores[pair].update(index, gather(s), labels)


def in_batch_excluded(
    index: torch.Tensor | None, labels: torch.Tensor | None, rows: int, device: torch.device
) -> torch.Tensor:
    """`(n, n)` mask of the batch's students that must not serve as negatives for each anchor: its own (the positive),
    and, as [`negatives_mask`] leaves out of the stores' entries, another row of the same example (same dataset index)
    and, when labels are given, rows of the anchor's class."""
    own = torch.eye(rows, dtype=torch.bool, device=device)
    if index is None and labels is None:
        return own
    index = index.to(device).long() if index is not None else None
    labels = labels.to(device) if labels is not None else None
    every_row = torch.ones(rows, dtype=torch.bool, device=device)
    return own | negatives_mask(every_row, index, labels, index, labels)


@torch.no_grad()
def critic_diagnostics(
    teacher_features: torch.Tensor,
    student_features: torch.Tensor,
    t: torch.Tensor,
    s: torch.Tensor,
    temperature: float,
    bound: float,
) -> dict[str, torch.Tensor]:
    r"""The critic's measured Lipschitz ratio on a batch of n >= 2: the largest difference quotient of
    g(x, y) = <t(x), s(y)> / tau over the batch's pairs of examples, over the stated bound L (<= 1 while the constraint
    holds; not reported for an unconstrained critic, whose bound is infinite):

        critic_lipschitz_ratio = max_{i != j} |g(x_i, y_i) - g(x_j, y_j)| / ||(x_i, y_i) - (x_j, y_j)|| / L
    """
    if t.shape[0] < 2 or not math.isfinite(bound):
        return {}
    critic = (t * s).sum(dim=1) / temperature
    squared = (
        torch.cdist(teacher_features, teacher_features) ** 2 + torch.cdist(student_features, student_features) ** 2
    )
    quotient = (critic[:, None] - critic[None, :]).abs() / squared.sqrt().clamp_min(1e-12)
    quotient = quotient.masked_fill(torch.eye(t.shape[0], dtype=torch.bool, device=t.device), 0.0)
    return {"critic_lipschitz_ratio": quotient.max() / bound}


def average_diagnostics(entries: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Each diagnostic's mean over the entries (layer pairs) that hold it."""
    totals: dict[str, list[torch.Tensor]] = {}
    for entry in entries:
        for name, value in entry.items():
            totals.setdefault(name, []).append(value.float())
    return {name: torch.stack(values).mean() for name, values in totals.items()}
