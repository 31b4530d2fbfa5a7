"""The forgeline command line and the composition of the whole plant for ``forgeline demo``."""
