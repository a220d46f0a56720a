"""Training the benchmark's adapters (ControlNet, T2I-Adapter, SP-Ctrl) on frozen SD1.5.

``run_training(TrainingOptions(...))`` trains or resumes and returns the output folder; see
:mod:`spbench.training.loop` for the loop, :mod:`spbench.training.checkpoints` for the folder
layout and :mod:`spbench.training.kcl_loss` for KCL's heatmap loss.
"""

from spbench.training.options import TrainingOptions


def run_training(options: TrainingOptions):
    from spbench.training.loop import run_training as run

    return run(options)


__all__ = ["TrainingOptions", "run_training"]
