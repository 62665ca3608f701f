// Simulator build of the tiling types the kernels embed in their tiling structs: the subset of the Matmul API's
// TCubeTiling fields our host tiling fills (names as in the Ascend C documentation).
#pragma once
#include <cstdint>

struct TCubeTiling {
  int32_t usedCoreNum;
  int32_t M, N, Ka, Kb;
  int32_t singleCoreM, singleCoreN, singleCoreK;
  int32_t baseM, baseN, baseK;
  int32_t depthA1, depthB1;
  int32_t stepM, stepN, stepKa, stepKb;
  int32_t isBias;
  int32_t iterateOrder;
  int32_t dbL0A, dbL0B, dbL0C;
};
