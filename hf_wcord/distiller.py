"""`WCoRDDistiller`: the training-time module that holds the heads and negative stores and computes the WCoRD terms.

It lives beside the student, never inside it: nothing here reaches `save_pretrained` or `push_to_hub`, but its
state dict goes into every checkpoint so that a resumed run continues exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from .config import DEFAULT_NUM_NEGATIVES, WCoRDConfig
from .heads import ProjectionHead, critic_gradient_penalty
from .losses.contrastive import WassersteinContrastiveLoss
from .losses.memory import FeatureQueue, MemoryBank
from .losses.sinkhorn import SinkhornLoss

GatherFn = Callable[[torch.Tensor], torch.Tensor]


class WCoRDDistiller(nn.Module):
    r"""Projection heads, negative stores and the two representation terms, for every mapped layer pair l:

        t_l = f_T^l(h_T^l),  s_l = f_S^l(h_S^l)   (embeddings of norm <= 1 in R^feat_dim)
        global = sum_l w_l * L_global(t_l, s_l; negatives from the store of pair l)
        local  = sum_l w_l * L_local(sg(t_l), s_l)
        gradient_penalty = sum_l GP(critic_l)   (only with lipschitz='gradient_penalty')

    In the local term the teacher embeddings are targets (sg = stop-gradient): the teacher heads learn from the
    global term only, so they cannot lower the transport cost by collapsing both point clouds onto one point.

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

        def head(dim: int) -> ProjectionHead:
            return ProjectionHead(
                dim, config.feat_dim, config.head_type, config.lipschitz, config.standardize_features
            )

        self.teacher_heads = nn.ModuleList(head(dim) for dim in teacher_dims)
        self.student_heads = nn.ModuleList(head(dim) for dim in student_dims)
        sphere = config.lipschitz == "none"
        cold_start = not config.warm_negatives

        dtype = getattr(torch, config.bank_dtype)

        def store() -> nn.Module:
            if num_slots is not None:
                return MemoryBank(num_slots, config.feat_dim, config.bank_momentum, sphere, cold_start, dtype)
            return FeatureQueue(self.num_negatives, config.feat_dim, sphere, cold_start, dtype)

        self.teacher_stores = nn.ModuleList(store() for _ in range(num_pairs))
        self.student_stores = nn.ModuleList(store() for _ in range(num_pairs))
        self.global_loss = WassersteinContrastiveLoss(config.contrast_temperature, config.global_objective)
        self.local_loss = SinkhornLoss(
            config.sinkhorn_eps,
            config.sinkhorn_iters,
            config.sinkhorn_tol,
            config.sinkhorn_backend,
            config.sinkhorn_detach_plan,
        )
        self.gather: GatherFn | None = None
        self.gather_local_batch: GatherFn | None = None

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
        if self.compute_global:
            # One draw of K slots per step, shared by every pair's stores (each pair has its own bank).
            slots, excluded = self.teacher_stores[0].draw(self.num_negatives, index, labels)
        with torch.autocast(device_type=device.type, enabled=False):
            for pair, (teacher_feature, student_feature) in enumerate(
                zip(teacher_features, student_features, strict=True)
            ):
                weight = self.layer_weights[pair]
                teacher_head, student_head = self.teacher_heads[pair], self.student_heads[pair]
                teacher_standardized = teacher_head.standardize(teacher_feature.detach().float())
                student_standardized = student_head.standardize(student_feature.float())
                t = teacher_head.embed(teacher_standardized)
                s = student_head.embed(student_standardized)
                if self.compute_global:
                    teacher_negatives = self.teacher_stores[pair].negatives(slots)
                    student_negatives = self.student_stores[pair].negatives(slots)
                    global_term = global_term + weight * self.global_loss(
                        t, s, teacher_negatives, student_negatives, excluded
                    )
                if self.compute_local:
                    local_pairs.append((t.detach(), s))
                if self.use_gradient_penalty and self.training:
                    penalty = penalty + critic_gradient_penalty(
                        teacher_head, student_head, teacher_standardized, student_standardized
                    )
                updates.append((t.detach(), s.detach()))
            if self.compute_local:
                local_term = self._local_term(local_pairs)
        if self.compute_global:
            terms["global"] = global_term
        if self.compute_local:
            terms["local"] = local_term
        if self.use_gradient_penalty and self.training:
            terms["gradient_penalty"] = penalty
        if self.training and self.compute_global:
            self._update_stores(updates, index, labels)
        return terms

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
                t = self.teacher_heads[pair](teacher_feature.float())
                updates.append((t, self.student_heads[pair](student_feature.float())))
        self._update_stores(updates, index, labels if self.label_aware else None)

    def _local_term(self, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """sum_l w_l * L_local(sg(t_l), s_l), every pair's Sinkhorn problem solved in one batched call."""
        if self.gather_local_batch is not None:
            pairs = [(self.gather_local_batch(t), self.gather_local_batch(s)) for t, s in pairs]
        teacher = torch.stack([t for t, _ in pairs])
        student = torch.stack([s for _, s in pairs])
        return (self.layer_weights * self.local_loss(teacher, student)).sum()

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
