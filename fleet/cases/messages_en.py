"""English for the Chinese messages of the case page's assignee and of the suspicious-ratings page.

(The other case-page messages are in fleet/alerts/messages_en.py.)
"""

from __future__ import annotations

from fleet.web.i18n import EN, add_messages

MESSAGES_EN: dict[str, str] = {
    # navigation and the suspicious-ratings page
    "可疑评价": "Suspicious ratings",
    "近 {n} 天": "last {n} days",
    "以下评价的模式可疑，仅供人工核查，不会被自动剔除。": "These ratings follow a suspicious pattern. They are for a "
    "person to check and are never excluded automatically.",
    "评价过快": "Rated too soon",
    "集中好评": "Burst of top marks",
    "叫号后 {seconds} 秒即评价（少于 {limit} 秒即标记）":
        "Rated {seconds} s after the call (flagged under {limit} s)",
    "{count} 次“非常满意”集中在 {span} 秒内（{minimum} 次以上、{window} 秒内即标记）":
        "{count} × “very satisfied” within {span} s (flagged from {minimum} within {window} s)",
    "共 {n} 条可疑记录。": "{n} suspicious patterns.",
    "暂无可疑评价。": "No suspicious ratings.",
    "{center} · {window}号窗口": "{center} · window {window}",
    "评价编号": "Rating ids",
    # a 差评's reason, picked on the pad (protocol.messages.RATING_REASON_LABELS)
    "差评原因": "Reason",
    "未选择原因": "No reason picked",
    "服务态度": "Attitude of the staff",
    "服务效率": "Efficiency",
    "服务水平": "Competence",
    "一次性告知不到位": "Not told everything at once",
    "其他": "Other",
    # the case's assignee
    "请选择": "Choose",
    "旧记录，非系统用户": "old record, not a user account",
    "责任人须为管理范围包括该中心的有效用户。": "The responsible person must be an active user whose scope includes "
                                     "this center.",
}


def install_english() -> None:
    add_messages(EN, MESSAGES_EN)
