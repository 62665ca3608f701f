// One plain C++ launch function per kernel. Definitions, chosen at build time: the simulator
// (csrc/sim/launch_sim.cpp, kernels on CPU threads) or the NPU (CANN 8.x aclrtlaunch_<kernel> / CANN >= 9 <<<>>>).
#pragma once
#include <cstdint>

// How a kernel uses a GM buffer: kInput is only read; kOutput is written; kInOut is read and written (caches, flags
// the host initialised); kScratch is workspace the kernel owns.
enum class BufferRole { kInput, kOutput, kInOut, kScratch };

// Declares the extent and role of a GM buffer passed to the next launch on this thread: the simulator bounds-checks
// every GM access against these, poisons outputs and scratch, and rejects writes to inputs; the NPU definitions
// ignore it.
void launch_note_buffer(const void* base, uint64_t bytes, const char* name, BufferRole role);

// Tensors as in op_kernel/flash_attention/flash_attention.cpp; tiling: a FlashAttentionTiling in device memory.
void launch_flash_attention(uint32_t block_dim, void* stream, uint8_t* q, uint8_t* k, uint8_t* v, uint8_t* cu_seqlens_q,
                            uint8_t* cu_seqlens_k, uint8_t* out, uint8_t* lse, uint8_t* workspace, uint8_t* tiling);

// Tensors as in op_kernel/flash_attention_grad/flash_attention_grad.cpp; tiling: a FlashAttentionGradTiling in device
// memory.
void launch_flash_attention_grad(uint32_t block_dim, void* stream, uint8_t* dout, uint8_t* q, uint8_t* k, uint8_t* v,
                                 uint8_t* out, uint8_t* lse, uint8_t* cu_seqlens_q, uint8_t* cu_seqlens_k, uint8_t* dq,
                                 uint8_t* dk, uint8_t* dv, uint8_t* workspace, uint8_t* tiling);

// Tensors as in op_kernel/paged_attention/paged_attention.cpp; tiling: a PagedAttentionTiling in device memory.
void launch_paged_attention(uint32_t block_dim, void* stream, uint8_t* q, uint8_t* key_cache, uint8_t* value_cache,
                            uint8_t* block_tables, uint8_t* context_lens, uint8_t* cu_seqlens_q, uint8_t* out,
                            uint8_t* lse, uint8_t* workspace, uint8_t* tiling);

// Vector-only kernel (block_dim = AIVs); tensors as in op_kernel/reshape_and_cache/reshape_and_cache.cpp.
void launch_reshape_and_cache(uint32_t block_dim, void* stream, uint8_t* key, uint8_t* value, uint8_t* key_cache,
                              uint8_t* value_cache, uint8_t* slot_mapping, uint8_t* workspace, uint8_t* tiling);
