"""Throughput benchmark: our training step against a PyTorch peer, side by side.

`shapes` names the benchmark shapes, `ours` times the Trainer's own jitted step, `peer` times
Hugging Face's GPT-2 in PyTorch (imported lazily: torch is the optional `bench` extra), and
`measure` interleaves the sides, records machine load and writes `results/perf/` tables.
"""
