// The simulator definition of launch_flash_attention_grad (op_kernel/launch.h): the kernel source compiled for the CPU.
#include "../../op_kernel/flash_attention_grad/flash_attention_grad.cpp"
#include "../../op_kernel/launch.h"
#include "launch_sim.h"

void launch_flash_attention_grad(uint32_t block_dim, void*, uint8_t* dout, uint8_t* q, uint8_t* k, uint8_t* v,
                                 uint8_t* out, uint8_t* lse, uint8_t* cu_seqlens_q, uint8_t* cu_seqlens_k, uint8_t* dq,
                                 uint8_t* dk, uint8_t* dv, uint8_t* workspace, uint8_t* tiling) {
  ascend_sim::run_kernel(ascend_sim::KernelType::kMixAic1To2, block_dim, workspace, [&] {
    flash_attention_grad(dout, q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k, dq, dk, dv, workspace, tiling);
  });
}
