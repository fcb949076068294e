"""How long training waits for data: measured by the clip stream, logged, warned about once."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
import torch
from helpers_cli import smoke_run
from torch.utils.data import Dataset

from adamae_rl.data.loader import WAIT_SHARE_WARN, ClipStream
from adamae_rl.data.synthetic import SyntheticClips

DELAY = 0.02  # seconds per item


class SlowClips(Dataset):
    """Items that take ``DELAY`` seconds each, like a slow decoder."""

    decoder = "pyav"  # looks like a video dataset to the stream's advice

    def __len__(self) -> int:
        return 64

    def __getitem__(self, key) -> dict[str, torch.Tensor]:
        time.sleep(DELAY)
        return {"video": torch.zeros(3, 2, 4, 4)}


def test_stream_measures_and_resets_the_wait() -> None:
    stream = ClipStream(SlowClips(), batch_size=2, num_workers=0)
    assert stream.take_wait_seconds() == 0.0
    for _ in range(3):
        next(stream)
    waited = stream.take_wait_seconds()
    assert 6 * DELAY <= waited < 6 * DELAY + 1.0  # 3 batches of 2 slow items
    assert stream.wait_seconds == 0.0 and stream.take_wait_seconds() == 0.0


def test_warns_once_when_the_share_stays_high(caplog: pytest.LogCaptureFixture) -> None:
    stream = ClipStream(SlowClips(), batch_size=2, num_workers=0)
    high, low = 0.9, WAIT_SHARE_WARN / 2
    with caplog.at_level(logging.WARNING, logger="adamae_rl.data"):
        # The first window (worker start-up) is not judged; one high window alone is not enough.
        said = [stream.check_wait_share(s) for s in (high, high, low, high, high, high, high)]
    assert said == [False, False, False, False, True, False, False]
    warnings = [r.getMessage() for r in caplog.records if "waiting for data" in r.getMessage()]
    assert len(warnings) == 1
    for remedy in ("data.num_workers=0", "adamae_rl.data.prepare", "data.decode_short_side", "data.repeat",
                   "data.decoder=pyav", "data.decode_device=cuda"):
        assert remedy in warnings[0]


def test_gpu_decoding_keeps_the_stream_in_the_main_process() -> None:
    dataset = SlowClips()
    dataset.decode_in_main_process = True
    stream = ClipStream(dataset, batch_size=2, num_workers=2, pin_memory=True)
    assert stream.num_workers == 0 and stream.loader.num_workers == 0 and not stream.loader.pin_memory


def test_training_logs_the_wait_share_and_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    real = SyntheticClips.__getitem__

    def slow(self, key):
        time.sleep(0.05)  # 4 clips a step: far longer than a tiny model's step
        return real(self, key)

    monkeypatch.setattr(SyntheticClips, "__getitem__", slow)
    with caplog.at_level(logging.WARNING, logger="adamae_rl.data"):
        smoke_run(tmp_path, "trainer.max_steps=8", "trainer.eval_every=8", "trainer.tensorboard=true")
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    shares = [r["train/data_wait_share"] for r in records if "train/data_wait_share" in r]
    assert len(shares) == 4 and all(0 <= s <= 1 for s in shares), shares  # log_every=2
    # The first step is served from the batch the env peeked at while being built: no wait there.
    assert all(s > WAIT_SHARE_WARN for s in shares[1:]), shares
    warnings = [r for r in caplog.records if "waiting for data" in r.getMessage()]
    assert len(warnings) == 1 and "data.num_workers=0" in warnings[0].getMessage()

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert [e.value for e in events.Scalars("train/data_wait_share")] == pytest.approx(shares)
