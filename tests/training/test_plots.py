"""Run plots people read: nothing cut off at the figure's edge, epochs as results.csv and the console count them."""
import pytest

from backbonekit.training.plots import confusion_figure, plt
from figure_checks import cut_off


@pytest.mark.parametrize("names", [["a", "b"], ["cat", "dog", "fox"], [f"a long class name {i}" for i in range(14)]])
def test_confusion_matrix_title_and_labels_are_not_clipped(names):
    matrix = [[3 if i == j else 1 for j in range(len(names))] for i in range(len(names))]
    fig = confusion_figure(matrix, names, "confusion matrix (last validation)")
    try:
        assert not cut_off(fig)
    finally:
        plt.close(fig)


def test_results_plot_counts_epochs_from_one(tmp_path, monkeypatch):
    from backbonekit.training import plots

    (tmp_path / "results.csv").write_text("epoch,train/loss,lr,seconds\n1,0.9,0.1,1\n2,0.5,0.05,1\n")
    drawn = []
    monkeypatch.setattr(plots.plt, "close", lambda fig: drawn.append(fig))
    plots.plot_results(tmp_path / "results.csv", tmp_path / "results.png")
    monkeypatch.undo()
    plt.close(drawn[0])
    xs = {tuple(line.get_xdata()) for ax in drawn[0].axes for line in ax.lines}
    assert xs == {(1, 2)}
