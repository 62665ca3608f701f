#include "sim_sync.h"

#include "sim_timeline.h"

namespace ascend_sim {

namespace {
bool vector_side(Pipe p) { return p == Pipe::kV || p == Pipe::kMte2 || p == Pipe::kMte3; }
}  // namespace

void PipeSync::init(uint32_t self, uint32_t threads, bool auto_sync, Timeline* times) {
  self_ = self;
  auto_sync_ = auto_sync;
  times_ = times;
  for (Clock& k : know_) k = Clock(size_t(threads) * kPipeCount);
}

void PipeSync::refresh(Pipe p) {
  if (p == Pipe::kS || refreshed_[size_t(p)] == s_version_) return;
  // The scalar issues every instruction after its own earlier ones completed, so the new instruction is ordered
  // after whatever the scalar waited for. The scalar's own data accesses are not: they need S_X flags or auto-sync.
  const uint32_t own_s = component(self_, Pipe::kS);
  Clock& k = know(p);
  const Clock& s = know(Pipe::kS);
  for (size_t i = 0; i < k.size(); ++i) {
    if (i != own_s) k[i] = std::max(k[i], s[i]);
  }
  refreshed_[size_t(p)] = s_version_;
}

Access PipeSync::issue(Pipe p, const Loc& loc) {
  refresh(p);
  const uint32_t n = ++issued_[size_t(p)];
  if (p == Pipe::kS) know(Pipe::kS)[component(self_, Pipe::kS)] = n - 1;  // the scalar unit is in order
  if (p == Pipe::kMm) {
    // A Matmul request leaves after the scalar's earlier work, its own GM writes included (flushed by the API's
    // message), and the cube serves one AIV's requests one after another.
    know(Pipe::kMm).join(know(Pipe::kS));
    know(Pipe::kMm)[component(self_, Pipe::kMm)] = n - 1;
  }
  return Access{component(self_, p), n, loc};
}

bool PipeSync::ordered(const Access& earlier, const Access& now) {
  if (earlier.comp == now.comp && earlier.id == now.id) return true;  // one instruction reading what it writes
  const Pipe p = pipe_of(now.comp);
  if (know(p)[earlier.comp] >= earlier.id) return true;
  if (!auto_sync_ || thread_of(earlier.comp) != self_) return false;
  const Pipe q = pipe_of(earlier.comp);
  if (q == Pipe::kV && p == Pipe::kV) {  // the compiler puts a PipeBarrier<PIPE_V> before the dependent instruction
    know(Pipe::kV)[now.comp] = std::max(know(Pipe::kV)[now.comp], now.id - 1);
    return true;
  }
  if (q == Pipe::kS && vector_side(p)) {  // SetFlag/WaitFlag S -> p before it
    know(p).join(know(Pipe::kS));
    times_->ready[size_t(p)] = std::max(times_->ready[size_t(p)], times_->s);
    return true;
  }
  if (vector_side(q) && p == Pipe::kS) {  // SetFlag/WaitFlag q -> S before it: the scalar unit waits for q
    know(Pipe::kS).join(completion(q));
    ++s_version_;
    times_->s = std::max(times_->s, times_->completion(q));
    return true;
  }
  return false;
}

Clock PipeSync::completion(Pipe p) {
  refresh(p);
  Clock c = know(p);
  c[component(self_, p)] = issued_[size_t(p)];
  return c;
}

Clock PipeSync::completion_all() {
  Clock c = completion(Pipe::kS);
  for (uint32_t p = 1; p < kPipeCount; ++p) c.join(completion(Pipe(p)));
  return c;
}

Clock PipeSync::flag_clock(Pipe src) { return completion(src); }

void PipeSync::wait(Pipe dst, const Clock& c) {
  know(dst).join(c);
  if (dst == Pipe::kS) ++s_version_;
}

void PipeSync::wait_all(const Clock& c) {
  for (Clock& k : know_) k.join(c);
  ++s_version_;
}

void PipeSync::barrier(Pipe p) {
  Clock& k = know(p);
  const uint32_t own = component(self_, p);
  k[own] = std::max(k[own], issued_[size_t(p)]);
}

void PipeSync::barrier_all() { wait_all(completion_all()); }

}  // namespace ascend_sim
