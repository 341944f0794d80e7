"""Domain services: plain functions taking the session first; they flush, never commit."""
