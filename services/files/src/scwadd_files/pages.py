"""The operator's listing page: plain HTML, no script, every value escaped."""

from __future__ import annotations

from datetime import datetime
from html import escape
from urllib.parse import quote

from scwadd_core.objects import ObjectEntry

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1b1b1b}
table{border-collapse:collapse}
th,td{padding:.35rem .8rem;border-bottom:1px solid #ddd;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}code{font-size:.85em;color:#555}
""".strip()


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def utc_text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def listing_page(entries: list[ObjectEntry], *, user: str, retention_days: float) -> str:
    if entries:
        rows = "\n".join(
            "<tr>"
            f'<td><a href="{escape(quote(entry.name))}" download>{escape(entry.name)}</a></td>'
            f'<td class="num">{escape(human_size(entry.size))}</td>'
            f"<td>{escape(utc_text(entry.modified))}</td>"
            f"<td><code>{escape(entry.sha256_hex[:16])}</code></td>"
            "</tr>"
            for entry in entries
        )
        body = (
            "<table><thead><tr><th>export</th><th>size</th><th>written</th>"
            "<th>sha256 (start)</th></tr></thead>"
            f"<tbody>\n{rows}\n</tbody></table>"
        )
    else:
        body = "<p>No exports yet. A customer's CSV appears here once their data has arrived.</p>"
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>SCWADD exports</title><style>{_STYLE}</style></head><body>"
        "<h1>Exports</h1>"
        f"<p>Signed in as <strong>{escape(user)}</strong>. {len(entries)} file(s); "
        f"each is deleted {retention_days:g} days after it was written.</p>"
        f"{body}"
        '<p><a href="?format=json">This list as JSON</a></p>'
        "</body></html>\n"
    )
