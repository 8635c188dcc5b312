"""Let the application close a daphne websocket with RFC 6455's codes and a reason.

daphne 4.2 passes an application's ``websocket.close`` to autobahn's
``sendClose(code)``, which accepts only 1000 and 3000-4999 and drops the
reason. RFC 6455 lets a server send 1008 (policy violation), 1009 (message too
big) and 1013 (try again later), which the feed uses for its client limits
(``klines.serving.consumers``); uvicorn sends them as given. :func:`install`
makes daphne send the close frame itself, with the code and the reason (at
most 123 bytes), for an open connection; everything else goes through daphne
unchanged. A close before accept that carries a reason (a refused selection on
``/``, a stream URL naming a stream not recorded) is answered with HTTP 400 and
the reason in the status line, instead of daphne's bare 403. After a normal
close (1000) the client has :data:`NORMAL_CLOSE_HANDSHAKE_SECONDS` to read
what came before it and answer. Under uvicorn,
daphne's protocol is loaded (an installed app) but unused.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

PROTOCOL_MODULE = "daphne.ws_protocol"
REQUIRES = {"daphne": "4.2.3", "autobahn": "26.11.1"}
UPSTREAM = {  # wrapped; and what the wrapper does in daphne's place (the handshake's deferred, autobahn's close frame)
    "daphne.ws_protocol:WebSocketProtocol.handle_reply": "f0996c9d45b26406",
    "daphne.ws_protocol:WebSocketProtocol.onConnect": "f1190b99bb56cab4",
    "daphne.ws_protocol:WebSocketProtocol.serverClose": "1b73f7535b758080",
    "autobahn.websocket.protocol:WebSocketProtocol.sendCloseFrame": "b5856d7f4d3d8234",
}
WITHOUT = "close codes 1008/1009/1013 reach clients as daphne's 1000 without a reason, refusals as a bare 403"
MAX_REASON_BYTES = 123  # a close frame's payload is at most 125 bytes, two of them the code
# autobahn aborts (TCP RST) a connection whose peer has not answered a close within 1 s, and the peer's
# kernel then discards what it had not read yet: a replay client reading its last few MB lost them.
# A normal close (1000) waits as long as daphne's ping timeout; the others (a client given up) stay at 1 s.
NORMAL_CLOSE_HANDSHAKE_SECONDS = 30


def closing_with_code_and_reason(handle_reply: Callable[[Any, dict], None]) -> Callable[[Any, dict], None]:
    @functools.wraps(handle_reply)
    def handle(protocol: Any, message: dict) -> None:
        if message.get("type") == "websocket.close" and protocol.state == protocol.STATE_CONNECTING:
            reason = _status_text(message.get("reason") or "")
            if reason:  # a refusal with a reason: HTTP 400 and the reason, not daphne's bare 403
                from autobahn.websocket.types import ConnectionDeny  # daphne's own dependency

                protocol.handshake_deferred.errback(ConnectionDeny(code=400, reason=reason))
                del protocol.handshake_deferred
                protocol.server.protocol_disconnected(protocol)
                return None
        if message.get("type") != "websocket.close" or protocol.state != protocol.STATE_OPEN:
            return handle_reply(protocol, message)
        reason = (message.get("reason") or "").encode()[:MAX_REASON_BYTES]
        code = message.get("code") or 1000
        if code == 1000:  # done, not given up: the client may still be reading what was sent before the close
            protocol.closeHandshakeTimeout = NORMAL_CLOSE_HANDSHAKE_SECONDS
        protocol.sendCloseFrame(code=code, reasonUtf8=reason or None, isReply=False)

    handle.sends_any_close_code = True  # type: ignore[attr-defined]
    return handle


def _status_text(reason: str) -> str:
    """``reason`` fit for an HTTP status line: printable ASCII, one line, at most 123 characters."""
    return "".join(c if " " <= c <= "~" else "?" for c in reason)[:MAX_REASON_BYTES]


def install() -> bool:
    """Patch daphne's websocket protocol if daphne is loaded; return whether it is patched (idempotent)."""
    module = sys.modules.get(PROTOCOL_MODULE)
    if module is None:
        return False
    protocol = module.WebSocketProtocol
    if not getattr(protocol.handle_reply, "sends_any_close_code", False):
        protocol.handle_reply = closing_with_code_and_reason(protocol.handle_reply)
    return True
