"""toysup's front ends: the Typer CLI, shared report rendering, and the Textual TUI."""
