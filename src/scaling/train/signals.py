"""Signals that stop a run cleanly: preemption (SIGTERM, SIGUSR1) and Ctrl-C (SIGINT).

The training loop reads a caught signal after a step, checkpoints at that step and stops; the
record says `preempted` (SIGTERM, or SIGUSR1, SLURM's warning) or `interrupted` (SIGINT), and
the entry point exits 75 (EX_TEMPFAIL: retry me) or 130 (the shell's code for Ctrl-C). A second
Ctrl-C ends the process at once, without a traceback, leaving the last checkpoint to resume from;
so does a Ctrl-C before any training loop watches (`exit_on_interrupt`), with nothing to save.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from scaling import records

STATUS_OF = {
    signal.SIGTERM: records.STATUS_PREEMPTED,
    signal.SIGUSR1: records.STATUS_PREEMPTED,
    signal.SIGINT: records.STATUS_INTERRUPTED,
}
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a process stopped by Ctrl-C


def end_status(sig: signal.Signals, step: int) -> tuple[str, str]:
    """(status, reason) of a run that a signal stopped after `step`."""
    return STATUS_OF[sig], f"{sig.name} at step {step}; rerun the same command to resume"


class SignalWatch:
    """Turns SIGTERM, SIGUSR1 and SIGINT into a flag the loop reads after each step.

    The loop then checkpoints and stops cleanly instead of dying mid-step. A second SIGINT
    calls `on_abort` (which records the run as interrupted) and ends the process at once with
    status 130. Only the main thread can install handlers; elsewhere (a launcher's worker
    thread) the watch stays inert.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)

    def __init__(self, on_abort: Callable[[], None] | None = None) -> None:
        self.signal: signal.Signals | None = None  # what the loop acts on (see poll)
        self._caught: signal.Signals | None = None
        self._previous: dict[int, Any] = {}
        self._on_abort = on_abort
        self._second: _InterruptCount | None = None
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
            self._second = _InterruptCount(2, self._abort)

    def _handle(self, signum: int, frame: Any) -> None:
        sig = signal.Signals(signum)
        if self._caught is None:
            self._caught = sig
            if sig == signal.SIGINT:
                _say("interrupted: saving at the current step (Ctrl-C again to stop at once)")

    def _abort(self) -> None:
        if self._on_abort is not None:
            with contextlib.suppress(Exception):  # stopping matters more than the record
                self._on_abort()
        _say("stopped at once; rerun the same command to resume from the last checkpoint")
        os._exit(EXIT_INTERRUPTED)

    def poll(self, boundary: bool) -> None:
        """Take up a caught signal after a step. The processes of a multi-process run must stop
        at the same step, so they take it up together at a boundary (a step where the loop waits
        for the devices anyway), whichever of them caught it."""
        import jax  # here, so that the entry points can install exit_on_interrupt before it

        from scaling.train import shard

        if jax.process_count() == 1:
            self.signal = self._caught
        elif boundary and (caught := shard.max_over_processes(self._caught or 0)):
            self.signal = signal.Signals(caught)

    def restore(self) -> None:
        """Put the previous handlers back and pass a caught signal on to a Python handler among
        them (e.g. submitit's, which requeues the job) now that the checkpoint is saved.

        A SIGINT is not passed on: Python's own handler would raise KeyboardInterrupt in the
        middle of the run's cleanup, an entry point's (exit_on_interrupt) would exit before the
        record is written; the entry point exits 130 for an interrupted run instead.
        """
        if self._second is not None:
            self._second.close()
            self._second = None
        previous, self._previous = self._previous, {}
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        handler = previous.get(self.signal) if self.signal is not None else None
        if callable(handler) and self.signal != signal.SIGINT:
            handler(self.signal, None)


def exit_on_interrupt(message: str) -> None:
    """Until a training loop watches for signals (SignalWatch), let Ctrl-C end the process at
    once with `message` and status 130: nothing is being trained, so nothing needs saving, and
    no KeyboardInterrupt is raised to be printed as a traceback (or swallowed by a library's
    callback). Called by the entry points before their slow imports; main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return

    def stop(*_: Any) -> None:
        _say(message)
        os._exit(EXIT_INTERRUPTED)

    signal.signal(signal.SIGINT, stop)
    _InterruptCount(1, stop)  # lives as long as the process


class _InterruptCount:
    """Calls `stop` on the `limit`-th SIGINT, even while the main thread is inside a long XLA
    call: Python runs signal handlers only between bytecodes, so a handler could wait for a
    whole compile. The C-level handler writes each caught signal's number to a pipe (Python's
    wakeup fd), which this thread reads."""

    def __init__(self, limit: int, stop: Callable[[], None]):
        self._limit, self._stop = limit, stop
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._thread = threading.Thread(target=self._count, name="sigint-count", daemon=True)
        self._thread.start()

    def _count(self) -> None:
        interrupts = 0
        while data := os.read(self._read, 64):  # b"" once close() shuts the write end
            interrupts += data.count(signal.SIGINT.value)
            if interrupts >= self._limit:
                self._stop()

    def close(self) -> None:
        """Hand the wakeup fd back to whoever had it, and end the thread."""
        signal.set_wakeup_fd(self._previous_fd)
        os.close(self._write)
        self._thread.join()
        os.close(self._read)


def _say(message: str) -> None:
    # Own line, even under a progress bar; a signal may land in the middle of another write.
    with contextlib.suppress(Exception):
        os.write(2, f"\n{message}\n".encode())
