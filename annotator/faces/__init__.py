"""Faces: how a job finds them (modes), detection, alignment onto the canonical face, lookup of recorded faces,
the face sheet."""
