"""ION Ops common package: settings, clock, logging, HTTP errors, Firestore/Pub/Sub/Redis access.

Only what two or more functions need lives here. Heavy clients are imported lazily so that a
function's cold start pays only for what it uses.
"""
