#!/usr/bin/env python3
"""The learning rate flame-run logs at every step equals fla-org/flame's
(torchtitan's) warmup-stable-decay formula, written here from its definition:
at 1-based step s with W warmup steps, T steps and D decay steps (T - W, or
round(T * decay_ratio)), the factor is s/W while s <= W, 1 while s <= T - D + 1,
else lr_min + (1 - lr_min) * f(p), p = (s - 1 - T + D) / D, f = 1 - p,
1 - sqrt(p) or (1 + cos(pi p)) / 2. Checked for every decay type, with and
without decay_ratio, warmup and lr_min."""
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile

LR = 2e-3
STEPS = 13


def expected_lr(s, warmup, decay_type, lr_min, decay_ratio):
    decay = round(STEPS * decay_ratio) if decay_ratio is not None else STEPS - warmup
    if s <= warmup:
        factor = s / warmup
    elif s <= STEPS - decay + 1:
        factor = 1.0
    else:
        p = (s - 1 - STEPS + decay) / decay
        curve = {"linear": 1 - p, "sqrt": 1 - math.sqrt(p),
                 "cosine": 0.5 * (1 + math.cos(math.pi * p))}[decay_type]
        factor = lr_min + (1 - lr_min) * curve
    return LR * factor


def logged_lrs(flame_run, configs, scratch, text, warmup, decay_type, lr_min, decay_ratio):
    folder = os.path.join(scratch, f"{decay_type}-{warmup}-{lr_min}-{decay_ratio}")
    cmd = [flame_run, "--arch", "gla", "--config", os.path.join(configs, "gla-tiny.ini"),
           "--training.dataset", text, "--job.dump_folder", folder,
           "--training.steps", str(STEPS), "--training.batch_size", "1",
           "--training.seq_len", "16", "--checkpoint.enable_checkpoint", "false",
           "--optimizer.lr", str(LR), "--lr_scheduler.warmup_steps", str(warmup),
           "--lr_scheduler.decay_type", decay_type, "--lr_scheduler.lr_min", str(lr_min)]
    if decay_ratio is not None:
        cmd += ["--lr_scheduler.decay_ratio", str(decay_ratio)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(folder, "metrics.jsonl")) as f:
        return [(row["step"], row["lr"]) for row in map(json.loads, f)]


def main():
    top_srcdir = os.environ.get("top_srcdir", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    top_builddir = os.environ.get("top_builddir", top_srcdir)
    flame_run = os.path.join(top_builddir, "flame-run")
    failures = cases = 0
    with tempfile.TemporaryDirectory() as scratch:
        text = os.path.join(scratch, "text.txt")
        with open(text, "w") as f:
            f.write("The schedule does not care what it reads.\n" * 40)
        for decay_type, warmup, lr_min, decay_ratio in itertools.product(
                ["linear", "sqrt", "cosine"], [0, 4], [0.0, 0.1], [None, 0.3]):
            cases += 1
            rows = logged_lrs(flame_run, os.path.join(top_srcdir, "configs"), scratch, text,
                              warmup, decay_type, lr_min, decay_ratio)
            if [s for s, _ in rows] != list(range(1, STEPS + 1)):
                print(f"FAIL {decay_type} W={warmup}: steps logged {[s for s, _ in rows]}")
                failures += 1
                continue
            for s, lr in rows:
                want = expected_lr(s, warmup, decay_type, lr_min, decay_ratio)
                if not math.isclose(lr, want, rel_tol=1e-8, abs_tol=1e-15):
                    print(f"FAIL {decay_type} W={warmup} lr_min={lr_min} ratio={decay_ratio} "
                          f"step {s}: logged {lr!r}, formula {want!r}")
                    failures += 1
    print(f"{cases} schedules x {STEPS} steps: {failures} mismatches")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
