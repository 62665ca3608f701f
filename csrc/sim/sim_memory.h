// GlobalTensor / LocalTensor and the TPipe, TQue, TBuf allocators, with the hardware's capacity, alignment and
// pairing rules checked.
#pragma once
#include <cstdint>
#include <exception>
#include <string>

#include "sim_runtime.h"
#include "sim_types.h"

namespace AscendC {

using ascend_sim::Loc;

enum class TPosition { GM, VECIN, VECOUT, VECCALC, A1, A2, B1, B2, CO1, CO2, TSCM };

inline ascend_sim::Memory memory_of(TPosition p) {
  switch (p) {
    case TPosition::A1:
    case TPosition::B1:
    case TPosition::TSCM:
      return ascend_sim::Memory::kL1;
    case TPosition::A2:
      return ascend_sim::Memory::kL0a;
    case TPosition::B2:
      return ascend_sim::Memory::kL0b;
    case TPosition::CO1:
      return ascend_sim::Memory::kL0c;
    default:
      return ascend_sim::Memory::kUb;
  }
}

// A view of GM inside one buffer the host passed to the launch.
template <typename T>
class GlobalTensor {
 public:
  // Binds to [buffer, buffer + count) (count 0: the rest of the host buffer holding `buffer`).
  void SetGlobalBuffer(T* buffer, uint64_t count = 0, Loc loc = {}) {
    const auto& launch = *ascend_sim::ctx().launch;
    const ascend_sim::GmBuffer* b = launch.find_buffer(buffer, count * sizeof(T));
    ascend_sim::check(b != nullptr, loc, [&] {
      return "SetGlobalBuffer of " + std::to_string(count * sizeof(T)) +
             " bytes is not inside any GM buffer passed to the launch";
    });
    ptr_ = buffer;
    workspace_ = b->name == "workspace";
    size_ = count ? count : uint64_t(b->base + b->bytes - reinterpret_cast<const uint8_t*>(buffer)) / sizeof(T);
  }
  GlobalTensor operator[](uint64_t offset) const {
    GlobalTensor t;
    t.ptr_ = ptr_ + offset;
    t.size_ = offset <= size_ ? size_ - offset : 0;
    t.out_of_range_ = out_of_range_ || offset > size_;
    t.workspace_ = workspace_;
    return t;
  }
  T GetValue(uint64_t i, Loc loc = {}) const {
    check_range(i, 1, loc);
    count_read(sizeof(T));
    return ptr_[i];
  }
  void SetValue(uint64_t i, T v, Loc loc = {}) {
    check_range(i, 1, loc);
    count_write(sizeof(T));
    ptr_[i] = v;
  }
  uint64_t GetSize() const { return size_; }
  T* GetPhyAddr() const { return ptr_; }

  // GM traffic counters of the calling core; workspace traffic is also counted on its own.
  void count_read(uint64_t bytes) const {
    auto& c = *ascend_sim::ctx().counters;
    c.gm_read_bytes += bytes;
    if (workspace_) c.gm_workspace_bytes += bytes;
  }
  void count_write(uint64_t bytes) const {
    auto& c = *ascend_sim::ctx().counters;
    c.gm_write_bytes += bytes;
    if (workspace_) c.gm_workspace_bytes += bytes;
  }

  // Every GM access of the simulator goes through this check.
  void check_range(uint64_t first, uint64_t count, const Loc& loc) const {
    ascend_sim::check(!out_of_range_ && first + count <= size_, loc, [&] {
      return "GM access of elements [" + std::to_string(first) + ", " + std::to_string(first + count) +
             ") is outside its GlobalTensor (" + std::to_string(out_of_range_ ? 0 : size_) + " elements)";
    });
  }

 private:
  T* ptr_ = nullptr;
  uint64_t size_ = 0;
  bool out_of_range_ = false;
  bool workspace_ = false;  // inside the buffer the host named "workspace"
};

// A view of one core's local memory (UB on AIV; L1/L0 on AIC).
template <typename T>
class LocalTensor {
 public:
  LocalTensor() = default;
  LocalTensor(uint8_t* arena, uint32_t offset_bytes, uint32_t size_elems, ascend_sim::Memory mem)
      : arena_(arena), offset_(offset_bytes), size_(size_elems), mem_(mem) {}

  LocalTensor operator[](uint32_t offset) const {
    return LocalTensor(arena_, offset_ + offset * uint32_t(sizeof(T)), offset <= size_ ? size_ - offset : 0, mem_);
  }
  template <typename U>
  LocalTensor<U> ReinterpretCast() const {
    return LocalTensor<U>(arena_, offset_, size_ * uint32_t(sizeof(T)) / uint32_t(sizeof(U)), mem_);
  }
  T GetValue(uint32_t i, Loc loc = {}) const {
    check_elems(i + 1, loc);
    return data()[i];
  }
  void SetValue(uint32_t i, T v, Loc loc = {}) {
    check_elems(i + 1, loc);
    data()[i] = v;
  }
  uint32_t GetSize() const { return size_; }

  // Simulator internals used by the instructions.
  T* data() const { return reinterpret_cast<T*>(arena_ + offset_); }
  uint32_t offset_bytes() const { return offset_; }
  ascend_sim::Memory memory() const { return mem_; }
  bool valid() const { return arena_ != nullptr; }
  void check_elems(uint64_t n, const Loc& loc) const {
    ascend_sim::check(valid(), loc, [] { return "use of a LocalTensor that was never allocated"; });
    ascend_sim::check(n <= size_, loc, [&] {
      return "local access of " + std::to_string(n) + " elements overruns its LocalTensor of " + std::to_string(size_) +
             " elements";
    });
  }
  // Operands of vector and copy instructions start on a 32-byte boundary.
  void check_aligned(const Loc& loc, const char* what = "operand") const {
    ascend_sim::check(offset_ % ascend_sim::kBlockBytes == 0, loc, [&] {
      return std::string("local ") + what + " at byte offset " + std::to_string(offset_) + " is not 32-byte aligned";
    });
  }

 private:
  uint8_t* arena_ = nullptr;
  uint32_t offset_ = 0;
  uint32_t size_ = 0;
  ascend_sim::Memory mem_ = ascend_sim::Memory::kUb;
};

class TPipe;

// Buffers of one position handed out with AllocTensor/FreeTensor and passed between stages with EnQue/DeQue.
template <TPosition POS, int32_t DEPTH = 1>
class TQue {
 public:
  TQue() = default;
  TQue(const TQue&) = delete;
  ~TQue() noexcept(false) {
    if (std::uncaught_exceptions() > 0 || num_ == 0) return;
    if (queued_ != 0) ascend_sim::fail(init_loc_, std::to_string(queued_) + " EnQue without DeQue at kernel exit");
    if (allocated_ != 0)
      ascend_sim::fail(init_loc_, std::to_string(allocated_) + " AllocTensor without FreeTensor at kernel exit");
  }

  template <typename T>
  LocalTensor<T> AllocTensor(Loc loc = {}) {
    ascend_sim::check(num_ > 0, loc, [] { return "AllocTensor on a TQue that InitBuffer never set up"; });
    for (uint32_t i = 0; i < num_; ++i) {
      if (!busy_[i]) {
        busy_[i] = true;
        ++allocated_;
        return LocalTensor<T>(arena_, offset_ + i * len_, len_ / uint32_t(sizeof(T)), memory_of(POS));
      }
    }
    ascend_sim::fail(loc, "AllocTensor with all " + std::to_string(num_) + " buffers of the TQue in use");
  }
  template <typename T>
  void FreeTensor(const LocalTensor<T>& t, Loc loc = {}) {
    const uint32_t i = index_of(t.offset_bytes(), loc);
    ascend_sim::check(busy_[i], loc, [] { return "FreeTensor of a buffer that is not allocated"; });
    busy_[i] = false;
    --allocated_;
  }
  template <typename T>
  bool EnQue(const LocalTensor<T>& t, Loc loc = {}) {
    ascend_sim::check(queued_ < DEPTH, loc, [] { return "EnQue beyond the TQue depth"; });
    fifo_[(head_ + queued_) % kMaxBuffers] = index_of(t.offset_bytes(), loc);
    ++queued_;
    return true;
  }
  template <typename T>
  LocalTensor<T> DeQue(Loc loc = {}) {
    ascend_sim::check(queued_ > 0, loc, [] { return "DeQue on an empty TQue"; });
    const uint32_t i = fifo_[head_];
    head_ = (head_ + 1) % kMaxBuffers;
    --queued_;
    return LocalTensor<T>(arena_, offset_ + i * len_, len_ / uint32_t(sizeof(T)), memory_of(POS));
  }

 private:
  friend class TPipe;
  static constexpr uint32_t kMaxBuffers = 8;
  uint32_t index_of(uint32_t offset, const Loc& loc) const {
    const bool inside = offset >= offset_ && offset < offset_ + num_ * len_ && (offset - offset_) % len_ == 0;
    ascend_sim::check(inside, loc, [] { return "tensor does not belong to this TQue"; });
    return (offset - offset_) / len_;
  }
  uint8_t* arena_ = nullptr;
  uint32_t offset_ = 0, len_ = 0, num_ = 0;
  bool busy_[kMaxBuffers] = {};
  uint32_t fifo_[kMaxBuffers] = {};
  uint32_t head_ = 0;
  int32_t allocated_ = 0, queued_ = 0;
  Loc init_loc_;
};

// Scratch memory of one position with no queue semantics.
template <TPosition POS>
class TBuf {
 public:
  template <typename T>
  LocalTensor<T> Get(Loc loc = {}) const {
    ascend_sim::check(arena_ != nullptr, loc, [] { return "Get on a TBuf that InitBuffer never set up"; });
    return LocalTensor<T>(arena_, offset_, len_ / uint32_t(sizeof(T)), memory_of(POS));
  }
  template <typename T>
  LocalTensor<T> Get(uint32_t count, Loc loc = {}) const {
    ascend_sim::check(count * sizeof(T) <= len_, loc, [&] {
      return "TBuf::Get of " + std::to_string(count * sizeof(T)) + " bytes from a " + std::to_string(len_) +
             "-byte TBuf";
    });
    return LocalTensor<T>(arena_, offset_, count, memory_of(POS));
  }
  template <typename T>
  LocalTensor<T> GetWithOffset(uint32_t count, uint32_t offset_bytes, Loc loc = {}) const {
    ascend_sim::check(offset_bytes + count * sizeof(T) <= len_, loc,
                      [&] { return "TBuf::GetWithOffset past the end of its " + std::to_string(len_) + "-byte TBuf"; });
    return LocalTensor<T>(arena_, offset_ + offset_bytes, count, memory_of(POS));
  }

 private:
  friend class TPipe;
  uint8_t* arena_ = nullptr;
  uint32_t offset_ = 0, len_ = 0;
};

// Carves the core's local memories; everything it handed out is released when it goes out of scope.
class TPipe {
 public:
  TPipe() {
    for (int m = 0; m < 5; ++m) start_[m] = ascend_sim::ctx().arenas[m].used;
  }
  ~TPipe() {
    if (!ascend_sim::ctx().launch) return;
    for (int m = 0; m < 5; ++m) ascend_sim::ctx().arenas[m].used = start_[m];
  }
  TPipe(const TPipe&) = delete;

  template <TPosition POS, int32_t DEPTH>
  bool InitBuffer(TQue<POS, DEPTH>& que, uint8_t num, uint32_t len, Loc loc = {}) {
    ascend_sim::check(num >= 1 && num <= TQue<POS, DEPTH>::kMaxBuffers, loc,
                      [&] { return "TQue InitBuffer num " + std::to_string(num) + " outside 1..8"; });
    const uint32_t rounded = round_up(len);
    que.arena_ = carve(memory_of(POS), uint64_t(num) * rounded, loc, que.offset_);
    que.len_ = rounded;
    que.num_ = num;
    que.init_loc_ = loc;
    return true;
  }
  template <TPosition POS>
  bool InitBuffer(TBuf<POS>& buf, uint32_t len, Loc loc = {}) {
    buf.len_ = round_up(len);
    buf.arena_ = carve(memory_of(POS), buf.len_, loc, buf.offset_);
    return true;
  }
  void Destroy() {}

 private:
  static uint32_t round_up(uint32_t len) {
    return (len + ascend_sim::kBlockBytes - 1) / ascend_sim::kBlockBytes * ascend_sim::kBlockBytes;
  }
  uint8_t* carve(ascend_sim::Memory mem, uint64_t bytes, const Loc& loc, uint32_t& offset) {
    static const char* names[] = {"UB", "L1", "L0A", "L0B", "L0C"};
    ascend_sim::Arena& a = ascend_sim::ctx().arenas[int(mem)];
    ascend_sim::check(a.used + bytes <= a.capacity, loc, [&] {
      return std::string(names[int(mem)]) + " capacity exceeded: InitBuffer of " + std::to_string(bytes) +
             " bytes with " + std::to_string(a.used) + " of " + std::to_string(a.capacity) + " usable bytes in use";
    });
    // The arena is filled on first use only (an AIC that only registers Matmul objects never carves): a garbage-like
    // 0xff fill, so reads of memory no one wrote show. Allocated whole, so tensors carved earlier stay valid.
    if (a.data.empty()) a.data.assign(a.capacity, 0xff);
    offset = a.used;
    a.used += uint32_t(bytes);
    return a.data.data();
  }
  uint32_t start_[5];
};

}  // namespace AscendC
