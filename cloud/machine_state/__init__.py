"""Machine state: canonical state intervals derived from each machine's state tag."""
