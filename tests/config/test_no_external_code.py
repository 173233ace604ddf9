"""No page runs code from elsewhere: every script, stylesheet, image and icon of the admin, the API docs
and every public page comes from this origin, nothing is inline (so the Content-Security-Policy needs no
'unsafe-inline'), and every response carries a policy that names no other origin.

Checked through the Django test client (static files served by WhiteNoise, as in production), over real
HTTP against a live server, and, where Debian's chromium is installed, in a headless browser that runs
Swagger UI under the policy and reports any violation."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import lxml.html
import pytest
import requests
from django.contrib import admin
from django.test import RequestFactory
from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]
PUBLIC_PAGES = ["/admin/login/", "/api/docs/", "/api/docs/?script=", "/api/schema/", "/healthz"]
# Where an element loads something from: these must all be this origin.
LOADING_ATTRIBUTES = {"script": "src", "link": "href", "img": "src", "iframe": "src", "source": "src",
                      "embed": "src", "object": "data", "video": "src", "audio": "src"}
# The only sources the policy may name: this origin, nothing, and data: images (icons inside CSS).
ALLOWED_SOURCES = {"'self'", "'none'", "data:"}


def csp_directives(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        tokens = part.split()
        if tokens:
            directives[tokens[0].lower()] = tokens[1:]
    return directives


def check_policy(header: str | None, where: str) -> None:
    assert header, f"{where}: no Content-Security-Policy header"
    directives = csp_directives(header)
    assert directives.get("default-src") == ["'self'"], f"{where}: {header}"
    for name in ("script-src", "style-src"):
        assert "'unsafe-inline'" not in directives.get(name, []) and "'unsafe-eval'" not in directives.get(name, [])
    assert directives.get("frame-ancestors") == ["'none'"] and directives.get("object-src") == ["'none'"]
    for name, sources in directives.items():
        for source in sources:
            assert source in ALLOWED_SOURCES, f"{where}: {name} allows {source!r} ({header})"
            assert source != "data:" or name == "img-src", f"{where}: data: allowed in {name}"


def foreign_or_inline(html: bytes, page_url: str) -> tuple[list[str], list[str], list[str]]:
    """(references to another origin, inline code or styles, same-origin assets) in an HTML page."""
    document = lxml.html.document_fromstring(html)
    origin = urlsplit(page_url)
    foreign, inline, same_origin = [], [], []
    for element in document.iter():
        if not isinstance(element.tag, str):
            continue
        tag = element.tag.lower()
        attribute = LOADING_ATTRIBUTES.get(tag)
        if attribute and element.get(attribute):
            target = urlsplit(urljoin(page_url, element.get(attribute).strip()))
            if (target.scheme, target.netloc) != (origin.scheme, origin.netloc):
                foreign.append(f"<{tag} {attribute}={element.get(attribute)!r}>")
            else:
                same_origin.append(target.path + (f"?{target.query}" if target.query else ""))
        if tag == "script" and not element.get("src") and (element.text or "").strip():
            inline.append(f"inline <script>: {(element.text or '').strip()[:60]!r}")
        if tag == "style":
            inline.append(f"<style> block: {(element.text or '').strip()[:60]!r}")
        for name, value in element.attrib.items():
            if name.lower() == "style":
                inline.append(f"<{tag} style={value!r}>")
            elif name.lower().startswith("on"):
                inline.append(f"<{tag} {name}={value!r}>")
            elif name.lower() in ("href", "src", "action") and value.strip().lower().startswith("javascript:"):
                inline.append(f"<{tag} {name}={value!r}>")
    return foreign, inline, same_origin


def is_html(response_content_type: str) -> bool:
    return response_content_type.split(";")[0].strip() == "text/html"


def admin_pages(user) -> list[str]:
    """The admin index, every registered model's list and add page, and the custom admin pages."""
    request = RequestFactory().get("/admin/")
    request.user = user
    pages = ["/admin/"]
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        pages.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        if model_admin.has_add_permission(request):
            pages.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
    for name in ("compliance_sanctions_import", "custody_statement_upload"):
        pages.append(reverse(f"admin:{name}"))
    return pages


def check_page(fetch, url: str, base: str, *, statuses=(200, 503)) -> None:
    """Fetch `url` with `fetch(url) -> (status, content_type, csp, body)`; check its policy, and for HTML
    that nothing comes from elsewhere or is inline, and that every asset it loads is served."""
    status, content_type, policy, body = fetch(url)
    assert status in statuses, f"{url}: {status}"  # /healthz is 503 when no worker is up
    check_policy(policy, url)
    if not is_html(content_type):
        return
    foreign, inline, assets = foreign_or_inline(body, urljoin(base, url))
    assert foreign == [], f"{url} loads from another origin: {foreign}"
    assert inline == [], f"{url} has inline code or styles the policy refuses: {inline}"
    for asset in assets:
        asset_status, _type, _policy, asset_body = fetch(asset)
        assert asset_status == 200 and asset_body, f"{url}: {asset} is not served ({asset_status})"


def test_the_policy_check_catches_what_it_must():
    check_policy("default-src 'self'; object-src 'none'; frame-ancestors 'none'; img-src 'self' data:", "ok")
    for bad in ("default-src 'self' https://cdn.jsdelivr.net; object-src 'none'; frame-ancestors 'none'",
                "default-src 'self'; script-src 'self' 'unsafe-inline'; object-src 'none'; frame-ancestors 'none'",
                "default-src *; object-src 'none'; frame-ancestors 'none'", None):
        with pytest.raises(AssertionError):
            check_policy(bad, "bad")
    page = (b'<html><head><script src="https://cdn.example/x.js"></script><link rel="stylesheet" '
            b'href="//cdn.example/y.css"><style>b{}</style></head><body><img src="/static/a.png">'
            b'<b style="color:red" onclick="x()">x</b><script>alert(1)</script></body></html>')
    foreign, inline, assets = foreign_or_inline(page, "http://testserver/admin/")
    assert len(foreign) == 2 and len(inline) == 4
    assert assets == ["/static/a.png"]


@pytest.mark.django_db
def test_public_pages_load_nothing_from_elsewhere_and_carry_the_policy(client):
    def fetch(url):
        response = client.get(url)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        return response.status_code, response.get("Content-Type", ""), response.get("Content-Security-Policy"), body

    for url in PUBLIC_PAGES:
        check_page(fetch, url, "http://testserver")


@pytest.mark.django_db
def test_the_production_sign_in_and_lockout_pages_load_nothing_from_elsewhere(client, settings, django_user_model):
    settings.ADMIN_REQUIRE_OTP = True
    user = django_user_model.objects.create_user("locked-out", password="a-long-test-password-1", is_staff=True)
    responses = {}

    def fetch(url):
        response = responses.pop(url, None) or client.get(url)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        return response.status_code, response.get("Content-Type", ""), response.get("Content-Security-Policy"), body

    check_page(fetch, "/admin/login/", "http://testserver")
    assert b'name="otp_token"' in client.get("/admin/login/").content
    for _ in range(settings.AXES_FAILURE_LIMIT):
        locked = client.post("/admin/login/", {"username": user.username, "password": "wrong"})
    responses["/admin/login/"] = locked
    check_page(fetch, "/admin/login/", "http://testserver", statuses=(429,))


@pytest.mark.django_db
def test_every_admin_page_loads_nothing_from_elsewhere_and_has_nothing_inline(admin_client, admin_user):
    def fetch(url):
        response = admin_client.get(url)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        return response.status_code, response.get("Content-Type", ""), response.get("Content-Security-Policy"), body

    pages = admin_pages(admin_user)
    assert len(pages) > 20
    for url in pages:
        check_page(fetch, url, "http://testserver")


def test_the_swagger_ui_page_uses_the_installed_assets(db, client):
    html = client.get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle(" in script.content


def _live_fetcher(session: requests.Session, base: str):
    def fetch(url):
        response = session.get(urljoin(base, url), timeout=30)
        return (response.status_code, response.headers.get("Content-Type", ""),
                response.headers.get("Content-Security-Policy"), response.content)
    return fetch


def _live_login(session: requests.Session, base: str, username: str, password: str) -> requests.Response:
    login_page = session.get(base + "/admin/login/", timeout=30)
    token = lxml.html.document_fromstring(login_page.content).xpath("//input[@name='csrfmiddlewaretoken']/@value")[0]
    return session.post(base + "/admin/login/?next=/admin/", timeout=30, headers={"Referer": base + "/admin/login/"},
                        data={"csrfmiddlewaretoken": token, "username": username, "password": password})


def test_over_real_http_nothing_comes_from_elsewhere(committed, live_server, django_user_model):
    with requests.Session() as session:
        fetch = _live_fetcher(session, live_server.url)
        for url in PUBLIC_PAGES:
            check_page(fetch, url, live_server.url)
        django_user_model.objects.create_superuser("live-admin", "live@example.com", "a-long-test-password-1")
        signed_in = _live_login(session, live_server.url, "live-admin", "a-long-test-password-1")
        assert signed_in.url.endswith("/admin/"), signed_in.url
        for url in ("/admin/", reverse("admin:mint_redeem_mintrequest_changelist"),
                    reverse("admin:custody_reconciliationbreak_changelist")):
            check_page(fetch, url, live_server.url)


INLINE_IN_SOURCE = re.compile(r"""\sstyle=["'{]|<style\b|<script(?![^>]*\bsrc=)[^>]*>|\son[a-z]+=["']|javascript:""",
                              re.IGNORECASE)


def test_no_template_or_admin_code_has_inline_styles_or_scripts():
    """What the page walk above cannot reach without data (a cell that only renders for some rows)."""
    found = []
    for app in ("config", "ledger", "compliance", "custody", "mint_redeem"):
        for path in (ROOT / app).rglob("*"):
            if path.suffix not in (".py", ".html") or "migrations" in path.parts:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if INLINE_IN_SOURCE.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _headless(url: str, profile_dir: Path) -> tuple[str, str]:
    """The page's DOM after its scripts ran, and the browser's console (CSP violations are logged there)."""
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={profile_dir}",
         "--enable-logging=stderr", "--v=1", "--virtual-time-budget=15000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120)
    console = "\n".join(line for line in result.stderr.splitlines() if ":CONSOLE" in line)
    return result.stdout, console


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_swagger_ui_renders_in_a_browser_under_the_policy(committed, live_server, tmp_path):
    dom, console = _headless(live_server.url + "/api/docs/", tmp_path / "profile")
    # Swagger UI ran (from the installed files) and drew the operations of the schema it fetched.
    assert 'data-path="/api/v1/mints"' in dom, dom[-2000:]
    assert "Content Security Policy" not in console, console
    dom, console = _headless(live_server.url + "/admin/login/", tmp_path / "profile")
    assert 'id="login-form"' in dom
    assert "Content Security Policy" not in console, console
