"""Continuous-batching engine on the paged KV cache.

A shared system prompt is prefilled once (flash_attn_varlen_func) and every request forks it (prefix sharing).
Admitted requests prefill their own prompt as multi-token queries over the shared prefix (paged_attention with
cu_seqlens_q); running requests then decode one token per step (paged_attention). New K/V always go through
reshape_and_cache; finished requests free their blocks while the others continue. With ``sim_cores`` set, the three
attention calls run the Ascend C kernels in the simulator instead of the native ops.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ascend_attn import sim
from ascend_attn.demo.model import LlamaModel
from ascend_attn.flash_attn_interface import flash_attn_varlen_func
from ascend_attn.kv_cache import PagedKVCache
from ascend_attn.ops import paged_attention

SYSTEM = "system"


@dataclass
class Request:
    rid: int
    prompt: list[int]  # tokens after the shared system prompt (at least one)
    max_new_tokens: int
    output: list[int] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return len(self.output) >= self.max_new_tokens


@dataclass
class Stats:
    prefill_tokens: int = 0
    prefill_seconds: float = 0.0
    decode_tokens: int = 0
    decode_seconds: float = 0.0
    peak_blocks: int = 0
    steps: int = 0


class PagedEngine:
    def __init__(self, model: LlamaModel, num_blocks: int, block_size: int, max_batch: int, sim_cores: int = 0):
        c = model.config
        self.sim_cores = sim_cores  # > 0: attention through the Ascend C kernels in the simulator, on this many cores
        device = model.w["model.embed_tokens.weight"].device
        self.model, self.max_batch, self.device = model, max_batch, device
        self.cache = PagedKVCache(
            c.num_hidden_layers, num_blocks, block_size, c.num_key_value_heads, c.head_dim, dtype=model.dtype,
            device=device,
        )  # fmt: skip
        self.stats = Stats()

    def _forward(self, tokens: list[int], positions: Tensor, slots: Tensor, attend: Callable) -> Tensor:
        """Runs the model on packed tokens; each layer stores its new K/V at `slots`, then attends."""

        def attention(layer, q, k, v):
            if self.sim_cores:
                kc, vc = self.cache.key_caches[layer], self.cache.value_caches[layer]
                sim.reshape_and_cache(k, v, kc, vc, slots, num_cores=self.sim_cores)
            else:
                self.cache.write(layer, slots, k, v)
            return attend(layer, q, k, v)

        ids = torch.tensor(tokens, device=self.device)
        logits = self.model.forward(ids, positions, attention)
        self.stats.peak_blocks = max(self.stats.peak_blocks, self.cache.blocks_in_use)
        return logits

    def prefill_system(self, tokens: list[int]) -> None:
        start = time.perf_counter()
        self.cache.add_sequence(SYSTEM)
        slots = self.cache.append(SYSTEM, len(tokens))
        n = len(tokens)
        cu = torch.tensor([0, n], dtype=torch.int32, device=self.device)

        def attend(layer, q, k, v):
            if self.sim_cores:
                return sim.flash_attn_varlen_func(q, k, v, cu, cu, n, n, causal=True, num_cores=self.sim_cores).out
            return flash_attn_varlen_func(q, k, v, cu, cu, n, n, causal=True)

        self._forward(tokens, torch.arange(n, device=self.device), slots, attend)
        self.stats.prefill_tokens += n
        self.stats.prefill_seconds += time.perf_counter() - start

    def _paged_step(self, reqs: list[Request], new_tokens: list[list[int]], first_position: list[int]) -> list[int]:
        """Appends each request's new tokens, attends over its whole context, returns each one's greedy next token."""
        slots = torch.cat([self.cache.append(r.rid, len(t)) for r, t in zip(reqs, new_tokens, strict=True)])
        batch = self.cache.batch([r.rid for r in reqs], [len(t) for t in new_tokens])
        positions = torch.cat(
            [torch.arange(p, p + len(t), device=self.device) for p, t in zip(first_position, new_tokens, strict=True)]
        )

        def attend(layer, q, k, v):
            kc, vc = self.cache.key_caches[layer], self.cache.value_caches[layer]
            if self.sim_cores:
                return sim.paged_attention(
                    q, kc, vc, batch.block_tables, batch.context_lens, batch.cu_seqlens_q, num_cores=self.sim_cores
                ).out
            return paged_attention(q, kc, vc, batch.block_tables, batch.context_lens, cu_seqlens_q=batch.cu_seqlens_q)

        logits = self._forward([tok for t in new_tokens for tok in t], positions, slots, attend)
        last = batch.cu_seqlens_q[1:].long() - 1
        return logits[last].argmax(-1).tolist()

    def admit(self, reqs: list[Request]) -> None:
        """Forks the system prompt for each request and prefills its prompt over the shared prefix."""
        start = time.perf_counter()
        shared = self.cache.seq_len(SYSTEM)
        for r in reqs:
            self.cache.fork(SYSTEM, r.rid)
        first = self._paged_step(reqs, [r.prompt for r in reqs], [shared] * len(reqs))
        for r, tok in zip(reqs, first, strict=True):
            r.output.append(tok)
        self.stats.prefill_tokens += sum(len(r.prompt) for r in reqs)
        self.stats.prefill_seconds += time.perf_counter() - start

    def decode(self, reqs: list[Request]) -> None:
        start = time.perf_counter()
        positions = [self.cache.seq_len(r.rid) for r in reqs]
        nxt = self._paged_step(reqs, [[r.output[-1]] for r in reqs], positions)
        for r, tok in zip(reqs, nxt, strict=True):
            r.output.append(tok)
        self.stats.decode_tokens += len(reqs)
        self.stats.decode_seconds += time.perf_counter() - start

    def blocks_left(self, req: Request, admitted: bool) -> int:
        """Upper bound on the new blocks a request may still take: its final length, plus one copy-on-write block.

        A request not yet admitted will fork the system prompt, so it already shares all of that prompt's blocks.
        """
        total = self.cache.seq_len(SYSTEM) + len(req.prompt) + req.max_new_tokens
        held = len(self.cache.block_list(req.rid if admitted else SYSTEM))
        return -(-total // self.cache.block_size) + 1 - held

    def run(self, system: list[int], requests: list[Request], progress: Callable[[str], None]) -> None:
        """Serves all requests with continuous batching: admit while slots and blocks allow, decode, retire.

        A request is admitted only if the free blocks cover what every running request may still need plus its own
        worst case, so an admitted request always finishes.
        """
        self.prefill_system(system)
        queue, running = list(requests), []
        while queue or running:
            admitted = []
            promised = sum(self.blocks_left(r, True) for r in running)
            while queue and len(running) + len(admitted) < self.max_batch:
                need = self.blocks_left(queue[0], False)
                if promised + need > self.cache.num_free_blocks:
                    break
                promised += need
                admitted.append(queue.pop(0))
            if not admitted and not running:
                raise RuntimeError(f"request {queue[0].rid} needs more KV blocks than the cache has; use more blocks")
            if admitted:
                self.admit(admitted)
                running += admitted
            active = [r for r in running if not r.done]
            if active:
                self.decode(active)
            for r in [r for r in running if r.done]:
                self.cache.free(r.rid)
                running.remove(r)
            self.stats.steps += 1
            if self.stats.steps % 8 == 0 or not (queue or running):
                done = len(requests) - len(queue) - len(running)
                progress(
                    f"  step {self.stats.steps}: running {len(running)}, waiting {len(queue)}, done {done}, "
                    f"blocks in use {self.cache.blocks_in_use}/{self.cache.num_blocks}"
                )
        self.cache.free(SYSTEM)
