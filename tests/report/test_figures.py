import matplotlib.pyplot as plt

from groklab.recipes.protocol import Arm, results_from_runs
from groklab.report.figures import LONG_LEGEND, MANY_ENTRIES, bands_figure
from tests.recipes.fakes import curve, fake_run


def _results(label: str, n_arms: int = 1):
    steps = [0, 10, 20, 40]
    runs = [fake_run(curve(steps, train_acc=[0.0, 1.0, 1.0, 1.0], test_acc=[0.0, 0.1, 0.5, 1.0], train_loss=1.0,
                           test_loss=1.0)) for _ in range(2)]
    arms = [Arm(f"a{i}", f"{label} {i}" if n_arms > 1 else label, None) for i in range(n_arms)]
    return results_from_runs(arms, [0, 1], {arm.key: runs for arm in arms}, lambda run: {})


def test_short_legends_stay_on_the_first_panel_and_long_ones_go_under_the_panels():
    treatment, control = _results("wd"), _results("wd")
    short = bands_figure(treatment, control, ["train_acc", "test_acc"])
    assert short.axes[0].get_legend() is not None and not short.legends
    assert [t.get_text() for t in short.axes[0].get_legend().get_texts()] == ["wd", "wd (control)"]

    suffix = " (control: " + "x" * LONG_LEGEND + ")"
    long = bands_figure(treatment, control, ["train_acc", "test_acc"], control_suffix=lambda arm: suffix)
    assert long.axes[0].get_legend() is None and len(long.legends) == 1
    assert [t.get_text() for t in long.legends[0].get_texts()] == ["wd", "wd" + suffix]
    # the panels keep their height; the figure grows by the legend's rows
    assert long.get_size_inches()[1] > short.get_size_inches()[1]
    plt.close("all")


def test_many_short_legend_entries_go_under_the_panels_in_columns():
    # a ten-alpha sweep and its control: twenty entries would cover the first panel
    n = MANY_ENTRIES // 2 + 1
    fig = bands_figure(_results("alpha", n), _results("alpha", n), ["train_acc", "test_acc"])
    assert fig.axes[0].get_legend() is None and len(fig.legends) == 1
    assert len(fig.legends[0].get_texts()) == 2 * n and fig.legends[0]._ncols == 4
    plt.close("all")
