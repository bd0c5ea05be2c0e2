"""What protects the dashboard and the operations page: a login (HTTP Basic, the password
stored as an scrypt hash), security headers on every page, and an audit log of actions."""
import base64
import hashlib
import hmac
import json
import os
import time

HEADERS = [
    # No script runs unless it is a file of ours (there are none inline), so an item name
    # that slipped past escaping still could not run. Inline styles: dramatiq-dashboard's.
    ("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                                "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
]

AUDIT = "foodapp:audit"


def hash_password(password, *, salt=None, n=2 ** 14, r=8, p=1):
    """An scrypt hash to put in FOODAPP_DASHBOARD_PASSWORD_HASH: scrypt$n$r$p$salt$hash."""
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p)
    return "$".join(["scrypt", str(n), str(r), str(p), base64.b64encode(salt).decode(), base64.b64encode(digest).decode()])


def check_password(password, stored):
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


class Protected:
    """WSGI middleware: security headers everywhere; a login in front of ``prefixes``."""

    def __init__(self, app, prefixes, username=None, password_hash=None):
        self.app = app
        self.prefixes = prefixes
        self.username = username
        self.password_hash = password_hash
        self._checked = {}  # a successful (user, password) -> hash, to skip scrypt per request

    def _guarded(self, path):
        return self.password_hash is not None and any(
            path == prefix or path.startswith(prefix + "/") for prefix in self.prefixes)

    def _user(self, environ):
        header = environ.get("HTTP_AUTHORIZATION", "")
        if not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if not hmac.compare_digest(user.encode(), self.username.encode()):
            return None
        if self._checked.get(header) == self.password_hash or check_password(password, self.password_hash):
            self._checked = {header: self.password_hash}
            return user
        return None

    def __call__(self, environ, start_response):
        def with_headers(status, headers, exc_info=None):
            return start_response(status, list(headers) + HEADERS, exc_info)

        if self._guarded(environ.get("PATH_INFO", "")):
            user = self._user(environ)
            if user is None:
                body = json.dumps({"error": "login_required",
                                   "message": "log in with the dashboard's user name and password"}).encode()
                with_headers("401 Unauthorized", [("Content-Type", "application/json"),
                                                  ("WWW-Authenticate", 'Basic realm="foodapp", charset="UTF-8"'),
                                                  ("Content-Length", str(len(body)))])
                return [body]
            environ = {**environ, "REMOTE_USER": user}
        return self.app(environ, with_headers)


def audit(client, environ_or_user, action, **details):
    """Record who did what to which job or queue, and when."""
    user = environ_or_user if isinstance(environ_or_user, str) else environ_or_user.get("REMOTE_USER") or "anonymous"
    entry = {"at": f"{time.time():.3f}", "user": user, "action": action, **details}
    with client.pipeline(transaction=False) as pipe:
        pipe.lpush(AUDIT, json.dumps(entry, ensure_ascii=False))
        pipe.ltrim(AUDIT, 0, 9999)
        pipe.execute()


def audit_log(client, count=50):
    return [json.loads(entry) for entry in client.lrange(AUDIT, 0, count - 1)]
