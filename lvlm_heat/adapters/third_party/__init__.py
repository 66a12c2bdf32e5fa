"""Research models outside transformers, run through their own upstream packages.

:mod:`.compat` patches the upstream Cambrian-1 and Mini-Gemini packages at run time for today's torch and
transformers; :mod:`.upstream` is what their adapters (:mod:`lvlm_heat.adapters.cambrian`,
:mod:`lvlm_heat.adapters.mgm`) share. Nothing here imports the upstream packages, timm or open_clip until
a model is loaded.
"""
