import pytest
from transformers import HfArgumentParser, TrainingArguments

from hf_wcord import WCoRDConfig


def test_config_is_training_arguments_with_documented_distillation_fields(tmp_path):
    config = WCoRDConfig(output_dir=str(tmp_path))
    assert isinstance(config, TrainingArguments)
    for name in (
        "alpha_kd",
        "lambda_global",
        "lambda_local",
        "feat_dim",
        "num_negatives",
        "sinkhorn_eps",
        "layer_map",
    ):
        field = WCoRDConfig.__dataclass_fields__[name]
        assert field.metadata.get("help"), name
    assert (config.feat_dim, config.contrast_temperature, config.bank_momentum) == (128, 0.07, 0.5)


def test_hf_argument_parser_reads_the_distillation_flags(tmp_path):
    (config,) = HfArgumentParser(WCoRDConfig).parse_args_into_dataclasses(
        [
            "--output_dir",
            str(tmp_path),
            "--lambda_local",
            "0.5",
            "--layer_map",
            "4:1,8:2",
            "--sinkhorn_backend",
            "geomloss",
            "--layer_weights",
            "0.3",
            "0.7",
        ]
    )
    assert config.lambda_local == 0.5 and config.layer_map == "4:1,8:2"
    assert config.sinkhorn_backend == "geomloss" and config.layer_weights == [0.3, 0.7]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha_kd": -1.0}, "alpha_kd.*>= 0"),
        ({"sinkhorn_eps": 0.0}, "sinkhorn_eps.*> 0"),
        ({"bank_momentum": 1.0}, "bank_momentum"),
        ({"pooling": "max"}, "pooling.*first, mean"),
        ({"lipschitz": "clip"}, "lipschitz"),
        ({"layer_map": "middle"}, "Invalid layer map"),
        ({"sinkhorn_backend": "geomloss", "sinkhorn_detach_plan": False}, "sinkhorn_detach_plan=True"),
        ({"num_negatives": 0}, "num_negatives"),
    ],
)
def test_invalid_settings_name_the_problem(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        WCoRDConfig(output_dir=str(tmp_path), **kwargs)


def test_layer_map_accepts_a_list_of_pairs_in_python(tmp_path):
    from hf_wcord.layer_map import resolve_layer_map

    config = WCoRDConfig(output_dir=str(tmp_path), layer_map=[(4, 1), (8, 2)])
    assert config.layer_map == "4:1,8:2"
    assert resolve_layer_map(config.layer_map, 13, 4) == [(4, 1), (8, 2)]
    assert '"layer_map": "4:1,8:2"' in config.to_json_string()
    for bad in ([(4, 1, 2)], [("4", "1")], [], 3):
        with pytest.raises(ValueError, match=r"list of \(teacher_layer, student_layer\) pairs"):
            WCoRDConfig(output_dir=str(tmp_path), layer_map=bad)
    with pytest.raises(ValueError, match="'teacher_layer:student_layer' pairs"):
        WCoRDConfig(output_dir=str(tmp_path), layer_map="middle")
