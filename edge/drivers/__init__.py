"""Field-bus drivers behind one interface, registered explicitly by protocol name."""
