"""CLI errors and how kubectl prints them.

    CliError                 — a local error: printed as `error: <message>`, exit 1
    ├── ConnectionRefused    — the API is not listening (with the `miniorch up` hint)
    └── StatusError          — the server answered with a `Status` (kubectl's
                               `Error from server (Reason): message` and its variants)

Commands raise; only `main` prints (through `format_error`) and picks the exit code.
"""

from __future__ import annotations

from typing import Any


class CliError(Exception):
    """A client-side failure; `str(self)` is the text after `error: `."""

    exit_code = 1

    def render(self) -> str:
        return f"error: {self}"


class ExitCode(Exception):
    """Leave with this exit code and print nothing more (exec's remote exit status)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class ConnectionRefused(CliError):
    def __init__(self, hostport: str) -> None:
        super().__init__(hostport)
        self.hostport = hostport

    def render(self) -> str:
        return (f"The connection to the server {self.hostport} was refused - "
                "did you specify the right host or port?\n"
                "hint: is the cluster running? Start it with `miniorch up`.")


class StatusError(CliError):
    """The server's `Status` for a failed request."""

    def __init__(self, status: dict[str, Any], *, code: int) -> None:
        self.status = status
        self.code = code
        super().__init__(str(status.get("message") or ""))

    @property
    def reason(self) -> str:
        return str(self.status.get("reason") or "")

    def with_source(self, verb: str, source: str) -> StatusError:
        """kubectl's AddSourceToErr: `error when creating "x.yaml": <message>`."""
        if not source or source == "STDIN":
            return self
        status = dict(self.status)
        status["message"] = f'error when {verb} "{source}": {status.get("message", "")}'
        return StatusError(status, code=self.code)

    def render(self) -> str:
        details = self.status.get("details") or {}
        if self.reason == "Invalid" and details.get("kind") and details.get("name"):
            # kubectl's CheckErr special-cases Invalid: "The Pod "x" is invalid: ..."
            head = f'The {details["kind"]} "{details["name"]}" is invalid'
            causes = [f'{c.get("field", "")}: {c.get("message", "")}'
                      if c.get("field") else str(c.get("message", ""))
                      for c in details.get("causes") or []]
            if len(causes) == 1:
                return f"{head}: {causes[0]}"
            if causes:
                return f"{head}: \n" + "\n".join(f"* {c}" for c in causes)
            return head
        message = str(self.status.get("message") or "")
        if not message:
            message = (f"an error on the server ({self.code}) has prevented the request "
                       "from succeeding")
        reason = self.reason
        if reason and reason != "Unknown":
            return f"Error from server ({reason}): {message}"
        return f"Error from server: {message}"


def format_error(exc: CliError) -> str:
    return exc.render()
