"""Multi-process helpers: the gathered Sinkhorn term's gradients, and the cross-rank agreement check."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hf_wcord.config import WCoRDConfig
from hf_wcord.distiller import WCoRDDistiller
from hf_wcord.distributed import check_ranks_agree, gather_with_grad, state_digest
from hf_wcord.losses.sinkhorn import SinkhornLoss

WORLD_SIZE = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _gather_worker(rank: int, port: int, results) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE)
    torch.manual_seed(0)
    teacher, student = torch.randn(8, 16), torch.randn(8, 16)
    rows = slice(4 * rank, 4 * rank + 4)
    local_student = student[rows].clone().requires_grad_(True)
    loss = SinkhornLoss(eps=0.1, n_iters=200)(gather_with_grad(teacher[rows]), gather_with_grad(local_student))
    loss.backward()
    results[rank] = (loss.item(), local_student.grad.clone())
    dist.destroy_process_group()


def test_gather_with_grad_gives_each_process_its_share_of_the_global_gradient():
    results = mp.Manager().dict()
    mp.spawn(_gather_worker, args=(_free_port(), results), nprocs=WORLD_SIZE, join=True)
    torch.manual_seed(0)
    teacher, student = torch.randn(8, 16), torch.randn(8, 16).requires_grad_(True)
    loss = SinkhornLoss(eps=0.1, n_iters=200)(teacher, student)
    loss.backward()
    for rank in range(WORLD_SIZE):
        rank_loss, rank_grad = results[rank]
        assert rank_loss == pytest.approx(loss.item(), rel=1e-5), "every process solves the global-batch problem"
        # Each process back-propagates the same loss, so its gradient is the world size times its slice of the
        # global gradient; DDP's averaging then gives every parameter exactly the global-batch gradient.
        expected = WORLD_SIZE * student.grad[4 * rank : 4 * rank + 4]
        torch.testing.assert_close(rank_grad, expected, rtol=1e-4, atol=1e-6)


def test_gather_with_grad_is_identity_in_one_process():
    tensor = torch.randn(3, 4)
    assert gather_with_grad(tensor) is tensor


def _distiller(seed: int) -> WCoRDDistiller:
    torch.manual_seed(seed)
    config = WCoRDConfig(output_dir="unused", num_negatives=8, report_to="none")
    distiller = WCoRDDistiller([16], [8], config, num_slots=32)
    distiller.fill([torch.randn(32, 16)], [torch.randn(32, 8)], torch.arange(32))
    return distiller


def test_agreement_check_passes_for_identical_state_and_names_the_differing_rank():
    first, second = _distiller(0), _distiller(0)
    check_ranks_agree(torch.stack([state_digest(first), state_digest(second)]))
    second.teacher_stores[0].memory[5, 0] += 1e-3
    with pytest.raises(RuntimeError, match=r"processes \[1\] differ"):
        check_ranks_agree(torch.stack([state_digest(first), state_digest(second)]))
    swapped = _distiller(0)
    memory = swapped.student_stores[0].memory
    memory[[0, 1]] = memory[[1, 0]]
    with pytest.raises(RuntimeError):
        check_ranks_agree(torch.stack([state_digest(first), state_digest(swapped)]))


def _standardize_worker(rank: int, port: int, results) -> None:
    from hf_wcord.heads import FeatureStandardizer

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE)
    torch.manual_seed(0)
    features, weights = torch.randn(8, 16) * 3 + 1, torch.randn(8, 16)
    rows = slice(4 * rank, 4 * rank + 4)
    local = features[rows].clone().requires_grad_(True)
    standardizer = FeatureStandardizer(16).train()
    standardized = standardizer(local)
    (standardized * weights[rows]).sum().backward()
    results[rank] = (standardized.detach(), local.grad.clone(), standardizer.running_var.clone())
    dist.destroy_process_group()


def test_standardisers_use_the_global_batch_statistics_with_their_gradient():
    from hf_wcord.heads import FeatureStandardizer

    results = mp.Manager().dict()
    mp.spawn(_standardize_worker, args=(_free_port(), results), nprocs=WORLD_SIZE, join=True)
    torch.manual_seed(0)
    features, weights = torch.randn(8, 16) * 3 + 1, torch.randn(8, 16)
    features.requires_grad_(True)
    standardizer = FeatureStandardizer(16).train()
    standardized = standardizer(features)
    (standardized * weights).sum().backward()
    for rank in range(WORLD_SIZE):
        rank_output, rank_grad, rank_running_var = results[rank]
        rows = slice(4 * rank, 4 * rank + 4)
        torch.testing.assert_close(rank_output, standardized.detach()[rows], rtol=1e-4, atol=1e-5)
        # The sum of the processes' losses is the single-process loss, and so are its gradients.
        torch.testing.assert_close(rank_grad, features.grad[rows], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(rank_running_var, standardizer.running_var, rtol=1e-4, atol=1e-6)


def _fsdp_teacher_worker(rank: int, port: int, results) -> None:
    from types import SimpleNamespace

    from accelerate.utils import FullyShardedDataParallelPlugin
    from conftest import tiny_bert
    from torch.distributed.tensor import DTensor

    from hf_wcord.teacher import prepare_teacher

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE)
    plugin = FullyShardedDataParallelPlugin(
        fsdp_version=2, auto_wrap_policy="transformer_based_wrap", reshard_after_forward=True
    )
    accelerator = SimpleNamespace(state=SimpleNamespace(fsdp_plugin=plugin), device=torch.device("cpu"))
    teacher = prepare_teacher(tiny_bert(64, 4, seed=2), accelerator, False, is_fsdp_enabled=True)
    parameters = list(teacher.parameters())
    local = sum(p.to_local().numel() for p in parameters)
    with torch.no_grad():
        ids = torch.tensor([[101, 2023, 3185, 2001, 2307, 102]])
        outputs = teacher(input_ids=ids, output_hidden_states=True)
    results[rank] = {
        "sharded": all(isinstance(p, DTensor) for p in parameters),
        "local_fraction": local / sum(p.numel() for p in parameters),
        "frozen": not any(p.requires_grad for p in parameters) and not teacher.training,
        "logits": outputs.logits.clone(),
        "last_state": outputs.hidden_states[-1].clone(),
    }
    dist.destroy_process_group()


def test_fsdp_shards_the_frozen_teacher_and_keeps_its_outputs():
    from conftest import tiny_bert

    results = mp.Manager().dict()
    mp.spawn(_fsdp_teacher_worker, args=(_free_port(), results), nprocs=WORLD_SIZE, join=True)
    teacher = tiny_bert(64, 4, seed=2).eval()
    with torch.no_grad():
        reference = teacher(input_ids=torch.tensor([[101, 2023, 3185, 2001, 2307, 102]]), output_hidden_states=True)
    for rank in range(WORLD_SIZE):
        result = results[rank]
        assert result["sharded"] and result["frozen"]
        assert result["local_fraction"] == pytest.approx(1 / WORLD_SIZE, abs=0.02), "each process holds half"
        torch.testing.assert_close(result["logits"], reference.logits, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(result["last_state"], reference.hidden_states[-1], rtol=1e-4, atol=1e-5)
