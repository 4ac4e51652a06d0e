"""The CPU's ISA flags as the CPUID instruction reports them, read in this process.

Under qemu-user the guest's CPU is visible only through CPUID: `/proc/cpuinfo` is the host's, and a child process
runs natively, outside the emulation. So the emulation worker reads its flags here, by executing CPUID itself
(a few bytes of machine code in an executable page, called through ctypes), and never opens a file or spawns a
process to learn them. The flag names are /proc/cpuinfo's, as `isa.toml`'s `recorded` list spells them.

Standard library only: the worker imports this before anything heavy.
"""

from __future__ import annotations

import ctypes
import mmap
import platform
from functools import cache
from typing import Any

# (leaf, subleaf, register, bit) -> flag, from the Intel SDM (vol. 2A, CPUID) and AMD's APM (vol. 3, E.3).
_BITS: dict[str, tuple[int, int, str, int]] = {
    "sse4_2": (1, 0, "ecx", 20),
    "avx": (1, 0, "ecx", 28),
    "fma": (1, 0, "ecx", 12),
    "f16c": (1, 0, "ecx", 29),
    "avx2": (7, 0, "ebx", 5),
    "avx512f": (7, 0, "ebx", 16),
    "avx512bw": (7, 0, "ebx", 30),
    "avx512_vnni": (7, 0, "ecx", 11),
    "amx_bf16": (7, 0, "edx", 22),
    "amx_tile": (7, 0, "edx", 24),
    "amx_int8": (7, 0, "edx", 25),
    "avx_vnni": (7, 1, "eax", 4),
    "avx512_bf16": (7, 1, "eax", 5),
}
_REGISTERS = ("eax", "ebx", "ecx", "edx")

# void cpuid(uint32 leaf [edi], uint32 subleaf [esi], uint32 out[4] [rdx]), System V x86-64:
#   push rbx; mov r8, rdx; mov eax, edi; mov ecx, esi; cpuid;
#   mov [r8], eax; mov [r8+4], ebx; mov [r8+8], ecx; mov [r8+12], edx; pop rbx; ret
_CODE = bytes.fromhex("534989d089f889f10fa241890041895804418948084189500c5bc3")


class CpuidUnavailable(RuntimeError):
    """Not an x86-64 process, or no executable page could be mapped (a hardened kernel)."""


@cache
def _function() -> tuple[mmap.mmap, Any]:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        raise CpuidUnavailable(f"CPUID is an x86-64 instruction; this process runs on {platform.machine()}")
    try:
        page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except (OSError, ValueError) as exc:
        raise CpuidUnavailable(f"no executable page for the CPUID stub: {exc}") from None
    page.write(_CODE)
    address = ctypes.addressof(ctypes.c_char.from_buffer(page))
    prototype = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32))
    return page, prototype(address)  # the page is kept alive with the function


def cpuid(leaf: int, subleaf: int = 0) -> dict[str, int]:
    """The four registers CPUID leaves for (leaf, subleaf)."""
    out = (ctypes.c_uint32 * 4)()
    _function()[1](leaf, subleaf, out)
    return dict(zip(_REGISTERS, out, strict=True))


@cache
def flags() -> frozenset[str]:
    """The flags of `_BITS` that CPUID sets, on leaves the CPU says it has (a leaf above the maximum answers with
    the highest leaf's data on Intel, which would invent flags)."""
    highest = cpuid(0)["eax"]
    subleaves_of_7 = cpuid(7, 0)["eax"] if highest >= 7 else -1
    found = set()
    for name, (leaf, subleaf, register, bit) in _BITS.items():
        if leaf > highest or (leaf == 7 and subleaf > subleaves_of_7):
            continue
        if cpuid(leaf, subleaf)[register] >> bit & 1:
            found.add(name)
    return frozenset(found)


def vendor() -> str:
    regs = cpuid(0)
    return b"".join(regs[r].to_bytes(4, "little") for r in ("ebx", "edx", "ecx")).decode("ascii", "replace")
