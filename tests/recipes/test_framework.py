import json

import pytest

from groklab import GroklabError
from groklab.cli import main
from groklab.recipes import RECIPES, Verdict, list_recipes, recipe, reproduce
from groklab.report.figures import curves_figure
from tests.conftest import tiny


@pytest.fixture
def toy_recipe():
    @recipe("test-toy", paper="none", claim="A tiny MLP fits its training set.")
    def toy(ctx):
        run = ctx.run(tiny(train={"steps": 20 if ctx.quick else 40}), "only")
        fitted = run.summary["train_acc"]
        fig = curves_figure([run], ["only"], ["train_acc"], "toy")
        return Verdict({"train_acc": fitted, "nan": float("nan")}, fitted > 2.0, "impossible check", fig)

    yield "test-toy"
    RECIPES.pop("test-toy")


def test_reproduce_writes_figure_and_an_honest_verdict(tmp_path, toy_recipe):
    verdict = reproduce(toy_recipe, out=tmp_path / "rep", quick=True, progress=False)
    written = json.loads((tmp_path / "rep" / "verdict.json").read_text())
    assert written == verdict
    assert set(written) >= {"recipe", "claim", "measured", "supported", "notes"}
    assert written["supported"] is False  # the check is reported as it came out
    assert written["measured"]["nan"] is None
    assert (tmp_path / "rep" / "test-toy.png").stat().st_size > 1000
    assert (tmp_path / "rep" / "only" / "metrics.parquet").is_file()
    with pytest.raises(GroklabError, match="already holds a verdict"):
        reproduce(toy_recipe, out=tmp_path / "rep", quick=True, progress=False)


def test_list_and_unknown_names(capsys):
    names = list_recipes()
    assert "lazyrich-modular-mlp" in names and "robust-fig1" in names
    assert main(["reproduce", "--list"]) == 0
    assert "robust-fig1" in capsys.readouterr().out
    assert main(["reproduce", "no-such-figure"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("groklab: error: unknown recipe 'no-such-figure'") and "\n" not in err


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(list_recipes()))
def test_every_recipe_runs_in_its_quick_size(tmp_path, name):
    verdict = reproduce(name, out=tmp_path / name, quick=True, progress=False)
    assert isinstance(verdict["supported"], bool) and verdict["measured"]
