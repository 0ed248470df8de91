"""Tests of face detection and alignment."""
