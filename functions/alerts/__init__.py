"""Alert evaluation: rules with state, label-free anomaly detection, tuning with backtests.

See README.md in this folder. Modules: ``rules`` (the YAML format, validated), ``source`` (where
values come from: the metric query API or a replayed CSV), ``detector`` (the streaming anomaly
detector), ``state`` (the alert state machine and its stores), ``engine`` (one evaluation cycle),
``backtest`` and ``tune`` (CLIs), ``main`` (the HTTP and Pub/Sub handlers).
"""
