"""The status page as plain HTML, and its figures as JSON for the live refresh.

Every word comes from the message catalog and every inserted value is escaped. The page has a
`lang` and a `dir` (Arabic: right to left), refreshes its figures from status.json with a few
lines of inline script (allowed by hash in the Content-Security-Policy), and without script
reloads itself.
"""

from __future__ import annotations

import base64
import hashlib
from html import escape
from typing import Any

from babel import Locale

from bots.core.messages import (
    DEFAULT_LOCALE,
    duration,
    format_value,
    locales,
    normalise_locale,
    t,
)
from bots.core.status_figures import StatusFigures, TierFigures

JSON_PATH = "status.json"
MODE_KEYS = {
    "open": "status_mode_open",
    "auto": "status_mode_auto",
    "paused-free": "status_mode_paused_free",
    "closed": "status_mode_closed",
}
STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:2em auto;padding:0 1em;"
    "color:#222}dt{font-weight:600}dd{margin:0 0 .8em;margin-inline-start:0}"
    "table{border-collapse:collapse;width:100%}th,td{text-align:start;padding:.3em .5em;"
    "border-bottom:1px solid #ddd}footer{color:#666;font-size:.9em;margin-top:2em}"
)
# Reads its interval and language from <html>; writes text only (textContent), never markup.
SCRIPT = (
    "(function(){var h=document.documentElement,s=1000*Number(h.dataset.refresh);"
    "function tick(){fetch('" + JSON_PATH + "?lang='+encodeURIComponent(h.lang))"
    ".then(function(r){return r.ok?r.json():null}).then(function(d){if(!d)return;"
    "document.querySelectorAll('[data-field]').forEach(function(e){var v=d.fields["
    "e.dataset.field];if(typeof v==='string')e.textContent=v})}).catch(function(){})}"
    "setInterval(tick,s)})();"
)


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


CSP = (
    f"default-src 'none'; style-src {_sha256(STYLE)}; script-src {_sha256(SCRIPT)}; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def page_path(locale: str) -> str:
    """The page's path below the status root: '' for English, 'ar' for Arabic ('ar-SA' too)."""
    loc = normalise_locale(locale)
    return "" if loc == DEFAULT_LOCALE else loc


def page_url(base: str, locale: str) -> str:
    """The page for `locale` under the published address (STYLEBOT_STATUS_URL)."""
    path = page_path(locale)
    return base if not path else base.rstrip("/") + "/" + path


def fields(figures: StatusFigures, loc: str) -> dict[str, str]:
    """Each figure as the page shows it, by its data-field name (the live refresh's payload)."""
    free = (
        t("status_free_open", loc, limit=figures.free_limit)
        if figures.free_open
        else t("status_free_paused", loc)
    )
    shown = {
        "mode": t(MODE_KEYS.get(figures.mode, "status_mode_open"), loc),
        "free": free,
        "done_last_hour": format_value(figures.done_last_hour, loc),
        "updated": t("status_updated", loc, time=figures.at.strftime("%H:%M:%S")),
    }
    for tier in figures.tiers:
        shown[f"queued_{tier.name}"] = format_value(tier.queued, loc)
        shown[f"wait_{tier.name}"] = _wait_text(tier, loc)
    return shown


def _wait_text(tier: TierFigures, loc: str) -> str:
    if not tier.taking:
        return t("status_wait_not_taking", loc)
    if tier.wait_s is None:
        return t("status_wait_no_workers", loc)
    if tier.retry_after_s is not None:
        return t("status_wait_busy", loc, wait=duration(tier.retry_after_s, loc))
    return t("status_wait_about", loc, wait=duration(tier.wait_s, loc))


def payload(figures: StatusFigures, loc: str) -> dict[str, Any]:
    """status.json: the raw figures, and the texts the page shows in `loc`."""
    return {
        "at": figures.at.isoformat(),
        "mode": figures.mode,
        "free_open": figures.free_open,
        "free_limit": figures.free_limit,
        "done_last_hour": figures.done_last_hour,
        "tiers": {
            tier.name: {"taking": tier.taking, "queued": tier.queued, "wait_s": tier.wait_s}
            for tier in figures.tiers
        },
        "fields": fields(figures, loc),
    }


def _field(name: str, text: str, tag: str = "span") -> str:
    return f'<{tag} data-field="{escape(name)}">{escape(text)}</{tag}>'


def _tier_rows(figures: StatusFigures, shown: dict[str, str], loc: str) -> str:
    return "".join(
        f'<tr data-tier="{escape(tier.name)}"><th scope="row">'
        f"{escape(t(f'tier_name_{tier.name}', loc))}</th>"
        f"<td>{_field(f'queued_{tier.name}', shown[f'queued_{tier.name}'])}</td>"
        f"<td>{_field(f'wait_{tier.name}', shown[f'wait_{tier.name}'])}</td></tr>"
        for tier in figures.tiers
    )


def _other_languages(loc: str) -> str:
    links = (
        f'<a href="./{escape(page_path(other))}" hreflang="{escape(other)}" lang="{escape(other)}"'
        f">{escape(t('language_name', other))}</a>"
        for other in locales()
        if other != loc
    )
    return " · ".join(links)


def render_page(figures: StatusFigures, loc: str, refresh_s: float) -> str:
    """The whole page in `loc` (a catalog language)."""
    shown = fields(figures, loc)
    direction = Locale.parse(loc).text_direction
    refresh = format(refresh_s, "g")
    return (
        f'<!DOCTYPE html><html lang="{escape(loc)}" dir="{escape(direction)}" '
        f'data-refresh="{escape(refresh)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<noscript><meta http-equiv="refresh" content="{escape(refresh)}"></noscript>'
        f"<title>{escape(t('status_title', loc))}</title><style>{STYLE}</style></head><body>"
        f"<nav>{_other_languages(loc)}</nav><h1>{escape(t('status_title', loc))}</h1>"
        f"<p>{escape(t('status_intro', loc))}</p>{_summary(shown, loc)}"
        f"<h2>{escape(t('status_waits_heading', loc))}</h2>{_table(figures, shown, loc)}"
        f"<footer>{_field('updated', shown['updated'], 'p')}</footer>"
        f"<script>{SCRIPT}</script></body></html>"
    )


def _summary(shown: dict[str, str], loc: str) -> str:
    rows = (("status_mode_label", "mode"), ("status_free_label", "free"),
            ("status_done_label", "done_last_hour"))  # fmt: skip
    items = "".join(
        f"<dt>{escape(t(label, loc))}</dt><dd>{_field(name, shown[name])}</dd>"
        for label, name in rows
    )
    return f"<dl>{items}</dl>"


def _table(figures: StatusFigures, shown: dict[str, str], loc: str) -> str:
    heads = "".join(
        f'<th scope="col">{escape(t(key, loc))}</th>'
        for key in ("status_col_tier", "status_col_queued", "status_col_wait")
    )
    return (
        f"<table><thead><tr>{heads}</tr></thead>"
        f"<tbody>{_tier_rows(figures, shown, loc)}</tbody></table>"
    )


def unavailable_page(loc: str) -> str:
    """What the page says when the figures cannot be read (the database is unreachable)."""
    direction = Locale.parse(loc).text_direction
    return (
        f'<!DOCTYPE html><html lang="{escape(loc)}" dir="{escape(direction)}"><head>'
        f'<meta charset="utf-8"><title>{escape(t("status_title", loc))}</title></head>'
        f"<body><p>{escape(t('status_unavailable', loc))}</p></body></html>"
    )
