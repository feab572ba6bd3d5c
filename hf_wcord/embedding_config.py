"""`EmbeddingDistillationConfig`: `WCoRDConfig` for distilling a sentence encoder without labels or logits."""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import WCoRDConfig
from .losses.embedding import EMBEDDING_OBJECTIVES

REPRESENTATION_TERMS = ("global", "local")


@dataclass
class EmbeddingDistillationConfig(WCoRDConfig):
    r"""Configuration for [`EmbeddingDistillationTrainer`]: a base encoder (no head, no labels) distilled on the pooled
    sentence embeddings t_i (teacher) and s_i (student) of unlabeled text. The objective is the sum of the named
    terms, each with its weight:

        L = lambda_mse * MSE + lambda_cosine * COS + lambda_distilcse * DCSE
            + lambda_global * sum_l w_l L_global^l + lambda_local * sum_l w_l L_local^l

    (see `hf_wcord.losses.embedding` for the first three, [`WCoRDConfig`] for the last two). There is no task loss
    and no logit KD.
    """

    objective: str = field(
        default="global+local",
        metadata={
            "help": (
                "The terms, joined by '+': mse (sentence-transformers' MSELoss on the teacher's embeddings), cosine, "
                "distilcse (InfoNCE against a queue of teacher embeddings), global and local (WCoRD's). E.g. "
                "'mse', 'global', 'mse+global+local'."
            )
        },
    )
    alpha_ce: float = field(default=0.0, metadata={"help": "Must stay 0: an encoder without a head has no task loss."})
    alpha_kd: float = field(default=0.0, metadata={"help": "Must stay 0: an encoder without a head has no logits."})
    lambda_global: float = field(
        default=1.0, metadata={"help": "Weight of WCoRD's global term when `objective` names it."}
    )
    lambda_local: float = field(
        default=1.0, metadata={"help": "Weight of WCoRD's local term when `objective` names it."}
    )
    lambda_mse: float = field(default=1.0, metadata={"help": "Weight of the MSE term when `objective` names it."})
    lambda_cosine: float = field(
        default=1.0, metadata={"help": "Weight of the cosine term when `objective` names it."}
    )
    lambda_distilcse: float = field(
        default=1.0, metadata={"help": "Weight of DistilCSE's term when `objective` names it."}
    )
    distilcse_queue_size: int = field(
        default=16384,
        metadata={"help": "Teacher embeddings in DistilCSE's queue (capped at the number of training rows - 1)."},
    )
    distilcse_temperature: float = field(default=0.05, metadata={"help": "DistilCSE's temperature tau."})
    normalize_teacher_embeddings: bool | None = field(
        default=None,
        metadata={
            "help": (
                "Compare the baselines with L2-normalised teacher embeddings (default: as the teacher's "
                "sentence-transformers pipeline does, i.e. when it ends in a Normalize module)."
            )
        },
    )

    def __post_init__(self) -> None:
        names = self.objective_terms
        unknown = [name for name in names if name not in (*EMBEDDING_OBJECTIVES, *REPRESENTATION_TERMS)]
        if unknown or not names:
            raise ValueError(
                f"`objective={self.objective!r}` names unknown terms {unknown}: join names among "
                f"{', '.join((*EMBEDDING_OBJECTIVES, *REPRESENTATION_TERMS))} with '+'."
            )
        if self.alpha_ce != 0 or self.alpha_kd != 0:
            raise ValueError(
                "Embedding distillation has no labels and no logits: leave `alpha_ce` and `alpha_kd` at 0 and choose "
                "the terms with `objective`."
            )
        if "global" not in names:
            self.lambda_global = 0.0
        if "local" not in names:
            self.lambda_local = 0.0
        super().__post_init__()
        for name in ("lambda_mse", "lambda_cosine", "lambda_distilcse"):
            if getattr(self, name) < 0:
                raise ValueError(f"`{name}` must be >= 0, got {getattr(self, name)}.")
        if self.distilcse_queue_size < 1 or not self.distilcse_temperature > 0:
            raise ValueError("`distilcse_queue_size` must be >= 1 and `distilcse_temperature` > 0.")

    @property
    def objective_terms(self) -> list[str]:
        return [name.strip() for name in self.objective.split("+") if name.strip()]

    @property
    def embedding_terms(self) -> list[str]:
        """The named baseline terms (mse, cosine, distilcse)."""
        return [name for name in self.objective_terms if name in EMBEDDING_OBJECTIVES]

    @property
    def uses_representation_terms(self) -> bool:
        """Always: the projection heads, stores and the baselines' map live beside the student in the distiller."""
        return True
