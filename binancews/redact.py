"""Hide the password part of connection URIs (``scheme://user:password@host``) in any text. Pure."""

from __future__ import annotations

import re
from urllib.parse import unquote

HIDDEN = "***"
# scheme://user:password@ — the user may be empty (redis://:password@host); the password
# runs to the first "@" (pymongo and redis-py require a literal "@" in it to be %-encoded).
_CREDENTIALS = re.compile(r"(?P<prefix>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/?#@\s]*):(?P<password>[^@\s]+)@")


def redact_uris(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` replaced by ``***``."""
    return _CREDENTIALS.sub(rf"\g<prefix>:{HIDDEN}@", text)


def uri_passwords(*uris: str) -> set[str]:
    """The passwords in ``uris``, as written and %-decoded (clients hold the decoded one)."""
    passwords = set()
    for uri in uris:
        for match in _CREDENTIALS.finditer(uri):
            passwords |= {match["password"], unquote(match["password"])}
    return passwords
