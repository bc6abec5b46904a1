"""Dead letters: every message Pub/Sub gave up on, stored with its reason, alerted, re-drivable."""
