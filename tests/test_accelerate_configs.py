"""The accelerate config files shipped under examples/accelerate_configs/ load as accelerate reads them."""

import pytest
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DistributedType
from examples_loader import EXAMPLES

EXPECTED = {
    "single_gpu.yaml": (DistributedType.NO, 1, "bf16"),
    "multi_gpu.yaml": (DistributedType.MULTI_GPU, 2, "bf16"),
    "multi_cpu.yaml": (DistributedType.MULTI_GPU, 2, "no"),
    "fsdp.yaml": (DistributedType.FSDP, 2, "bf16"),
    "deepspeed_zero3.yaml": (DistributedType.DEEPSPEED, 2, "bf16"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_file_loads(name):
    config = load_config_from_file(str(EXAMPLES / "accelerate_configs" / name))
    assert (config.distributed_type, config.num_processes, config.mixed_precision) == EXPECTED[name]
    if name == "fsdp.yaml":
        assert config.fsdp_config["fsdp_version"] == 2
    if name == "deepspeed_zero3.yaml":
        assert config.deepspeed_config["zero_stage"] == 3


def test_every_shipped_config_is_checked():
    assert {path.name for path in (EXAMPLES / "accelerate_configs").glob("*.yaml")} == set(EXPECTED)
