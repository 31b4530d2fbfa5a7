"""Notification channels: one small class per way of telling people, registered by name."""
