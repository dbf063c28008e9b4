"""The static web client is served at / and /static/ with a strict Content-Security-Policy."""

from __future__ import annotations

from html.parser import HTMLParser

import httpx

CSP_MUST = ("script-src 'self'", "style-src 'self'", "default-src 'none'", "frame-ancestors 'none'")


class _Page(HTMLParser):
    """Collects what a strict CSP would block: inline scripts, handlers, styles."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline: list[str] = []
        self.labels: set[str] = set()
        self.fields: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script":
            self.scripts.append(attributes)
            self._in_script = True
        if tag == "style":
            self.inline.append("<style>")
        for name, value in attrs:
            if name.startswith("on") or name == "style":
                self.inline.append(f"{tag} {name}")
            if name == "href" and value and value.startswith("javascript:"):
                self.inline.append(f"{tag} href=javascript:")
        if tag == "label" and attributes.get("for"):
            self.labels.add(str(attributes["for"]))
        if tag in ("input", "select", "textarea"):
            self.fields.append(str(attributes.get("id")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append("inline script")


def _assert_secure(response: httpx.Response) -> None:
    csp = response.headers["content-security-policy"]
    for directive in CSP_MUST:
        assert directive in csp, csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_the_page_is_html_without_inline_code(http: httpx.AsyncClient) -> None:
    response = await http.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    _assert_secure(response)
    page = _Page()
    page.feed(response.text)
    # One module script from this origin, nothing inline that the CSP would block.
    assert page.scripts == [{"type": "module", "src": "/static/app.js"}]
    assert page.inline == []
    # Every form field has a label.
    assert page.fields and set(page.fields) <= page.labels


async def test_script_and_style_are_served(http: httpx.AsyncClient) -> None:
    script = await http.get("/static/app.js")
    assert script.status_code == 200
    assert script.headers["content-type"].split(";")[0] in (
        "text/javascript",
        "application/javascript",
    )
    assert "export class RoomClient" in script.text
    _assert_secure(script)
    style = await http.get("/static/style.css")
    assert style.status_code == 200
    assert style.headers["content-type"].startswith("text/css")


async def test_missing_and_escaping_paths_are_404_problems(http: httpx.AsyncClient) -> None:
    for path in ("/static/nope.js", "/static/", "/static/%2e%2e/web.py", "/static/..%2fapp.py"):
        response = await http.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "not_found"
    # The API is untouched by the page at /: a POST there is not allowed.
    assert (await http.post("/")).status_code == 405


async def test_the_client_is_not_part_of_the_api_description(http: httpx.AsyncClient) -> None:
    response = await http.get("/schema/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/blends" in paths
    assert not [p for p in paths if p == "/" or p.startswith("/static")]


async def test_the_page_modules_and_the_verify_page_are_served(http: httpx.AsyncClient) -> None:
    for name in ("page.js", "dom.js", "blend.js", "mashup.js", "library.js"):
        module = await http.get(f"/static/{name}")
        assert module.status_code == 200, name
        assert module.headers["content-type"].split(";")[0] in (
            "text/javascript",
            "application/javascript",
        )
    # The emailed links' pages are the client's page, under the same CSP.
    for path in ("/verify", "/reset-password"):
        page = await http.get(path, params={"token": "x" * 43})
        assert page.status_code == 200
        assert page.text == (await http.get("/")).text
        _assert_secure(page)


async def test_favicons(http: httpx.AsyncClient) -> None:
    ico = await http.get("/favicon.ico")
    assert ico.status_code == 200
    assert ico.headers["content-type"] == "image/x-icon"
    assert ico.content[:4] == b"\x00\x00\x01\x00"  # an ICO header
    svg = await http.get("/favicon.svg")
    assert svg.status_code == 200
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.startswith("<svg")


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)


async def test_the_api_viewer_needs_no_other_site(http: httpx.AsyncClient) -> None:
    # Swagger UI's script, preset, style sheet and icon are this server's (no CDN), and served.
    page = await http.get("/schema")
    assert page.status_code == 200
    assets = _Assets()
    assets.feed(page.text)
    assert len(assets.urls) == 4, assets.urls
    for url in assets.urls:
        assert url.startswith("/") and not url.startswith("//"), url
        served = await http.get(url)
        assert served.status_code == 200, url
        assert len(served.content) > 100, url
    assert "/vendor/swagger-ui/swagger-ui-bundle.js" in assets.urls
    missing = await http.get("/vendor/swagger-ui/nope.js")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
