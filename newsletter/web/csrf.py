"""The one CSRF scheme of every form we serve (sign-up, preference page, the preview's test send).

Signed double submit: the visitor's browser holds a random nonce in an HttpOnly, SameSite=Strict
cookie, and each form carries a token that signs that nonce together with the form's `scope`
(the address a preference page belongs to, or "" for the sign-up form) with the publication's
`Keys` (newsletter.core.tokens), valid for `ttl` seconds. A post is accepted only when its token
is valid under any secret of the rotation list, names the nonce of the cookie that came with it
and the scope of the page it was posted to. A page from another site can neither read the token
nor make the browser send the cookie; a token copied from one visitor, one address or one secret
that has since been dropped is refused.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from newsletter.core.tokens import Keys

PURPOSE = "csrf"
MIN_NONCE, MAX_NONCE = 16, 64


@dataclass(frozen=True)
class Csrf:
    """Makes and checks form tokens bound to a cookie (see the module docstring)."""

    keys: Keys
    cookie: str = "nl_csrf"
    ttl: int = 6 * 3600

    def nonce(self, request: Request) -> str:
        """The visitor's nonce from their cookie, or a fresh one."""
        found = request.cookies.get(self.cookie) or ""
        return found if MIN_NONCE <= len(found) <= MAX_NONCE else secrets.token_urlsafe(24)

    def token(self, nonce: str, scope: str = "") -> str:
        """The form token for `nonce` and `scope`."""
        return self.keys.sign(PURPOSE, _subject(nonce, scope), ttl=self.ttl)

    def issue(self, request: Request, scope: str = "") -> tuple[str, str]:
        """(nonce, token) for a page about to show a form; `remember` the nonce on its
        response."""
        nonce = self.nonce(request)
        return nonce, self.token(nonce, scope)

    def remember(self, response: Response, request: Request, nonce: str) -> Response:
        """Set (or refresh) the cookie holding `nonce` on `response`."""
        response.set_cookie(self.cookie, nonce, max_age=self.ttl, httponly=True,
                            samesite="strict", path="/", secure=request.url.scheme == "https")
        return response

    def valid(self, request: Request, token: str | None, scope: str = "") -> bool:
        """Whether `token` was made for this visitor's cookie and this `scope`."""
        nonce = request.cookies.get(self.cookie) or ""
        if not token or not MIN_NONCE <= len(nonce) <= MAX_NONCE:
            return False
        return self.keys.subject(PURPOSE, token) == _subject(nonce, scope)


def _subject(nonce: str, scope: str) -> str:
    # Tokens lower-case their subject (addresses are case-insensitive), so the nonce is
    # compared lower-cased too; 24 random bytes keep ample entropy without case.
    return f"{nonce}\n{scope}".lower()
