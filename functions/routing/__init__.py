"""Persona routing: picks a persona for a resonance key or a message (the `route` function)."""
