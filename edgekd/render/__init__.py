"""How results reach people and CI systems: rich tables, JUnit XML, Markdown and plots."""
