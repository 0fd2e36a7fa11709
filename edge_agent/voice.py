"""Spoken calls: 请A零一二号到三号窗口办理 through the hall's speaker.

Synthesis is offline (espeak-ng's Mandarin voice `cmn-latn-pinyin`, which
reads Chinese characters correctly; the plain `cmn` voice does not). A call is
put together from pieces, each rendered once and kept: the template's words
(请, 号到, 号窗口办理), every letter and digit of a ticket number (read one by
one anyway), and every window number as a word (三, 十二). So the cache holds a
few dozen small files for ever, whatever the number of calls: rendering every
call to its own WAV (about 0.62 MB with chime and repeats) filled 947 MB in a
13-minute load test and would fill a Pi's card within weeks (issue 19). The
call being played is one file, written again for every call.

Calls are queued and played one after another by one worker: a call is never
cut off by the next. A chime before the call and the number of repeats are
configurable; voice can be switched off in the config or at run time.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import math
import shlex
import shutil
import string
import struct
import subprocess
import threading
import wave
from dataclasses import dataclass
from pathlib import Path

from edge_agent.adapters.base import cancel_and_wait, start_kept_running

log = logging.getLogger(__name__)

DIGITS = "零一二三四五六七八九"
PIECES = "pieces"  # the rendered pieces, under the voice directory
CALL_FILE = "call.wav"  # the call being played (one at a time)
GAP_IN_NUMBER_S = 0.06  # between the characters of a ticket number
GAP_BETWEEN_PARTS_S = 0.12  # between the template's words, the number and the window
SILENCE_LEVEL = 400  # |sample| below this at either end of a piece is espeak-ng's silence, trimmed
TRAILING_KEEP_S = 0.03  # kept after a piece's last sound: its decay
MAX_PENDING = 50  # calls waiting to be spoken; beyond this the speaker is clearly not keeping up


@dataclass(frozen=True)
class VoiceSettings:
    enabled: bool = True
    template: str = "请{number}号到{window}号窗口办理"
    repeat: int = 2  # each call is spoken this many times, one after another
    chime: bool = True  # a two-tone chime before the call
    voice: str = "cmn-latn-pinyin"
    speed: int = 150  # words per minute for espeak-ng; slower helps elderly residents
    player: tuple[str, ...] = ("aplay", "-q")  # the WAV file's path is appended (or replaces "{file}")
    player_timeout_s: float = 120.0  # a player that hangs longer is killed so later calls still play
    synthesizer: str = "espeak-ng"
    kiosk: bool = True  # the kiosk speaks its prompts (您选择的是…，请确认取号) in the same voice


def parse_voice_settings(raw: object, problems: list[str]) -> VoiceSettings:
    if not isinstance(raw, dict):
        problems.append("voice: must be a table")
        return VoiceSettings()
    default = VoiceSettings()
    enabled = raw.get("enabled", default.enabled)
    if not isinstance(enabled, bool):
        problems.append(f"voice.enabled: must be true or false, got {enabled!r}")
        enabled = default.enabled
    repeat = raw.get("repeat", default.repeat)
    if not isinstance(repeat, int) or isinstance(repeat, bool) or not 1 <= repeat <= 5:
        problems.append(f"voice.repeat: must be 1..5, got {repeat!r}")
        repeat = default.repeat
    speed = raw.get("speed", default.speed)
    if not isinstance(speed, int) or isinstance(speed, bool) or not 80 <= speed <= 450:
        problems.append(f"voice.speed: must be 80..450 words per minute, got {speed!r}")
        speed = default.speed
    template = str(raw.get("template", default.template))
    try:
        template.format(number="A001", window=1)
    except (KeyError, IndexError, ValueError):
        problems.append("voice.template: may only use {number} and {window}")
        template = default.template
    player = raw.get("player", list(default.player))
    if isinstance(player, str):
        player = shlex.split(player)
    if not isinstance(player, list) or not player or not all(isinstance(p, str) for p in player):
        problems.append("voice.player: must be a command, e.g. \"aplay -q\" or [\"aplay\", \"-q\"]")
        player = list(default.player)
    timeout = raw.get("player_timeout_s", default.player_timeout_s)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 1 <= timeout <= 3600:
        problems.append(f"voice.player_timeout_s: must be 1..3600, got {timeout!r}")
        timeout = default.player_timeout_s
    return VoiceSettings(enabled=enabled, template=template, repeat=repeat, chime=bool(raw.get("chime", True)),
                         voice=str(raw.get("voice", default.voice)), speed=speed, player=tuple(player),
                         player_timeout_s=float(timeout), synthesizer=str(raw.get("synthesizer", "espeak-ng")),
                         kiosk=bool(raw.get("kiosk", default.kiosk)))


def spell_digits(text: str) -> str:
    """A012 -> A零一二: a ticket number is read digit by digit, as residents read it."""
    return "".join(DIGITS[int(c)] if c.isdigit() else c for c in text)


def cardinal(number: int) -> str:
    """3 -> 三, 12 -> 十二, 105 -> 一百零五: how a window number is said (1..999)."""
    if not 0 < number < 1000:
        return spell_digits(str(number))
    hundreds, tens, ones = number // 100, number // 10 % 10, number % 10
    text = ""
    if hundreds:
        text += DIGITS[hundreds] + "百"
        if tens == 0 and ones:
            return text + "零" + DIGITS[ones]
    if tens:
        text += ("" if tens == 1 and not hundreds else DIGITS[tens]) + "十"
    if ones:
        text += DIGITS[ones]
    return text


def call_text(number: str, window: int, template: str = VoiceSettings.template) -> str:
    """The sentence spoken for a call: 请A零一二号到三号窗口办理."""
    return template.format(number=spell_digits(number), window=cardinal(window))


# -- rendering ------------------------------------------------------------------


def synthesize(text: str, path: Path, settings: VoiceSettings) -> None:
    """Render `text` to a WAV file with espeak-ng (offline); raises RuntimeError with its stderr."""
    tmp = path.with_suffix(".tmp")
    result = subprocess.run([settings.synthesizer, "-v", settings.voice, "-s", str(settings.speed), "-w", str(tmp),
                             "--", text], capture_output=True, timeout=60)
    if result.returncode != 0 or not tmp.exists():
        raise RuntimeError(f"{settings.synthesizer} failed ({result.returncode}): "
                           f"{result.stderr.decode(errors='replace').strip()}")
    tmp.replace(path)


def _tone_frames(rate: int, frequency: float, seconds: float, volume: float = 0.35) -> bytes:
    count = int(rate * seconds)
    fade = max(1, int(rate * 0.01))  # 10 ms ramps: no click at either end
    frames = bytearray()
    for i in range(count):
        envelope = min(1.0, i / fade, (count - i) / fade)
        frames += struct.pack("<h", int(32767 * volume * envelope * math.sin(2 * math.pi * frequency * i / rate)))
    return bytes(frames)


def chime_frames(rate: int) -> bytes:
    """Ding-dong: two falling tones, the usual prelude of a hall call."""
    return _tone_frames(rate, 880.0, 0.35) + _tone_frames(rate, 660.0, 0.5)


def silence(rate: int, seconds: float) -> bytes:
    return b"\x00\x00" * int(rate * seconds)


def trim_silence(frames: bytes, rate: int) -> bytes:
    """A piece without espeak-ng's silence around it (about 0.4 s after every word), its decay kept."""
    samples = memoryview(frames).cast("h")
    first = next((i for i, v in enumerate(samples) if abs(v) > SILENCE_LEVEL), None)
    if first is None:
        return b""
    last = len(samples) - next(i for i, v in enumerate(reversed(samples)) if abs(v) > SILENCE_LEVEL)
    end = min(len(samples), last + int(rate * TRAILING_KEEP_S))
    return bytes(frames[first * 2:end * 2])


def call_parts(number: str, window: int, template: str = VoiceSettings.template) -> list[list[str]]:
    """The call as groups of pieces, in order: each template word, the number's characters one by one, the
    window as one word. 请A012号到3号窗口办理 -> [[请], [A, 零, 一, 二], [号到], [三], [号窗口办理]]."""
    parts: list[list[str]] = []
    for literal, field, _spec, _conversion in string.Formatter().parse(template):
        if literal.strip():
            parts.append([literal.strip()])
        if field == "number":
            parts.append([c for c in spell_digits(number) if not c.isspace()])
        elif field == "window":
            parts.append([cardinal(window)])
    return parts


class PieceCache:
    """Pieces rendered once by espeak-ng and kept, trimmed, under `directory`/pieces/.

    A piece's file name holds a key of the synthesizer's settings, so pieces of other settings (a new
    speed, another voice) are removed at start instead of piling up.
    """

    def __init__(self, directory: Path, settings: VoiceSettings) -> None:
        self.directory = Path(directory) / PIECES
        self.settings = settings
        self.settings_key = hashlib.sha1(
            f"{settings.synthesizer}|{settings.voice}|{settings.speed}".encode()).hexdigest()[:8]
        self.rate = 0
        self._frames: dict[str, bytes] = {}
        self._lock = threading.Lock()  # calls are rendered in a worker thread, a test or bench may share it
        self.rendered = 0  # espeak-ng runs, for tests and bench

    def path(self, text: str) -> Path:
        return self.directory / f"{self.settings_key}-{hashlib.sha1(text.encode()).hexdigest()[:16]}.wav"

    def remove_stale(self) -> int:
        """Remove pieces of other settings; returns how many."""
        stale = [p for p in self.directory.glob("*.wav") if not p.name.startswith(self.settings_key + "-")]
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)

    def frames(self, text: str) -> bytes:
        with self._lock:
            if text in self._frames:
                return self._frames[text]
            path = self.path(text)
            if not path.exists():
                self.directory.mkdir(parents=True, exist_ok=True)
                raw = path.with_suffix(".raw.wav")
                synthesize(text, raw, self.settings)
                self.rendered += 1
                rate, spoken = read_speech(raw)
                write_wav(path, rate, trim_silence(spoken, rate))
                raw.unlink()
            rate, frames = read_speech(path)
            if self.rate and rate != self.rate:
                raise RuntimeError(f"{path}: {rate} Hz, other pieces have {self.rate} Hz")
            self.rate = rate
            self._frames[text] = frames
            return frames

    def speech(self, number: str, window: int, template: str) -> tuple[int, bytes]:
        """(rate, frames) of the sentence of one call, put together from its pieces."""
        return self.sentence(call_parts(number, window, template))

    def sentence(self, parts: list[list[str]]) -> tuple[int, bytes]:
        """(rate, frames) of groups of pieces: the pieces of a group close together, the groups apart."""
        groups = [[self.frames(text) for text in group] for group in parts]
        in_number, between = silence(self.rate, GAP_IN_NUMBER_S), silence(self.rate, GAP_BETWEEN_PARTS_S)
        return self.rate, between.join(in_number.join(group) for group in groups)


KIOSK_CHOOSE = "choose"  # 请点选您要办理的业务
KIOSK_HELP = "help"  # 已通知工作人员，请稍候


def kiosk_prompt_parts(prompt: str, service_names: dict[str, str]) -> list[list[str]]:
    """What the kiosk says, as pieces (a finite set: the prompts' words, service names, letters and digits):
    choose, help, confirm-<prefix> (您选择的是医保业务，请确认取号), ticket-<number> (您的号码是B零零一，请取走号票).
    ValueError for any other prompt, so nobody can make the edge render text of their own."""
    if prompt == KIOSK_CHOOSE:
        return [["请点选您要办理的业务"]]
    if prompt == KIOSK_HELP:
        return [["已通知工作人员"], ["请稍候"]]
    kind, _, value = prompt.partition("-")
    if kind == "confirm" and value in service_names:
        return [["您选择的是"], [service_names[value]], ["请确认取号"]]
    if (kind == "ticket" and 2 <= len(value) <= 6 and value[0] in service_names and value[1:].isdigit()):
        return [["您的号码是"], [c for c in spell_digits(value) if not c.isspace()], ["请取走号票"]]
    raise ValueError(f"no kiosk prompt {prompt!r}")


def wav_bytes(rate: int, frames: bytes) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as target:
        target.setnchannels(1)
        target.setsampwidth(2)
        target.setframerate(rate)
        target.writeframes(frames)
    return out.getvalue()


def read_speech(path: Path) -> tuple[int, bytes]:
    with wave.open(str(path), "rb") as source:
        if source.getsampwidth() != 2 or source.getnchannels() != 1:
            raise RuntimeError(f"{path}: expected 16-bit mono speech")
        return source.getframerate(), source.readframes(source.getnframes())


def write_wav(path: Path, rate: int, frames: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    with wave.open(str(tmp), "wb") as target:
        target.setnchannels(1)
        target.setsampwidth(2)
        target.setframerate(rate)
        target.writeframes(frames)
    tmp.replace(path)


def call_frames(speech: bytes, rate: int, repeat: int, chime: bool) -> bytes:
    """One call: [chime, pause] then the sentence `repeat` times with a pause between."""
    parts = [chime_frames(rate), silence(rate, 0.3)] if chime else []
    for i in range(repeat):
        if i:
            parts.append(silence(rate, 0.8))
        parts.append(speech)
    return b"".join(parts)


def render_call(number: str, window: int, directory: Path, settings: VoiceSettings,
                pieces: PieceCache | None = None) -> Path:
    """The WAV file of one call (directory/call.wav, written again for every call), from cached pieces."""
    pieces = pieces or PieceCache(directory, settings)
    rate, speech = pieces.speech(number, window, settings.template)
    path = Path(directory) / CALL_FILE
    write_wav(path, rate, call_frames(speech, rate, settings.repeat, settings.chime))
    return path


def remove_old_cache(directory: Path) -> int:
    """Bytes freed from the cache of earlier versions: a WAV per call (call-*.wav, speech-*.wav), never reused."""
    freed = 0
    for path in [*Path(directory).glob("call-*.wav"), *Path(directory).glob("speech-*.wav")]:
        try:
            freed += path.stat().st_size
            path.unlink()
        except OSError:
            continue
    return freed


# -- the hall's speaker -----------------------------------------------------------


@dataclass
class SpokenCall:
    number: str
    window: int
    text: str = ""
    wav: Path | None = None


class VoiceAnnouncer:
    """Adapter: a queue of calls played one at a time through the configured player."""

    name = "voice"

    def __init__(self, settings: VoiceSettings, directory: Path) -> None:
        self.settings = settings
        self.directory = Path(directory)
        self.enabled = settings.enabled
        self._queue: asyncio.Queue[SpokenCall] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: asyncio.Task | None = None
        self.played = 0
        self.dropped = 0
        self.last_error = ""
        self.speaking: SpokenCall | None = None
        self._pieces: PieceCache | None = None

    def pieces(self) -> PieceCache:
        """The pieces of the current settings (they may be changed at run time)."""
        if self._pieces is None or self._pieces.settings != self.settings:
            self._pieces = PieceCache(self.directory, self.settings)
        return self._pieces

    async def start(self) -> None:
        if self._worker is not None and not self._worker.done():
            return  # already running: one player at a time, always
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        try:
            freed = await asyncio.to_thread(remove_old_cache, self.directory)
            stale = await asyncio.to_thread(self.pieces().remove_stale)
        except OSError as exc:
            log.warning("voice: the old cache could not be cleared: %s", exc)
        else:
            if freed or stale:
                log.info("voice: removed the per-call cache of earlier versions (%.1f MB) and %d stale pieces",
                         freed / 1e6, stale)
        self._worker = start_kept_running("voice", self._play_loop)
        if self.enabled and shutil.which(self.settings.synthesizer) is None:
            self.last_error = f"{self.settings.synthesizer} is not installed; calls are shown but not spoken"
            log.error("voice: %s", self.last_error)

    async def stop(self) -> None:
        if self._worker:
            await cancel_and_wait(self._worker)
            self._worker = None

    def health(self) -> dict:
        return {"ok": not self.enabled or not self.last_error, "enabled": self.enabled, "played": self.played,
                "queued": self._queue.qsize() if self._queue else 0, "dropped": self.dropped,
                "last_error": self.last_error}

    def set_enabled(self, enabled: bool) -> None:
        self.enabled = enabled
        log.info("voice calls switched %s", "on" if enabled else "off")

    def announce(self, number: str, window: int) -> bool:
        """Queue a call (thread-safe; returns at once). False when voice is off, not started or full."""
        if not self.enabled or self._loop is None or self._queue is None:
            return False
        if self._queue.qsize() >= MAX_PENDING:
            self.dropped += 1
            log.warning("voice: %d calls already waiting; %s for window %d is not spoken", MAX_PENDING, number,
                        window)
            return False
        call = SpokenCall(number, window, call_text(number, window, self.settings.template))
        self._loop.call_soon_threadsafe(self._queue.put_nowait, call)
        return True

    async def idle(self) -> None:
        """Wait until every queued call has been played (for a clean stop and for tests)."""
        if self._queue is not None:
            await self._queue.join()

    async def _play_loop(self) -> None:
        assert self._queue is not None
        while True:
            call = await self._queue.get()
            try:
                self.speaking = call
                await self._speak(call)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broken speaker must never stop the queue or the agent
                self.last_error = f"speaking {call.number} failed: {exc}"
                log.error("voice: %s", self.last_error)
            finally:
                self.speaking = None
                self._queue.task_done()

    async def _speak(self, call: SpokenCall) -> None:
        call.wav = await asyncio.to_thread(render_call, call.number, call.window, self.directory, self.settings,
                                           self.pieces())
        args = [a.replace("{file}", str(call.wav)) for a in self.settings.player]
        if not any("{file}" in a for a in self.settings.player):
            args.append(str(call.wav))
        process = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.DEVNULL,
                                                       stderr=asyncio.subprocess.PIPE)
        try:
            _, stderr = await asyncio.wait_for(process.communicate(), self.settings.player_timeout_s)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise RuntimeError(f"{args[0]} did not finish within {self.settings.player_timeout_s:.0f} s") from None
        except asyncio.CancelledError:  # the agent stops: no player is left behind
            if process.returncode is None:
                process.kill()
            await process.wait()
            raise
        if process.returncode != 0:
            raise RuntimeError(f"{args[0]} exited with {process.returncode}: "
                               f"{stderr.decode(errors='replace').strip()[:200]}")
        self.played += 1
        self.last_error = ""
