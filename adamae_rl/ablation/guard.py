"""Run one command and pass it exactly one SIGTERM however often this process is signalled.

    python adamae_rl/ablation/guard.py COMMAND...

The ablation starts each training and evaluation run through this file, run as a script (only
the standard library: it starts no thread of its own). Linux sends the parent-death signal
(``PR_SET_PDEATHSIG``) each time the child is handed to another thread of a dying parent and
once more when it reaches init, so a ``kill -9`` of a multi-threaded ablation sent the trainer
two SIGTERMs: the first started its save, the second killed it mid-save. Here the guard takes
those signals and forwards the first only; the command's own parent-death signal then comes
from this single-threaded process, once.

Exit status: the command's, or 128 + N when a signal N ended it.
"""

from __future__ import annotations

import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child: SIGTERM when the parent dies, even by SIGKILL (Linux only)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class _Forwarder:
    """Forwards the first stop signal as one SIGTERM; later ones are ignored."""

    def __init__(self) -> None:
        self.child: subprocess.Popen | None = None
        self.pending = False
        self.sent = False

    def __call__(self, signum: int, frame: object) -> None:
        self.pending = True
        self.send()

    def send(self) -> None:
        if self.pending and not self.sent and self.child is not None and self.child.poll() is None:
            self.sent = True
            self.child.send_signal(signal.SIGTERM)


USAGE = """usage: python -m adamae_rl.ablation.guard COMMAND [ARG ...]

Run COMMAND and pass it exactly one SIGTERM however often this process is signalled (the
ablation runs this file as a script, so that no import starts a thread).

example: python -m adamae_rl.ablation.guard python -m adamae_rl.train --help
"""


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    forward = _Forwarder()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    forward.child = subprocess.Popen(argv, preexec_fn=die_with_parent)
    forward.send()  # a signal that came before the child existed
    code = forward.child.wait()
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
