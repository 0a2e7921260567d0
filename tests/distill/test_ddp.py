"""Distillation under torchrun: 2 gloo processes with batch B end with the student of 1
process with batch 2B, for the adversarial method (the discriminator's own optimiser
all-reduces its gradients in the hook) and FitNets (stage 1 freezes the layers after the
guided one, which DDP would otherwise reject as unused)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from distill_ddp_case import CASES, PER_PROCESS_BATCH, make_case  # noqa: E402

from torchslim.distill import distill_  # noqa: E402


def test_two_processes_equal_one_process_with_double_batch(tmp_path):
    drop = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(Path(__file__).parent / "distill_ddp_worker.py"), str(tmp_path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    ddp_states = torch.load(tmp_path / "ddp_states.pt", weights_only=True)
    for method, fields in CASES.items():
        teacher, student, data = make_case()
        init = {k: v.clone() for k, v in student.state_dict().items()}
        distill_(student, teacher, data, method, epochs=2, batch_size=2 * PER_PROCESS_BATCH, **fields)
        for k, v in student.state_dict().items():
            torch.testing.assert_close(ddp_states[method][k], v, atol=1e-5, rtol=0, msg=f"{method} {k}")
        assert any(not torch.allclose(init[k], v, atol=1e-3) for k, v in student.state_dict().items())
