"""Freed memory kept for reuse: glibc's malloc told not to hand large blocks back to the system.

By default glibc serves a request above its mmap threshold (at most 32 MiB) with a fresh ``mmap``
and unmaps it on free, and trims the top of its heap once more than 128 KiB of it is free. So the
large tensors of every training batch (the noisy inputs of a stack of 8 networks: T = 5 × 256
pairs × 2 × 784 pixels × 4 bytes each, 64 MB) come back as fresh pages, which the kernel faults
in and zeroes one 4 KiB page at a time (measured: 35,000 page faults per batch). With both
thresholds at 1 GiB freed blocks stay in the heap for the next batch. No number changes; memory is
returned to the system only when the process ends. The processes spikemod runs call :func:`reuse_freed_memory`
(the ``spikemod`` command and every sweep worker); a script of one's own may call it too.
"""

from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["reuse_freed_memory", "THRESHOLD"]

#: Bytes up to which glibc serves allocations from its heap and keeps free memory at its top.
THRESHOLD = 1 << 30
#: mallopt parameter numbers (glibc's <malloc.h>).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def reuse_freed_memory() -> bool:
    """mallopt(M_MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD) to :data:`THRESHOLD`; whether both
    applied. Nothing changes (False) off glibc or with ``SPIKEMOD_MALLOC=system`` in the environment."""
    if os.environ.get("SPIKEMOD_MALLOC") == "system" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    return bool(libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD, THRESHOLD))
