"""Datasets of image-question pairs, from local files.

- :mod:`~lvlm_heat.data.pairs`: a :class:`Pair`, the question as the model is asked it, and the pair opened
  (:class:`Query`, :func:`open_pair`);
- :mod:`~lvlm_heat.data.ids`: safe, unique folder names for pairs;
- :mod:`~lvlm_heat.data.images`: opening an image as a viewer shows it (:func:`open_image` says what changed);
- :mod:`~lvlm_heat.data.answers`: :func:`answer_matches`, the model's answer against a reference answer;
- :mod:`~lvlm_heat.data.records`: a file record by record, a bad record becoming a failed pair;
- :mod:`~lvlm_heat.data.tables`: generic JSONL / JSON / CSV tables with configurable fields;
- :mod:`~lvlm_heat.data.benchmarks`: CV-Bench, MMVP, MMStar and LLaVA-Bench layouts;
- :mod:`~lvlm_heat.data.reader`: :func:`read_dataset`, which picks the reader.

The settings are :class:`lvlm_heat.config.DataConfig`.
"""

from lvlm_heat.data.answers import answer_matches, normalise_answer
from lvlm_heat.data.ids import safe_name, unique_folders
from lvlm_heat.data.images import BACKGROUND, load_image, open_image
from lvlm_heat.data.pairs import Pair, Query, open_pair, prompt_with_options, question_for
from lvlm_heat.data.reader import read_dataset

__all__ = [
    "BACKGROUND",
    "Pair",
    "Query",
    "answer_matches",
    "load_image",
    "normalise_answer",
    "open_image",
    "open_pair",
    "prompt_with_options",
    "question_for",
    "read_dataset",
    "safe_name",
    "unique_folders",
]
