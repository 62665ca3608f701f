// The simulator definition of launch_reshape_and_cache (op_kernel/launch.h): the kernel source compiled for the CPU.
#include "../../op_kernel/launch.h"
#include "../../op_kernel/reshape_and_cache/reshape_and_cache.cpp"
#include "launch_sim.h"

void launch_reshape_and_cache(uint32_t block_dim, void*, uint8_t* key, uint8_t* value, uint8_t* key_cache,
                              uint8_t* value_cache, uint8_t* slot_mapping, uint8_t* workspace, uint8_t* tiling) {
  ascend_sim::run_kernel(ascend_sim::KernelType::kAivOnly, block_dim, workspace, [&] {
    reshape_and_cache(key, value, key_cache, value_cache, slot_mapping, workspace, tiling);
  });
}
