"""`WCoRDConfig`: `TrainingArguments` plus every knob of Wasserstein contrastive representation distillation."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from transformers import TrainingArguments

from .layer_map import normalize_layer_map
from .unlabeled import NEGATIVE_LABEL_POLICIES

POOLING_CHOICES = ("auto", "first", "mean")
NEGATIVES_CHOICES = ("auto", "bank", "queue")
SINKHORN_BACKENDS = ("log_domain", "geomloss")
LIPSCHITZ_CHOICES = ("spectral", "gradient_penalty", "none")
BANK_DTYPES = ("float32", "float16", "bfloat16")
HEAD_TYPES = ("linear", "mlp")
GLOBAL_OBJECTIVES = ("infonce", "dual", "nce")
BANK_CONTENTS = ("features", "embeddings")
STANDARDIZE_STATISTICS = ("running", "batch")
STUDENT_NEGATIVES = ("bank", "batch", "none")
DEFAULT_NUM_NEGATIVES = 16384


@dataclass
class WCoRDConfig(TrainingArguments):
    r"""
    Configuration for [`WCoRDTrainer`]: the usual [`~transformers.TrainingArguments`] plus the distillation settings.

    The total objective is

        L = alpha_ce * CE(z_S, y) + alpha_kd * T^2 * KL(softmax(z_T / T) || softmax(z_S / T))
            + lambda_global * sum_l w_l * L_global^l + lambda_local * sum_l w_l * L_local^l

    where `l` runs over the mapped (teacher layer, student layer) pairs. For regression students (one output, e.g.
    STS-B) the KD term is the mean squared error between student and teacher predictions.
    """

    alpha_ce: float = field(
        default=1.0,
        metadata={"help": "Weight of the student's own task loss (cross-entropy, or MSE for regression)."},
    )
    alpha_kd: float = field(
        default=1.0,
        metadata={"help": "Weight of the logit distillation term (Hinton KD; MSE for regression). 0 disables it."},
    )
    kd_temperature: float = field(
        default=4.0, metadata={"help": "Softmax temperature T of the KD term; the term is scaled by T^2."}
    )
    lambda_global: float = field(
        default=0.05,
        metadata={
            "help": "Weight of the global contrastive term (dual form of the Wasserstein distance). 0 disables it."
        },
    )
    lambda_local: float = field(
        default=0.1,
        metadata={"help": "Weight of the local in-batch Sinkhorn term (primal optimal transport). 0 disables it."},
    )
    layer_map: str = field(
        default="auto",
        metadata={
            "help": (
                "Which hidden states are matched. 'uniform': student layer k <- teacher layer k*L_T/L_S for every "
                "student layer; 'last': the last hidden state of each model; or explicit pairs "
                "'teacher:student,...' indexing `hidden_states` (0 is the embedding output), e.g. '4:1,8:2,12:3' (in "
                "Python also a list of pairs, [(4, 1), (8, 2), (12, 3)]). "
                "'auto' is 'last' (for vision the penultimate feature, as in CRD/WCoRD; for text the last layer, "
                "whose mean-pooled states carry the sentence, where intermediate [CLS] states of sentence encoders "
                "are nearly constant). 'uniform' with `pooling='first'` gives CoDIR-style intermediate-layer maps."
            )
        },
    )
    layer_weights: list[float] | None = field(
        default=None,
        metadata={"help": "Weight w_l of each mapped layer pair, in layer-map order (default: 1/num_pairs each)."},
    )
    pooling: str = field(
        default="auto",
        metadata={
            "help": (
                "How a token sequence (batch, tokens, dim) becomes one vector per example: 'first' (the [CLS] "
                "token) or 'mean' (mean over non-padding tokens). 'auto': 'mean' (text and vision tokens). Feature "
                "maps (batch, channels, height, width) are always global-average pooled."
            )
        },
    )
    feat_dim: int = field(default=128, metadata={"help": "Output dimension of the projection heads (critic space)."})
    head_type: str = field(
        default="linear",
        metadata={"help": "Projection head shape: 'linear' or 'mlp' (linear-ReLU-linear, each layer constrained)."},
    )
    lipschitz: str = field(
        default="spectral",
        metadata={
            "help": (
                "How the critic g(x, y) = <f_T(x), f_S(y)>/tau is kept Lipschitz: 'spectral' (heads ball(W z) with "
                "sigma_max(W) = 1: g is (1/tau)-Lipschitz in each standardised feature), 'gradient_penalty' (the "
                "same heads with W free and a one-sided penalty on the critic's input gradients) or 'none' (CRD's "
                "unconstrained head normalize(W z + b))."
            )
        },
    )
    standardize_features: bool = field(
        default=True,
        metadata={
            "help": (
                "Standardise each pooled feature dimension (batch statistics, no learned parameters, an eps relative "
                "to the mean variance) and scale to unit root-mean-square norm before the heads. Without it the large "
                "common component of transformer features keeps a norm-bounded head from separating examples."
            )
        },
    )
    standardize_statistics: str = field(
        default="running",
        metadata={
            "help": (
                "Statistics of the standardisation in training. 'running': constants of each step (set from the whole "
                "training set after the memory-bank fill, then an exponential moving average of the batches), so the "
                "critic is a fixed function of each example and its Lipschitz constant holds while training; "
                "'batch': v0.2's batch statistics with the gradient through them (the critic value of one example "
                "then depends on the whole batch)."
            )
        },
    )
    gradient_penalty_weight: float = field(
        default=10.0, metadata={"help": "Weight of the gradient penalty when `lipschitz='gradient_penalty'`."}
    )
    contrast_temperature: float = field(
        default=0.07, metadata={"help": "Temperature tau of the critic g(t, s) = <t, s> / tau."}
    )
    global_objective: str = field(
        default="infonce",
        metadata={
            "help": (
                "'infonce': the contrastive (log-sum-exp) lower bound of the Wasserstein dependency measure; "
                "'dual': the plain Kantorovich dual, mean positive critic minus mean negative critic (ablation); "
                "'nce': CRD's NCE loss as RepDistiller computes it, with the memory bank's positives (the CRD "
                "baseline: use it with `lipschitz='none'`, `standardize_features=False`, `bank_content='embeddings'`)."
            )
        },
    )
    num_negatives: int | None = field(
        default=None,
        metadata={
            "help": (
                "Number K of negatives per step, sampled from the memory bank (or the queue length). None: "
                f"{DEFAULT_NUM_NEGATIVES}, or every other training example when the bank holds fewer."
            )
        },
    )
    negatives_source: str = field(
        default="auto",
        metadata={
            "help": (
                "'bank': CRD-style memory bank with one slot per training example, keyed by `index_column`; "
                "'queue': MoCo-style FIFO queue of the last `num_negatives` embeddings; 'auto': bank when the "
                "training set has `index_column`, else queue."
            )
        },
    )
    warm_negatives: bool = field(
        default=True,
        metadata={
            "help": (
                "Give every negative a real embedding: before the first step a no-gradient pass over the training set "
                "fills each memory-bank slot (nearly free with the teacher cache), and slots or queue entries never "
                "written are masked. False: v0.1's stores, which start as random unit vectors used as negatives."
            )
        },
    )
    bank_content: str = field(
        default="features",
        metadata={
            "help": (
                "What the memory bank (or queue) stores. 'features': each example's pooled features (before the "
                "heads), projected with today's heads at every step, so that negatives come from the same critic "
                "as the positive (the teacher's are exact: it is frozen); 'embeddings': the heads' outputs when the "
                "was last seen, mixed with `bank_momentum` (CRD's bank; v0.2's default)."
            )
        },
    )
    student_negatives: str = field(
        default="bank",
        metadata={
            "help": (
                "Negatives of the global term's teacher-anchored direction (other examples' student embeddings, "
                "which the critic must rank below the anchor's own student). 'bank': drawn from the memory bank, "
                "written by the student of up to an epoch ago; 'batch': the batch's other students (fresh, with "
                "gradient, B - 1 per anchor, per process); 'none': no teacher-anchored direction, the global term is "
                "the student-anchored direction alone, whose negatives are the teacher's features (exact: the "
                "teacher is frozen). The student-anchored direction always draws its K negatives from the bank."
            )
        },
    )
    critic_warmup_steps: int = field(
        default=200,
        metadata={
            "help": (
                "Steps that train the projection heads alone on the filled feature bank before the student's first "
                "step (Adam at `head_learning_rate`, no student or teacher forward), so that the critic has learned "
                "the contrastive task before its gradient reaches the student. Needs `bank_content='features'` and "
                "a memory bank; 0 turns it off."
            )
        },
    )
    critic_warmup_learning_rate: float = field(
        default=1e-3,
        metadata={"help": "Adam learning rate of the heads during the critic warm-up."},
    )
    critic_gate: bool = field(
        default=False,
        metadata={
            "help": (
                "Let the student feel the global term in proportion to what the critic knows: the term's gradient "
                "into the student is multiplied by g, a running mean of the critic's contrastive accuracy (the share "
                "of anchors whose positive outscores every negative, averaged over the two directions and starting "
                "from its value after the critic warm-up), while the heads learn from the whole term. Logged as "
                "`wcord/critic_gate`."
            )
        },
    )
    critic_gate_momentum: float = field(
        default=0.95,
        metadata={"help": "Weight of the previous value in the critic gate's running mean (0.95: about 20 steps)."},
    )
    label_aware_negatives: bool = field(
        default=False,
        metadata={
            "help": (
                "CoDIR's label-aware negatives: leave out of each anchor's negatives the stored examples of its own "
                "class (classification only; needs the label column)."
            )
        },
    )
    unlabeled_negative_labels: str = field(
        default="teacher",
        metadata={
            "help": (
                "With `label_aware_negatives`, the class a row without a label (label -1) counts as: 'teacher' (the "
                "teacher's predicted class) or 'none' (no class: it leaves out no negatives and is left out of none)."
            )
        },
    )
    labelled_batch_share: float = field(
        default=0.0,
        metadata={
            "help": (
                "With unlabeled (transfer) rows in the training set: the share of each batch given to labelled rows "
                "(e.g. 0.25: 4 of 16), the labelled rows cycling as often as needed; an epoch then covers every "
                "unlabeled row once. 0: batches are drawn at random from all rows (a batch may hold no labelled row; "
                "the task loss is the mean over the labelled rows a batch has)."
            )
        },
    )
    representation_warmup_ratio: float = field(
        default=0.1,
        metadata={
            "help": (
                "Fraction of the training steps over which the weights of the global and local terms ramp linearly "
                "from 0 to `lambda_global` / `lambda_local`, so that the task loss and KD shape the student before "
                "the representation terms pull on it. 0 turns the ramp off."
            )
        },
    )
    bank_dtype: str = field(
        default="float32",
        metadata={
            "help": (
                "Storage dtype of the memory bank / queue: 'float32', or 'float16' / 'bfloat16' to halve its memory "
                "(at MNLI scale, 393k slots x 128 x 2 stores per layer pair: 400 MB per pair in fp32). Updates and "
                "reads are computed in fp32."
            )
        },
    )
    bank_momentum: float = field(
        default=0.5, metadata={"help": "Momentum m of the bank update: slot <- normalize(m * slot + (1 - m) * new)."}
    )
    index_column: str = field(
        default="idx",
        metadata={"help": "Dataset column holding each example's index (0..N-1), used to key the memory bank."},
    )
    sinkhorn_eps: float = field(
        default=0.05, metadata={"help": "Entropic regularisation eps of the in-batch Sinkhorn term."}
    )
    sinkhorn_iters: int = field(default=50, metadata={"help": "Maximum number of Sinkhorn iterations."})
    sinkhorn_tol: float | None = field(
        default=None,
        metadata={"help": "Stop Sinkhorn early when the marginal error (L1) falls below this tolerance."},
    )
    sinkhorn_backend: str = field(
        default="log_domain",
        metadata={
            "help": (
                "'log_domain': our own fp32 log-domain solver, L_local = <P*, C>; 'geomloss': geomloss' SamplesLoss, "
                "whose value is the regularised cost <P*, C> + eps * KL (same gradient, higher value)."
            )
        },
    )
    sinkhorn_detach_plan: bool = field(
        default=True,
        metadata={
            "help": (
                "Treat the transport plan as a constant (envelope theorem: the gradient flows through the cost "
                "only). False back-propagates through the Sinkhorn iterations (log_domain backend only)."
            )
        },
    )
    local_over_global_batch: bool = field(
        default=False,
        metadata={
            "help": (
                "With several processes, solve the in-batch Sinkhorn term over the global batch (embeddings gathered "
                "from every process, with gradients) instead of each process' own batch."
            )
        },
    )
    teacher_cache: str | None = field(
        default=None,
        metadata={
            "help": (
                "Folder of a teacher-output cache: the teacher's logits and pooled mapped-layer features are computed "
                "once over the training set and read back by example index instead of running the teacher at every "
                "step. Reused while its fingerprint (teacher weights, layers, pooling, data) matches; rebuilt when "
                "stale. Needs the index column and fixed inputs (no on-the-fly augmentation)."
            )
        },
    )
    teacher_model_init_kwargs: dict[str, Any] | str | None = field(
        default=None,
        metadata={
            "help": (
                "Keyword arguments for the teacher's `from_pretrained` when `teacher_model` is a Hub id or folder "
                '(as in TRL): e.g. {"dtype": "bfloat16", "revision": "main", "trust_remote_code": false}. '
                "A JSON string on the command line."
            )
        },
    )
    head_learning_rate: float | None = field(
        default=1e-3,
        metadata={
            "help": (
                "Learning rate of the projection heads (None: `learning_rate`). They start from scratch, so they need "
                "a larger rate than the fine-tuned student: at 5e-5 the global term barely leaves chance level."
            )
        },
    )
    check_finite: bool = field(
        default=True,
        metadata={"help": "Stop training with an error naming the term when a loss term becomes NaN or infinite."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("alpha_ce", "alpha_kd", "lambda_global", "lambda_local", "gradient_penalty_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"`{name}` must be >= 0, got {getattr(self, name)}; use 0 to disable the term.")
        for name in ("kd_temperature", "contrast_temperature", "sinkhorn_eps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be > 0, got {getattr(self, name)}.")
        if self.critic_warmup_steps < 0:
            raise ValueError(f"`critic_warmup_steps` must be >= 0, got {self.critic_warmup_steps}.")
        for name in ("feat_dim", "num_negatives", "sinkhorn_iters"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {getattr(self, name)}.")
        if not 0.0 <= self.representation_warmup_ratio <= 1.0:
            raise ValueError(
                f"`representation_warmup_ratio` must be in [0, 1], got {self.representation_warmup_ratio}."
            )
        if not 0.0 <= self.labelled_batch_share < 1.0:
            raise ValueError(
                f"`labelled_batch_share` must be in [0, 1), got {self.labelled_batch_share}; 0 draws batches at "
                "random."
            )
        if not 0.0 <= self.critic_gate_momentum < 1.0:
            raise ValueError(f"`critic_gate_momentum` must be in [0, 1), got {self.critic_gate_momentum}.")
        if not 0.0 <= self.bank_momentum < 1.0:
            raise ValueError(f"`bank_momentum` must be in [0, 1), got {self.bank_momentum}.")
        for name, choices in (
            ("pooling", POOLING_CHOICES),
            ("negatives_source", NEGATIVES_CHOICES),
            ("sinkhorn_backend", SINKHORN_BACKENDS),
            ("lipschitz", LIPSCHITZ_CHOICES),
            ("bank_dtype", BANK_DTYPES),
            ("head_type", HEAD_TYPES),
            ("global_objective", GLOBAL_OBJECTIVES),
            ("bank_content", BANK_CONTENTS),
            ("standardize_statistics", STANDARDIZE_STATISTICS),
            ("student_negatives", STUDENT_NEGATIVES),
            ("unlabeled_negative_labels", NEGATIVE_LABEL_POLICIES),
        ):
            if getattr(self, name) not in choices:
                raise ValueError(f"`{name}` must be one of {', '.join(choices)}; got {getattr(self, name)!r}.")
        self.layer_map = normalize_layer_map(self.layer_map)
        if isinstance(self.teacher_model_init_kwargs, str):
            self.teacher_model_init_kwargs = json.loads(self.teacher_model_init_kwargs)
        if self.sinkhorn_backend == "geomloss" and not self.sinkhorn_detach_plan:
            raise ValueError(
                "`sinkhorn_backend='geomloss'` differentiates through geomloss' dual potentials only (the envelope "
                "gradient): set `sinkhorn_detach_plan=True` or use `sinkhorn_backend='log_domain'`."
            )
        if self.global_objective == "nce" and self.bank_content != "embeddings":
            raise ValueError(
                "`global_objective='nce'` (CRD) takes its positives from the memory bank's stored embeddings: set "
                "`bank_content='embeddings'`."
            )
        if self.global_objective == "nce" and self.student_negatives != "bank":
            raise ValueError(
                "`global_objective='nce'` (CRD) draws both directions' negatives from the memory bank: set "
                "`student_negatives='bank'`."
            )
        if self.layer_weights is not None and any(w < 0 for w in self.layer_weights):
            raise ValueError(f"`layer_weights` must be >= 0, got {self.layer_weights}.")

    @property
    def uses_representation_terms(self) -> bool:
        """Whether the global or local term is on (and so projection heads and hidden states are needed)."""
        return self.lambda_global > 0 or self.lambda_local > 0
