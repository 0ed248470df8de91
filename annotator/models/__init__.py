"""Models: specs (the chain is data), architectures, crops, running the chain, the store, importing, comparing,
the seed report."""
