"""``read_dataset``: the pairs a :class:`~lvlm_heat.config.DataConfig` describes, whatever the format."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from lvlm_heat.config import DataConfig
from lvlm_heat.data.benchmarks import read_cvbench, read_llava_bench, read_mmstar, read_mmvp
from lvlm_heat.data.pairs import Pair
from lvlm_heat.data.tables import read_table
from lvlm_heat.errors import LvlmHeatError


def _detect(path: Path) -> str:
    if path.is_dir():
        for name, marker in (("cvbench", "test_2d.jsonl"), ("cvbench", "test.jsonl"), ("mmvp", "Questions.csv"),
                             ("llava_bench", "questions.jsonl")):
            if (path / marker).is_file():
                return name
        raise LvlmHeatError(f"{path}: a folder, but not a CV-Bench, MMVP or LLaVA-Bench layout; give a file or --data.format")
    suffix = path.suffix.lower()
    return {".jsonl": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "mmstar"}.get(suffix) or "jsonl"


def _unique_ids(pairs: list[Pair]) -> list[Pair]:
    seen: dict[str, int] = {}
    out = []
    for pair in pairs:
        count = seen.get(pair.id, 0)
        seen[pair.id] = count + 1
        out.append(pair if count == 0 else Pair(f"{pair.id}_{count}", *list(vars(pair).values())[1:]))
    return out


def read_dataset(config: DataConfig) -> list[Pair]:
    """The pairs ``config`` describes, with unique ids, in file order."""
    from lvlm_heat.demo import DEMO_PAIRS

    path = Path(config.path) if config.path is not None else DEMO_PAIRS
    if not path.exists():
        raise LvlmHeatError(f"dataset not found: {path}")
    kind = _detect(path) if config.format == "auto" else config.format
    folder = path if path.is_dir() else path.parent
    root = Path(config.image_root) if config.image_root is not None else folder
    try:
        if kind in ("jsonl", "json", "csv"):
            pairs = read_table(path, kind, config, root)
        elif kind == "cvbench":
            pairs = read_cvbench(folder, root)
        elif kind == "mmvp":
            pairs = read_mmvp(folder, root)
        elif kind == "mmstar":
            pairs = read_mmstar(path)
        else:
            pairs = read_llava_bench(folder, root)
    except (json.JSONDecodeError, csv.Error, UnicodeDecodeError, KeyError) as err:
        raise LvlmHeatError(f"cannot read {path} as {kind}: {type(err).__name__}: {err}") from err
    pairs = _unique_ids(pairs)
    return pairs[: config.limit] if config.limit is not None else pairs
