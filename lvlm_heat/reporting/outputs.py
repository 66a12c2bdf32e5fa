"""Where a run's files go, and how they are written.

A run folder is ``--output_dir`` or the next free ``lightning_logs/version_N``; every process of
a multi-process run must agree on it, so rank 0's choice travels to the processes Lightning
launches in an environment variable. Inside it, each pair has a folder with ``saliency.npy``,
``overlay.png``, ``curves.png`` and, written last and atomically, ``result.json``: a folder with a
complete ``result.json`` is a finished pair.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lvlm_heat.errors import LvlmHeatError
from lvlm_heat.record import EXPLAINED, NOT_GROUNDED, Explanation

RUN_DIR_ENV = "LVLM_HEAT_RUN_DIR"


def next_run_dir(root: Path) -> Path:
    """``root/version_N`` with the first free ``N``, as Lightning names its runs."""
    root.mkdir(parents=True, exist_ok=True)
    taken = {int(p.name.split("_")[1]) for p in root.glob("version_*") if p.name.split("_")[1].isdigit()}
    number = 0
    while number in taken:
        number += 1
    return root / f"version_{number}"


def run_dir(output_dir: Path | None, logs_root: Path) -> Path:
    """The run folder, the same in every process of a multi-process run."""
    if output_dir is not None:
        return Path(output_dir)
    if RUN_DIR_ENV in os.environ:  # a process launched by rank 0 (Lightning's launcher copies the environment)
        return Path(os.environ[RUN_DIR_ENV])
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise LvlmHeatError("a multi-process launch (torchrun, SLURM) needs --output_dir: every process must write there")
    return next_run_dir(Path(logs_root))


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that ``path`` is either absent or complete, never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as handle:
        json.dump(data, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(handle.name, path)


def write_pair_outputs(folder: Path, image: Image.Image, explanation: Explanation) -> dict[str, Any]:
    """``saliency.npy``, ``overlay.png``, ``curves.png`` (when explained) and, last, ``result.json``.

    Returns:
        The ``result.json`` record (``explanation.to_dict()``, computed here once).
    """
    from lvlm_heat.reporting.figures import curves_figure, overlay_figure

    folder.mkdir(parents=True, exist_ok=True)
    if explanation.saliency is not None:
        np.save(folder / "saliency.npy", explanation.saliency.astype(np.float32))
        overlay_figure(image, explanation).savefig(folder / "overlay.png", dpi=110)
        curves_figure(explanation.deletion, explanation.insertion).savefig(folder / "curves.png", dpi=110)
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
