"""Baseline objectives for distilling a sentence encoder without labels, on the pooled sentence embeddings t_i
(teacher, frozen) and s_i (student) of a batch: MSE as sentence-transformers' distillation uses it, cosine, and
DistilCSE's InfoNCE against a queue of teacher embeddings. Each is computed in fp32; a learned linear map W
(identity when the widths match) carries the student's embedding to the teacher's width where they differ."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

EMBEDDING_OBJECTIVES = ("mse", "cosine", "distilcse")


def student_to_teacher_map(student_dim: int, teacher_dim: int) -> nn.Module:
    """W: R^student_dim -> R^teacher_dim, a linear layer where the widths differ (saved with the student as a
    sentence-transformers Dense module when asked), else the identity."""
    return nn.Identity() if student_dim == teacher_dim else nn.Linear(student_dim, teacher_dim)


def mse_embedding_loss(mapped: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    r"""MSE = 1/(n d_T) sum_i ||W s_i - t_i||^2 (sentence-transformers' `MSELoss` on the teacher's embeddings)."""
    return F.mse_loss(mapped.float(), teacher.float())


def cosine_embedding_loss(mapped: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    r"""COS = 1/n sum_i (1 - cos(W s_i, t_i))."""
    return (1.0 - F.cosine_similarity(mapped.float(), teacher.float(), dim=-1)).mean()


class TeacherQueueInfoNCE(nn.Module):
    r"""DistilCSE's contrastive distillation: each student embedding must pick out its own teacher embedding among the
    batch's and a FIFO queue Q of earlier teacher embeddings (all L2-normalised, temperature tau):

        DCSE = -1/n sum_i log( exp(<u_i, v_i> / tau) / sum_{v in {v_1..v_n} u Q} exp(<u_i, v> / tau) ),
        u_i = normalize(W s_i),  v_i = normalize(t_i)

    After each training call the batch's teacher embeddings enter the queue (oldest out; with several processes, the
    global batch's, through `gather`, so that every process holds the same queue). The queue holds only the frozen
    teacher's embeddings, so none is stale.

    Args:
        teacher_dim: width of the teacher's embeddings.
        size: queue length (DistilCSE: 65,536; capped by the caller at the number of training rows).
        temperature: tau.
    """

    def __init__(self, teacher_dim: int, size: int, temperature: float) -> None:
        super().__init__()
        self.temperature = temperature
        self.register_buffer("queue", torch.zeros(size, teacher_dim))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))
        self.register_buffer("position", torch.zeros((), dtype=torch.long))
        self.gather: Callable[[torch.Tensor], torch.Tensor] | None = None

    def forward(self, mapped: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        u = F.normalize(mapped.float(), dim=-1)
        v = F.normalize(teacher.float().detach(), dim=-1)
        candidates = torch.cat([v, self.queue[: int(self.filled)]])
        logits = u @ candidates.T / self.temperature
        loss = F.cross_entropy(logits, torch.arange(u.shape[0], device=u.device))
        if self.training:
            self._enqueue(v)
        return loss

    @torch.no_grad()
    def _enqueue(self, embeddings: torch.Tensor) -> None:
        if self.gather is not None:
            embeddings = self.gather(embeddings)
        size = self.queue.shape[0]
        embeddings = embeddings[-size:]
        rows = (self.position + torch.arange(embeddings.shape[0], device=embeddings.device)) % size
        self.queue[rows] = embeddings
        self.position.copy_((self.position + embeddings.shape[0]) % size)
        self.filled.copy_(torch.clamp(self.filled + embeddings.shape[0], max=size))


class EmbeddingObjectives(nn.Module):
    """The named baseline terms on the sentence embeddings, with the student-to-teacher map they share.

    Args:
        names: which of `mse`, `cosine`, `distilcse` to compute.
        teacher_dim, student_dim: the embeddings' widths.
        queue_size, temperature: DistilCSE's queue length and tau.
        normalize_teacher: compare with the L2-normalised teacher embeddings (a teacher whose sentence-transformers
            pipeline ends in `Normalize`, as all-mpnet-base-v2's does).
    """

    def __init__(
        self,
        names: list[str],
        teacher_dim: int,
        student_dim: int,
        queue_size: int,
        temperature: float,
        normalize_teacher: bool,
    ) -> None:
        super().__init__()
        unknown = [name for name in names if name not in EMBEDDING_OBJECTIVES]
        if unknown:
            raise ValueError(
                f"Unknown embedding objective(s) {unknown}: choose among {', '.join(EMBEDDING_OBJECTIVES)}."
            )
        self.names = list(names)
        self.normalize_teacher = normalize_teacher
        self.to_teacher = student_to_teacher_map(student_dim, teacher_dim) if names else nn.Identity()
        self.distilcse = TeacherQueueInfoNCE(teacher_dim, queue_size, temperature) if "distilcse" in names else None

    def forward(self, teacher: torch.Tensor, student: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.autocast(device_type=student.device.type, enabled=False):
            teacher = teacher.detach().float()
            if self.normalize_teacher:
                teacher = F.normalize(teacher, dim=-1)
            mapped = self.to_teacher(student.float())
            terms = {}
            if "mse" in self.names:
                terms["mse"] = mse_embedding_loss(mapped, teacher)
            if "cosine" in self.names:
                terms["cosine"] = cosine_embedding_loss(mapped, teacher)
            if self.distilcse is not None:
                terms["distilcse"] = self.distilcse(mapped, teacher)
        return terms
