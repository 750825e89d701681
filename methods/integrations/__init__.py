"""Adapters for training stacks (`transformers`, `lightning`): each imported only on demand.

`methods` itself never imports these modules, so it stays free of the stacks' dependencies.
"""
