"""Live progress of a training run: a terminal progress bar and `progress.json` for the dashboard.

The dashboard's Train page runs training in another process and polls `progress.json`
(`tinyviz.runs.progress.TrainProgress`), so it is written atomically at most once a second
and never forces a device synchronisation. The monitor is told the counters; it knows
nothing of the trainer.
"""

from __future__ import annotations

import os
import time

from ..runs.folder import EpochMetrics, RunFolder
from ..runs.progress import TrainProgress, write_progress

WRITE_EVERY = 1.0  # seconds


class Monitor:
    def __init__(
        self,
        folder: RunFolder,
        *,
        epochs: int,
        steps_per_epoch: int,
        step: int,
        epoch: int,
        batch_size: int,
        desc: str,
        bar: bool = True,
        write: bool = True,
    ) -> None:
        self.folder = folder
        self.enabled = write  # only one process of a distributed run writes
        self.epochs, self.steps, self.batch_size = epochs, steps_per_epoch, batch_size
        self.start = time.time()
        self.start_step = self.global_step = step
        self.epoch = epoch
        self.last_write = 0.0
        self.last_row: EpochMetrics | None = None
        self.bar = None
        if bar:
            from tqdm import tqdm

            self.bar = tqdm(
                total=epochs * steps_per_epoch,
                initial=step,
                unit="step",
                desc=desc,
                dynamic_ncols=True,
            )
        self.write("running")

    def step(self, epoch: int, global_step: int) -> None:
        self.epoch, self.global_step = epoch, global_step
        if self.bar is not None:
            self.bar.update(1)
        if time.time() - self.last_write >= WRITE_EVERY:
            self.write("running")

    def epoch_done(self, row: EpochMetrics, global_step: int) -> None:
        self.last_row, self.epoch, self.global_step = row, row.epoch, global_step
        if self.bar is not None:
            self.bar.set_postfix(val_top1=f"{row.val_top1:.3f}")
        self.write("running")

    def finish(self, status: str, message: str = "") -> None:
        if self.bar is not None:
            self.bar.close()
        self.write(status, message)

    def write(self, status: str, message: str = "") -> None:
        now = time.time()
        self.last_write = now
        if not self.enabled:
            return
        total = self.epochs * self.steps
        rate = (self.global_step - self.start_step) / max(now - self.start, 1e-9)  # steps/s
        eta = (total - self.global_step) / rate if rate > 0 and status == "running" else 0.0
        write_progress(
            self.folder,
            TrainProgress(
                status=status,
                pid=os.getpid(),
                updated=now,
                started=self.start,
                epoch=self.epoch,
                epochs=self.epochs,
                step=self.global_step,
                total_steps=total,
                images_per_s=round(rate * self.batch_size, 1),
                eta_s=round(eta, 1),
                message=message,
                last=self.last_row,
            ),
        )
