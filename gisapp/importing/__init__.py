"""Importing an office's files."""
