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
  uint16_t srcStride = 0;
  uint16_t dstStride = 0;
  DataCopyParams() = default;
  DataCopyParams(uint16_t count, uint16_t len, uint16_t src_stride, uint16_t dst_stride)
      : blockCount(count), blockLen(len), srcStride(src_stride), dstStride(dst_stride) {}
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

// Row-by-row copy between a GM pointer range and a local tensor with byte strides; checks both sides.
template <typename T>
void copy_rows(T* dst, uint64_t dst_row_stride_bytes, const T* src, uint64_t src_row_stride_bytes, uint32_t rows,
               uint32_t row_bytes) {
  if (ascend_sim::dry_run()) return;
  for (uint32_t r = 0; r < rows; ++r) {
    std::memcpy(reinterpret_cast<uint8_t*>(dst) + r * dst_row_stride_bytes,
                reinterpret_cast<const uint8_t*>(src) + r * src_row_stride_bytes, row_bytes);
  }
}

}  // namespace detail

// GM -> UB/L1, count elements, count * sizeof(T) a multiple of 32 bytes.
template <typename T>
void DataCopy(const LocalTensor<T>& dst, const GlobalTensor<T>& src, uint32_t count, Loc loc = {}) {
  detail::check_count_copy<T>(count, loc);
  dst.check_aligned(loc, "DataCopy destination");
  dst.check_elems(count, loc);
  src.check_range(0, count, loc);
  src.count_read(uint64_t(count) * sizeof(T));
  detail::copy_rows(dst.data(), 0, src.GetPhyAddr(), 0, 1, count * sizeof(T));
}

// UB -> GM.
template <typename T>
void DataCopy(const GlobalTensor<T>& dst, const LocalTensor<T>& src, uint32_t count, Loc loc = {}) {
  detail::check_count_copy<T>(count, loc);
  src.check_aligned(loc, "DataCopy source");
  src.check_elems(count, loc);
  dst.check_range(0, count, loc);
  dst.count_write(uint64_t(count) * sizeof(T));
  detail::copy_rows(dst.GetPhyAddr(), 0, src.data(), 0, 1, count * sizeof(T));
}

// UB -> UB.
template <typename T>
void DataCopy(const LocalTensor<T>& dst, const LocalTensor<T>& src, uint32_t count, Loc loc = {}) {
  detail::check_count_copy<T>(count, loc);
  dst.check_aligned(loc, "DataCopy destination");
  src.check_aligned(loc, "DataCopy source");
  dst.check_elems(count, loc);
  src.check_elems(count, loc);
  detail::copy_rows(dst.data(), 0, src.data(), 0, 1, count * sizeof(T));
}

// Strided GM -> UB: blockCount rows of blockLen blocks, gaps in blocks on both sides.
template <typename T>
void DataCopy(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const DataCopyParams& p, Loc loc = {}) {
  detail::check_params(p, loc);
  dst.check_aligned(loc, "DataCopy destination");
  const uint64_t row = uint64_t(p.blockLen) * detail::kBlock, per = sizeof(T);
  const uint64_t src_stride = row + uint64_t(p.srcStride) * detail::kBlock;
  const uint64_t dst_stride = row + uint64_t(p.dstStride) * detail::kBlock;
  src.check_range(0, ((p.blockCount - 1) * src_stride + row) / per, loc);
  dst.check_elems(((p.blockCount - 1) * dst_stride + row) / per, loc);
  src.count_read(p.blockCount * row);
  detail::copy_rows(dst.data(), dst_stride, src.GetPhyAddr(), src_stride, p.blockCount, uint32_t(row));
}

// Strided UB -> GM.
template <typename T>
void DataCopy(const GlobalTensor<T>& dst, const LocalTensor<T>& src, const DataCopyParams& p, Loc loc = {}) {
  detail::check_params(p, loc);
  src.check_aligned(loc, "DataCopy source");
  const uint64_t row = uint64_t(p.blockLen) * detail::kBlock, per = sizeof(T);
  const uint64_t src_stride = row + uint64_t(p.srcStride) * detail::kBlock;
  const uint64_t dst_stride = row + uint64_t(p.dstStride) * detail::kBlock;
  src.check_elems(((p.blockCount - 1) * src_stride + row) / per, loc);
  dst.check_range(0, ((p.blockCount - 1) * dst_stride + row) / per, loc);
  dst.count_write(p.blockCount * row);
  detail::copy_rows(dst.GetPhyAddr(), dst_stride, src.data(), src_stride, p.blockCount, uint32_t(row));
}

// Unaligned GM -> UB: each of blockCount rows of blockLen bytes lands at a 32-byte-aligned UB row; the rest of the
// row's last block gets paddingValue when isPad (else it is left as it was).
template <typename T>
void DataCopyPad(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const DataCopyExtParams& p,
                 const DataCopyPadExtParams<T>& pad, Loc loc = {}) {
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
  src.count_read(uint64_t(p.blockCount) * p.blockLen);
  detail::copy_rows(dst.data(), dst_stride, src.GetPhyAddr(), src_stride, p.blockCount, p.blockLen);
  if (pad.isPad && !ascend_sim::dry_run()) {
    for (uint32_t r = 0; r < p.blockCount; ++r) {
      T* row = reinterpret_cast<T*>(reinterpret_cast<uint8_t*>(dst.data()) + r * dst_stride);
      for (uint64_t i = p.blockLen / sizeof(T); i < row_ub / sizeof(T); ++i) row[i] = pad.paddingValue;
    }
  }
}

// Unaligned UB -> GM: writes exactly blockLen bytes per row; the UB-side gap in blocks, the GM-side gap in bytes.
template <typename T>
void DataCopyPad(const GlobalTensor<T>& dst, const LocalTensor<T>& src, const DataCopyExtParams& p, Loc loc = {}) {
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
  dst.count_write(uint64_t(p.blockCount) * p.blockLen);
  detail::copy_rows(dst.GetPhyAddr(), dst_stride, src.data(), src_stride, p.blockCount, p.blockLen);
}

}  // namespace AscendC
