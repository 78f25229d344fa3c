"""bench/signing/run.py: the medians of each side and of its signing part, our sign step
against cosign sign as a ratio, with its goal; the table."""

from __future__ import annotations

from bench.signing.run import SIDES, Sample, cells, summary


def test_the_sign_step_is_measured_against_cosign_sign() -> None:
    ours, signed, cosign = SIDES
    found = [
        Sample(ours, 2.0, None), Sample(ours, 2.2, None), Sample(ours, 2.4, None),
        Sample(signed, 2.3, 0.10), Sample(signed, 2.5, 0.20), Sample(signed, 2.9, 0.40),
        Sample(cosign, 2.4, 0.30), Sample(cosign, 2.6, 0.40), Sample(cosign, 2.7, 0.50),
    ]  # fmt: skip
    got = summary(found)
    assert got["medians"][ours] == {"seconds": 2.2, "signing": 0.0}
    assert got["medians"][signed] == {"seconds": 2.5, "signing": 0.20}
    step = got["sign_step"]
    assert step["median"] == 0.20
    assert step["vs_cosign_sign"] == 0.5
    assert step["met"] is True  # 0.20s is under the goal
    header, rows = cells(got)
    assert header == ["side", "median", "signing part"]
    assert rows[0] == [ours, "2.20s", "-"]
    assert rows[-1] == ["our sign step / cosign sign", "0.50x", "0.20s (goal < 0.3s: met)"]


def test_a_slow_sign_step_does_not_meet_the_goal() -> None:
    found = [Sample(SIDES[1], 3.0, 0.5), Sample(SIDES[2], 3.0, 0.25)]
    step = summary(found)["sign_step"]
    assert step["met"] is False
    assert cells(summary(found))[1][-1][-1] == "0.50s (goal < 0.3s: not met)"
