// GlobalTensor / LocalTensor and the TPipe, TQue, TQueBind, TBuf allocators, with the hardware's capacity,
// alignment and pairing rules checked, every access recorded for the race detector, and the events the TQue
// operations imply (impl/basic_api/kernel_event.h, GetQueEvt: a queue from position A to B orders A's pipe before
// B's on EnQue/DeQue, and B's before A's on FreeTensor/AllocTensor).
#pragma once
#include <cstdint>
#include <exception>
#include <string>

#include "sim_events.h"
#include "sim_runtime.h"
#include "sim_timeline.h"
#include "sim_types.h"

namespace AscendC {

using ascend_sim::Loc;

enum class TPosition : uint8_t {
  GM,
  A1,
  A2,
  B1,
  B2,
  C1,
  C2,
  CO1,
  CO2,
  VECIN,
  VECOUT,
  VECCALC,
  LCM = VECCALC,
  SPM,
  SHM = SPM,
  TSCM,
  C2PIPE2GM,
  C2PIPE2LOCAL,
  MAX,
};
using QuePosition = TPosition;

constexpr ascend_sim::Memory memory_of(TPosition p) {
  return p == TPosition::A1 || p == TPosition::B1 || p == TPosition::C1 || p == TPosition::TSCM
             ? ascend_sim::Memory::kL1
         : p == TPosition::A2  ? ascend_sim::Memory::kL0a
         : p == TPosition::B2  ? ascend_sim::Memory::kL0b
         : p == TPosition::CO1 ? ascend_sim::Memory::kL0c
                               : ascend_sim::Memory::kUb;
}

// A view of GM inside one buffer the host passed to the launch.
template <typename T>
class GlobalTensor {
 public:
  // Binds to [buffer, buffer + bufferSize) (no size: the rest of the host buffer holding `buffer`).
  void SetGlobalBuffer(__gm__ T* buffer, uint64_t bufferSize, Loc loc = {}) { bind(buffer, bufferSize, true, loc); }
  void SetGlobalBuffer(__gm__ T* buffer, Loc loc = {}) { bind(buffer, 0, false, loc); }
  GlobalTensor operator[](uint64_t offset) const {
    GlobalTensor t = *this;
    t.ptr_ = ptr_ + offset;
    t.size_ = offset <= size_ ? size_ - offset : 0;
    t.out_of_range_ = out_of_range_ || offset > size_;
    return t;
  }
  // Scalar access: through the core's data cache (see sim_cache.h).
  T GetValue(uint64_t offset, Loc loc = {}) const {
    ascend_sim::Instr in(ascend_sim::Pipe::kS, loc, "GetValue");
    sim_access(offset, 1, false, in.access(), true);
    return ptr_[offset];
  }
  void SetValue(uint64_t offset, T value, Loc loc = {}) {
    ascend_sim::Instr in(ascend_sim::Pipe::kS, loc, "SetValue");
    sim_access(offset, 1, true, in.access(), true);
    ptr_[offset] = value;
  }
  uint64_t GetSize() const { return size_; }

  // Simulator internals used by the instructions (kernels use the API above; GetPhyAddr is not offered, so no
  // access escapes the checks).
  T* sim_data() const { return ptr_; }
  ascend_sim::GmBuffer* sim_buffer() const { return buf_; }
  // Checks elements [first, first + count) against the tensor, records the access (race detector, data cache) and
  // counts the traffic.
  void sim_access(uint64_t first, uint64_t count, bool write, const ascend_sim::Access& a, bool scalar = false) const {
    sim_access(first, count, write ? ascend_sim::AccessKind::kWrite : ascend_sim::AccessKind::kRead, a, scalar);
  }
  void sim_access(uint64_t first, uint64_t count, ascend_sim::AccessKind kind, const ascend_sim::Access& a,
                  bool scalar = false) const {
    check_range(first, count, a.loc);
    const bool write = kind != ascend_sim::AccessKind::kRead;
    const uint64_t lo = uint64_t(reinterpret_cast<const uint8_t*>(ptr_ + first) - buf_->base);
    ascend_sim::ctx().launch->gm_access(*buf_, lo, lo + count * sizeof(T), kind, a, scalar);
    auto& c = *ascend_sim::ctx().counters;
    (write ? c.gm_write_bytes : c.gm_read_bytes) += count * sizeof(T);
    if (buf_->role == ascend_sim::GmRole::kScratch) c.gm_workspace_bytes += count * sizeof(T);
  }
  void check_range(uint64_t first, uint64_t count, const Loc& loc) const {
    ascend_sim::check(buf_ != nullptr, loc, [] { return "GlobalTensor used before SetGlobalBuffer"; });
    ascend_sim::check(!out_of_range_ && first + count <= size_, loc, [&] {
      return "GM access of elements [" + std::to_string(first) + ", " + std::to_string(first + count) +
             ") is outside its GlobalTensor (" + std::to_string(out_of_range_ ? 0 : size_) + " elements)";
    });
  }

 private:
  void bind(T* buffer, uint64_t count, bool sized, const Loc& loc) {
    ascend_sim::GmBuffer* b = ascend_sim::ctx().launch->find_buffer(buffer, count * sizeof(T));
    ascend_sim::check(b != nullptr, loc, [&] {
      return "SetGlobalBuffer of " + std::to_string(count * sizeof(T)) +
             " bytes is not inside any GM buffer passed to the launch";
    });
    buf_ = b;
    ptr_ = buffer;
    out_of_range_ = false;
    size_ = sized ? count : uint64_t(b->base + b->bytes - reinterpret_cast<const uint8_t*>(buffer)) / sizeof(T);
  }
  T* ptr_ = nullptr;
  uint64_t size_ = 0;
  bool out_of_range_ = false;
  ascend_sim::GmBuffer* buf_ = nullptr;
};

// What a TQue buffer remembers across AllocTensor/FreeTensor: its generation (a LocalTensor from an older one is a
// use after free) and where it was last freed.
struct SimBufferState {
  uint32_t generation = 0;
  Loc freed_at;
};

// A view of one core's local memory (UB on AIV; L1/L0 on AIC).
template <typename T>
class LocalTensor {
 public:
  LocalTensor() = default;
  LocalTensor(uint8_t* arena, uint32_t offset_bytes, uint32_t size_elems, ascend_sim::Memory mem,
              const SimBufferState* owner = nullptr)
      : arena_(arena),
        offset_(offset_bytes),
        size_(size_elems),
        mem_(mem),
        owner_(owner),
        generation_(owner ? owner->generation : 0) {}

  LocalTensor operator[](uint32_t offset) const {
    LocalTensor t = *this;
    t.offset_ = offset_ + offset * uint32_t(sizeof(T));
    t.size_ = offset <= size_ ? size_ - offset : 0;
    return t;
  }
  template <typename U>
  LocalTensor<U> ReinterpretCast() const {
    LocalTensor<U> t(arena_, offset_, size_ * uint32_t(sizeof(T)) / uint32_t(sizeof(U)), mem_);
    t.sim_adopt(owner_, generation_);
    return t;
  }
  // Scalar access of one element (the S pipe).
  T GetValue(uint32_t index, Loc loc = {}) const {
    check_elems(index + 1, loc);
    ascend_sim::Instr in(ascend_sim::Pipe::kS, loc, "GetValue");
    sim_record(index, 1, false, in.access());
    return data()[index];
  }
  template <typename S>
  void SetValue(uint32_t index, const S value, Loc loc = {}) const {
    check_elems(index + 1, loc);
    ascend_sim::Instr in(ascend_sim::Pipe::kS, loc, "SetValue");
    sim_record(index, 1, true, in.access());
    data()[index] = T(value);
  }
  uint32_t GetSize() const { return size_; }

  // Simulator internals used by the instructions.
  T* data() const { return reinterpret_cast<T*>(arena_ + offset_); }
  uint32_t offset_bytes() const { return offset_; }
  ascend_sim::Memory memory() const { return mem_; }
  bool valid() const { return arena_ != nullptr; }
  void sim_adopt(const SimBufferState* owner, uint32_t generation) { owner_ = owner, generation_ = generation; }
  const SimBufferState* sim_owner() const { return owner_; }
  uint32_t sim_generation() const { return generation_; }
  // Records an access of elements [first, first + count) by instruction `a`.
  void sim_record(uint64_t first, uint64_t count, bool write, const ascend_sim::Access& a) const {
    const uint64_t lo = offset_ + first * sizeof(T);
    ascend_sim::record_local(ascend_sim::ctx(), mem_, lo, lo + count * sizeof(T), write, a);
  }
  void sim_record_bytes(uint64_t lo, uint64_t hi, bool write, const ascend_sim::Access& a) const {
    ascend_sim::record_local(ascend_sim::ctx(), mem_, offset_ + lo, offset_ + hi, write, a);
  }
  void check_live(const Loc& loc) const {
    ascend_sim::check(valid(), loc, [] { return "use of a LocalTensor that was never allocated"; });
    ascend_sim::check(!owner_ || owner_->generation == generation_, loc, [&] {
      return "use of a LocalTensor after its FreeTensor at " + ascend_sim::where(owner_->freed_at);
    });
  }
  void check_elems(uint64_t n, const Loc& loc) const {
    check_live(loc);
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
  const SimBufferState* owner_ = nullptr;
  uint32_t generation_ = 0;
};

class TPipe;

namespace detail {
// The events of a queue from position SRC to DST (GetQueEvt): forward on EnQue/DeQue, back on FreeTensor/AllocTensor.
template <TPosition SRC, TPosition DST>
struct QueEvents {
  static_assert(SRC == TPosition::MAX,
                "this TQueBind is not simulated: the simulator has TQue<VECIN>, TQue<VECOUT> "
                "and TQueBind<VECIN, VECOUT>");
};
template <>
struct QueEvents<TPosition::GM, TPosition::VECIN> {  // TQue<VECIN>: GM -> UB by MTE2, read by V
  static constexpr HardEvent forward = HardEvent::MTE2_V, back = HardEvent::V_MTE2;
};
template <>
struct QueEvents<TPosition::VECOUT, TPosition::GM> {  // TQue<VECOUT>: written by V, UB -> GM by MTE3
  static constexpr HardEvent forward = HardEvent::V_MTE3, back = HardEvent::MTE3_V;
};
template <>
struct QueEvents<TPosition::VECIN, TPosition::VECOUT> {  // TQueBind<VECIN, VECOUT>: GM -> UB -> GM, no compute
  static constexpr HardEvent forward = HardEvent::MTE2_MTE3, back = HardEvent::MTE3_MTE2;
};

// The logical source and destination of a TQue at one position (kernel_tpipe.h: GetBufferLogicPos).
constexpr TPosition QueSource(TPosition pos) { return pos == TPosition::VECIN ? TPosition::GM : pos; }
constexpr TPosition QueDestination(TPosition pos) { return pos == TPosition::VECOUT ? TPosition::GM : pos; }
}  // namespace detail

// Buffers handed out with AllocTensor/FreeTensor and passed between stages with EnQue/DeQue.
template <TPosition SRC, TPosition DST, int32_t DEPTH, auto MASK = 0>
class TQueBind {
  using Events = detail::QueEvents<SRC, DST>;

 public:
  TQueBind() = default;
  TQueBind(const TQueBind&) = delete;
  ~TQueBind() noexcept(false) {
    if (std::uncaught_exceptions() > 0 || num_ == 0) return;
    if (queued_ != 0) ascend_sim::fail(init_loc_, std::to_string(queued_) + " EnQue without DeQue at kernel exit");
    if (allocated_ != 0)
      ascend_sim::fail(init_loc_, std::to_string(allocated_) + " AllocTensor without FreeTensor at kernel exit");
    // The pipe's teardown waits for the last FreeTensor events (TQueBind FreeAllEvent).
    for (uint32_t i = 0; i < num_; ++i) wait_free(i, init_loc_);
  }

  template <typename T>
  LocalTensor<T> AllocTensor(Loc loc = {}) {
    ascend_sim::check(num_ > 0, loc, [] { return "AllocTensor on a TQue that InitBuffer never set up"; });
    for (uint32_t k = 0; k < num_; ++k) {
      const uint32_t i = (cursor_ + k) % num_;
      if (busy_[i]) continue;
      cursor_ = (i + 1) % num_;
      wait_free(i, loc);  // the previous user of the buffer is done reading it
      busy_[i] = true;
      ++allocated_;
      return tensor<T>(i);
    }
    ascend_sim::fail(loc, "AllocTensor with all " + std::to_string(num_) + " buffers of the TQue in use");
  }
  template <typename T>
  void FreeTensor(LocalTensor<T>& t, Loc loc = {}) {
    const uint32_t i = index_of(t, loc);
    ascend_sim::check(busy_[i], loc, [] { return "FreeTensor of a buffer that is not allocated"; });
    busy_[i] = false;
    --allocated_;
    ++state_[i].generation;
    state_[i].freed_at = loc;
    free_id_[i] = ascend_sim::alloc_event_id(Events::back, loc, true);
    ascend_sim::set_flag(Events::back, free_id_[i], loc, true);
  }
  template <typename T>
  bool EnQue(const LocalTensor<T>& t, Loc loc = {}) {
    const uint32_t i = index_of(t, loc);
    ascend_sim::check(busy_[i], loc, [] { return "EnQue of a LocalTensor that is not allocated"; });
    ascend_sim::check(queued_ < DEPTH, loc, [] { return "EnQue beyond the TQue depth"; });
    fwd_id_[i] = ascend_sim::alloc_event_id(Events::forward, loc, true);
    ascend_sim::set_flag(Events::forward, fwd_id_[i], loc, true);
    fifo_[(head_ + queued_) % kMaxBuffers] = i;
    ++queued_;
    return true;
  }
  template <typename T>
  LocalTensor<T> DeQue(Loc loc = {}) {
    ascend_sim::check(queued_ > 0, loc, [] { return "DeQue on an empty TQue"; });
    const uint32_t i = fifo_[head_];
    head_ = (head_ + 1) % kMaxBuffers;
    --queued_;
    ascend_sim::wait_flag(Events::forward, fwd_id_[i], loc, true);
    ascend_sim::release_event_id(Events::forward, fwd_id_[i], loc, true);
    return tensor<T>(i);
  }

 private:
  friend class TPipe;
  static constexpr uint32_t kMaxBuffers = 8;
  template <typename T>
  LocalTensor<T> tensor(uint32_t i) const {
    return LocalTensor<T>(arena_, offset_ + i * len_, len_ / uint32_t(sizeof(T)), ascend_sim::Memory::kUb, &state_[i]);
  }
  void wait_free(uint32_t i, const Loc& loc) {
    if (free_id_[i] < 0) return;
    ascend_sim::wait_flag(Events::back, free_id_[i], loc, true);
    ascend_sim::release_event_id(Events::back, free_id_[i], loc, true);
    free_id_[i] = -1;
  }
  template <typename T>
  uint32_t index_of(const LocalTensor<T>& t, const Loc& loc) const {
    const uint32_t offset = t.offset_bytes();
    const bool inside =
        num_ > 0 && offset >= offset_ && offset < offset_ + num_ * len_ && (offset - offset_) % len_ == 0;
    ascend_sim::check(inside, loc, [] { return "tensor does not belong to this TQue"; });
    const uint32_t i = (offset - offset_) / len_;
    ascend_sim::check(t.sim_generation() == state_[i].generation, loc, [&] {
      return "a LocalTensor used after its FreeTensor at " + ascend_sim::where(state_[i].freed_at);
    });
    return i;
  }
  uint8_t* arena_ = nullptr;
  uint32_t offset_ = 0, len_ = 0, num_ = 0, cursor_ = 0;
  bool busy_[kMaxBuffers] = {};
  SimBufferState state_[kMaxBuffers];
  int free_id_[kMaxBuffers] = {-1, -1, -1, -1, -1, -1, -1, -1};
  int fwd_id_[kMaxBuffers] = {};
  uint32_t fifo_[kMaxBuffers] = {};
  uint32_t head_ = 0;
  int32_t allocated_ = 0, queued_ = 0;
  Loc init_loc_;
};

template <TPosition POS, int32_t DEPTH, auto MASK = 0>
class TQue : public TQueBind<detail::QueSource(POS), detail::QueDestination(POS), DEPTH, MASK> {};

// Scratch memory of one position with no queue semantics (synchronise by hand).
template <TPosition POS = TPosition::LCM>
class TBuf {
 public:
  template <typename T>
  LocalTensor<T> Get(Loc loc = {}) {
    ascend_sim::check(arena_ != nullptr, loc, [] { return "Get on a TBuf that InitBuffer never set up"; });
    return LocalTensor<T>(arena_, offset_, len_ / uint32_t(sizeof(T)), memory_of(POS));
  }
  template <typename T>
  LocalTensor<T> Get(uint32_t len, Loc loc = {}) {
    ascend_sim::check(arena_ != nullptr && len * sizeof(T) <= len_, loc, [&] {
      return "TBuf::Get of " + std::to_string(len * sizeof(T)) + " bytes from a " + std::to_string(len_) + "-byte TBuf";
    });
    return LocalTensor<T>(arena_, offset_, len, memory_of(POS));
  }
  template <typename T>
  LocalTensor<T> GetWithOffset(uint32_t size, uint32_t bufOffset, Loc loc = {}) {
    ascend_sim::check(arena_ != nullptr && bufOffset + size * sizeof(T) <= len_, loc,
                      [&] { return "TBuf::GetWithOffset past the end of its " + std::to_string(len_) + "-byte TBuf"; });
    ascend_sim::check(bufOffset % ascend_sim::kBlockBytes == 0, loc, [&] {
      return "TBuf::GetWithOffset offset " + std::to_string(bufOffset) + " is not 32-byte aligned";
    });
    return LocalTensor<T>(arena_, offset_ + bufOffset, size, memory_of(POS));
  }

 private:
  friend class TPipe;
  uint8_t* arena_ = nullptr;
  uint32_t offset_ = 0, len_ = 0;
};

// Carves the core's local memories and owns the event ids; everything it handed out is released when it goes out
// of scope.
class TPipe {
 public:
  TPipe() {
    ascend_sim::ThreadCtx& c = ascend_sim::ctx();
    for (int m = 0; m < 5; ++m) start_[m] = c.arenas[m].used;
    ++c.tpipes;
    previous_ = c.tpipe;
    c.tpipe = this;
  }
  ~TPipe() {
    ascend_sim::ThreadCtx& c = ascend_sim::ctx();
    for (int m = 0; m < 5; ++m) c.arenas[m].used = start_[m];
    --c.tpipes;
    c.tpipe = previous_;
  }
  TPipe(const TPipe&) = delete;

  template <TPosition SRC, TPosition DST, int32_t DEPTH, auto MASK>
  bool InitBuffer(TQueBind<SRC, DST, DEPTH, MASK>& que, uint8_t num, uint32_t len, Loc loc = {}) {
    ascend_sim::check(num >= 1 && num <= TQueBind<SRC, DST, DEPTH, MASK>::kMaxBuffers, loc,
                      [&] { return "TQue InitBuffer num " + std::to_string(num) + " outside 1..8"; });
    const uint32_t rounded = round_up(len);
    que.arena_ = carve(ascend_sim::Memory::kUb, uint64_t(num) * rounded, loc, que.offset_);
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
  template <HardEvent evt>
  TEventID AllocEventID(Loc loc = {}) {
    return TEventID(ascend_sim::alloc_event_id(evt, loc, false));
  }
  template <HardEvent evt>
  void ReleaseEventID(TEventID id, Loc loc = {}) {
    ascend_sim::release_event_id(evt, id, loc, false);
  }
  template <HardEvent evt>
  TEventID FetchEventID(Loc loc = {}) {
    return TEventID(ascend_sim::fetch_event_id(evt, loc));
  }
  TEventID FetchEventID(HardEvent evt, Loc loc = {}) { return TEventID(ascend_sim::fetch_event_id(evt, loc)); }
  void Destroy() {}

 private:
  static uint32_t round_up(uint32_t len) {
    return (len + ascend_sim::kBlockBytes - 1) / ascend_sim::kBlockBytes * ascend_sim::kBlockBytes;
  }
  uint8_t* carve(ascend_sim::Memory mem, uint64_t bytes, const Loc& loc, uint32_t& offset) {
    ascend_sim::ThreadCtx& c = ascend_sim::ctx();
    ascend_sim::Arena& a = c.arenas[int(mem)];
    c.init_buffer_called = true;
    ascend_sim::check(a.used + bytes <= a.capacity, loc, [&] {
      return std::string(ascend_sim::memory_name(mem)) + " capacity exceeded: InitBuffer of " + std::to_string(bytes) +
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
  void* previous_ = nullptr;
};

}  // namespace AscendC

// The current TPipe (global scope, as in the devkit's kernel_common.h).
inline AscendC::TPipe* GetTPipePtr() { return static_cast<AscendC::TPipe*>(ascend_sim::ctx().tpipe); }
