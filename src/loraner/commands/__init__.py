"""Optional CLI command groups, registered by ``loraner.cli``."""
