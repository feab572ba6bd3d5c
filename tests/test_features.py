import pytest
import torch

from hf_wcord.features import get_hidden_states, pool_hidden_state
from hf_wcord.layer_map import parse_layer_pairs, resolve_layer_map


def test_uniform_layer_map_spreads_student_layers_over_the_teacher():
    assert resolve_layer_map("uniform", 13, 4) == [(4, 1), (8, 2), (12, 3)]
    assert resolve_layer_map("uniform", 7, 3) == [(3, 1), (6, 2)]


def test_last_and_auto_for_vision_pair_the_final_states():
    assert resolve_layer_map("last", 13, 4) == [(12, 3)]
    assert resolve_layer_map("auto", 5, 3) == [(4, 2)]
    assert resolve_layer_map("auto", 7, 4) == [(6, 3)]


def test_explicit_pairs_and_negative_indices():
    assert parse_layer_pairs("4:1, 8:2") == [(4, 1), (8, 2)]
    assert resolve_layer_map("-1:-1,0:0", 7, 3) == [(6, 2), (0, 0)]


def test_layer_map_naming_a_missing_layer_is_a_clear_error():
    with pytest.raises(ValueError, match="student hidden state 5.*only 3 hidden states"):
        resolve_layer_map("6:5", 7, 3)
    with pytest.raises(ValueError, match="teacher:student|teacher_layer:student_layer"):
        parse_layer_pairs("middle")


def test_pooling_of_sequences_feature_maps_and_vectors():
    tokens = torch.arange(2 * 3 * 2, dtype=torch.float32).view(2, 3, 2)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert torch.equal(pool_hidden_state(tokens, mask, "first"), tokens[:, 0])
    mean = pool_hidden_state(tokens, mask, "mean")
    assert torch.allclose(mean[0], tokens[0, :2].mean(0)) and torch.allclose(mean[1], tokens[1].mean(0))
    maps = torch.randn(2, 4, 3, 3)
    assert torch.allclose(pool_hidden_state(maps), maps.mean(dim=(2, 3)))
    vectors = torch.randn(2, 5)
    assert pool_hidden_state(vectors) is vectors


def test_missing_hidden_states_is_a_clear_error():
    with pytest.raises(ValueError, match="teacher model returned no `hidden_states`"):
        get_hidden_states({"logits": torch.zeros(1)}, "teacher")
