"""examples/run_image_teacher.py and run_image_distill.py on a few hundred real Fashion-MNIST images with tiny
presets: CNN and transformer teachers and students, across families, preprocessing, and two processes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from examples_loader import launch_on_two_cpu_processes, load_example
from PIL import Image

from hf_wcord.tasks.vision import ImagePreprocessing

TERMS = ("loss_ce", "loss_kd", "loss_global", "loss_local")


def data_args(data_dir, output_dir, **extra):
    args = [
        "--fashion_mnist_dir", str(data_dir / "fashion-mnist"),
        "--output_dir", str(output_dir),
        "--max_train_samples", "256",
        "--max_eval_samples", "128",
        "--per_device_train_batch_size", "32",
        "--per_device_eval_batch_size", "64",
        "--max_steps", "4",
        "--logging_steps", "2",
        "--save_strategy", "no",
        "--report_to", "none",
        "--do_train", "--do_eval",
    ]  # fmt: skip
    for name, value in extra.items():
        args += [f"--{name}", str(value)]
    return args


@pytest.fixture(scope="module")
def image_teachers(data_dir, tmp_path_factory):
    """A CNN and a ViT teacher, each trained for a few steps by the teacher script."""
    script = load_example("run_image_teacher")
    root = tmp_path_factory.mktemp("image_teachers")
    folders = {}
    for name, preset in (("resnet", "resnet-tiny"), ("vit", "vit-tiny")):
        results = script.main(data_args(data_dir, root / name, preset=preset, learning_rate=2e-3))
        assert 0.0 <= results["eval_accuracy"] <= 1.0
        folders[name] = root / name
    return folders


@pytest.mark.parametrize(
    ("teacher", "student"),
    [("resnet", "vit-tiny"), ("resnet", "convnext-tiny"), ("vit", "resnet-tiny"), ("vit", "deit-tiny")],
)
def test_distill_across_architectures(teacher, student, image_teachers, data_dir, tmp_path):
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    script = load_example("run_image_distill")
    output_dir = tmp_path / "student"
    args = data_args(data_dir, output_dir, teacher_name_or_path=image_teachers[teacher], student_preset=student)
    results = script.main(args + ["--measure_speedup", "false"])
    state = json.loads((output_dir / "trainer_state.json").read_text())
    logs = [entry for entry in state["log_history"] if "loss" in entry]
    assert len(logs) == 2 and all(math.isfinite(entry[term]) for entry in logs for term in TERMS)
    assert math.isfinite(results["summary"]["teacher"]["eval_accuracy"])
    model = AutoModelForImageClassification.from_pretrained(output_dir)
    processor = AutoImageProcessor.from_pretrained(output_dir)
    assert model.config.num_labels == 10 and model.config.id2label[9] == "Ankle boot"
    pixels = processor(Image.new("L", (28, 28)), return_tensors="pt")["pixel_values"]
    assert model(pixel_values=pixels).logits.shape == (1, 10)


def test_preprocessing_handles_grayscale_color_and_augmentation():
    gray = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)
    to_rgb = ImagePreprocessing((32, 32), 3, (0.5,) * 3, (0.5,) * 3)
    tensor = to_rgb.to_tensor(gray)
    assert tensor.shape == (3, 32, 32) and torch.equal(tensor[0], tensor[2])
    to_gray = ImagePreprocessing((28, 28), 1, (0.5,), (0.5,))
    assert to_gray.to_tensor(Image.new("RGB", (28, 28), (255, 0, 0))).shape == (1, 28, 28)
    train, evaluation = to_gray.transform(train=True), to_gray.transform(train=False)
    batch = {"image": [gray] * 8, "label": [0] * 8}
    augmented = torch.stack(train(batch)["pixel_values"])
    assert augmented.shape == (8, 1, 28, 28)
    assert len({tuple(image.flatten().tolist()) for image in augmented}) > 1, "crops and flips differ per draw"
    plain = evaluation(batch)["pixel_values"]
    assert all(torch.equal(plain[0], image) for image in plain), "evaluation preprocessing is deterministic"


def test_teacher_cache_is_refused_with_augmentation_and_used_without(image_teachers, data_dir, tmp_path):
    script = load_example("run_image_distill")
    common = data_args(data_dir, tmp_path / "out", teacher_name_or_path=image_teachers["resnet"])
    common += [
        "--student_preset",
        "resnet-tiny",
        "--teacher_cache",
        str(tmp_path / "cache"),
        "--measure_speedup",
        "false",
    ]
    with pytest.raises(ValueError, match="on-the-fly transform"):
        script.main(common)
    results = script.main(common + ["--augment", "false"])
    assert (tmp_path / "cache" / "teacher_cache.json").is_file() and math.isfinite(results["eval_accuracy"])


def test_student_with_other_input_channels_is_refused(image_teachers, data_dir, tmp_path):
    from transformers import AutoConfig

    config_dir = tmp_path / "rgb_config"
    AutoConfig.for_model(
        "resnet", num_channels=3, hidden_sizes=[8, 16], depths=[1, 1], embedding_size=8
    ).save_pretrained(config_dir)
    script = load_example("run_image_distill")
    args = data_args(data_dir, tmp_path / "out", teacher_name_or_path=image_teachers["resnet"])
    with pytest.raises(ValueError, match="1-channel images but the student 3"):
        script.main(args + ["--student_config_name", str(config_dir)])


def test_two_processes(image_teachers, data_dir, tmp_path):
    output_dir = tmp_path / "ddp"
    args = data_args(data_dir, output_dir, teacher_name_or_path=image_teachers["vit"], student_preset="resnet-tiny")
    args += ["--measure_speedup", "false", "--evaluate_teacher", "false"]
    output = launch_on_two_cpu_processes("run_image_distill", args)
    assert "agree across 2 processes" in output
    assert (output_dir / "model.safetensors").is_file()


@pytest.fixture(scope="module")
def rgb_32_folder(data_dir, tmp_path_factory):
    """CIFAR-sized data: real Fashion-MNIST images of three classes, resized to 32x32 and tinted RGB, as an image
    folder (one sub-folder per class)."""
    from hf_wcord.tasks.data import load_fashion_mnist

    root = tmp_path_factory.mktemp("rgb32")
    rows = load_fashion_mnist(str(data_dir / "fashion-mnist"), "train")
    written = {0: 0, 1: 0, 7: 0}
    for image, label in zip(rows["image"], rows["label"], strict=True):
        if label not in written or written[label] == 24:
            continue
        gray = Image.fromarray(np.asarray(image, dtype=np.uint8)).resize((32, 32))
        tint = Image.merge("RGB", (gray, gray.point(lambda v: v // 2), gray.point(lambda v: 255 - v)))
        (root / f"class_{label}").mkdir(exist_ok=True)
        tint.save(root / f"class_{label}" / f"{written[label]}.png")
        written[label] += 1
    return root


def test_presets_fit_32x32_images(rgb_32_folder, tmp_path):
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    common = ["--train_dir", str(rgb_32_folder), "--train_val_split", "0.25", "--max_steps", "2"]
    common += ["--per_device_train_batch_size", "16", "--save_strategy", "no", "--report_to", "none", "--do_train"]
    load_example("run_image_teacher").main([*common, "--preset", "resnet-tiny", "--output_dir", str(tmp_path / "t")])
    for preset in ("vit-tiny", "deit-tiny"):
        output_dir = tmp_path / preset
        args = [*common, "--do_eval", "--teacher_name_or_path", str(tmp_path / "t"), "--student_preset", preset]
        results = load_example("run_image_distill").main(args + ["--output_dir", str(output_dir)])
        assert math.isfinite(results["eval_accuracy"])
        student = AutoModelForImageClassification.from_pretrained(output_dir)
        assert (student.config.image_size, student.config.patch_size, student.config.num_channels) == (32, 4, 3)
        pixels = AutoImageProcessor.from_pretrained(output_dir)(Image.new("RGB", (40, 40)), return_tensors="pt")
        assert pixels["pixel_values"].shape == (1, 3, 32, 32)
        assert student(**pixels).logits.shape == (1, 3)


def test_patch_grid_follows_the_image_size():
    from hf_wcord.tasks.vision import preset_config

    labels = ["a", "b"]
    for size, patch in (((28, 28), 4), ((32, 32), 4), ((64, 64), 8), ((224, 224), 28)):
        config = preset_config("vit-tiny", 3, labels, size)
        assert (config.image_size, config.patch_size) == (size[0], patch)
    assert preset_config("vit-tiny", 3, labels, (32, 48)).image_size == [32, 48]
    assert preset_config("resnet-tiny", 3, labels, (32, 32)).hidden_sizes == [16, 32, 64, 128]


def test_a_hub_image_student_with_another_head_needs_ignore_mismatched_sizes(image_teachers, data_dir, tmp_path):
    from transformers import AutoConfig, AutoModelForImageClassification

    student_dir = tmp_path / "five_class_student"
    config = AutoConfig.for_model("resnet", num_channels=1, hidden_sizes=[8, 16], depths=[1, 1], embedding_size=8)
    config.num_labels = 5
    AutoModelForImageClassification.from_config(config).save_pretrained(student_dir)
    script = load_example("run_image_distill")
    args = data_args(data_dir, tmp_path / "out", teacher_name_or_path=image_teachers["resnet"])
    args += ["--student_name_or_path", str(student_dir), "--measure_speedup", "false"]
    with pytest.raises(ValueError, match="predicts 5 classes but the data has 10: pass --ignore_mismatched_sizes"):
        script.main(args)
    results = script.main(args + ["--ignore_mismatched_sizes"])
    student = AutoModelForImageClassification.from_pretrained(tmp_path / "out")
    assert student.config.num_labels == 10 and student.config.id2label[9] == "Ankle boot"
    assert math.isfinite(results["eval_accuracy"])


def test_do_predict_is_refused_rather_than_ignored(data_dir, tmp_path):
    args = data_args(data_dir, tmp_path / "out", preset="resnet-tiny") + ["--do_predict"]
    with pytest.raises(ValueError, match="--do_predict is not supported by the image scripts"):
        load_example("run_image_teacher").main(args)


def test_transfer_images_from_a_folder(image_teachers, data_dir, tmp_path):
    """A flat folder of unlabeled images (real Fashion-MNIST test images, as PNG files) distilled on beside 256
    labelled training images; the summary counts both."""
    from hf_wcord.tasks.data import load_fashion_mnist

    folder = tmp_path / "unlabeled"
    folder.mkdir()
    for i, image in enumerate(load_fashion_mnist(str(data_dir / "fashion-mnist"), "test", limit=48)["image"]):
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(folder / f"{i}.png")
    output_dir = tmp_path / "student"
    args = data_args(
        data_dir,
        output_dir,
        teacher_name_or_path=image_teachers["resnet"],
        student_preset="vit-tiny",
        transfer_dir=folder,
        max_transfer_samples=40,
        labelled_batch_share=0.25,
    )
    results = load_example("run_image_distill").main(args + ["--measure_speedup", "false"])
    assert results["summary"]["training_rows"] == {"labelled": 256, "unlabeled": 40}
    state = json.loads((output_dir / "trainer_state.json").read_text())
    logs = [entry for entry in state["log_history"] if "loss" in entry]
    assert all(math.isfinite(entry[term]) for entry in logs for term in TERMS)
