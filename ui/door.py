"""Who may reach the dashboard: it edits the served graph and talks to the providers (on the
operator's API key), so it listens on loopback, or asks for `VOICEGRAPH_TOKEN`, or the operator
said in so many words that the network is trusted (`--insecure-ui`, `VOICEGRAPH_INSECURE_UI=1`).

No NiceGUI here: `voicegraph serve` decides before it imports the dashboard or opens any port.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

INSECURE_ENV = "VOICEGRAPH_INSECURE_UI"


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable only from this machine (`localhost`, 127.0.0.0/8, `::1`).

    An unspecified address (`0.0.0.0`, `::`, empty) is every interface; a host name other than
    `localhost` is not resolved here and counts as not loopback.
    """
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def insecure_from_env(env: Mapping[str, str]) -> bool:
    """`VOICEGRAPH_INSECURE_UI` set to 1 / true / yes."""
    return env.get(INSECURE_ENV, "").strip().lower() in ("1", "true", "yes")


def refusal(host: str, token: bool, insecure: bool) -> str | None:
    """Why the dashboard must not start on `host`, or None when it may: on loopback, with a
    token, or with `insecure` (the operator's explicit choice)."""
    if token or insecure or is_loopback(host):
        return None
    return (f"refusing to serve the dashboard on {host or '0.0.0.0'} without VOICEGRAPH_TOKEN: anyone who "
            "reaches that address could edit the served graph and use the testbench on your providers. "
            "Set VOICEGRAPH_TOKEN, keep the dashboard on loopback (--ui-host 127.0.0.1, the default), "
            f"turn it off (--no-ui), or, on a network you trust, pass --insecure-ui ({INSECURE_ENV}=1)")
