"""hf_wcord: Wasserstein Contrastive Representation Distillation (WCoRD) for Hugging Face Transformers."""

from .config import WCoRDConfig
from .distiller import WCoRDDistiller
from .embedding_config import EmbeddingDistillationConfig
from .embedding_trainer import EmbeddingDistillationTrainer
from .heads import ProjectionHead
from .model_card import ModelCardInfo
from .student import init_student_from_teacher
from .teacher_inputs import DistillationDataCollator, tokenize_for_teacher
from .trainer import WCoRDTrainer

__version__ = "0.1.0"

__all__ = [
    "DistillationDataCollator",
    "EmbeddingDistillationConfig",
    "EmbeddingDistillationTrainer",
    "ModelCardInfo",
    "ProjectionHead",
    "WCoRDConfig",
    "WCoRDDistiller",
    "WCoRDTrainer",
    "init_student_from_teacher",
    "tokenize_for_teacher",
]
