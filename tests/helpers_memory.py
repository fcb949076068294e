"""Run a snippet in a child process under an address-space limit (``resource.setrlimit``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

PRELUDE = """
import resource, sys
def _vm_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
def limit_memory(extra_mib):
    # Applied after the imports: the limit bounds what the code under test allocates.
    cap = _vm_bytes() + extra_mib * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""


def run_limited(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """``code`` (which calls ``limit_memory(MiB)`` after its imports) in a fresh interpreter."""
    script = PRELUDE + textwrap.dedent(code)
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout, env=env)
