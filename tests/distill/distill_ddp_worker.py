"""Run by test_ddp.py under ``torch.distributed.run --nproc_per_node=2``: distils each case of
``distill_ddp_case`` with per-process batch B; rank 0 writes the student weights."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
from distill_ddp_case import CASES, PER_PROCESS_BATCH, make_case  # noqa: E402

from torchslim.distill import distill_  # noqa: E402


def main(out_dir: Path) -> None:
    torch.set_num_threads(1)
    states = {}
    for method, fields in CASES.items():
        teacher, student, data = make_case()
        distill_(student, teacher, data, method, epochs=2, batch_size=PER_PROCESS_BATCH, **fields)
        states[method] = student.state_dict()
    if dist.get_rank() == 0:
        torch.save(states, out_dir / "ddp_states.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
