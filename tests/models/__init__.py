"""Tests of models and the store."""
