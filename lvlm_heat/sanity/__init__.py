"""Sanity checks of the heatmaps on a user's own model and images: ``lvlm-heat sanity``.

Does a map reflect the model, or only the image? And does the optimised mask localise better than
plain occlusion on this data? One run answers both, with the same metrics for every explainer:

- cascading parameter randomisation and randomised answers, reported as rank correlation with the
  original map (Adebayo et al., 2018, "Sanity Checks for Saliency Maps"):
  :mod:`~lvlm_heat.sanity.randomisation`;
- grid and superpixel occlusion as reference explainers (``--method grid`` and ``superpixel``, run beside the
  user's own methods): :mod:`~lvlm_heat.methods.occlusion`, :mod:`~lvlm_heat.methods.superpixels`;
- the run over the pairs: :mod:`~lvlm_heat.sanity.checks`; the summary, table and interpretation:
  :mod:`~lvlm_heat.sanity.report`; the command line: :mod:`~lvlm_heat.sanity.runner`.
"""

from lvlm_heat.sanity.checks import sanity_check
from lvlm_heat.sanity.runner import run_sanity

__all__ = ["run_sanity", "sanity_check"]
