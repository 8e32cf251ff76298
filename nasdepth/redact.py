"""One redaction for every URL the project prints or stores.

Storage URLs end up in shell histories, CI logs, reports and error messages; their secrets must
not. Two places hold one: the user info (``scheme://user:secret@host``, whatever characters the
secret has, ``@`` and ``:`` included) and query parameters such as ``?password=`` (PostgreSQL's
libpq and Redis both accept them).
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "***"
#: query parameters whose values are secrets (compared without case, ``-`` and ``_``)
SECRET_PARAMS = ("password", "passwd", "pwd", "pass", "secret", "token", "accesstoken",
                 "apikey", "key", "sslpassword", "auth", "credentials")


def _is_secret(name: str) -> bool:
    return name.lower().replace("_", "").replace("-", "") in SECRET_PARAMS


def _redact_query(query: str) -> str:
    parts = []
    for item in re.split(r"([&;])", query):  # the separators kept, as items without '='
        name, eq, _ = item.partition("=")
        parts.append(f"{name}={MASK}" if eq and _is_secret(name) else item)
    return "".join(parts)


def _split(url: str) -> tuple[str, str | None, str, str | None]:
    """(scheme, user info or None, host and path, query or None). The user info ends at the
    *last* ``@`` that is not inside a query value: a password may hold ``@``, ``:``, ``/`` or
    ``?`` unencoded, a query value such as ``options=a@b`` has an ``=`` before its ``@``."""
    scheme, rest = url.split("://", 1)
    userinfo = None
    for i in range(len(rest) - 1, -1, -1):
        _, mark, after_mark = rest[:i].rpartition("?")
        if rest[i] == "@" and not (mark and "=" in after_mark):
            userinfo, rest = rest[:i], rest[i + 1:]
            break
    rest, sep, query = rest.partition("?")
    return scheme, userinfo, rest, query if sep else None


def redact(url: str) -> str:
    """``url`` with its password and secret query values replaced by ``***``.

    ``postgresql://ann:Top@Secret99@host/db`` -> ``postgresql://ann:***@host/db``;
    ``redis://host/0?password=x`` -> ``redis://host/0?password=***``; a user without a password
    stays as it is. Text that is not a URL comes back unchanged.
    """
    if "://" not in url:
        return _redact_keywords(url)
    scheme, userinfo, hostpart, query = _split(url)
    out = f"{scheme}://"
    if userinfo is not None:
        user = userinfo.split(":", 1)[0]
        out += f"{user}:{MASK}@" if ":" in userinfo else f"{userinfo}@"
    out += hostpart
    if query is not None:
        out += "?" + _redact_query(query)
    return out


#: ``key=value`` of a libpq keyword/value connection string; a value is quoted ('...', with
#: backslash escapes) or runs to the next space
KEYWORD_RE = re.compile(r"([A-Za-z_]+)(\s*=\s*)('(?:[^'\\]|\\.)*'?|(?:[^\s\\]|\\.)*)")


def _redact_keywords(text: str) -> str:
    """``host=db password=x`` (libpq's keyword form) -> ``host=db password=***``."""
    if "=" not in text:
        return text
    return KEYWORD_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}" if _is_secret(
        m.group(1)) else m.group(0), text)


def secrets_of(url: str) -> list[str]:
    """The secret strings inside ``url`` (password, secret query values, also URL-decoded),
    longest first: to scrub them from a driver's error text, which quotes them its own way."""
    if "://" not in url:
        given = [m.group(3) for m in KEYWORD_RE.finditer(url) if _is_secret(m.group(1))]
        given += [v[1:-1] for v in given if len(v) >= 2 and v[0] == v[-1] == "'"]
        given += [p for v in given for p in re.split(r"[\s'@:/?#]", v) if len(p) >= 3]
        return sorted({v for v in given if v and v != "''"}, key=len, reverse=True)
    _, userinfo, _, query = _split(url)
    found: list[str] = []
    if userinfo is not None and ":" in userinfo:
        found.append(userinfo.split(":", 1)[1])
    for item in re.split(r"[&;]", query or ""):
        name, _, value = item.partition("=")
        if _is_secret(name):
            found.append(value)
    found += [unquote(s) for s in found]
    # a driver that split the URL elsewhere quotes pieces of the password (host "pw@host")
    found += [piece for s in found for piece in re.split(r"[@:/?#]", s) if len(piece) >= 3]
    return sorted({s for s in found if s}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` (e.g. a driver's error message about ``url``) with every secret of ``url``
    masked, and any URL in it redacted."""
    for secret in secrets_of(url):
        text = text.replace(secret, MASK)
    return re.sub(r"[a-zA-Z][a-zA-Z0-9+.-]*://\S+", lambda m: redact(m.group(0)), text)
