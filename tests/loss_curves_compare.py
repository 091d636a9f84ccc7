#!/usr/bin/env python3
"""tests/loss_curves.py compare, on two made-up metrics files whose
differences are known: the loss B differs from A by +2.5 % at step 3, -1.5 %
at step 7 and +0.2 % at step 9, and equals it elsewhere; A has one step B
lacks (compared: only the steps both have). The report must give the largest
difference and its step, the counts over 2 % and 1 %, the first step over
1e-3 and the mean signed difference per hundred steps. Files with no step in
common are an error (exit status not 0, one line naming both)."""
import json
import os
import subprocess
import sys
import tempfile

TOOL = os.path.join(os.environ.get("top_srcdir", os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                    "tests", "loss_curves.py")
CHANGES = {3: 0.025, 7: -0.015, 9: 0.002}


def write(path, rows):
    with open(path, "w") as f:
        for step, loss in rows:
            f.write(json.dumps({"step": step, "loss": loss, "lr": 1e-3}) + "\n")


def compare(a, b):
    return subprocess.run([sys.executable, TOOL, "compare", a, b], capture_output=True, text=True)


def main():
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        a, b, other = (os.path.join(tmp, n) for n in ("a.jsonl", "b.jsonl", "other.jsonl"))
        base = {s: 4.0 - 0.1 * s for s in range(1, 11)}
        write(a, sorted(base.items()) + [(11, 2.0)])
        write(b, [(s, v * (1 + CHANGES.get(s, 0.0))) for s, v in sorted(base.items())])
        write(other, [(50, 1.0)])
        r = compare(a, b)
        mean = 100 * sum(CHANGES.values()) / len(base)
        expected = [
            "steps compared        10 (1..10)",
            "largest difference    2.50 % (step 3)",
            "steps over 2 %        1",
            "steps over 1 %        2",
            "first step over 1e-3  3",
            f"mean B-A, steps 1-100: {mean:+.2f} %",
        ]
        got = r.stdout.splitlines()
        for line in expected:
            ok = line in got
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {line}")
        if r.returncode != 0:
            failures += 1
            print(f"FAIL compare exited {r.returncode}: {r.stderr.strip()}")
        r = compare(a, other)
        ok = r.returncode != 0 and "share no logged step" in r.stderr
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} no common step: exit {r.returncode}, {r.stderr.strip()}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
