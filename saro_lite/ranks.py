"""Which process writes under `accelerate launch` / `torchrun` (several processes, one run folder).

Every process trains; only the main one (RANK 0) writes the run folder (stage records, checkpoint
folders, metrics, the saved adapter, summaries) and prints. The others wait at `barrier()` where the main
one writes what they read next. A plain `python run_all.py` is one process: the main one."""
from __future__ import annotations

import os


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", 1) or 1)


def rank() -> int:
    return int(os.environ.get("RANK", 0) or 0)


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    """Wait until every process gets here (a no-op in a single process)."""
    if world_size() > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()
