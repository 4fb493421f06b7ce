"""The console's HTML: server-rendered, every value escaped, no inline script or style (the CSS
and JS are files under ``/console/static/``, so a strict CSP applies)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import urlencode

from scwadd_core.db import as_utc

from scwadd_files.ledger import GRANT_STATES, STATES, JobQuery, Page
from scwadd_files.models import ConsoleAction, ConsoleJob

GRANT_WORDS = {
    "active": "not yet revoked",
    "revoked": "revoked",
    "already_revoked": "revoked (already)",
    "flagged": "flagged: NOT revoked",
}


# plotly.js injects a <style> unless an element with these ids exists: its global rules come as
# a file instead (class no-inline-styles tells plotly.js they are there), and the map styles it
# would add for maplibre are not needed (no map is drawn). Strict CSP: no inline style at all.
PLOTLY_MAP_STYLE_ID = "9f215cf04c5486422605d13261cb87401f4e7763b6296af81e98efbc0130da53"
PLOTLY_STYLES = (
    '<link id="plotly.js-style-global" class="no-inline-styles" rel="stylesheet" '
    'href="/console/static/plotly.css">'
    f'<meta id="{PLOTLY_MAP_STYLE_ID}" name="plotly-map-styles" content="none">'
)
STILL_ON_IT = "the exporter is still on it"
CHARTS = (
    ("daily", "Daily energy delivered and received, gas on its own axis"),
    ("heatmap", "Electricity by hour of day and day"),
    ("profile", "Average day load profile by month"),
)


def _job_link(job: ConsoleJob) -> str:
    name = escape(job.subscription_id or "(unknown)")
    link = f'<a href="/console/jobs/{escape(job.job_id)}">{name}</a>'
    if job.customer_name:
        link += f'<br><span class="customer-name">{escape(job.customer_name)}</span>'
    addresses = json.loads(job.service_addresses or "[]")
    if addresses:
        first = escape(str(addresses[0].get("address") or ""))
        more = f" (+{len(addresses) - 1})" if len(addresses) > 1 else ""
        link += f'<br><span class="muted">{first}{more}</span>'
    return link


def customer_text(job: ConsoleJob) -> str:
    """The export page's customer line: the name and service addresses when shared."""
    text = f"subscription {escape(job.subscription_id or '(unknown)')}"
    if job.customer_name:
        text = f'<span class="customer-name">{escape(job.customer_name)}</span>, ' + text
    addresses = json.loads(job.service_addresses or "[]")
    if addresses:
        items = "".join(
            f"<li>{escape(str(a.get('address') or ''))} "
            f'<span class="muted">(meter {escape(str(a.get("usage_point_id") or "?"))})</span></li>'
            for a in addresses
        )
        text += f'<ul class="addresses">{items}</ul>'
    return text


def bills_section(job: ConsoleJob) -> str:
    """The bills and their reconciliation against the intervals; discrepancies highlighted."""
    if not job.bills:
        return ""
    data = json.loads(job.bills)
    bills = data.get("bills") or {}
    reconciliation = data.get("reconciliation") or {}
    periods = reconciliation.get("periods") or []
    warnings = reconciliation.get("warnings") or []
    missing = data.get("missing") or []
    rows = "".join(
        f'<tr class="{"warning" if p.get("warning") else ""}">'
        f"<td>{escape(str(p.get('usage_point_id') or ''))}</td>"
        f"<td>{escape(str(p.get('period_start_local') or '')[:10])} → "
        f"{escape(str(p.get('period_end_local') or '')[:10])}</td>"
        f"<td>{_or_dash(p.get('billed'))} {escape(str(p.get('unit') or ''))}</td>"
        f"<td>{_or_dash(p.get('interval'))}</td>"
        f"<td>{_or_dash(p.get('difference_percent'))}%</td>"
        f"<td>{escape(str(p.get('status') or ''))}</td></tr>"
        for p in periods
    )
    alert = _needs_action("bill-warnings", "Data-quality warnings", warnings) + _needs_action(
        "bill-missing", "Granted but not received", missing
    )
    return (
        '<h2>Bills</h2><p id="bills-summary">'
        f"{_or_dash(bills.get('count'))} billing period(s), "
        f"{_or_dash(bills.get('total_bill_amount'))} {escape(str(bills.get('currency') or ''))}"
        f" in all; tariff {escape(', '.join(bills.get('tariffs') or []) or '—')}. Billed "
        "consumption against the intervals summed over each period (net: delivered - "
        f"received), tolerance {_or_dash(reconciliation.get('tolerance_percent'))}%.</p>"
        + alert
        + '<div class="table-wrap"><table id="reconciliation"><thead><tr>'
        '<th scope="col">meter</th><th scope="col">billing period (local)</th>'
        '<th scope="col">billed</th><th scope="col">intervals</th>'
        '<th scope="col">difference</th><th scope="col">status</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></div>"
    )


def _needs_action(section_id: str, title: str, items: list[Any]) -> str:
    """A highlighted list headed ``title (count)``; empty without items."""
    if not items:
        return ""
    listed = "".join(f"<li>{escape(str(item))}</li>" for item in items)
    return (
        f'<section class="needs-action" aria-labelledby="{section_id}">'
        f'<h3 id="{section_id}">{title} ({len(items)})</h3><ul>{listed}</ul></section>'
    )


def _utc(moment: datetime | None) -> str:
    return as_utc(moment).strftime("%Y-%m-%d %H:%M UTC") if moment else "—"


def _day(text: str | datetime | None) -> str:
    if text is None:
        return "—"
    if isinstance(text, datetime):
        return as_utc(text).strftime("%Y-%m-%d")
    return text[:10]


def _or_dash(value: Any) -> str:
    return "—" if value is None or value == "" else escape(str(value))


def period_days(start: str | datetime | None, end: str | datetime | None) -> float | None:
    try:
        first = start if isinstance(start, datetime) else datetime.fromisoformat(str(start))
        last = end if isinstance(end, datetime) else datetime.fromisoformat(str(end))
    except ValueError:
        return None
    return (as_utc(last) - as_utc(first)).total_seconds() / 86400


def coverage_text(job: ConsoleJob) -> str:
    """ "2025-01-01 → 2025-12-31 (365 d of 365 promised)", saying when it is shorter."""
    if not job.covered_start:
        promised = period_days(job.promised_start, job.promised_end)
        return f"— ({promised:.0f} d promised)" if promised else "—"
    covered = period_days(job.covered_start, job.covered_end) or 0
    text = f"{_day(job.covered_start)} → {_day(job.covered_end)} ({covered:.0f} d"
    promised = period_days(job.promised_start, job.promised_end)
    if promised:
        text += f" of {promised:.0f} promised)"
        if covered < promised - 1:
            return f'<span class="short">{escape(text)}, shorter</span>'
        return escape(text)
    return escape(text + ")")


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def estimated_suffix(job: ConsoleJob) -> str:
    if job.estimated_share is None:
        return ""
    return f"<br>{_share(job.estimated_share)} estimated"


def _badge(kind: str, word: str | None = None) -> str:
    return f'<span class="badge {escape(kind)}">{escape(word or kind)}</span>'


def grant_cell(job: ConsoleJob) -> str:
    cell = _badge(job.grant_state, GRANT_WORDS.get(job.grant_state))
    if job.grant_reason:
        cell += f'<br><span class="muted">{escape(job.grant_reason)}</span>'
    return cell


def state_cell(job: ConsoleJob) -> str:
    cell = _badge(job.state)
    if job.failure_reason:
        cell += f'<br><span class="muted">{escape(job.failure_reason)}</span>'
    return cell


def meters_text(job: ConsoleJob) -> str:
    points = json.loads(job.usage_points or "[]")
    if not points:
        return "—"
    return "<br>".join(f"{escape(p['id'])} ({escape(p['service'])})" for p in points)


def peak_text(job: ConsoleJob) -> str:
    if job.peak_kwh is None:
        return "—"
    minutes = (job.peak_seconds or 0) // 60
    return f"{escape(job.peak_kwh)} kWh at {escape(job.peak_start or '')} ({minutes} min)"


def gaps_text(job: ConsoleJob) -> str:
    if job.gap_count is None:
        return "—"
    hours = (job.gap_seconds or 0) / 3600
    text = f"{job.gap_count} ({hours:.1f} h)" if job.gap_count else "none"
    if job.rows_without_value:
        text += f"; {job.rows_without_value} interval(s) without a value (blank, not zero)"
    return text


def _page(title: str, user: str, body: str) -> str:
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} — SCWADD console</title>"
        '<link rel="stylesheet" href="/console/static/console.css">'
        f"{PLOTLY_STYLES}</head><body>"
        '<header><strong>SCWADD console</strong><nav aria-label="main">'
        '<a href="/console/">Customers and exports</a> · <a href="/output/">Files</a> · '
        '<a href="/api/openapi.json">API (OpenAPI)</a></nav>'
        f'<span class="muted">signed in as {escape(user)}</span></header>'
        f"<main>{body}</main></body></html>\n"
    )


def _revoke_form(job: ConsoleJob, csrf: str) -> str:
    return (
        f'<form method="post" action="/console/jobs/{escape(job.job_id)}/revoke">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        f'<button type="submit">Revoke again</button></form>'
    )


def needs_action_section(jobs: Sequence[ConsoleJob], csrf: str) -> str:
    if not jobs:
        return ""
    rows = "".join(
        "<tr>"
        f"<td>{_job_link(j)}</td>"
        f"<td>{grant_cell(j)}</td><td>{_utc(j.received_at)}</td>"
        f"<td>{_revoke_form(j, csrf) if j.grant_state == 'flagged' else STILL_ON_IT}</td>"
        "</tr>"
        for j in jobs
    )
    return (
        '<section class="needs-action" aria-labelledby="needs-action">'
        f'<h2 id="needs-action">Needs action ({len(jobs)})</h2>'
        "<p>These customers' grants are not revoked. A flagged one failed at the utility; "
        "“Revoke again” asks the exporter to try now.</p>"
        '<div class="table-wrap"><table><thead><tr><th scope="col">customer</th>'
        '<th scope="col">grant</th><th scope="col">consented</th><th scope="col">action</th>'
        f"</tr></thead><tbody>{rows}</tbody></table></div></section>"
    )


def _select(name: str, label: str, options: Sequence[str], chosen: str | None) -> str:
    items = '<option value="">any</option>' + "".join(
        f'<option value="{escape(o)}"{" selected" if o == chosen else ""}>{escape(o)}</option>'
        for o in options
    )
    return (
        f'<label for="f-{name}">{label}<select id="f-{name}" name="{name}">{items}</select></label>'
    )


def list_page(
    page: Page,
    query: JobQuery,
    *,
    user: str,
    needs: Sequence[ConsoleJob],
    csrf: str,
    params: dict[str, str],
) -> str:
    sort_choice = f"{query.sort}:{'desc' if query.descending else 'asc'}"
    sorts = [
        ("received:desc", "newest first"),
        ("received:asc", "oldest first"),
        ("subscription:asc", "subscription A→Z"),
        ("subscription:desc", "subscription Z→A"),
        ("delivered:desc", "most kWh first"),
        ("delivered:asc", "least kWh first"),
    ]
    sort_options = "".join(
        f'<option value="{v}"{" selected" if v == sort_choice else ""}>{w}</option>'
        for v, w in sorts
    )
    filters = (
        '<form class="filters" method="get" action="/console/" role="search">'
        f'<label for="f-q">search<input id="f-q" type="search" name="q" maxlength="100" '
        f'value="{escape(query.q)}" '
        'placeholder="subscription, customer, meter, job, reason"></label>'
        + _select("state", "job", STATES, query.state)
        + _select("grant", "grant", GRANT_STATES, query.grant)
        + f'<label for="f-since">consented from<input id="f-since" type="date" name="since" '
        f'value="{escape(params.get("since", ""))}"></label>'
        f'<label for="f-until">until (before)<input id="f-until" type="date" name="until" '
        f'value="{escape(params.get("until", ""))}"></label>'
        f'<label for="f-sort">sort<select id="f-sort" name="sort">{sort_options}</select></label>'
        '<button type="submit">Show</button></form>'
    )
    if page.jobs:
        rows = "".join(
            "<tr>"
            f"<td>{_job_link(j)}"
            f'<br><span class="muted">job {escape(j.job_id[:8])}</span></td>'
            f"<td>{meters_text(j)}</td>"
            f"<td>{coverage_text(j)}</td>"
            f'<td class="num">{_or_dash(j.delivered_kwh)}</td>'
            f'<td class="num">{_or_dash(j.received_kwh)}</td>'
            f'<td class="num">{_or_dash(j.therms)}</td>'
            f"<td>{peak_text(j)}</td>"
            f"<td>{gaps_text(j)}{estimated_suffix(j)}</td>"
            f"<td>{state_cell(j)}</td><td>{grant_cell(j)}</td>"
            f"<td>{_utc(j.received_at)}</td>"
            "</tr>"
            for j in page.jobs
        )
        table = (
            '<div class="table-wrap"><table id="jobs"><caption class="muted">'
            f"{page.total} job(s) match</caption><thead><tr>"
            '<th scope="col">customer</th><th scope="col">meters</th>'
            '<th scope="col">period covered / promised</th><th scope="col">delivered kWh</th>'
            '<th scope="col">received kWh</th><th scope="col">therms</th>'
            '<th scope="col">peak interval</th><th scope="col">gaps, estimated</th>'
            '<th scope="col">job</th><th scope="col">grant</th><th scope="col">consented</th>'
            f"</tr></thead><tbody>{rows}</tbody></table></div>"
        )
    else:
        table = f"<p>No job matches. {page.total} in all with these filters.</p>"
    pager = ""
    if page.next_cursor:
        next_params = {**params, "after": page.next_cursor}
        pager = (
            '<nav class="pager" aria-label="pages">'
            f'<a href="/console/?{escape(urlencode(next_params))}" rel="next">Next page →</a></nav>'
        )
    if query.after:
        first = {k: v for k, v in params.items() if k != "after"}
        pager = (pager or '<nav class="pager" aria-label="pages">').removesuffix("</nav>")
        pager += f'<a href="/console/?{escape(urlencode(first))}">First page</a></nav>'
    body = (
        needs_action_section(needs, csrf)
        + "<h1>Customers and exports</h1>"
        + filters
        + table
        + pager
        + '<p class="muted">The same list as JSON: <a href="/api/jobs">/api/jobs</a></p>'
    )
    return _page("Customers and exports", user, body)


def job_page(
    job: ConsoleJob,
    *,
    user: str,
    csrf: str,
    actions: Sequence[ConsoleAction],
    notice: str | None,
) -> str:
    base = f"/api/jobs/{escape(job.job_id)}"
    notice_html = f'<p class="notice" role="status">{escape(notice)}</p>' if notice else ""
    revoke = ""
    if job.grant_state == "flagged":
        revoke = (
            '<section class="needs-action" aria-labelledby="needs-action"><h2 id="needs-action">'
            f"Needs action</h2><p>{escape(job.grant_reason or '')}</p>"
            f"{_revoke_form(job, csrf)}</section>"
        )
    summary = (
        '<dl class="summary">'
        f"<dt>customer</dt><dd>{customer_text(job)}</dd>"
        f"<dt>job</dt><dd>{escape(job.job_id)} — {state_cell(job)}</dd>"
        f"<dt>grant</dt><dd>{grant_cell(job)}</dd>"
        f"<dt>consented</dt><dd>{_utc(job.received_at)}</dd>"
        f"<dt>meters</dt><dd>{meters_text(job)}</dd>"
        f"<dt>period covered</dt><dd>{coverage_text(job)}</dd>"
        f'<dt>delivered</dt><dd id="sum-delivered">{_or_dash(job.delivered_kwh)} kWh</dd>'
        f'<dt>received</dt><dd id="sum-received">{_or_dash(job.received_kwh)} kWh</dd>'
        f'<dt>gas</dt><dd id="sum-therms">{_or_dash(job.therms)} therms</dd>'
        f"<dt>peak interval</dt><dd>{peak_text(job)}</dd>"
        f"<dt>gaps</dt><dd>{gaps_text(job)}</dd>"
        f"<dt>estimated</dt><dd>{_share(job.estimated_share)} of the intervals</dd>"
        f"<dt>rows</dt><dd>{_or_dash(job.rows)}</dd>"
        "</dl>"
    )
    downloads = ""
    charts = ""
    if job.csv_object:
        raw = json.loads(job.raw_objects or "[]")
        raw_links = "".join(
            f'<li><a href="{base}/raw/{index}" download>'
            f"Green Button XML as received, {index + 1} of {len(raw)}</a></li>"
            for index in range(len(raw))
        )
        downloads = (
            '<h2>Downloads</h2><ul class="downloads">'
            f'<li><a href="/output/{escape(job.csv_object)}" download>'
            f"the CSV as exported ({escape(job.csv_layout or '?')} layout)</a></li>"
            + "".join(
                f'<li><a href="{base}/csv?layout={layout}" download>CSV, {layout} layout</a></li>'
                for layout in ("default", "pge", "scwadd")
            )
            + f'<li><a href="{base}/rollup/hourly.csv" download>hourly roll-up (CSV)</a></li>'
            f'<li><a href="{base}/rollup/daily.csv" download>daily roll-up (CSV)</a></li>'
            + (
                f'<li><a href="/output/{escape(job.manifest_object)}" download>'
                "the manifest (JSON)</a></li>"
                if job.manifest_object
                else ""
            )
            + (
                f'<li><a href="/output/{escape(job.bills_object)}" download>'
                "the bills (bills.csv)</a></li>"
                if job.bills_object
                else ""
            )
            + raw_links
            + "</ul>"
        )
        charts = (
            f'<h2>Charts</h2><div id="charts" data-series="{base}/series" data-state="loading">'
            '<p id="charts-error" class="short" role="alert" hidden></p>'
            + "".join(
                f'<figure><figcaption class="muted">{label}</figcaption>'
                f'<div id="chart-{name}" class="chart"></div></figure>'
                for name, label in CHARTS
            )
            + "</div>"
            '<script src="/console/static/plotly.min.js"></script>'
            '<script src="/console/static/console.js"></script>'
        )
    history = ""
    if actions:
        items = "".join(
            f"<li>{_utc(a.at)}: {escape(a.operator)} asked to "
            f"{escape(a.action.replace('_', ' '))} — {escape(a.outcome)}</li>"
            for a in actions
        )
        history = f"<h2>Operator actions</h2><ul>{items}</ul>"
    body = (
        notice_html
        + revoke
        + f"<h1>Export for subscription {escape(job.subscription_id or job.job_id)}</h1>"
        + summary
        + bills_section(job)
        + downloads
        + charts
        + history
        + f'<p class="muted">This page as JSON: <a href="{base}">{base}</a></p>'
    )
    return _page(f"Export {job.subscription_id}", user, body)
