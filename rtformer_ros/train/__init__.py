"""Training pipeline of ``rtformer train``: datasets, augmentation, recipe schedule, loop.

Importing this package is cheap (no torch): the CLI mounts `add_arguments` and calls `run`, which imports the
loop. Modules: ``config`` (options), ``datasets`` (torch dataset, sampler; layouts and checks are
`rtformer_ros.datasets`), ``transforms`` (augmentation), ``schedule`` (warm-up + poly, lr groups), ``losses``,
``history`` (CSV, curves), ``loop`` (the trainer), ``distributed`` (torchrun: process group, DDP, reductions).
Scores come from the shared `rtformer_ros.metrics.ConfusionMatrix`.
"""

from rtformer_ros.train.command import add_arguments, config_from_args, main, run
from rtformer_ros.train.config import TrainConfig, TrainConfigError

__all__ = ['TrainConfig', 'TrainConfigError', 'add_arguments', 'config_from_args', 'main', 'run']
