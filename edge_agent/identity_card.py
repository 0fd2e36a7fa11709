"""A resident's ID card as the agent keeps it: what the service needs, never the full number.

The 18-character number (GB 11643-1999) is sensitive personal information (PIPL).
It exists only inside `card_from_text_block` while a card is parsed: the agent keeps
a salted HMAC of it (to match the same person again, e.g. an appointment) and a masked
form staff can read back to the resident (445202********1234). The address, issuing
authority and photo are not kept at all: no service in this agent needs them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

# GB 11643-1999: weight of digit i (0-based) is 2^(17-i) mod 11; check character is "10X98765432"[S mod 11].
WEIGHTS = tuple(2 ** (17 - i) % 11 for i in range(17))
CHECK_CHARACTERS = "10X98765432"
_NUMBER = re.compile(r"^\d{17}[\dX]$")

# GB/T 2261.1 sex codes as printed on the card.
SEXES = {"0": "未知", "1": "男", "2": "女", "9": "未说明"}

# GB 3304 ethnicity codes, names as printed on the card (民族 汉).
ETHNICITIES = {f"{i:02d}": name for i, name in enumerate((
    "汉", "蒙古", "回", "藏", "维吾尔", "苗", "彝", "壮", "布依", "朝鲜", "满", "侗", "瑶", "白", "土家", "哈尼",
    "哈萨克", "傣", "黎", "傈僳", "佤", "畲", "高山", "拉祜", "水", "东乡", "纳西", "景颇", "柯尔克孜", "土",
    "达斡尔", "仫佬", "羌", "布朗", "撒拉", "毛南", "仡佬", "锡伯", "阿昌", "普米", "塔吉克", "怒", "乌孜别克",
    "俄罗斯", "鄂温克", "德昂", "保安", "裕固", "京", "塔塔尔", "独龙", "鄂伦春", "赫哲", "门巴", "珞巴", "基诺",
), start=1)}
ETHNICITIES.update({"97": "其他", "98": "外国血统中国籍人士"})

NO_EXPIRY = "长期"
SALT_FILE = "id_card_salt"
SALT_BYTES = 32

# Text block of the SAM "read text" reply: (offset, length) in bytes, UCS-2 little-endian, right-padded.
TEXT_BLOCK_BYTES = 256
TEXT_FIELDS = {
    "name": (0, 30), "sex": (30, 2), "ethnicity": (32, 4), "birth_date": (36, 16), "address": (52, 70),
    "number": (122, 36), "authority": (158, 30), "valid_from": (188, 16), "valid_to": (204, 16),
}


class CardDataError(ValueError):
    """The card's text does not make sense (corrupt read, unknown code, a number that fails its check)."""


def check_character(first17: str) -> str:
    """The GB 11643 check character for the first 17 digits of a number."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError("the check character needs exactly 17 digits")
    return CHECK_CHARACTERS[sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True)) % 11]


def _parse_yyyymmdd(text: str) -> date:
    if len(text) != 8 or not text.isdigit():
        raise ValueError(f"not a YYYYMMDD date: {len(text)} characters")
    return date(int(text[:4]), int(text[4:6]), int(text[6:]))


def number_problem(number: str) -> str | None:
    """Why an 18-character number is not a valid resident ID number, or None when it is.

    The reason never quotes the number, so it can be logged.
    """
    if not _NUMBER.match(number):
        return "not 17 digits followed by a digit or X"
    try:
        birth = _parse_yyyymmdd(number[6:14])
    except ValueError:
        return "the birth date inside the number is not a date"
    if birth.year < 1850 or birth > date.today():
        return "the birth date inside the number is out of range"
    if check_character(number[:17]) != number[17]:
        return "wrong check character"
    return None


def is_valid_number(number: str) -> bool:
    return number_problem(number) is None


def mask_number(number: str) -> str:
    """Region code and last four characters only: enough to read back to the resident, not to identify them."""
    return number[:6] + "*" * 8 + number[-4:]


def hash_number(number: str, salt: bytes) -> str:
    """HMAC-SHA256 of the number with the center's salt, hex: the same person gives the same hash in this center."""
    return hmac.new(salt, number.upper().encode("ascii"), hashlib.sha256).hexdigest()


def load_or_create_salt(data_dir: Path) -> bytes:
    """The center's secret salt, created once (readable by the agent's user only) in its data dir."""
    path = Path(data_dir) / SALT_FILE
    try:
        salt = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        salt = os.urandom(SALT_BYTES)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return load_or_create_salt(data_dir)
        with os.fdopen(fd, "wb") as file:
            file.write(salt)
            file.flush()
            os.fsync(file.fileno())
        return salt
    if len(salt) != SALT_BYTES:
        raise CardDataError(f"{path}: the salt file is damaged ({len(salt)} bytes); restore it from backup")
    return salt


def age_on(birth_date: date, day: date) -> int:
    """Whole years of age on `day` (a person born on 29 February turns a year older on 1 March)."""
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


@dataclass(frozen=True)
class ResidentCard:
    name: str
    sex: str  # 男 / 女 / 未知 / 未说明
    ethnicity: str  # as printed on the card, e.g. 汉
    birth_date: date
    id_hash: str = field(repr=False)  # HMAC-SHA256(center salt, number), hex
    id_masked: str  # 445202********1234
    valid_to: date | None  # None: 长期 (no expiry)

    def age_on(self, day: date) -> int:
        return age_on(self.birth_date, day)

    def expired_on(self, day: date) -> bool:
        return self.valid_to is not None and self.valid_to < day


def _field(block: bytes, name: str) -> str:
    offset, length = TEXT_FIELDS[name]
    try:
        text = block[offset:offset + length].decode("utf-16-le")
    except UnicodeDecodeError:
        raise CardDataError(f"{name}: not UCS-2 text") from None
    return text.rstrip(" \x00")


def card_from_text_block(block: bytes, salt: bytes) -> ResidentCard:
    """Parse the 256-byte text block of a card read; the number is checked, hashed, masked and dropped here."""
    if len(block) != TEXT_BLOCK_BYTES:
        raise CardDataError(f"the text block is {len(block)} bytes, not {TEXT_BLOCK_BYTES}")
    name = _field(block, "name")
    if not name:
        raise CardDataError("name: empty")
    sex_code = _field(block, "sex")
    if sex_code not in SEXES:
        raise CardDataError(f"sex: unknown code {sex_code!r}")
    ethnicity_code = _field(block, "ethnicity")
    if ethnicity_code not in ETHNICITIES:
        raise CardDataError(f"ethnicity: unknown code {ethnicity_code!r}")
    try:
        birth_date = _parse_yyyymmdd(_field(block, "birth_date"))
    except ValueError as exc:
        raise CardDataError(f"birth_date: {exc}") from None
    valid_to_text = _field(block, "valid_to")
    if valid_to_text == NO_EXPIRY:
        valid_to = None
    else:
        try:
            valid_to = _parse_yyyymmdd(valid_to_text)
        except ValueError as exc:
            raise CardDataError(f"valid_to: {exc}") from None
    number = _field(block, "number").upper()
    problem = number_problem(number)
    if problem:
        raise CardDataError(f"number: {problem}")
    if number[6:14] != birth_date.strftime("%Y%m%d"):
        raise CardDataError("number: its birth date differs from the card's birth date")
    return ResidentCard(name=name, sex=SEXES[sex_code], ethnicity=ETHNICITIES[ethnicity_code], birth_date=birth_date,
                        id_hash=hash_number(number, salt), id_masked=mask_number(number), valid_to=valid_to)


def encode_text_block(*, name: str, sex_code: str, ethnicity_code: str, birth_date: str, address: str, number: str,
                      authority: str, valid_from: str, valid_to: str) -> bytes:
    """The 256-byte text block a reader returns for these fields (for simulators and tests)."""
    values = {"name": name, "sex": sex_code, "ethnicity": ethnicity_code, "birth_date": birth_date,
              "address": address, "number": number, "authority": authority, "valid_from": valid_from,
              "valid_to": valid_to}
    block = bytearray(" ".encode("utf-16-le") * (TEXT_BLOCK_BYTES // 2))
    for key, (offset, length) in TEXT_FIELDS.items():
        raw = values[key].encode("utf-16-le")
        if len(raw) > length:
            raise ValueError(f"{key}: {len(raw)} bytes do not fit in {length}")
        block[offset:offset + len(raw)] = raw
    return bytes(block)
