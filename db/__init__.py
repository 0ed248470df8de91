"""Database layer: typed SQLAlchemy models, engine and sessions (no Celery, no TensorFlow)."""
