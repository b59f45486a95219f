"""Development and test infrastructure. Not part of the reference app: do not copy it with it."""
