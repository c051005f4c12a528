"""pytest plugin of ha-harness (entry point ``pytest11``)."""
