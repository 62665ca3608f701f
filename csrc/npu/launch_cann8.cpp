// NPU definition of op_kernel/launch.h for CANN 8.x: the aclrtlaunch_<kernel> launchers that ascendc_library
// generates (op_kernel/CMakeLists.txt). Built only by scripts/build.sh on a machine with CANN.
#include <acl/acl.h>
#include <c10/util/Exception.h>

#include "aclrtlaunch_flash_attention.h"
#include "aclrtlaunch_flash_attention_grad.h"
#include "aclrtlaunch_paged_attention.h"
#include "aclrtlaunch_reshape_and_cache.h"
#include "launch.h"

namespace {
void check_launch(uint32_t status, const char* kernel) {
  TORCH_CHECK(status == 0, "launching the Ascend C kernel ", kernel, " failed with ACL error ", status);
}
}  // namespace

void launch_note_buffer(const void*, uint64_t, const char*, BufferRole) {}  // the device checks its own bounds

void launch_flash_attention(uint32_t block_dim, void* stream, uint8_t* q, uint8_t* k, uint8_t* v, uint8_t* cu_seqlens_q,
                            uint8_t* cu_seqlens_k, uint8_t* out, uint8_t* lse, uint8_t* workspace, uint8_t* tiling) {
  check_launch(
      aclrtlaunch_flash_attention(block_dim, stream, q, k, v, cu_seqlens_q, cu_seqlens_k, out, lse, workspace, tiling),
      "flash_attention");
}

void launch_flash_attention_grad(uint32_t block_dim, void* stream, uint8_t* dout, uint8_t* q, uint8_t* k, uint8_t* v,
                                 uint8_t* out, uint8_t* lse, uint8_t* cu_seqlens_q, uint8_t* cu_seqlens_k, uint8_t* dq,
                                 uint8_t* dk, uint8_t* dv, uint8_t* workspace, uint8_t* tiling) {
  check_launch(aclrtlaunch_flash_attention_grad(block_dim, stream, dout, q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k,
                                                dq, dk, dv, workspace, tiling),
               "flash_attention_grad");
}

void launch_paged_attention(uint32_t block_dim, void* stream, uint8_t* q, uint8_t* key_cache, uint8_t* value_cache,
                            uint8_t* block_tables, uint8_t* context_lens, uint8_t* cu_seqlens_q, uint8_t* out,
                            uint8_t* lse, uint8_t* workspace, uint8_t* tiling) {
  check_launch(aclrtlaunch_paged_attention(block_dim, stream, q, key_cache, value_cache, block_tables, context_lens,
                                           cu_seqlens_q, out, lse, workspace, tiling),
               "paged_attention");
}

void launch_reshape_and_cache(uint32_t block_dim, void* stream, uint8_t* key, uint8_t* value, uint8_t* key_cache,
                              uint8_t* value_cache, uint8_t* slot_mapping, uint8_t* workspace, uint8_t* tiling) {
  check_launch(aclrtlaunch_reshape_and_cache(block_dim, stream, key, value, key_cache, value_cache, slot_mapping,
                                             workspace, tiling),
               "reshape_and_cache");
}
