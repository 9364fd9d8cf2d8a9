"""What production does to the tools: a worker killed for memory, a memory cap, a full disk.

Workers are real child interpreters (``onnxparity._process``) that really allocate and really die;
the full disk is a real file-size limit (RLIMIT_FSIZE) on the command's process.
"""

from __future__ import annotations

import signal

import pytest

from onnxparity import _process
from onnxparity.errors import WorkerError


def test_a_worker_killed_by_sigkill_is_reported_as_out_of_memory_with_its_peak():
    with pytest.raises(WorkerError) as caught:
        _process.call("tests.helpers:hold_then_die", 200, signal.SIGKILL, name="onnxruntime:cpu", timeout=60)
    message = str(caught.value)
    assert message.startswith("onnxruntime:cpu: killed (signal 9: out of memory?), peak memory "), message
    peak_mib = float(message.rsplit(" ", 2)[1]) * (1024 if message.endswith("GiB") else 1)
    assert 200 <= peak_mib < 1000, message  # the 200 MiB it held, and the interpreter's own


def test_another_signal_is_a_crash():
    with pytest.raises(WorkerError, match=r"^torch:cpu: worker process crashed \(killed by signal 11\)"):
        _process.call("tests.helpers:hold_then_die", 1, signal.SIGSEGV, name="torch:cpu", timeout=60)


def test_a_worker_over_max_memory_is_stopped_and_says_so():
    with pytest.raises(WorkerError, match=r"^grower: stopped, holding \d+ MiB \(over --max-memory 300 MiB\)"):
        _process.call("tests.helpers:grow", 20, 100, name="grower", timeout=60, max_rss=300 * 2**20)
    assert _process.call("tests.helpers:grow", 20, 3, name="small", timeout=60, max_rss=300 * 2**20) == 3


def test_memory_sizes_parse():
    import argparse

    from onnxparity.cli._args import memory_size

    assert memory_size("4G") == 4 * 2**30 and memory_size("512M") == 512 * 2**20 and memory_size("2GiB") == 2 * 2**30
    for bad in ("x", "100K", "0", "-1G", "nan"):
        with pytest.raises(argparse.ArgumentTypeError):
            memory_size(bad)
