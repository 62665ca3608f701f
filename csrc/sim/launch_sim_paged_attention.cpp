// The simulator definition of launch_paged_attention (op_kernel/launch.h): the kernel source compiled for the CPU.
#include "../../op_kernel/launch.h"
#include "../../op_kernel/paged_attention/paged_attention.cpp"
#include "launch_sim.h"

void launch_paged_attention(uint32_t block_dim, void*, uint8_t* q, uint8_t* key_cache, uint8_t* value_cache,
                            uint8_t* block_tables, uint8_t* context_lens, uint8_t* cu_seqlens_q, uint8_t* out,
                            uint8_t* lse, uint8_t* workspace, uint8_t* tiling) {
  ascend_sim::run_kernel(ascend_sim::KernelType::kMixAic1To2, block_dim, workspace, [&] {
    paged_attention(q, key_cache, value_cache, block_tables, context_lens, cu_seqlens_q, out, lse, workspace, tiling);
  });
}
