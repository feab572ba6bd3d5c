"""Stores of past embeddings that supply the negatives of the global contrastive term.

Both stores hand out only real embeddings: a slot or queue entry that was never written is masked out of the
negatives, and with `cold_start=True` they reproduce v0.1's stores, which start as random unit vectors used as
negatives (an ablation). Both can record each entry's label for label-aware negatives (CoDIR): entries of the
anchor's own class are then masked too.
"""

from __future__ import annotations

import torch
from torch import nn

from ..heads import project_to_ball


def _random_unit_rows(rows: int, dim: int) -> torch.Tensor:
    return nn.functional.normalize(torch.randn(rows, dim), dim=1)


def _renormalize(vectors: torch.Tensor, sphere: bool) -> torch.Tensor:
    return nn.functional.normalize(vectors, dim=1) if sphere else project_to_ball(vectors)


def negatives_mask(
    valid: torch.Tensor,
    entry_index: torch.Tensor | None,
    entry_labels: torch.Tensor | None,
    index: torch.Tensor | None,
    labels: torch.Tensor | None,
) -> torch.Tensor:
    """`(n, K)` mask of the entries that must not serve as negatives for each of n anchors: never-written entries,
    the anchor's own entry (same dataset index) and, when labels are given, entries of the anchor's class (an anchor
    without a class, label < 0, leaves out none by class)."""
    rows = index.shape[0] if index is not None else labels.shape[0] if labels is not None else 1
    excluded = (~valid)[None, :].expand(rows, -1)
    if index is not None and entry_index is not None:
        excluded = excluded | (entry_index[None, :] == index.to(entry_index.device)[:, None])
    if labels is not None and entry_labels is not None:
        labels = labels.to(entry_labels.device)
        same_class = (entry_labels[None, :] == labels[:, None]) & (labels >= 0)[:, None]
        excluded = excluded | same_class
    return excluded


class MemoryBank(nn.Module):
    r"""CRD-style memory bank: one slot per training example, keyed by the example's dataset index.

    A slot's first write stores the embedding as it is; later writes move it towards the new embedding with
    momentum m:

        bank[i] <- renorm(m * bank[i] + (1 - m) * v_i)

    (renorm: onto the unit sphere for unit embeddings, `sphere=True`; onto the unit ball otherwise). With `raw=True`
    the bank stores pooled features instead (before the heads): each write replaces the slot, with no momentum and no
    renormalisation, and the reader projects them with today's heads. Features are stored relative to the mean of the
    first batch written (`offset`), so that a float16 bank rounds the part that varies between examples and not the
    large common component of pooled features. Negatives are K
    slots drawn uniformly with replacement, shared by the whole batch (one matmul against them), with a mask that
    flags the draws that hit an anchor's own slot, a slot never written, or (label-aware) a slot of the anchor's
    class. The slots are stored in `dtype` (float16 halves the bank's memory); updates and reads are in fp32.
    """

    def __init__(
        self,
        num_slots: int,
        dim: int,
        momentum: float = 0.5,
        sphere: bool = True,
        cold_start: bool = False,
        dtype: torch.dtype = torch.float32,
        raw: bool = False,
    ) -> None:
        super().__init__()
        self.momentum = 0.0 if raw else momentum
        self.sphere = sphere
        self.raw = raw
        initial = _random_unit_rows(num_slots, dim) if cold_start else torch.zeros(num_slots, dim)
        self.register_buffer("memory", initial.to(dtype))
        self.register_buffer("written", torch.full((num_slots,), cold_start))
        self.register_buffer("labels", torch.full((num_slots,), -1, dtype=torch.long))
        self.register_buffer("offset", torch.zeros(dim))

    @property
    def num_slots(self) -> int:
        return self.memory.shape[0]

    def draw(
        self, num_negatives: int, index: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw K slots; return `(slots (K,), excluded (n, K))` for anchors with dataset indices `index` (and
        `labels`, for label-aware negatives)."""
        # Sorted, so that gathering the slots reads the bank in order (several times faster than random order).
        slots = torch.randint(0, self.num_slots, (num_negatives,), device=self.memory.device).sort().values
        # index_select: boolean advanced indexing of K slots is about a hundred times slower on CPU.
        slot_labels = self.labels.index_select(0, slots) if labels is not None else None
        return slots, negatives_mask(self.written.index_select(0, slots), slots, slot_labels, index, labels)

    def negatives(self, slots: torch.Tensor) -> torch.Tensor:
        """The stored embeddings `(K, d)` at the drawn `slots`, in fp32 (a new tensor)."""
        return self.memory.index_select(0, slots).float().add_(self.offset)

    @property
    def fraction_written(self) -> float:
        return self.written.float().mean().item()

    def stored(self) -> torch.Tensor:
        """Every written slot's vector `(W, d)`, in fp32."""
        return self.memory[self.written].float() + self.offset

    @torch.no_grad()
    def update(self, index: torch.Tensor, embeddings: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        """Write (first time) or momentum-update the slots of `index` with the (detached) `embeddings`."""
        index = index.to(self.memory.device).long()
        if index.numel() and (index.min() < 0 or index.max() >= self.num_slots):
            raise IndexError(
                f"Dataset index out of range for a memory bank of {self.num_slots} slots "
                f"(got {int(index.min())}..{int(index.max())}): the index column must hold 0..N-1."
            )
        embeddings = embeddings.detach().float()
        if self.raw:
            if not self.written.any():
                self.offset.copy_(embeddings.mean(dim=0))
            self.memory.index_copy_(0, index, (embeddings - self.offset).to(self.memory.dtype))
        else:
            momentum = torch.where(self.written[index], self.momentum, 0.0)[:, None]
            mixed = momentum * self.memory[index].float() + (1.0 - momentum) * embeddings
            self.memory.index_copy_(0, index, _renormalize(mixed, self.sphere).to(self.memory.dtype))
        self.written[index] = True
        if labels is not None:
            self.labels[index] = labels.to(self.labels.device).long()


class FeatureQueue(nn.Module):
    r"""MoCo-style FIFO queue of the last K embeddings, for data without an index column.

    It starts empty (or, with `cold_start=True`, filled with random unit vectors as in v0.1); each step overwrites
    the oldest entries with the batch's embeddings. Every written entry is a negative for every anchor, except the
    anchor's own older embeddings when the batch carries dataset indices (without them, keep the queue smaller than
    the training set: the trainer caps it at N - 1) and, label-aware, entries of the anchor's class.
    """

    def __init__(
        self, size: int, dim: int, sphere: bool = True, cold_start: bool = False, dtype: torch.dtype = torch.float32
    ) -> None:
        super().__init__()
        self.sphere = sphere
        initial = _random_unit_rows(size, dim) if cold_start else torch.zeros(size, dim)
        self.register_buffer("queue", initial.to(dtype))
        self.register_buffer("written", torch.full((size,), cold_start))
        self.register_buffer("index", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("labels", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    def draw(
        self, num_negatives: int, index: torch.Tensor | None = None, labels: torch.Tensor | None = None
    ) -> tuple[None, torch.Tensor]:
        """Every entry is a candidate: return `(None, excluded (n, K))`."""
        entry_labels = self.labels if labels is not None else None
        return None, negatives_mask(self.written, self.index, entry_labels, index, labels)

    def stored(self) -> torch.Tensor:
        """Every written entry `(W, d)`, in fp32."""
        return self.queue[self.written].float()

    def negatives(self, slots: None = None) -> torch.Tensor:
        """A copy of the whole queue `(K, d)` in fp32 (the queue itself changes in place before the backward pass)."""
        return self.queue.to(torch.float32, copy=True)

    @torch.no_grad()
    def update(self, index: torch.Tensor | None, embeddings: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        """Write `embeddings` (with their dataset indices and labels, when known) over the oldest entries."""
        size = self.queue.shape[0]
        embeddings = embeddings.detach().float()[-size:]
        positions = (self.pointer + torch.arange(embeddings.shape[0], device=self.queue.device)) % size
        self.queue[positions] = embeddings.to(self.queue.dtype)
        self.written[positions] = True
        self.index[positions] = -1 if index is None else index[-size:].to(self.index.device).long()
        self.labels[positions] = -1 if labels is None else labels[-size:].to(self.labels.device).long()
        self.pointer.copy_((self.pointer + embeddings.shape[0]) % size)
