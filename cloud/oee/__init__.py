"""OEE and the ISO 22400 KPIs: time model, shift calendars, counters, losses, downtime, roll-ups."""
