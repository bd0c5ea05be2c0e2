"""What protects the dashboard and the operations page: a login (HTTP Basic, the password
stored as an scrypt hash), security headers on every page, and an audit log of actions."""
import base64
import hashlib
import hmac
import json
import logging
import os
import time

import redis

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

log = logging.getLogger(__name__)


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


#: Failed logins per client address: a counter with the window as its TTL.
LOGIN_FAILURES = "foodapp:login-failures:"
LOGOUT_PATH = "/logout"
REALM = 'Basic realm="foodapp", charset="UTF-8"'


def json_answer(start_response, status, body, headers=()):
    raw = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(raw))),
                            ("Cache-Control", "no-store"), *headers])
    return [raw]


def client_key(remote_addr):
    """Whom failed logins are counted against: the IPv4 address, or the IPv6 /64 network
    (one host has a whole /64 to pick addresses from)."""
    import ipaddress

    try:
        address = ipaddress.ip_address((remote_addr or "").split("%")[0])
    except ValueError:
        return remote_addr or "unknown"
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class Protected:
    """WSGI middleware: security headers everywhere; a login in front of ``prefixes``.

    The login costs the same whoever the user claims to be (one scrypt check against the
    stored hash, the user name and password judged together), so user names cannot be told
    apart by timing; failed attempts are counted per client address in Redis and refused
    with 429 past ``max_failures`` within ``failure_window`` seconds; ``/logout`` answers 401
    so that the browser forgets the credentials.
    """

    def __init__(self, app, prefixes, username=None, password_hash=None, *, client=None,
                 max_failures=10, failure_window=900):
        self.app = app
        self.prefixes = prefixes
        self.username = username
        self.password_hash = password_hash
        self.client = client
        self.max_failures = max_failures
        self.failure_window = failure_window
        self._checked = {}  # a successful Authorization header -> hash, to skip scrypt per request

    def _guarded(self, path):
        return self.password_hash is not None and any(
            path == prefix or path.startswith(prefix + "/") for prefix in self.prefixes)

    def _user(self, header):
        """The user a Basic Authorization header logs in, or None."""
        if self._checked.get(header) == self.password_hash:
            return self.username
        user, password = "", ""
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                user, password = "", ""
        # Both checks always run, scrypt included, and are judged together: a wrong user
        # name costs what a wrong password costs.
        user_ok = hmac.compare_digest(hashlib.sha256(user.encode()).digest(),
                                      hashlib.sha256(self.username.encode()).digest())
        password_ok = check_password(password, self.password_hash)
        if user_ok & password_ok:
            self._checked = {header: self.password_hash}
            return user
        return None

    def _failures(self, address):
        """(failed attempts, seconds until the count ends) for a client address."""
        key = LOGIN_FAILURES + address
        with self.client.pipeline(transaction=False) as pipe:
            pipe.get(key)
            pipe.ttl(key)
            count, ttl = pipe.execute()
        return int(count or 0), ttl

    def _failed(self, address):
        key = LOGIN_FAILURES + address
        with self.client.pipeline(transaction=False) as pipe:
            pipe.set(key, 0, ex=self.failure_window, nx=True)  # the window starts at the first failure
            pipe.incr(key)
            pipe.execute()

    def _login(self, environ, start_response):
        """None when the request is logged in (REMOTE_USER set), else the refusal sent."""
        address = client_key(environ.get("REMOTE_ADDR"))
        header = environ.get("HTTP_AUTHORIZATION", "")
        limited = self.client is not None and self.max_failures > 0
        if limited and self._checked.get(header) != self.password_hash:
            try:
                count, ttl = self._failures(address)
            except redis.RedisError as error:
                log.warning("login: could not read the failed-attempt count of %s: %s", address, error)
                count, ttl = 0, -2
            if count >= self.max_failures:
                wait = ttl if ttl > 0 else self.failure_window
                until = time.strftime("%H:%M:%S UTC", time.gmtime(time.time() + wait))
                log.warning("login: refused %s after %d failed attempts (for %d s more)", address, count, wait)
                return json_answer(start_response, "429 Too Many Requests", {
                    "error": "too_many_login_failures",
                    "message": f"{count} failed logins from {address} within {self.failure_window} s: "
                               f"logins from there are refused; try again in {wait} s (at {until})",
                }, [("Retry-After", str(wait))])
        cached = self._checked.get(header) == self.password_hash
        user = self._user(header) if header else None
        if user is not None:
            environ["REMOTE_USER"] = user
            if limited and not cached:  # a login after mistyped passwords starts the count again
                try:
                    self.client.delete(LOGIN_FAILURES + address)
                except redis.RedisError as error:
                    log.warning("login: could not clear the failed-attempt count of %s: %s", address, error)
            return None
        if header and limited:  # a prompt without credentials is not a failed attempt
            try:
                self._failed(address)
            except redis.RedisError as error:
                log.warning("login: could not count a failed attempt from %s: %s", address, error)
        return json_answer(start_response, "401 Unauthorized", {
            "error": "login_required",
            "message": "log in with the dashboard's user name and password",
        }, [("WWW-Authenticate", REALM)])

    def __call__(self, environ, start_response):
        def with_headers(status, headers, exc_info=None):
            return start_response(status, list(headers) + HEADERS, exc_info)

        path = environ.get("PATH_INFO", "")
        if self.password_hash is not None and path.rstrip("/") == LOGOUT_PATH:
            return json_answer(with_headers, "401 Unauthorized", {
                "error": "logged_out",
                "message": "logged out: if the browser asks for a user name and password, press Cancel "
                           "(or close the browser) and it forgets the ones it had; open /ops to log in again",
            }, [("WWW-Authenticate", REALM)])
        if self._guarded(path):
            environ = dict(environ)
            refused = self._login(environ, with_headers)
            if refused is not None:
                return refused
        return self.app(environ, with_headers)


def audit(client, environ_or_user, action, **details):
    """Record who did what to which job or queue, and when. Called once the action is done:
    if Redis does not take the entry, the action stays done (and is answered so), and the
    entry goes to the error log whole, so that it is not lost. True if Redis stored it."""
    user = environ_or_user if isinstance(environ_or_user, str) else environ_or_user.get("REMOTE_USER") or "anonymous"
    entry = json.dumps({"at": f"{time.time():.3f}", "user": user, "action": action, **details}, ensure_ascii=False)
    try:
        with client.pipeline(transaction=False) as pipe:
            pipe.lpush(AUDIT, entry)
            pipe.ltrim(AUDIT, 0, 9999)
            pipe.execute()
    except redis.RedisError as error:
        log.error("audit entry not stored in Redis (%s; the action was done): %s", error, entry)
        return False
    return True


def audit_log(client, count=50):
    return [json.loads(entry) for entry in client.lrange(AUDIT, 0, count - 1)]


def sees_detail(request):
    """Whether this request may see addresses, errors and counts (/readyz, /metrics).

    Yes for a client on ``security.internal_networks`` (by default this machine only), or
    one sending ``Authorization: Bearer <FOODAPP_DETAIL_TOKEN>``; and for an in-process call
    with no client address at all (a WSGI server, waitress included, always gives one).
    Behind the front proxy the address is the client's only when waitress's
    ``trusted_proxy`` is the proxy's address.
    """
    import ipaddress

    settings = request.registry.foodapp
    token = settings.security_detail_token
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip().encode(), token.encode()):
        return True
    if "REMOTE_ADDR" not in request.environ:
        return True
    try:
        address = ipaddress.ip_address(request.environ["REMOTE_ADDR"].split("%")[0])
    except ValueError:
        return False
    if getattr(address, "ipv4_mapped", None):
        address = address.ipv4_mapped
    return any(address in network for network in settings.security_internal_networks)


DETAIL_HINT = ("details (addresses, errors) are shown only to security.internal_networks or with "
               "Authorization: Bearer <FOODAPP_DETAIL_TOKEN>")
