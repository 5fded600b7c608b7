"""Failure is a normal outcome: each failure below goes through the CLI and must give exit
code 2 (130 for Ctrl-C), one line on stderr, no traceback, and leave the files that were
there before byte-identical."""

import os
import signal

import pandas as pd
import pytest

import groklab
from groklab.cli import main
from groklab.store.checkpoint import checkpoint_path
from tests.conftest import tiny


def snapshot(root):
    """{relative path: bytes} of every file under ``root``."""
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def fails_cleanly(capsys, argv, code=2):
    """Run the CLI, assert the exit code and a single error line without a traceback; return it."""
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith("groklab: error:") and "\n" not in err and "Traceback" not in err
    return err


@pytest.fixture
def finished(tmp_path):
    """A finished 40-step run with checkpoints at 20 and 40."""
    groklab.run(tiny(), out=tmp_path / "run", progress=False)
    return tmp_path / "run"


def test_a_device_this_machine_lacks_is_refused_before_anything_is_made(tmp_path, capsys):
    for device in ("cuda", "cuda:7", "tpu"):
        out = tmp_path / device.replace(":", "")
        err = fails_cleanly(capsys, ["run", "--set", f"train.device={device}", "--out", str(out), "--no-progress"])
        assert "train.device" in err
        assert not out.exists()  # nothing half-made blocks the corrected command


def test_shrinking_a_finished_run_is_an_error_that_changes_nothing(finished, capsys):
    before = snapshot(finished)
    err = fails_cleanly(capsys, ["run", "--resume", str(finished), "--set", "train.steps=10", "--no-progress"])
    assert "below the 40 steps" in err
    assert snapshot(finished) == before


def test_a_flipped_bit_in_a_checkpoint_is_caught_and_the_intact_one_named(finished, capsys):
    latest = checkpoint_path(finished / "checkpoints", 40)
    data = bytearray(latest.read_bytes())
    data[-5] ^= 0x01  # inside the tensor data, after the header
    latest.write_bytes(bytes(data))
    before = snapshot(finished)
    err = fails_cleanly(capsys, ["run", "--resume", str(finished), "--set", "train.steps=60", "--no-progress"])
    assert "damaged" in err and "--checkpoint 20" in err
    assert snapshot(finished) == before
    # the named flag works and gives the uninterrupted metrics
    assert main(["run", "--resume", str(finished), "--checkpoint", "20", "--no-progress"]) == 0
    again = groklab.run(tiny(), out=finished.parent / "again", progress=False)
    pd.testing.assert_frame_equal(groklab.load(finished).metrics, again.metrics, check_exact=True)


def test_ctrl_c_saves_a_checkpoint_and_resume_is_exact(tmp_path, monkeypatch, capsys):
    from groklab.training import loop

    config = tiny(train={"steps": 40, "eval_every": 10, "checkpoint_every": None})  # no scheduled checkpoint
    full = groklab.run(config, out=tmp_path / "full", progress=False)
    real_step, calls = loop.train_step, {"n": 0}

    def pressed_at_13(*args):
        calls["n"] += 1
        if calls["n"] == 13:
            os.kill(os.getpid(), signal.SIGINT)  # as a user's Ctrl-C, in the middle of a step
        return real_step(*args)

    monkeypatch.setattr(loop, "train_step", pressed_at_13)
    config.to_json()
    (tmp_path / "c.json").write_text(config.to_json())
    assert main(["run", "--config", str(tmp_path / "c.json"), "--out", str(tmp_path / "cut"), "--no-progress"]) == 130
    err = capsys.readouterr().err
    assert "saved a checkpoint at step 13" in err and f"groklab run --resume {tmp_path / 'cut'}" in err
    assert err.strip().splitlines()[-1].strip().startswith("groklab run --resume")  # the command on its own line
    monkeypatch.setattr(loop, "train_step", real_step)
    resumed = groklab.resume(tmp_path / "cut", progress=False)
    pd.testing.assert_frame_equal(resumed.metrics, full.metrics, check_exact=True)
