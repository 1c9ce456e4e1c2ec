"""Fine-tune a pre-trained run on a task, train the same model from scratch, or only evaluate.

python experiments/finetune.py init_from=runs/<run> task=<name> train.tokens=<D_F>
python experiments/finetune.py model=<rung> data.seq_len=<T> task=<name> train.tokens=<D_F>
python experiments/finetune.py init_from=runs/<run> task=<name> train.tokens=0  # few-shot eval
"""

import hydra
from omegaconf import DictConfig

from scaling import cli
from scaling.cli import exit_if_stopped, run_entry
from scaling.config import FinetuneConfig, register_configs, run_dir_of, to_dataclass
from scaling.train.rundir import record_failure

register_configs()


def _finetune(cfg: DictConfig) -> float | None:
    from scaling.tasks.finetune import finetune  # here: see experiments/pretrain.py

    config = to_dataclass(cfg, FinetuneConfig)
    record = finetune(config)
    print(
        f"{record['status']}: {run_dir_of(config)}  final val loss {record['final_val_loss']}"
        f"  exact match {record.get('task_exact_match')}"
    )
    exit_if_stopped(record, run_dir_of(config))
    return record["final_val_loss"]


@hydra.main(config_path="../conf", config_name="finetune", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    # In a sweep (-m) a failing point is recorded in its run dir and the sweep goes on.
    return run_entry(_finetune, cfg, on_failure=record_failure)


if __name__ == "__main__":
    cli.main(main)
