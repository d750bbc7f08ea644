"""Which process this is in a run of several (``torchrun``, ``accelerate launch``, ``srun torchrun``).

accelerate's ``PartialState`` is the one source: it reads the launcher's environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``...), starts the process group (NCCL on GPUs, gloo on
CPUs) and is the same state the Trainer's ``TrainingArguments`` uses. One process is a world of one:
every function here then does nothing special.
"""

from __future__ import annotations

from typing import Any, TypeVar

import torch
from accelerate import PartialState
from accelerate.utils import broadcast_object_list

T = TypeVar("T")


def cpu_only() -> bool:
    """No accelerator: processes train on CPUs (gloo), which accelerate only does when told so."""
    return not torch.accelerator.is_available()


def state() -> PartialState:
    return PartialState(cpu=cpu_only())


def world_size() -> int:
    return state().num_processes


def is_main() -> bool:
    """Rank 0 of the whole run: the one process that evaluates, writes reports and saves models."""
    return state().is_main_process


def barrier() -> None:
    state().wait_for_everyone()


def from_main(value: T | None) -> T:
    """``value`` as rank 0 has it, on every rank (a collective: every rank must call it)."""
    if world_size() == 1:
        return value  # type: ignore[return-value]
    box: list[Any] = [value]
    broadcast_object_list(box, from_process=0)
    return box[0]
