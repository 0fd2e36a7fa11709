"""The copy plan: what changes on a board, in which order, and how much space it needs."""

from __future__ import annotations

import hashlib

from provisioning.image import Image, ImageFile, build_image
from provisioning.plan import OTA_BOOT_FILES, make_plan, space_needed, top_level_paths
from provisioning.transport import RemoteFile


def image_of(files: dict[str, bytes]) -> Image:
    return Image("rating_pad", "esp32-devkitc-ssd1306",
                 tuple(ImageFile(path, path.lstrip("/"), data) for path, data in files.items()))


def on_board(files: dict[str, bytes]) -> dict[str, RemoteFile]:
    return {path: RemoteFile(hashlib.sha256(data).hexdigest(), len(data)) for path, data in files.items()}


IMAGE = {"/main.py": b"main", "/lib/firmware/lib/a.mpy": b"a" * 10, "/lib/protocol/b.mpy": b"b" * 20}
CONFIG = b'{"window": 3}\n'


def test_an_empty_board_gets_everything_main_py_last():
    plan = make_plan(image_of(IMAGE), CONFIG, {})
    assert [item.device_path for item in plan.copy] == [
        "/lib/firmware/lib/a.mpy", "/lib/protocol/b.mpy", "/config.json", "/main.py"]
    assert plan.remove == () and (plan.unchanged, plan.total) == (0, 4)


def test_an_up_to_date_board_gets_nothing():
    plan = make_plan(image_of(IMAGE), CONFIG, on_board({**IMAGE, "/config.json": CONFIG, "/boot.py": b"x"}))
    assert plan.nothing_to_do and plan.unchanged == 4


def test_one_changed_file_takes_main_py_down_first_and_back_last():
    board = on_board({**IMAGE, "/lib/protocol/b.mpy": b"old", "/config.json": CONFIG})
    plan = make_plan(image_of(IMAGE), CONFIG, board)
    assert [item.device_path for item in plan.copy] == ["/lib/protocol/b.mpy", "/main.py"]
    assert plan.remove == ("/main.py",)


def test_stale_files_are_only_those_of_the_image_folders_and_temp_names():
    board = on_board({**IMAGE, "/config.json": CONFIG, "/lib/firmware/queue_display/app.mpy": b"q",
                      "/lib/firmware/lib/a.py": b"shadow", "/main.py.tmp": b"m", "/lib/other/x.py": b"user",
                      "/state/session": b"3"})
    plan = make_plan(image_of(IMAGE), CONFIG, board)
    assert plan.remove == ("/main.py", "/lib/firmware/lib/a.py", "/lib/firmware/queue_display/app.mpy",
                           "/main.py.tmp")
    assert [item.device_path for item in plan.copy] == ["/main.py"]


def test_a_board_updated_over_the_air_runs_what_provisioning_copies_again():
    """otaboot boots a bundle kept in /state/ota while boot.json names it: provisioning removes that record."""
    assert set(OTA_BOOT_FILES) <= set(top_level_paths(image_of(IMAGE)))  # hashed, so seen when present
    board = on_board({**IMAGE, "/config.json": CONFIG, "/state/ota/boot.json": b'{"active": {"slot": "a"}}',
                      "/state/ota/a/firmware/lib/a.mpy": b"a bundle's", "/state/session": b"3"})
    plan = make_plan(image_of(IMAGE), CONFIG, board)
    assert plan.remove == ("/main.py", "/state/ota/boot.json")
    assert [item.device_path for item in plan.copy] == ["/main.py"]


def test_space_needed_counts_whole_blocks_and_both_versions_during_a_replace():
    empty = make_plan(image_of(IMAGE), CONFIG, {})
    assert space_needed(empty, {}, 4096) == 4 * 4096
    board = on_board({**IMAGE, "/lib/protocol/b.mpy": b"o" * 5000, "/config.json": CONFIG})
    replace = make_plan(image_of(IMAGE), CONFIG, board)
    # main.py's block comes back first; b.mpy is written beside its 2-block old version, which is then freed
    assert space_needed(replace, board, 4096) == 0
    only_main = {"/main.py": board["/main.py"]}
    assert space_needed(make_plan(image_of(IMAGE), CONFIG, only_main), only_main, 1) == 10 + 20 + 14 + 4 - 4


def test_the_image_hash_is_stable_and_covers_every_file():
    first = build_image("rating_pad", "esp32-devkitc-ssd1306")
    again = build_image("rating_pad", "esp32-devkitc-ssd1306")
    assert first.sha256 == again.sha256
    paths = {item.device_path for item in first.files}
    assert {"/main.py", "/board.json", "/lib/firmware/lib/default_font.bin", "/lib/protocol/identity.mpy",
            "/lib/firmware/rating_pad/app.mpy", "/lib/firmware/drivers/ssd1306.mpy"} <= paths
    assert not [path for path in paths if "queue_display" in path or "framebuf_compat" in path or "/sim/" in path]
    assert all(item.data.startswith(b"M") for item in first.files if item.device_path.endswith(".mpy"))
    other = build_image("queue_display", "esp32-devkitc-max7219")
    assert other.sha256 != first.sha256
