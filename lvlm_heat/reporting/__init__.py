"""Everything a user reads: figures, per-pair outputs, TensorBoard images, progress, console, summary.

- :mod:`~lvlm_heat.reporting.figures`: heatmap overlay and curve plot (data, never shown);
- :mod:`~lvlm_heat.reporting.outputs`: a pair's files (``result.json`` last, atomic) and reading them back;
- :mod:`~lvlm_heat.reporting.run_folder`: the run folder, ``run.json`` and its lock;
- :mod:`~lvlm_heat.reporting.tensorboard`: images logged while a mask is optimised;
- :mod:`~lvlm_heat.reporting.progress`: progress bars over pairs and iterations;
- :mod:`~lvlm_heat.reporting.console`: what the command line prints;
- :mod:`~lvlm_heat.reporting.summary`: ``summary.json`` and ``summary.csv`` of a dataset run;
- :mod:`~lvlm_heat.reporting.strip`: the answer strip, each token coloured by its LLR (HTML and matplotlib);
- :mod:`~lvlm_heat.reporting.report`: ``report.html`` of a run (chart geometry in ``report_page``, markup in
  ``templates/``);
- :mod:`~lvlm_heat.reporting.notebook`: an explanation as HTML and as a figure, for Jupyter.
"""
