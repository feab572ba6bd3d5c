"""The heads' optimisation where the student's optimizer cannot hold them (DeepSpeed), and the teacher's DeepSpeed
inference configuration."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
import torch
from conftest import tiny_bert
from torch import nn

from hf_wcord import WCoRDConfig
from hf_wcord.optimization import HEAD_OPTIMIZER_NAME, SeparateHeadOptimizer
from hf_wcord.teacher import prepare_deepspeed


def heads_and_optimizer(tmp_path, **settings) -> tuple[nn.Module, SeparateHeadOptimizer]:
    torch.manual_seed(0)
    heads = nn.Linear(4, 3)
    args = WCoRDConfig(output_dir=str(tmp_path), learning_rate=1e-3, warmup_steps=2, report_to="none", **settings)
    return heads, SeparateHeadOptimizer(heads, args, num_training_steps=10)


def train_step(heads: nn.Module, optimizer: SeparateHeadOptimizer, seed: int) -> None:
    torch.manual_seed(seed)
    heads(torch.randn(8, 4)).square().mean().backward()
    optimizer.step()
    heads.zero_grad(set_to_none=True)


@pytest.mark.parametrize("head_learning_rate, peak", [(None, 1e-3), (5e-3, 5e-3)])
def test_the_heads_own_optimizer_follows_the_trainers_schedule(tmp_path, head_learning_rate, peak):
    heads, optimizer = heads_and_optimizer(tmp_path, head_learning_rate=head_learning_rate, weight_decay=0.1)
    assert type(optimizer.optimizer) is torch.optim.AdamW and optimizer.optimizer.param_groups[0]["weight_decay"] == 0
    rates = []
    for step in range(10):
        rates.append(optimizer.optimizer.param_groups[0]["lr"])
        train_step(heads, optimizer, step)
    # Linear warm-up over 2 steps to the peak, then linear decay to 0 at step 10.
    expected = [0.0, 0.5, 1.0, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8]
    assert rates == pytest.approx([peak * factor for factor in expected])


def test_the_heads_own_optimizer_resumes_from_a_checkpoint(tmp_path):
    heads, optimizer = heads_and_optimizer(tmp_path)
    for step in range(3):
        train_step(heads, optimizer, step)
    optimizer.save(str(tmp_path))
    assert (tmp_path / HEAD_OPTIMIZER_NAME).is_file() and not (tmp_path / f"{HEAD_OPTIMIZER_NAME}.partial").exists()
    resumed_heads, resumed = heads_and_optimizer(tmp_path)
    resumed_heads.load_state_dict(heads.state_dict())
    assert resumed.load(str(tmp_path))
    assert not resumed.load(str(tmp_path / "elsewhere"))
    for step in range(3, 6):
        train_step(heads, optimizer, step)
        train_step(resumed_heads, resumed, step)
    # The same moments and learning rate as the uninterrupted run, so the same heads.
    for name, value in heads.state_dict().items():
        torch.testing.assert_close(resumed_heads.state_dict()[name], value, rtol=0, atol=0)


def test_the_teachers_deepspeed_engine_gets_no_optimizer_and_zero3_bucket_sizes(monkeypatch):
    configs = []

    def initialize(model, config):
        configs.append(config)
        return SimpleNamespace(eval=lambda: None), None, None, None

    monkeypatch.setitem(sys.modules, "deepspeed", SimpleNamespace(initialize=initialize))
    run_config = {
        "zero_optimization": {"stage": 3},
        "optimizer": {"type": "AdamW", "params": {"lr": 1e-4}},
        "scheduler": {"type": "WarmupLR"},
        "train_micro_batch_size_per_gpu": 8,
    }
    plugin = SimpleNamespace(deepspeed_config=run_config)
    prepare_deepspeed(tiny_bert(32, 2), SimpleNamespace(state=SimpleNamespace(deepspeed_plugin=plugin)))
    (config,) = configs
    # A frozen model has nothing to optimise: DeepSpeed would build a ZeRO optimizer over no trainable parameters.
    assert "optimizer" not in config and "scheduler" not in config
    assert config["zero_optimization"]["stage"] == 3 and config["zero_optimization.reduce_bucket_size"] == 32 * 32
    assert "optimizer" in run_config, "the run's own configuration is left as it was"
    run_config["zero_optimization"]["stage"] = 2
    prepare_deepspeed(tiny_bert(32, 2), SimpleNamespace(state=SimpleNamespace(deepspeed_plugin=plugin)))
    assert configs[-1]["zero_optimization"]["stage"] == 0, "under ZeRO-1/2 the teacher runs without ZeRO"
