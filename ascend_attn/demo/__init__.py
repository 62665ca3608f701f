"""End-to-end serving demo: ``python -m ascend_attn.demo`` (see ascend_attn/demo/__main__.py)."""
