"""docs/protocol.md and protocol/ describe the same contract.

The document is parsed, not grepped: the one table under "## Topics" must list
exactly the topics of protocol.topics.TOPICS with the same pattern, direction,
brokers, QoS, retained flag and payload kind; each topic has a "### <name>"
section whose ```json examples validate as that topic's payload kind; and the
tables under "## Payload fields" list exactly the fields of
protocol.messages.SCHEMAS with the same type, required flag and allowed values.

The checks read protocol's registries when they run, so the tests below can
change either side alone (the document as text, the code with monkeypatch)
and see the check fail.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from protocol import CONTRACT_VERSION, messages, topics
from protocol.errors import ProtocolError

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"

TOPICS_SECTION = "Topics"
FIELDS_SECTION = "Payload fields"
TOPIC_HEADER = ["name", "pattern", "direction", "brokers", "QoS", "retained", "payload"]
FIELD_HEADER = ["field", "type", "required", "allowed values / range", "notes"]
TYPE_NAMES = {messages.STR: "string", messages.INT: "integer", messages.NUM: "number", messages.OBJ: "object",
              messages.BOOL: "boolean", messages.ARR: "array"}


# --- what the document must say, rendered from the code -----------------------------------------------


def topic_row(topic) -> list[str]:
    return [
        "`%s`" % topic.name,
        "`%s`" % topic.pattern,
        "%s -> %s" % (topic.publisher, topic.subscriber),
        ", ".join(topic.brokers),
        str(topic.qos),
        "yes" if topic.retained else "no",
        "`%s`" % topic.payload,
    ]


def allowed_text(spec) -> str:
    _name, _kind, _required, choices, low, high = spec
    if choices:
        return ", ".join("`%s`" % choice for choice in choices)
    if low is not None and high is not None:
        return "%s..%s" % (low, high)
    if low is not None:
        return ">= %s" % low
    if high is not None:
        return "<= %s" % high
    return "any"


def field_row(spec) -> list[str]:
    name, kind, required = spec[0], spec[1], spec[2]
    return ["`%s`" % name, TYPE_NAMES[kind], "yes" if required else "no", allowed_text(spec)]


def as_markdown(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def normal(cell: str) -> str:
    return " ".join(cell.replace("`", "").split())


# --- reading the document -----------------------------------------------------------------------------


class Table:
    def __init__(self, h2, h3, line, header):
        self.h2, self.h3, self.line, self.header = h2, h3, line, header
        self.rows: list[tuple[int, list[str]]] = []


class Doc:
    def __init__(self):
        self.tables: list[Table] = []
        self.examples: list[tuple[str | None, str | None, int, str]] = []  # h2, h3, line, json text
        self.h3s: list[tuple[str | None, str, int]] = []


def split_row(line: str) -> list[str]:
    text = line.strip()
    if text.startswith("|"):
        text = text[1:]
    if text.endswith("|"):
        text = text[:-1]
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", text)]


def parse_doc(text: str) -> Doc:
    doc = Doc()
    h2 = h3 = None
    fence = None  # (info, start line, lines) while inside a fenced block
    table = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if fence is not None:
            if stripped.startswith("```"):
                if fence[0] == "json":
                    doc.examples.append((h2, h3, fence[1], "\n".join(fence[2])))
                fence = None
            else:
                fence[2].append(line)
            continue
        if stripped.startswith("```"):
            fence = (stripped[3:].strip().lower(), number, [])
            table = None
            continue
        if stripped.startswith("|"):
            cells = split_row(stripped)
            if table is None:
                table = Table(h2, h3, number, [normal(c) for c in cells])
                doc.tables.append(table)
            elif all(re.fullmatch(r":?-{3,}:?", c) for c in cells):
                pass
            else:
                table.rows.append((number, cells))
            continue
        table = None
        if line.startswith("## "):
            h2, h3 = line[3:].strip(), None
        elif line.startswith("### "):
            h3 = line[4:].strip().strip("`")
            doc.h3s.append((h2, h3, number))
    return doc


# --- the checks ---------------------------------------------------------------------------------------


def check_topics(text: str) -> list[str]:
    doc = parse_doc(text)
    problems = []
    code = {t.name: t for t in topics.TOPICS}

    tables = [t for t in doc.tables if t.h2 == TOPICS_SECTION and t.header == TOPIC_HEADER]
    if len(tables) != 1:
        return ["expected one topic table (%s) under '## %s', found %d" % (TOPIC_HEADER, TOPICS_SECTION, len(tables))]
    documented = {}
    for line, cells in tables[0].rows:
        name = normal(cells[0])
        if name in documented:
            problems.append("line %d: topic %s listed twice" % (line, name))
        documented[name] = (line, cells)
        if name not in code:
            problems.append("line %d: the doc lists topic %s, which protocol.topics.TOPICS lacks" % (line, name))
    for name, topic in code.items():
        want = topic_row(topic)
        if name not in documented:
            problems.append("topic %s is missing from the topic table; add:\n%s" % (name, as_markdown(want)))
            continue
        line, cells = documented[name]
        if len(cells) != len(TOPIC_HEADER):
            problems.append("line %d: topic %s has %d columns, not %d" % (line, name, len(cells), len(TOPIC_HEADER)))
            continue
        for column, have, expected in zip(TOPIC_HEADER, cells, want, strict=False):
            if normal(have) != normal(expected):
                problems.append(
                    "line %d: topic %s: %s is %r in the doc but %r in the code; the row should read:\n%s"
                    % (line, name, column, normal(have), normal(expected), as_markdown(want))
                )

    sections = {}
    for h2, h3, line in doc.h3s:
        if h2 == TOPICS_SECTION:
            sections[h3] = line
            if h3 not in code:
                problems.append("line %d: section '### %s' is not a topic of protocol.topics.TOPICS" % (line, h3))
    examples = {}
    for h2, h3, line, body in doc.examples:
        if h2 == TOPICS_SECTION:
            examples.setdefault(h3, []).append((line, body))
    for name in code:
        if name not in sections:
            problems.append("topic %s has no '### %s' section under '## %s'" % (name, name, TOPICS_SECTION))
        elif not examples.get(name):
            problems.append("topic %s: its section has no ```json example" % name)
    for name, found in examples.items():
        if name not in code:
            problems.append("json example(s) under '%s', which is not a topic" % name)
            continue
        for line, body in found:
            problems.extend(check_example(code[name], line, body))
    return problems


def check_example(topic, line: int, body: str) -> list[str]:
    where = "line %d: %s example" % (line, topic.name)
    try:
        payload = json.loads(body)
    except ValueError as error:
        return ["%s is not JSON: %s" % (where, error)]
    try:
        messages.validate(topic.payload, payload)
    except ProtocolError as error:
        return ["%s is not a valid %s: %s" % (where, topic.payload, error)]
    if payload.get("v") != CONTRACT_VERSION:
        return ["%s has v=%r, the contract is version %d" % (where, payload.get("v"), CONTRACT_VERSION)]
    return []


def check_fields(text: str) -> list[str]:
    doc = parse_doc(text)
    problems = []
    tables = {}
    for table in doc.tables:
        if table.h2 != FIELDS_SECTION:
            continue
        if table.header != FIELD_HEADER:
            problems.append("line %d: a field table's header must be %s" % (table.line, FIELD_HEADER))
        elif table.h3 in tables:
            problems.append("line %d: a second field table for %s" % (table.line, table.h3))
        else:
            tables[table.h3] = table
    for kind in tables:
        if kind not in messages.SCHEMAS:
            problems.append("line %d: the doc has fields of %r, which SCHEMAS lacks" % (tables[kind].line, kind))
    for kind, schema in messages.SCHEMAS.items():
        if kind not in tables:
            problems.append("payload kind %s has no '### %s' field table under '## %s'" % (kind, kind, FIELDS_SECTION))
            continue
        rows = {}
        for line, cells in tables[kind].rows:
            name = normal(cells[0])
            if name in rows:
                problems.append("line %d: %s.%s listed twice" % (line, kind, name))
            rows[name] = (line, cells)
        declared = set()
        for spec in schema:
            declared.add(spec[0])
            want = field_row(spec)
            if spec[0] not in rows:
                problems.append("%s.%s is missing from the field reference; add:\n%s" % (kind, spec[0], as_markdown(
                    want + [""])))
                continue
            line, cells = rows[spec[0]]
            for column, have, expected in zip(FIELD_HEADER, cells, want, strict=False):
                if normal(have) != normal(expected):
                    problems.append(
                        "line %d: %s.%s: %s is %r in the doc but %r in the code"
                        % (line, kind, spec[0], column, normal(have), normal(expected))
                    )
            if len(cells) != len(FIELD_HEADER):
                problems.append("line %d: %s.%s has %d columns, not %d" % (line, kind, spec[0], len(cells),
                                                                           len(FIELD_HEADER)))
        for name, (line, _cells) in rows.items():
            if name not in declared:
                problems.append("line %d: the doc lists field %s.%s, which SCHEMAS lacks" % (line, kind, name))
    return problems


COMMAND_ARGS_HEADER = ["command", "argument", "range", "default"]


def command_arg_rows() -> list[list[str]]:
    rows = []
    for name in messages.COMMANDS:
        specs = messages.COMMAND_ARGS[name]
        if not specs:
            rows.append(["`%s`" % name, "none", "", ""])
        for arg_name, low, high, default in specs:
            rows.append(["`%s`" % name, "`%s`" % arg_name, "%s..%s" % (low, high),
                         "required" if default is None else str(default)])
    return rows


def check_command_args(text: str) -> list[str]:
    """The table of command arguments under '### device_command' is protocol.messages.COMMAND_ARGS."""
    doc = parse_doc(text)
    tables = [t for t in doc.tables if t.h2 == TOPICS_SECTION and t.h3 == topics.DEVICE_COMMAND
              and t.header == COMMAND_ARGS_HEADER]
    if len(tables) != 1:
        return ["expected one command argument table (%s) under '### %s', found %d"
                % (COMMAND_ARGS_HEADER, topics.DEVICE_COMMAND, len(tables))]
    have = [[normal(c) for c in cells] for _line, cells in tables[0].rows]
    want = [[normal(c) for c in cells] for cells in command_arg_rows()]
    if have != want:
        return ["line %d: the command argument table differs from COMMAND_ARGS; it should read:\n%s"
                % (tables[0].line, "\n".join(as_markdown(row) for row in command_arg_rows()))]
    return []


def check(text: str) -> list[str]:
    return check_topics(text) + check_fields(text) + check_command_args(text)


def report(problems: list[str]) -> str:
    return "docs/protocol.md and protocol/ disagree:\n" + "\n".join(problems)


@pytest.fixture(scope="module")
def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


# --- the document as it is ----------------------------------------------------------------------------


def test_doc_matches_code(doc_text):
    problems = check(doc_text)
    assert not problems, report(problems)


def test_parser_sees_every_topic_and_kind(doc_text):
    """Guard against a parser that silently finds nothing (and so finds no problem)."""
    doc = parse_doc(doc_text)
    [table] = [t for t in doc.tables if t.h2 == TOPICS_SECTION and t.header == TOPIC_HEADER]
    assert [normal(cells[0]) for _, cells in table.rows] == [t.name for t in topics.TOPICS]
    with_examples = {h3 for h2, h3, _, _ in doc.examples if h2 == TOPICS_SECTION}
    assert with_examples == {t.name for t in topics.TOPICS}
    field_tables = {t.h3 for t in doc.tables if t.h2 == FIELDS_SECTION}
    assert field_tables == set(messages.SCHEMAS)


def test_doc_examples_are_readable_chinese(doc_text):
    assert "请A001号到3号窗口" in doc_text
    assert "社保业务" in doc_text
    assert "\\u" not in "".join(body for _, _, _, body in parse_doc(doc_text).examples)


def test_doc_shows_a_birth_and_a_will(doc_text):
    states = set()
    for h2, h3, _, body in parse_doc(doc_text).examples:
        if h2 == TOPICS_SECTION and h3 == topics.DEVICE_PRESENCE:
            states.add(json.loads(body)["state"])
    assert states == {messages.ONLINE, messages.OFFLINE}


def test_doc_examples_of_what_the_fleet_signs_for_an_edge_verify(doc_text):
    """event_ack and broker_accounts are signed with the example key 000102...1f for center 445202101001."""
    from protocol import signing

    signed = [(h3, json.loads(body)) for h2, h3, _, body in parse_doc(doc_text).examples
              if h2 == TOPICS_SECTION and h3 in (topics.EVENT_ACK, topics.BROKER_ACCOUNTS)]
    assert {h3 for h3, _ in signed} == {topics.EVENT_ACK, topics.BROKER_ACCOUNTS}
    for h3, payload in signed:
        assert signing.verify_for_edge(bytes(range(32)), "445202101001", payload), h3


# --- the document changes alone -----------------------------------------------------------------------


def edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, "fixture edit is ambiguous or stale: %r" % old
    return text.replace(old, new)


DEVICE_HEALTH_ROW = (
    "| `device_health` | `sc/{center}/device/{device}/health` | device -> edge agent, fleet | center, county | 0 | no "
    "| `health` |"
)


@pytest.mark.parametrize(
    "old, new, expect",
    [
        ("| center, county | 0 | no | `health` |", "| center, county | 1 | no | `health` |", "QoS"),
        ("| center, county | 0 | no | `health` |", "| center, county | 0 | yes | `health` |", "retained"),
        ("| center, county | 0 | no | `health` |", "| center, county | 0 | no | `presence` |", "payload"),
        ("`sc/{center}/device/{device}/health`", "`sc/{center}/dev/{device}/health`", "pattern"),
        ("| center, county | 0 | no | `health` |", "| center | 0 | no | `health` |", "brokers"),
        (DEVICE_HEALTH_ROW + "\n", "", "missing from the topic table"),
        (DEVICE_HEALTH_ROW, DEVICE_HEALTH_ROW + "\n" + DEVICE_HEALTH_ROW.replace("device_health", "device_log"),
         "lacks"),
    ],
)
def test_doc_table_edits_are_caught(doc_text, old, new, expect):
    problems = check_topics(edit(doc_text, old, new))
    assert any(expect in p for p in problems), problems


def test_doc_invalid_example_is_caught(doc_text):
    changed = edit(doc_text, '"score": 5}', '"score": 6}')
    problems = check_topics(changed)
    assert any("rating_submitted example" in p and "'score'" in p for p in problems), problems


def test_doc_example_that_is_not_json_is_caught(doc_text):
    changed = edit(doc_text, '"call_seq": 17}\n```\n\nWindow', '"call_seq": 17,}\n```\n\nWindow')
    assert any("is not JSON" in p for p in check_topics(changed))


def test_doc_example_of_the_wrong_kind_is_caught(doc_text):
    # a will is a fine presence, but not a health message
    health = ('{"v": 1, "session": 42, "boot": "9f86d081", "uptime_s": 86400, "free_heap": 61440, "rssi": -63, '
              '"reconnects": 2, "last_error": "OSError: [Errno 113] ECONNABORTED"}')
    will = '{"v": 1, "state": "offline", "session": 42, "boot": "9f86d081", "role": "queue_display", "window": 3}'
    problems = check_topics(edit(doc_text, health, will))
    assert any("device_health example" in p and "uptime_s" in p for p in problems), problems


def test_doc_missing_section_is_caught(doc_text):
    changed = edit(doc_text, "### edge_presence\n", "### the edge agent\n")
    problems = check_topics(changed)
    assert any("edge_presence has no '### edge_presence' section" in p for p in problems), problems
    assert any("'### the edge agent' is not a topic" in p for p in problems), problems


def test_doc_field_reference_edits_are_caught(doc_text):
    row = "| `rssi` | integer | no | any | Wi-Fi signal, dBm |\n"
    assert any("health.rssi is missing" in p for p in check_fields(edit(doc_text, row, "")))
    changed = edit(doc_text, row, row.replace("| no |", "| yes |"))
    assert any("health.rssi: required" in p for p in check_fields(changed))
    changed = edit(doc_text, row, row + "| `battery` | integer | no | any | |\n")
    assert any("health.battery, which SCHEMAS lacks" in p for p in check_fields(changed))
    changed = edit(doc_text, "| `score` | integer | yes | 0..5 | 1 and 2", "| `score` | integer | yes | 1..5 | 1 and 2")
    assert any("rating_event.score: allowed" in p for p in check_fields(changed))


# --- the code changes alone ---------------------------------------------------------------------------


def replaced_topic(name, **changes):
    result = []
    for old in topics.TOPICS:
        if old.name != name:
            result.append(old)
            continue
        fields = dict(name=old.name, pattern=old.pattern, publisher=old.publisher, subscriber=old.subscriber,
                      qos=old.qos, retained=old.retained, payload=old.payload, brokers=old.brokers, summary=old.summary)
        fields.update(changes)
        result.append(topics.Topic(**fields))
    return tuple(result)


@pytest.mark.parametrize(
    "changes, column",
    [
        ({"qos": 2}, "QoS"),
        ({"retained": False}, "retained"),
        ({"pattern": topics.ROOT + "/{center}/window/{window}/show"}, "pattern"),
        ({"payload": "health"}, "payload"),
        ({"subscriber": "queue display, fleet"}, "direction"),
        ({"brokers": (topics.CENTER_BROKER, topics.COUNTY_BROKER)}, "brokers"),
    ],
)
def test_code_topic_changes_are_caught(doc_text, monkeypatch, changes, column):
    monkeypatch.setattr(topics, "TOPICS", replaced_topic(topics.WINDOW_DISPLAY, **changes))
    problems = check_topics(doc_text)
    assert any("topic window_display: %s is" % column in p for p in problems), problems


def test_code_new_topic_is_caught(doc_text, monkeypatch):
    extra = topics.Topic("device_log", topics.ROOT + "/{center}/device/{device}/log", "device", "edge agent", 0,
                         False, "health", (topics.CENTER_BROKER,), "Log lines.")
    monkeypatch.setattr(topics, "TOPICS", topics.TOPICS + (extra,))
    problems = check_topics(doc_text)
    assert any("device_log is missing from the topic table" in p for p in problems), problems
    assert any("device_log has no '### device_log' section" in p for p in problems), problems


def test_code_removed_topic_is_caught(doc_text, monkeypatch):
    monkeypatch.setattr(topics, "TOPICS", tuple(t for t in topics.TOPICS if t.name != topics.RATING_EVENT))
    problems = check_topics(doc_text)
    assert any("lists topic rating_event, which protocol.topics.TOPICS lacks" in p for p in problems), problems


def test_code_new_required_field_is_caught(doc_text, monkeypatch):
    schema = messages.SCHEMAS["health"] + (messages._field("battery_mv", messages.INT, low=0),)
    monkeypatch.setitem(messages.SCHEMAS, "health", schema)
    problems = check(doc_text)
    assert any("health.battery_mv is missing from the field reference" in p for p in problems), problems
    # and the documented health example no longer validates
    assert any("device_health example" in p and "battery_mv" in p for p in problems), problems


def test_code_changed_range_is_caught(doc_text, monkeypatch):
    schema = tuple(
        messages._field("window", messages.INT, low=1, high=99) if spec[0] == "window" else spec
        for spec in messages.SCHEMAS["window_display"]
    )
    monkeypatch.setitem(messages.SCHEMAS, "window_display", schema)
    problems = check_fields(doc_text)
    assert any("window_display.window: allowed values / range is '1..999'" in p for p in problems), problems


def test_code_new_kind_is_caught(doc_text, monkeypatch):
    monkeypatch.setitem(messages.SCHEMAS, "device_log", (messages._field("v", messages.INT, low=1),))
    assert any("device_log has no '### device_log' field table" in p for p in check_fields(doc_text))


# --- command arguments --------------------------------------------------------------------------------


def test_doc_command_argument_edits_are_caught(doc_text):
    assert check_command_args(doc_text) == []
    row = "| `brightness` | `level` | 0..100 | required |"
    changed = edit(doc_text, row, row.replace("0..100", "0..255"))
    assert any("command argument table differs" in p for p in check_command_args(changed))
    changed = edit(doc_text, "| command | argument | range | default |", "| command | args | range | default |")
    assert any("expected one command argument table" in p for p in check_command_args(changed))


def test_code_command_argument_changes_are_caught(doc_text, monkeypatch):
    monkeypatch.setitem(messages.COMMAND_ARGS, messages.COMMAND_IDENTIFY, (("seconds", 1, 600, 10),))
    problems = check_command_args(doc_text)
    assert any("| `identify` | `seconds` | 1..600 | 10 |" in p for p in problems), problems
