"""lmforecast pins PyTorch's CPU kernels to AVX2 on x86-64 (lmforecast/__init__.py), so that an AVX-512 machine
trains the same weights as an AVX2 one; a user's own ATEN_CPU_CAPABILITY is kept. Each case runs in a fresh
process: ATen reads the variable once, at its first CPU dispatch."""

import os
import subprocess
import sys

import pytest

from lmforecast import _x86_flags

PROBE = "import lmforecast, torch; print(torch.backends.cpu.get_cpu_capability())"


def _capability(**env) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"} | env
    return subprocess.run([sys.executable, "-c", PROBE], env=clean, capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.skipif(not {"avx2", "fma"} <= _x86_flags(), reason="pinned only on Linux x86-64 CPUs with AVX2 and FMA")
def test_kernels_pinned_to_avx2():
    assert _capability() == "AVX2"


def test_a_users_own_capability_is_kept():
    assert _capability(ATEN_CPU_CAPABILITY="default") == "DEFAULT"
