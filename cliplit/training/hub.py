"""Offline means offline for training: `HF_HUB_OFFLINE` is honoured, and an unreachable Hub is found out
in seconds (one connection attempt) instead of after the Hub client's retries.

`prepare_hub_access(specs)` runs before anything is loaded: it switches the Hub client to offline mode
when `HF_HUB_OFFLINE` is set or the Hub cannot be reached, and then refuses at once, naming the flag,
any Hub id that is not in the Hugging Face cache.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

from ..errors import CLIPLITError, display_name

OFFLINE_ENV_VAR = "HF_HUB_OFFLINE"
ENDPOINT_ENV_VAR = "HF_ENDPOINT"
DEFAULT_ENDPOINT = "https://huggingface.co"
PROBE_TIMEOUT_S = 3.0
TRUE_VALUES = ("1", "true", "yes", "on")


def offline_requested() -> bool:
    return os.environ.get(OFFLINE_ENV_VAR, "").strip().lower() in TRUE_VALUES


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether one TCP connection to the Hub endpoint (`HF_ENDPOINT`) opens within `timeout` seconds."""
    endpoint = urlparse(os.environ.get(ENDPOINT_ENV_VAR) or DEFAULT_ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def go_offline() -> None:
    """Put the Hub client (and transformers, which asks it) in offline mode for the rest of the process."""
    os.environ[OFFLINE_ENV_VAR] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:  # read at import time: set it where it was read
        constants.HF_HUB_OFFLINE = True


def prepare_hub_access(specs: dict[str, tuple[str, str]]) -> str | None:
    """
    `specs`: flag -> (model spec, what to do offline). Specs that are local folders or files need no Hub.
    Returns why the run is offline (None when online); raises `CLIPLITError` naming the flag for a Hub
    id that is not cached while offline.
    """
    hub_ids = {flag: (spec, hint) for flag, (spec, hint) in specs.items()
               if spec and not Path(spec).expanduser().exists()}
    if offline_requested():
        reason = f"{OFFLINE_ENV_VAR} is set"
    elif hub_ids and not hub_reachable():
        reason = "the Hub cannot be reached"
    else:
        return None
    go_offline()
    from huggingface_hub import snapshot_download

    for flag, (spec, hint) in hub_ids.items():
        try:
            snapshot_download(spec, local_files_only=True)
        except Exception:  # noqa: BLE001 - huggingface_hub raises many types for what is not cached
            raise CLIPLITError(f"{flag} {display_name(spec)}: not in the Hugging Face cache and {reason}; {hint}") from None
    return reason


__all__ = ["go_offline", "hub_reachable", "offline_requested", "prepare_hub_access"]
