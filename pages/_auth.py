"""Sign-in and admin rights, for SwingDesk deployed for a team.

Sign-in is Streamlit's built-in OpenID Connect (``st.login`` / ``st.user`` / ``st.logout``),
turned on by an ``[auth]`` section in ``.streamlit/secrets.toml`` (README, Deploying for a
team). Then:

- every page needs a signed-in user: app.py asks :func:`admitted` and shows anyone else
  only :func:`sign_in_screen`;
- destructive actions (imports, deletes, refreshes of the shared bar library, universe runs,
  journal evaluations, cache clears, the self-benchmark, the shared watchlist) need an admin:
  a verified e-mail in ``SWING_ADMIN_EMAILS`` (``Settings.is_admin``). A page disables such a
  button with :func:`admin_lock` as its reason, and its handler re-checks with
  :func:`admin_allowed`: a disabled button is a hint, the handler is the rule. (Streamlit 1.67
  drops a value sent for a widget disabled in the current run, older versions do not, and an
  ``on_click`` callback still fires when rights were lost since the page was drawn.)

Without an ``[auth]`` section SwingDesk is a single-user app, as before: everything is allowed,
and ``.streamlit/config.toml`` binds it to 127.0.0.1.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import streamlit as st
from streamlit.errors import StreamlitAuthError

from pages._text import plain
from swing_core.config import get_settings
from swing_core.errors import ConfigError

#: Where the sign-in and the admin list are set up (in messages).
_HOW = "README, Deploying for a team"


@dataclass(frozen=True)
class Access:
    """What this session may do: ``lock`` is why admin actions are refused (None: allowed)."""

    configured: bool
    signed_in: bool
    email: str | None
    lock: str | None


def _auth_section() -> Mapping[str, Any] | None:
    """The ``[auth]`` secrets section, or None when sign-in is not configured.

    No secrets file at all means "not configured"; a secrets file that exists but cannot be read
    is a :class:`ConfigError`: failing open would serve a team's app to anyone.
    """
    try:
        section = st.secrets.get("auth")
    except FileNotFoundError as exc:  # Streamlit's "no secrets" / "cannot parse secrets" error
        if not any(os.path.exists(path) for path in st.get_option("secrets.files")):
            return None
        raise ConfigError(f"SwingDesk cannot read its secrets file: {exc}. Fix "
                          f".streamlit/secrets.toml ({_HOW}) and restart the app.") from exc
    return section if isinstance(section, Mapping) else None


def auth_configured() -> bool:
    """Whether sign-in is on (an ``[auth]`` section in ``.streamlit/secrets.toml``)."""
    return _auth_section() is not None


def _lock_reason(email: str | None, verified: bool) -> str | None:
    settings = get_settings()
    if not settings.admin_emails:
        return ("Only an admin can do this, and no admin is set: list admins' e-mail "
                "addresses in SWING_ADMIN_EMAILS on the server and restart the app.")
    if not email:
        return "Only an admin can do this, and your sign-in shared no e-mail address."
    if not verified:
        return f"Only an admin can do this: your provider has not verified {plain(email)}."
    if settings.is_admin(email):
        return None
    return (f"Only an admin can do this: {plain(email)} is not in SWING_ADMIN_EMAILS. "
            "Ask an admin.")


def access() -> Access:
    """This session's rights, read from ``st.user`` and the settings on every call (never
    cached: the handler's re-check must see the truth)."""
    if not auth_configured():
        return Access(configured=False, signed_in=False, email=None, lock=None)
    user = st.user
    if user.get("is_logged_in") is not True:
        return Access(configured=True, signed_in=False, email=None, lock="Sign in first.")
    email = str(user.get("email") or "").strip() or None
    # a provider that says the address is unverified does not prove it belongs to the user
    verified = user.get("email_verified") is not False
    return Access(configured=True, signed_in=True, email=email,
                  lock=_lock_reason(email, verified))


def admin_lock() -> str | None:
    """Why this session may not run destructive actions (for a disabled button's help), or
    None when it may."""
    return access().lock


def admin_allowed(action: str) -> bool:
    """The handler's re-check: True when this session may do ``action`` (e.g. "Deleting
    bars"); otherwise an ``st.error`` saying why, and False."""
    lock = admin_lock()
    if lock is None:
        return True
    st.error(f"{action} was refused. {lock}", icon=":material/lock:")
    return False


def _providers(section: Mapping[str, Any]) -> list[str | None]:
    """Named providers (``[auth.google]`` …), or [None] for the unnamed default one."""
    named = [str(name) for name, value in section.items() if isinstance(value, Mapping)]
    return named or [None]


def sign_in_screen() -> None:
    """The sign-in screen: the app's name and one button per provider, nothing else. Call it
    after ``st.navigation`` (a widget drawn before it would change identity on the next run,
    and the first click would be lost)."""
    section = _auth_section() or {}
    st.title("SwingDesk")
    st.write("Sign in to use SwingDesk.")
    for provider in _providers(section):
        label = "Sign in" if provider is None else f"Sign in with {provider.title()}"
        if st.button(label, type="primary", key=f"auth_sign_in_{provider or 'default'}",
                     icon=":material/login:"):
            try:
                st.login(provider)  # None: the unnamed default provider
            except StreamlitAuthError as exc:  # incomplete [auth] section, Authlib missing
                reason = " ".join(str(exc).split())  # Streamlit's text wraps mid-sentence
                st.error(f"Sign-in is not set up correctly: {reason} Fix the [auth] section of "
                         f".streamlit/secrets.toml ({_HOW}) and restart the app.")


def account_panel() -> None:
    """The sidebar's account line and Sign out button (nothing when sign-in is off)."""
    session = access()
    if not session.signed_in:
        return
    role = "admin" if session.lock is None else "read-only: admin actions are disabled"
    st.sidebar.caption(f"Signed in as {plain(session.email or 'an account without e-mail')} "
                       f"· {role}")
    if st.sidebar.button("Sign out", key="auth_sign_out", icon=":material/logout:"):
        st.logout()


def admitted() -> bool:
    """Whether the page may render: sign-in is off, or the user is signed in. When False, the
    caller shows :func:`sign_in_screen` and stops. Raises :class:`ConfigError` for an
    unreadable secrets file."""
    return _auth_section() is None or access().signed_in
