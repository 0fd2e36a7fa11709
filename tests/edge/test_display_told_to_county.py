"""The county mirrors each window's display from what the edge told it, and names staff from the edge's directory."""

from __future__ import annotations

from edge_agent.agent import EdgeAgent
from edge_agent.config import parse_config
from protocol import messages
from tests.edge.test_staff_sign_in import raw_config


def test_the_health_summary_carries_what_each_display_was_told_and_the_staff_directory(tmp_path):
    agent = EdgeAgent(parse_config(raw_config(tmp_path)))
    try:
        for window in (1, 2, 3):
            agent.center_link.publish_window(window)  # what the link does on every connect
        agent.queue.login(3, "1003")
        agent.queue.issue_ticket("A")
        agent.queue.call_next(3)
        agent.queue.pause(1)
        summary = agent.health_summary()
        messages.validate("edge_health", {"v": 1, **summary})
        windows = summary["windows"]
        assert windows["3"]["display"] == {"state": "serving", "ticket": "A001", "text": "请A001号到3号窗口"}
        assert windows["1"]["display"] == {"state": "paused", "ticket": "", "text": "暂停服务"}
        assert windows["2"]["display"] == {"state": "idle", "ticket": "", "text": "欢迎光临"}
        # Exactly the payload on the display's retained topic, less its counter.
        told = agent.center_link.displays_told[3]
        assert {key: told[key] for key in ("state", "ticket", "text")} == windows["3"]["display"]
        assert summary["staff"] == {"1001": "张敏", "1002": "李强", "1003": "王芳", "1009": "赵丽"}
    finally:
        agent.store.close()
