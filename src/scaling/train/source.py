"""The run a fine-tune (or an export) starts from: a run dir or a Hugging Face checkpoint.

`load_source` reads a source's config and record; `restore_params` its parameters, from the
latest readable checkpoint, never unpickling and never repairing it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, cast

import jax
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from scaling import records
from scaling.config import ConfigError, PretrainConfig, validate
from scaling.model import hf
from scaling.model.transformer import Transformer, build_model
from scaling.train import rundir
from scaling.train.checkpoint import Checkpointer
from scaling.train.optim import Plan, make_optimizer, make_schedule
from scaling.train.step import fresh_state

BYTE_VOCAB = 256  # tasks are byte-level text (scaling.tasks.generators)


@dataclasses.dataclass(frozen=True)
class Source:
    """The pre-training run a fine-tune starts from."""

    run_dir: Path
    config: PretrainConfig  # validated: its model is resolved
    record: dict[str, Any]
    hf: bool = False  # a Hugging Face directory (scaling.model.hf), not a run dir

    @property
    def vocab_size(self) -> int:
        """The model's vocabulary: an imported one's own, else the byte-level 256."""
        return self.record.get("vocab_size") or BYTE_VOCAB


def load_source(init_from: str) -> Source:
    """The source of `init_from`: a run dir (`read_run`, trained on byte-level text), or with
    `hf:<dir>` a Hugging Face checkpoint (`scaling.model.hf`)."""
    if hf.is_hf_source(init_from):
        return _hf_source(init_from)
    source = read_run(init_from)
    config, run_dir = source.config, source.run_dir
    if config.data.tokenizer != "byte" or config.data.corpus == "memmap":
        raise ConfigError(
            f"init_from={init_from!r}: tasks are byte-level text, but {run_dir} was trained on "
            f"{config.data.corpus} with tokenizer {config.data.tokenizer!r}"
        )
    return source


def _hf_source(init_from: str) -> Source:
    """An HF directory as a source: its model, and a record naming it (no run, no step)."""
    path = hf.hf_path(init_from)
    spec = hf.read_config(path)
    if spec.vocab_size < BYTE_VOCAB:
        raise ConfigError(
            f"init_from={init_from!r}: vocab_size={spec.vocab_size} cannot hold the tasks' "
            f"{BYTE_VOCAB} byte ids"
        )
    record = {"run_name": f"{hf.PREFIX}{path.name}", "vocab_size": spec.vocab_size}
    return Source(path, PretrainConfig(model=spec.model), record, hf=True)


def read_run(init_from: str) -> Source:
    """A run dir's config (read as YAML into the schema) and record; ConfigError if foreign."""
    run_dir = Path(init_from).expanduser().absolute()
    if not (run_dir / rundir.CONFIG_FILE).is_file():
        raise ConfigError(f"init_from={init_from!r}: {run_dir} is not a run dir (no config.yaml)")
    try:
        stored = rundir.read_config(run_dir)
    except ConfigError as err:  # it names the file
        raise ConfigError(f"init_from={init_from!r}: {err}") from None
    try:
        # Only the pre-training sections matter here (a fine-tuned run may be a source too).
        fields = {f.name for f in dataclasses.fields(PretrainConfig)}
        merged = OmegaConf.merge(
            OmegaConf.structured(PretrainConfig),
            {k: v for k, v in stored.items() if k in fields},
        )
        config = validate(cast(PretrainConfig, OmegaConf.to_object(merged)))
    except (OmegaConfBaseException, ConfigError, AttributeError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"init_from={init_from!r}: {run_dir}/config.yaml: {first}") from err
    return Source(run_dir, config, records.read_record(run_dir) or {})


def restore_params(source: Source) -> tuple[int, Any]:
    """(step, params) of the source's latest readable checkpoint; never unpickles.

    The restore template is the source's whole train state (its own optimizer), rebuilt from
    its config without computing anything, so orbax reads against the tree that was saved.
    """
    cfg = source.config
    if source.hf:
        return 0, hf.load(source.run_dir)[1]
    plan = Plan.from_config(cfg.train, cfg.data.seq_len)
    tx = make_optimizer(cfg.train, make_schedule(cfg.train, plan))

    def factory() -> Transformer:
        return build_model(cfg.model, source.vocab_size, cfg.data.seq_len, seed=cfg.train.seed)

    template = jax.eval_shape(lambda: fresh_state(factory, tx))
    ckpt_dir = source.run_dir / rundir.CKPT_DIR
    if not ckpt_dir.is_dir():
        raise ConfigError(f"init_from: no checkpoint in {source.run_dir} ({ckpt_dir} is missing)")
    # Read-only: a damaged source is reported, never repaired (set aside) from here.
    ckpt = Checkpointer(ckpt_dir, cfg.train.keep_ckpts, use_async=False, read_only=True)
    try:
        restored = ckpt.restore_latest(template)
    finally:
        ckpt.close()
    if restored is None:
        why = "".join(f"; step {s}: {e}" for s, e in list(ckpt.damaged.items())[:1])
        raise ConfigError(f"init_from: no readable checkpoint in {ckpt_dir}{why}")
    step, state = restored
    return step, state.params


def export_run(run_dir: str | Path, out: str | Path) -> Path:
    """Write a run's latest checkpoint (pre-training or fine-tuning) as an HF directory."""
    source = read_run(str(run_dir))
    model = source.config.model
    hf.export_kind(model)  # an architecture neither family has fails before the restore
    vocab = source.record.get("vocab_size")
    if not vocab:
        raise ConfigError(f"{source.run_dir}: record.json gives no vocab_size to export")
    _, params = restore_params(source)
    positions = model.max_positions or source.config.data.seq_len
    return hf.save(out, model, hf.jax_to_numpy(params), vocab, positions)
