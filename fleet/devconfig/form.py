"""The configuration form of the /config page, built from the role schemas (protocol CONFIG_SCHEMAS).

County IT edits fields with Chinese labels, never JSON: one input per key of the role's schema, typed and
bounded as the schema says, and every refusal is a Chinese sentence naming the field. The JSON API
(PUT /api/config/...) is unchanged and keeps checking with protocol.messages.validate_config; this module
only turns a posted form into the same config dict, and a stored config into labelled values to show.

A field left empty is not set at this level: the device keeps what a wider level (county < town < center <
device) or its firmware default gives.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fleet.web.i18n import EN, add_messages
from protocol import messages
from protocol.errors import ProtocolError
from protocol.identity import check_device_id

Translate = Callable[..., str]


@dataclass(frozen=True)
class FieldLabel:
    label: str  # the field's name on the page
    unit: str = ""  # after a number: 秒, %
    help: str = ""  # one sentence under the input


# Every key of every role's schema has a label here (tests/fleet/test_fleet_config_form.py checks it).
LABELS: dict[str, FieldLabel] = {
    "brightness": FieldLabel("亮度", "%", "屏幕亮度，0 到 100。"),
    "idle_text": FieldLabel("空闲时显示文字", "", "窗口空闲时显示屏第二行的文字；留空显示“欢迎光临”。"),
    "blink_s": FieldLabel("新叫号闪烁时长", "秒", "新叫号时号码闪烁的秒数；0 为不闪烁。"),
    "health_interval_s": FieldLabel("心跳间隔", "秒", "设备多久上报一次运行状态。"),
    "prompt_text": FieldLabel("评价提示语", "", "请群众评价时屏幕上的文字。"),
    "thanks_text": FieldLabel("评价致谢语", "", "群众按键评价后屏幕上的文字。"),
    "rating_timeout_s": FieldLabel("评价等待时长", "秒", "超过这个时间未按键，记为未评价。"),
}

EMPTY_MEANS = "留空表示本级不设置，沿用上级或设备默认值。"

ENGLISH = {
    "亮度": "Brightness", "屏幕亮度，0 到 100。": "Screen brightness, 0 to 100.",
    "空闲时显示文字": "Text while idle",
    "窗口空闲时显示屏第二行的文字；留空显示“欢迎光临”。":
        "The display's second line while the window is idle; empty shows 欢迎光临 (welcome).",
    "新叫号闪烁时长": "Blink on a new call", "新叫号时号码闪烁的秒数；0 为不闪烁。":
        "Seconds a new call blinks; 0: no blinking.",
    "心跳间隔": "Heartbeat interval", "设备多久上报一次运行状态。": "How often the device reports its health.",
    "评价提示语": "Rating prompt", "请群众评价时屏幕上的文字。": "What the screen asks residents to rate.",
    "评价致谢语": "Thank-you text", "群众按键评价后屏幕上的文字。": "What the screen says after a rating.",
    "评价等待时长": "Rating wait", "超过这个时间未按键，记为未评价。":
        "No button pressed within this time counts as unrated.",
    "秒": "s",
    EMPTY_MEANS: "An empty field is not set at this level: the wider level's value or the device's default applies.",
    "{label}须为整数（填写的是“{value}”）": "{label} must be a whole number (got “{value}”)",
    "{label}须在 {low} 到 {high} 之间（填写的是 {value}）": "{label} must be between {low} and {high} (got {value})",
    "{label}不能包含空字符": "{label} must not contain a NUL character",
    "请选择级别": "Choose a level",
    "请填写范围（区划代码或设备编号）": "Fill in the scope (division code or device id)",
    "{level}级范围须为 {n} 位区划代码（填写的是“{value}”）":
        "A {level} scope is a {n}-digit division code (got “{value}”)",
    "设备编号应为 dev- 加 12 位十六进制数字（填写的是“{value}”）":
        "A device id is dev- and 12 hex digits (got “{value}”)",
    "设备 {device} 不存在或不在您的管理范围内": "Device {device} is unknown or outside your scope",
    "{scope} 不存在或不在您的管理范围内": "{scope} is unknown or outside your scope",
    "设备 {device} 是{actual}，不能保存{role}的配置": "Device {device} is a {actual}; it takes no {role} configuration",
    "未知的设备类型": "Unknown device type",
    "配置无效：{detail}": "Invalid configuration: {detail}",
    "没有第 {n} 版": "There is no version {n}",
    "配置未保存：{detail}": "Not saved: {detail}",
    "设置": "Set",
    "适用范围": "Applies to",
    "修改此设备的配置": "Change this device's configuration",
    "（全部沿用上级或默认值）": "(all from the wider level or the defaults)",
}
add_messages(EN, ENGLISH)

# The division-code length of each level's scope id.
SCOPE_DIGITS = {"county": 6, "town": 9, "center": 12}


@dataclass(frozen=True)
class FormField:
    """One input of the form: `name` is "<role>.<key>", so both roles' fields can be on one page."""

    role: str
    key: str
    name: str
    kind: str  # messages.INT or messages.STR
    low: int | None
    high: int | None
    label: str
    unit: str
    help: str


def field_label(key: str) -> FieldLabel:
    return LABELS.get(key, FieldLabel(key))


def form_fields(role: str) -> list[FormField]:
    """The inputs for `role`, in the schema's order."""
    fields = []
    for name, kind, _required, _choices, low, high in messages.CONFIG_SCHEMAS[role]:
        label = field_label(name)
        fields.append(FormField(role, name, f"{role}.{name}", kind, low, high, label.label, label.unit, label.help))
    return fields


def all_form_fields() -> dict[str, list[FormField]]:
    return {role: form_fields(role) for role in messages.CONFIG_SCHEMAS}


def form_values(role: str, config: Mapping[str, Any]) -> dict[str, str]:
    """A config as the form's input values (by input name)."""
    return {f"{role}.{key}": "" if value is None else str(value) for key, value in config.items()}


def config_from_form(role: str, form: Mapping[str, Any], _: Translate) -> tuple[dict[str, Any], dict[str, str]]:
    """The config the form asks for, and the refusals by input name (Chinese through `_`).

    Text fields keep what was typed (leading and trailing blanks removed); an empty field is left out.
    """
    config: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field in form_fields(role):
        raw = str(form.get(field.name) or "").strip()
        if not raw:
            continue
        label = _(field.label)
        if field.kind == messages.INT:
            try:
                value = int(raw)
            except ValueError:
                errors[field.name] = _("{label}须为整数（填写的是“{value}”）", label=label, value=raw)
                continue
            low = field.low if field.low is not None else -messages.INT_MAX - 1
            high = field.high if field.high is not None else messages.INT_MAX
            if not low <= value <= high:
                errors[field.name] = _("{label}须在 {low} 到 {high} 之间（填写的是 {value}）", label=label, low=low,
                                       high=high, value=value)
                continue
            config[field.key] = value
        else:
            if "\x00" in raw:
                errors[field.name] = _("{label}不能包含空字符", label=label)
                continue
            config[field.key] = raw
    if not errors:
        try:
            messages.validate_config(role, config)
        except ProtocolError as exc:  # the schema and this form disagree: say what the contract says
            errors[""] = _("配置无效：{detail}", detail=str(exc))
    return config, errors


def scope_problem(scope: str, scope_id: str, _: Translate) -> str | None:
    """Why (scope, scope_id) is not a scope, in Chinese; None when its form is right."""
    if scope not in ("county", "town", "center", "device"):
        return _("请选择级别")
    if not scope_id:
        return _("请填写范围（区划代码或设备编号）")
    if scope == "device":
        try:
            check_device_id(scope_id)
        except ProtocolError:
            return _("设备编号应为 dev- 加 12 位十六进制数字（填写的是“{value}”）", value=scope_id)
        return None
    digits = SCOPE_DIGITS[scope]
    if len(scope_id) != digits or not scope_id.isdigit():
        level = {"county": "县", "town": "乡镇", "center": "中心"}[scope]
        return _("{level}级范围须为 {n} 位区划代码（填写的是“{value}”）", level=_(level), n=digits, value=scope_id)
    return None


def shown_values(role: str, config: Mapping[str, Any]) -> list[dict[str, str]]:
    """A stored config as labelled values in the schema's order (keys the schema no longer has come last)."""
    order = [spec[0] for spec in messages.CONFIG_SCHEMAS.get(role, ())]
    keys = [k for k in order if k in config] + [k for k in config if k not in order]
    return [{"key": key, "label": field_label(key).label, "value": str(config[key]),
             "unit": field_label(key).unit} for key in keys]
