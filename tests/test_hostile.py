"""What a hostile user tries: tampered and torn checkpoints, concurrent runs, full disks, bad settings,
bad files and API misuse. Each case ends in one clear ``error:`` line (or a logged, counted
fallback), never a traceback, and never runs code or writes where it must not."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers_cli import REPO, cli_env, run_cli, smoke_config, smoke_run

from adamae_rl import train
from adamae_rl.training.state import write_run_config
from adamae_rl.utils.rundir import RunDirBusyError, RunDirLock

pytestmark = pytest.mark.slow


def one_error_line(result: subprocess.CompletedProcess, *needles: str) -> str:
    """Assert a failed command printed exactly one ``error:`` line (holding ``needles``) and no traceback."""
    assert result.returncode != 0, result.stdout[-2000:]
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    assert "weights_only=False" not in result.stderr
    return errors[0]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12-step smoke run with checkpoints at steps 6 and 12 (copied by tests that change it)."""
    return smoke_run(tmp_path_factory.mktemp("hostile") / "run")


def copy_run(run: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(run, dest)
    return dest


def tamper(run: Path, **config_changes) -> None:
    """Rewrite every checkpoint's stored config (it still loads with weights_only=True)."""
    for path in (run / "checkpoints").glob("*.pt"):
        state = torch.load(path, weights_only=True)
        state["config"].update(config_changes)
        torch.save(state, path)


# --- security: a checkpoint is data --------------------------------------------------------------
@pytest.mark.parametrize("command", ["visualize", "finetune", "train"])
def test_checkpoint_target_never_runs(finished_run: Path, tmp_path: Path, command: str) -> None:
    run = copy_run(finished_run, tmp_path / "run")
    sentinel = tmp_path / "sentinel"
    tamper(run, policy={"_target_": "os.system", "command": f"touch {sentinel}", "name": "adaptive"})
    if command == "train":  # resume: the same run directory, the user's own config
        result = run_cli("adamae_rl.train", "experiment=smoke", f"run_dir={run}", cwd=tmp_path)
        one_error_line(result, "different config", "policy")
    elif command == "visualize":
        one_error_line(run_cli("adamae_rl.visualize", str(run), "--clips", "1", cwd=tmp_path), "os.system", "not allowed")
        # Even when "allowed", a target that is not a MaskingPolicy subclass is never called.
        allowed = run_cli("adamae_rl.visualize", str(run), "--clips", "1", "--allow-target", "os.system", cwd=tmp_path)
        one_error_line(allowed, "not a MaskingPolicy subclass")
    else:  # evaluating the encoder builds no policy at all
        result = run_cli("adamae_rl.finetune", str(run), "--protocol", "probe", "--train-clips", "16",
                         "--val-clips", "8", "--probe-iters", "2", "--no-progress", cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
    assert not sentinel.exists()


def test_checkpoint_imports_are_not_imported(finished_run: Path, tmp_path: Path) -> None:
    run = copy_run(finished_run, tmp_path / "run")
    sentinel = tmp_path / "sentinel"
    (tmp_path / "planted.py").write_text(f"open({str(sentinel)!r}, 'w').close()\n")
    tamper(run, imports=["planted"], policy={"name": "planted_policy"})
    result = run_cli("adamae_rl.visualize", str(run), "--clips", "1", cwd=tmp_path)
    one_error_line(result, "unknown policy 'planted_policy'", "--import")
    assert not sentinel.exists()


def test_allowed_masking_policy_target_loads(finished_run: Path, tmp_path: Path) -> None:
    run = copy_run(finished_run, tmp_path / "run")
    target = "adamae_rl.policies.adaptive.AdaptiveMasking"  # the class the run trained, by import path
    tamper(run, policy={"_target_": target, "name": "adaptive"})
    refused = run_cli("adamae_rl.visualize", str(run), "--clips", "1", "--out", "refused", cwd=tmp_path)
    one_error_line(refused, target, "--allow-target")
    allowed = run_cli("adamae_rl.visualize", str(run), "--clips", "1", "--out", "ok", "--allow-target", target, cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr[-2000:]
    assert (tmp_path / "ok" / "overview.png").is_file() and not (tmp_path / "refused").exists()
    # Weights that do not fit the policy the config builds: one line, not a state-dict traceback.
    tamper(run, policy={"name": "tube"})
    one_error_line(run_cli("adamae_rl.visualize", str(run), "--clips", "1", cwd=tmp_path), "policy weights do not fit")


class _Payload:
    def __init__(self, sentinel: str) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


def test_pickle_payload_is_refused_without_advice_to_unpickle(finished_run: Path, tmp_path: Path) -> None:
    run = copy_run(finished_run, tmp_path / "run")
    sentinel = tmp_path / "sentinel"
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    state["extra"] = _Payload(str(sentinel))
    torch.save(state, run / "checkpoints" / "last.pt")
    for module in ("adamae_rl.visualize", "adamae_rl.finetune"):
        one_error_line(run_cli(module, str(run), cwd=tmp_path), "last.pt", "refusing")
    assert not sentinel.exists()


# --- crashes and concurrency ---------------------------------------------------------------------
@pytest.mark.parametrize("damage", [b"", b"garbage" * 100, "truncate"])
def test_unreadable_last_checkpoint_falls_back_to_periodic(finished_run: Path, tmp_path: Path, damage) -> None:
    run = copy_run(finished_run, tmp_path / "run")
    last = run / "checkpoints" / "last.pt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2] if damage == "truncate" else damage)
    (run / "checkpoints" / "step_000012.pt").unlink()  # leave step 6 as the newest readable one
    result = run_cli("adamae_rl.train", "experiment=smoke", f"run_dir={run}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (run / "train.log").read_text()
    assert "last.pt" in log and "resuming from step_000006.pt instead" in log
    assert json.loads((run / "summary.json").read_text())["steps"] == 12
    # With no readable checkpoint left: one line naming them, nothing overwritten.
    for path in (run / "checkpoints").glob("*.pt"):
        path.write_bytes(b"junk")
    one_error_line(run_cli("adamae_rl.train", "experiment=smoke", f"run_dir={run}", cwd=tmp_path), "no readable checkpoint")
    assert all(p.read_bytes() == b"junk" for p in (run / "checkpoints").glob("*.pt"))
    # visualize names the bad file in one line too.
    one_error_line(run_cli("adamae_rl.visualize", str(run), cwd=tmp_path), "last.pt", "torn or not a checkpoint")


def test_second_run_on_the_same_directory_refuses(tmp_path: Path) -> None:
    run = tmp_path / "run"
    lock = RunDirLock(run).acquire()  # a live run holds the directory
    try:
        result = run_cli("adamae_rl.train", "experiment=smoke", f"run_dir={run}", cwd=tmp_path)
        one_error_line(result, "another run", str(os.getpid()))
        assert not (run / "metrics.jsonl").exists() and not (run / "checkpoints").exists()
    finally:
        lock.release()


def test_lock_of_a_killed_run_is_not_stuck(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from adamae_rl.utils.rundir import RunDirLock; "
         f"lock = RunDirLock({str(tmp_path)!r}).acquire(); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env=cli_env(), cwd=REPO,
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunDirBusyError, match="another run"):
        RunDirLock(tmp_path).acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    RunDirLock(tmp_path).acquire().release()


def test_disk_full_while_checkpointing_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = run_cli("adamae_rl.train", "experiment=smoke", f"run_dir={run}", "trainer.max_steps=6", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    good = (run / "checkpoints" / "last.pt").read_bytes()
    limit = len(good) // 2  # big enough for logs and metrics, too small for a checkpoint

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(
        [sys.executable, "-m", "adamae_rl.train", "experiment=smoke", f"run_dir={run}", "trainer.max_steps=12"],
        cwd=tmp_path, env=cli_env(), capture_output=True, text=True, preexec_fn=small_files, timeout=600,
    )
    one_error_line(result, "cannot write checkpoint", "last.pt", "file too large", "still holds the previous checkpoint")
    assert (run / "checkpoints" / "last.pt").read_bytes() == good
    assert not [p for p in (run / "checkpoints").iterdir() if ".tmp" in p.name]


def test_stale_temporary_checkpoints_are_removed(finished_run: Path, tmp_path: Path) -> None:
    run = copy_run(finished_run, tmp_path / "run")
    stale = [run / "checkpoints" / ".last.pt.tmp4242", run / "checkpoints" / ".step_000006.pt.tmp99", run / ".config.yaml.tmp"]
    for path in stale:
        path.write_bytes(b"x" * 1000)
    keep = run / "checkpoints" / "notes.txt"
    keep.write_text("mine")
    summary = train.run(smoke_config(), run)
    assert summary["steps"] == 12
    assert not any(p.exists() for p in stale) and keep.exists()


def test_refused_resume_writes_nothing(finished_run: Path, tmp_path: Path) -> None:
    run = copy_run(finished_run, tmp_path / "run")
    write_run_config(smoke_config(), run, ["experiment=smoke"])
    (run / "train.log").write_text("the first run's log\n")  # as a run started from the command line leaves it
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}
    result = run_cli("adamae_rl.train", "experiment=smoke", f"run_dir={run}", "mask_ratio=0.5", cwd=tmp_path)
    one_error_line(result, "different config", "mask_ratio")
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}
    assert after == before and not (run / ".hydra").exists()


# --- configuration: one schema, every message names the key and the value -----------------------
@pytest.mark.parametrize(
    "override, needles",
    [
        ("trainer.max_steps=0", ["trainer.max_steps", "got 0"]),
        ("trainer.max_steps=-5", ["trainer.max_steps", "got -5"]),
        ("model.patch_size=0", ["model.patch_size", "got 0"]),
        ("trainer.ckpt_every=0", ["trainer.ckpt_every", "got 0"]),
        ("trainer.log_every=0", ["trainer.log_every", "got 0"]),
        ("trainer.eval_batches=0", ["trainer.eval_batches", "got 0"]),
        ("+foo=1", ["foo: unknown setting"]),
        ("+trainer.max_step=5", ["trainer.max_step: unknown setting"]),
        ("trainer.batch_sze=5", ["trainer.batch_sze"]),
        ("trainer.batch_size=abc", ["trainer.batch_size", "'abc'"]),
        ("optim.blr=inf", ["optim.blr", "finite", "inf"]),
        ("optim.blr=-1", ["optim.blr", "got -1"]),
        ("+policy.bogus=1", ["policy.bogus: unknown option", "depth"]),
        ("policy.depth=deep", ["policy.depth", "'deep'"]),
        ("run_dir=/proc/adamae_rl_test", ["run_dir /proc/adamae_rl_test is not writable"]),
    ],
)
def test_bad_setting_is_one_line_naming_key_and_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, override: str, needles: list[str]
) -> None:
    # The command's own main() in this process (a subprocess each would cost seconds of imports);
    # it fails in its pre-flight check, before Hydra or the trainer start.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["adamae_rl.train", "experiment=smoke", "run_dir=run", override])
    with pytest.raises(SystemExit) as exit_info:
        train.main()
    captured = capsys.readouterr()
    result = subprocess.CompletedProcess(sys.argv, exit_info.value.code, captured.out, captured.err)
    one_error_line(result, *needles)
    if not override.startswith("run_dir"):
        assert not (tmp_path / "run").exists()  # checked before any work


@pytest.mark.parametrize("override", ["+trainer.max_step=5", "trainer.batch_size=abc"])
def test_bad_setting_through_the_real_command(tmp_path: Path, override: str) -> None:
    one_error_line(run_cli("adamae_rl.train", "experiment=smoke", "run_dir=run", override, cwd=tmp_path), override.split("=")[0].lstrip("+"))
    assert not (tmp_path / "run").exists()


def test_run_dir_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("not a directory")
    one_error_line(run_cli("adamae_rl.train", "experiment=smoke", "run_dir=taken", cwd=tmp_path), "run_dir taken", "not a directory")
    assert (tmp_path / "taken").read_text() == "not a directory"


@pytest.mark.parametrize("args, needle", [(["--steps", "-1"], "--steps: must be >= 1, got -1"),
                                          (["--batch-size", "x"], "--batch-size: expected an integer, got 'x'")])
def test_finetune_bad_numbers(tmp_path: Path, args: list[str], needle: str) -> None:
    one_error_line(run_cli("adamae_rl.finetune", str(tmp_path), *args, cwd=tmp_path), needle)


# --- inputs ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["binary", "latin1", "loop"])
def test_bad_list_file_is_named(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "list.txt"
    if kind == "binary":
        path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)))
    elif kind == "latin1":
        path.write_bytes("vid\xe9o.mp4 0\n".encode("latin-1"))
    else:
        (tmp_path / "a.txt").symlink_to(tmp_path / "b.txt")
        (tmp_path / "b.txt").symlink_to(tmp_path / "a.txt")
        path = tmp_path / "a.txt"
    result = run_cli("adamae_rl.train", "experiment=smoke", "data=video", f"data.train_list={path}", "run_dir=run", cwd=tmp_path)
    line = one_error_line(result, str(path))
    assert "does not exist" not in line


@pytest.mark.parametrize("content, needle", [("name: x\ncells: [\n", "not valid YAML at line"),
                                             ("- a\n- b\n", "must hold a mapping"),
                                             ("\xff\xfe", "not UTF-8")])
def test_bad_grid_file(tmp_path: Path, content: str, needle: str) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_bytes(content.encode("latin-1"))
    one_error_line(run_cli("adamae_rl.ablate", f"grid_file={grid}", "out=abl", cwd=tmp_path), needle, str(grid))


def test_small_video_list_trains_and_validates(tmp_path: Path) -> None:
    made = run_cli("adamae_rl.data.make_synthetic", "few", "--num-videos", "3", "--val-videos", "2",
                   "--frames", "16", "--size", "32", cwd=tmp_path)
    assert made.returncode == 0, made.stderr[-2000:]
    result = run_cli(
        "adamae_rl.train", "experiment=smoke", "data=video", "data.train_list=few/train.txt", "data.val_list=few/val.txt",
        "data.num_workers=0", "trainer.batch_size=8", "trainer.max_steps=4", "trainer.eval_every=2", "run_dir=run", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 4
    assert "fewer than the 8 a batch needs" in (tmp_path / "run" / "train.log").read_text()
