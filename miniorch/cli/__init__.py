"""The `miniorch` command line: kubectl's grammar and output over miniorch's API.

Layout (data flows top to bottom):

- `main`       — argparse grammar (only the verb's own is built), global options,
                 dispatch; `main(argv) -> exit code`.
- `commands`   — one function per kubectl verb; they talk to the API only via `client`.
- `discovery`  — kind names resolved through the server's discovery, cached on disk
                 as kubectl caches it (no table of kinds in the CLI: every kind the
                 server serves works).
- `client`     — a synchronous HTTPS client on `socket` + `ssl` (its own small HTTP/1.1),
                 configured from the kubeconfig; raises `errors.CliError` / `StatusError`.
- `tabwriter`, `printers`, `jsonpath`, `describe` — output exactly as kubectl prints it.
- `manifests`, `apply` — reading YAML/JSON files and client-side apply's 3-way patch.
- `exec_`      — the WebSocket exec session (aiohttp, imported lazily).
- `completion` — bash/zsh completion scripts.

Invariant: startup stays cheap. A verb's handler module is imported when it runs;
only the stdlib, `miniorch.core.settings` and `miniorch.api.resource` are imported on
every path (never `miniorch.api.kinds`, nor `http.client`); yaml and aiohttp are
imported inside the commands that need them. tests/cli/test_startup.py checks it.
"""
