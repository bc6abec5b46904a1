"""The README's who-may-call-what table: every deployed route and the roles that may call it,
read from the functions' own ``Api`` objects (declared ``role=`` or the default rule of
shared/roles.py), so the table cannot drift from what the code enforces.

    python -m devtools.role_table    # print the table (paste between the README's role-table markers)
"""

from __future__ import annotations

import importlib

from shared.http import Api
from shared.topology import topology

BEGIN = "<!-- role-table:begin -->"
END = "<!-- role-table:end -->"


def api_of(capability: str, function: str = "") -> Api:
    """The Api that serves ``function``: its capability's ``api``, unless the capability's handler
    module names another for it (``ENTRY_POINT_APIS``, e.g. fan-out's public webhooks)."""
    module = importlib.import_module(f"functions.{capability}.main")
    api: Api = getattr(module, "ENTRY_POINT_APIS", {}).get(function, module.api)
    return api


def role_rows() -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(function, method, path, roles) of every route of every deployed function."""
    rows: list[tuple[str, str, str, tuple[str, ...]]] = []
    for name, function in sorted(topology().functions.items()):
        if function.trigger == "pubsub":
            topic = f"{function.topic}" if function.topic else "<topic>-dead-letter"
            rows.append((name, "POST", f"/projects/<project>/topics/{topic}", ("push",)))
            rows.append((name, "GET", "/health", ("viewer",)))
            continue
        for method, path, roles in api_of(function.capability, name).role_table():
            rows.append((name, method, path, roles))
    return rows


def markdown() -> str:
    lines = ["| Function | Method | Path | Roles that may call it |", "|---|---|---|---|"]
    for name, method, path, roles in role_rows():
        lines.append(f"| `{name}` | {method} | `{path}` | {' or '.join(roles)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
