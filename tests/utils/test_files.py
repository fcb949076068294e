"""OutputDir: a command overwrites only what it wrote, never its input, never through a link."""

from __future__ import annotations

from pathlib import Path

import pytest

from adamae_rl.errors import OutputError, UserError
from adamae_rl.utils.files import OutputDir, check_output_file, record_name


def test_claims_refuse_foreign_files_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "list.txt").write_text("mine")
    out = OutputDir(tmp_path, "cmd")
    with pytest.raises(OutputError, match=r"list.txt exists and was not written by cmd; pass --force"):
        out.claim("new.txt", "list.txt")
    assert not (tmp_path / record_name("cmd")).exists()  # a refused claim records nothing
    (path,) = OutputDir(tmp_path, "cmd", force=True).claim("list.txt")
    assert path == tmp_path / "list.txt"
    path.write_text("ours")
    assert OutputDir(tmp_path, "cmd").claim("list.txt") == [path]  # recorded: a rerun may rewrite it


def test_folder_claims_and_clear(tmp_path: Path) -> None:
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "a.mp4").write_bytes(b"user")
    with pytest.raises(OutputError, match="videos exists and was not written"):
        OutputDir(tmp_path, "cmd").claim_folder("videos")
    out = OutputDir(tmp_path / "fresh", "cmd")
    folder = out.claim_folder("videos")
    assert not folder.exists()  # claimed, not created: a command that stops leaves no empty folder
    (folder / "deep").mkdir(parents=True)
    (folder / "deep" / "x.mp4").write_bytes(b"ours")
    assert out.owns("videos/deep/x.mp4") and not out.owns("videosx/y")
    out.claim("stale.bin")[0].write_bytes(b"")
    removed = OutputDir(tmp_path / "fresh", "cmd").clear()
    assert sorted(p.name for p in removed) == ["stale.bin", "videos"]
    assert sorted(p.name for p in (tmp_path / "fresh").iterdir()) == [record_name("cmd")]


def test_refuses_its_own_input_links_and_other_commands(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text("a.mp4 0\n")
    with pytest.raises(OutputError, match="holds the input .*train.txt; a command never writes into its own input"):
        OutputDir(tmp_path, "cmd", inputs=[tmp_path / "train.txt"])
    OutputDir(tmp_path / "sub", "cmd", inputs=[tmp_path / "train.txt"])  # beside the input: fine
    (tmp_path / "link").symlink_to(tmp_path / "train.txt")
    with pytest.raises(OutputError, match="symbolic link"):
        OutputDir(tmp_path, "cmd", force=True).claim("link")
    OutputDir(tmp_path / "a", "one").claim("x")
    (tmp_path / "a" / "x").write_text("one's")
    with pytest.raises(OutputError, match="x exists and was not written by two"):  # records are per command
        OutputDir(tmp_path / "a", "two").claim("x")
    (tmp_path / "a" / record_name("two")).write_text("[]")
    with pytest.raises(OutputError, match="malformed output record"):
        OutputDir(tmp_path / "a", "two")
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="exists and is not a folder"):
        OutputDir(tmp_path / "file", "cmd")


def test_single_output_file(tmp_path: Path) -> None:
    src = tmp_path / "w.pt"
    src.write_bytes(b"")
    with pytest.raises(OutputError, match="is the input"):
        check_output_file(src, "convert", force=True, inputs=[src])
    with pytest.raises(OutputError, match="exists; pass --force"):
        check_output_file(src, "convert", inputs=[tmp_path / "other.pt"])
    with pytest.raises(OutputError, match="is a folder"):
        check_output_file(tmp_path, "convert", force=True)
    assert isinstance(OutputError("x"), UserError) and str(OutputError("x")) == "x"


def test_claim_file_for_a_chosen_output_path(tmp_path: Path) -> None:
    from adamae_rl.utils.files import claim_file

    (tmp_path / "result.json").write_text("mine")
    with pytest.raises(OutputError, match="result.json exists and was not written by finetune"):
        claim_file(tmp_path / "result.json", "finetune")
    assert claim_file(tmp_path / "new.json", "finetune") == tmp_path / "new.json"
    (tmp_path / "new.json").write_text("ours")
    claim_file(tmp_path / "new.json", "finetune")  # its own: a rerun may rewrite it
    with pytest.raises(OutputError, match="is a folder"):
        claim_file(tmp_path, "finetune")
    with pytest.raises(OutputError, match="is the input"):
        claim_file(tmp_path / "ckpt" / "x.json", "finetune", inputs=[tmp_path / "ckpt"])
