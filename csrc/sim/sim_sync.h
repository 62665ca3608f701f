// Happens-before between the pipes of every simulated thread, and the shadow memory that turns it into a race
// detector.
//
// The simulator executes each thread's instructions in program order, but on the device every pipe (MTE2, V, MTE3,
// S, ...) runs asynchronously: an instruction on one pipe is ordered after another only through SetFlag/WaitFlag,
// PipeBarrier, the events TQue operations imply, cross-core flags, SyncAll and Matmul waits. Each thread keeps, per
// pipe, a vector clock of what the next instruction issued on that pipe is ordered after; every memory access is
// recorded with its (thread, pipe, instruction number), and two conflicting accesses (one a write) whose clocks do
// not order them are a race. The verdict depends only on the program and its synchronisation, never on how the host
// threads happened to be scheduled.
#pragma once
#include <algorithm>
#include <cstdint>
#include <map>
#include <vector>

#include "sim_base.h"

namespace ascend_sim {

struct Timeline;

// Vector clock over the (thread, pipe) components of one launch: entry c = n means the first n instructions of
// component c have completed.
class Clock {
 public:
  Clock() = default;
  explicit Clock(size_t components) : c_(components, 0) {}
  uint32_t operator[](size_t i) const { return c_[i]; }
  uint32_t& operator[](size_t i) { return c_[i]; }
  size_t size() const { return c_.size(); }
  void join(const Clock& o) {
    for (size_t i = 0; i < c_.size(); ++i) c_[i] = std::max(c_[i], o.c_[i]);
  }

 private:
  std::vector<uint32_t> c_;
};

inline uint32_t component(uint32_t thread, Pipe p) { return thread * kPipeCount + uint32_t(p); }
inline uint32_t thread_of(uint32_t comp) { return comp / kPipeCount; }
inline Pipe pipe_of(uint32_t comp) { return Pipe(comp % kPipeCount); }

// How an instruction touches memory. An atomic add (a DMA or the cube writing to GM with atomic accumulation, e.g.
// IterateAll's enAtomic = 1) is a read-modify-write the memory system does as one step: atomic adds to the same bytes
// commute, so they need no order among themselves (their floating-point results still depend on the order they
// happen in), but against plain reads and writes they conflict like writes (原子操作/关键特性说明.md).
enum class AccessKind : uint8_t { kRead, kWrite, kAtomicAdd };
const char* access_name(AccessKind k);  // "read", "write", "atomic add"

// One memory access of one instruction.
struct Access {
  uint32_t comp = 0;  // component(thread, pipe)
  uint32_t id = 0;    // the instruction's number on its pipe, from 1
  Loc loc;
};

// The synchronisation state of one thread's pipes.
class PipeSync {
 public:
  // `auto_sync`: the AIV code of a kernel built with bisheng's auto-sync (on by default for kernel direct launch:
  // 核内同步/关键特性说明.md), where the compiler orders S <-> V/MTE2/MTE3 and V -> V dependencies itself. AIC code has
  // none ("Cube侧编译器不支持自动插入任何类型的同步").
  void init(uint32_t self, uint32_t threads, bool auto_sync, Timeline* times);
  uint32_t self() const { return self_; }

  // A new instruction on pipe p (issued by the scalar unit in program order).
  Access issue(Pipe p, const Loc& loc);
  // Whether `earlier` is ordered before the instruction `now`; inserts the compiler's auto-sync where it applies.
  bool ordered(const Access& earlier, const Access& now);

  // The clock of everything pipe p has issued so far, complete (what a flag set on p, or a barrier, waits for).
  Clock completion(Pipe p);
  Clock completion_all();
  // SetFlag on src: the clock the flag carries. WaitFlag on dst: what dst's next instructions are ordered after.
  Clock flag_clock(Pipe src);
  void wait(Pipe dst, const Clock& c);
  void wait_all(const Clock& c);  // cross-core waits and SyncAll block every pipe
  void barrier(Pipe p);           // PipeBarrier<p>
  void barrier_all();             // PipeBarrier<PIPE_ALL>

 private:
  void refresh(Pipe p);  // pipe p inherits what the scalar knew when it issued p's next instruction
  Clock& know(Pipe p) { return know_[size_t(p)]; }

  uint32_t self_ = 0;
  bool auto_sync_ = false;
  Timeline* times_ = nullptr;  // the thread's timeline: an inserted auto-sync delays it too
  Clock know_[kPipeCount];
  uint32_t issued_[kPipeCount] = {};
  uint64_t s_version_ = 1, refreshed_[kPipeCount] = {};
};

// Shadow of one memory region: for every byte range, the last plain write, and the last read and the last atomic add
// per component since it.
class Shadow {
 public:
  // Checks [lo, hi) against the earlier accesses it conflicts with (`ordered(earlier)` decides), calling
  // `race(earlier, earlier_kind, lo, hi)` for the first unordered one (which must throw), then records the access.
  template <class Ordered, class Race>
  void access(uint64_t lo, uint64_t hi, AccessKind kind, const Access& a, Ordered&& ordered, Race&& race);
  void clear() { segs_.clear(); }
  // Whether every byte of [lo, hi) has had a plain write (atomic adds and reads alone leave a byte unwritten).
  bool written(uint64_t lo, uint64_t hi) const;

 private:
  struct Seg {
    uint64_t end;
    bool written = false;
    Access writer;
    std::vector<Access> readers, adders;
  };
  using Map = std::map<uint64_t, Seg>;
  void split(uint64_t at);
  static void add_latest(std::vector<Access>& list, const Access& a);
  Map segs_;
};

inline void Shadow::split(uint64_t at) {
  auto it = segs_.upper_bound(at);
  if (it == segs_.begin()) return;
  --it;
  if (it->first < at && at < it->second.end) {
    Seg right = it->second;
    it->second.end = at;
    segs_.emplace_hint(std::next(it), at, std::move(right));
  }
}

inline bool Shadow::written(uint64_t lo, uint64_t hi) const {
  auto it = segs_.upper_bound(lo);
  if (it != segs_.begin()) --it;
  uint64_t at = lo;
  for (; at < hi && it != segs_.end(); ++it) {
    if (it->second.end <= at) continue;
    if (it->first > at || !it->second.written) return false;
    at = it->second.end;
  }
  return at >= hi;
}

inline void Shadow::add_latest(std::vector<Access>& list, const Access& a) {
  for (Access& r : list) {
    if (r.comp == a.comp) {
      r = a;  // a later instruction of the same component: ordering against it implies ordering against this one
      return;
    }
  }
  list.push_back(a);
}

template <class Ordered, class Race>
void Shadow::access(uint64_t lo, uint64_t hi, AccessKind kind, const Access& a, Ordered&& ordered, Race&& race) {
  if (lo >= hi) return;
  const bool write = kind == AccessKind::kWrite, atomic = kind == AccessKind::kAtomicAdd;
  split(lo);
  split(hi);
  auto first = segs_.lower_bound(lo);
  for (auto it = first; it != segs_.end() && it->first < hi; ++it) {
    Seg& s = it->second;
    const uint64_t l = std::max(lo, it->first), h = std::min(hi, s.end);
    if (s.written && !ordered(s.writer)) race(s.writer, AccessKind::kWrite, l, h);
    if (!atomic) {  // atomic adds commute with each other; everything else conflicts with them
      for (const Access& r : s.adders) {
        if (!ordered(r)) race(r, AccessKind::kAtomicAdd, l, h);
      }
    }
    if (kind == AccessKind::kRead) continue;
    for (const Access& r : s.readers) {
      if (!ordered(r)) race(r, AccessKind::kRead, l, h);
    }
  }
  if (atomic) {  // recorded on every segment of [lo, hi), like a read (below), in the adders
    uint64_t at = lo;
    auto it = first;
    while (at < hi) {
      if (it == segs_.end() || it->first > at) {
        const uint64_t end = it == segs_.end() ? hi : std::min(hi, it->first);
        Seg s;
        s.end = end;
        s.adders.push_back(a);
        segs_.emplace_hint(it, at, std::move(s));
        at = end;
        continue;
      }
      add_latest(it->second.adders, a);
      at = it->second.end;
      ++it;
    }
    return;
  }
  if (write) {
    auto last = first;
    while (last != segs_.end() && last->first < hi) ++last;
    segs_.erase(first, last);
    Seg s;
    s.end = hi, s.written = true, s.writer = a;
    segs_.emplace(lo, std::move(s));
    return;
  }
  // A read: add it to every segment in [lo, hi), creating segments over the gaps.
  uint64_t at = lo;
  auto it = first;
  while (at < hi) {
    if (it == segs_.end() || it->first > at) {
      const uint64_t end = it == segs_.end() ? hi : std::min(hi, it->first);
      Seg s;
      s.end = end;
      s.readers.push_back(a);
      segs_.emplace_hint(it, at, std::move(s));
      at = end;
      continue;  // `it` still points at the next existing segment
    }
    add_latest(it->second.readers, a);
    at = it->second.end;
    ++it;
  }
}

}  // namespace ascend_sim
