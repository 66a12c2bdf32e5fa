"""Explaining a dataset: one process or many, resumable, one summary at the end.

The dataset run is a LightningModule driven by ``Trainer.predict``: one ``predict_step``
explains one pair (its own mask optimisation, with its own single-device trainer, see
:mod:`lvlm_heat.pipeline`). Under a multi-process strategy (``--trainer.devices 8``,
``torchrun``, SLURM) each process takes every ``world_size``-th pair from its rank, so the pairs
are split without repeats; each process loads the
model once, in :meth:`DatasetRun.setup`, and masks are never averaged across processes
(each process optimises different pairs; a process left without pairs just waits for the
others). The deletion / insertion AUC and plausibility
metrics are torchmetrics states that sync across processes at the end; the summary rows
are gathered from every process onto rank 0.

A finished pair is its folder with a complete ``result.json`` (written atomically, last):
a re-run of the same command skips it, so a stopped run loses only the pairs in flight.
A pair that fails (missing or corrupt image, empty question, NaN loss, ...) is recorded
as failed with its reason, and the run goes on; failed pairs are retried by a re-run.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader

from lvlm_heat.config import ExplainConfig, ModelConfig, TrainerConfig
from lvlm_heat.data.pairs import Pair, open_pair, pair_digest, question_for
from lvlm_heat.errors import LvlmHeatError
from lvlm_heat.metrics.auc import DeletionAUC, InsertionAUC
from lvlm_heat.metrics.plausibility import BoxSaliencyMass, PointingGame
from lvlm_heat.pipeline import explain_pair
from lvlm_heat.record import EXPLAINED, FAILED, ExplanationRecord, differences, failed_record
from lvlm_heat.reporting.console import quiet_libraries
from lvlm_heat.reporting.outputs import read_finished, read_record, write_json_atomic, write_pair_outputs
from lvlm_heat.reporting.progress import DatasetProgress
from lvlm_heat.reporting.summary import write_summary
from lvlm_heat.reporting.tensorboard import tensorboard_writer

log = logging.getLogger(__name__)


class DatasetMetrics(nn.Module):
    """The dataset-level metrics: mean deletion and insertion AUC, pointing game, box mass.

    Args:
        sync: Synchronise across processes on ``compute`` (the final means); ``False`` gives this
            process's own running means, safe to compute at any step.
    """

    def __init__(self, sync: bool) -> None:
        super().__init__()
        options = {"sync_on_compute": sync}
        self.deletion_auc, self.insertion_auc = DeletionAUC(**options), InsertionAUC(**options)
        self.pointing_game, self.box_mass = PointingGame(**options), BoxSaliencyMass(**options)

    def update(self, record: ExplanationRecord) -> None:
        """Add one pair (its map is needed when the dataset gives a box)."""
        if record.status != EXPLAINED:
            return
        if not record.unstable:
            self.deletion_auc.update(record.deletion.fractions, record.deletion.normalized)
            self.insertion_auc.update(record.insertion.fractions, record.insertion.normalized)
        if record.bbox is not None and record.saliency is not None:
            saliency = torch.from_numpy(record.saliency)
            self.pointing_game.update(saliency, record.bbox)
            self.box_mass.update(saliency, record.bbox)

    def compute(self, only_updated: bool = False) -> dict[str, float]:
        """Means by name (NaN where no pair contributed); ``only_updated`` skips those."""
        with warnings.catch_warnings():  # a process may have no explained pair: compute is still collective
            warnings.simplefilter("ignore", UserWarning)
            return {name: float(metric.compute()) for name, metric in self.named_children()
                    if metric.update_called or not only_updated}


class DatasetRun(LightningModule):
    """Explains every pair of a dataset, one ``predict_step`` each.

    Args:
        pairs: The dataset.
        model: The model, loaded once per process (in :meth:`setup`, on that process's device).
        config: Explanation settings.
        run_dir: Where each pair's folder, ``summary.json`` and ``summary.csv`` go.
        multiple_choice: Ask with the options listed, for the letter.
        report: Called with each newly explained pair's record (for printing).
        progress: Show a bar over each pair's iterations.
    """

    def __init__(self, pairs: list[Pair], model: ModelConfig, config: ExplainConfig, run_dir: Path,
                 multiple_choice: bool = False, report: Callable[[ExplanationRecord], None] | None = None,
                 progress: bool = False) -> None:
        super().__init__()
        self.report, self.progress = report, progress
        self.pairs, self.model_config, self.config, self.run_dir = pairs, model, config, Path(run_dir)
        self.multiple_choice = multiple_choice
        self.adapter = None
        self.allow_zero_length_dataloader_with_multiple_devices = True  # more processes than pairs
        self.metrics, self.running = DatasetMetrics(sync=True), DatasetMetrics(sync=False)
        self.records: dict[int, ExplanationRecord] = {}
        self.summary: dict[str, Any] | None = None

    def setup(self, stage: str) -> None:
        from lvlm_heat.adapters import load_adapter

        quiet_libraries()
        if self.adapter is None:  # once per process, on this process's device
            device = self.trainer.strategy.root_device
            self.adapter = load_adapter(replace(self.model_config, device=str(device)))
        self.run_dir.mkdir(parents=True, exist_ok=True)

    def predict_dataloader(self) -> DataLoader:
        """This process's share of the pairs: every ``world_size``-th from its rank (none when there are
        fewer pairs than processes; Lightning's own sampler refuses an empty share)."""
        return DataLoader(range(self.trainer.global_rank, len(self.pairs), self.trainer.world_size), batch_size=None)

    def predict_step(self, index: int, batch_idx: int) -> ExplanationRecord:
        pair = self.pairs[int(index)]
        record = reusable(self.run_dir / pair.folder, pair, self.multiple_choice, maps=pair.bbox is not None)
        if record is None:
            with torch.enable_grad():  # predict runs without gradients; the mask needs them
                record = self._explain(pair)
            if self.report is not None:
                with _deferred_ctrl_c():  # the line goes out whole, through tqdm's lock
                    self.report(record)
        for metrics in (self.metrics, self.running):
            metrics.update(record)
        self.records[int(index)] = ExplanationRecord.from_dict(record.to_dict())  # without maps: light to gather
        writer = tensorboard_writer(self.trainer)
        if writer is not None:  # this process's running means (rank 0's are shown)
            for name, value in self.running.compute(only_updated=True).items():
                writer.add_scalar(f"running/{name}", value, batch_idx)
            writer.flush()
        return self.records[int(index)]

    def _explain(self, pair: Pair) -> ExplanationRecord:
        """The pair's record, written to its folder: explained, not grounded, or failed with its reason."""
        start = time.perf_counter()
        try:
            query = open_pair(pair, self.multiple_choice, self.config.video.frames)
            record = explain_pair(self.adapter, query, self.config, log_dir=self.run_dir, progress=self.progress)
            write_pair_outputs(self.run_dir / pair.folder, record)
            return record
        except (LvlmHeatError, OSError, ValueError, RuntimeError, FloatingPointError) as err:
            reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            log.warning("%s failed: %s", pair.id, reason)
            record = failed_record(pair.id, pair.folder, pair.question, reason, pair.reference,
                                   time.perf_counter() - start)
            write_json_atomic(self.run_dir / pair.folder / "result.json", record.to_dict())
            return record

    def finish(self) -> None:
        """Collect every process's records and metrics; rank 0 writes the summary. Called by every process
        after ``predict`` (not from a hook, which a process without pairs never reaches)."""
        means = self.metrics.compute()  # synced across processes
        records = self.records
        if self.trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[dict[int, ExplanationRecord]] = [{} for _ in range(self.trainer.world_size)]
            torch.distributed.all_gather_object(gathered, records)
            records = {index: record for part in gathered for index, record in part.items()}
        if self.trainer.global_rank == 0:
            ordered = [records.get(k) or failed_record(pair.id, pair.folder, pair.question,
                                                       "no result (process stopped?)", pair.reference)
                       for k, pair in enumerate(self.pairs)]
            self.summary = write_summary(self.run_dir, ordered, means, self.adapter.name if self.adapter else "")

    def finish_interrupted(self) -> None:
        """After Ctrl-C: the summary of the pairs whose results are on disk, written by the launching process from
        the run folder alone (the processes stopped wherever they were: nothing is synchronised)."""
        if self._trainer is not None and self._trainer.global_rank != 0:
            return
        metrics, records = DatasetMetrics(sync=False), []
        for pair in self.pairs:
            folder = self.run_dir / pair.folder
            record = reusable(folder, pair, self.multiple_choice, say=lambda line: None, maps=pair.bbox is not None)
            if record is None and (failed := read_record(folder, maps=False)) is not None and failed.status == FAILED:
                record = failed
            if record is not None:
                metrics.update(record)
                records.append(record)
        model = self.adapter.name if self.adapter else ""
        self.summary = write_summary(self.run_dir, records, metrics.compute(), model, interrupted=len(self.pairs))


class RunInterrupted(BaseException):
    """Ctrl-C during a dataset run. Not a ``KeyboardInterrupt``, which Lightning turns into exit status 1 (and a
    per-pair trainer would swallow): it travels up through both trainers to :func:`run_dataset`."""


def _stop(signum, frame) -> None:
    raise RunInterrupted


@contextmanager
def _on_ctrl_c(handler) -> Iterator[None]:
    """Ctrl-C handled by ``handler`` (a signal handler, or ``signal.SIG_IGN``) while the block runs, in the main
    thread (elsewhere nothing changes); the previous handler afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def _deferred_ctrl_c() -> Iterator[None]:
    """Ctrl-C while the block runs takes effect when it ends (the handler in place before it runs then), in the
    main thread. A pair's line is printed through ``tqdm.write``, whose first call builds a lock: an interrupt
    raised halfway through left it unbuilt, and the ``AttributeError`` from its ``finally`` replaced the
    interrupt (exit status 1, no summary)."""
    previous, pressed = signal.getsignal(signal.SIGINT), []
    with _on_ctrl_c(lambda signum, frame: pressed.append(frame)):
        yield
    if pressed and callable(previous):
        previous(signal.SIGINT, pressed[0])


def reusable(folder: Path, pair: Pair, multiple_choice: bool, say: Callable[[str], None] = log.warning,
             maps: bool = True) -> ExplanationRecord | None:
    """The finished record in ``folder`` if it is ``pair``'s result: same image (its bytes), question and given
    answer (the settings are the run folder's, checked once per run); ``None`` otherwise, saying what changed
    when a finished result is there but stands for another pair."""
    record = read_finished(folder, maps)
    if record is None or pair.error:
        return None
    try:
        digest = pair_digest(pair)
    except LvlmHeatError:
        return None
    changed = differences(record, question_for(pair, multiple_choice), pair.answer, digest)
    if changed:
        say(f"[{pair.id}] its {' and '.join(changed)} changed since the result in {folder}: explaining it again")
        return None
    return record


def run_dataset(pairs: list[Pair], model: ModelConfig, config: ExplainConfig, run_dir: Path,
                trainer: TrainerConfig, multiple_choice: bool = False, progress: bool = True,
                report: Callable[[ExplanationRecord], None] | None = None) -> dict[str, Any] | None:
    """Explain ``pairs`` into ``run_dir``; the summary on the process of rank 0 (``None`` elsewhere).

    Ctrl-C stops the run: the finished pairs are kept and summarised (``summary["interrupted"]`` says of how many
    pairs), and the same command resumes it.
    """
    module = DatasetRun(pairs, model, config, run_dir, multiple_choice, report, progress)
    runner = Trainer(
        accelerator=trainer.accelerator, devices=trainer.devices, strategy=trainer.strategy,
        num_nodes=trainer.num_nodes,
        logger=TensorBoardLogger(str(run_dir.parent), name=run_dir.name, version="", default_hp_metric=False),
        callbacks=[DatasetProgress()] if progress else [], enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False, inference_mode=False, use_distributed_sampler=False,
    )
    interrupted = False
    with _on_ctrl_c(_stop):
        try:
            runner.predict(module, return_predictions=False)
        except RunInterrupted:
            interrupted = True
    if interrupted:
        with _on_ctrl_c(signal.SIG_IGN):  # a second press must not lose the summary
            module.finish_interrupted()
    else:
        module.finish()
    return module.summary
