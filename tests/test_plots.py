import numpy as np

from semifer.report import plots


def test_comparison_draws_each_run_and_pseudo_label_use_only_where_logged(tmp_path, monkeypatch):
    closed = []
    monkeypatch.setattr(plots.plt, "close", closed.append)
    ssl = [{"epoch": e, "test": {"accuracy": 0.3 + 0.01 * e}, "unlabeled/subset1_fraction": 0.1 * e} for e in (1, 2, 3)]
    supervised = [{"epoch": e, "test": {"accuracy": 0.3}, "unlabeled/subset1_fraction": None} for e in (1, 2, 3)]
    path = plots.plot_comparison({"adacm (no InfoNCE)": ssl, "supervised": supervised}, tmp_path / "c.png", "t")
    assert path.stat().st_size > 1000
    accuracy, used = closed[0].axes
    assert [line.get_label() for line in accuracy.lines] == ["adacm (no InfoNCE)", "supervised"]
    assert np.allclose(accuracy.lines[0].get_ydata(), [31, 32, 33])
    assert accuracy.lines[0].get_linestyle() == "--" and accuracy.lines[1].get_linestyle() == "-"
    assert len(used.lines) == 1 and np.allclose(used.lines[0].get_ydata(), [10, 20, 30])
