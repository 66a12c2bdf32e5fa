"""Datasets of image-question pairs, from local files.

- :mod:`~lvlm_heat.data.pairs`: a :class:`Pair` and the question as the model is asked it;
- :mod:`~lvlm_heat.data.images`: opening an image;
- :mod:`~lvlm_heat.data.tables`: generic JSONL / JSON / CSV tables with configurable fields;
- :mod:`~lvlm_heat.data.benchmarks`: CV-Bench, MMVP, MMStar and LLaVA-Bench layouts;
- :mod:`~lvlm_heat.data.reader`: :func:`read_dataset`, which picks the reader.

The settings are :class:`lvlm_heat.config.DataConfig`.
"""

from lvlm_heat.data.images import load_image
from lvlm_heat.data.pairs import Pair, prompt_with_options, question_for
from lvlm_heat.data.reader import read_dataset

__all__ = ["Pair", "load_image", "prompt_with_options", "question_for", "read_dataset"]
