"""Overlap analysis."""
