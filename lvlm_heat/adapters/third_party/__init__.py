"""Research models outside transformers, run through their own upstream packages.

:mod:`.compat` makes the upstream Cambrian-1 and Mini-Gemini packages run with today's torch and
transformers: changes to the loaded network, and temporary patches of what the process shares (stand-in
modules while importing, an upstream attribute while a checkpoint is built), each undone on exit;
:mod:`.upstream` is what their adapters (:mod:`lvlm_heat.adapters.cambrian`, :mod:`lvlm_heat.adapters.mgm`)
share. Nothing here imports the upstream packages, timm or open_clip until a model is loaded.
"""
