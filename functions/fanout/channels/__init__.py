"""Notification channels, one per file, all behind ``channels.base.Channel``."""
