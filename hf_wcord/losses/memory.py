"""Stores of past embeddings that supply the negatives of the global contrastive term."""

from __future__ import annotations

import torch
from torch import nn


def _random_unit_rows(rows: int, dim: int) -> torch.Tensor:
    return nn.functional.normalize(torch.randn(rows, dim), dim=1)


class MemoryBank(nn.Module):
    r"""CRD-style memory bank: one slot per training example, keyed by the example's dataset index.

    Slots start as random unit vectors. After each step the slots of the batch's examples move towards the new
    embeddings with momentum m and are renormalised:

        bank[i] <- normalize(m * bank[i] + (1 - m) * v_i)

    Negatives are K slots drawn uniformly with replacement, shared by the whole batch (one matmul against them),
    with a mask that flags the draws that hit an anchor's own slot.
    """

    def __init__(self, num_slots: int, dim: int, momentum: float = 0.5) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("memory", _random_unit_rows(num_slots, dim))

    @property
    def num_slots(self) -> int:
        return self.memory.shape[0]

    def draw(self, num_negatives: int, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw K slots; return `(slots (K,), own_slot_mask (n, K))` for anchors with dataset indices `index`."""
        # Sorted, so that gathering the slots reads the bank in order (several times faster than random order).
        slots = torch.randint(0, self.num_slots, (num_negatives,), device=self.memory.device).sort().values
        own_slot = slots[None, :] == index.to(self.memory.device)[:, None]
        return slots, own_slot

    def negatives(self, slots: torch.Tensor) -> torch.Tensor:
        """The stored embeddings `(K, d)` at the drawn `slots`."""
        return self.memory.index_select(0, slots)

    @torch.no_grad()
    def update(self, index: torch.Tensor, embeddings: torch.Tensor) -> None:
        """Momentum-update the slots of `index` with the (detached) `embeddings`."""
        index = index.to(self.memory.device).long()
        if index.numel() and (index.min() < 0 or index.max() >= self.num_slots):
            raise IndexError(
                f"Dataset index out of range for a memory bank of {self.num_slots} slots "
                f"(got {int(index.min())}..{int(index.max())}): the index column must hold 0..N-1."
            )
        mixed = self.momentum * self.memory[index] + (1.0 - self.momentum) * embeddings.detach().float()
        self.memory.index_copy_(0, index, nn.functional.normalize(mixed, dim=1))


class FeatureQueue(nn.Module):
    r"""MoCo-style FIFO queue of the last K embeddings, for data without an index column.

    It starts filled with random unit vectors; each step overwrites the oldest entries with the batch's embeddings.
    Every entry is a negative for every anchor.
    """

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("queue", _random_unit_rows(size, dim))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    def draw(self, num_negatives: int, index: torch.Tensor | None = None) -> tuple[None, None]:
        """Every entry is a negative and none is an anchor's own embedding of this step: nothing to draw."""
        return None, None

    def negatives(self, slots: None = None) -> torch.Tensor:
        """A copy of the whole queue `(K, d)` (the queue itself changes in place before the backward pass)."""
        return self.queue.clone()

    @torch.no_grad()
    def update(self, index: torch.Tensor | None, embeddings: torch.Tensor) -> None:
        """Write `embeddings` over the oldest entries."""
        embeddings = embeddings.detach().float()[-self.queue.shape[0] :]
        size = self.queue.shape[0]
        positions = (self.pointer + torch.arange(embeddings.shape[0], device=self.queue.device)) % size
        self.queue[positions] = embeddings
        self.pointer.copy_((self.pointer + embeddings.shape[0]) % size)
