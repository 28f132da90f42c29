"""The screens of the toysup TUI, one module each."""
