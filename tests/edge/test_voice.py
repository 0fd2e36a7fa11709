"""Spoken calls: real espeak-ng synthesis to WAV, a queue that never cuts a call off (fake player records)."""

import subprocess
import sys
import threading
import wave
from pathlib import Path

import pytest

from edge_agent import voice
from edge_agent.voice import VoiceAnnouncer, VoiceSettings, call_text, parse_voice_settings
from tests.support.loop import LoopThread
from tests.support.waiting import wait_until

needs_espeak = pytest.mark.skipif(subprocess.run(["which", "espeak-ng"], capture_output=True).returncode != 0,
                                  reason="espeak-ng is installed by tools/install-system-deps.sh")

# A player that records what it was given and whether another one was playing at the same time.
FAKE_PLAYER = r'''
import os, shutil, sys, time
log, wav = sys.argv[1], sys.argv[-1]
lock = log + ".lock"
try:
    fd = os.open(lock, os.O_CREAT | os.O_EXCL)
except FileExistsError:
    open(log, "a").write("OVERLAP " + wav + "\n")
    sys.exit(0)
with open(log, "a") as f:
    f.write("start " + wav + "\n")
played = len([l for l in open(log) if l.startswith("start")])
shutil.copy(wav, log + f".{played}.wav")
time.sleep(0.3)  # long enough that a second player started now would overlap
with open(log, "a") as f:
    f.write("end " + wav + "\n")
os.close(fd)
os.remove(lock)
'''


def test_numbers_are_spelled_digit_by_digit_and_windows_said_as_numbers():
    assert voice.spell_digits("A012") == "A零一二"
    assert [voice.cardinal(n) for n in (1, 3, 10, 12, 20, 21, 100, 105, 110, 999)] == [
        "一", "三", "十", "十二", "二十", "二十一", "一百", "一百零五", "一百一十", "九百九十九"]
    assert call_text("A012", 3) == "请A零一二号到三号窗口办理"
    assert call_text("B100", 12, "{number}号请到{window}号窗口") == "B一零零号请到十二号窗口"


def test_voice_settings_are_checked_with_their_path():
    problems = []
    settings = parse_voice_settings({"repeat": 9, "template": "{ticket}", "player": 5, "enabled": "yes"}, problems)
    text = "; ".join(problems)
    for key in ("voice.repeat", "voice.template", "voice.player", "voice.enabled"):
        assert key in text
    assert settings == VoiceSettings()
    assert parse_voice_settings({"player": "paplay --volume 40000"}, []).player == ("paplay", "--volume", "40000")


def wav_info(path: Path) -> tuple[int, int, int, bytes]:
    with wave.open(str(path), "rb") as w:
        return w.getnchannels(), w.getsampwidth(), w.getframerate(), w.readframes(w.getnframes())


def loudest(frames: bytes) -> int:
    samples = memoryview(frames).cast("h")
    return max(abs(s) for s in samples)


@needs_espeak
def test_espeak_ng_mandarin_voice_reads_the_characters_as_mandarin():
    text = call_text("A012", 3)
    phonemes = subprocess.run(["espeak-ng", "-v", "cmn-latn-pinyin", "-q", "-x", text], capture_output=True,
                              text=True, check=True).stdout
    assert "(en)" not in phonemes  # the plain `cmn` voice switches to English for the pinyin it derives
    for syllable in ("l'i35N", "j'i55", "'@r51", "s'a55n"):  # 零 一 二 三
        assert syllable in phonemes


def test_a_call_is_made_of_the_template_words_the_numbers_characters_and_the_window():
    assert voice.call_parts("A012", 3) == [["请"], ["A", "零", "一", "二"], ["号到"], ["三"], ["号窗口办理"]]
    assert voice.call_parts("B100", 12, "{number}号请到{window}号窗口") == [
        ["B", "一", "零", "零"], ["号请到"], ["十二"], ["号窗口"]]


@needs_espeak
def test_a_call_is_rendered_to_wav_with_chime_and_repeats(tmp_path):
    settings = VoiceSettings(repeat=2, chime=True)
    pieces = voice.PieceCache(tmp_path, settings)
    path = voice.render_call("A012", 3, tmp_path, settings, pieces)
    channels, width, rate, frames = wav_info(path)
    assert (channels, width) == (1, 2)
    # Each piece was rendered by espeak-ng once, without the silence it puts after every word.
    assert pieces.rendered == len(list((tmp_path / voice.PIECES).glob("*.wav"))) == 8
    zero = pieces.frames("零")
    assert loudest(zero) > 3000 and len(zero) < rate * 2 * 0.5  # real speech, a short syllable
    assert abs(memoryview(zero).cast("h")[0]) > voice.SILENCE_LEVEL
    speech_rate, spoken = pieces.speech("A012", 3, settings.template)
    assert speech_rate == rate and len(spoken) > rate * 2 * 1.5  # more than 1.5 s of speech
    gap = voice.silence(rate, voice.GAP_IN_NUMBER_S)
    assert zero + gap + pieces.frames("一") + gap + pieces.frames("二") in spoken
    chime = voice.chime_frames(rate) + voice.silence(rate, 0.3)
    assert frames == chime + spoken + voice.silence(rate, 0.8) + spoken
    again = voice.render_call("A021", 3, tmp_path, settings, pieces)  # the same pieces in another order
    assert again == path and pieces.rendered == 8
    once = voice.render_call("A012", 3, tmp_path, VoiceSettings(repeat=1, chime=False), pieces)
    assert wav_info(once)[3] == spoken


@needs_espeak
def test_the_voice_cache_stays_small_after_thousands_of_distinct_calls(tmp_path):
    """Issue 19: a WAV per call (0.62 MB) filled 947 MB in 13 minutes; pieces are rendered once and kept."""
    settings = VoiceSettings(repeat=1, chime=False)
    directory = tmp_path / "voice"
    pieces = voice.PieceCache(directory, settings)
    calls = [(f"{letter}{n:03d}", n % 12 + 1) for letter in "AB" for n in range(1, 1001)]
    played = {voice.render_call(number, window, directory, settings, pieces) for number, window in calls}
    files = [f for f in directory.rglob("*") if f.is_file()]
    # 2,000 distinct calls: 3 template words, 2 letters, 10 digits (一 to 九 say windows 1-9 too), 十 十一 十二,
    # and the call being played.
    assert len(played) == 1 and len(files) == 3 + 2 + 10 + 3 + 1
    assert pieces.rendered == 3 + 2 + 10 + 3  # espeak-ng ran once per piece, not once per call
    assert sum(f.stat().st_size for f in files) < 1_000_000


def test_the_per_call_cache_of_earlier_versions_is_removed_at_start(tmp_path):
    directory = tmp_path / "voice"
    directory.mkdir()
    for name in ("call-0123456789abcdef-2c.wav", "speech-0123456789abcdef.wav"):
        (directory / name).write_bytes(b"\0" * 1000)
    stale = directory / voice.PIECES / "00000000-0123456789abcdef.wav"  # a piece of other settings
    stale.parent.mkdir()
    stale.write_bytes(b"\0" * 10)
    kept = voice.PieceCache(directory, VoiceSettings()).path("请")
    kept.write_bytes(b"\0" * 10)
    announcer = VoiceAnnouncer(VoiceSettings(enabled=False), directory)
    with LoopThread() as loop:
        loop.run(announcer.start())
        loop.run(announcer.stop())
    assert sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*.wav")) == [
        f"{voice.PIECES}/{kept.name}"]


@pytest.fixture
def player(tmp_path):
    script = tmp_path / "fake_player.py"
    script.write_text(FAKE_PLAYER)
    log = tmp_path / "played.log"
    return (sys.executable, str(script), str(log)), log


def plays(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


@needs_espeak
def test_calls_are_queued_and_played_one_after_another_in_order(tmp_path, player):
    command, log = player
    announcer = VoiceAnnouncer(VoiceSettings(player=command, repeat=1, chime=False), tmp_path / "voice")
    with LoopThread() as loop:
        loop.run(announcer.start())
        # Three calls at once from another thread (a web worker): none may cut another off.
        callers = [threading.Thread(target=announcer.announce, args=(n, w))
                   for n, w in (("A001", 3), ("B002", 1), ("A003", 12))]
        for caller in callers:
            caller.start()
            caller.join()  # started in this order
        wait_until(lambda: len(plays(log)) == 6, timeout=60, what="three calls played")
        loop.run(announcer.idle())
        loop.run(announcer.stop())
    lines = plays(log)
    assert not [line for line in lines if line.startswith("OVERLAP")]
    assert [line.split()[0] for line in lines] == ["start", "end"] * 3
    played = [Path(line.split()[1]) for line in lines[::2]]
    assert played == [tmp_path / "voice" / voice.CALL_FILE] * 3
    pieces = voice.PieceCache(tmp_path / "voice", announcer.settings)
    for i, (number, window) in enumerate((("A001", 3), ("B002", 1), ("A003", 12)), 1):
        rate, speech = pieces.speech(number, window, announcer.settings.template)
        assert wav_info(Path(f"{log}.{i}.wav"))[3] == speech  # what the player got is that call, once
    assert announcer.health()["played"] == 3 and announcer.health()["ok"]


@needs_espeak
def test_a_failing_player_is_reported_and_the_next_call_still_plays(tmp_path, player):
    _, log = player
    failing = ("sh", "-c", 'echo "no sound card" >&2; exit 1', "player")
    announcer = VoiceAnnouncer(VoiceSettings(player=failing, repeat=1, chime=False), tmp_path / "voice")
    with LoopThread() as loop:
        loop.run(announcer.start())
        announcer.announce("A001", 1)
        loop.run(announcer.idle())
        health = announcer.health()
        assert not health["ok"] and "no sound card" in health["last_error"]
        announcer.settings = VoiceSettings(player=player[0], repeat=1, chime=False)
        announcer.announce("A002", 1)
        loop.run(announcer.idle())
        loop.run(announcer.stop())
    assert [line.split()[0] for line in plays(log)] == ["start", "end"]
    assert announcer.health()["ok"]


def test_voice_switched_off_speaks_nothing(tmp_path, player):
    command, log = player
    announcer = VoiceAnnouncer(VoiceSettings(enabled=False, player=command), tmp_path / "voice")

    async def run() -> bool:
        await announcer.start()
        queued = announcer.announce("A001", 1)
        await announcer.idle()
        await announcer.stop()
        return queued

    with LoopThread() as loop:  # not asyncio.run: Playwright's sync API may own this thread's loop
        assert loop.run(run()) is False
    assert plays(log) == [] and not (tmp_path / "voice").exists()
