"""tinyviz: train, compare and explain Tiny ImageNet classifiers."""

__version__ = "0.1.0"
