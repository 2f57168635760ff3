"""What a training run reports, on rank 0 only: TensorBoard, metrics.jsonl and the console.

- TensorBoard (`RUN/tensorboard/`, torch.utils.tensorboard): train/loss, train/lr, train/grad_norm,
  perf/samples_per_s, perf/tokens_per_s every step; eval/* after each world evaluation.
  `tensorboard --logdir RUN/tensorboard` shows them.
- `RUN/metrics.jsonl`: one JSON line per step (step, loss, lr, grad_norm, samples, tokens, seconds);
  appended, so after a resume the steps redone since the checkpoint appear again (the last line wins).
- the console: a rich progress bar (loss, samples/s, ETA) when stderr is a terminal, else a plain
  line every `log_every` steps (for log files and batch jobs).
Rates are measured over the steps since the previous report, data loading included.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


class Monitor:
    """Step metrics to TensorBoard, a JSONL file and the console; a no-op off rank 0."""

    def __init__(self, run_dir: Path, total_steps: int, start_step: int, enabled: bool = True,
                 tensorboard: bool = True, console: bool = False, log_every: int = 10) -> None:
        self.enabled, self.total, self.log_every = enabled, total_steps, max(1, log_every)
        self.writer = self.bar = self.task = None
        self._metrics = None
        self._last_time = self._window_start = time.perf_counter()
        self._window = [0, 0, 0]  # steps, samples, tokens since the last report
        self._console = console
        if not enabled:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        self._metrics = open(run_dir / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115 (closed in close)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start_step + 1)
        if console:
            from rich.console import Console

            err = Console(stderr=True)
            if err.is_terminal:
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    TextColumn,
                    TimeRemainingColumn,
                )

                self.bar = Progress(TextColumn("training DiT"), BarColumn(), MofNCompleteColumn(),
                                    TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[rate]} samples/s"),
                                    TextColumn("eta"), TimeRemainingColumn(), console=err)
                self.bar.start()
                self.task = self.bar.add_task("train", total=total_steps, completed=start_step, loss="-", rate="-")

    def step(self, step: int, loss: float, lr: float, grad_norm: float, samples: int, tokens: int) -> None:
        """Record one optimizer step (global samples and tokens of the step, over all ranks)."""
        if not self.enabled:
            return
        now = time.perf_counter()
        dt, self._last_time = now - self._last_time, now
        rec = {"step": step, "loss": loss, "lr": lr, "grad_norm": grad_norm, "samples": samples, "tokens": tokens,
               "seconds": round(dt, 6)}
        self._metrics.write(json.dumps(rec) + "\n")
        self._metrics.flush()
        if self.writer is not None:
            self.writer.add_scalar("train/loss", loss, step)
            self.writer.add_scalar("train/lr", lr, step)
            self.writer.add_scalar("train/grad_norm", grad_norm, step)
            if dt > 0:
                self.writer.add_scalar("perf/samples_per_s", samples / dt, step)
                self.writer.add_scalar("perf/tokens_per_s", tokens / dt, step)
        self._window = [self._window[0] + 1, self._window[1] + samples, self._window[2] + tokens]
        elapsed = max(now - self._window_start, 1e-9)
        rate, tok_rate = self._window[1] / elapsed, self._window[2] / elapsed
        due = step % self.log_every == 0 or step == self.total
        if self.bar is not None:
            self.bar.update(self.task, completed=step, loss=f"{loss:.4f}", rate=f"{rate:.1f}")
        elif self._console and due:
            eta = time.strftime("%H:%M:%S", time.gmtime(elapsed / self._window[0] * (self.total - step)))
            print(f"step {step}/{self.total} loss {loss:.4f} lr {lr:.2e} grad {grad_norm:.3f} "
                  f"{rate:.2f} samples/s {tok_rate:.0f} tokens/s eta {eta}", file=sys.stderr, flush=True)
        if due:
            self._window_start, self._window = now, [0, 0, 0]

    def scalars(self, step: int, values: dict[str, Any]) -> None:
        """Extra numbers (evaluation results) to TensorBoard and metrics.jsonl; None values are skipped."""
        if not self.enabled:
            return
        values = {k: float(v) for k, v in values.items() if v is not None}
        self._metrics.write(json.dumps({"step": step, **values}) + "\n")
        self._metrics.flush()
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(k, v, step)

    def message(self, text: str) -> None:
        """A line for the person watching (above the progress bar when there is one)."""
        if not self.enabled or not self._console:
            return
        if self.bar is not None:
            self.bar.console.print(text)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
        if self.writer is not None:
            self.writer.close()
        if self._metrics is not None:
            self._metrics.close()
