"""Explaining a dataset: one process or many, resumable, one summary at the end.

The dataset run is a LightningModule driven by ``Trainer.predict``: one ``predict_step``
explains one pair (its own mask optimisation, with its own single-device trainer, see
:mod:`lvlm_heat.pipeline`). Under a multi-process strategy (``--trainer.devices 8``,
``torchrun``, SLURM) Lightning shards the pairs without repeats; each process loads the
model once, in :meth:`DatasetExplainer.setup`, and masks are never averaged across
processes (each process optimises different pairs). The deletion / insertion AUC and
plausibility metrics are torchmetrics states that sync across processes at the end.

A finished pair is its folder with a complete ``result.json`` (written atomically, last):
a re-run of the same command skips it, so a stopped run loses only the pairs in flight.
A pair that fails (missing or corrupt image, empty question, NaN loss, ...) is recorded
as failed with its reason, and the run goes on; failed pairs are retried by a re-run.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.data import DataLoader

from lvlm_heat.datasets import Pair, load_image, question_for
from lvlm_heat.errors import LvlmHeatError
from lvlm_heat.metrics import BoxSaliencyMass, DeletionAUC, InsertionAUC, PointingGame
from lvlm_heat.pipeline import EXPLAINED, FAILED, NOT_GROUNDED, ExplainConfig, explain_pair, quiet_libraries
from lvlm_heat.report import write_json_atomic

log = logging.getLogger(__name__)
SUMMARY_FIELDS = ("id", "status", "answer", "selected_tokens", "deletion_auc", "insertion_auc",
                  "unstable_normalization", "pointing_hit", "box_mass", "seconds", "reason")


@dataclass
class TrainerConfig:
    """How the dataset is spread over processes (Lightning ``Trainer`` arguments)."""

    accelerator: str = "auto"
    """``auto``, ``cpu``, ``gpu``."""
    devices: int | str = 1
    """Processes per node (one per GPU): ``8`` splits the dataset over 8 GPUs."""
    strategy: str = "auto"
    """``auto`` (``ddp`` when devices > 1), ``ddp``; ``ddp_spawn`` is not supported (models do not pickle)."""
    num_nodes: int = 1
    """Nodes of a multi-node run (``torchrun`` / SLURM set the rest)."""


def finished(folder: Path) -> dict | None:
    """The pair's ``result.json`` if it holds a finished explanation (not a failure)."""
    try:
        record = json.loads((folder / "result.json").read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("status") in (EXPLAINED, NOT_GROUNDED) else None


class DatasetProgress(Callback):
    """One bar over this process's pairs: done / total, pairs per hour, time left."""

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        from tqdm.auto import tqdm

        total = sum(trainer.num_predict_batches)
        self.bar = tqdm(total=total, unit="pair", desc="pairs", disable=trainer.global_rank != 0, dynamic_ncols=True)
        self.start = time.perf_counter()

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.bar.update(1)
        hours = (time.perf_counter() - self.start) / 3600
        self.bar.set_postfix(pairs_per_hour=f"{self.bar.n / hours:.0f}" if hours > 0 else "-", last=outputs["status"])

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.bar.close()


class DatasetExplainer(LightningModule):
    """Explains every pair of a dataset, one ``predict_step`` each.

    Args:
        pairs: The dataset.
        load: Keyword arguments of :func:`lvlm_heat.adapters.load_adapter` (model, precision, ...).
        config: Explanation settings.
        run_dir: Where each pair's folder, ``summary.json`` and ``summary.csv`` go.
        multiple_choice: Ask with the options listed, for the letter.
        report: Called with each newly explained pair's record (for printing).
        progress: Show a bar over each pair's iterations.
    """

    def __init__(self, pairs: list[Pair], load: dict[str, Any], config: ExplainConfig, run_dir: Path,
                 multiple_choice: bool = False, report: Callable[[dict], None] | None = None,
                 progress: bool = False) -> None:
        super().__init__()
        self.report, self.progress = report, progress
        self.pairs, self.load, self.config, self.run_dir = pairs, load, config, Path(run_dir)
        self.multiple_choice = multiple_choice
        self.adapter = None
        self.deletion, self.insertion = DeletionAUC(), InsertionAUC()
        self.pointing, self.box_mass = PointingGame(), BoxSaliencyMass()
        self.summary: dict[str, Any] | None = None

    def setup(self, stage: str) -> None:
        from lvlm_heat.adapters import load_adapter

        quiet_libraries()
        if self.adapter is None:  # once per process, on this process's device
            device = self.trainer.strategy.root_device
            self.adapter = load_adapter(**{**self.load, "device": str(device)})
        self.run_dir.mkdir(parents=True, exist_ok=True)

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(range(len(self.pairs)), batch_size=None)

    def predict_step(self, index: int, batch_idx: int) -> dict[str, Any]:
        pair = self.pairs[int(index)]
        folder = self.run_dir / pair.id
        record = finished(folder)
        if record is None:
            with torch.enable_grad():  # predict runs without gradients; the mask needs them
                record = self._explain(pair)
            if self.report is not None:
                self.report(record)
        self._update_metrics(record, folder)
        logger = self.logger
        if isinstance(logger, TensorBoardLogger):  # this process's running means (rank 0's are shown)
            for name, metric in (("deletion_auc", self.deletion), ("insertion_auc", self.insertion)):
                if metric.count > 0:
                    logger.experiment.add_scalar(f"running/{name}", metric.auc_sum.item() / metric.count.item(),
                                                 int(metric.count))
            logger.experiment.flush()
        return {key: record.get(key) for key in SUMMARY_FIELDS}

    def _explain(self, pair: Pair) -> dict[str, Any]:
        start = time.perf_counter()
        try:
            image = load_image(pair.image)
            result = explain_pair(
                self.adapter, image, question_for(pair, self.multiple_choice), answer=pair.answer, config=self.config,
                pair_id=pair.id, output_dir=self.run_dir, bbox=pair.bbox, progress=self.progress,
                image_path=None if isinstance(pair.image, bytes) else str(pair.image),
            )
            return result.to_dict()
        except (LvlmHeatError, OSError, ValueError, RuntimeError, FloatingPointError) as err:
            reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            log.warning("%s failed: %s", pair.id, reason)
            record = {"id": pair.id, "status": FAILED, "question": pair.question, "reason": reason,
                      "seconds": time.perf_counter() - start}
            write_json_atomic(self.run_dir / pair.id / "result.json", record)
            return record

    def _update_metrics(self, record: dict[str, Any], folder: Path) -> None:
        if record.get("status") != EXPLAINED:
            return
        if not record.get("unstable_normalization"):
            for metric, name in ((self.deletion, "deletion"), (self.insertion, "insertion")):
                curve = record["curves"][name]
                metric.update(torch.tensor(curve["fractions"]), torch.tensor(curve["normalized"]))
        if record.get("bbox"):
            saliency = torch.from_numpy(np.load(folder / "saliency.npy"))
            self.pointing.update(saliency, tuple(record["bbox"]))
            self.box_mass.update(saliency, tuple(record["bbox"]))

    def on_predict_epoch_end(self) -> None:
        with warnings.catch_warnings():  # a process may have no explained pair: compute is still collective
            warnings.simplefilter("ignore", UserWarning)
            means = {name: float(metric.compute()) for name, metric in (
                ("deletion_auc", self.deletion), ("insertion_auc", self.insertion),
                ("pointing_game", self.pointing), ("box_mass", self.box_mass))}  # synced across processes
        self.trainer.strategy.barrier("summary")
        if self.trainer.global_rank == 0:
            self.summary = write_summary(self.run_dir, self.pairs, means, self.adapter.name if self.adapter else "")


def write_summary(run_dir: Path, pairs: list[Pair], means: dict[str, float], model: str) -> dict[str, Any]:
    """``summary.json`` and ``summary.csv`` from every pair's ``result.json``."""
    rows = []
    for pair in pairs:
        try:
            record = json.loads((run_dir / pair.id / "result.json").read_text())
        except (OSError, ValueError):
            record = {"id": pair.id, "status": FAILED, "reason": "no result.json (process stopped?)"}
        rows.append({key: record.get(key) for key in SUMMARY_FIELDS})
    counts = {status: sum(r["status"] == status for r in rows) for status in (EXPLAINED, NOT_GROUNDED, FAILED)}
    summary = {
        "model": model,
        "pairs": len(rows),
        "explained": counts[EXPLAINED],
        "not_grounded": counts[NOT_GROUNDED],
        "failed": counts[FAILED],
        "unstable_normalization": sum(bool(r["unstable_normalization"]) for r in rows),
        "means": {k: (None if math.isnan(v) else v) for k, v in means.items()},
        "failures": {r["id"]: r["reason"] for r in rows if r["status"] == FAILED},
        "rows": rows,
    }
    write_json_atomic(run_dir / "summary.json", summary)
    with open(run_dir / "summary.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "selected_tokens": " ".join(row["selected_tokens"] or [])})
    return summary


def run_dataset(pairs: list[Pair], load: dict[str, Any], config: ExplainConfig, run_dir: Path,
                trainer: TrainerConfig, multiple_choice: bool = False, progress: bool = True,
                report: Callable[[dict], None] | None = None) -> dict[str, Any] | None:
    """Explain ``pairs`` into ``run_dir``; the summary on the process of rank 0 (``None`` elsewhere)."""
    if trainer.strategy == "ddp_spawn":
        raise LvlmHeatError("strategy ddp_spawn pickles the model to its workers, which transformers models do not "
                            "support: use --trainer.strategy ddp")
    module = DatasetExplainer(pairs, load, config, run_dir, multiple_choice, report, progress)
    runner = Trainer(
        accelerator=trainer.accelerator, devices=trainer.devices, strategy=trainer.strategy,
        num_nodes=trainer.num_nodes,
        logger=TensorBoardLogger(str(run_dir.parent), name=run_dir.name, version="", default_hp_metric=False),
        callbacks=[DatasetProgress()] if progress else [], enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False, inference_mode=False,
    )
    runner.predict(module, return_predictions=False)
    return module.summary
