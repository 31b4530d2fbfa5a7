"""Alarm notifications: channels, routing and delivery with retries."""
