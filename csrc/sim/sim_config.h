// Hardware limits the simulator enforces and the Atlas 910B2 figures its time model uses, in one place.
// The model is an estimate for comparing kernel designs, never a measured NPU time.
#pragma once
#include <cstdint>

namespace ascend_sim {

// Per-core memories of Atlas A2 (dav-2201), from the Ascend C programming guide's "NPU架构版本2201" hardware table
// (asc-devkit docs, 硬件实现/架构规格): UB 192 KB per AIV, L1 512 KB, L0A/L0B 64 KB, L0C 128 KB per AIC.
constexpr uint32_t kUbBytes = 192 * 1024;
constexpr uint32_t kL1Bytes = 512 * 1024;
constexpr uint32_t kL0aBytes = 64 * 1024;
constexpr uint32_t kL0bBytes = 64 * 1024;
constexpr uint32_t kL0cBytes = 128 * 1024;
// Mix kernels lose 256 B of UB and L1 to the runtime, and the Ascend C framework reserves 8 KB of UB unless built
// with --cce-disable-asc-reserved-ubuf (same guide, 硬件约束). Kernels get what is left.
constexpr uint32_t kUbUsableBytes = kUbBytes - 8 * 1024 - 256;
constexpr uint32_t kL1UsableBytes = kL1Bytes - 256;

constexpr uint32_t kBlockBytes = 32;           // one DataBlock; local operands and copy lengths are multiples of it
constexpr uint32_t kRepeatBytes = 256;         // one vector repeat = 8 DataBlocks
constexpr uint32_t kMaxRepeat = 255;           // repeatTime is a uint8_t on the hardware
constexpr uint32_t kMaxCopyBlockCount = 4095;  // DataCopyParams::blockCount
// CrossCoreSetFlag/WaitFlag (核间同步, CrossCoreSetFlag(ISASI).md): modes 0, 1, 2 use flag ids 0..15, each a
// counter of 0..15; SyncAll's hardware implementation owns ids 11..14; n Matmul objects own ids 0..2n-1.
constexpr uint32_t kMaxCrossCoreFlagId = 15;
constexpr uint32_t kMaxCrossCorePending = 15;
constexpr int kSyncAllFirstFlagId = 11;
constexpr int kSyncAllLastFlagId = 14;
// SetFlag/WaitFlag event ids 0..7 per HardEvent (SetFlag-WaitFlag(ISASI).md); a TPipe hands them out (lowest free
// first) through AllocEventID/FetchEventID and to its TQue operations.
constexpr int kEventIds = 8;

// ---- Atlas 910B2 time model (SIMULATOR.md "Counters and the model"): an estimate for comparing kernel designs,
// never a measured NPU time. Every figure cites its public source or says ASSUMED; a figure changes only with a
// source. Times are in cycles of the AI core clock.
// - 24 AIC / 48 AIV: asc-devkit A2 examples (AIC_CORE_NUM 24, AIV_CORE_NUM 48).
constexpr uint32_t kModelCores = 24;
constexpr double kModelClockHz = 1.85e9;  // asc-devkit matmul high-performance example README (A2 theoretical time)
// - Cube: 16x16x16 = 4096 fp16/bf16 MACs per cycle per AIC (same README) -> 364 TFLOPS on 24 cores; fp32 runs at a
//   quarter of that (Mmad docs).
constexpr double kModelCubeMacsPerCycle = 4096.0;
// - Vector: 256 bytes (one repeat) per cycle per AIV (asc-devkit Add high-performance example README).
constexpr double kModelVectorBytesPerCycle = 256.0;
// - Vector instruction rates, elements per cycle for 16-bit and 32-bit element types, from the A2 tables of the API
//   appendix page 附录/Vector指令理论性能汇总.md (tables 3-8): a 256-byte repeat of 128 or 64 elements costs
//   elements / rate cycles. Add, Sub, Mul, Max, Min, Adds, Muls, Maxs, Mins, Abs, Reciprocal, Duplicate, Compare,
//   Select run at 128 / 64 (one cycle per repeat; so do Cast at 64 elements per cycle, counted on its 32-bit side, and
//   Brcb at 8 elements in, one repeat out, per cycle); Exp, Ln and Div at 32 in either type (2 cycles per fp32 repeat,
//   4 per fp16 repeat); ReduceRepeat (WholeReduceMax / WholeReduceSum) at 128/7 and 64/7 (7 cycles per repeat);
//   ReduceDataBlock (BlockReduceMax / BlockReduceSum) at 128/7 and 64 (7 cycles per fp16 repeat, 1 per fp32 repeat).
struct VectorRate {
  double b16, b32;  // elements per cycle of 16-bit and of 32-bit element types
};
constexpr VectorRate kModelRateBasic{128.0, 64.0};
constexpr VectorRate kModelRateExpLnDiv{32.0, 32.0};
constexpr VectorRate kModelRateReduceRepeat{128.0 / 7.0, 64.0 / 7.0};
constexpr VectorRate kModelRateReduceDataBlock{128.0 / 7.0, 64.0};
// - ReduceMax / ReduceSum over a whole tensor are software sequences on A2 (软仿指令 in the same table, no figure);
//   the best-practice page 选择低延迟指令-优化归约操作性能.md puts reductions at 2-5x an Add per repeat: the low end,
//   for each repeat and one more for the final combine.
constexpr double kModelSoftReduceCyclesPerRepeat = 2.0;
// - Per-instruction start-up of a vector instruction: ASSUMED 8 cycles.
constexpr double kModelVectorStartupCycles = 8.0;
// - The scalar unit issues one instruction per cycle: ASSUMED. A scalar UB access: ASSUMED 2 cycles; a scalar GM
//   access that hits the data cache: ASSUMED 4 cycles (a miss waits the GM/L2 latency below).
constexpr double kModelIssueCycles = 1.0;
constexpr double kModelScalarUbCycles = 2.0;
constexpr double kModelScalarCacheHitCycles = 4.0;
// - GM (HBM): about 1.6 TB/s for the chip; L2: 192 MB, read/write bandwidth about 7 TB/s (both from the best-practice
//   page L2-Cache切分.md). A core's DMA gets at most 1/24 of either, whatever the block dim (SIMULATOR.md).
constexpr double kModelGmBytesPerSecond = 1.6e12;
constexpr double kModelL2BytesPerSecond = 7.0e12;
constexpr uint64_t kModelL2Bytes = 192ull * 1024 * 1024;
// - L2 residency is tracked in 512-byte granules, least recently used out (the hardware line is 128 bytes, SIMT
//   概述.md; the coarser granule keeps the model's memory small, and DMA bursts are 512 bytes on A2, 硬件约束).
constexpr uint64_t kModelL2GranuleBytes = 512;
// - Latency of a DMA transfer after its last byte leaves: ASSUMED 1000 cycles from HBM, 300 from L2.
constexpr double kModelGmLatencyCycles = 1000.0;
constexpr double kModelL2LatencyCycles = 300.0;
// - The cube's operand loads from L1: LoadData moves 256 bytes per cycle into L0A and 128 into L0B on A2 (API
//   appendix 附录/Cube指令理论性能汇总.md, table 3; the same for LoadDataWithTranspose). A request loads each base
//   block of A once per base block of N it meets and each base block of B once per base block of M.
constexpr double kModelL0aLoadBytesPerCycle = 256.0;
constexpr double kModelL0bLoadBytesPerCycle = 128.0;
// - High-level Matmul, vector-master: the AIV's scalar work to send one request, ASSUMED 300 cycles; the message's
//   way to the cube, ASSUMED 500 cycles; the cube's pipeline fill and drain per request, ASSUMED 200 cycles.
constexpr double kModelMatmulCallCycles = 300.0;
constexpr double kModelMatmulMessageCycles = 500.0;
constexpr double kModelCubeFillCycles = 200.0;
// - Cross-core signals: ASSUMED 100 cycles from a set to its wait; SyncAll: ASSUMED 1000 cycles after the last
//   arrival.
constexpr double kModelCrossCoreCycles = 100.0;
constexpr double kModelSyncAllCycles = 1000.0;
// - Launch: "满核头开销约为20~21微秒" on Atlas A2 (full-core head overhead; 算子实践参考/性能分析/分析性能数据.md).
constexpr double kModelLaunchOverheadUs = 20.0;
// - The time-ordered scheduler lets a thread run this many cycles ahead of the earliest other runnable thread before
//   handing over (a simulation parameter, not a hardware figure: shared resources see requests in time order to
//   within this window).
constexpr double kModelLookaheadCycles = 2000.0;

}  // namespace ascend_sim
