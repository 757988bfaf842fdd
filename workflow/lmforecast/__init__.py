"""lmforecast: measure pre-training runs and fit the predictors that say which choices pay off downstream."""

import os
import platform

__version__ = "0.1.0"


def _x86_flags() -> set[str]:
    """The CPU's feature flags on Linux x86-64 (empty elsewhere: there is no /proc/cpuinfo to read)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return set()
    try:
        with open("/proc/cpuinfo") as f:
            return next((set(line.split(":", 1)[1].split()) for line in f if line.startswith("flags")), set())
    except OSError:
        return set()


# PyTorch picks its CPU kernels by the widest vector unit it finds (AVX-512 or AVX2 on x86-64), and the two
# round differently: the default sweep trained on an AVX-512 machine gave other tables than on an AVX2 one
# (README, "Guarantees"). Pinning AVX2, which every x86-64 CPU since 2013 has, gives the same tables on all of
# them. Set before any kernel runs (ATen reads it once, at its first CPU dispatch) and inherited by every job;
# a value of one's own (e.g. avx512: the wider kernels) is kept.
if "ATEN_CPU_CAPABILITY" not in os.environ and {"avx2", "fma"} <= _x86_flags():
    os.environ["ATEN_CPU_CAPABILITY"] = "avx2"
