"""DDP for real: 2 gloo processes under torch.distributed.run with batch B each must end with
the weights of 1 process with batch 2B (same seed, same shuffle order, mean loss)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from ddp_case import FIT_ARGS, N_EXAMPLES, PER_PROCESS_BATCH, make_case  # noqa: E402

from torchslim.train import fit  # noqa: E402


def test_two_process_ddp_equals_one_process_with_double_batch(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    }
    env["OMP_NUM_THREADS"] = "1"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(Path(__file__).parent / "ddp_worker.py"),
        str(tmp_path),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]

    record = json.loads((tmp_path / "ddp_record.json").read_text())
    ddp_state = torch.load(tmp_path / "ddp_state.pt", weights_only=True)
    steps_per_epoch = N_EXAMPLES // (2 * PER_PROCESS_BATCH)
    assert record["world_size"] == 2
    assert record["steps"] == [
        [e, e * steps_per_epoch + s, PER_PROCESS_BATCH]
        for e in range(2)
        for s in range(steps_per_epoch)
    ]

    model, data = make_case()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    history = fit(model, data, batch_size=2 * PER_PROCESS_BATCH, **FIT_ARGS)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(ddp_state[k], v, atol=1e-5, rtol=0)
        assert not torch.allclose(init[k], v, atol=1e-3)  # it did train
    # the reported loss is averaged over both processes
    assert record["history"]["train_loss"] == [
        __import__("pytest").approx(x, abs=1e-6) for x in history.train_loss
    ]
