"""lvlm_heat: where a large vision-language model looks when it answers a question.

Implements the mask optimisation of Xing et al. (2025), "Where do Large Vision-Language
Models Look at when Answering Questions?", an extension of iGOS++ to free-form answers.
"""

from lvlm_heat.adapters import Adapter, HFAdapter, PreparedPair, load_adapter, register_adapter
from lvlm_heat.api import Explainer
from lvlm_heat.data import DEMO_MODEL, DEMO_MODELS, DEMO_PAIRS
from lvlm_heat.datasets import DataConfig, Pair, load_image, read_dataset
from lvlm_heat.errors import LvlmHeatError
from lvlm_heat.explainer import MaskExplainer, OptimConfig
from lvlm_heat.metrics import DeletionAUC, InsertionAUC
from lvlm_heat.pipeline import ExplainConfig, Explanation, explain_pair
from lvlm_heat.selection import SelectionConfig

__all__ = [
    "DEMO_MODEL",
    "DEMO_MODELS",
    "DEMO_PAIRS",
    "Adapter",
    "DataConfig",
    "DeletionAUC",
    "ExplainConfig",
    "Explainer",
    "Explanation",
    "HFAdapter",
    "InsertionAUC",
    "LvlmHeatError",
    "MaskExplainer",
    "OptimConfig",
    "Pair",
    "PreparedPair",
    "SelectionConfig",
    "explain_pair",
    "load_adapter",
    "load_image",
    "read_dataset",
    "register_adapter",
]
