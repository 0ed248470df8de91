"""Jobs: create them, annotate their chunks (the pipeline), run or queue them, their status, staleness and
operations."""
