"""Tests of jobs and the chunk pipeline."""
