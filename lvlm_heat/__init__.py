"""lvlm_heat: where a large vision-language model looks when it answers a question.

Implements the mask optimisation of Xing et al. (2025), "Where do Large Vision-Language
Models Look at when Answering Questions?", an extension of iGOS++ to free-form answers.

The public names below are imported on first use, so ``import lvlm_heat`` (or one of its
light modules, such as :mod:`lvlm_heat.losses`) loads neither transformers, Lightning nor
matplotlib until they are needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_PUBLIC = {
    "Adapter": "lvlm_heat.adapters",
    "HFAdapter": "lvlm_heat.adapters",
    "PreparedPair": "lvlm_heat.adapters",
    "load_adapter": "lvlm_heat.adapters",
    "register_adapter": "lvlm_heat.adapters",
    "Explainer": "lvlm_heat.api",
    "DataConfig": "lvlm_heat.config",
    "ExplainConfig": "lvlm_heat.config",
    "ModelConfig": "lvlm_heat.config",
    "OptimConfig": "lvlm_heat.config",
    "SanityConfig": "lvlm_heat.config",
    "SelectionConfig": "lvlm_heat.config",
    "TrainerConfig": "lvlm_heat.config",
    "WarmStartConfig": "lvlm_heat.config",
    "Pair": "lvlm_heat.data",
    "Query": "lvlm_heat.data",
    "load_image": "lvlm_heat.data",
    "read_dataset": "lvlm_heat.data",
    "DEMO_MODEL": "lvlm_heat.demo",
    "DEMO_MODELS": "lvlm_heat.demo",
    "DEMO_PAIRS": "lvlm_heat.demo",
    "LvlmHeatError": "lvlm_heat.errors",
    "MaskExplainer": "lvlm_heat.explainer",
    "DeletionAUC": "lvlm_heat.metrics",
    "InsertionAUC": "lvlm_heat.metrics",
    "explain_pair": "lvlm_heat.pipeline",
    "prepare": "lvlm_heat.prepare",
    "CompositeScorer": "lvlm_heat.scorer",
    "ExplanationRecord": "lvlm_heat.record",
    "read_record": "lvlm_heat.reporting.outputs",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'lvlm_heat' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from lvlm_heat.adapters import Adapter, HFAdapter, PreparedPair, load_adapter, register_adapter  # noqa: F401
    from lvlm_heat.api import Explainer  # noqa: F401
    from lvlm_heat.config import (  # noqa: F401
        DataConfig,
        ExplainConfig,
        ModelConfig,
        OptimConfig,
        SanityConfig,
        SelectionConfig,
        TrainerConfig,
        WarmStartConfig,
    )
    from lvlm_heat.data import Pair, Query, load_image, read_dataset  # noqa: F401
    from lvlm_heat.demo import DEMO_MODEL, DEMO_MODELS, DEMO_PAIRS  # noqa: F401
    from lvlm_heat.errors import LvlmHeatError  # noqa: F401
    from lvlm_heat.explainer import MaskExplainer  # noqa: F401
    from lvlm_heat.metrics import DeletionAUC, InsertionAUC  # noqa: F401
    from lvlm_heat.pipeline import explain_pair  # noqa: F401
    from lvlm_heat.prepare import prepare  # noqa: F401
    from lvlm_heat.record import ExplanationRecord  # noqa: F401
    from lvlm_heat.reporting.outputs import read_record  # noqa: F401
    from lvlm_heat.scorer import CompositeScorer  # noqa: F401
