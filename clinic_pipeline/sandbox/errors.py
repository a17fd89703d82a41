"""The one error type handlers raise; the app turns it into Freshsales' error envelope."""

from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status: int, *messages: str) -> None:
        super().__init__(f"{status}: {'; '.join(messages)}")
        self.status = status
        self.messages = list(messages) or ["Error"]


def not_found(what: str = "Record") -> ApiError:
    return ApiError(404, f"{what} not found")


FORBIDDEN = "You are not authorised to perform this operation."
