"""Progress of a training loop: a bar in a terminal, one line every fixed interval elsewhere.

Both show what a researcher reads while a run trains: the step, tokens/s, the last logged
training loss, the last validation loss and the time left at the current rate. Outside a
terminal (a sweep's log, a SLURM job, a pipe) a bar would print nothing useful, so a line of the
same fields is printed every `train.progress_every_s` seconds instead.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO


def format_duration(seconds: float) -> str:
    """A short duration: 42 -> "42s", 125 -> "2m05s", 3725 -> "1h02m"."""
    if not math.isfinite(seconds):
        return "?"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def format_count(value: float) -> str:
    """A rate or count in three significant digits: 523, 85.3k, 1.20M."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def kind(mode: str, stream: TextIO) -> str | None:
    """What `train.progress` shows on `stream`: "bar", "lines" or None (nothing)."""
    if mode == "off":
        return None
    if mode in ("bar", "on"):
        return "bar"
    if mode == "lines":
        return "lines"
    return "bar" if stream.isatty() else "lines"


class Progress:
    """Reports a loop's progress: `advance` after every step, `note` when a loss is logged."""

    def __init__(
        self,
        mode: str,
        every_s: float,
        label: str,
        total_steps: int,
        start_step: int,
        total_tokens: int,
        start_tokens: int,
        stream: TextIO | None = None,
    ):
        self.stream = stream or sys.stderr
        self.kind = kind(mode, self.stream)
        self.every_s, self.label = every_s, label
        self.total_steps, self.step = total_steps, start_step
        self.total_tokens, self.tokens = total_tokens, start_tokens
        self.loss: float | None = None
        self.val_loss: float | None = None
        self._start, self._start_tokens = time.monotonic(), start_tokens
        self._next_line = self._start + every_s
        self._bar: Any = None
        if self.kind == "bar":
            from tqdm import tqdm

            self._bar = tqdm(
                total=total_tokens,
                initial=start_tokens,
                unit="tok",
                unit_scale=True,
                desc=label,
                dynamic_ncols=True,
                file=self.stream,
            )

    def advance(self, steps: int, tokens: int) -> None:
        """`steps` more steps done, `tokens` more tokens trained (all runs of a group)."""
        self.step += steps
        self.tokens += tokens
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix(), refresh=False)
            self._bar.update(tokens)
        elif self.kind == "lines" and time.monotonic() >= self._next_line:
            print(self.line(), file=self.stream, flush=True)
            self._next_line = time.monotonic() + self.every_s

    def note(self, loss: float | None = None, val_loss: float | None = None) -> None:
        """The latest logged losses, shown from the next update on."""
        if loss is not None:
            self.loss = loss
        if val_loss is not None:
            self.val_loss = val_loss

    def rate(self) -> float | None:
        """Tokens per second since this process started the loop (None before any)."""
        elapsed = time.monotonic() - self._start
        done = self.tokens - self._start_tokens
        return done / elapsed if done > 0 and elapsed > 0 else None

    def line(self) -> str:
        """One line of every field, as printed outside a terminal."""
        rate = self.rate()
        parts = [f"{self.label}: step {self.step}/{self.total_steps}"]
        if rate is not None:
            parts.append(f"{format_count(rate)} tokens/s")
        parts += self._losses()
        if rate is not None:
            left = (self.total_tokens - self.tokens) / rate
            parts.append(f"{format_duration(left)} left")
        return ", ".join(parts)

    def _losses(self) -> list[str]:
        out = []
        if self.loss is not None:
            out.append(f"loss {self.loss:.4f}")
        if self.val_loss is not None:
            out.append(f"val loss {self.val_loss:.4f}")
        return out

    def _postfix(self) -> str:
        # tqdm shows tokens/s and the time left itself (from its smoothed rate).
        return ", ".join([f"step {self.step}/{self.total_steps}", *self._losses()])

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
