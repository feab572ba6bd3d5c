"""A tiny ViT teacher distilled into a tiny ResNet student on real Fashion-MNIST images."""

import math

import numpy as np
import torch
from transformers import ResNetConfig, ResNetForImageClassification, ViTConfig, ViTForImageClassification

from hf_wcord import WCoRDConfig, WCoRDTrainer
from hf_wcord.tasks.data import load_fashion_mnist


def to_pixels(batch):
    images = np.asarray(batch["image"], dtype=np.float32)[:, None] / 255.0
    return {"pixel_values": (images - 0.286) / 0.353}


def test_vit_teacher_into_resnet_student_runs_every_term(tmp_path, data_dir):
    rows = load_fashion_mnist(str(data_dir / "fashion-mnist"), "train", limit=256)
    rows = rows.map(to_pixels, batched=True, remove_columns=["image"]).with_format("torch")
    torch.manual_seed(0)
    teacher = ViTForImageClassification(
        ViTConfig(
            image_size=28,
            patch_size=7,
            num_channels=1,
            hidden_size=48,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=96,
            num_labels=10,
        )
    )
    student = ResNetForImageClassification(
        ResNetConfig(num_channels=1, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=10)
    )
    args = WCoRDConfig(
        output_dir=str(tmp_path),
        max_steps=12,
        per_device_train_batch_size=32,
        logging_steps=4,
        num_negatives=64,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
    )
    trainer = WCoRDTrainer(model=student, teacher_model=teacher, args=args, train_dataset=rows)
    assert trainer.layer_pairs == [(2, 2)]
    assert trainer.distiller.uses_bank
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 3
    for entry in logs:
        for term in ("loss_ce", "loss_kd", "loss_global", "loss_local"):
            assert math.isfinite(entry[term]), (term, entry)
    assert trainer.distiller.teacher_heads[0].net[0].in_features == 48
    assert trainer.distiller.student_heads[0].net[0].in_features == 16
