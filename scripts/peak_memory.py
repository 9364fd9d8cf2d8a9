"""Peak resident memory of a command and of each process it starts (the toolkit's workers).

Why a script: the figures depend on the machine. It runs the command, reads every 0.2 s the
``VmHWM`` (the kernel's own peak resident size) of the command and of each of its descendants,
and prints one JSON line: exit status, seconds, the command's own peak and its workers' peaks
(largest first), in MiB.

    python scripts/peak_memory.py python -m onnxparity check vit.pth vit.onnx --n 1000 ...
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from onnxparity._process import MemoryWatch  # noqa: E402  (the workers' own memory watch)


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            children.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def main() -> int:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    started = time.time()
    proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    watches: dict[int, MemoryWatch] = {}
    while proc.poll() is None:
        for pid in descendants(proc.pid):
            watches.setdefault(pid, MemoryWatch(pid)).poll()
        time.sleep(0.2)
    peaks = {pid: w.peak // 2**20 for pid, w in watches.items()}
    own = peaks.pop(proc.pid, 0)
    print(json.dumps({"exit": proc.returncode, "seconds": round(time.time() - started, 1), "command_peak_mib": own,
                      "worker_peaks_mib": sorted(peaks.values(), reverse=True), "stderr": proc.stderr.read()[-300:]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
