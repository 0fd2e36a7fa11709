"""Pure parts of the ID card path: the GB 11643 number, the text block, SAM frames."""

from datetime import date

import pytest

from edge_agent.adapters.id_card import (
    FIND,
    FrameError,
    encode_command,
    parse_id_card_config,
    take_reply,
    text_block_of,
)
from edge_agent.identity_card import (
    CardDataError,
    ResidentCard,
    card_from_text_block,
    check_character,
    encode_text_block,
    hash_number,
    is_valid_number,
    load_or_create_salt,
    mask_number,
    number_problem,
)
from edge_agent.simulators.id_card_reader import reply_frame, sample_text_block

SALT = bytes(range(32))

# Worked examples published with GB 11643-1999 itself.
KNOWN_VALID = ["11010519491231002X", "440524188001010014"]


def make_number(first17: str) -> str:
    return first17 + check_character(first17)


def test_the_standard_examples_are_valid_and_any_changed_character_is_not():
    for number in KNOWN_VALID:
        assert is_valid_number(number)
        for i in range(17):  # one digit changed: the weighted sum mod 11 always changes
            changed = number[:i] + str((int(number[i]) + 1) % 10) + number[i + 1:]
            assert not is_valid_number(changed), changed
    assert number_problem("11010519491231002Y") == "not 17 digits followed by a digit or X"
    assert number_problem("110105194912310021") == "wrong check character"
    assert number_problem("110105194913310020") == "the birth date inside the number is not a date"
    assert number_problem("11010519491231002") is not None  # 17 characters
    assert number_problem("440524" + "21000101" + "0014") is not None  # born in the future


def test_check_character_covers_x_and_zero():
    # Build numbers whose check characters are X and 0, as a card printer would.
    made = {check_character(f"44520219800101{seq:03d}"): f"44520219800101{seq:03d}" for seq in range(200)}
    assert "X" in made and "0" in made
    for character, first17 in made.items():
        assert is_valid_number(first17 + character)


def test_mask_and_hash():
    number = make_number("44520219600315123")
    assert mask_number(number) == "445202********" + number[-4:]
    assert hash_number(number, SALT) == hash_number(number.lower(), SALT)
    assert hash_number(number, SALT) != hash_number(number, bytes(32))  # the salt matters
    assert len(hash_number(number, SALT)) == 64


def test_the_salt_is_made_once_and_kept(tmp_path):
    salt = load_or_create_salt(tmp_path / "data")
    assert len(salt) == 32
    assert load_or_create_salt(tmp_path / "data") == salt
    assert (tmp_path / "data" / "id_card_salt").stat().st_mode & 0o077 == 0
    (tmp_path / "data" / "id_card_salt").write_bytes(b"short")
    with pytest.raises(CardDataError, match="damaged"):
        load_or_create_salt(tmp_path / "data")


def test_a_text_block_becomes_a_card_without_the_number():
    block = sample_text_block(name="欧阳秀英", sex_code="2", ethnicity_code="22", birth_date="19480229",
                              valid_to="长期")
    card = card_from_text_block(block, SALT)
    number = block[122:158].decode("utf-16-le")
    assert isinstance(card, ResidentCard)
    assert (card.name, card.sex, card.ethnicity, card.birth_date) == ("欧阳秀英", "女", "畲", date(1948, 2, 29))
    assert card.valid_to is None and not card.expired_on(date(2099, 1, 1))
    assert card.id_masked == "445202********" + number[-4:]
    assert card.id_hash == hash_number(number, SALT)
    assert number not in repr(card) and number not in str(vars(card))
    assert not hasattr(card, "address")
    assert card.age_on(date(2026, 2, 28)) == 77  # a 29 February birthday comes on 1 March
    assert card.age_on(date(2026, 3, 1)) == 78


def test_a_dated_expiry_is_parsed():
    card = card_from_text_block(sample_text_block(valid_to="20300102"), SALT)
    assert card.valid_to == date(2030, 1, 2)
    assert card.expired_on(date(2030, 1, 3)) and not card.expired_on(date(2030, 1, 2))


@pytest.mark.parametrize(("change", "message"), [
    ({"sex_code": "5"}, "sex: unknown code"),
    ({"ethnicity_code": "60"}, "ethnicity: unknown code"),
    ({"valid_to": "2030-1-2"}, "valid_to"),
    ({"birth_date": "19501302"}, "birth_date"),
])
def test_bad_fields_are_refused_with_the_field_name(change, message):
    with pytest.raises(CardDataError, match=message):
        card_from_text_block(sample_text_block(**change), SALT)


def test_a_wrong_check_character_or_a_number_that_disagrees_with_the_birth_date_is_refused():
    fields = dict(name="张三", sex_code="1", ethnicity_code="01", birth_date="19500102", address="",
                  authority="", valid_from="20200101", valid_to="长期")
    good = make_number("44520219500102123")
    bad_check = good[:17] + ("0" if good[17] != "0" else "1")
    with pytest.raises(CardDataError, match="wrong check character") as error:
        card_from_text_block(encode_text_block(number=bad_check, **fields), SALT)
    assert bad_check not in str(error.value)
    other = make_number("44520219600102123")
    with pytest.raises(CardDataError, match="differs"):
        card_from_text_block(encode_text_block(number=other, **fields), SALT)
    with pytest.raises(CardDataError, match="256"):
        card_from_text_block(b"\x00" * 200, SALT)


def test_commands_are_framed_as_the_reference_shows():
    assert encode_command(FIND) == bytes.fromhex("AAAAAA9669000320 0122".replace(" ", ""))


def test_replies_are_taken_from_a_stream_with_garbage_and_split_frames():
    found = reply_frame(0x9F, bytes(4))
    failed = reply_frame(0x80)
    assert len(failed) == 11
    buffer = bytearray(b"\x01\x02\xaa\xaa" + found[:6])
    assert take_reply(buffer) is None
    buffer += found[6:] + failed
    first = take_reply(buffer)
    assert (first.status, first.data) == (0x9F, bytes(4))
    assert take_reply(buffer).status == 0x80
    assert take_reply(buffer) is None and buffer == b""


def test_a_bad_checksum_is_an_error_and_the_stream_goes_on():
    bad = bytearray(reply_frame(0x90, bytes(8)))
    bad[-1] ^= 0x55
    buffer = bytearray(bad + reply_frame(0x80))
    with pytest.raises(FrameError, match="checksum"):
        take_reply(buffer)
    assert take_reply(buffer).status == 0x80


def test_an_impossible_length_is_skipped():
    buffer = bytearray(b"\xaa\xaa\xaa\x96\x69\xff\xff" + reply_frame(0x80))
    with pytest.raises(FrameError, match="length"):
        take_reply(buffer)
    assert take_reply(buffer).status == 0x80


def test_a_read_reply_is_1295_bytes_and_yields_the_text_block():
    block = sample_text_block()
    frame = reply_frame(0x90, (256).to_bytes(2, "big") + (1024).to_bytes(2, "big") + block + bytes(1024))
    assert len(frame) == 1295 and frame[5:7] == b"\x05\x08" and frame[14:270] == block
    assert text_block_of(take_reply(bytearray(frame))) == block
    with pytest.raises(FrameError):
        text_block_of(take_reply(bytearray(reply_frame(0x90, b"\x01\x00\x04\x00" + block))))


def test_config_problems_are_reported_with_their_path():
    problems: list[str] = []
    assert parse_id_card_config({"baud": 1234, "speed": 1, "poll_interval_s": 0}, "peripherals.id_card",
                                problems) is None
    assert problems == ["peripherals.id_card.speed: unknown key",
                        "peripherals.id_card.port: the reader's serial device is required, e.g. /dev/ttyUSB0",
                        "peripherals.id_card.baud: must be one of 9600, 19200, 38400, 57600, 115200, got 1234",
                        "peripherals.id_card.poll_interval_s: must be 0.05..10 seconds, got 0"]
    config = parse_id_card_config({"port": "/dev/ttyUSB0"}, "peripherals.id_card", problems := [])
    assert problems == [] and config.baud == 115200
