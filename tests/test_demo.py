"""`semifer demo` trains each demo method on the embedded synthetic faces and prints the gain table."""

from semifer.cli import main
from semifer.demo import DEFAULT_METHODS, DemoRow, demo_table


def test_quick_demo_runs_every_method_and_prints_the_table(tmp_path, capsys):
    assert main(["demo", "--quick", "--out-dir", str(tmp_path), "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "test accuracy on synthetic faces" in out and "gain over supervised" in out
    for method in DEFAULT_METHODS:
        assert method in out and (tmp_path / method / "final.json").is_file()
        config = (tmp_path / method / "config.yaml").read_text()
        assert "optimizer: sgd" in config and "l2norm: false" in config  # one recipe for every method
        assert "\nseed: 3\n" in config  # the seed reaches every method, not only the first


def test_demo_table_gain_is_against_supervised():
    table = demo_table([DemoRow("supervised", 0.30, 1.0), DemoRow("fixmatch", 0.375, 2.0), DemoRow("adacm", 0.29, 2.5)])
    lines = {line.split()[0]: line for line in table.splitlines() if line.startswith("  ") and "%" in line}
    assert "+7.50 points" in lines["fixmatch"] and "-1.00 points" in lines["adacm"]
    assert "points" not in lines["supervised"] and lines["fixmatch"].rstrip().endswith("2.0")
