// NPU definition of op_kernel/launch.h for CANN >= 9: compiled with the kernels by
// `bisheng -x asc --npu-arch=dav-2201` (scripts/build.sh), launching them with <<<block_dim, nullptr, stream>>>.
#include "flash_attention/flash_attention.cpp"
#include "flash_attention_grad/flash_attention_grad.cpp"
#include "launch.h"
#include "paged_attention/paged_attention.cpp"
#include "reshape_and_cache/reshape_and_cache.cpp"

void launch_note_buffer(const void*, uint64_t, const char*, BufferRole) {}  // the device checks its own bounds

void launch_flash_attention(uint32_t block_dim, void* stream, uint8_t* q, uint8_t* k, uint8_t* v, uint8_t* cu_seqlens_q,
                            uint8_t* cu_seqlens_k, uint8_t* out, uint8_t* lse, uint8_t* workspace, uint8_t* tiling) {
  flash_attention<<<block_dim, nullptr, stream>>>(q, k, v, cu_seqlens_q, cu_seqlens_k, out, lse, workspace, tiling);
}

void launch_flash_attention_grad(uint32_t block_dim, void* stream, uint8_t* dout, uint8_t* q, uint8_t* k, uint8_t* v,
                                 uint8_t* out, uint8_t* lse, uint8_t* cu_seqlens_q, uint8_t* cu_seqlens_k, uint8_t* dq,
                                 uint8_t* dk, uint8_t* dv, uint8_t* workspace, uint8_t* tiling) {
  flash_attention_grad<<<block_dim, nullptr, stream>>>(dout, q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k, dq, dk, dv,
                                                       workspace, tiling);
}

void launch_paged_attention(uint32_t block_dim, void* stream, uint8_t* q, uint8_t* key_cache, uint8_t* value_cache,
                            uint8_t* block_tables, uint8_t* context_lens, uint8_t* cu_seqlens_q, uint8_t* out,
                            uint8_t* lse, uint8_t* workspace, uint8_t* tiling) {
  paged_attention<<<block_dim, nullptr, stream>>>(q, key_cache, value_cache, block_tables, context_lens, cu_seqlens_q,
                                                  out, lse, workspace, tiling);
}

void launch_reshape_and_cache(uint32_t block_dim, void* stream, uint8_t* key, uint8_t* value, uint8_t* key_cache,
                              uint8_t* value_cache, uint8_t* slot_mapping, uint8_t* workspace, uint8_t* tiling) {
  reshape_and_cache<<<block_dim, nullptr, stream>>>(key, value, key_cache, value_cache, slot_mapping, workspace,
                                                    tiling);
}
