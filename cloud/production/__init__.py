"""Production model (ISA-95): products, BOMs, routings, work orders and their operations."""
