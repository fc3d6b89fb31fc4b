"""The console in Japanese and English (Flask-Babel, catalogues in ``translations/``).

The language of a console page is, in order: ``?lang=ja|en`` (which also sets the
``clue_lang`` cookie, so the switch on every page is remembered), the ``clue_lang``
cookie, then the browser's ``Accept-Language`` (Japanese if it prefers Japanese,
English otherwise). Everything outside the console stays English.

Times are shown in JST with the zone written out (``2025-04-01 09:30 JST``); numbers with
the locale's thousands separators. UTC days (quotas, daily statistics) are labelled as
such where they appear.

The ``.po`` files are compiled to ``.mo`` by ``make install`` (``pybabel compile``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from flask import Flask, Response, request, url_for
from flask_babel import Babel, format_decimal, get_locale
from werkzeug.routing import BuildError

LANGUAGES = {"en": "English", "ja": "日本語"}
DEFAULT_LANGUAGE = "en"
LANG_COOKIE = "clue_lang"
TRANSLATIONS = Path(__file__).resolve().parent / "translations"
JST = dt.timezone(dt.timedelta(hours=9), "JST")


def _console_request() -> bool:
    return request.path in ("/", "/console") or request.path.startswith("/console/")


def select_locale() -> str:
    if not _console_request():
        return DEFAULT_LANGUAGE
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        return asked
    remembered = request.cookies.get(LANG_COOKIE)
    if remembered in LANGUAGES:
        return remembered
    return request.accept_languages.best_match(list(LANGUAGES), default=DEFAULT_LANGUAGE)


def language() -> str:
    locale = get_locale()
    return locale.language if locale is not None else DEFAULT_LANGUAGE


def jst(value: dt.datetime | None, *, seconds: bool = False) -> str:
    """``2025-04-01 09:30 JST`` (an aware datetime; ``—`` for None)."""
    if value is None:
        return "—"
    shown = value.astimezone(JST)
    return shown.strftime("%Y-%m-%d %H:%M:%S JST" if seconds else "%Y-%m-%d %H:%M JST")


def num(value: float | int | None) -> str:
    """A number with the locale's grouping: ``1,234,567``."""
    if value is None:
        return "—"
    return str(format_decimal(value))


def language_url(code: str) -> str:
    """This page in language ``code`` (or the overview when this is not a GET page)."""
    if request.method == "GET" and request.endpoint and request.endpoint != "console.static":
        args: dict[str, Any] = {k: v for k, v in request.args.items() if k != "lang"}
        args.update(request.view_args or {})
        try:
            return url_for(request.endpoint, **args, lang=code)
        except (BuildError, TypeError, ValueError):
            pass  # an odd request (a routing error page): fall back to the overview
    return url_for("console.overview", lang=code)


def init_app(app: Flask, secure_cookie: bool) -> None:
    Babel(app, locale_selector=select_locale,
          default_translation_directories=str(TRANSLATIONS))
    app.jinja_env.filters.update(jst=jst, num=num)
    app.jinja_env.globals.update(languages=LANGUAGES, language=language,
                                 language_url=language_url)

    @app.after_request
    def _remember_language(response: Response) -> Response:
        if not _console_request():  # an API request: its query string is not parsed
            return response
        asked = request.args.get("lang")
        if asked in LANGUAGES:
            response.set_cookie(LANG_COOKIE, asked, max_age=400 * 24 * 3600, path="/",
                                secure=secure_cookie, httponly=True, samesite="Lax")
        return response
