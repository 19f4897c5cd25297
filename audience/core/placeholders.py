"""Known placeholder secrets: a service refuses to start with one.

``.env.example`` ships ``change-me`` for every secret, and Superset documents default secret
keys; a deployment that kept one runs with forgeable session cookies or a guessable
password. Every service checks the secrets it reads and stops with one line naming the
variable to set. (deploy/superset/superset_config.py carries the same list: it runs in
Superset's image, without this package.)
"""

from __future__ import annotations

from audience.core.errors import ConfigError

PLACEHOLDERS = frozenset({
    "", "change-me", "changeme", "change_me", "password", "secret", "admin", "superset",
    # Superset's documented and former default SECRET_KEYs
    "CHANGE_ME_TO_A_COMPLEX_RANDOM_SECRET", "YOUR_OWN_RANDOM_GENERATED_SECRET_KEY",
    "thisISaSECRET_1234", "\\2\\1thisismyscretkey\\1\\2\\e\\y\\y\\h",
})


def is_placeholder(value: str | None) -> bool:
    return value is None or value.strip() in PLACEHOLDERS or value.strip().lower() in PLACEHOLDERS


def refuse_placeholder(value: str | None, variable: str, how: str = "openssl rand -hex 24"
                       ) -> None:
    """ConfigError (exit 2) naming ``variable`` if ``value`` is a known placeholder; the
    value itself is never echoed."""
    if is_placeholder(value):
        raise ConfigError(f"refusing to start: {variable} is empty or a placeholder "
                          f"(e.g. change-me from .env.example): set it to a random value "
                          f"(`{how}`)")
