#!/usr/bin/env python3
"""Every CUDA kernel of kernels/ and plugins/ is launched as a programmatic
dependent (launch_kernel, kernels/cuda_launch.cuh): its blocks may start
while the kernel before it still runs, so its first statement must be
await_inputs(), and nothing there may launch with <<<...>>>, which would
leave a kernel out of that rule's reach. A kernel without the wait reads
its inputs before they are written, on the GPU only and not every time:
this scan of the sources is what catches it on a machine without one."""
import os
import re
import sys

TOP = os.environ.get("top_srcdir", os.path.join(os.path.dirname(__file__), ".."))


def sources():
    for folder in ("kernels", "plugins"):
        for root, _, files in os.walk(os.path.join(TOP, folder)):
            for name in sorted(files):
                if name.endswith((".cu", ".cuh")):
                    yield os.path.join(root, name)


def strip_comments(text):
    """comments blanked, line breaks kept, so positions still give lines"""
    def blank(m):
        return re.sub(r"[^\n]", " ", m.group(0))
    return re.sub(r"//[^\n]*|/\*.*?\*/", blank, text, flags=re.S)


def body_start(text, at):
    """the index of the '{' opening the definition whose declaration starts at
    `at`, or None for a declaration alone"""
    depth = 0
    for i in range(at, len(text)):
        c = text[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif depth == 0 and c == ";":
            return None
        elif depth == 0 and c == "{":
            return i
    return None


def problems(path):
    text = strip_comments(open(path, encoding="utf-8").read())
    line = lambda i: text.count("\n", 0, i) + 1
    found, kernels = [], 0
    for m in re.finditer(r"\b__global__\b", text):
        brace = body_start(text, m.end())
        if brace is None:
            continue
        kernels += 1
        if not re.match(r"\s*await_inputs\(\);", text[brace + 1:]):
            found.append(f"{os.path.relpath(path, TOP)}:{line(m.start())}: a kernel whose first statement is not await_inputs();")
    for m in re.finditer(r"<<<", text):
        found.append(f"{os.path.relpath(path, TOP)}:{line(m.start())}: a launch with <<<...>>> instead of launch_kernel")
    return found, kernels


def main():
    all_found, total = [], 0
    for path in sources():
        found, kernels = problems(path)
        all_found += found
        total += kernels
    for p in all_found:
        print("FAIL", p)
    print(f"{total} kernels scanned, {len(all_found)} problems")
    # the scan found the kernels at all: the folders hold dozens of them
    if total < 20:
        print("FAIL fewer than 20 kernels found: the scan is not reading the sources")
        return 1
    return 1 if all_found else 0


if __name__ == "__main__":
    sys.exit(main())
