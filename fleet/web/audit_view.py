"""The audit log as people read it: each action named in the page's language, its details as labelled values.

The log keeps machine words (action `login.failed`, detail `{"source": "10.0.0.8"}`) so it can be searched and
exported as it is; only the page names them. An action or detail key not listed here is shown as stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fleet.devconfig.form import field_label
from fleet.web.i18n import EN, add_messages

Translate = Callable[..., str]

ACTION_LABELS = {
    "login": "登录",
    "login.failed": "登录失败",
    "login.locked": "登录被锁定",
    "logout": "退出",
    "user.create": "创建用户",
    "user.disable": "停用用户",
    "user.enable": "启用用户",
    "user.password": "修改密码",
    "user.display_name": "修改姓名",
    "token.create": "创建 API 令牌",
    "token.revoke": "吊销 API 令牌",
    "alert.acknowledge": "确认告警",
    "center.hours": "修改开放时间",
    "center.profile": "修改中心资料",
    "divisions.import": "导入区划代码表",
    "rollout.target": "修改目标覆盖率",
    "config.set": "修改配置",
    "config.rollback": "回滚配置",
    "device.config": "设备配置",
    "device.key": "登记设备密钥",
    "device.command": "发送远程命令",
    "device.register": "登记设备",
    "device.reprovision": "重新配置设备",
    "credential_pack.issue": "生成离线凭据包",
    "credential_pack.revoke": "作废离线凭据包",
    "broker_files.export": "导出中心代理账号文件",
    "county_broker_files.export": "导出县级代理账号文件",
    "edge.credentials": "签发边缘网关凭据",
    "fleet.broker_account": "签发平台代理账号",
    "rating.exclude": "剔除评价",
    "case.assign": "工单分派",
    "case.callback": "工单回访",
    "case.rectification": "工单整改",
    "case.close": "工单办结",
    "case.appeal": "工单申诉",
    "case.review": "申诉复核",
    "catalogue.item.create": "新建事项",
    "catalogue.item.revise": "修改办事指南",
    "catalogue.enable": "启用办理事项",
    "catalogue.disable": "停用办理事项",
    "catalogue.clear": "恢复沿用上级事项设置",
    "catalogue.service_name": "命名排队业务",
}

VIA_LABELS = {"session": "网页登录", "token": "API 令牌调用", "cli": "命令行"}
SYSTEM_USER = "system"  # fleet.audit.record's user name for the fleet itself

DETAIL_LABELS = {
    "source": "来源地址", "role": "角色", "division_prefix": "管辖范围", "display_name": "姓名", "token": "令牌",
    "revision": "版本", "config": "配置", "rollback_of": "回滚自版本", "devices": "设备数", "command": "命令",
    "args": "参数", "command_id": "命令编号", "status": "状态", "fingerprint": "密钥指纹", "state": "状态",
    "assignee": "责任人", "note": "说明", "result": "结果", "kind": "方式", "uphold": "申诉成立", "reason": "原因",
    "score": "评分", "hours": "开放时间", "open_on_rest_days": "休息日开放", "version": "版本", "window": "窗口号",
    "center": "中心", "count": "数量", "pack_id": "凭据包", "registrations": "登记次数", "kept": "保留原凭据",
    # the center registry (fleet/centers): a profile's fields, the division list import, the rollout target
    "level": "层级", "address": "地址", "consult_phone": "咨询电话", "complaint_phone": "投诉电话",
    "contact_name": "联系人", "contact_phone": "联系人电话", "opening_hours": "开放时间", "counties": "县（区）",
    "count_county": "县级区划数", "count_town": "乡镇数", "count_village": "村（社区）数", "target_pct": "目标覆盖率",
}

ENGLISH = {
    "登录": "Log in", "登录失败": "Failed log-in", "登录被锁定": "Log-in locked", "退出": "Log out",
    "创建用户": "Create user", "停用用户": "Disable user", "启用用户": "Enable user", "修改密码": "Change password",
    "修改姓名": "Change display name", "创建 API 令牌": "Create API token", "吊销 API 令牌": "Revoke API token",
    "确认告警": "Acknowledge alert", "修改开放时间": "Change opening hours", "修改配置": "Change configuration",
    "回滚配置": "Roll back configuration", "设备配置": "Device configuration", "登记设备密钥": "Register device key",
    "发送远程命令": "Send remote command", "登记设备": "Register device", "重新配置设备": "Re-provision device",
    "生成离线凭据包": "Issue credential pack", "作废离线凭据包": "Revoke credential pack",
    "导出中心代理账号文件": "Export center broker files", "导出县级代理账号文件": "Export county broker files",
    "签发边缘网关凭据": "Issue edge credentials", "签发平台代理账号": "Issue fleet broker account",
    "剔除评价": "Exclude rating", "工单分派": "Assign case", "工单回访": "Case callback",
    "工单整改": "Case rectification", "工单办结": "Close case", "工单申诉": "Appeal case", "申诉复核": "Review appeal",
    "新建事项": "New item", "修改办事指南": "Edit service guide", "启用办理事项": "Enable item",
    "停用办理事项": "Disable item", "恢复沿用上级事项设置": "Follow the town's item setting",
    "命名排队业务": "Name queue service",
    "来源地址": "Source address", "角色": "Role", "管辖范围": "Scope", "姓名": "Name", "令牌": "Token",
    "回滚自版本": "Rolled back from", "设备数": "Devices",
    "参数": "Arguments", "命令编号": "Command id", "密钥指纹": "Key fingerprint",
    "责任人": "Responsible", "结果": "Result", "方式": "Kind", "申诉成立": "Upheld",
    "评分": "Score", "开放时间": "Opening hours", "休息日开放": "Open on rest days",
    "窗口号": "Window", "数量": "Count", "凭据包": "Credential pack", "登记次数": "Registrations",
    "保留原凭据": "Credentials kept", "是": "yes", "否": "no",
    "，": ", ", "、": ", ",
    "网页登录": "web session", "命令行": "command line", "系统": "system", "API 令牌调用": "API token",
}
add_messages(EN, ENGLISH)


def action_label(action: str) -> str:
    """The Chinese name of an audit action (the message id of its translation); the action itself if unknown."""
    return ACTION_LABELS.get(action, action)


def _value(value: Any, _: Translate) -> str:
    if isinstance(value, bool):
        return _("是") if value else _("否")
    if isinstance(value, dict):  # e.g. a configuration: its keys as the configuration form names them
        return _("，").join(f"{_(field_label(key).label)}={_value(item, _)}" for key, item in value.items()) or "—"
    if isinstance(value, list):
        return _("、").join(_value(item, _) for item in value) or "—"
    return "—" if value is None else str(value)


def detail_items(detail: str | None, _: Translate) -> list[dict[str, str]]:
    """An entry's detail as labelled values in the page's language (`_`): [{"key", "label", "value"}]; text that
    is not a JSON object is one unlabelled value."""
    if not detail:
        return []
    try:
        data = json.loads(detail)
    except ValueError:
        return [{"key": "", "label": "", "value": detail}]
    if not isinstance(data, dict):
        return [{"key": "", "label": "", "value": _value(data, _)}]
    return [{"key": key, "label": _(DETAIL_LABELS.get(key, key)), "value": _value(value, _)}
            for key, value in data.items() if value is not None]
