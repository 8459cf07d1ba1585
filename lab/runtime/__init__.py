"""The only layer that touches Mininet, namespaces and processes."""
