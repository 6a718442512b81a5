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

    # a second run reuses every finished network instead of retraining it
    checkpoints = sorted(out.glob("*syn.h5"))
    stamps = [p.stat().st_mtime_ns for p in checkpoints]
    capsys.readouterr()
    assert main(args) == 0
    assert "[demo] training" not in capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in checkpoints] == stamps
