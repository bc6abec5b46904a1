"""Alert fan-out: deliver each alert transition to Slack, PagerDuty, email and the log, exactly
once per transition and channel, with Alertmanager-style grouping, silences, inhibition and
flapping detection. See README.md in this folder."""
