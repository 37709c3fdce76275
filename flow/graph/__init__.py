"""Graphs: YAML read with line numbers, validated into a `GraphSpec`, drawn, and instantiated
once per session (`runtime`)."""
