"""The explainers besides the optimised mask, one module each (``--method``).

- ``superpixel`` and ``grid``: occlusion of one region at a time (:mod:`~lvlm_heat.methods.occlusion`, regions
  from :mod:`~lvlm_heat.methods.superpixels`);
- ``gradient``: gradient x (image - baseline), or integrated gradients, on a keep-mask of fine cells
  (:mod:`~lvlm_heat.methods.gradient`).

``igos``, the optimised mask, is the method itself (:mod:`lvlm_heat.warm_start`, :mod:`lvlm_heat.explainer`).
Every explainer reads the same :class:`~lvlm_heat.prepare.Prepared` pair (answer, selected tokens, groups,
scorer) and gives one map per token group, higher = more important, on a grid of its own over the whole
image; :func:`lvlm_heat.pipeline.explain_pair` then scores every map with the same curves and plausibility
metrics.
"""

from __future__ import annotations

from torch import Tensor

from lvlm_heat.adapters.base import Adapter
from lvlm_heat.config import ExplainConfig
from lvlm_heat.methods.gradient import gradient_maps
from lvlm_heat.methods.occlusion import occlusion_maps
from lvlm_heat.prepare import Prepared


def attribution_maps(name: str, adapter: Adapter, prepared: Prepared, config: ExplainConfig) -> tuple[Tensor, int]:
    """``(G, h, w)`` maps of explainer ``name`` (``superpixel``, ``grid`` or ``gradient``) for each token group of
    ``prepared``, and the composites it scored."""
    if name == "gradient":
        return gradient_maps(prepared, config.gradient)
    return occlusion_maps(adapter, prepared, name, config.occlusion)
