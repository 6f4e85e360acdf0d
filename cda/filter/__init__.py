"""filter stage."""
