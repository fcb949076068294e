"""cli.run_command: one ``error:`` line for the user's errors only; tracebacks for bugs and --debug."""

from __future__ import annotations

import errno
import subprocess
import sys

import pytest

from adamae_rl import cli
from adamae_rl.errors import ConfigError, InputFileError, OutputError


@pytest.fixture(autouse=True)
def no_debug(monkeypatch):
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    monkeypatch.setattr(cli, "_debug", False)


def _raise(err: BaseException):
    def body():
        raise err
    return body


@pytest.mark.parametrize("err", [
    ConfigError("mask_ratio must be in (0, 1)"), InputFileError("list.txt is a FIFO"), OutputError("x exists"),
    FileNotFoundError(errno.ENOENT, "No such file or directory", "a.pt"), ImportError("pip install safetensors"),
    OSError(errno.ENOSPC, "No space left on device", "out/last.pt"),
])
def test_user_errors_are_one_line(err: BaseException, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.run_command(_raise(err), setup=False)
    lines = capsys.readouterr().err.splitlines()
    assert stop.value.code == 2 and len(lines) == 1 and lines[0].startswith("error: ")


@pytest.mark.parametrize("err", [ValueError("bad internal value"), KeyError("missing_key"), TypeError("x"),
                                 OSError(errno.EBADF, "Bad file descriptor")])
def test_bugs_keep_their_traceback(err: BaseException) -> None:
    with pytest.raises(type(err)):  # re-raised: Python prints the traceback, exit status 1
        cli.run_command(_raise(err), setup=False)


def test_debug_shows_every_traceback(monkeypatch) -> None:
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    with pytest.raises(ConfigError):
        cli.run_command(_raise(ConfigError("x")), setup=False)
    monkeypatch.setenv(cli.DEBUG_ENV, "0")
    with pytest.raises(SystemExit):
        cli.run_command(_raise(ConfigError("x")), setup=False)
    assert cli.strip_debug_flag(["a=1", "--debug"]) == ["a=1"] and cli.debug_enabled()


@pytest.mark.slow
def test_debug_flag_on_a_command(tmp_path) -> None:
    args = [sys.executable, "-m", "adamae_rl.visualize", str(tmp_path / "missing"), "--clips", "0"]
    plain = subprocess.run(args, capture_output=True, text=True)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr and plain.stderr.count("error:") == 1
    debug = subprocess.run([*args, "--debug"], capture_output=True, text=True)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "ConfigError: --clips must be in 1..64" in debug.stderr
