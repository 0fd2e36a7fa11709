from escpos.printer import Dummy

from edge_agent.adapters.printer import TicketPrinter, TicketSlip, render_ticket
from edge_agent.config import PrinterConfig
from tests.support.aio import run_async
from tests.support.escpos_decoder import decode

SLIP = TicketSlip("示例镇便民服务中心", "社保业务", "A001", 2, 1_795_400_000.0, "445202101001/2026-11-23/A001")


def test_ticket_bytes_are_chinese_gb18030_with_qr_and_cut():
    printer = Dummy()
    render_ticket(printer, SLIP)
    out = printer.output
    assert out.startswith(b"\x1c\x26")  # FS &: Chinese mode
    for text in ("示例镇便民服务中心", "社保业务", "您前面还有 2 人在等待", "请在休息区等候，注意呼叫及大屏显示信息"):
        assert text.encode("gb18030") in out
    assert b"A001" in out
    # The QR code as the printer reads it: the data of GS ( k's store function, then its print function.
    # (The reference's bytes merely appearing somewhere, say as a text line, would not give the resident a code.)
    printout = decode(out)
    assert printout.qr_codes == ["445202101001/2026-11-23/A001"]
    assert "445202101001/2026-11-23/A001" not in printout.texts()
    assert printout.cuts == ["partial"]


def test_file_printer_writes_the_ticket_and_reports_health(tmp_path):
    path = tmp_path / "printer.bin"
    printer = TicketPrinter(PrinterConfig(kind="file", path=str(path)))

    async def run() -> bool:
        await printer.start()
        ok = await printer.print_ticket(SLIP)
        await printer.stop()
        return ok

    assert run_async(run())
    printout = decode(path.read_bytes())
    assert "社保业务" in printout.texts()
    assert printout.qr_codes == [SLIP.reference] and printout.cuts == ["partial"]
    assert printer.health()["printed"] == 1


def test_an_unusable_printer_is_reported_not_fatal(tmp_path):
    printer = TicketPrinter(PrinterConfig(kind="file", path=str(tmp_path / "missing-dir" / "printer.bin")))

    async def run() -> bool:
        await printer.start()
        return await printer.print_ticket(SLIP)

    assert run_async(run()) is False
    health = printer.health()
    assert health["ok"] is False and "cannot open" in health["last_error"]
