"""Compile ``benchmarks/walk.c`` at run time and call it through ctypes.

The library is built with the system compiler (``cc -O2``) into a temporary
directory; nothing is left in the tree. :func:`walk_batch` takes the same
inputs as :func:`refimpl.translate_batch` (a long-mode ``CpuState`` without
protection keys, one access for all addresses) and returns the same arrays.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from refimpl import CpuState, GuestMemory
from refimpl.guest.walker import walk_context

SOURCE = Path(__file__).with_name("walk.c")
CFLAGS = ["-O2", "-shared", "-fPIC"]


def compiler() -> str | None:
    """The C compiler to use: ``$CC``, else ``cc``; None if there is none."""
    cc = os.environ.get("CC", "cc")
    return cc if shutil.which(cc) else None


class CWalker:
    """The compiled walk loop (``walk4`` in ``walk.c``)."""

    def __init__(self) -> None:
        cc = compiler()
        if cc is None:
            raise RuntimeError("no C compiler (cc) found")
        self._dir = tempfile.TemporaryDirectory(prefix="refimpl-walk-")
        lib = Path(self._dir.name) / "libwalk.so"
        subprocess.run([cc, *CFLAGS, "-o", str(lib), str(SOURCE)], check=True)
        self.command = " ".join([cc, *CFLAGS])
        self._lib = ctypes.CDLL(str(lib))
        f = self._lib.walk4
        p = ctypes.c_void_p
        f.argtypes = [p, ctypes.c_uint64, ctypes.c_uint64, p, ctypes.c_uint32, ctypes.c_uint32,
                      ctypes.c_int, ctypes.c_int, p, ctypes.c_size_t, p, p, p, p, p]
        f.restype = ctypes.c_int
        self._walk4 = f

    def close(self) -> None:
        self._dir.cleanup()

    def walk_batch(self, mem: GuestMemory, cpu: CpuState, gvas: np.ndarray, access: int = 0,
                   *, set_ad: bool = True):
        """``(gpa, fault, vector, error_code, level)``, as translate_batch gives.

        The output arrays are allocated on each call, as translate_batch
        allocates its own.
        """
        ctx = walk_context(cpu)
        if ctx.root_level != 4 or ctx.pkru_mask:
            raise ValueError("walk.c models four-level paging without protection keys")
        pfec = access & 0x16
        if cpu.ac and not access & (1 << 48):
            pfec |= 8
        perm_byte = ctx.permissions[pfec >> 1]
        rsvd = np.array(ctx.rsvd.rsvd_bits_mask, dtype=np.uint64)
        words = np.frombuffer(mem.buffer, dtype="<u8", count=mem.size // 8)
        gvas = np.ascontiguousarray(gvas, dtype=np.uint64)
        n = len(gvas)
        gpa = np.empty(n, np.uint64)
        fault = np.empty(n, np.bool_)
        vector = np.empty(n, np.uint8)
        err = np.empty(n, np.uint64)
        level = np.empty(n, np.uint8)
        ptr = lambda a: a.ctypes.data  # noqa: E731
        self._walk4(ptr(words), len(words), cpu.cr3, ptr(rsvd), perm_byte, access & 0x16,
                    int(ctx.has_pferr_fetch), int(set_ad), ptr(gvas), n,
                    ptr(gpa), ptr(fault), ptr(vector), ptr(err), ptr(level))
        return gpa, fault, vector, err, level
