// DataCopy and DataCopyPad between GM and UB/L1 with their documented length and stride rules.
#pragma once
#include <cstring>
#include <string>

#include "sim_memory.h"

namespace AscendC {

// Strided 2-D copy; every field counts 32-byte blocks (srcStride/dstStride are the gaps between rows).
struct DataCopyParams {
  uint16_t blockCount = 1;
  uint16_t blockLen = 0;
  union {
    uint16_t srcGap = 0;
    uint16_t srcStride;
  };
  union {
    uint16_t dstGap = 0;
    uint16_t dstStride;
  };
  DataCopyParams() = default;
  DataCopyParams(const uint16_t count, const uint16_t len, const uint16_t srcStrideIn, const uint16_t dstStrideIn)
      : blockCount(count), blockLen(len), srcGap(srcStrideIn), dstGap(dstStrideIn) {}
};

// Unaligned copy: blockLen in bytes; the GM-side gap in bytes, the UB-side gap in 32-byte blocks.
struct DataCopyExtParams {
  uint16_t blockCount = 1;
  uint32_t blockLen = 0;
  uint32_t srcStride = 0;
  uint32_t dstStride = 0;
  uint32_t rsv = 0;
  DataCopyExtParams() = default;
  DataCopyExtParams(uint16_t count, uint32_t len, uint32_t src_stride, uint32_t dst_stride, uint32_t reserved)
      : blockCount(count), blockLen(len), srcStride(src_stride), dstStride(dst_stride), rsv(reserved) {}
};

template <typename T>
struct DataCopyPadExtParams {
  bool isPad = false;
  uint8_t leftPadding = 0;
  uint8_t rightPadding = 0;
  T paddingValue = T(0);
  DataCopyPadExtParams() = default;
  DataCopyPadExtParams(bool pad, uint8_t left, uint8_t right, T value)
      : isPad(pad), leftPadding(left), rightPadding(right), paddingValue(value) {}
};

namespace detail {

constexpr uint32_t kBlock = ascend_sim::kBlockBytes;

inline std::string bytes_str(uint64_t n) { return std::to_string(n) + " bytes"; }

template <typename T>
void check_count_copy(uint32_t count, const Loc& loc) {
  ascend_sim::check(uint64_t(count) * sizeof(T) % kBlock == 0, loc, [&] {
    return "DataCopy of " + std::to_string(count) + " elements (" + bytes_str(uint64_t(count) * sizeof(T)) +
           ") is not a whole number of 32-byte blocks; use DataCopyPad";
  });
}

inline void check_params(const DataCopyParams& p, const Loc& loc) {
  ascend_sim::check(p.blockCount >= 1 && p.blockCount <= ascend_sim::kMaxCopyBlockCount, loc,
                    [&] { return "DataCopyParams blockCount " + std::to_string(p.blockCount) + " outside 1..4095"; });
  ascend_sim::check(p.blockLen >= 1, loc, [] { return "DataCopyParams blockLen is 0"; });
}

// A copy of `rows` rows of `row_bytes` between GM and local memory, with byte strides on both sides: the rows are
// recorded as accesses of instruction `a` (the GM side read or written, the local side the other way), then moved.
template <typename T>
void gm_local_rows(const GlobalTensor<T>& gm, uint64_t gm_stride, const LocalTensor<T>& local, uint64_t local_stride,
                   uint32_t rows, uint64_t row_bytes, bool to_gm, const ascend_sim::Access& a) {
  for (uint32_t r = 0; r < rows; ++r) {
    gm.sim_access(r * gm_stride / sizeof(T), row_bytes / sizeof(T), to_gm, a);
    local.sim_record_bytes(r * local_stride, r * local_stride + row_bytes, !to_gm, a);
  }
  if (ascend_sim::dry_run()) return;
  auto* g = reinterpret_cast<uint8_t*>(gm.sim_data());
  auto* l = reinterpret_cast<uint8_t*>(local.data());
  for (uint32_t r = 0; r < rows; ++r) {
    if (to_gm) {
      std::memcpy(g + r * gm_stride, l + r * local_stride, row_bytes);
    } else {
      std::memcpy(l + r * local_stride, g + r * gm_stride, row_bytes);
    }
  }
}

// GM -> local memory goes through MTE2, local -> GM through MTE3.
inline ascend_sim::Pipe copy_pipe(bool to_gm) { return to_gm ? ascend_sim::Pipe::kMte3 : ascend_sim::Pipe::kMte2; }

}  // namespace detail

// GM -> UB/L1, count elements, count * sizeof(T) a multiple of 32 bytes.
template <typename T>
void DataCopy(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const uint32_t count, Loc loc = {}) {
  detail::check_count_copy<T>(count, loc);
  dst.check_aligned(loc, "DataCopy destination");
  dst.check_elems(count, loc);
  src.check_range(0, count, loc);
  ascend_sim::Instr in(detail::copy_pipe(false), loc, "DataCopy");
  detail::gm_local_rows(src, 0, dst, 0, 1, uint64_t(count) * sizeof(T), false, in.access());
}

// UB -> GM.
template <typename T>
void DataCopy(const GlobalTensor<T>& dst, const LocalTensor<T>& src, const uint32_t count, Loc loc = {}) {
  detail::check_count_copy<T>(count, loc);
  src.check_aligned(loc, "DataCopy source");
  src.check_elems(count, loc);
  dst.check_range(0, count, loc);
  ascend_sim::Instr in(detail::copy_pipe(true), loc, "DataCopy");
  detail::gm_local_rows(dst, 0, src, 0, 1, uint64_t(count) * sizeof(T), true, in.access());
}

// UB -> UB, on the vector pipe.
template <typename T>
void DataCopy(const LocalTensor<T>& dst, const LocalTensor<T>& src, const uint32_t count, Loc loc = {}) {
  detail::check_count_copy<T>(count, loc);
  dst.check_aligned(loc, "DataCopy destination");
  src.check_aligned(loc, "DataCopy source");
  dst.check_elems(count, loc);
  src.check_elems(count, loc);
  ascend_sim::Instr in(ascend_sim::Pipe::kV, loc, "DataCopy");
  in.add_cycles(double(count) * sizeof(T) / ascend_sim::kModelVectorBytesPerCycle +
                ascend_sim::kModelVectorStartupCycles);
  src.sim_record(0, count, false, in.access());
  dst.sim_record(0, count, true, in.access());
  if (!ascend_sim::dry_run()) std::memmove(dst.data(), src.data(), uint64_t(count) * sizeof(T));
}

// Strided GM -> UB: blockCount rows of blockLen blocks, gaps in blocks on both sides.
template <typename T>
void DataCopy(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const DataCopyParams& repeatParams, Loc loc = {}) {
  const DataCopyParams& p = repeatParams;
  detail::check_params(p, loc);
  dst.check_aligned(loc, "DataCopy destination");
  const uint64_t row = uint64_t(p.blockLen) * detail::kBlock, per = sizeof(T);
  const uint64_t src_stride = row + uint64_t(p.srcGap) * detail::kBlock;
  const uint64_t dst_stride = row + uint64_t(p.dstGap) * detail::kBlock;
  src.check_range(0, ((p.blockCount - 1) * src_stride + row) / per, loc);
  dst.check_elems(((p.blockCount - 1) * dst_stride + row) / per, loc);
  ascend_sim::Instr in(detail::copy_pipe(false), loc, "DataCopy");
  detail::gm_local_rows(src, src_stride, dst, dst_stride, p.blockCount, row, false, in.access());
}

// Strided UB -> GM.
template <typename T>
void DataCopy(const GlobalTensor<T>& dst, const LocalTensor<T>& src, const DataCopyParams& repeatParams, Loc loc = {}) {
  const DataCopyParams& p = repeatParams;
  detail::check_params(p, loc);
  src.check_aligned(loc, "DataCopy source");
  const uint64_t row = uint64_t(p.blockLen) * detail::kBlock, per = sizeof(T);
  const uint64_t src_stride = row + uint64_t(p.srcGap) * detail::kBlock;
  const uint64_t dst_stride = row + uint64_t(p.dstGap) * detail::kBlock;
  src.check_elems(((p.blockCount - 1) * src_stride + row) / per, loc);
  dst.check_range(0, ((p.blockCount - 1) * dst_stride + row) / per, loc);
  ascend_sim::Instr in(detail::copy_pipe(true), loc, "DataCopy");
  detail::gm_local_rows(dst, dst_stride, src, src_stride, p.blockCount, row, true, in.access());
}

// Unaligned GM -> UB: each of blockCount rows of blockLen bytes lands at a 32-byte-aligned UB row; the rest of the
// row's last block gets paddingValue when isPad (else it is left as it was).
template <typename T>
void DataCopyPad(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const DataCopyExtParams& dataCopyParams,
                 const DataCopyPadExtParams<T>& padParams, Loc loc = {}) {
  const DataCopyExtParams& p = dataCopyParams;
  ascend_sim::check(p.blockCount >= 1 && p.blockCount <= ascend_sim::kMaxCopyBlockCount && p.blockLen >= 1, loc,
                    [&] { return "DataCopyPad blockCount must be 1..4095 and blockLen >= 1"; });
  ascend_sim::check(p.blockLen % sizeof(T) == 0, loc, [&] {
    return "DataCopyPad blockLen " + std::to_string(p.blockLen) + " is not a whole number of elements";
  });
  dst.check_aligned(loc, "DataCopyPad destination");
  const uint64_t row_ub = (p.blockLen + detail::kBlock - 1) / detail::kBlock * detail::kBlock;
  const uint64_t src_stride = uint64_t(p.blockLen) + p.srcStride;
  const uint64_t dst_stride = row_ub + uint64_t(p.dstStride) * detail::kBlock;
  src.check_range(0, ((p.blockCount - 1) * src_stride + p.blockLen) / sizeof(T), loc);
  dst.check_elems(((p.blockCount - 1) * dst_stride + row_ub) / sizeof(T), loc);
  ascend_sim::Instr in(detail::copy_pipe(false), loc, "DataCopyPad");
  const ascend_sim::Access& a = in.access();
  detail::gm_local_rows(src, src_stride, dst, dst_stride, p.blockCount, p.blockLen, false, a);
  if (padParams.isPad || row_ub > p.blockLen) {
    // The padded tail of each UB row is written too (with the pad value, or left as it was).
    for (uint32_t r = 0; r < p.blockCount; ++r) {
      dst.sim_record_bytes(r * dst_stride + p.blockLen, r * dst_stride + row_ub, true, a);
    }
  }
  if (padParams.isPad && !ascend_sim::dry_run()) {
    for (uint32_t r = 0; r < p.blockCount; ++r) {
      T* row = reinterpret_cast<T*>(reinterpret_cast<uint8_t*>(dst.data()) + r * dst_stride);
      for (uint64_t i = p.blockLen / sizeof(T); i < row_ub / sizeof(T); ++i) row[i] = padParams.paddingValue;
    }
  }
}

// Unaligned UB -> GM: writes exactly blockLen bytes per row; the UB-side gap in blocks, the GM-side gap in bytes.
template <typename T>
void DataCopyPad(const GlobalTensor<T>& dst, const LocalTensor<T>& src, const DataCopyExtParams& dataCopyParams,
                 Loc loc = {}) {
  const DataCopyExtParams& p = dataCopyParams;
  ascend_sim::check(p.blockCount >= 1 && p.blockCount <= ascend_sim::kMaxCopyBlockCount && p.blockLen >= 1, loc,
                    [&] { return "DataCopyPad blockCount must be 1..4095 and blockLen >= 1"; });
  ascend_sim::check(p.blockLen % sizeof(T) == 0, loc, [&] {
    return "DataCopyPad blockLen " + std::to_string(p.blockLen) + " is not a whole number of elements";
  });
  src.check_aligned(loc, "DataCopyPad source");
  const uint64_t row_ub = (p.blockLen + detail::kBlock - 1) / detail::kBlock * detail::kBlock;
  const uint64_t src_stride = row_ub + uint64_t(p.srcStride) * detail::kBlock;
  const uint64_t dst_stride = uint64_t(p.blockLen) + p.dstStride;
  src.check_elems(((p.blockCount - 1) * src_stride + row_ub) / sizeof(T), loc);
  dst.check_range(0, ((p.blockCount - 1) * dst_stride + p.blockLen) / sizeof(T), loc);
  ascend_sim::Instr in(detail::copy_pipe(true), loc, "DataCopyPad");
  detail::gm_local_rows(dst, dst_stride, src, src_stride, p.blockCount, p.blockLen, true, in.access());
}

}  // namespace AscendC
