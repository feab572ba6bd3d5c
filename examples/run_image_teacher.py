"""Train an image-classification teacher (for users without a trained one), in the manner of transformers'
`run_image_classification.py`. Data from the Hub, an image folder, or the Fashion-MNIST idx files; the model from a
Hub id or folder, a config, or a named preset.

    python examples/run_image_teacher.py --fashion_mnist_dir ../shared/data/fashion-mnist --preset resnet-small \\
        --do_train --do_eval --num_train_epochs 5 --learning_rate 2e-3 --output_dir teachers/fmnist-resnet
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

from transformers import Trainer, TrainingArguments, set_seed

from hf_wcord.tasks.cli import (
    HubLoadingArguments,
    end_processes,
    evaluate_splits,
    parse_arguments,
    refuse_predict,
    setup_logging,
    train_and_record,
)
from hf_wcord.tasks.vision import (
    VISION_PRESETS,
    ImageDataArguments,
    ImagePreprocessing,
    accuracy_metrics,
    collate_images,
    image_processor_for,
    load_image_classifier,
    load_image_data,
    native_image_size,
    prepare_image_splits,
)


@dataclass
class ImageModelArguments(HubLoadingArguments):
    """The model to train: exactly one of a Hub id/folder, a config, or a preset."""

    model_name_or_path: str | None = field(default=None, metadata={"help": "Hub id or local folder."})
    config_name: str | None = field(default=None, metadata={"help": "Config (Hub id, folder, file), random init."})
    preset: str | None = field(default=None, metadata={"help": f"Named small model: {', '.join(VISION_PRESETS)}."})
    num_channels: int | None = field(
        default=None, metadata={"help": "Input channels for configs/presets (default: 1 for grayscale data, else 3)."}
    )


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    model_args, data_args, training_args = parse_arguments(
        (ImageModelArguments, ImageDataArguments, TrainingArguments), argv
    )
    training_args.remove_unused_columns = False
    refuse_predict(training_args)
    setup_logging(training_args)
    set_seed(training_args.seed)
    raw, labels = load_image_data(data_args, model_args.cache_dir, model_args.token)
    default_channels = 1 if data_args.fashion_mnist_dir else 3
    hub_kwargs = model_args.hub_kwargs
    model, processor = load_image_classifier(
        model_args.model_name_or_path,
        model_args.config_name,
        model_args.preset,
        model_args.num_channels or default_channels,
        labels,
        hub_kwargs,
        image_size=native_image_size(raw["train"]),
        ignore_mismatched_sizes=model_args.ignore_mismatched_sizes,
    )
    preprocessing = ImagePreprocessing.for_model(model.config, processor, native_image_size(raw["train"]))
    with training_args.main_process_first(desc="preprocessing"):
        train, validation = prepare_image_splits(raw, preprocessing, data_args, training_args.seed)
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train if training_args.do_train else None,
        eval_dataset=validation,
        data_collator=functools.partial(collate_images, index_column=None),
        compute_metrics=accuracy_metrics,
        processing_class=processor or image_processor_for(preprocessing),
    )
    results: dict[str, float] = {}
    if training_args.do_train:
        results.update(train_and_record(trainer))
        trainer.save_model()
    if training_args.do_eval:
        results.update(evaluate_splits(trainer, {"validation": validation}))
    if training_args.push_to_hub:
        trainer.push_to_hub(tasks="image-classification", finetuned_from=model_args.model_name_or_path)
    end_processes()
    return results


if __name__ == "__main__":
    main()
