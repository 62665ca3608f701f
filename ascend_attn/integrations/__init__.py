"""Integrations with other libraries. Each submodule imports its library lazily, so ``import ascend_attn`` never
needs them.

- :mod:`ascend_attn.integrations.transformers`: ``register()`` adds ``attn_implementation="ascend_attn"`` to Hugging
  Face transformers (``pip install ascend_attn[transformers]``).
"""
