"""The master and agent loops: short, because the decisions live in the core."""
