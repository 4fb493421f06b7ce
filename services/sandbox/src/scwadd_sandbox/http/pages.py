"""The sandbox's HTML: PG&E-like myAuthorization consent page, the index and the error page.

Plain HTML, no script: a person in a browser and a program posting the form with httpx go
through exactly the same steps and checks.
"""

from __future__ import annotations

import jinja2
from fastapi.responses import HTMLResponse

_templates = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)

_LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{{ title }} - ShareMyData sandbox</title>
<style>
body{font-family:sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}
fieldset{margin:1rem 0}label{display:block;margin:.3rem 0}
.points{margin:.1rem 0 .6rem 1.6rem;color:#555;font-size:.9rem}
button{padding:.5rem 1.2rem;margin-right:1rem}.error{color:#a00}
</style></head><body>
<p><strong>ShareMyData sandbox</strong> &mdash; a test data custodian, not PG&amp;E.</p>
{% block body %}{% endblock %}
</body></html>"""

CONSENT_PAGE = _templates.from_string(
    _LAYOUT.replace(
        "{% block body %}{% endblock %}",
        """<h1>Share your energy data</h1>
<p><strong>{{ client_id }}</strong> asks to read your energy usage data.</p>
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
<form method="post" action="{{ action }}">
<input type="hidden" name="request_id" value="{{ request_id }}">
<fieldset><legend>Sign in as a sandbox customer</legend>
{% for customer in customers %}
<label><input type="radio" name="customer" value="{{ customer.retail_customer_id }}"
 {% if loop.first %}checked{% endif %}> {{ customer.name }} ({{ customer.profile }})</label>
<ul class="points">{% for point in customer.service_points %}
<li>{{ "Gas" if point.kind == 1 else "Electric" }} service at {{ point.address }}
 (service point {{ point.usage_point_id }}){% if point.solar %}, rooftop solar{% endif %}</li>
{% endfor %}</ul>
{% endfor %}
</fieldset>
<fieldset><legend>How much history to share</legend>
{% for seconds, label in history_choices %}
<label><input type="radio" name="history" value="{{ seconds }}"
 {% if loop.index == 2 %}checked{% endif %}> {{ label }}</label>
{% endfor %}
</fieldset>
<fieldset><legend>What to share</legend>
{% for value, label in share_choices %}
<label><input type="radio" name="share" value="{{ value }}"
 {% if loop.first %}checked{% endif %}> {{ label }}</label>
{% endfor %}
</fieldset>
<button type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="cancel">Cancel</button>
</form>""",
    )
)

INDEX_PAGE = _templates.from_string(
    _LAYOUT.replace(
        "{% block body %}{% endblock %}",
        """<h1>ShareMyData sandbox</h1>
<p>A local data custodian shaped like PG&amp;E Share My Data. See docs/sandbox.md.</p>
<ul>
<li>Authorization: <code>{{ authorize_url }}?client_id=…&amp;redirect_uri=…
&amp;response_type=code&amp;state=…</code></li>
<li>Token (mutual TLS): <code>{{ token_url }}</code></li>
<li>ESPI resources (mutual TLS): <code>{{ espi_base }}</code></li>
</ul>
<h2>Sandbox customers</h2>
<ul>{% for customer in customers %}
<li>{{ customer.name }} ({{ customer.profile }}):
{{ customer.service_points | length }} service point(s)</li>
{% endfor %}</ul>""",
    )
)

_ERROR = _templates.from_string(
    _LAYOUT.replace(
        "{% block body %}{% endblock %}",
        '<h1>Request refused</h1><p class="error">{{ message }}</p>',
    )
)


def error_page(message: str, status: int = 400) -> HTMLResponse:
    return HTMLResponse(_ERROR.render(title="Request refused", message=message), status_code=status)
