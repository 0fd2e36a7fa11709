"""The card reader and the scanner wired into the agent: a swiped card reaches the kiosk, a scan too."""

from __future__ import annotations

import os
import tty

from edge_agent.agent import EdgeAgent
from edge_agent.config import load_config
from edge_agent.simulators.id_card_reader import SamReaderSimulator, sample_text_block
from tests.support.centers import write_edge_config
from tests.support.loop import LoopThread
from tests.support.waiting import wait_until
from tools.mosquitto import free_port


def test_a_card_and_a_scan_reach_the_kiosk_and_the_number_stays_out_of_logs(tmp_path, caplog):
    reader = SamReaderSimulator().start()
    scanner_master, scanner_slave = os.openpty()
    tty.setraw(scanner_slave)
    extra = f"""
[peripherals.id_card]
port = "{reader.path}"
poll_interval_s = 0.05

[peripherals.scanner]
port = "{os.ttyname(scanner_slave)}"
"""
    config = load_config(write_edge_config(tmp_path / "center", free_port(), free_port(), free_port(),
                                           printer="none", extra=extra))
    block = sample_text_block(name="王秀英", birth_date="19400105")  # well over the green channel age
    number = block[122:158].decode("utf-16-le")
    with LoopThread() as loop:
        agent = loop.call(EdgeAgent, config)
        loop.run(agent.start())
        try:
            wait_until(lambda: loop.call(agent.health)["id_card_reader"]["ok"], what="the reader ready")
            reader.present(block)
            card = wait_until(lambda: loop.call(agent.kiosk.state)["card"], what="the card at the kiosk")
            assert card["green"] is True and card["name_masked"] == "王**"
            os.write(scanner_master, b"NO-SUCH-APPOINTMENT\r\n")
            wait_until(lambda: loop.call(agent.health)["scanner"]["codes"] == 1, what="the scan")
            wait_until(lambda: loop.call(agent.kiosk.state)["result"], what="the kiosk answering the scan")
            assert (tmp_path / "center" / "data" / "id_card_salt").exists()
        finally:
            loop.run(agent.stop())
            reader.stop()
            os.close(scanner_master)
            os.close(scanner_slave)
    assert number not in caplog.text and number[6:14] not in caplog.text
