"""Firestore access that runs unchanged on the emulator (FIRESTORE_EMULATOR_HOST) and in the cloud.

The client is created on first use and kept for the life of the instance, so a cold start that
never touches Firestore never imports it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from shared.settings import get_settings

if TYPE_CHECKING:
    from google.cloud import firestore


@lru_cache(maxsize=1)
def get_firestore() -> firestore.Client:
    from google.cloud import firestore

    return firestore.Client(project=get_settings().project)


def reset_clients() -> None:
    """Forget cached clients (tests switch emulators and projects between sessions)."""
    get_firestore.cache_clear()
