"""Benchmarks of the ascend_attn ops against PyTorch baselines run in the same process.

Run ``python -m ascend_attn.bench <name>``; ``python -m ascend_attn.bench --help`` lists them.
"""
