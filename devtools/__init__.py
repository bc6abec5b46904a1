"""Local tooling: the emulators, Redis and functions of `make run`, shared with the test fixtures.
Never deployed."""
