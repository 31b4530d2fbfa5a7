"""Assets: the ISA-95 equipment hierarchy (site → area → line → machine)."""
