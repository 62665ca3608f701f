"""PagedKVCache: unit tests, and a hypothesis state machine checking the allocator's invariants and contents."""

from __future__ import annotations

import pytest
import torch
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from reference import gather_pages

import ascend_attn
from ascend_attn import OutOfBlocksError, PagedKVCache


def small_cache(num_blocks=6, block_size=4):
    return PagedKVCache(1, num_blocks, block_size, num_kv_heads=1, head_dim=2, dtype=torch.float32)


def test_append_allocates_blocks_and_slots():
    cache = small_cache()
    cache.add_sequence("a")
    assert cache.append("a", 6).tolist() == [0, 1, 2, 3, 4, 5]
    assert cache.append("a", 3).tolist() == [6, 7, 8]
    assert cache.block_list("a") == [0, 1, 2] and cache.seq_len("a") == 9 and cache.num_free_blocks == 3
    assert cache.append("a", 0).tolist() == []
    assert cache.append("a", 2, dtype=torch.int64).dtype == torch.int64


def test_fork_shares_full_blocks_and_copies_partial_last_block():
    cache = small_cache()
    cache.add_sequence("p")
    slots = cache.append("p", 6)
    cache.write(0, slots, torch.arange(12.0).reshape(6, 1, 2), -torch.arange(12.0).reshape(6, 1, 2))
    cache.fork("p", "c")
    assert cache.ref_count(0) == 2 and cache.ref_count(1) == 2
    assert cache.blocks_needed("c", 1) == 1  # the copy of the shared partial block
    assert cache.append("c", 1).tolist() == [10]  # block 2 holds the copy; offset 2
    assert cache.block_list("c") == [0, 2] and cache.ref_count(1) == 1
    kc = cache.key_caches[0]
    assert torch.equal(kc[2, :2], kc[1, :2])  # the copied rows
    assert cache.append("p", 1).tolist() == [6]  # the parent keeps writing its own block 1


def test_full_shared_block_is_not_copied():
    cache = small_cache()
    cache.add_sequence("p")
    cache.append("p", 4)
    cache.fork("p", "c")
    assert cache.blocks_needed("c", 1) == 1
    cache.append("c", 1)
    assert cache.block_list("c")[0] == 0 and cache.ref_count(0) == 2


def test_out_of_blocks_leaves_state_unchanged():
    cache = small_cache(num_blocks=3)
    cache.add_sequence("a")
    cache.append("a", 10)
    cache.fork("a", "b")
    before = (
        cache.block_list("a"),
        cache.block_list("b"),
        cache.num_free_blocks,
        [cache.ref_count(i) for i in range(3)],
    )
    with pytest.raises(OutOfBlocksError, match="needs 2 free blocks, only 0 of 3 are free"):
        cache.append("b", 3)
    after = (
        cache.block_list("a"),
        cache.block_list("b"),
        cache.num_free_blocks,
        [cache.ref_count(i) for i in range(3)],
    )
    assert before == after and cache.seq_len("b") == 10 and not cache.can_append("b", 1)


def test_free_returns_blocks_only_when_unshared():
    cache = small_cache()
    cache.add_sequence("a")
    cache.append("a", 5)
    cache.fork("a", "b")
    cache.free("a")
    assert cache.num_free_blocks == 4 and cache.block_list("b") == [0, 1]
    cache.free("b")
    assert cache.num_free_blocks == 6 and cache.blocks_in_use == 0


def test_batch_tensors():
    cache = small_cache()
    for name, n in (("x", 5), ("y", 1)):
        cache.add_sequence(name)
        cache.append(name, n)
    batch = cache.batch(["y", "x"], num_new_tokens=[1, 3])
    assert batch.block_tables.tolist() == [[2, -1], [0, 1]]
    assert batch.context_lens.tolist() == [1, 5] and batch.cu_seqlens_q.tolist() == [0, 1, 4]
    assert all(t.dtype == torch.int32 for t in batch)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda c: c.add_sequence("a"), KeyError, "already exists"),
        (lambda c: c.append("zz", 1), KeyError, "unknown sequence 'zz'"),
        (lambda c: c.append("a", -1), ValueError, "num_tokens must be >= 0"),
        (lambda c: c.fork("a", "a"), KeyError, "already exists"),
        (lambda c: c.free("zz"), KeyError, "unknown sequence"),
        (lambda c: c.batch(["a"], num_new_tokens=[1, 2]), ValueError, "num_new_tokens has 2 entries for 1"),
    ],
)
def test_rejections(call, error, match):
    cache = small_cache()
    cache.add_sequence("a")
    with pytest.raises(error, match=match):
        call(cache)


def test_constructor_rejects_empty_cache():
    with pytest.raises(ValueError, match="num_blocks must be >= 1"):
        PagedKVCache(1, 0, 16, 1, 8)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(head_dim_v=0), ValueError, "head_dim_v must be >= 1, got 0"),
        (dict(num_kv_heads=0), ValueError, "num_kv_heads must be >= 1, got 0"),
        (dict(head_dim=0), ValueError, "head_dim must be >= 1, got 0"),
        (dict(block_size=2.5), TypeError, "block_size must be an integer, got float 2.5"),
        (dict(num_layers=True), TypeError, "num_layers must be an integer, got True"),
        (dict(dtype=torch.int32), TypeError, "dtype must be torch.float32, torch.float16 or torch.bfloat16"),
        (dict(num_blocks=2**31), ValueError, r"num_blocks must be at most 2\^31 - 1"),
    ],
)
def test_constructor_rejects(kwargs, error, match):
    args = dict(num_layers=1, num_blocks=4, block_size=4, num_kv_heads=1, head_dim=8) | kwargs
    with pytest.raises(error, match=match):
        PagedKVCache(**args)


def _state(cache, seq="a"):
    return cache.block_list(seq), cache.seq_len(seq), cache.num_free_blocks, [cache.ref_count(b) for b in range(6)]


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda c: c.append("a", 2.5), TypeError, "num_tokens must be an integer, got float 2.5"),
        (lambda c: c.append("a", "3"), TypeError, "num_tokens must be an integer"),
        (lambda c: c.append("a", 3, dtype="int32"), TypeError, "dtype must be torch.int32 or torch.int64"),
        (lambda c: c.append("a", 3, dtype=torch.float32), TypeError, "dtype must be torch.int32 or torch.int64"),
        (lambda c: c.blocks_needed("a", 1.5), TypeError, "num_tokens must be an integer"),
        (lambda c: c.batch(["a"], num_new_tokens=[1.5]), TypeError, r"num_new_tokens\[0\] must be an integer"),
        (lambda c: c.batch(["a"], num_new_tokens=[-1]), ValueError, r"num_new_tokens\[0\] must be >= 0"),
    ],
)
def test_bad_arguments_leave_the_cache_unchanged(call, error, match):
    cache = small_cache()
    cache.add_sequence("a")
    cache.append("a", 5)
    cache.fork("a", "b")  # "a" now has a shared partial block: an append would copy it first
    before = _state(cache)
    with pytest.raises(error, match=match):
        call(cache)
    assert _state(cache) == before


def test_append_accepts_integer_like_counts():
    cache = small_cache()
    cache.add_sequence("a")
    assert cache.append("a", torch.tensor(3)).tolist() == [0, 1, 2]


def test_int32_slots_of_a_huge_cache_are_refused():
    cache = PagedKVCache(1, 2**20, 2**12, 1, 1, device="meta")  # 2^32 slots: int32 slot_mapping would wrap
    cache.add_sequence("a")
    with pytest.raises(ValueError, match="dtype=torch.int32 cannot hold the slots of a cache of 4294967296 slots"):
        cache.append("a", 1)
    assert cache.append("a", 1, dtype=torch.int64).dtype == torch.int64


@pytest.mark.parametrize("layer, error", [(-1, IndexError), (2, IndexError), (0.0, TypeError)])
def test_write_rejects_a_layer_outside_the_cache(layer, error):
    cache = PagedKVCache(2, 4, 4, 1, 2, dtype=torch.float32)
    cache.add_sequence("a")
    slots = cache.append("a", 1)
    before = [c.clone() for c in cache.key_caches]
    with pytest.raises(error, match="layer must be"):
        cache.write(layer, slots, torch.ones(1, 1, 2), torch.ones(1, 1, 2))
    assert all(torch.equal(a, b) for a, b in zip(cache.key_caches, before, strict=True))


def test_serves_paged_attention():
    """Tokens written through the cache are what paged_attention reads."""
    cache = PagedKVCache(2, 16, 4, num_kv_heads=2, head_dim=8, dtype=torch.float32)
    ks, vs = {}, {}
    for name, n in (("a", 7), ("b", 13)):
        cache.add_sequence(name)
        slots = cache.append(name, n)
        ks[name], vs[name] = torch.randn(n, 2, 8), torch.randn(n, 2, 8)
        cache.write(1, slots, ks[name], vs[name])
    batch = cache.batch(["a", "b"])
    q = torch.randn(2, 4, 8)
    out = ascend_attn.paged_attention(q, cache.key_caches[1], cache.value_caches[1], *batch[:2])
    for i, name in enumerate(("a", "b")):
        ref = ascend_attn.flash_attention(q[None, i : i + 1], ks[name][None], vs[name][None], causal=True)[0]
        torch.testing.assert_close(out[i], ref[0, 0], rtol=0, atol=1e-6)


class CacheMachine(RuleBasedStateMachine):
    """Random add/append/fork/free. After each step: block accounting adds up, blocks are shared only between
    relatives and only where both still hold the same tokens, and every sequence reads back exactly its tokens."""

    def __init__(self):
        super().__init__()
        self.cache = PagedKVCache(1, 12, 3, num_kv_heads=1, head_dim=1, dtype=torch.float32, fill_value=float("nan"))
        self.tokens: dict[int, list[float]] = {}  # what each sequence should read back
        self.family: dict[int, int] = {}  # sequence -> root of its fork tree
        self.next_id = 0
        self.next_value = 0.0

    @rule()
    def add(self):
        sid = self.next_id
        self.next_id += 1
        self.cache.add_sequence(sid)
        self.tokens[sid], self.family[sid] = [], sid

    @precondition(lambda self: self.tokens)
    @rule(data=st.data(), n=st.integers(0, 7))
    def append(self, data, n):
        sid = data.draw(st.sampled_from(sorted(self.tokens)))
        if not self.cache.can_append(sid, n):
            free, lists = self.cache.num_free_blocks, {s: self.cache.block_list(s) for s in self.tokens}
            with pytest.raises(OutOfBlocksError):
                self.cache.append(sid, n)
            assert self.cache.num_free_blocks == free and lists == {s: self.cache.block_list(s) for s in self.tokens}
            return
        slots = self.cache.append(sid, n)
        values = [self.next_value + i for i in range(n)]
        self.next_value += n
        self.cache.key_caches[0].view(-1)[slots.long()] = torch.tensor(values)
        self.tokens[sid] += values

    @precondition(lambda self: self.tokens)
    @rule(data=st.data())
    def fork(self, data):
        parent = data.draw(st.sampled_from(sorted(self.tokens)))
        child = self.next_id
        self.next_id += 1
        self.cache.fork(parent, child)
        self.tokens[child], self.family[child] = list(self.tokens[parent]), self.family[parent]

    @precondition(lambda self: self.tokens)
    @rule(data=st.data())
    def free(self, data):
        sid = data.draw(st.sampled_from(sorted(self.tokens)))
        self.cache.free(sid)
        del self.tokens[sid]

    @invariant()
    def accounting(self):
        holders: dict[int, list[int]] = {}
        for sid in self.tokens:
            for block in self.cache.block_list(sid):
                holders.setdefault(block, []).append(sid)
        assert self.cache.num_free_blocks + len(holders) == self.cache.num_blocks  # no block lost
        for block in range(self.cache.num_blocks):
            assert self.cache.ref_count(block) == len(holders.get(block, []))
        for block, sids in holders.items():
            assert len({self.family[s] for s in sids}) == 1, f"block {block} shared by unrelated sequences {sids}"

    @invariant()
    def contents(self):
        for sid, expected in self.tokens.items():
            table = torch.tensor(self.cache.block_list(sid) or [0])
            got = gather_pages(self.cache.key_caches[0], table, len(expected)).flatten().tolist()
            assert got == expected, f"sequence {sid} reads {got}, wrote {expected}"


TestCacheMachine = CacheMachine.TestCase
TestCacheMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
