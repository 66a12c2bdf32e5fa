"""Progress bars: one over a dataset's pairs, one over the current pair's iterations."""

from __future__ import annotations

import time

from lightning.pytorch import Callback, LightningModule, Trainer


class IterationProgress(Callback):
    """A bar over the iterations of the pair being explained (under the dataset's bar)."""

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=trainer.num_training_batches, desc="iterations", leave=False, position=1,
                        dynamic_ncols=True)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        self.bar.update(1)
        if pl_module.history:
            self.bar.set_postfix(deletion=f"{pl_module.history[-1]['deletion']:.2f}",
                                 insertion=f"{pl_module.history[-1]['insertion']:.2f}")

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.bar.close()


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
        self.bar.set_postfix(pairs_per_hour=f"{self.bar.n / hours:.0f}" if hours > 0 else "-", last=outputs.status)

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.bar.close()
