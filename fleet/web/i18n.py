"""The dashboard's languages: Simplified Chinese (the default) and English.

Templates write Chinese and wrap it: `{{ _("今日取号") }}`, or with fields
`{{ _("{n} 个中心", n=3) }}`. The Chinese text is the message id; the English
catalogue (`messages_en.py`) maps it to English. Text missing there stays
Chinese (and tests/fleet/test_fleet_pages.py finds it). `?lang=en` or
`?lang=zh` on any page switches and remembers the choice in a cookie.

Modules with their own pages add their English with `add_messages(EN, {...})`
(at import time of their routes module), so this catalogue stays one file per owner.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request

from fleet.web.messages_en import MESSAGES_EN

ZH = "zh"
EN = "en"
LANGUAGES = (ZH, EN)
LANG_COOKIE = "fleet_lang"
LANG_PARAM = "lang"
# The English catalogue is messages_en's dict itself, not a copy: fleet.alerts.messages_en.install_english adds
# to that dict after this module was imported, and those messages must reach the pages too.
CATALOGUES: dict[str, dict[str, str]] = {ZH: {}, EN: MESSAGES_EN}

Translator = Callable[..., str]


def add_messages(lang: str, messages: dict[str, str]) -> None:
    """Add (or override) translations of message ids for `lang`."""
    CATALOGUES.setdefault(lang, {}).update(messages)


def translator(lang: str) -> Translator:
    catalogue = CATALOGUES.get(lang, {})

    def translate(text: str, **fields: object) -> str:
        message = catalogue.get(text, text)
        return message.format(**fields) if fields else message

    return translate


def requested_lang(request: Request) -> str | None:
    """The language asked for in the query (?lang=en), if any."""
    value = request.query_params.get(LANG_PARAM)
    return value if value in LANGUAGES else None


def request_lang(request: Request) -> str:
    """The query parameter wins, then the cookie, then Chinese."""
    cookie = request.cookies.get(LANG_COOKIE)
    return requested_lang(request) or (cookie if cookie in LANGUAGES else ZH)
