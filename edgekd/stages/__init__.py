"""The stages a command runs: distil, export, evaluate, tune (and the size listing of student presets)."""
