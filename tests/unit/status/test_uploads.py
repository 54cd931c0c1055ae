"""Uploads as a person sees them: bytes, rate and time left in the snapshot and in `status`."""

from __future__ import annotations

from training_agent.status.state import AgentState
from training_agent.status.text import render, upload_line
from training_agent.status.uploads import UploadBoard

MIB = 1024 * 1024


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_and_time_left_come_from_the_last_seconds() -> None:
    clock = Clock()
    board = UploadBoard(clock=clock)
    board.planned(1, job_id="job-1", name="weights", kind="model", path="/w/model.bin")
    board.hashing(1, done=32 * MIB, size=64 * MIB)
    assert board.snapshot()[0]["state"] == "hashing"

    for second in range(4):
        clock.now = 1000.0 + second
        board.sent(1, offset=second * 8 * MIB, size=64 * MIB)

    [view] = board.snapshot()
    assert view["state"] == "uploading" and view["sent_bytes"] == 24 * MIB
    assert view["rate_bps"] == 8 * MIB
    assert view["eta_s"] == 5.0

    clock.now += 2  # nothing arrives for two seconds (an outage): the rate falls
    assert board.snapshot()[0]["rate_bps"] < 8 * MIB

    board.settled(1)
    [done] = board.snapshot()
    assert (done["state"], done["sent_bytes"], done["rate_bps"]) == ("complete", 64 * MIB, None)


def test_the_status_text_shows_each_upload() -> None:
    state = AgentState(agent_id="agent_0123456789abcdef", version="1.0", backend_url="http://b")
    state.uploads.planned(1, job_id="job-1", name="final_adapter.tar", kind="adapter", path="/a")
    state.uploads.sent(1, offset=0, size=64 * MIB)
    state.uploads.planned(2, job_id="job-1", name="weights", kind="model", path="/w/model.bin")
    state.uploads.settled(2, error="the backend refused it: quota used up")

    text = render(state.snapshot())

    assert "uploads\n  job-1  final_adapter.tar  adapter  uploading 0 B of 64.0 MiB (0%)" in text
    assert "job-1  weights  model  not uploaded: the backend refused it: quota used up" in text


def test_an_upload_line_with_rate_and_time_left() -> None:
    line = upload_line(
        {
            "job_id": "job-1",
            "name": "weights",
            "kind": "model",
            "state": "uploading",
            "size_bytes": 64 * MIB,
            "sent_bytes": 16 * MIB,
            "rate_bps": 91_300_000.0,
            "eta_s": 125.0,
        }
    )
    assert line == (
        "job-1  weights  model  uploading 16.0 MiB of 64.0 MiB (25%)  91.3 MB/s  2m 05s left"
    )
