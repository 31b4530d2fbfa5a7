"""``python -m forgeline`` runs the CLI."""

from forgeline.cli import main

main()
