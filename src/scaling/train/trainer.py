"""One training loop for pre-training and fine-tuning (scaling.tasks.finetune).

The step is a pure function of (state, batch) under `jax.jit` with the state donated: the
Flax NNX model is split once into a static graphdef and a params pytree, and merged back
inside the jitted function. Data order is a pure function of (seed, step), so a run restored
from a checkpoint at step k continues exactly as if it had never stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from scaling import records
from scaling.config import (
    ModelConfig,
    PretrainConfig,
    TrainConfig,
    run_dir_of,
    to_dict,
    validate,
)
from scaling.data.build import build_corpus
from scaling.data.corpus import Corpus
from scaling.model import accounting
from scaling.model.transformer import Transformer, build_model, compute_dtype
from scaling.provenance import git_commit, versions
from scaling.train import rundir, shard, tracking
from scaling.train.checkpoint import Checkpointer
from scaling.train.loss import fused_lm_loss, lm_loss
from scaling.train.progress import Progress
from scaling.train.signals import SignalWatch, end_status

log = logging.getLogger(__name__)

TrainState = dict[str, Any]  # {"params", "opt_state", "step", "first_bad_step"}
LR_SPEC = jax.ShapeDtypeStruct((), jnp.float32)  # the step's learning-rate argument


@dataclasses.dataclass(frozen=True)
class Plan:
    """Step counts derived from the token budget."""

    tokens_per_step: int
    total_steps: int
    warmup_steps: int

    @classmethod
    def from_config(cls, train: TrainConfig, seq_len: int) -> Plan:
        tokens_per_step = train.batch_size * seq_len
        total_steps = max(1, math.ceil(train.tokens / tokens_per_step))
        warmup_tokens = train.warmup_tokens
        if warmup_tokens is None:
            warmup_tokens = int(0.05 * total_steps * tokens_per_step)
        warmup_steps = min(total_steps - 1, math.ceil(warmup_tokens / tokens_per_step))
        return cls(tokens_per_step, total_steps, max(0, warmup_steps))


# XLA:CPU writes every intermediate of the step to memory, so once a batch's activations
# outgrow the last-level cache the step runs at memory speed. Micro-batches of about this many
# tokens stay in cache: 1.4-1.7x the tokens/s of the whole batch on 2 cores for the benchmark
# shapes and the study's rungs; fewer tokens make the GEMMs too small (results/perf/README.md).
CPU_MICROBATCH_TOKENS = 512
# Below this activation estimate the whole batch is in cache and a split only adds loop
# overhead (n110k at 16 x 128 tokens, ~19 MB, trains faster whole; n221k, ~34 MB, split).
CPU_CACHE_BYTES = 24 * 2**20


def microbatches(
    train: TrainConfig,
    model: ModelConfig,
    vocab_size: int,
    seq_len: int,
    data_shards: int = 1,
    backend: str | None = None,
) -> int:
    """Microbatches per optimizer step: `train.grad_accum`, or where it is None (auto) the
    count for the device. On a CPU, once the batch's activations exceed `CPU_CACHE_BYTES`, the
    fewest microbatches of at most `CPU_MICROBATCH_TOKENS` tokens (one sequence if longer);
    elsewhere 1. Each microbatch keeps a multiple of `data_shards` rows. The step's loss and
    gradient are the whole batch's either way (to float32 rounding)."""
    if train.grad_accum is not None:
        return train.grad_accum
    if (backend or jax.default_backend()) != "cpu":
        return 1
    dtype_bytes = compute_dtype(model).itemsize
    per_token = accounting.activation_bytes_per_token(model, vocab_size, seq_len, dtype_bytes)
    if train.batch_size * seq_len * per_token <= CPU_CACHE_BYTES:
        return 1
    rows = max(1, CPU_MICROBATCH_TOKENS // seq_len)
    feasible = [
        n
        for n in range(1, train.batch_size + 1)
        if train.batch_size % n == 0 and (train.batch_size // n) % data_shards == 0
    ]
    fitting = [n for n in feasible if train.batch_size // n <= rows]
    return min(fitting) if fitting else max(feasible)


def make_schedule(train: TrainConfig, plan: Plan) -> optax.Schedule:
    """Linear warmup, then cosine decay, WSD (constant then linear decay), or constant."""
    peak, floor = train.lr, train.lr * train.min_lr_ratio
    warmup, total = plan.warmup_steps, plan.total_steps
    ramp = optax.linear_schedule(0.0, peak, max(warmup, 1))
    if train.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(0.0, peak, warmup, total, end_value=floor)
    if train.schedule == "constant":
        return optax.join_schedules([ramp, optax.constant_schedule(peak)], [warmup])
    # wsd: warmup-stable-decay (Hu et al. 2024); optax has none, so compose one.
    decay_steps = max(1, round(train.decay_fraction * total))
    decay_start = max(warmup, total - decay_steps)
    decay = optax.linear_schedule(peak, floor, total - decay_start)
    return optax.join_schedules([ramp, optax.constant_schedule(peak), decay], [warmup, decay_start])


def lr_table(schedule: optax.Schedule, n_steps: int) -> jax.Array:
    """float32 (n_steps,): the schedule at optimizer counts 0..n_steps-1."""
    return jax.jit(jax.vmap(schedule))(jnp.arange(n_steps))


# The only TrainConfig fields `make_optimizer` reads, so they alone key the compiled step
# (make_train_step); the others (tokens, lr, schedule, seed, ...) reach the step as data.
_OPTIMIZER_FIELDS = ("beta1", "beta2", "eps", "weight_decay", "grad_clip")


def make_optimizer(train: TrainConfig, schedule: optax.Schedule) -> optax.GradientTransformation:
    beta1, beta2, eps, weight_decay, grad_clip = (getattr(train, f) for f in _OPTIMIZER_FIELDS)

    # Decay matrices only: biases, norm gains and 1-d parameters are left alone.
    def decay_mask(params: Any) -> Any:
        return jax.tree.map(lambda p: p.ndim >= 2, params)

    adamw = optax.adamw(
        schedule, b1=beta1, b2=beta2, eps=eps, weight_decay=weight_decay, mask=decay_mask
    )
    if grad_clip > 0:
        return optax.chain(optax.clip_by_global_norm(grad_clip), adamw)
    return adamw


def init_state(
    model_factory: Callable[[], Transformer],
    tx: optax.GradientTransformation,
    layout: shard.Layout = shard.SINGLE,
) -> tuple[Any, TrainState]:
    """The graphdef and a fresh train state, initialised in one compiled call.

    Built eagerly, every initializer and optimizer buffer is its own small XLA compile
    (about 40 for a 2-layer model, seconds on a CPU); under one `jax.jit` it is a single one.
    On a mesh each device initialises only its own shards.
    """
    graphdef, _ = nnx.split(nnx.eval_shape(model_factory))

    def make() -> TrainState:
        return fresh_state(model_factory, tx)

    if layout.mesh is None:
        return graphdef, jax.jit(make)()
    shardings = layout.shardings(jax.eval_shape(make))
    return graphdef, jax.jit(make, out_shardings=shardings)()


def fresh_state(
    model_factory: Callable[[], Transformer], tx: optax.GradientTransformation
) -> TrainState:
    """A new train state (traced by `init_state`, or by `jax.eval_shape` for a template)."""
    params = nnx.to_pure_dict(nnx.split(model_factory())[1])
    return {
        "params": params,
        "opt_state": tx.init(params),
        "step": jnp.zeros((), jnp.int32),
        "first_bad_step": jnp.full((), -1, jnp.int32),
    }


def make_loss_fn(graphdef: Any, z_loss: float) -> Callable[..., tuple]:
    def loss_fn(
        params: Any, batch_BxTp1: jax.Array, mask_BxTp1: jax.Array | None = None
    ) -> tuple[jax.Array, dict]:
        model = nnx.merge(graphdef, params)
        inputs_BxT, targets_BxT = batch_BxTp1[:, :-1], batch_BxTp1[:, 1:]
        # A mask (fine-tuning) counts only its positions, e.g. the answer tokens of a task.
        mask_BxT = None if mask_BxTp1 is None else mask_BxTp1[:, 1:]
        if model.loss_chunk_tokens:
            x_BxTxD, w_VxD = model.features(inputs_BxT), model.unembedding()
            chunk = model.loss_chunk_tokens
            return fused_lm_loss(x_BxTxD, w_VxD, targets_BxT, z_loss, chunk, mask_BxT)
        return lm_loss(model(inputs_BxT), targets_BxT, z_loss, mask_BxT)

    return loss_fn


def make_train_step(
    graphdef: Any,
    train: TrainConfig,
    z_loss: float,
    grad_accum: int,
    layout: shard.Layout = shard.SINGLE,
) -> Callable[..., tuple[TrainState, dict]]:
    """The jitted step(state, lr, batch_BxTp1, mask_BxTp1=None); `state` is donated, so the
    caller must use the returned one.

    `lr` is this step's learning rate (the schedule at the optimizer's count, e.g. from
    `lr_table`): an argument rather than a constant of the program, so every run of one shape
    and optimizer shares one step. Within a process the same jitted function is returned for
    them (a sweep's runs trace and compile it once); across processes the persistent
    compilation cache serves it. `mask_BxTp1` (optional, same shape as the batch) restricts the
    loss to its positions; without it the step is exactly the pre-training step. On a mesh
    (`layout`) the parameters are gathered for the passes and the gradients and new state
    pinned to the state's shards.
    """
    settings = tuple((name, getattr(train, name)) for name in _OPTIMIZER_FIELDS)
    return _train_step(graphdef, settings, z_loss, grad_accum, layout)


@functools.lru_cache(maxsize=16)
def _train_step(
    graphdef: Any,
    optimizer_settings: tuple[tuple[str, Any], ...],
    z_loss: float,
    grad_accum: int,
    layout: shard.Layout,
) -> Callable[..., tuple[TrainState, dict]]:
    train = TrainConfig(**dict(optimizer_settings))
    grad_fn = jax.value_and_grad(make_loss_fn(graphdef, z_loss), has_aux=True)

    def step(
        state: TrainState,
        lr: jax.Array,
        batch_BxTp1: jax.Array,
        mask_BxTp1: jax.Array | None = None,
    ) -> tuple[TrainState, dict]:
        # The schedule's place in the optimizer state is kept (its count), its value is `lr`.
        tx = make_optimizer(train, lambda count: lr)
        params = state["params"]
        whole = layout.gather(params)
        if grad_accum == 1:
            (loss, aux), grads = grad_fn(whole, batch_BxTp1, mask_BxTp1)
        else:

            def split(x_BxTp1: jax.Array | None) -> jax.Array | None:
                return (
                    None if x_BxTp1 is None else x_BxTp1.reshape(grad_accum, -1, x_BxTp1.shape[-1])
                )

            micro = (split(batch_BxTp1), split(mask_BxTp1))

            def accumulate(carry: tuple, micro_i: tuple) -> tuple[tuple, None]:
                (loss_i, aux_i), grads_i = grad_fn(whole, *micro_i)
                if mask_BxTp1 is None:
                    return jax.tree.map(jnp.add, carry, (loss_i, aux_i, grads_i)), None
                # Masked losses are means over each microbatch's own positions: weight them by
                # those counts so the step equals the one-batch mean over all positions.
                count_i = micro_i[1][:, 1:].sum().astype(jnp.float32)
                weighted = jax.tree.map(lambda x: x * count_i, (loss_i, aux_i, grads_i))
                return jax.tree.map(jnp.add, carry, (*weighted, count_i)), None

            zero = jnp.zeros((), jnp.float32)
            zeros = (zero, {"ce": zero, "z": zero}, jax.tree.map(jnp.zeros_like, params))
            if mask_BxTp1 is None:
                (loss, aux, grads), _ = jax.lax.scan(accumulate, zeros, micro)
                total = grad_accum
            else:
                (loss, aux, grads, count), _ = jax.lax.scan(accumulate, (*zeros, zero), micro)
                total = jnp.maximum(count, 1.0)
            loss, aux, grads = jax.tree.map(lambda x: x / total, (loss, aux, grads))
        grads = layout.constrain(grads)
        grad_norm = optax.tree.norm(grads)
        updates, opt_state = tx.update(grads, state["opt_state"], params)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        first_bad = jnp.where(
            (state["first_bad_step"] < 0) & ~finite, state["step"], state["first_bad_step"]
        )
        new_state = {
            "params": optax.apply_updates(params, updates),
            "opt_state": opt_state,
            "step": state["step"] + 1,
            "first_bad_step": first_bad,
        }
        return layout.constrain(new_state), {"loss": loss, "ce": aux["ce"], "grad_norm": grad_norm}

    return jax.jit(step, donate_argnums=0)


# Sequences per validation batch, whatever the run's batch size: the validation sample (train.
# eval_batches of these) is then the same for every run on a corpus and seq_len.
VAL_ROWS = 16


@functools.lru_cache(maxsize=16)  # one jitted function per model shape, as the train step
def make_eval_step(
    graphdef: Any, layout: shard.Layout = shard.SINGLE
) -> Callable[[Any, jax.Array], jax.Array]:
    """The jitted eval(params, batch_BxTp1) -> ce_B: each sequence's mean next-token
    cross-entropy (nats/token), from which the loss and its standard error follow.

    With `model.loss_chunk_tokens` set the logits are computed for a few rows at a time (about
    that many tokens), so the batch's whole (B, T, V) logits are never held, as in training.
    On a mesh the result is replicated, so that every process can read all of it.
    """

    def step(params: Any, batch_BxTp1: jax.Array) -> jax.Array:
        model = nnx.merge(graphdef, params)
        b, tp1 = batch_BxTp1.shape

        def ce(rows_RxTp1: jax.Array) -> jax.Array:
            logits_RxTxV = model(rows_RxTp1[:, :-1]).astype(jnp.float32)
            target_RxT = jnp.take_along_axis(logits_RxTxV, rows_RxTp1[:, 1:, None], -1)[..., 0]
            return (jax.nn.logsumexp(logits_RxTxV, axis=-1) - target_RxT).mean(axis=1)

        rows = b
        if model.loss_chunk_tokens:
            fit = max(1, model.loss_chunk_tokens // (tp1 - 1))
            rows = max(r for r in range(1, b + 1) if b % r == 0 and r <= fit)
        if rows == b:
            return ce(batch_BxTp1)
        return jax.lax.map(ce, batch_BxTp1.reshape(b // rows, rows, tp1)).reshape(b)

    if layout.mesh is None:
        return jax.jit(step)
    return jax.jit(step, out_shardings=NamedSharding(layout.mesh, PartitionSpec()))


def evaluate(eval_step: Callable, params: Any, batches: list[Any]) -> np.ndarray:
    """float64 (rows,): each validation sequence's mean next-token cross-entropy (nats/token)."""
    return np.concatenate(jax.device_get([eval_step(params, b) for b in batches])).astype(float)


def mean_and_se(sums_N: np.ndarray, counts_N: np.ndarray) -> tuple[float, float | None]:
    """The token-weighted mean loss of N sequences (their loss sums over their token counts),
    and its standard error with the sequence as the sampled unit (the ratio estimator's, which
    is std/sqrt(N) when every sequence has as many tokens); None for a single sequence."""
    sums_N, counts_N = np.asarray(sums_N, float), np.asarray(counts_N, float)
    n, total = len(sums_N), counts_N.sum()
    mean = float(sums_N.sum() / total)
    if n < 2:
        return mean, None
    residual_N = sums_N - mean * counts_N
    return mean, float(np.sqrt(n / (n - 1) * np.sum(residual_N**2)) / total)


def validation_sample(corpus: Corpus, n_batches: int, seq_len: int, n_devices: int) -> tuple:
    """(batches, n): the corpus's validation sample of `n_batches` x VAL_ROWS sequences (fewer
    where its split is smaller), in batches whose rows divide over `n_devices` data shards; the
    last batch is padded with rows of zeros (an empty answer mask, for a task), whose results
    are dropped (n is the number of real sequences). A batch is an array, or a tuple (tokens,
    answer_mask)."""
    batches = corpus.val_batches(n_batches, VAL_ROWS, seq_len)
    rows = VAL_ROWS * n_devices // math.gcd(VAL_ROWS, n_devices)
    n = sum(len(jax.tree.leaves(b)[0]) for b in batches)
    if rows == VAL_ROWS or not batches:
        return batches, n
    whole = jax.tree.map(lambda *xs: np.concatenate(xs), *batches)
    pad = -(-n // rows) * rows - n
    whole = jax.tree.map(lambda x: np.concatenate([x, np.zeros_like(x[:1]).repeat(pad, 0)]), whole)
    return [jax.tree.map(lambda x, i=i: x[i : i + rows], whole) for i in range(0, n + pad, rows)], n


def enable_compilation_cache(cache_dir: str) -> None:
    """Persist compiled steps across processes: each distinct shape compiles once per machine.

    JAX_COMPILATION_CACHE_DIR, when set, wins over the configured cache dir.
    """
    if jax.config.jax_compilation_cache_dir:
        return
    directory = Path(cache_dir).expanduser() / "jax"
    jax.config.update("jax_compilation_cache_dir", str(directory))
    # Small models compile in well under a second; cache those too.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pretrain(cfg: PretrainConfig) -> dict[str, Any]:
    """Train or resume the run in <out_dir>/<run_name>; return its record (as in record.json)."""
    with open_pretrain(validate(cfg)) as opened:
        return opened if isinstance(opened, dict) else opened.run()


def open_pretrain(cfg: PretrainConfig) -> contextlib.AbstractContextManager[Trainer | dict]:
    """The run dir of a validated pre-training config, opened (see `open_run`); shared by
    `pretrain` and scaling.train.group, which opens several at once."""
    enable_compilation_cache(cfg.data.cache_dir)
    run_dir = run_dir_of(cfg)
    rundir.check_same_run(run_dir, to_dict(cfg))
    return open_run(
        cfg,
        run_dir,
        make_corpus=lambda: build_corpus(cfg.data, seed=cfg.train.seed),
        make_trainer=lambda corpus: Trainer(cfg, corpus, run_dir),
    )


def run_in_dir(
    cfg: PretrainConfig,
    run_dir: Path,
    make_corpus: Callable[[], Corpus],
    make_trainer: Callable[[Corpus], Trainer],
    go: Callable[[Trainer], dict[str, Any]] = lambda trainer: trainer.run(),
) -> dict[str, Any]:
    """The life of a run dir around `go(trainer)`, shared by pre-training and fine-tuning."""
    with open_run(cfg, run_dir, make_corpus, make_trainer) as opened:
        return opened if isinstance(opened, dict) else go(opened)


@contextlib.contextmanager
def open_run(
    cfg: PretrainConfig,
    run_dir: Path,
    make_corpus: Callable[[], Corpus],
    make_trainer: Callable[[Corpus], Trainer],
) -> Iterator[Trainer | dict[str, Any]]:
    """The run dir made ready to train: its Trainer, or the record of a run already complete.

    A completed run is returned as recorded (its corpus is never built); otherwise the corpus
    is checked, the config written, and an exception inside leaves a failed record with its
    reason. Only the holder of the run dir's lock writes it (a second worker waits, see
    rundir.hold); the lock is held while open. scaling.train.group opens several at once.
    """
    previous = _completed(run_dir)
    if previous is not None:
        yield previous
        return
    # A layout the devices cannot hold fails before anything is built or written.
    shard.make_layout(cfg.parallel, cfg.train.batch_size, cfg.train.grad_accum)
    corpus = make_corpus()
    corpus.require(cfg.train.batch_size, cfg.data.seq_len)
    run_dir.mkdir(parents=True, exist_ok=True)
    with rundir.hold(run_dir):
        previous = _completed(run_dir)  # by a worker that held the lock before us
        if previous is not None:
            yield previous
            return
        rundir.check_same_run(run_dir, to_dict(cfg))  # that worker may have had other settings
        rundir.write_config(run_dir, to_dict(cfg))
        trainer = make_trainer(corpus)
        try:
            yield trainer
        except Exception as err:
            # Keep what the run had written; say why it failed so a sweep can go on and report it.
            records.write_record(
                run_dir,
                {
                    **trainer.record,
                    "status": records.STATUS_FAILED,
                    "reason": rundir.failure_reason(err),
                },
            )
            raise


def _completed(run_dir: Path) -> dict[str, Any] | None:
    previous = records.read_record(run_dir)
    if previous is not None and previous.get("status") == records.STATUS_COMPLETED:
        log.info("%s is already complete", run_dir)
        return previous
    return None


class Trainer:
    """Holds what one run needs: model, optimizer, data, checkpoints, and its record."""

    def __init__(self, cfg: PretrainConfig, corpus: Corpus, run_dir: Path):
        self.cfg, self.corpus, self.run_dir = cfg, corpus, run_dir
        t, seq_len = cfg.train, cfg.data.seq_len
        self.plan = Plan.from_config(t, seq_len)
        self.schedule = make_schedule(t, self.plan)
        self.tx = make_optimizer(t, self.schedule)
        self.lr_S = np.asarray(lr_table(self.schedule, self.plan.total_steps))  # per step
        self.layout = shard.make_layout(cfg.parallel, t.batch_size, t.grad_accum)
        self.grad_accum = microbatches(
            t, cfg.model, corpus.vocab_size, seq_len, self.layout.n_devices
        )
        self.graphdef, self.state = init_state(
            lambda: build_model(cfg.model, corpus.vocab_size, seq_len, seed=t.seed),
            self.tx,
            self.layout,
        )
        self.train_step = make_train_step(
            self.graphdef, t, cfg.model.z_loss, self.grad_accum, self.layout
        )
        self.eval_step = make_eval_step(self.graphdef, self.layout)
        val, self.val_sequences = validation_sample(
            corpus, t.eval_batches, seq_len, self.layout.n_devices
        )
        self.val_batches = jax.tree.map(self.layout.put_batch, val)
        self.ckpt = Checkpointer(run_dir / rundir.CKPT_DIR, t.keep_ckpts, t.async_ckpt)
        self.record = self._static_record()
        self.at_step = 0  # the last step taken, for the record of a run stopped at once
        self.tracker: tracking.Tracker | None = None  # opened by run(), once resumed

    def _static_record(self) -> dict[str, Any]:
        cfg, corpus = self.cfg, self.corpus
        m, seq_len = cfg.model, cfg.data.seq_len
        counts = accounting.param_counts(m, corpus.vocab_size, seq_len)
        flops = accounting.flops_per_token(m, corpus.vocab_size, seq_len)
        device = jax.devices()[0]
        entropy = corpus.entropy_nats_per_token(seq_len)
        return {
            "run_name": cfg.run_name,
            "status": records.STATUS_RUNNING,
            "reason": None,
            "model": m.name,
            "arch": m.arch,
            "d_model": m.d_model,
            "n_layers": m.n_layers,
            "n_heads": m.n_heads,
            "d_ff": m.d_ff,
            "vocab_size": corpus.vocab_size,
            "seq_len": seq_len,
            "n_params_total": counts.total,
            "n_params_nonembedding": counts.nonembedding,
            "n_params_with_head": counts.with_head,
            **{f"flops_per_token_{_slug(k)}": v for k, v in flops.items()},
            "corpus": corpus.name,
            "tokenizer": corpus.tokenizer,
            "entropy_nats_per_token": entropy,
            "bytes_per_token": corpus.bytes_per_token(),
            "tokens_target": cfg.train.tokens,
            # The fixed validation sample every eval scores (see VAL_ROWS, train.eval_batches).
            "val_sequences": self.val_sequences,
            "val_tokens_evaluated": self.val_sequences * seq_len,
            "batch_size": cfg.train.batch_size,
            "grad_accum": self.grad_accum,  # microbatches per step, as chosen (microbatches)
            "total_steps": self.plan.total_steps,
            "warmup_steps": self.plan.warmup_steps,
            "lr": cfg.train.lr,
            "schedule": cfg.train.schedule,
            "seed": cfg.train.seed,
            "backend": jax.default_backend(),
            "device_kind": device.device_kind,
            "n_devices": self.layout.n_devices,  # in use (MFU's peak is per device x this)
            "n_processes": jax.process_count(),
            "parallel": self.layout.strategy,
            "state_bytes_per_device": shard.bytes_per_device(self.state),
            "peak_flops_per_s": accounting.device_peak_flops(device.device_kind),
            "versions": versions(),
            "git_commit": git_commit(),
            "data": corpus.describe(),
        }

    def run(self) -> dict[str, Any]:
        t = self.cfg.train
        # Watched from the start: a Ctrl-C during the restore or the compile stops the run
        # before its first step, as one during training stops it after the current step.
        watch = SignalWatch(on_abort=self._record_abort)
        progress = None
        try:
            start_step = self.at_step = self._restore()
            self._open_tracker(start_step)
            self.record.update(resumed_from_step=start_step or None)
            records.write_record(self.run_dir, {**self.record, **self._progress_fields(start_step)})
            wall_start = time.perf_counter()
            compile_s = self._compile()
            self._on_start(start_step)
            stop_at = min(self.plan.total_steps, t.stop_at_step or self.plan.total_steps)
            tokens_per_step = self.plan.tokens_per_step
            progress = Progress(
                t.progress,
                t.progress_every_s,
                self.cfg.run_name,
                self.plan.total_steps,
                start_step,
                self.plan.total_steps * tokens_per_step,
                start_step * tokens_per_step,
            )
            pending: list[dict] = self.carried  # the steps of a window a stop cut short
            step = start_step
            steady_start, steady_steps = None, 0
            best_val = self._best_val_so_far()
            status, reason = records.STATUS_COMPLETED, None
            watch.poll(boundary=True)
            while step < stop_at and watch.signal is None:
                batch = self.corpus.train_batch(step, t.batch_size, self.cfg.data.seq_len)
                # A task corpus gives (tokens, answer_mask); a pre-training corpus tokens alone.
                arrays = batch if isinstance(batch, tuple) else (batch,)
                self.state, metrics = self.train_step(
                    self.state, self.lr_S[step], *map(self.layout.put_batch, arrays)
                )
                pending.append(metrics)
                step = self.at_step = step + 1
                watch.poll(boundary=step % t.log_every == 0)
                if steady_start is None:
                    # Time steady-state steps only: the first includes dispatch warm-up.
                    jax.block_until_ready(self.state["step"])
                    steady_start = time.perf_counter()
                else:
                    steady_steps += 1
                # A stop signal ends the run here: log and save as at the end.
                # (scaling.train.group.GroupTrainer._after_step does the same for each run of a
                # group: change both.)
                last = step == stop_at or watch.signal is not None
                end = step == self.plan.total_steps
                on_grid = step % t.log_every == 0 or step % t.eval_every == 0
                if on_grid or last:
                    row = self._log_row(step, pending)
                    if not (on_grid or end):
                        # A stop between log rows: keep the window's steps, so that the resumed
                        # run logs the rows of an uninterrupted one (see _restore).
                        row["partial"] = _window(pending)
                    pending = []
                    bad = int(self.state["first_bad_step"])
                    if bad >= 0:
                        status, reason = (
                            records.STATUS_DIVERGED,
                            f"non-finite loss or gradient at step {bad + 1}",
                        )
                        self.record["diverged_step"] = bad + 1
                        self._append(row)
                        break
                    if step % t.eval_every == 0 or end:  # a stop evaluates only on the grid
                        row.update(self._evaluate())
                        best_val = min(best_val, row["val_loss"])
                    self._append(row)
                    progress.note(row["train_loss"], row.get("val_loss"))
                progress.advance(1, tokens_per_step)
                if step % t.ckpt_every == 0 or last:
                    self.ckpt.save(step, self.state)
            if status == records.STATUS_COMPLETED and watch.signal is not None:
                status, reason = end_status(watch.signal, step)
            elif status == records.STATUS_COMPLETED and step < self.plan.total_steps:
                status, reason = (
                    records.STATUS_STOPPED,
                    f"stopped at step {step} (train.stop_at_step)",
                )
        finally:
            watch.restore()
            if progress is not None:
                progress.close()
            self._close_tracker()
            self.ckpt.close()
        steady_s = time.perf_counter() - steady_start if steady_start else None
        return self._finish(
            step, status, reason, best_val, compile_s, wall_start, steady_s, steady_steps
        )

    def _open_tracker(self, start_step: int) -> None:
        """The run's tracker (train.tracking), its id in the record so a resume continues it."""
        self.tracker = tracking.open_tracker(self.cfg, self.run_dir, start_step)
        if self.tracker is not None:
            self.record["tracker"] = self.tracker.describe()

    def _close_tracker(self) -> None:
        if self.tracker is not None:
            self.tracker.close()
            self.tracker = None

    def _append(self, row: dict[str, Any]) -> None:
        """A metrics row to metrics.jsonl and to the tracker."""
        records.append_metrics(self.run_dir, row)
        if self.tracker is not None:
            self.tracker.log(row)

    def _record_abort(self) -> None:
        """The record of a run a second Ctrl-C stops at once (called from the watch's thread)."""
        step = self.at_step
        reason = (
            f"a second SIGINT stopped it at once after step {step}; rerun the same command to "
            "resume from its last checkpoint"
        )
        status = {"status": records.STATUS_INTERRUPTED, "reason": reason}
        records.write_record(self.run_dir, {**self.record, **self._progress_fields(step), **status})

    def _restore(self) -> int:
        restored = self.ckpt.restore_latest(self.state)
        self.carried: list[dict] = []
        if restored is None:
            records.truncate_metrics(self.run_dir, 0)
            return 0
        step, self.state = restored
        log.info("resuming %s from step %d", self.run_dir.name, step)
        cut = [
            r for r in records.read_metrics(self.run_dir) if r["step"] == step and "partial" in r
        ]
        self.carried = _unwindow(cut[-1]["partial"]) if cut else []
        records.truncate_metrics(self.run_dir, step)  # keeps the partial row until the run ends
        return step

    def _on_start(self, start_step: int) -> None:
        """Called once the steps are compiled, before the first step (a subclass hook)."""

    def _evaluate(self) -> dict[str, Any]:
        """The eval fields of a metrics row: the validation sample's loss and standard error."""
        ce_N = evaluate(self.eval_step, self.state["params"], self.val_batches)
        ce_N = ce_N[: self.val_sequences]  # without the padding rows
        val_loss, se = mean_and_se(ce_N, np.ones_like(ce_N))
        return {"val_loss": val_loss, "val_loss_se": se, "val_bpb": self._bits_per_byte(val_loss)}

    def _compile(self) -> float:
        """Compile the train and eval steps ahead of time; the seconds it took."""
        start = time.perf_counter()
        t, seq_len = self.cfg.train, self.cfg.data.seq_len
        batch = self.layout.batch_spec((t.batch_size, seq_len + 1), jnp.int32)
        self.train_step = self.train_step.lower(self.state, LR_SPEC, batch).compile()
        eval_batch = self.layout.batch_spec(self.val_batches[0].shape, jnp.int32)
        self.eval_step = self.eval_step.lower(self.state["params"], eval_batch).compile()
        return time.perf_counter() - start

    def _log_row(self, step: int, pending: list[dict]) -> dict[str, Any]:
        fetched = jax.device_get(pending)
        return {
            "step": step,
            "tokens": step * self.plan.tokens_per_step,
            "lr": float(self.lr_S[step - 1]),
            "train_loss": float(np.mean([m["loss"] for m in fetched])),
            "train_ce": float(np.mean([m["ce"] for m in fetched])),
            "grad_norm": float(fetched[-1]["grad_norm"]),
            "time": time.time(),
        }

    def _bits_per_byte(self, loss_nats: float) -> float | None:
        """None where the bytes behind a token are unknown (pre-tokenised corpora)."""
        bytes_per_token = self.record["bytes_per_token"]
        return loss_nats / math.log(2) / bytes_per_token if bytes_per_token else None

    def _best_val_so_far(self) -> float:
        vals = [r["val_loss"] for r in records.read_metrics(self.run_dir) if "val_loss" in r]
        return min(vals, default=math.inf)

    def _progress_fields(self, step: int) -> dict[str, Any]:
        return {
            "steps": step,
            **self.corpus.token_accounting(step, self.cfg.train.batch_size, self.cfg.data.seq_len),
        }

    def _finish(
        self,
        step: int,
        status: str,
        reason: str | None,
        best_val: float,
        compile_s: float,
        wall_start: float,
        steady_s: float | None,
        steady_steps: int,
    ) -> dict[str, Any]:
        # Every checkpoint is written (ckpt.close): the stops' carried windows are done with.
        records.truncate_metrics(self.run_dir, step)
        rows = records.read_metrics(self.run_dir)
        vals = [r for r in rows if "val_loss" in r]
        tokens_per_s = None
        if steady_s and steady_steps:
            tokens_per_s = steady_steps * self.plan.tokens_per_step / steady_s
        flops = self.record["flops_per_token_6n_attn"]
        peak = self.record["peak_flops_per_s"]
        peak_in_use = peak * self.record["n_devices"] if peak else None
        record = {
            **self.record,
            **self._progress_fields(step),
            "status": status,
            "reason": reason,
            "final_train_loss": rows[-1].get("train_loss") if rows else None,
            "final_val_loss": vals[-1]["val_loss"] if vals else None,
            "final_val_loss_se": vals[-1].get("val_loss_se") if vals else None,
            "final_val_bpb": vals[-1]["val_bpb"] if vals else None,
            "best_val_loss": best_val if math.isfinite(best_val) else None,
            "wall_time_s": time.perf_counter() - wall_start,
            "compile_time_s": compile_s,
            "step_time_s": steady_s / steady_steps if tokens_per_s else None,
            "tokens_per_s": tokens_per_s,
            "mfu": accounting.mfu(tokens_per_s, flops, peak_in_use) if tokens_per_s else None,
        }
        for key, per_token in self.record.items():
            if key.startswith("flops_per_token_"):
                record["flops_" + key.removeprefix("flops_per_token_")] = (
                    per_token * record["tokens_seen"]
                )
        records.write_record(self.run_dir, record)
        return record


def _window(pending: list[dict]) -> dict[str, list[float]]:
    """The per-step metrics of a log window, for a metrics row (JSON)."""
    fetched = jax.device_get(pending)
    return {key: [float(m[key]) for m in fetched] for key in ("loss", "ce", "grad_norm")}


def _unwindow(window: dict[str, list[float]]) -> list[dict]:
    # float32, as the step returned them: the window's mean is then the same to the bit.
    n = len(window["loss"])
    return [{key: np.float32(values[i]) for key, values in window.items()} for i in range(n)]


def _slug(convention: str) -> str:
    """A FLOPs convention name as a column suffix: "6N+attn" -> "6n_attn"."""
    return convention.lower().replace("+", "_")
