"""``lvlm-heat sanity``: the sanity checks on a user's model and images, from the command line.

:func:`run_sanity` takes the same model, data and explanation flags as ``lvlm-heat explain`` (``--model``,
``--data.*``, ``--config``, ``--optim.*``, ``--select.*``, ...) plus ``--pairs N`` and the checks'
own ``--sanity.*``; it writes ``sanity.json`` (strict JSON) and each pair's maps (``maps/<pair>.npz``)
to ``--output_dir`` and prints a table and what it means. The checks themselves are
:func:`lvlm_heat.sanity.checks.sanity_check`.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lvlm_heat.config import DataConfig, ExplainConfig, ModelConfig, SanityConfig
from lvlm_heat.errors import LvlmHeatError
from lvlm_heat.sanity.checks import sanity_check
from lvlm_heat.sanity.report import interpretation, summarise, table


def run_sanity(
    model: ModelConfig = ModelConfig(),
    image: Path | None = None,
    question: str | None = None,
    answer: str | None = None,
    data: DataConfig = DataConfig(),
    pairs: int | None = None,
    output_dir: Path | None = None,
    logs_root: Path = Path("lightning_logs/sanity"),
    explain: ExplainConfig | None = None,
    sanity: SanityConfig = SanityConfig(),
    save_maps: bool = True,
) -> dict[str, Any]:
    """Check that the heatmaps reflect the model: randomisation tests and reference explainers on your data.

    With no arguments, checks the shipped demo model on the demo pairs.

    Args:
        model: The model, as for ``lvlm-heat explain`` (its fields are flags of their own: ``--model``,
            ``--adapter``, ``--precision``, ``--device``, ``--gradient_checkpointing``).
        image: Image of a single pair (with ``--question``); otherwise ``--data`` is checked.
        question: Question of a single pair.
        answer: Explain this answer instead of the model's own (single pair).
        data: The dataset (default: the demo pairs), as for ``train.py``.
        pairs: Check only the first ``pairs`` pairs.
        output_dir: Where ``sanity.json`` and the maps go; default: a new ``version_N`` folder under ``logs_root``.
        logs_root: Parent of the default output folders.
        explain: The explanation settings of the maps under test (on the command line, their fields are flags
            of their own: ``--method``, ``--baseline``, ``--optim.*``, ``--select.*``, and the reference
            explainers' ``--occlusion.*``). The first ``--method`` is the explainer under test; ``grid`` and
            ``superpixel`` occlusion always run beside the methods given.
        sanity: What the checks do besides explaining: randomisation stages, re-runs (``--sanity.*``).
        save_maps: Write every map of each pair to ``maps/<pair folder>.npz`` (``(H, W)`` float32 arrays).

    Returns:
        The ``sanity.json`` record.
    """
    import numpy as np

    from lvlm_heat.adapters import load_adapter
    from lvlm_heat.data import Pair, open_pair, read_dataset
    from lvlm_heat.reporting.console import quiet_libraries
    from lvlm_heat.reporting.outputs import write_json_atomic
    from lvlm_heat.reporting.run_folder import prepare_run_dir, run_dir

    quiet_libraries()
    explain = explain or ExplainConfig()
    if pairs is not None and pairs < 1:
        raise ValueError(f"pairs must be at least 1, got {pairs}")
    if (image is None) != (question is None):
        raise LvlmHeatError("give --image and --question together (or neither, to check --data.path or the demo pairs)")
    if image is not None:
        listed = [Pair(Path(image).stem, Path(image), question, answer)]
    else:
        listed = read_dataset(data)[:pairs]
    folder = run_dir(output_dir, logs_root)
    prepare_run_dir(folder)
    cases, failed = [], []
    for pair in listed:
        try:
            cases.append(open_pair(pair, data.multiple_choice))
        except LvlmHeatError as err:
            failed.append({"id": pair.id, "folder": pair.folder, "status": "failed", "reason": str(err)})
    loaded = load_adapter(model)
    print(f"model {model.model}: {len(listed)} pair(s); outputs in {folder}", flush=True)
    records, cascade, maps = sanity_check(loaded, cases, explain, sanity, report=lambda line: print(line, flush=True))
    records += failed
    summary = summarise(records, cascade)
    lines = interpretation(summary)
    result = {"model": model.model, "adapter": type(loaded).__name__,
              "settings": {"explain": asdict(explain), "sanity": asdict(sanity)},
              "summary": summary, "interpretation": lines, "pairs": records}
    if save_maps:
        for name, arrays in maps.items():
            (folder / "maps").mkdir(exist_ok=True)
            np.savez_compressed(folder / "maps" / f"{name}.npz",
                                **{re.sub(r"\W+", "_", k).strip("_"): v for k, v in arrays.items() if v is not None})
    write_json_atomic(folder / "sanity.json", result)
    print("\n" + table(summary) + "\n\n" + "\n".join(lines) + f"\n\nwritten: {folder / 'sanity.json'}", flush=True)
    return result
