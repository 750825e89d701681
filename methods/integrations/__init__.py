"""Adapters to third-party libraries, each in one file; a library is imported only when a method needs it."""
