"""Notifications: typed events, sent off the hot path to webhooks, Slack and email, once per
deployment (docs/notifications.md)."""
