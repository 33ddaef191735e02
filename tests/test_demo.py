"""`semifer demo` trains supervised and Ada-CM on the embedded synthetic faces and prints both."""

from semifer.cli import main


def test_quick_demo_runs_both_methods(tmp_path, capsys):
    assert main(["demo", "--quick", "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "supervised" in out and "adacm" in out and "test accuracy on synthetic faces" in out
    for method in ("supervised", "adacm"):
        assert (tmp_path / method / "final.json").is_file()
    assert "optimizer: adam" in (tmp_path / "adacm" / "config.yaml").read_text()  # Ada-CM's own optimiser
