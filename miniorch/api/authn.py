"""Who a request comes from: the authenticated user, as the API server's handlers see it.

    server._auth ──admin token──► ADMIN
                 ──service-account JWT (satokens.py)──► UserInfo(system:serviceaccount:…)
                 ──► CALLER.set(user) ──► read by the reviews (kinds/review.py)

Invariants: CALLER is set by the auth middleware in the request's own task before any
handler runs, so a handler never sees another request's user; code that runs outside
a request (controllers, kubelets: the cluster itself) sees the default, ADMIN.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field

from miniorch.api.kubeconfig import USER
from miniorch.core.objects import Obj

AUTHENTICATED = "system:authenticated"


@dataclass(frozen=True)
class UserInfo:
    """Who a request comes from (authentication/v1 UserInfo)."""

    username: str
    groups: tuple[str, ...]
    uid: str = ""
    extra: dict[str, list[str]] = field(default_factory=dict)

    @property
    def is_service_account(self) -> bool:
        return self.username.startswith("system:serviceaccount:")

    def to_obj(self) -> Obj:
        out: Obj = {"username": self.username, "groups": list(self.groups)}
        if self.uid:
            out["uid"] = self.uid
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra.items()}
        return out


ADMIN = UserInfo(username=USER, groups=("system:masters", AUTHENTICATED))
"""The one user the kubeconfig names (its static bearer token)."""

CALLER: contextvars.ContextVar[UserInfo] = contextvars.ContextVar("miniorch_caller",
                                                                  default=ADMIN)
"""The authenticated user of the request being served. The server's auth middleware
sets it in the request's own task (aiohttp runs each request in one), so the review
kinds can answer "who am I" without the user travelling through every signature.
In-process callers (controllers, kubelets) are the cluster itself: the default."""


__all__ = ["ADMIN", "AUTHENTICATED", "CALLER", "UserInfo"]
