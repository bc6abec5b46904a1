"""Customer health: the customer registry and keys, daily 0-100 scores, success actions, persona
satisfaction and persona-mix drift (see README.md)."""
