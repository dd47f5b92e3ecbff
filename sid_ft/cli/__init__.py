"""Console commands: one module per command; scripts/*.py are thin wrappers."""
