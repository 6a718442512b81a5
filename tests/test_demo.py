"""The README's main job end to end on the offline dataset: train, measure, export, compare."""

from __future__ import annotations

import pytest

from spikemod.cli import main


@pytest.mark.lava
def test_demo_writes_report_and_resumes(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--dataset", "digits", "--epochs", "1", "--n-test", "120", "--out", str(out)]
    assert main(args) == 0
    report = (out / "report.md").read_text()
    assert (out / "specialization.png").stat().st_size > 0
    for variant in ("rate", "spiking"):
        for synapses in (1, 625):
            assert f"| {variant} | {synapses} | " in report
            assert (out / f"{variant}_{synapses}syn.h5").is_file()
    # Lava floating point reproduces torch's spikes: every lava-float row has identical bits 1.0000
    lava_float = [line for line in report.splitlines() if "| lava-float |" in line]
    assert len(lava_float) == 2 and all("| 1.0000 | 1.0000 |" in line for line in lava_float)
    assert "The papers' trend is" in report

    # a second run reuses every finished network instead of retraining it
    checkpoints = sorted(out.glob("*syn.h5"))
    stamps = [p.stat().st_mtime_ns for p in checkpoints]
    capsys.readouterr()
    assert main(args) == 0
    assert "[demo] training" not in capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in checkpoints] == stamps


def test_demo_without_mnist_falls_back_to_digits_with_a_notice(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPIKEMOD_DATA", str(tmp_path / "no-data"))
    monkeypatch.setenv("SPIKEMOD_OFFLINE", "1")
    monkeypatch.delenv("SPIKEMOD_REQUIRE_DATA", raising=False)
    out = tmp_path / "demo"
    assert main(["demo", "--epochs", "1", "--n-test", "120", "--no-lava", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "MNIST is not on disk" in captured.err and "running on the offline digits set" in captured.err
    report = (out / "report.md").read_text()
    assert "Dataset `digits`" in report and "metric readouts 30 epochs" in report  # the digits budget
    assert "The papers' trend is" in report  # visible or, plainly, not


def test_trend_sentence_on_hand_made_rows():
    from spikemod.demo import DemoRow, trend

    def rows(sparse, dense):
        return [
            DemoRow("rate", 625, 0.0, [0.8, 0.8], {"retraining": dense}),
            DemoRow("rate", 1, 0.5, [0.55, 0.55], {"retraining": sparse}),
        ]

    assert "visible** for rate: retraining F 0.90 with one synapse against 0.55" in trend(rows(0.9, 0.55))
    assert "NOT visible" in trend(rows(0.25, 0.2)) and "difference 0.05 < 0.1" in trend(rows(0.25, 0.2))
