# ruff: noqa: RUF001  (IPA phonemes and symbols are the point of these strings)
"""What Piper is asked to speak: skipped characters and languages, and phoneme-id bounds per run and job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flow.config import Settings
from flow.contract.providers import ProviderError
from flow.contract.resources import Resources
from nodes.synthesizer import SpeechBudget, SynthesizerParams
from nodes.synthesizer.phonemes import count_ids, plan, run_ids, speakable_text, split_run
from nodes.synthesizer.piper import NOTHING_TO_SAY, PiperSynthesizer, default_voice


@pytest.fixture(scope="module")
def resources():
    r = Resources(Settings())
    yield r
    r.cpu_pool.shutdown(wait=True)


@pytest.fixture(scope="module")
def id_map() -> dict[str, list[int]]:
    return json.loads(Path(f"{default_voice()}.json").read_text())["phoneme_id_map"]


def test_emoji_symbols_and_invisible_characters_are_not_spoken() -> None:
    assert speakable_text("Hi 😀👍🏽 there\u200d\ufe0f!") == "Hi   there !"
    assert speakable_text("café, 20°C, 3 × 4 = 12; ½ — «ok» naïve") == "café, 20°C, 3 × 4 = 12; ½ — «ok» naïve"


def test_letters_of_scripts_the_language_does_not_read_are_not_spoken() -> None:
    assert speakable_text("say 中文 and ሰላም or привет, Ωμέγα٣", "en-us") == "say   and   or  ,  "
    assert speakable_text("привет, world", "ru") == "привет, world"  # a Russian voice reads both
    assert speakable_text("日本語とカタカナ", "ja") == "日本語とカタカナ"
    assert speakable_text("ＡＢＣ and ʼok", "en-us") == "ＡＢＣ and ʼok"  # fullwidth Latin, modifier letters
    assert speakable_text("x\u0301 \u4e2d\u0301y") == "x\u0301  y"  # a mark goes with its letter


def test_a_long_sentence_is_cut_at_word_boundaries_within_the_id_bound(id_map) -> None:
    words = ["ðə", "kwˈɪk", "bɹˈaʊn", "fˈɑːks"] * 100
    phonemes = list(" ".join(words))
    assert len(run_ids(phonemes, id_map)) > 2000
    parts = split_run(phonemes, id_map, 120)
    assert all(len(run_ids(p, id_map)) <= 120 for p in parts)
    assert all(p[-1] == " " for p in parts[:-1])  # each cut right after a word
    assert [q for p in parts for q in p] == phonemes  # nothing lost, nothing repeated
    unbroken = list("kwˈɪk" * 200)  # no boundary at all: cut where the budget ends
    assert all(len(run_ids(p, id_map)) <= 64 for p in split_run(unbroken, id_map, 64))
    with pytest.raises(ValueError):
        split_run(phonemes, id_map, 3)


def test_jobs_pack_short_sentences_and_never_pass_the_bound(id_map) -> None:
    short = [list("hˈɛloʊ."), list("wˈɜːld.")]
    assert len(plan(short, id_map, 600)) == 1  # a short reply: one job, one MP3
    long = [list(" ".join(["kwˈɪk"] * 300) + ".")] * 3
    jobs = plan(long, id_map, 200)
    assert len(jobs) > 10
    assert all(sum(len(run) for run in job) <= 200 for job in jobs)


def test_the_budget_stops_at_the_audio_or_the_mp3_bound() -> None:
    frame = b"\xff\xf3\x84\xc4" + b"\0" * 188  # MPEG-2 layer III at 64 kbit/s: 192 bytes = 24 ms
    second = frame * 41  # 0.98 s
    budget = SpeechBudget(SynthesizerParams(max_audio_s=3))
    assert [budget.take(second) for _ in range(4)] == [True, True, True, False]
    assert budget.cut == "max_audio_s 3" and not budget.take(b"")  # nothing more once cut
    budget = SpeechBudget(SynthesizerParams(max_mp3_bytes=20_000))
    assert [budget.take(second) for _ in range(3)] == [True, True, False]
    assert budget.cut == "max_mp3_bytes 20000"


def test_params_are_bounded() -> None:
    with pytest.raises(ValueError):
        SynthesizerParams(max_piece_phonemes=10)
    with pytest.raises(ValueError):
        SynthesizerParams(max_audio_s=0)


# --- with the real voice (espeak and the model's id map) --------------------------------------

async def test_text_the_english_voice_cannot_say_makes_no_phonemes(resources) -> None:
    tts = PiperSynthesizer(resources)
    for text in ("".join(chr(0x4E00 + 37 * i) for i in range(500)),
                 "".join(chr(0x1200 + i % 0x158) for i in range(500)),
                 "".join(chr(0x1F600 + i % 80) for i in range(500))):
        assert await resources.run_cpu(tts.plan_sync, text) == []
        with pytest.raises(ProviderError, match=NOTHING_TO_SAY):
            await tts.synthesize(text)


async def test_mixed_text_keeps_only_the_english_and_runs_stay_bounded(resources) -> None:
    tts = PiperSynthesizer(resources, max_piece_phonemes=300)
    mixed = "You said: " + "".join(chr(0x4E00 + 37 * i) for i in range(200)) + ". That was turn one."
    english = count_ids(await resources.run_cpu(tts.plan_sync, "You said: . That was turn one."))
    assert english - 10 < count_ids(await resources.run_cpu(tts.plan_sync, mixed)) < english + 10
    run_on = ("the quick brown fox jumps over the lazy dog " * 90)[:3990]
    jobs = await resources.run_cpu(tts.plan_sync, run_on)
    assert len(jobs) > 10 and all(sum(map(len, job)) <= 300 for job in jobs)
