"""API errors, each one a Kubernetes `Status` on the wire.

The exception tree (what a handler raises → what the client sees):

    ApiError                    500 InternalError
    ├── BadRequest              400 BadRequest
    ├── Unauthorized            401 Unauthorized
    ├── NotFound                404 NotFound
    ├── MethodNotAllowed        405 MethodNotAllowed
    ├── AlreadyExists           409 AlreadyExists
    ├── Conflict                409 Conflict        (stale resourceVersion)
    ├── Gone                    410 Expired         (watch resume too old)
    ├── RequestEntityTooLarge   413 RequestEntityTooLarge
    ├── UnsupportedMediaType    415 UnsupportedMediaType
    └── Invalid                 422 Invalid         (details.causes name the fields)

Raised anywhere under the API layer (store, registry, server); the server turns
them into `Status` bodies with `to_status()`, and the CLI prints them as kubectl does:
`Error from server (NotFound): pods "nope" not found`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from miniorch.core.objects import Obj


@dataclass(frozen=True)
class Cause:
    field: str
    message: str
    reason: str = "FieldValueInvalid"

    def to_json(self) -> Obj:
        return {"reason": self.reason, "message": self.message, "field": self.field}


class ApiError(Exception):
    code: ClassVar[int] = 500
    reason: ClassVar[str] = "InternalError"

    def __init__(self, message: str, *, kind: str = "", name: str = "",
                 causes: list[Cause] | None = None, group: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.name = name
        self.group = group
        self.causes = causes or []

    def to_status(self) -> Obj:
        details: dict[str, Any] = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = [c.to_json() for c in self.causes]
        status: Obj = {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        }
        if details:
            status["details"] = details
        return status


class BadRequest(ApiError):
    code = 400
    reason = "BadRequest"


class Unauthorized(ApiError):
    code = 401
    reason = "Unauthorized"


class Forbidden(ApiError):
    code = 403
    reason = "Forbidden"


class NotFound(ApiError):
    code = 404
    reason = "NotFound"

    @classmethod
    def of(cls, plural: str, name: str, group: str = "") -> NotFound:
        qualified = f"{plural}.{group}" if group else plural
        return cls(f'{qualified} "{name}" not found', kind=plural, name=name, group=group)


class MethodNotAllowed(ApiError):
    code = 405
    reason = "MethodNotAllowed"


class AlreadyExists(ApiError):
    code = 409
    reason = "AlreadyExists"

    @classmethod
    def of(cls, plural: str, name: str, group: str = "") -> AlreadyExists:
        qualified = f"{plural}.{group}" if group else plural
        return cls(f'{qualified} "{name}" already exists', kind=plural, name=name, group=group)


class Conflict(ApiError):
    code = 409
    reason = "Conflict"

    @classmethod
    def stale(cls, plural: str, name: str, group: str = "") -> Conflict:
        qualified = f"{plural}.{group}" if group else plural
        return cls(
            f'Operation cannot be fulfilled on {qualified} "{name}": the object has been '
            "modified; please apply your changes to the latest version and try again",
            kind=plural, name=name, group=group)


class Gone(ApiError):
    code = 410
    reason = "Expired"


class RequestEntityTooLarge(ApiError):
    code = 413
    reason = "RequestEntityTooLarge"


class UnsupportedMediaType(ApiError):
    code = 415
    reason = "UnsupportedMediaType"


class Invalid(ApiError):
    code = 422
    reason = "Invalid"

    @classmethod
    def of(cls, kind: str, name: str, causes: list[Cause], group: str = "") -> Invalid:
        """kube-apiserver's wording: `Pod "x" is invalid: spec.containers: Required value`."""
        summary = ", ".join(f"{c.field}: {c.message}" if c.field else c.message for c in causes)
        if len(causes) > 1:
            summary = "[" + summary + "]"
        return cls(f'{kind} "{name}" is invalid: {summary}', kind=kind, name=name,
                   causes=causes, group=group)
