"""A pair's files, and strict JSON written atomically.

Each pair has a folder with ``saliency.npy``, ``overlay.png``, ``curves.png`` and, written last and
atomically, ``result.json``: a folder with a complete ``result.json`` is a finished pair.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lvlm_heat.record import EXPLAINED, NOT_GROUNDED, Explanation


def strict_json(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by ``None``: JSON that strict parsers accept."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    return value


def write_json_atomic(path: Path, data: Any) -> None:
    """Write strict JSON so that ``path`` is either absent or complete, never half-written.

    The file gets the permissions of any file the user creates (``0666`` less the umask), not the
    ``0600`` of a temporary file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as handle:
        json.dump(strict_json(data), handle, indent=2, allow_nan=False)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(handle.name, 0o666 & ~_umask())
    os.replace(handle.name, path)


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


def write_pair_outputs(folder: Path, image: Image.Image, explanation: Explanation) -> dict[str, Any]:
    """``saliency.npy``, ``overlay.png``, ``curves.png`` (when explained), with per-word maps
    ``saliency_<k>_<word>.npy``, ``overlay_<k>_<word>.png`` and ``words.png``, and, last, ``result.json``.

    Returns:
        The ``result.json`` record (``explanation.to_dict()``, computed here once).
    """
    from lvlm_heat.reporting.figures import curves_figure, overlay_figure, word_figure, words_figure

    folder.mkdir(parents=True, exist_ok=True)
    if explanation.saliency is not None:
        np.save(folder / "saliency.npy", explanation.saliency.astype(np.float32))
        overlay_figure(image, explanation).savefig(folder / "overlay.png", dpi=110)
        curves_figure(explanation.deletion, explanation.insertion).savefig(folder / "curves.png", dpi=110)
    if explanation.words:
        for word in explanation.words:
            np.save(folder / f"saliency_{word.file_stem}.npy", word.saliency.astype(np.float32))
            word_figure(image, explanation, word).savefig(folder / f"overlay_{word.file_stem}.png", dpi=110)
        words_figure(image, explanation).savefig(folder / "words.png", dpi=110)
    record = explanation.to_dict()
    write_json_atomic(folder / "result.json", record)
    return record


def read_finished(folder: Path) -> dict[str, Any] | None:
    """The pair's ``result.json`` if it holds a finished explanation (not a failure)."""
    try:
        record = json.loads((folder / "result.json").read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("status") in (EXPLAINED, NOT_GROUNDED) else None
