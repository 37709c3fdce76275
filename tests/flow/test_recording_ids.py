"""The session's recording numbers: start, audio and stop of one recording share one."""

from __future__ import annotations

from flow.transport.recordings import RecordingIds


def test_start_audio_stop_share_a_number_and_the_next_start_takes_a_new_one() -> None:
    ids = RecordingIds()
    assert (ids.start(), ids.audio(), ids.audio(), ids.stop()) == (1, 1, 1, 1)
    assert (ids.start(), ids.audio(), ids.start(), ids.audio(), ids.stop()) == (2, 2, 3, 3, 3)


def test_audio_without_an_open_recording_opens_one() -> None:
    ids = RecordingIds()
    assert (ids.audio(), ids.audio(), ids.stop()) == (1, 1, 1)
    assert (ids.audio(), ids.stop(), ids.stop()) == (2, 2, 2)  # a repeated stop names the last one
