"""Never print a secret: URLs are shown with their password replaced."""

from __future__ import annotations

import re

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:@/]*):(?P<pw>[^@\s]*)@")
_QUERY_SECRET = re.compile(
    r"(?P<name>(?:password|secret|token|aws_secret_access_key|sig)=)[^&]*", re.IGNORECASE
)


def redacted(url: str | None) -> str:
    """``url`` with any password (``user:pw@``) or secret query parameter masked as ``***``."""
    if not url:
        return ""
    out = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", url)
    return _QUERY_SECRET.sub(lambda m: f"{m['name']}***", out)
