"""A small ESC/POS decoder for tests: bytes a printer received -> the lines, QR codes and cuts it makes.

It knows the commands python-escpos and common Chinese ticket printers use, and refuses anything
else (an unknown command, a command cut short, non-ASCII text outside Chinese mode), so a test
that decodes a ticket also checks that the bytes are well-formed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ESC, GS, FS, DLE = 0x1B, 0x1D, 0x1C, 0x10

# Commands with a fixed number of parameter bytes.
ESC_FIXED = {ord("@"): 0, ord("!"): 1, ord("E"): 1, ord("-"): 1, ord("a"): 1, ord("d"): 1, ord("J"): 1,
             ord("t"): 1, ord("G"): 1, ord("M"): 1, ord("2"): 0, ord("3"): 1, ord("V"): 1, ord("{"): 1,
             ord("p"): 3, ord("R"): 1, ord(" "): 1}
GS_FIXED = {ord("!"): 1, ord("B"): 1, ord("h"): 1, ord("w"): 1, ord("H"): 1, ord("f"): 1, ord("L"): 2,
            ord("W"): 2, ord("b"): 1, ord("a"): 1, ord("P"): 2, ord("r"): 1}
FS_FIXED = {ord("&"): 0, ord("."): 0, ord("!"): 1, ord("-"): 1, ord("W"): 1}


class EscposDecodeError(ValueError):
    pass


@dataclass(frozen=True)
class Line:
    text: str
    align: str  # left / center / right
    bold: bool
    width: int  # character magnification 1..8
    height: int


@dataclass
class Printout:
    lines: list[Line] = field(default_factory=list)
    qr_codes: list[str] = field(default_factory=list)
    cuts: list[str] = field(default_factory=list)  # "full" / "partial"
    status_queries: list[int] = field(default_factory=list)  # DLE EOT n
    chinese_mode: bool = False

    def texts(self) -> list[str]:
        return [line.text for line in self.lines]

    def line(self, text: str) -> Line:
        for line in self.lines:
            if line.text == text:
                return line
        raise AssertionError(f"no line {text!r} in {self.texts()}")


def decode(data: bytes, encoding: str = "gb18030") -> Printout:
    out = Printout()
    style = {"align": "left", "bold": False, "width": 1, "height": 1}
    text = bytearray()
    stored_qr: bytes | None = None
    i = 0

    def need(count: int, what: str) -> bytes:
        if i + count > len(data):
            raise EscposDecodeError(f"{what} at byte {i} is cut short")
        return data[i:i + count]

    def end_line() -> None:
        if any(b >= 0x80 for b in text) and not out.chinese_mode:
            raise EscposDecodeError(f"non-ASCII text outside Chinese mode: {bytes(text)!r}")
        try:
            decoded = bytes(text).decode(encoding)
        except UnicodeDecodeError as exc:
            raise EscposDecodeError(f"text is not {encoding}: {exc}") from None
        out.lines.append(Line(decoded, style["align"], style["bold"], style["width"], style["height"]))
        text.clear()

    while i < len(data):
        byte = data[i]
        if byte == 0x0A:
            end_line()
            i += 1
        elif byte == 0x0D:
            i += 1
        elif byte == 0x09 or byte >= 0x20:
            text.append(byte)
            i += 1
        elif byte == ESC:
            command = need(2, "ESC")[1]
            if command not in ESC_FIXED:
                raise EscposDecodeError(f"unknown command ESC {command:#04x} at byte {i}")
            params = need(2 + ESC_FIXED[command], f"ESC {chr(command)}")[2:]
            if command == ord("@"):
                style = {"align": "left", "bold": False, "width": 1, "height": 1}
            elif command == ord("!"):
                n = params[0]
                style.update(bold=bool(n & 0x08), width=2 if n & 0x20 else 1, height=2 if n & 0x10 else 1)
            elif command == ord("E"):
                style["bold"] = bool(params[0] & 1)
            elif command == ord("a"):
                style["align"] = {0: "left", 1: "center", 2: "right", 48: "left", 49: "center", 50: "right"}.get(
                    params[0], "left")
            i += 2 + ESC_FIXED[command]
        elif byte == GS:
            command = need(2, "GS")[1]
            if command in GS_FIXED:
                params = need(2 + GS_FIXED[command], f"GS {chr(command)}")[2:]
                if command == ord("!"):
                    style.update(width=(params[0] >> 4) + 1, height=(params[0] & 0x0F) + 1)
                i += 2 + GS_FIXED[command]
            elif command == ord("V"):
                m = need(3, "GS V")[2]
                if m in (0, 48, 1, 49):
                    out.cuts.append("full" if m in (0, 48) else "partial")
                    i += 3
                elif m in (65, 66):
                    need(4, "GS V m n")
                    out.cuts.append("full" if m == 65 else "partial")
                    i += 4
                else:
                    raise EscposDecodeError(f"GS V with unknown mode {m}")
            elif command == ord("("):
                head = need(5, "GS (")
                if head[2] != ord("k"):
                    raise EscposDecodeError(f"unknown command GS ( {chr(head[2])!r}")
                size = head[3] + head[4] * 256
                body = need(5 + size, "GS ( k")[5:]
                if len(body) < 2 or body[0] != 49:
                    raise EscposDecodeError("GS ( k for a symbol other than QR")
                function = body[1]
                if function in (80, 81) and (len(body) < 3 or body[2] != 48):
                    raise EscposDecodeError(f"QR function {function} without its m = 48 at byte {i}")
                if function == 80:  # store the data: cn fn m data, pL pH counting cn fn m too
                    stored_qr = body[3:]
                elif function == 81:  # print the stored symbol
                    if stored_qr is None:
                        raise EscposDecodeError("QR printed before any data was stored")
                    out.qr_codes.append(stored_qr.decode(encoding))
                elif function not in (65, 67, 69):  # model, module size, error correction
                    raise EscposDecodeError(f"unknown QR function {function}")
                i += 5 + size
            elif command == ord("v"):
                head = need(8, "GS v 0")
                width, height = head[4] + head[5] * 256, head[6] + head[7] * 256
                need(8 + width * height, "GS v 0 image")
                i += 8 + width * height
            elif command == ord("k"):
                m = need(3, "GS k")[2]
                if m <= 6:
                    end = data.find(b"\x00", i + 3)
                    if end < 0:
                        raise EscposDecodeError("GS k barcode without its NUL")
                    i = end + 1
                else:
                    n = need(4, "GS k m n")[3]
                    need(4 + n, "GS k data")
                    i += 4 + n
            else:
                raise EscposDecodeError(f"unknown command GS {command:#04x} at byte {i}")
        elif byte == FS:
            command = need(2, "FS")[1]
            if command not in FS_FIXED:
                raise EscposDecodeError(f"unknown command FS {command:#04x} at byte {i}")
            need(2 + FS_FIXED[command], f"FS {chr(command)}")
            if command == ord("&"):
                out.chinese_mode = True
            elif command == ord("."):
                out.chinese_mode = False
            i += 2 + FS_FIXED[command]
        elif byte == DLE:
            head = need(3, "DLE")
            if head[1] != 0x04:
                raise EscposDecodeError(f"unknown command DLE {head[1]:#04x}")
            out.status_queries.append(head[2])
            i += 3
        else:
            raise EscposDecodeError(f"unexpected control byte {byte:#04x} at byte {i}")
    if text:
        end_line()  # text never ended by LF stays in the printer's buffer; show it anyway
    return out
