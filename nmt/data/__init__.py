"""From a raw parallel corpus to model input (see docs/data.md).

``readers`` (TSV / aligned text) -> ``normalize`` -> ``clean`` -> ``split`` -> ``vocab``
(sentencepiece) -> ``encoded`` (token ids on disk) -> ``batching`` (token-budget batches);
``prepare`` runs the steps (``pipeline``) with a cache (``cache``) and is ``nmt prepare``.
"""
