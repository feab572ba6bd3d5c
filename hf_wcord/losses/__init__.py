"""The WCoRD loss terms: logit KD, the global (dual, contrastive) term and the local (primal, Sinkhorn) term."""

from .contrastive import WassersteinContrastiveLoss
from .kd import LogitDistillationLoss, kd_loss, regression_kd_loss
from .memory import FeatureQueue, MemoryBank
from .sinkhorn import SinkhornLoss, cosine_cost, entropic_ot_value, geomloss_ot_value, sinkhorn_plan

__all__ = [
    "FeatureQueue",
    "LogitDistillationLoss",
    "MemoryBank",
    "SinkhornLoss",
    "WassersteinContrastiveLoss",
    "cosine_cost",
    "entropic_ot_value",
    "geomloss_ot_value",
    "kd_loss",
    "regression_kd_loss",
    "sinkhorn_plan",
]
