"""Run by test_ddp.py under ``torch.distributed.run --nproc_per_node=2``: trains the tiny MLP
of ``ddp_case`` with fit() and per-process batch B; rank 0 writes the weights and history."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
from ddp_case import FIT_ARGS, PER_PROCESS_BATCH, make_case  # noqa: E402

from torchslim.train import fit  # noqa: E402


def main(out_dir: Path) -> None:
    torch.set_num_threads(1)
    model, data = make_case()
    steps = []
    history = fit(
        model,
        data,
        batch_size=PER_PROCESS_BATCH,
        after_step=[lambda ctx: steps.append((ctx.epoch, ctx.step, len(ctx.targets)))],
        **FIT_ARGS,
    )
    rank, world_size = dist.get_rank(), dist.get_world_size()
    if rank == 0:
        torch.save(model.state_dict(), out_dir / "ddp_state.pt")
        record = {"world_size": world_size, "history": history.to_dict(), "steps": steps}
        (out_dir / "ddp_record.json").write_text(json.dumps(record))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
