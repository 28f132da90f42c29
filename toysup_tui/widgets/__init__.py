"""Widgets of the toysup TUI that more than one screen could use."""
