"""Progress as a researcher reads it: a bar in a terminal, a line every interval elsewhere, and a
sweep's place and time left."""

from __future__ import annotations

import io

from hydra_plugins.scaling_sweeper.scaling_sweeper import sweep_progress
from scaling.sweep.grid import Point
from scaling.train.progress import Progress, format_count, format_duration


def test_outside_a_terminal_a_line_of_every_field_each_interval():
    stream = io.StringIO()  # not a terminal
    progress = Progress("auto", 0.0, "run-a", 10, 2, 1000, 200, stream)  # a line every step
    assert progress.kind == "lines"
    progress.advance(1, 100)
    progress.note(loss=2.5, val_loss=2.75)
    progress.advance(1, 100)
    first, second = stream.getvalue().splitlines()
    assert first.startswith("run-a: step 3/10, ") and "tokens/s" in first and "loss" not in first
    fields = second.split(", ")
    assert fields[0] == "run-a: step 4/10" and fields[1].endswith(" tokens/s")
    assert fields[2:4] == ["loss 2.5000", "val loss 2.7500"] and fields[4].endswith(" left")

    slow = io.StringIO()
    every_minute = Progress("lines", 60.0, "run-b", 10, 0, 1000, 0, slow)
    every_minute.advance(1, 100)
    assert slow.getvalue() == ""  # nothing before the interval has passed
    assert Progress("off", 1.0, "x", 1, 0, 1, 0, stream).kind is None
    assert Progress("on", 1.0, "x", 1, 0, 1, 0, stream).kind == "bar"


def test_in_a_terminal_the_bar_shows_tokens_per_s_losses_and_time_left():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    progress = Progress("auto", 30.0, "run-a", 10, 0, 1000, 0, stream)
    assert progress.kind == "bar"
    progress.note(loss=2.5, val_loss=2.75)
    for _ in range(10):
        progress.advance(1, 100)
    progress.close()
    last = stream.getvalue().split("\r")[-1]
    assert "tok/s" in last and "step 10/10, loss 2.5000, val loss 2.7500" in last
    assert "<00:00" in last  # tqdm's elapsed<left


def test_formats():
    assert [format_duration(s) for s in (42, 125, 3725)] == ["42s", "2m05s", "1h02m"]
    assert [format_count(x) for x in (523, 85_300, 1_200_000)] == ["523", "85.3k", "1.2M"]


def test_a_sweep_says_which_job_of_how_many_and_the_time_left():
    def point(tokens: int) -> Point:
        return Point("tiny", 1000, tokens, 1e-3, 1.0, 4, 0, 0)

    jobs = [[point(4000)], [point(2000), point(1000)], [point(1000)]]
    costs = [sum(p.n_params * p.tokens for p in job) for job in jobs]
    assert sweep_progress(0, 1, jobs, costs, 0.0) == f"job 1 of 3 ({jobs[0][0].run_name})"
    # 40 s for the first job's cost of 4e6: 1e-5 s per unit, 4e6 units left.
    note = sweep_progress(1, 1, jobs, costs, 40.0)
    assert note.startswith("job 2 of 3 (") and note.endswith("; 1 done in 40s, about 40s left")
    assert sweep_progress(0, 3, jobs, costs, 0.0).startswith("jobs 1-3 of 3 (")
