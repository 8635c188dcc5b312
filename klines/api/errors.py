"""Binance's error answers: HTTP status, ``{"code": ..., "msg": ...}``, with Binance's codes and wording."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BinanceError(Exception):
    code: int
    msg: str
    status: int = 400

    def body(self) -> dict[str, object]:
        return {"code": self.code, "msg": self.msg}


def missing(name: str) -> BinanceError:
    return BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def illegal_characters(name: str, legal: str) -> BinanceError:
    return BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'.")


def not_valid(name: str) -> BinanceError:
    return BinanceError(-1130, f"Data sent for parameter '{name}' is not valid.")


INVALID_SYMBOL = BinanceError(-1121, "Invalid symbol.")
INVALID_INTERVAL = BinanceError(-1120, "Invalid interval.")
START_AFTER_END = BinanceError(-1023, "Start time is greater than end time.")
NOT_YET_FETCHED = BinanceError(-1001, "Internal error; unable to process your request. Please try again.", 503)


def no_such_path(path: str, method: str) -> BinanceError:
    return BinanceError(-5000, f"Path {path}, Method {method} is invalid", 404)
