"""The command line: every bad input gets one line, exit code 2, and nothing is overwritten."""

import json
import subprocess
import sys

import pytest

from groklab.cli import main

TINY = ["--set", "task.p=11", "--set", "model.width=16", "--set", "train.steps=10", "--set", "train.eval_every=5", "--no-progress"]


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, fragment):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("groklab: error: ")
    assert fragment in lines[0]
    assert "Traceback" not in err


def test_presets_lists_one_line_each(capsys):
    code, out, _ = run_cli(capsys, "presets")
    assert code == 0
    names = [line.lstrip("* ").split()[0] for line in out.splitlines()]
    assert {"mlp-add", "gd-mse", "nanda", "power-xdivy"} <= set(names)


def test_run_writes_a_run_directory(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "run", "--out", str(tmp_path / "r"), *TINY)
    assert code == 0
    assert "curves.png" in out and str(tmp_path / "r") in out
    assert json.loads((tmp_path / "r" / "config.json").read_text())["task"]["p"] == 11


def test_one_set_takes_several_assignments(tmp_path, capsys):
    code, _, _ = run_cli(capsys, "run", "--out", str(tmp_path / "r"), "--set", "task.p=11", "model.width=16",
                         "train.steps=10", "--set", "train.eval_every=5", "seed=3", "--no-progress")
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert code == 0 and (saved["task"]["p"], saved["model"]["width"], saved["seed"]) == (11, 16, 3)
    assert saved["train"]["eval_every"] == 5


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["run", "no-such-preset"], "unknown preset 'no-such-preset'"),
        (["run", "--set", "optim.lrr=1"], "unknown config key 'optim.lrr'"),
        (["run", "--set", "model.width=wide"], "model.width"),
        (["run", "--set", "task.p=12", "--set", "task.op=x/y"], "not prime"),
        (["run", "--set", "task.train_frac=1.5"], "strictly between 0 and 1"),
        (["run", "--set", "noequals"], "key=value"),
        (["run", "--set", "seed=1", "mlp-add"], "goes before --set"),
        (["run", "--resume", "/nonexistent/run/dir"], "no such directory"),
        (["run", "--bogus-flag"], "unrecognized arguments"),
    ],
)
def test_bad_input_gets_one_line_and_exit_2(capsys, argv, fragment):
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, fragment)


def test_existing_run_directory_is_not_overwritten(tmp_path, capsys):
    target = tmp_path / "r"
    assert run_cli(capsys, "run", "--out", str(target), *TINY)[0] == 0
    before = {p.name: p.read_bytes() for p in target.iterdir() if p.is_file()}
    code, _, err = run_cli(capsys, "run", "--out", str(target), *TINY, "--set", "seed=5")
    assert_one_line_error(code, err, "already exists")
    assert {p.name: p.read_bytes() for p in target.iterdir() if p.is_file()} == before
    code, _, _ = run_cli(capsys, "run", "--out", str(target), *TINY, "--set", "seed=5", "--overwrite")
    assert code == 0 and json.loads((target / "config.json").read_text())["seed"] == 5


def test_overwrite_refuses_a_directory_that_is_not_a_run(tmp_path, capsys):
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    code, _, err = run_cli(capsys, "run", "--out", str(precious), *TINY, "--overwrite")
    assert_one_line_error(code, err, "not a groklab run directory")
    assert (precious / "thesis.tex").read_text() == "years of work"


def test_resume_of_a_directory_without_checkpoints(tmp_path, capsys):
    target = tmp_path / "r"
    assert run_cli(capsys, "run", "--out", str(target), *TINY)[0] == 0
    for ckpt in (target / "checkpoints").iterdir():
        ckpt.unlink()
    code, _, err = run_cli(capsys, "run", "--resume", str(target), "--no-progress")
    assert_one_line_error(code, err, "no checkpoints")


def test_resume_of_a_corrupt_checkpoint(tmp_path, capsys):
    target = tmp_path / "r"
    assert run_cli(capsys, "run", "--out", str(target), *TINY)[0] == 0
    newest = sorted((target / "checkpoints").iterdir())[-1]
    newest.write_bytes(newest.read_bytes()[:100])
    code, _, err = run_cli(capsys, "run", "--resume", str(target), "--no-progress")
    assert_one_line_error(code, err, "corrupt")


def test_resume_of_a_directory_that_is_not_a_run(tmp_path, capsys):
    code, _, err = run_cli(capsys, "run", "--resume", str(tmp_path))
    assert_one_line_error(code, err, "not a groklab run directory")


def test_console_script_exit_code_and_stderr(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "groklab.cli", "run", "--set", "task.train_frac=0"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "task.train_frac" in proc.stderr


def test_config_file_reruns_a_run_exactly(tmp_path, capsys):
    first = tmp_path / "first"
    assert run_cli(capsys, "run", "--out", str(first), *TINY)[0] == 0
    code, _, _ = run_cli(capsys, "run", "--config", str(first / "config.json"), "--out", str(tmp_path / "again"), "--no-progress")
    assert code == 0
    import pandas as pd

    pd.testing.assert_frame_equal(pd.read_parquet(first / "metrics.parquet"), pd.read_parquet(tmp_path / "again" / "metrics.parquet"))
    code, out, _ = run_cli(capsys, "show", str(first), "--json")
    assert code == 0 and json.loads(out)["steps"] == 10


def test_resume_rejects_other_overrides(tmp_path, capsys):
    code, _, err = run_cli(capsys, "run", "--resume", str(tmp_path), "--set", "optim.lr=1")
    assert_one_line_error(code, err, "only --set train.steps")


def test_light_commands_import_no_torch():
    # `import groklab` loads its public names on first use, so `--help` and `presets` answer
    # without PyTorch, pandas or matplotlib; the names still resolve to the real objects, and a
    # config built straight from groklab.config still finds the built-in tasks and interventions.
    code = ("import sys, groklab, groklab.cli\n"
            "assert groklab.cli.main(['presets']) == 0\n"
            "heavy = sorted({'torch', 'pandas', 'matplotlib'} & set(sys.modules))\n"
            "assert not heavy, heavy\n"
            "from groklab.config import Config\n"
            "assert 'perturb' in Config().interventions.model_dump()\n"
            "from groklab.api import run\n"
            "from groklab.store.index import query\n"
            "assert groklab.run is run and groklab.query_runs is query\n"
            "assert set(dir(groklab)) >= set(groklab.__all__)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
