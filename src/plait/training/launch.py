"""`plait train --nproc N`: hand the command over to torchrun, which starts N processes of `plait train` on this
machine and watches them (one failing stops the others)."""

from __future__ import annotations

import subprocess
import sys


def torchrun_command(nproc: int, plait_args: list[str]) -> list[str]:
    """`python -m torch.distributed.run --standalone --nproc-per-node N -m plait ARGS`: a single-node rendezvous on a
    free local port, so several such runs can share a machine."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "plait", *plait_args]


def run_torchrun(nproc: int, plait_args: list[str]) -> int:
    """Run the processes to the end; their exit status."""
    return subprocess.call(torchrun_command(nproc, plait_args))
