"""Tests of the database and its migrations."""
