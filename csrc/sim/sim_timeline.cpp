#include "sim_timeline.h"

#include <algorithm>

#include "sim_runtime.h"

namespace ascend_sim {

double Resource::book(double ready, double duration) {
  if (duration <= 0.0) return ready;
  double start = ready;
  // Walk the intervals that end after `ready`; take the first gap long enough.
  auto it = intervals_.upper_bound(ready);
  if (it != intervals_.begin()) {
    auto prev = std::prev(it);
    if (prev->second > start) start = prev->second;
  }
  for (; it != intervals_.end(); ++it) {
    if (it->first >= start + duration) break;
    start = std::max(start, it->second);
  }
  intervals_.emplace(start, start + duration);
  busy_ += duration;
  return start;
}

void Resource::forget_before(double t) {
  auto it = intervals_.begin();
  while (it != intervals_.end() && it->second < t) it = intervals_.erase(it);
}

uint64_t L2Model::touch(uint64_t addr, uint64_t bytes) {
  constexpr uint64_t g = kModelL2GranuleBytes;
  constexpr size_t capacity = kModelL2Bytes / kModelL2GranuleBytes;
  uint64_t resident = 0;
  for (uint64_t granule = addr / g; granule * g < addr + bytes; ++granule) {
    const uint64_t lo = std::max(addr, granule * g), hi = std::min(addr + bytes, (granule + 1) * g);
    auto it = where_.find(granule);
    if (it != where_.end()) {
      resident += hi - lo;
      lru_.splice(lru_.begin(), lru_, it->second);
      continue;
    }
    lru_.push_front(granule);
    where_[granule] = lru_.begin();
    if (lru_.size() > capacity) {
      where_.erase(lru_.back());
      lru_.pop_back();
    }
  }
  return resident;
}

double Timeline::end() const {
  double e = s;
  for (double d : done) e = std::max(e, d);
  return e;
}

double Timeline::completion(Pipe p) const { return std::max(s, done[size_t(p)]); }

double Timeline::completion_all() const { return end(); }

void Timeline::wait_all(double t) {
  s = std::max(s, t);
  for (double& r : ready) r = std::max(r, t);
}

double transfer_cycles(uint64_t l2_hit_bytes, uint64_t l2_miss_bytes) {
  const double l2_per_cycle = kModelL2BytesPerSecond / kModelCores / kModelClockHz;
  const double gm_per_cycle = kModelGmBytesPerSecond / kModelCores / kModelClockHz;
  return double(l2_hit_bytes) / l2_per_cycle + double(l2_miss_bytes) / gm_per_cycle;
}

Instr::Instr(Pipe pipe, const Loc& loc, const char* what) : pipe_(pipe), loc_(loc), what_(what) {
  ThreadCtx& c = ctx();
  c.launch->yield();
  access_ = c.sync.issue(pipe, loc);
  outer_ = c.instr;
  c.instr = this;
  uncaught_ = std::uncaught_exceptions();
}

Instr::~Instr() {
  ThreadCtx& c = ctx();
  c.instr = outer_;
  if (std::uncaught_exceptions() == uncaught_) finish();
}

void Instr::finish() {
  ThreadCtx& c = ctx();
  Launch& launch = *c.launch;
  Timeline& t = c.times;
  const size_t p = size_t(pipe_);
  const double latency = miss_ ? kModelGmLatencyCycles : kModelL2LatencyCycles;
  double start = 0.0, end = 0.0;
  if (pipe_ == Pipe::kS) {
    start = t.s;
    const double dur = scalar_gm_ ? (scalar_hit_ ? kModelScalarCacheHitCycles
                                                 : (miss_ ? kModelGmLatencyCycles : kModelL2LatencyCycles))
                                  : kModelScalarUbCycles;
    end = t.s = start + dur;
    t.free[p] = t.done[p] = end;
    t.busy[p] += dur;
  } else if (pipe_ == Pipe::kMm) {
    // The AIV's scalar unit sends the request; the core's cube serves it when free, moving A, B and C through the
    // core's port and the operands from L1 into L0 (cycles_) while it multiplies.
    t.s += kModelMatmulCallCycles;
    t.busy[size_t(Pipe::kS)] += kModelMatmulCallCycles;
    const double ready = std::max({t.s + kModelMatmulMessageCycles, t.free[p], t.ready[p]});
    const double compute = double(macs_) / kModelCubeMacsPerCycle, data = transfer_cycles(hit_, miss_);
    const double dur = std::max({compute, data, cycles_}) + kModelCubeFillCycles;
    start = launch.cube(c.core).book(ready, dur);
    const double port = launch.port(c.core).book(start, data);
    end = std::max(start + dur, port + data + latency);
    t.free[p] = t.done[p] = end;
    t.busy[p] += dur;
  } else {
    start = std::max({t.s, t.free[p], t.ready[p]});
    if (hit_ + miss_ > 0) {  // DMA: occupies the pipe and the core's port while the bytes move, done after latency
      const double data = transfer_cycles(hit_, miss_);
      start = launch.port(c.core).book(start, data);
      t.free[p] = start + data;
      end = start + data + latency;
      t.busy[p] += data;
    } else {
      end = t.free[p] = start + cycles_;
      t.busy[p] += cycles_;
    }
    t.done[p] = std::max(t.done[p], end);
    t.s += kModelIssueCycles;
    t.busy[size_t(Pipe::kS)] += kModelIssueCycles;
  }
  if (launch.tracing()) c.trace.push_back({c.index, pipe_, start, end, what_, loc_, hit_ + miss_, macs_});
}

}  // namespace ascend_sim
