"""The task kinds by name, and the named configs (conf/task/<name>.yaml) that build them.

Kinds (`TASKS`) and their params (defaults in each class):
`addition` (digits), `multiplication` (digits_a, digits_b), `reverse` and `copy` (length,
alphabet), `modular` (modulus, op), `kv_retrieval` (n_pairs, key_len, value_len, alphabet) and
`facts` (chain, min_rank, max_rank and the synthetic world's params).
Operands are uniform in [0, 10^digits) (as in GPT-3's arithmetic tasks). Named configs live in
`conf/task/<name>.yaml` and load with `task_config(name)`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from scaling.config import ConfigError, TaskConfig
from scaling.tasks.arithmetic import Addition, Modular, Multiplication
from scaling.tasks.facts import Facts
from scaling.tasks.strings import Copy, KVRetrieval, Reverse
from scaling.tasks.task import Task

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")

TASKS: dict[str, type[Task]] = {
    cls.kind: cls for cls in (Addition, Multiplication, Modular, Reverse, Copy, KVRetrieval, Facts)
}


def default_conf_dir() -> Path:
    """conf/task of a source checkout (next to src/), else of the working directory."""
    root = Path(__file__).resolve().parents[3]
    return (root if (root / "pyproject.toml").exists() else Path.cwd()) / "conf" / "task"


def available_tasks(conf_dir: Path | None = None) -> list[str]:
    """Names of the task configs in conf_dir (conf/task by default)."""
    return sorted(p.stem for p in (conf_dir or default_conf_dir()).glob("*.yaml"))


def _load_task_yaml(path: Path) -> TaskConfig:
    try:
        loaded = OmegaConf.load(path)
        if "name" not in loaded:  # a config is named by its file unless it says otherwise
            loaded.name = path.stem
        cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(TaskConfig), loaded))
    except OmegaConfBaseException as err:
        raise ConfigError(f"{path}: not a task config ({err})".replace("\n", " ")) from err
    assert isinstance(cfg, TaskConfig)
    return cfg


def task_config(name: str, conf_dir: Path | None = None, key: str = "task") -> TaskConfig:
    """The TaskConfig of conf/task/<name>.yaml, or of kind `name` with its default params.

    `key` names the config entry that held `name` in the ConfigError for an unknown task.
    """
    folder = conf_dir or default_conf_dir()
    path = folder / f"{name}.yaml"
    if isinstance(name, str) and _SAFE_NAME.match(name) and path.is_file():
        return _load_task_yaml(path)
    if name in TASKS:
        return TaskConfig(name=name, kind=name, params={})
    names = ", ".join(available_tasks(folder))
    raise ConfigError(
        f"{key}={name!r} is neither a task config in {folder} ({names}) "
        f"nor a task kind ({', '.join(TASKS)})"
    )


def build_task(cfg: TaskConfig) -> Task:
    """The task a config describes; ConfigError naming the task and key if it cannot work."""
    if cfg.kind not in TASKS:
        raise ConfigError(f"task {cfg.name}: kind={cfg.kind!r} is not one of {list(TASKS)}")
    if not (isinstance(cfg.n_eval, int) and cfg.n_eval >= 1):
        raise ConfigError(f"task {cfg.name}: n_eval={cfg.n_eval!r} must be a positive integer")
    if not (isinstance(cfg.few_shot, int) and cfg.few_shot >= 0):
        raise ConfigError(f"task {cfg.name}: few_shot={cfg.few_shot!r} must be an integer >= 0")
    if not isinstance(cfg.params, Mapping):
        raise ConfigError(f"task {cfg.name}: params={cfg.params!r} must be a mapping")
    return TASKS[cfg.kind](cfg)
