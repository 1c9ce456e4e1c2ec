"""Pre-train one model, or sweep a grid of them.

python experiments/pretrain.py model=<rung> data=<corpus> train.tokens=<D>
python experiments/pretrain.py -m experiment=isoflop_cpu [hydra/launcher=joblib]
"""

import hydra
from omegaconf import DictConfig

from scaling import cli
from scaling.cli import exit_if_stopped, run_entry
from scaling.config import register_configs, run_dir_of, to_dataclass
from scaling.sweep.groups import group_configs
from scaling.train.job import pretrain_job
from scaling.train.rundir import record_failure

register_configs()


def _pretrain(cfg: DictConfig) -> float | None:
    # A sweep job may carry several runs of one shape (group_runs): they train together.
    configs = group_configs(cfg) or [to_dataclass(cfg)]
    records = pretrain_job(configs)
    for config, record in zip(configs, records, strict=True):
        loss = record.get("final_val_loss")
        print(f"{record['status']}: {run_dir_of(config)}  final val loss {loss}")
    for config, record in zip(configs, records, strict=True):
        exit_if_stopped(record, run_dir_of(config))  # a signal stops a group's runs together
    return records[0].get("final_val_loss")


@hydra.main(config_path="../conf", config_name="pretrain", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    # In a sweep (-m) a failing point is recorded in its run dir and the sweep goes on.
    return run_entry(_pretrain, cfg, on_failure=record_failure)


if __name__ == "__main__":
    cli.main(main)
