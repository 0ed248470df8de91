"""annotate: batch annotation of face images with a chain of Keras models, each result kept with its provenance."""
