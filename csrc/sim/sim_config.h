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

// Atlas 910B2 time model (per-core roofline, see SIMULATOR.md "Counters and the model").
// - 24 AIC / 48 AIV: asc-devkit A2 examples (AIC_CORE_NUM 24, AIV_CORE_NUM 48).
// - Cube: 16x16x16 = 4096 fp16 MACs per cycle per AIC at 1.85 GHz: asc-devkit matmul high-performance example README
//   (theoretical time on a 24-core A2) -> 24 * 4096 * 2 * 1.85e9 = 364 TFLOPS fp16.
// - Vector: 256 B per cycle per AIV (128 fp16 or 64 fp32 lanes): asc-devkit Add high-performance example README.
// - GM (HBM) bandwidth 1.6 TB/s for the whole chip, shared evenly by the cores in the model (public 910B2 figures
//   range from 1.6 to 1.8 TB/s; the lower one keeps the model conservative).
// - Launch overhead: an assumed constant for a mix-kernel launch (no published figure; stated wherever printed).
constexpr double kModelClockHz = 1.85e9;
constexpr double kModelCubeMacsPerCycle = 4096.0;
constexpr double kModelVectorBytesPerCycle = 256.0;
constexpr double kModelAivPerCore = 2.0;
constexpr double kModelGmBytesPerSecond = 1.6e12;
constexpr uint32_t kModelCores = 24;
constexpr double kModelLaunchOverheadUs = 3.0;

}  // namespace ascend_sim
