"""Tools: applications of the library that are not part of it."""
