"""``read_dataset``: the pairs a :class:`~lvlm_heat.config.DataConfig` describes, whatever the format."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from lvlm_heat.config import DataConfig
from lvlm_heat.data.benchmarks import read_cvbench, read_llava_bench, read_mmstar, read_mmvp
from lvlm_heat.data.ids import unique_folders
from lvlm_heat.data.pairs import Pair
from lvlm_heat.data.tables import read_table
from lvlm_heat.errors import LvlmHeatError

_MARKERS = (("cvbench", "test_2d.jsonl"), ("cvbench", "test_3d.jsonl"), ("cvbench", "test.jsonl"),
            ("mmvp", "Questions.csv"), ("llava_bench", "questions.jsonl"), ("mmstar", "MMStar.tsv"))


def _detect(path: Path) -> str:
    if path.is_dir():
        for name, marker in _MARKERS:
            if (path / marker).is_file():
                return name
        raise LvlmHeatError(
            f"{path}: a folder, but not a CV-Bench, MMVP, MMStar or LLaVA-Bench layout; give a file or --data.format")
    suffix = path.suffix.lower()
    return {".jsonl": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "mmstar"}.get(suffix) or "jsonl"


def _with_unique_folders(pairs: list[Pair]) -> list[Pair]:
    """The pairs with distinct, file-name-safe ``folder`` names (ids are kept as the dataset wrote them)."""
    return [replace(pair, folder=folder) for pair, folder in zip(pairs, unique_folders([p.id for p in pairs]))]


def read_dataset(config: DataConfig) -> list[Pair]:
    """The pairs ``config`` describes, in file order, each with a unique ``folder``.

    A record that cannot be used is a pair with ``error`` set (see :mod:`lvlm_heat.data.records`), so
    the rest of the dataset still runs. Folders are chosen over the whole file before ``limit`` is
    applied, so that a pair keeps its folder whatever the limit (a resumed run finds it).

    Raises:
        LvlmHeatError: The dataset is not found, or is not a dataset at all (a problem of the whole file).
    """
    from lvlm_heat.demo import DEMO_PAIRS

    path = Path(config.path) if config.path is not None else DEMO_PAIRS
    if not path.exists():
        raise LvlmHeatError(f"dataset not found: {path}")
    kind = _detect(path) if config.format == "auto" else config.format
    folder = path if path.is_dir() else path.parent
    root = Path(config.image_root) if config.image_root is not None else folder
    if kind in ("jsonl", "json", "csv"):
        if path.is_dir():
            raise LvlmHeatError(f"{path}: a folder, not a {kind} file")
        pairs = read_table(path, kind, config, root)
    elif kind == "cvbench":
        pairs = read_cvbench(folder, root, config)
    elif kind == "mmvp":
        pairs = read_mmvp(folder, root, config)
    elif kind == "mmstar":
        pairs = read_mmstar(path, config)
    else:
        pairs = read_llava_bench(folder, root)
    pairs = _with_unique_folders(pairs)
    return pairs[: config.limit] if config.limit is not None else pairs
