"""Adapters to third-party libraries and training stacks (`pytorch_optimizer`, `transformers`, `lightning`),
each in one file; a library is imported only when a method or a user needs it (never by `import methods`)."""
