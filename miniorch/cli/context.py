"""What every command receives: resolved global options and a lazily built client.

The client and discovery modules are imported when a command first asks for them:
`http.client` and `ssl` are about half of a command's start-up, and `version
--client`, `completion` or `container run` never talk to the API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from miniorch.cli.client import Client, ClusterConfig
    from miniorch.cli.discovery import Discovery


@dataclass(kw_only=True)
class Context:
    home: Path
    """`--state-dir`, else `$MINIORCH_HOME`, else `~/.miniorch`."""
    kubeconfig: Path
    namespace_flag: str | None = None
    all_namespaces: bool = False
    stdout: IO[str]
    stderr: IO[str]
    _config: ClusterConfig | None = field(default=None, repr=False)
    _client: Client | None = field(default=None, repr=False)
    _discovery: Discovery | None = field(default=None, repr=False)

    @property
    def config(self) -> ClusterConfig:
        if self._config is None:
            from miniorch.cli.client import load_config

            self._config = load_config(self.kubeconfig)
        return self._config

    @property
    def client(self) -> Client:
        if self._client is None:
            from miniorch.cli.client import Client

            self._client = Client(self.config)
        return self._client

    @property
    def discovery(self) -> Discovery:
        """The server's kinds, fetched once per run as a command first needs them."""
        if self._discovery is None:
            from miniorch.cli.discovery import Discovery, DiscoveryCache

            self._discovery = Discovery(self.client, DiscoveryCache.for_server(
                self.config.hostport, self.kubeconfig))
        return self._discovery

    @property
    def namespace(self) -> str:
        return self.namespace_flag or self.config.namespace

    def out(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()

    def err(self, text: str) -> None:
        self.stderr.write(text)
        self.stderr.flush()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
