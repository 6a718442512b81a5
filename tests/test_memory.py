"""spikemod keeps freed memory for reuse (spikemod.memory): a large tensor allocated again and
again is served from malloc's heap, not faulted in page by page."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

#: Allocates a 64 MB tensor 5 times per round, 4 rounds; prints the minor page faults of the last.
ALLOCATE = """
import resource, torch
from spikemod.memory import reuse_freed_memory
reuse_freed_memory()
faults = []
for _ in range(4):
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        torch.ones(16 * 2**20)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start)
print(faults[-1])
"""


def _last_round_faults(malloc: str) -> int:
    env = {**os.environ, "SPIKEMOD_MALLOC": malloc}
    done = subprocess.run([sys.executable, "-c", ALLOCATE], env=env, capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the thresholds are glibc's")
def test_freed_memory_is_reused():
    # 64 MB is 16,384 pages of 4 KiB: the system allocator faults them in for every tensor (fewer
    # where the kernel backs them with huge pages); reused memory is not faulted in again
    system, reuse = _last_round_faults("system"), _last_round_faults("reuse")
    assert system >= 5 * 32  # at least one fault per 2 MiB page of each tensor
    assert reuse * 10 < system


def test_system_malloc_is_left_alone(monkeypatch):
    from spikemod.memory import reuse_freed_memory

    monkeypatch.setenv("SPIKEMOD_MALLOC", "system")
    assert reuse_freed_memory() is False
