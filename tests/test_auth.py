"""Sign-in and admin rights (pages/_auth.py, ``Settings.is_admin``), both modes, in AppTest.

- Sign-in not configured (no ``[auth]`` secrets): the single-user app as before, every action
  allowed; the production config binds 127.0.0.1 and hides error details.
- Configured: signed out, every page is the sign-in screen and nothing else; signed in, pages
  render, and destructive actions are disabled with the reason unless the verified e-mail is in
  ``SWING_ADMIN_EMAILS``; the handler re-checks (a click that arrives anyway is refused).

The ``[auth]`` section goes where Streamlit itself reads it (its secrets singleton, as AppTest
does for ``at.secrets``, which does not reach ``st.login``'s own check); the user is AppTest's
mocked ``st.user`` (``at.user``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from apptest_support import ROOT, assert_clean, demo_app
from streamlit import config as st_config
from streamlit.runtime.secrets import secrets_singleton
from streamlit.testing.v1 import AppTest

from swing_core import db, journal
from swing_core.config import get_settings
from swing_core.market import demo_bars

AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "c" * 32,
        "client_id": "swingdesk", "client_secret": "not-a-secret",
        "server_metadata_url": "https://idp.example.com/.well-known/openid-configuration"}
ADMIN = "boss@example.com"
VIEWER = {"is_logged_in": True, "email": "viewer@example.com", "email_verified": True}
BOSS = {"is_logged_in": True, "email": "Boss@Example.COM", "email_verified": True}
#: Every page's destructive controls: (page, kind, key or label).
ADMIN_CONTROLS = (
    ("pages/data.py", "file_uploader", "upload_file"),
    ("pages/data.py", "button", "cache_clear"),
    ("pages/data.py", "button", "cache_refresh"),
    ("pages/journal.py", "button", "j_evaluate"),
    ("pages/scanner.py", "button", "save_watchlist"),
    ("pages/performance.py", "button", "perf_selfbench_run"),
    ("pages/performance.py", "button", "perf_profile_run"),
    ("pages/backtest_review.py", "button", "Run universe backtest"),
)


def _secrets(monkeypatch: pytest.MonkeyPatch, secrets: dict[str, Any]) -> None:
    """Serve ``secrets`` as the parsed secrets file (restored after the test)."""
    monkeypatch.setattr(secrets_singleton, "_secrets", secrets)


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    at = demo_app(monkeypatch, tmp_path, watchlist=["AAPL"], timeout=120)
    _secrets(monkeypatch, {})  # a secrets file without [auth]: never the developer's own
    bars = demo_bars("ZZUP", "1d", 50)
    engine = db.get_engine()
    db.upsert_bars(engine, "ZZUP", "1d", bars, source="file")
    close = float(bars["close"].iloc[-5])  # a pending long plan, so Journal offers Evaluate
    journal.record_signal(engine, {
        "symbol": "ZZUP", "interval": "1d", "asof": bars.index[-5], "data_source": "file",
        "setup": "gp_pullback", "side": "long", "entry": close, "stop": close * 0.97,
        "target": close * 1.05, "r_multiple": 5 / 3})
    return at


@pytest.fixture
def team(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    """The same app with sign-in configured and one admin."""
    _secrets(monkeypatch, {"auth": dict(AUTH)})
    monkeypatch.setenv("SWING_ADMIN_EMAILS", ADMIN)
    return app


def _control(at: AppTest, kind: str, name: str) -> Any:
    if kind == "file_uploader":
        return at.file_uploader(key=name)
    if name.startswith("Run universe"):  # a form's submit button has no key
        return next(b for b in at.button if b.label == name)
    return at.button(key=name)


def _controls(at: AppTest) -> Iterator[tuple[str, Any]]:
    """Open each page and yield its destructive controls as rendered."""
    at.run()
    for page, kind, name in ADMIN_CONTROLS:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        yield name, _control(at, kind, name)


def _spy_login(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """Record the providers ``st.login`` is called with (it still runs: it checks the [auth]
    section and queues the redirect to the provider)."""
    calls: list[str | None] = []
    real = st.login

    def login(provider: str | None = None) -> None:
        calls.append(provider)
        real(provider)

    monkeypatch.setattr(st, "login", login)
    return calls


def _library_bars() -> int:
    summary = db.bar_cache_summary(db.get_engine())
    return 0 if summary.empty else int(summary["bars"].sum())


# --------------------------------------------------------------------------- the rule


def test_is_admin_compares_trimmed_lower_case_and_never_admits_no_email(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWING_ADMIN_EMAILS", "Boss@Example.com, ops@example.com")
    settings = get_settings()
    assert settings.is_admin(" BOSS@example.COM ") and settings.is_admin("ops@example.com")
    assert not settings.is_admin("viewer@example.com")
    assert not settings.is_admin("boss@example.com.evil.test")
    assert not settings.is_admin(None) and not settings.is_admin("")


# --------------------------------------------------------------------------- not configured


def test_production_config_binds_loopback_and_hides_error_details() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert config["client"]["showErrorDetails"] == "none"
    # the installed Streamlit reads it (AppTest runs from the checkout) and redacts a bug's text
    assert st_config.get_option("client.showErrorDetails") == "none"
    at = AppTest.from_string("raise RuntimeError('internal detail: /srv/secret.toml')").run()
    assert "internal detail" not in at.exception[0].value
    assert not at.exception[0].stack_trace


def test_without_sign_in_everything_renders_and_admin_actions_are_enabled(app: AppTest) -> None:
    for name, control in _controls(app):
        help_text = control.help or ""
        assert "admin" not in help_text.lower(), (name, help_text)
        if name not in ("cache_clear", "cache_refresh"):
            assert not control.disabled, name  # those two wait for a tick / Yahoo (offline)
    assert not any("Signed in" in c.value for c in app.sidebar.caption)
    app.switch_page("pages/data.py").run()
    app.checkbox(key="cache_confirm").check().run()
    app.button(key="cache_clear").click().run()
    assert_clean(app)
    assert _library_bars() == 0


# --------------------------------------------------------------------------- configured


def test_signed_out_every_page_is_the_sign_in_screen_and_nothing_else(
        team: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    for user in ({"is_logged_in": False}, {"email": "test@example.com"}):  # AppTest's default
        team.user = user
        team.run()
        for page in [None, *sorted(p.name for p in (ROOT / "pages").glob("[!_]*.py"))]:
            if page:
                team.switch_page(f"pages/{page}").run()
            assert_clean(team)
            assert [t.value for t in team.title] == ["SwingDesk"], page
            assert [b.label for b in team.button] == ["Sign in"], page
            assert not team.sidebar.children, page
            for kind in ("dataframe", "plotly_chart", "file_uploader", "selectbox",
                         "text_input", "metric", "tab", "expandable"):
                assert not team.get(kind), (page, kind)
    logins = _spy_login(monkeypatch)
    team.run()
    team.button(key="auth_sign_in_default").click().run()  # the first click counts
    assert_clean(team)
    assert logins == [None], "redirected to the default provider"


def test_a_half_configured_sign_in_says_what_to_fix(team: AppTest,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _secrets(monkeypatch, {"auth": {k: v for k, v in AUTH.items() if k != "cookie_secret"}})
    team.run()
    team.button(key="auth_sign_in_default").click().run()
    assert not team.exception
    message = " ".join(e.value for e in team.error)
    assert "Sign-in is not set up correctly" in message and "cookie_secret" in message
    assert "[auth] section of .streamlit/secrets.toml" in message


def test_named_providers_get_one_button_each(team: AppTest,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    shared = {"redirect_uri": AUTH["redirect_uri"], "cookie_secret": AUTH["cookie_secret"]}
    provider = {k: AUTH[k] for k in ("client_id", "client_secret", "server_metadata_url")}
    _secrets(monkeypatch, {"auth": {**shared, "google": provider, "okta": provider}})
    logins = _spy_login(monkeypatch)
    team.run()
    assert [b.label for b in team.button] == ["Sign in with Google", "Sign in with Okta"]
    team.button(key="auth_sign_in_okta").click().run()
    assert_clean(team)
    assert logins == ["okta"]


def test_an_unreadable_secrets_file_fails_closed(app: AppTest, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "secrets.toml"
    broken.write_text("[auth\nredirect_uri = 'x'\n")
    _secrets(monkeypatch, None)  # parse the file on the next read
    before = st_config.get_option("secrets.files")
    st_config.set_option("secrets.files", [str(broken)])
    try:
        app.run()
    finally:
        st_config.set_option("secrets.files", before)
    assert not app.exception
    message = " ".join(e.value for e in app.error)
    assert "SwingDesk cannot read its secrets file" in message, message
    assert not app.get("dataframe") and not app.button


def test_a_signed_in_viewer_sees_pages_with_admin_actions_disabled_and_why(
        team: AppTest) -> None:
    team.user = dict(VIEWER)
    for name, control in _controls(team):
        assert control.disabled, name
        assert "viewer@example.com is not in SWING_ADMIN_EMAILS" in control.help, name
    assert team.title[0].value == "Backtest Review"  # the page itself rendered
    captions = [c.value for c in team.sidebar.caption]
    assert any("Signed in as viewer@example.com · read-only" in c for c in captions), captions
    assert team.button(key="auth_sign_out")


@pytest.mark.parametrize(("user", "admins", "reason"), [
    ({**BOSS, "email_verified": False}, ADMIN, "your provider has not verified"),
    ({"is_logged_in": True}, ADMIN, "your sign-in shared no e-mail address"),
    (BOSS, "", "no admin is set: list admins' e-mail addresses in SWING_ADMIN_EMAILS"),
])
def test_admin_rights_need_a_verified_listed_email(team: AppTest, monkeypatch: pytest.MonkeyPatch,
                                                   user: dict[str, Any], admins: str,
                                                   reason: str) -> None:
    monkeypatch.setenv("SWING_ADMIN_EMAILS", admins)
    team.user = dict(user)
    team.run()
    team.switch_page("pages/data.py").run()
    assert_clean(team)
    delete = team.button(key="cache_clear")
    assert delete.disabled and reason in delete.help, delete.help


def test_an_admin_may_do_everything(team: AppTest) -> None:
    team.user = dict(BOSS)
    for name, control in _controls(team):
        assert "admin" not in (control.help or "").lower(), name
        if name not in ("cache_clear", "cache_refresh"):
            assert not control.disabled, name
    assert any("Signed in as Boss@Example.COM · admin" in c.value for c in team.sidebar.caption)
    team.switch_page("pages/data.py").run()
    team.checkbox(key="cache_confirm").check().run()
    team.button(key="cache_clear").click().run()
    assert_clean(team)
    assert _library_bars() == 0


def test_a_click_that_arrives_anyway_changes_nothing(team: AppTest,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The page was rendered for an admin (buttons enabled); the click then comes from a
    viewer's session, or after the admin was removed from the list: nothing happens.

    Streamlit 1.67 drops a value sent for a widget that is disabled in the current run (older
    versions, which requirements.txt allows, do not: the handlers' ``admin_allowed`` re-check
    covers them); a callback (``on_click``) still fires on the enabled-to-disabled edge, and
    there only the handler's re-check stops it."""
    team.user = dict(BOSS)
    team.run()
    team.switch_page("pages/data.py").run()
    team.checkbox(key="cache_confirm").check().run()
    assert not team.button(key="cache_clear").disabled
    team.user = dict(VIEWER)
    team.button(key="cache_clear").click().run()
    assert not team.exception
    assert _library_bars() == 50, "nothing deleted"
    assert team.button(key="cache_clear").disabled

    team.user = dict(BOSS)
    team.run()
    csv = (b"Date,Open,High,Low,Close,Volume\n2024-01-02,10,11,9,10.5,1000\n"
           b"2024-01-03,10.5,11.5,10,11,1200\n2024-01-04,11,12,10.5,11.5,900\n")
    team.file_uploader(key="upload_file").set_value([("NEWCO.csv", csv, "text/csv")]).run()
    monkeypatch.setenv("SWING_ADMIN_EMAILS", "someone-else@example.com")  # admin removed
    team.button(key="store_upload").click().run()
    assert not team.exception
    assert _library_bars() == 50, "nothing imported"

    monkeypatch.setenv("SWING_ADMIN_EMAILS", ADMIN)
    team.switch_page("pages/performance.py").run()
    assert not team.button(key="perf_selfbench_run").disabled
    monkeypatch.setenv("SWING_ADMIN_EMAILS", "someone-else@example.com")
    team.button(key="perf_selfbench_run").click().run()  # on_click: the handler decides
    assert not team.exception
    assert team.session_state.get("perf_selfbench_job") is None, "no benchmark process started"
    assert any("Running the self-benchmark was refused. Only an admin can do this: "
               "Boss@Example.COM is not in SWING_ADMIN_EMAILS" in e.value for e in team.error), \
        [e.value for e in team.error]
