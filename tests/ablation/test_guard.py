"""A killed ablation's child gets one SIGTERM, so it saves, however many threads the ablation had."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Like the trainer: the first SIGTERM starts a save that takes a while; a second one kills.
SAVER = """
import signal, sys, time
got = []
def stop(signum, frame):
    got.append(signum)
    signal.signal(signum, signal.SIG_DFL)
signal.signal(signal.SIGTERM, stop)
open(sys.argv[1] + ".ready", "w").close()
while not got:
    time.sleep(0.01)
time.sleep(1.0)
open(sys.argv[1], "w").write("saved")
"""

# The ablation's situation made deterministic: the thread that started the child exits first (the
# kernel hands the child to another thread and sends the parent-death signal), then the process is
# killed (the child reaches init: the signal again).
PARENT = """
import os, sys, threading, time
from adamae_rl.ablation.runner import launch
from adamae_rl.ablation.guard import die_with_parent
import subprocess
command = [sys.executable, "-c", {saver!r}, {out!r}]
def start():
    if {guarded}:
        launch(command, open({log!r}, "w"))
    else:
        subprocess.Popen(command, start_new_session=True, preexec_fn=die_with_parent)
    while not os.path.exists({out!r} + ".ready"):  # the child handles SIGTERM from here on
        time.sleep(0.01)
thread = threading.Thread(target=start)
thread.start()
thread.join()
time.sleep(60)
"""


def _kill_parent_and_wait(tmp_path: Path, guarded: bool) -> str:
    out = tmp_path / "state"
    code = PARENT.format(saver=SAVER, out=str(out), guarded=guarded, log=str(tmp_path / "log"))
    parent = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 60
        while not Path(f"{out}.ready").exists():
            assert time.monotonic() < deadline and parent.poll() is None
            time.sleep(0.02)
        time.sleep(0.3)  # the starting thread has exited: one parent-death signal already sent
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        time.sleep(2.0)
    finally:
        if parent.poll() is None:
            parent.kill()
    return out.read_text() if out.exists() else "killed before saving"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_guarded_child_gets_one_sigterm_and_saves(tmp_path: Path) -> None:
    assert _kill_parent_and_wait(tmp_path, guarded=True) == "saved"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_without_the_guard_the_second_signal_kills(tmp_path: Path) -> None:
    # The failure the guard exists for: the child's save is cut by the second parent-death signal.
    assert _kill_parent_and_wait(tmp_path, guarded=False) == "killed before saving"


def test_guard_passes_the_exit_status(tmp_path: Path) -> None:
    from adamae_rl.ablation.runner import GUARD

    done = subprocess.run([sys.executable, str(GUARD), sys.executable, "-c", "raise SystemExit(3)"])
    assert done.returncode == 3
