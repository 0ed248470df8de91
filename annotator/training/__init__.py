"""Training: the seed recipe, data sets, augmentation, the identity model, DEMO models and what
``annotate train`` does."""
