"""Distill a trained image classifier into a smaller one with WCoRD, across architecture families (a ViT teacher
into a ResNet student, ...), in the manner of transformers' `run_image_classification.py`.

    accelerate launch examples/run_image_distill.py --fashion_mnist_dir ../shared/data/fashion-mnist \\
        --teacher_name_or_path teachers/fmnist-resnet --student_preset resnet-mini \\
        --do_train --do_eval --num_train_epochs 5 --learning_rate 2e-3 --output_dir students/fmnist-resnet-mini

Features come from `hidden_states`: feature maps are average-pooled, token sequences use CLS (`--pooling first`) or
the mean. Teacher and student read the same pixel values, prepared with the teacher's image processor (or, for
models built from configs, from the data's size with mean/std 0.5), so they must take the same number of channels
and, for ViT-style students, the same image size. `--transfer_dir` adds a folder of unlabeled images to distil on
(the task loss reads the labelled images, KD and the WCoRD terms every image).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from transformers import AutoModelForImageClassification, set_seed

from hf_wcord import ModelCardInfo, WCoRDConfig, WCoRDTrainer
from hf_wcord.tasks.cli import (
    HubLoadingArguments,
    end_processes,
    evaluate_splits,
    parse_arguments,
    refuse_predict,
    setup_logging,
    train_and_record,
)
from hf_wcord.tasks.summary import distillation_summary, evaluate_model, write_summary
from hf_wcord.tasks.transfer import load_transfer_images
from hf_wcord.tasks.vision import (
    VISION_PRESETS,
    ImageDataArguments,
    ImagePreprocessing,
    accuracy_metrics,
    collate_images,
    image_processor_for,
    load_image_classifier,
    load_image_data,
    load_image_processor,
    native_image_size,
    needs_fixed_size,
    prepare_image_splits,
)


@dataclass
class ImageDistillationArguments(HubLoadingArguments):
    """The trained teacher, and the student: exactly one of a Hub id/folder, a config, or a preset."""

    teacher_name_or_path: str = field(metadata={"help": "The trained teacher: Hub id or local folder."})
    student_name_or_path: str | None = field(default=None, metadata={"help": "Student from a Hub id or folder."})
    student_config_name: str | None = field(default=None, metadata={"help": "Student from a config, random init."})
    student_preset: str | None = field(
        default=None, metadata={"help": f"Student from a named preset: {', '.join(VISION_PRESETS)}."}
    )
    evaluate_teacher: bool = field(default=True, metadata={"help": "Also evaluate the teacher, side by side."})
    measure_speedup: bool = field(default=True, metadata={"help": "Time both forward passes on an eval batch."})


def check_same_inputs(teacher: Any, student: Any, preprocessing: ImagePreprocessing) -> None:
    """Teacher and student read one `pixel_values` tensor: same channels, and a fixed-size student must fit."""
    student_channels = getattr(student.config, "num_channels", preprocessing.num_channels)
    if student_channels != preprocessing.num_channels:
        raise ValueError(
            f"The teacher reads {preprocessing.num_channels}-channel images but the student {student_channels}: "
            f"build the student with num_channels={preprocessing.num_channels}."
        )
    image_size = getattr(student.config, "image_size", None) if needs_fixed_size(student.config) else None
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    if image_size is not None and tuple(image_size) != tuple(preprocessing.size):
        raise ValueError(
            f"The student reads {tuple(image_size)} images only, but the teacher's preprocessing gives "
            f"{preprocessing.size}: build the student with image_size={preprocessing.size[0]}."
        )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    model_args, data_args, training_args = parse_arguments(
        (ImageDistillationArguments, ImageDataArguments, WCoRDConfig), argv
    )
    training_args.remove_unused_columns = False
    refuse_predict(training_args)
    setup_logging(training_args)
    set_seed(training_args.seed)
    raw, labels = load_image_data(data_args, model_args.cache_dir, model_args.token)
    teacher = AutoModelForImageClassification.from_pretrained(model_args.teacher_name_or_path, **model_args.hub_kwargs)
    if teacher.config.num_labels != len(labels):
        raise ValueError(
            f"The teacher predicts {teacher.config.num_labels} classes but the data has {len(labels)}: use a teacher "
            "trained on this dataset (see examples/run_image_teacher.py)."
        )
    teacher.requires_grad_(False).eval()
    teacher_processor = load_image_processor(model_args.teacher_name_or_path, model_args.hub_kwargs)
    preprocessing = ImagePreprocessing.for_model(teacher.config, teacher_processor, native_image_size(raw["train"]))
    student, _ = load_image_classifier(
        model_args.student_name_or_path,
        model_args.student_config_name,
        model_args.student_preset,
        preprocessing.num_channels,
        labels,
        model_args.hub_kwargs,
        image_size=preprocessing.size,
        ignore_mismatched_sizes=model_args.ignore_mismatched_sizes,
    )
    check_same_inputs(teacher, student, preprocessing)
    transfer = None
    if data_args.transfer_dir:
        transfer = load_transfer_images(
            data_args.transfer_dir, training_args.seed, data_args.max_transfer_samples, model_args.cache_dir
        )
    with training_args.main_process_first(desc="preprocessing"):
        train, validation = prepare_image_splits(raw, preprocessing, data_args, training_args.seed, transfer=transfer)
    trainer = WCoRDTrainer(
        model=student,
        teacher_model=teacher,
        args=training_args,
        train_dataset=train,
        eval_dataset=validation,
        data_collator=collate_images,
        compute_metrics=accuracy_metrics,
        processing_class=teacher_processor or image_processor_for(preprocessing),
    )
    trainer.model_card_info = ModelCardInfo(
        dataset=data_args.dataset_name,
        dataset_config=data_args.dataset_config_name or ("fashion_mnist" if data_args.fashion_mnist_dir else None),
        base_model=model_args.student_name_or_path or "",
    )
    results: dict[str, Any] = {}
    if training_args.do_train:
        results.update(train_and_record(trainer))
    student_results = evaluate_splits(trainer, {"validation": validation}) if training_args.do_eval else {}
    results.update(student_results)
    if training_args.do_train:
        trainer.save_model()
    teacher_results = None
    if model_args.evaluate_teacher and training_args.do_eval:
        teacher_results = evaluate_model(
            trainer.teacher_model, {"validation": validation}, trainer, collate_images, accuracy_metrics
        )
    speed_batch = None
    if model_args.measure_speedup:
        rows = [validation[i] for i in range(min(len(validation), training_args.per_device_eval_batch_size))]
        speed_batch = {"pixel_values": collate_images(rows)["pixel_values"]}
    summary = distillation_summary(
        trainer, teacher, model_args.teacher_name_or_path, student_results, teacher_results, speed_batch
    )
    results["summary"] = summary
    write_summary(trainer, summary)
    if training_args.push_to_hub:
        trainer.push_to_hub()
    end_processes()
    return results


if __name__ == "__main__":
    main()
